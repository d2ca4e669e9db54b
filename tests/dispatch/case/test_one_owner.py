"""A case's status and milestones are written in one place: `dispatch/case/lifecycle.py`.

Two checks: every test of the suite runs with a guard that refuses a write of a case's state
from any other module of `dispatch/` (`tests/case_writes.py`), and the source is read for
writes the tests might not reach: assignments to those attributes and bulk UPDATEs of cases.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from dispatch.case.report import file_report
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Place
from tests import case_writes

ROOT = Path(__file__).resolve().parents[3]
#: Attributes only a case has; `status` and `token` other rows have too, so they count when
#: written on something called like a case.
CASE_ONLY = set(case_writes.GUARDED) - {"status", "token", "category", "urgency"}
CASE_NAMES = {"case", "locked", "duplicate", "into", "other", "follow", "found"}


def writes_outside_the_lifecycle() -> list[str]:
    found = []
    for path in sorted((ROOT / "dispatch").rglob("*.py")):
        if path == case_writes.OWNER:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            for target in targets:
                for item in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if isinstance(item, ast.Attribute) and (
                            item.attr in CASE_ONLY or (
                                item.attr in case_writes.GUARDED
                                and isinstance(item.value, ast.Name)
                                and item.value.id in CASE_NAMES)):
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{item.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in ("update", "insert") and node.args \
                    and isinstance(node.args[0], ast.Name) and node.args[0].id == "Case":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}(Case)")
    return found


def test_no_module_but_the_lifecycle_writes_a_case_state() -> None:
    assert writes_outside_the_lifecycle() == []


def test_the_guard_is_on_for_every_test() -> None:
    assert sa.event.contains(Case.status, "set", case_writes._listener("status"))
    assert sa.event.contains(Case.accepted_at, "set", case_writes._listener("accepted_at"))


def test_a_write_from_elsewhere_in_dispatch_is_refused(app: Flask, community: int) -> None:
    """The guard itself: a status set by code of `dispatch/outbox/` fails, from the lifecycle
    it passes."""
    with app.app_context():
        place = db.session.scalar(sa.select(Place).where(Place.code == "TS-B1-U1-E1"))
        case = file_report(place, "elevator", text="停了").case
        elsewhere = compile("case.status = CaseStatus.CLOSED", str(
            ROOT / "dispatch" / "outbox" / "delivery.py"), "exec")
        with pytest.raises(case_writes.WrittenElsewhere, match=r"dispatch/outbox/delivery\.py"):
            exec(elsewhere, {"case": case, "CaseStatus": CaseStatus})
        owner = compile("case.status = CaseStatus.CLOSED", str(case_writes.OWNER), "exec")
        exec(owner, {"case": case, "CaseStatus": CaseStatus})
        assert case.status == CaseStatus.CLOSED
        db.session.rollback()
