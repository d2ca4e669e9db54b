"""Sticker use: scan counts on the console, and the stickers nobody has scanned for 90 days."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.db import db
from dispatch.models import Scan, Sticker
from dispatch.resident import scans
from qr import codes, usage
from tests import factories


def _printed(app: Flask, tmp_path: Path) -> dict[str, str]:
    """The small community printed through the CLI; its place codes → sticker codes."""
    with app.app_context():
        factories.import_community(factories.small_community())
    result = app.test_cli_runner().invoke(args=[
        "stickers", "print", "TS", "--out", str(tmp_path / "ts.pdf")])
    assert result.exit_code == 0, result.output
    with app.app_context():
        return {place.code: sticker for sticker, place in db.session.execute(
            sa.select(Sticker.code, factories.Place).join(factories.Place))}


def _scan(app: Flask, code: str) -> None:
    """A resident's scan through the sticker URL, written out at once."""
    assert app.test_client().get(f"/s/{code}").status_code == 200
    scans.writer(app).flush()


def _backdate(app: Flask, days: int) -> None:
    """Move every sticker's issue and every scan `days` into the past: time passing."""
    with app.app_context():
        for sticker in db.session.scalars(sa.select(Sticker)):
            sticker.created_at -= timedelta(days=days)
        for scan in db.session.scalars(sa.select(Scan)):
            scan.at -= timedelta(days=days)
        db.session.commit()


@pytest.mark.postgres
def test_stickers_without_a_scan_for_90_days_are_reported_with_their_last_scan(
        any_app: Flask, tmp_path: Path) -> None:
    stickers = _printed(any_app, tmp_path)
    _scan(any_app, stickers["TS-B1-U1"])
    _backdate(any_app, 200)
    _scan(any_app, stickers["TS-B1-U1-E1"])  # scanned today: not reported
    with any_app.app_context():
        codes.revoke(codes.find(stickers["TS-B2-U1"]))  # revoked: nothing to check on the wall
        db.session.commit()
        sticker = codes.find(stickers["TS-B1-U1"])
        now = sticker.created_at + timedelta(days=200, minutes=5)
        community = sticker.place.community
        rows = usage.unscanned(community, now)
        assert [(r.place.code, r.last is not None) for r in rows] == [
            ("TS-B1-U1", True), ("TS-G1-A1", False)]
        assert rows[0].last < now - timedelta(days=199)
        # 200 days earlier the stickers were new: nothing to report yet.
        assert usage.unscanned(community, now - timedelta(days=200)) == []
        # Narrowed to a building.
        building = factories.place("TS-B1")
        assert [r.place.code for r in usage.unscanned(community, now, root=building)] == [
            "TS-B1-U1"]
        counts = usage.scan_counts([codes.find(c).id for c in stickers.values()])
        assert sorted(c.scans for c in counts.values()) == [1, 1]


@pytest.mark.postgres
def test_the_cli_lists_stickers_nobody_scans(any_app: Flask, tmp_path: Path) -> None:
    stickers = _printed(any_app, tmp_path)
    _backdate(any_app, 120)
    _scan(any_app, stickers["TS-B1-U1"])
    result = any_app.test_cli_runner().invoke(args=["stickers", "unscanned", "TS-B1"])
    assert result.exit_code == 0, result.output
    assert f"TS-B1-U1-E1\t1栋 1单元 · 1号电梯\t{stickers['TS-B1-U1-E1']}\t从未扫码" in result.output
    assert stickers["TS-B1-U1"] not in result.output
    assert "1 sticker(s) of 测试花园 · 1栋 not scanned for 90 days" in result.output
    grid = any_app.test_cli_runner().invoke(args=["stickers", "unscanned", "TS-G1"])
    assert "sticker(s) of 测试花园 · 第一网格 not scanned" in grid.output  # the scope asked for
    wide = any_app.test_cli_runner().invoke(args=["stickers", "unscanned", "--days", "200"])
    assert "0 sticker(s) of 测试花园 not scanned for 200 days" in wide.output


@pytest.mark.postgres
def test_the_console_shows_scan_counts_and_the_unscanned_report(pg_app: Flask,
                                                                tmp_path: Path) -> None:
    stickers = _printed(pg_app, tmp_path)
    for _ in range(3):
        _scan(pg_app, stickers["TS-B1-U1"])
    factories.add_staff(pg_app)
    client = pg_app.test_client()
    factories.login(client)
    page = client.get("/staff/stickers/TS-B1").get_data(as_text=True)
    assert "扫码次数" in page and "<td>3</td>" in page and "从未扫码" in page
    report = client.get("/staff/stickers/unscanned").get_data(as_text=True)
    assert "没有这样的贴纸" in report  # everything was printed today
    _backdate(pg_app, 100)
    report = client.get("/staff/stickers/unscanned").get_data(as_text=True)
    assert "90 天无人扫码的贴纸" in report
    for place in ("TS-B1-U1-E1", "TS-B2-U1", "TS-G1-A1"):
        assert stickers[place] in report
    assert "第一网格 · 北门" in report
    assert stickers["TS-B1-U1"] in report  # its three scans are 100 days old now
    assert "九十天无人扫码的贴纸" in client.get("/staff/stickers/").get_data(as_text=True)


@pytest.mark.postgres
def test_the_unscanned_query_can_answer_from_the_scan_index(pg_app: Flask) -> None:
    with pg_app.app_context():
        names = {index["name"] for index in sa.inspect(db.engine).get_indexes("scan")}
        assert "ix_scan_sticker_at" in names and "ix_scan_sticker_id" not in names
        db.session.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(db.session.scalars(sa.text(
            "EXPLAIN SELECT 1 FROM scan WHERE scan.sticker_id = 1 AND scan.at >= now()")))
        assert "ix_scan_sticker_at" in plan
        db.session.rollback()
