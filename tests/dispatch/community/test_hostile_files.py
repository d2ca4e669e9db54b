"""Community files made by mistake or by an attacker: refused with a clear message, nothing lost.

Issue 15, defect 8: a workbook with only the community sheet, billion-laughs YAML, overlong
and binary values, roster edits that made the export un-importable, control characters.
"""

from __future__ import annotations

import io
import os
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from flask import Flask
from openpyxl import Workbook, load_workbook

from dispatch.case import lifecycle
from dispatch.case.report import file_report
from dispatch.community import CommunityFileError, export_file, import_file
from dispatch.community.files import write
from dispatch.db import db
from dispatch.models import Member, StaffRole
from tests import factories

pytestmark = pytest.mark.postgres

DECEMBER = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture
def imported(pg_app: Flask) -> Flask:
    with pg_app.app_context():
        factories.import_community(factories.small_community())
    return pg_app


def _active_members() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Member).where(Member.active))


def _community_only(path: Path) -> Path:
    book = Workbook()
    sheet = book.active
    sheet.title = "community"
    sheet.append(["code", "name", "timezone", "hotline"])
    sheet.append(["TS", "测试花园（改名）", "Asia/Shanghai", "0752-7654321"])
    book.save(path)
    return path


def test_a_workbook_without_member_sheets_is_refused_and_deactivates_nobody(
        imported: Flask, tmp_path: Path) -> None:
    path = _community_only(tmp_path / "community-only.xlsx")
    with imported.app_context():
        with pytest.raises(CommunityFileError) as raised:
            import_file(path)
        assert "members" in str(raised.value.problems) and "--partial" in str(
            raised.value.problems)
        assert _active_members() == 6


def test_partial_names_what_a_workbook_updates_and_keeps_the_rest(
        imported: Flask, tmp_path: Path) -> None:
    path = _community_only(tmp_path / "community-only.xlsx")
    result = imported.test_cli_runner().invoke(
        args=["community", "import", str(path), "--partial", "community"])
    assert result.exit_code == 0, result.output
    with imported.app_context():
        assert _active_members() == 6
        assert db.session.scalar(sa.text("SELECT hotline FROM community")) == "0752-7654321"


BILLION_LAUGHS = """community: &a0 {code: TS, name: x, hotline: "1"}
""" + "".join(f"l{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]\n" for n in range(1, 10))


def test_billion_laughs_yaml_is_refused_quickly(imported: Flask, tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    with imported.app_context(), pytest.raises(CommunityFileError) as raised:
        import_file(path)
    assert "alias" in str(raised.value.problems)


@pytest.mark.parametrize(("name", "content"), [
    ("random.yaml", os.urandom(4096)),
    ("random.xlsx", os.urandom(4096)),
    ("latin1.yaml", "community: {code: TS, name: caf\xe9}".encode("latin-1")),
])
def test_random_bytes_are_refused_with_the_file_named(imported: Flask, tmp_path: Path,
                                                      name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with imported.app_context(), pytest.raises(CommunityFileError) as raised:
        import_file(path)
    assert name in str(raised.value.problems[0][0])


def test_an_overlong_public_name_is_a_problem_with_its_cell(imported: Flask,
                                                           tmp_path: Path) -> None:
    data = factories.small_community()
    data["members"][0]["public_name"] = "李" * 60
    path = tmp_path / "long.xlsx"
    write(path, data)
    with imported.app_context(), pytest.raises(CommunityFileError) as raised:
        import_file(path)
    [(where, message)] = raised.value.problems
    assert str(where) == "long.xlsx, sheet members, row 2, column C (public_name)"
    assert "50" in message


def test_a_control_character_in_a_name_is_a_problem_with_its_cell(imported: Flask,
                                                                  tmp_path: Path) -> None:
    data = factories.small_community()
    data["members"][1]["name"] = "王\x07秀英"
    path = tmp_path / "bell.yaml"
    write(path, data)
    with imported.app_context(), pytest.raises(CommunityFileError) as raised:
        import_file(path)
    [(where, message)] = raised.value.problems
    assert str(where).startswith("bell.yaml, sheet members, row ") and "name" in str(where)
    assert "control character" in message


def test_a_file_over_the_size_limit_is_refused(imported: Flask, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from dispatch.community import files

    monkeypatch.setattr(files, "MAX_FILE_BYTES", 1000)
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * 2000 + "\n")
    with imported.app_context(), pytest.raises(CommunityFileError) as raised:
        import_file(path)
    assert "larger than" in str(raised.value.problems)


def test_roster_edits_in_the_console_keep_the_export_importable(imported: Flask,
                                                                tmp_path: Path) -> None:
    factories.add_staff(imported, "admin", StaffRole.ADMIN)
    imported.config["WTF_CSRF_ENABLED"] = False
    client = imported.test_client()
    factories.login(client)
    for rung in ("building", "building", "-1"):
        client.post("/staff/roster/members/B1/responsibilities",
                    data={"role": "backup", "place": "TS-B2", "rung": rung})
    path = tmp_path / "after-console.xlsx"
    with imported.app_context():
        export_file(path)
        _, changes = import_file(path)
        assert changes.empty, changes.lines()


def test_a_control_character_in_a_name_does_not_break_the_monthly_workbook(
        imported: Flask) -> None:
    factories.add_staff(imported, "admin", StaffRole.ADMIN)
    with imported.app_context():
        filed = file_report(factories.place("TS-B1-U1-E1"), "elevator", now=DECEMBER)
        lifecycle.accept(filed.case.id, factories.member("L1").id, now=DECEMBER)
        factories.member("L1").name = "李\x0b建国"  # as an older console let it be typed
        db.session.commit()
    client = imported.test_client()
    factories.login(client)
    response = client.get("/staff/reports/2026-12.xlsx")
    assert response.status_code == 200
    names = [c.value for row in load_workbook(io.BytesIO(response.data))["案件"].iter_rows()
             for c in row]
    assert "李建国" in names


def test_import_problems_print_file_sheet_row_and_column(imported: Flask,
                                                         tmp_path: Path) -> None:
    data = factories.small_community()
    data["members"][0]["public_name"] = "李" * 60
    path = tmp_path / "roster.xlsx"
    write(path, data)
    result = CliRunner().invoke(imported.cli, ["community", "import", str(path)])
    assert result.exit_code == 1
    assert "roster.xlsx, sheet members, row 2, column C (public_name)" in result.output


@pytest.mark.parametrize("suffix", [".yaml", ".xlsx"])
def test_a_table_over_the_row_limit_is_refused_with_its_sheet(
        imported: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str) -> None:
    from dispatch.community import files

    monkeypatch.setattr(files, "MAX_ROWS", 3)
    path = tmp_path / f"many{suffix}"
    write(path, factories.small_community())
    with imported.app_context(), pytest.raises(CommunityFileError) as raised:
        import_file(path)
    assert any(where.sheet == "places" and "more than 3 rows" in message
               for where, message in raised.value.problems), raised.value.problems
