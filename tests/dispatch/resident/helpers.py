"""Plain helpers for the resident tests: a resident's browser, and a case walked to resolved."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import sqlalchemy as sa
from PIL import Image

from dispatch import clock
from dispatch.case.timeline import EventKind, record
from dispatch.db import db
from dispatch.models import Case, CaseStatus, Member, Report

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no csrf_token on the page"
    return found.group(1)


@dataclass
class Resident:
    """Scans stickers and submits forms the way a browser does, CSRF token included."""

    client: Any
    stickers: dict[str, str]

    def scan(self, place: str = "TS-B1-U1-E1") -> Any:
        return self.client.get(f"/S/{self.stickers[place]}")

    def token(self, place: str = "TS-B1-U1-E1") -> str:
        return csrf_token(self.scan(place).get_data(as_text=True))

    def message(self, place: str = "TS-B1-U1-E1", *, photos: Sequence[tuple[bytes, str]] = (),
                **fields: Any) -> Any:
        data: dict[str, Any] = {"csrf_token": self.token(place), "category": "elevator", **fields}
        data = {k: v for k, v in data.items() if v is not None}
        if photos:
            data["photos"] = [(BytesIO(content), name) for content, name in photos]
        return self.client.post(f"/s/{self.stickers[place]}/message", data=data,
                                content_type="multipart/form-data")

    def me_too(self, case_id: int, place: str = "TS-B1-U1-E1") -> Any:
        return self.client.post(f"/s/{self.stickers[place]}/me-too/{case_id}",
                                data={"csrf_token": self.token(place)})

    def callback(self, token: str, **fields: Any) -> Any:
        # The form token (the HMAC of this browser's form cookie) is the same on every page;
        # the status page only has a form once the case is resolved.
        return self.client.post(f"/c/{token}/callback",
                                data={"csrf_token": self.token(), **fields})


def receipt_token(response: Any) -> str:
    """The case token of the receipt a successful submission redirected to."""
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    found = re.fullmatch(r".*/c/([A-Za-z0-9_-]+)/receipt", response.headers["Location"])
    assert found, response.headers["Location"]
    return found.group(1)


def case_of(token: str) -> Case:
    """The case a resident's status link names: a report's own token, or the case's."""
    report = db.session.scalar(sa.select(Report).where(Report.public_token == token))
    if report is not None:
        return report.case
    case = db.session.scalar(sa.select(Case).where(Case.public_token == token))
    assert case is not None, token
    return case


def walk_to_resolved(case_id: int, member_code: str = "L1") -> Case:
    """Take a case through notified → accepted → on site → resolved, written directly, with
    the resident-facing text kept in `data["public"]` as events written before their words
    were chosen at reading time have it (the pages still show those)."""
    case = db.session.get(Case, case_id)
    member = db.session.scalar(sa.select(Member).where(Member.code == member_code))
    accept(case, member)
    finish(case, member)
    return case


def finish(case: Case, member: Member) -> None:
    """On site, then resolved: the open key is freed for a new case (committed)."""
    now = clock.now()
    case.status, case.on_site_at = CaseStatus.ON_SITE, now
    record(case, EventKind.ON_SITE, f"{member.name} 到场", at=now, member_id=member.id,
           public="已到场")
    case.status, case.resolved_at, case.open_key = CaseStatus.RESOLVED, now, None
    record(case, EventKind.RESOLVED, f"{member.name} 已解决", at=now, member_id=member.id,
           public="已解决", public_en="Resolved")
    db.session.commit()


def accept(case: Case, member: Member) -> None:
    """Notify and accept, as the dispatch engine does (committed)."""
    now = clock.now()
    case.first_notified_at = now
    record(case, EventKind.NOTIFIED, f"短信通知 {member.name} {member.contacts[0].address}",
           at=now, member_id=member.id, public="已通知楼栋党小组")
    record(case, EventKind.SKIPPED, "第一网格无人值班", at=now, rung=2)
    case.status, case.accepted_at, case.accepted_by_id = CaseStatus.ACCEPTED, now, member.id
    case.accepted_rung, case.token = case.rung, case.token + 1
    record(case, EventKind.ACCEPTED, f"{member.name} 接单", at=now, member_id=member.id,
           public=f"{member.display_name}已接单")
    db.session.commit()


def jpeg_with_gps(size: tuple[int, int] = (640, 480)) -> bytes:
    """A JPEG whose EXIF carries a GPS position, a camera model and an orientation."""
    image = Image.new("RGB", size, (200, 60, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (22.0, 48.0, 30.5)
    gps[3] = "E"
    gps[4] = (114.0, 24.0, 12.25)
    out = BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def png_bytes(size: tuple[int, int] = (50, 40), mode: str = "RGBA") -> bytes:
    out = BytesIO()
    Image.new(mode, size, (0, 0, 0, 0) if mode == "RGBA" else 0).save(out, "PNG")
    return out.getvalue()
