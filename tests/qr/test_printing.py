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
import yaml
import zxingcpp
from flask import Flask

from dispatch.community import load_demo
from dispatch.db import db
from dispatch.models import Place, PlaceKind, Sticker, StickerStatus
from qr import codes
from qr.labels import sticker_url
from tests import factories

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


def test_the_print_script_runs_from_the_shell_on_the_embedded_database(
        sqlite_app: Flask, tmp_path: Path) -> None:
    with sqlite_app.app_context():
        load_demo()
    env = _script_env(sqlite_app, None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "print_qr_sheets.py"), "DH-B02",
         "--out", str(tmp_path / "b02.pdf")], env=env, capture_output=True, text=True,
        timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stickers," in result.stdout and (tmp_path / "b02.pdf").exists()


# Printing on the database production runs on. The count query once used SELECT DISTINCT with
# an ORDER BY that PostgreSQL refuses, after the new codes had already been committed.

def _small(app: Flask, **tables: list[dict]) -> None:
    with app.app_context():
        factories.import_community(factories.small_community(**tables))


def _sticker_count(app: Flask) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Sticker))


# A place whose name has a character the embedded font lacks: printing fails after the codes
# are issued, which is when a half-done print would show.
UNPRINTABLE = [{"code": "TS-G1", "kind": "grid", "name": "第一网格"},
               {"code": "TS-B1", "kind": "building", "name": "1栋", "parent": "TS-G1"},
               {"code": "TS-B1-U1", "kind": "unit", "name": "1单元", "parent": "TS-B1"},
               {"code": "TS-B1-U2", "kind": "unit", "name": "𠀀单元", "parent": "TS-B1"}]


