"""A guard on a case's state: every write of its status or milestones comes from the lifecycle.

Installed for the whole test session (`tests/conftest.py`): SQLAlchemy reports every set of
the guarded attributes, and the guard looks at who set it. The first frame of the project's
own code must be `dispatch/case/lifecycle.py` (or a test, which may build any state it needs);
anything else under `dispatch/` raises `WrittenElsewhere` in the writer's face.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dispatch.models import Case

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "dispatch" / "case" / "lifecycle.py"
#: Status, outcome and milestones: the lifecycle's. The ladder moves `rung`, `step` and
#: `next_step_at` (`dispatch.ladder.step`), under the lifecycle's lock and token.
GUARDED = ("status", "resolution", "category", "urgency", "open_key", "token", "report_count",
           "accepted_by", "accepted_by_id", "accepted_rung", "closed_rung", "merged_into_id",
           "referral_due_at", "first_notified_at", "first_delivered_at", "accepted_at",
           "on_site_at", "resolved_at", "closed_at", "stuck_at", "referred_at", "callback_at",
           "reopen_count", "dispatched_at", "dispatched_to_id", "dispatched_by_id", "policy")
PROJECT = (ROOT / "dispatch", ROOT / "qr", ROOT / "app.py")


class WrittenElsewhere(AssertionError):
    """A case's state was written outside `dispatch/case/lifecycle.py`."""


def writer() -> Path | None:
    """The file of the project's code that made the current set, skipping SQLAlchemy's."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / ".venv") \
                and path != Path(__file__):
            return path
        frame = frame.f_back  # type: ignore[assignment]
    return None


def check(attribute: str) -> None:
    path = writer()
    if path is None or path == OWNER:
        return
    if any(path == part or path.is_relative_to(part) for part in PROJECT):
        raise WrittenElsewhere(f"Case.{attribute} written in {path.relative_to(ROOT)}, "
                               f"not through dispatch/case/lifecycle.py")


def install() -> None:
    for name in GUARDED:
        attribute = getattr(Case, name)
        if not sa.event.contains(attribute, "set", _listener(name)):
            sa.event.listen(attribute, "set", _listener(name))


_LISTENERS: dict[str, Any] = {}


def _listener(name: str) -> Any:
    if name not in _LISTENERS:
        def on_set(target: Case, value: Any, old: Any, initiator: Any) -> None:
            session = sa.orm.object_session(target)
            if session is not None and session._flushing:
                return  # a flush copying a relationship's key into its column: no decision
            check(name)
        _LISTENERS[name] = on_set
    return _LISTENERS[name]
