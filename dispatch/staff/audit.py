"""The audit log: every staff action, who did it and when."""

from __future__ import annotations

from flask import g

from dispatch.db import db
from dispatch.models import AuditLog


def log(action: str, target: str | None = None, **data: object) -> AuditLog:
    """Record a staff action in the caller's transaction (committed with the change itself)."""
    staff = g.get("staff")
    entry = AuditLog(staff_id=staff.id if staff else None, action=action, target=target,
                     data=data)
    db.session.add(entry)
    return entry