@pytest.mark.postgres
def test_the_cli_prints_a_community_whose_every_code_decodes(any_app: Flask,
                                                              tmp_path: Path) -> None:
    _small(any_app)
    out = tmp_path / "ts.pdf"
    result = any_app.test_cli_runner().invoke(args=["stickers", "print", "TS", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with any_app.app_context():
        expected = active_urls(any_app, codes.STICKER_KINDS)
    assert len(expected) == 4  # two units, an elevator and an area
    assert sorted(decoded_urls(out)) == sorted(expected)
    assert "4 stickers, 1 pages, 1 file(s)" in result.output


@pytest.mark.postgres
def test_a_reissued_place_prints_once_with_its_newest_code(any_app: Flask,
                                                           tmp_path: Path) -> None:
    _small(any_app)
    runner = any_app.test_cli_runner()
    assert runner.invoke(args=["stickers", "print", "TS-B1", "--out",
                               str(tmp_path / "a.pdf")]).exit_code == 0
    with any_app.app_context():
        old = codes.active_sticker(factories.place("TS-B1-U1-E1"))
        new = codes.reissue(old).code
        old = old.code
        db.session.commit()
    out = tmp_path / "b.pdf"
    result = runner.invoke(args=["stickers", "print", "TS-B1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    urls = decoded_urls(out)
    base = any_app.config["PUBLIC_BASE_URL"]
    assert sticker_url(base, new) in urls and sticker_url(base, old) not in urls
    assert len(urls) == 2 and "2 stickers" in result.output


@pytest.mark.postgres
def test_a_failed_cli_print_issues_no_codes_and_says_why(any_app: Flask,
                                                         tmp_path: Path) -> None:
    _small(any_app, places=UNPRINTABLE)
    out = tmp_path / "ts.pdf"
    result = any_app.test_cli_runner().invoke(args=["stickers", "print", "TS", "--out", str(out)])
    assert result.exit_code == 1
    assert "Error: " in result.output and "𠀀" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert _sticker_count(any_app) == 0
    assert not list(tmp_path.glob("*.pdf"))


def _script_env(app: Flask, schema: str | None) -> dict[str, str]:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if schema is not None:  # the test session's own PostgreSQL schema
        url += f"?options=-csearch_path%3D{schema}"
    env = {**os.environ, "DATABASE_URL": url, "PUBLIC_BASE_URL": app.config["PUBLIC_BASE_URL"],
           "SECRET_KEY": "x" * 32}
    env.pop("REDIS_URL", None)
    return env


@pytest.mark.postgres
def test_the_print_script_prints_and_fails_cleanly_on_postgresql(
        pg_app: Flask, pg_schema: str, tmp_path: Path) -> None:
    _small(pg_app)
    env = _script_env(pg_app, pg_schema)
    script = [sys.executable, str(ROOT / "scripts" / "print_qr_sheets.py")]
    result = subprocess.run([*script, "TS", "--out", str(tmp_path / "ts.pdf")], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with pg_app.app_context():
        assert sorted(decoded_urls(tmp_path / "ts.pdf")) == sorted(
            active_urls(pg_app, codes.STICKER_KINDS))
    _truncate_places(pg_app)
    _small(pg_app, places=UNPRINTABLE)
    result = subprocess.run([*script, "TS", "--out", str(tmp_path / "bad.pdf")], env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "𠀀" in result.stderr
    assert _sticker_count(pg_app) == 0


def _truncate_places(app: Flask) -> None:
    with app.app_context():
        tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
        db.session.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()


@pytest.mark.postgres
def test_the_console_sheet_downloads_on_postgresql_and_a_failure_is_no_500(
        pg_app: Flask, tmp_path: Path) -> None:
    _small(pg_app)
    factories.add_staff(pg_app)
    client = pg_app.test_client()
    factories.login(client)
    response = client.get("/staff/stickers/TS-B1.pdf")
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    (tmp_path / "b1.pdf").write_bytes(response.data)
    with pg_app.app_context():
        expected = active_urls(pg_app, codes.STICKER_KINDS, "TS-B1")
    assert sorted(decoded_urls(tmp_path / "b1.pdf")) == sorted(expected) and len(expected) == 2
    _truncate_places(pg_app)
    _small(pg_app, places=UNPRINTABLE)
    factories.add_staff(pg_app)
    client = pg_app.test_client()
    factories.login(client)
    response = client.get("/staff/stickers/TS-B1.pdf", follow_redirects=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "𠀀" in response.get_data(as_text=True)
    assert _sticker_count(pg_app) == 0


def test_area_stickers_of_the_demo_print_unique_names_and_their_place_codes(
        demo: Flask, tmp_path: Path) -> None:
    out = tmp_path / "areas.pdf"
    result = demo.test_cli_runner().invoke(args=[
        "stickers", "print", "DH", "--kind", "area", "--out", str(out)])
    assert result.exit_code == 0, result.output
    pdf = pdfium.PdfDocument(out)
    text = "".join(page.get_textpage().get_text_range() for page in pdf)
    pdf.close()
    with demo.app_context():
        areas = db.session.scalars(sa.select(Place).where(Place.kind == PlaceKind.AREA)).all()
        names = [f"{area.parent.name} · {area.name}" for area in areas]
        assert len(areas) == 14
        for area in areas:
            assert area.code in text
    assert len(set(names)) == len(names)
    for name in names:
        assert text.count(name) == 1, name


def test_the_import_warns_about_stickers_that_would_print_the_same_name(runner, app: Flask,
                                                                        tmp_path: Path) -> None:
    data = factories.small_community()
    data["places"].append({"code": "TS-G1-A2", "kind": "area", "name": "北门",
                           "parent": "TS-G1"})
    path = tmp_path / "ts.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    result = runner.invoke(args=["community", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert ("warning: 2 stickers would print the same name '第一网格 · 北门': "
            "TS-G1-A1, TS-G1-A2") in result.output


@pytest.mark.postgres
@pytest.mark.parametrize("base_url", [
    "http://localhost:5000", "https://127.0.0.1", "https://192.168.1.20:8443",
    "https://[::1]", "https://linli", "http://linli.example.cn", "https://printer.local"])
def test_printing_refuses_a_base_url_phones_cannot_reach_safely(
        any_app: Flask, base_url: str, tmp_path: Path) -> None:
    _small(any_app)
    any_app.config["PUBLIC_BASE_URL"] = base_url
    out = tmp_path / "ts.pdf"
    result = any_app.test_cli_runner().invoke(args=["stickers", "print", "TS", "--out", str(out)])
    assert result.exit_code == 1
    assert f"Error: PUBLIC_BASE_URL {base_url} " in result.output
    assert "--allow-insecure-url" in result.output
    assert not out.exists() and _sticker_count(any_app) == 0


@pytest.mark.postgres
def test_allow_insecure_url_prints_for_a_demo_and_every_header_names_the_base_url(
        any_app: Flask, tmp_path: Path) -> None:
    _small(any_app)
    any_app.config["PUBLIC_BASE_URL"] = "http://localhost:5000"
    out = tmp_path / "ts.pdf"
    result = any_app.test_cli_runner().invoke(args=[
        "stickers", "print", "TS", "--out", str(out), "--allow-insecure-url"])
    assert result.exit_code == 0, result.output
    assert all(url.startswith("HTTP://LOCALHOST:5000/S/") for url in decoded_urls(out))
    pdf = pdfium.PdfDocument(out)
    assert "二维码网址 http://localhost:5000" in pdf[0].get_textpage().get_text_range()
    pdf.close()


def test_the_console_refuses_to_print_for_localhost_and_says_why(demo: Flask) -> None:
    demo.config["PUBLIC_BASE_URL"] = "http://localhost:5000"
    factories.add_staff(demo)
    client = demo.test_client()
    factories.login(client)
    response = client.get("/staff/stickers/DH-B01.pdf", follow_redirects=True)
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "PUBLIC_BASE_URL 不是公网 https 地址" in response.get_data(as_text=True)


def test_the_console_refuses_one_stickers_svg_and_png_for_localhost_and_says_why(
        demo: Flask) -> None:
    demo.config["PUBLIC_BASE_URL"] = "http://localhost:5000"
    factories.add_staff(demo)
    client = demo.test_client()
    factories.login(client)
    with demo.app_context():
        code = codes.active_sticker(factories.place("DH-B01-U1-E1")).code
    for suffix in ("svg", "png"):
        response = client.get(f"/staff/stickers/code/{code}.{suffix}", follow_redirects=True)
        assert response.status_code == 200 and response.mimetype == "text/html", suffix
        assert "PUBLIC_BASE_URL 不是公网 https 地址" in response.get_data(as_text=True)
    demo.config["STICKERS_ALLOW_INSECURE_URL"] = True  # the demo's local try
    assert client.get(f"/staff/stickers/code/{code}.png").mimetype == "image/png"
    assert client.get(f"/staff/stickers/code/{code}.svg").mimetype == "image/svg+xml"


def test_the_demo_console_prints_for_its_local_address_when_allowed(demo: Flask) -> None:
    demo.config.update(PUBLIC_BASE_URL="http://127.0.0.1:5000", STICKERS_ALLOW_INSECURE_URL=True)
    factories.add_staff(demo)
    client = demo.test_client()
    factories.login(client)
    response = client.get("/staff/stickers/DH-B01.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
