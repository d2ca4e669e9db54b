"""Importing, re-importing and exporting community files (YAML and Excel)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from openpyxl import load_workbook

from dispatch.community import (
    CommunityFileError,
    export_file,
    import_data,
    import_file,
    load_demo,
    tables_to_data,
)
from dispatch.community.days import format_days, parse_days
from dispatch.community.export import export_community
from dispatch.community.files import write
from dispatch.db import db
from dispatch.models import Community, Contact, Member, Place, Responsibility, Shift
from tests import factories


def _export(code: str = "DH") -> dict:
    community = db.session.scalar(sa.select(Community).where(Community.code == code))
    return export_community(db.session, community)


def _counts() -> dict[str, int]:
    return {model.__name__: db.session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Community, Place, Member, Contact, Responsibility, Shift)}


@pytest.mark.parametrize("suffix", [".yaml", ".xlsx"])
def test_demo_export_import_export_is_a_fixed_point(any_app: Flask, tmp_path: Path,
                                                    suffix: str) -> None:
    with any_app.app_context():
        load_demo()
        before, counts = _export(), _counts()
        path = tmp_path / f"donghu{suffix}"
        export_file(path)
        _, changes = import_file(path)
        assert changes.empty, changes.lines()
        assert _export() == before
        assert _counts() == counts


def test_demo_is_donghu_sized_and_deterministic(app: Flask) -> None:
    from dispatch.community import demo

    assert demo.generate(7) == demo.generate(7)
    assert demo.generate(7) != demo.generate(8)
    with app.app_context():
        load_demo()
        places = db.session.execute(sa.select(Place.kind, sa.func.count(),
                                              sa.func.sum(Place.households))
                                    .group_by(Place.kind)).all()
        by_kind = {str(kind): (count, households) for kind, count, households in places}
        assert by_kind["grid"][0] == 7
        assert 8000 <= by_kind["building"][1] <= 9500
        assert by_kind["elevator"][0] >= by_kind["unit"][0]
        party = db.session.scalar(sa.select(sa.func.count()).where(Member.is_party_member))
        assert party == 237
        for floors in db.session.scalars(sa.select(Place.floors).where(Place.kind == "building")):
            assert 18 <= floors <= 33


def test_reimporting_an_edited_file_updates_in_place_and_says_what_changed(app: Flask) -> None:
    tables = factories.small_community()
    with app.app_context():
        import_data(tables_to_data(tables, "small"))
        counts = _counts()
        tables["places"][1]["name"] = "1号楼"
        tables["members"][0]["phones"] = ["13900139001"]
        _, changes = import_data(tables_to_data(tables, "small"))
        assert _counts() == counts
        assert changes.updated["places"] == ["TS-B1 (name)"]
        assert changes.added["contacts"] == ["L1 sms …9001"]
        assert changes.removed["contacts"] == ["L1 sms …8001"]
        assert db.session.scalar(sa.select(Place.name).where(Place.code == "TS-B1")) == "1号楼"


def test_a_member_missing_from_the_file_is_deactivated_not_deleted(app: Flask) -> None:
    tables = factories.small_community()
    with app.app_context():
        import_data(tables_to_data(tables, "small"))
        tables["members"] = [m for m in tables["members"] if m["code"] != "X1"]
        tables["responsibilities"] = [r for r in tables["responsibilities"] if r["member"] != "X1"]
        _, changes = import_data(tables_to_data(tables, "small"))
        member = db.session.scalar(sa.select(Member).where(Member.code == "X1"))
        assert member is not None and not member.active
        assert "X1 (deactivated: not in file)" in changes.updated["members"]


def _bad_workbook(tmp_path: Path) -> Path:
    path = tmp_path / "roster.xlsx"
    write(path, factories.small_community())
    workbook = load_workbook(path)
    members = workbook["members"]
    header = [cell.value for cell in members[1]]
    members.cell(row=3, column=header.index("phones") + 1, value="1380013")
    members.cell(row=4, column=header.index("name") + 1).value = None
    members.cell(row=5, column=header.index("code") + 1, value="L1")
    resp = workbook["responsibilities"]
    resp_header = [cell.value for cell in resp[1]]
    resp.cell(row=2, column=resp_header.index("place") + 1, value="TS-B9")
    workbook.save(path)
    return path


def test_a_bad_workbook_names_sheet_row_and_column_and_imports_nothing(
        any_app: Flask, tmp_path: Path) -> None:
    path = _bad_workbook(tmp_path)
    with any_app.app_context():
        with pytest.raises(CommunityFileError) as caught:
            import_file(path)
        assert _counts()["Community"] == 0
    messages = [f"{where}: {message}" for where, message in caught.value.problems]
    assert "roster.xlsx, sheet members, row 3, column H (phones): '1380013' is not a valid " \
           "phone number" in messages
    assert "roster.xlsx, sheet members, row 4, column B (name): is required" in messages
    assert "roster.xlsx, sheet members, row 5, column A (code): duplicate member code 'L1'" \
        in messages
    assert "roster.xlsx, sheet responsibilities, row 2, column B (place): unknown place code " \
           "'TS-B9'" in messages


def test_a_bad_reimport_leaves_the_previous_state_untouched(app: Flask, tmp_path: Path) -> None:
    with app.app_context():
        import_data(tables_to_data(factories.small_community(), "small"))
        before = _export("TS")
        with pytest.raises(CommunityFileError):
            import_file(_bad_workbook(tmp_path))
        assert _export("TS") == before


def test_a_yaml_error_names_the_line_of_the_row(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "community.yaml"
    write(path, factories.small_community())
    text = path.read_text().replace("kind: volunteer", "kind: astronaut")
    path.write_text(text)
    line = next(n for n, t in enumerate(text.splitlines(), start=1) if "astronaut" in t)
    with app.app_context(), pytest.raises(CommunityFileError) as caught:
        import_file(path)
    (where, message), = caught.value.problems
    assert (where.file, where.sheet, where.row, where.column) == ("community.yaml", "members",
                                                                 line, "kind")
    assert message.startswith("'astronaut' is not one of: party_member")


def test_places_must_sit_under_the_right_kind_of_parent(app: Flask) -> None:
    tables = factories.small_community()
    tables["places"].append({"code": "TS-X", "kind": "elevator", "name": "电梯",
                             "parent": "TS-B1"})
    with app.app_context(), pytest.raises(CommunityFileError) as caught:
        import_data(tables_to_data(tables, "small"))
    assert [m for _, m in caught.value.problems] == [
        "a elevator belongs under a unit, not a building"]


def test_the_example_file_in_docs_imports(app: Flask) -> None:
    example = Path(__file__).resolve().parents[3] / "docs" / "example-community.yaml"
    with app.app_context():
        community, _ = import_file(example)
        assert community.code == "EX"
        wang = db.session.scalar(sa.select(Member).where(Member.code == "EX-M2"))
        assert {(str(c.channel), c.address) for c in wang.contacts} == {
            ("wecom", "wangxiuying"), ("sms", "+8613800138002")}
        assert wang.channel_order == ["wecom", "sms"]


def test_the_cli_imports_exports_and_reimports_a_community_file_unchanged(
        any_app: Flask, tmp_path: Path) -> None:
    """`flask community import|export` as the README shows them, on the embedded default
    (SQLite) and on PostgreSQL."""
    example = Path(__file__).resolve().parents[3] / "docs" / "example-community.yaml"
    cli = any_app.test_cli_runner()
    imported = cli.invoke(args=["community", "import", str(example)])
    assert imported.exit_code == 0, imported.output
    assert imported.output.startswith("Imported EX ")
    exported = cli.invoke(args=["community", "export", str(tmp_path / "ex.xlsx")])
    assert exported.exit_code == 0, exported.output
    again = cli.invoke(args=["community", "import", str(tmp_path / "ex.xlsx")])
    assert again.exit_code == 0, again.output
    with any_app.app_context():
        assert import_file(tmp_path / "ex.xlsx")[1].empty


@pytest.mark.parametrize(("text", "days"), [
    ("Mon-Fri", [0, 1, 2, 3, 4]), ("Sat,Sun", [5, 6]), ("daily", list(range(7))),
    ("周一至周五", [0, 1, 2, 3, 4]), ("Fri-Mon", [4, 5, 6, 0]), ("Mon,Wed-Thu", [0, 2, 3]),
])
def test_weekday_ranges_parse_and_format_back(text: str, days: list[int]) -> None:
    assert parse_days(text) == days
    assert parse_days(format_days(days)) == sorted(days)


@pytest.mark.parametrize("text", ["Mon-Funday", "", "8-9"])
def test_unknown_weekdays_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_days(text)
