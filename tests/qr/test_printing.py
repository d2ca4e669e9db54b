"""Printing stickers from the database: every code of the demo decodes to its own place."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pypdfium2 as pdfium
import pytest
import sqlalchemy as sa
import zxingcpp
from flask import Flask

from dispatch.community import load_demo
from dispatch.db import db
from dispatch.models import Place, PlaceKind, Sticker, StickerStatus
from qr import codes
from qr.labels import sticker_url

ROOT = Path(__file__).resolve().parents[2]


def decoded_urls(*paths: Path, dpi: int = 150) -> list[str]:
    urls = []
    for path in paths:
        pdf = pdfium.PdfDocument(path)
        for page in pdf:
            image = page.render(scale=dpi / 72).to_pil()
            urls.extend(r.text for r in zxingcpp.read_barcodes(image))
        pdf.close()
    return urls


def active_urls(app: Flask, kinds: tuple[PlaceKind, ...], under: str | None = None) -> set[str]:
    base = app.config["PUBLIC_BASE_URL"]
    rows = db.session.execute(sa.select(Sticker.code, Place).join(Place).where(
        Sticker.status == StickerStatus.ACTIVE, Place.kind.in_(kinds)))
    return {sticker_url(base, code) for code, place in rows
            if under is None or under in [p.code for p in place.lineage()]}


@pytest.fixture
def demo(app: Flask) -> Flask:
    with app.app_context():
        load_demo()
    return app


@pytest.mark.slow
def test_every_unit_and_elevator_sticker_of_the_demo_decodes_at_150_dpi(
        demo: Flask, tmp_path: Path) -> None:
    out = tmp_path / "donghu.pdf"
    result = demo.test_cli_runner().invoke(args=[
        "stickers", "print", "DH", "--kind", "unit", "--kind", "elevator", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with demo.app_context():
        expected = active_urls(demo, (PlaceKind.UNIT, PlaceKind.ELEVATOR))
    urls = decoded_urls(out)
    assert len(urls) == len(expected) > 300
    assert set(urls) == expected
    assert re.search(rf"{len(expected)} stickers, \d+ pages, 1 file\(s\)", result.output)


def test_a_grid_selection_prints_only_that_grids_elevators(demo: Flask, tmp_path: Path) -> None:
    out = tmp_path / "g2.pdf"
    result = demo.test_cli_runner().invoke(args=[
        "stickers", "print", "DH-G2", "--kind", "elevator", "--layout", "2x3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with demo.app_context():
        assert set(decoded_urls(out)) == active_urls(demo, (PlaceKind.ELEVATOR,), "DH-G2")


def test_a_long_run_is_split_into_several_files(demo: Flask, tmp_path: Path) -> None:
    result = demo.test_cli_runner().invoke(args=[
        "stickers", "print", "DH-G1", "--kind", "elevator", "--out", str(tmp_path / "g1.pdf"),
        "--layout", "2x3", "--max-per-file", "6"])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("g1-*.pdf"))
    assert len(files) >= 3
    with demo.app_context():
        assert set(decoded_urls(*files)) == active_urls(demo, (PlaceKind.ELEVATOR,), "DH-G1")


def test_an_unknown_scope_is_a_clear_error(demo: Flask) -> None:
    result = demo.test_cli_runner().invoke(args=["stickers", "print", "NOPE"])
    assert result.exit_code != 0
    assert "'NOPE' is not a community, grid or building code" in result.output


def test_reissue_keeps_the_old_code_working_until_it_is_retired(demo: Flask,
                                                                tmp_path: Path) -> None:
    runner = demo.test_cli_runner()
    with demo.app_context():
        place = db.session.scalar(sa.select(Place).where(Place.code == "DH-B01-U1-E1"))
        old = codes.active_sticker(place).code
    result = runner.invoke(args=["stickers", "reissue", old.lower(), "--note", "贴纸破损"])
    assert result.exit_code == 0, result.output
    new = re.search(r"new sticker (\w+)", result.output)[1]
    with demo.app_context():
        assert codes.find(old).status == StickerStatus.ACTIVE
        assert codes.find(new).place.code == "DH-B01-U1-E1"
        assert codes.find(new).replaces_id == codes.find(old).id
    out = tmp_path / "e1.pdf"
    runner.invoke(args=["stickers", "print", "DH-B01", "--kind", "elevator", "--out", str(out)])
    urls = decoded_urls(out)
    assert sticker_url(demo.config["PUBLIC_BASE_URL"], new) in urls
    assert sticker_url(demo.config["PUBLIC_BASE_URL"], old) not in urls
    assert runner.invoke(args=["stickers", "retire", old]).exit_code == 0
    with demo.app_context():
        assert codes.find(old).status == StickerStatus.RETIRED


def test_revoke_marks_the_sticker_revoked(demo: Flask) -> None:
    with demo.app_context():
        code = db.session.scalar(sa.select(Sticker.code).limit(1))
    assert demo.test_cli_runner().invoke(args=["stickers", "revoke", code, "--note", "骚扰"]
                                         ).exit_code == 0
    with demo.app_context():
        sticker = codes.find(code)
        assert sticker.status == StickerStatus.REVOKED and sticker.note == "骚扰"


@pytest.mark.parametrize(("typed", "ok"), [
    ("k7qm-3x9p-z2ab", True), (" K7QM 3X9P Z2AB ", True), ("K7QM3X9PZ2AO", True),
    ("K7QM3X9PZ2A", False), ("K7QM3X9PZ2AB!", False), ("", False),
])
def test_codes_are_read_forgivingly(typed: str, ok: bool) -> None:
    assert (codes.normalise(typed) is not None) is ok


def test_new_codes_carry_at_least_50_bits_and_fit_qr_alphanumeric_mode() -> None:
    import math

    assert codes.LENGTH * math.log2(len(codes.ALPHABET)) >= 50
    code = codes.new_code()
    assert codes.normalise(code) == code
    assert sticker_url("https://linli.example.cn", code) == f"HTTPS://LINLI.EXAMPLE.CN/S/{code}"


def test_the_print_script_runs_from_the_shell(demo: Flask, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": demo.config["SQLALCHEMY_DATABASE_URI"],
           "PUBLIC_BASE_URL": demo.config["PUBLIC_BASE_URL"], "SECRET_KEY": "x" * 32}
    env.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "print_qr_sheets.py"), "DH-B02",
         "--out", str(tmp_path / "b02.pdf")], env=env, capture_output=True, text=True,
        timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stickers," in result.stdout and (tmp_path / "b02.pdf").exists()
