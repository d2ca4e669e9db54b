"""Every route, every method, anonymous and as each staff role, fed hostile input: never a 5xx.

For each rule in `app.url_map` the fuzzer builds its path twice — once with real values (a
sticker, a case, a member link, so the input reaches the code behind the route) and once with
hostile ones — and sends every form and query field the code reads, each set to the same
hostile value: NUL and other control characters, huge and negative integers, year 1, overlong
text, non-UTF-8 bytes, formulas, non-ASCII digits. Provider webhooks are signed as the
provider signs them, so their bodies are reached too. The values are a fixed list, not random,
so a failure names the request that caused it and a rerun repeats it.

Afterwards a resident's ordinary scan and report must still work and be written (a poisoned
batch must not block the scan log), on PostgreSQL, as in production.
"""

from __future__ import annotations

import itertools
import re
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from flask import Flask, got_request_exception
from twilio.request_validator import RequestValidator
from werkzeug.routing import Rule
from werkzeug.security import generate_password_hash

from dispatch import links
from dispatch.db import db
from dispatch.models import Case, Community, Report, Scan, StaffRole
from dispatch.resident import scans
from dispatch.staff import auth
from tests import factories
from tests.conftest import pg_config
from tests.dispatch.resident.conftest import issue_stickers
from tests.dispatch.resident.helpers import Resident, receipt_token

ROOT = Path(__file__).resolve().parent.parent
AUTH_TOKEN = "fuzz-auth-token-0123456789abcdef"
ALIYUN_TOKEN = "fuzz-aliyun-token"

#: What an attacker types. Path segments get them percent-encoded; `%FF` is not UTF-8.
HOSTILE = [
    "\x00", "ABCDEFGHJK\x00M", "9" * 40, "-1", "0001-01", "0001-01-01 00:00", "9999-99-99",
    "你好", "١٢٣", "=cmd|' /C calc'!A0", "x" * 5000, "\r\nSet-Cookie: a=b", "../../etc/passwd",
    "<script>alert(1)</script>", "1e999", "nan", "", "\x1b[31m\x07",
]
RAW_PATH_BYTES = ["%FF%FE", "%C0%AF", "%00"]


def field_names() -> list[str]:
    """Every form and query field the code or its templates name."""
    names: set[str] = set()
    for path in (ROOT / "dispatch").rglob("*.py"):
        text = path.read_text()
        names.update(re.findall(r'request\.(?:form|args|values)\.(?:get|getlist)\(\s*"(\w+)"',
                                text))
        names.update(re.findall(r"^\s+(\w+) = \w+Field\(", text, re.MULTILINE))
    for path in (ROOT / "templates").rglob("*.html"):
        names.update(re.findall(r'name="(\w+)"', path.read_text()))
    return sorted(names - {"csrf_token", "viewport", "robots", "referrer"})


@pytest.fixture
def fuzz_app(pg_schema: str) -> Any:
    from tests.conftest import _dispose, _truncate_all

    app_ = _app(pg_schema)
    _truncate_all(app_)
    yield app_
    _dispose(app_)


def _app(schema: str) -> Flask:
    from app import create_app
    from dispatch import jobs

    app_ = create_app(pg_config(
        # A server error answers 500 (recorded below) instead of raising into the test.
        schema, PROPAGATE_EXCEPTIONS=False, WTF_CSRF_ENABLED=False,
        TWILIO_ACCOUNT_SID="AC" + "0" * 31 + "1",
        TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_VOICE_NUMBER="+15005550007",
        TWILIO_API_BASE_URL="http://127.0.0.1:9", ALIYUN_REPORT_TOKEN=ALIYUN_TOKEN))
    jobs.set_worker_app(app_)
    return app_


def _real_values(app: Flask, stickers: dict[str, str]) -> dict[str, Any]:
    """Values that name real things, so hostile fields reach the code behind each route."""
    resident = Resident(app.test_client(), stickers)
    token = receipt_token(resident.message(text="电梯坏了"))
    with app.app_context():
        case = db.session.scalar(sa.select(Case).where(Case.public_token == token))
        member = factories.member("L1")
        member_link = links.sign(links.Purpose.MEMBER, member.id)
        case_link = links.sign(links.Purpose.CASE, member.id, case.id)
        return {"sticker": stickers["TS-B1-U1-E1"], "case_token": token, "case_id": case.id,
                "member_link": member_link, "case_link": case_link,
                "accept_link": links.sign(links.Purpose.ACCEPT, member.id, case.id)}


def _real_path(rule: Rule, real: dict[str, Any]) -> str:
    values: dict[str, Any] = {}
    for name in rule.arguments:
        if name == "code":
            values[name] = ("L1" if rule.rule.startswith("/staff/roster")
                            else "TS-B1" if rule.rule.startswith("/staff/stickers/<")
                            else real["sticker"])
        elif name == "token":
            values[name] = (real["case_token"] if rule.rule.startswith("/c/")
                            else real["case_link"] if "case" in rule.rule
                            or rule.rule.startswith("/m/<") else real["member_link"])
        elif name == "purpose":
            values[name] = "case"
        else:
            values[name] = {"lang": "en", "month": "2026-12", "table": "cases",
                            "action": "ok" if "contacts" in rule.rule else "reissue",
                            "filename": "resident.css"}.get(name, real["case_id"])
    return _build(rule, {k: quote(str(v), safe="") for k, v in values.items()})


def _hostile_path(rule: Rule, raw: str) -> str:
    return _build(rule, {name: raw for name in rule.arguments})


def _build(rule: Rule, values: dict[str, str]) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule.rule)


def _send(client: Any, app: Flask, method: str, path: str, value: str,
          fields: list[str]) -> Any:
    form = {name: value for name in fields}
    query = "&".join(f"{name}={quote(value, safe='')}" for name in fields[:40])
    full = f"{path}?{query}"
    headers = {}
    if path.startswith("/webhooks/twilio"):
        # Signed as Twilio signs: the URL Twilio called, with the POSTed fields.
        headers["X-Twilio-Signature"] = RequestValidator(AUTH_TOKEN).compute_signature(
            app.config["PUBLIC_BASE_URL"] + full, form if method == "POST" else {})
    if path.startswith("/webhooks/aliyun"):
        full = f"{path}?token={quote(value, safe='')}"
    if method == "GET":
        return client.get(full, headers=headers)
    return client.open(full, method=method, data=form, headers=headers)


def _send_raw(client: Any, method: str, path: str, fields: list[str]) -> Any:
    """Every field as bytes that are not UTF-8, in the query and in a urlencoded body."""
    raw = "&".join(f"{name}=%FF%FE%C0%AF" for name in fields[:40])
    return client.open(f"{path}?{raw}", method=method, data=raw.encode(),
                       content_type="application/x-www-form-urlencoded")


def _identities(app: Flask, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(auth, "generate_password_hash",
                        lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))
    clients = {"anonymous": app.test_client()}
    for username, role, grid in (("admin", StaffRole.ADMIN, None),
                                 ("viewer", StaffRole.VIEWER, None),
                                 ("sec1", StaffRole.GRID_SECRETARY, "TS-G1")):
        factories.add_staff(app, username, role, grid)
        clients[username] = app.test_client()
        assert factories.login(clients[username], username).status_code == 302
    return clients


@pytest.mark.postgres
def test_every_route_answers_hostile_input_without_a_server_error_on_postgresql(
        fuzz_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    app = fuzz_app
    with app.app_context():
        factories.import_community(factories.dispatch_community())
        community_id = db.session.scalar(sa.select(Community.id))
    stickers = issue_stickers(app, community_id)
    real = _real_values(app, stickers)
    clients = _identities(app, monkeypatch)
    fields = field_names()
    failures: list[str] = []
    raised: list[str] = []

    def remember(sender: Flask, exception: BaseException, **extra: Any) -> None:
        frame = traceback.extract_tb(exception.__traceback__)[-1]
        raised.append(f"{type(exception).__name__}: {str(exception)[:80]!r} at "
                      f"{Path(frame.filename).name}:{frame.lineno}")

    got_request_exception.connect(remember, app)
    rules = sorted(app.url_map.iter_rules(), key=lambda r: r.rule)
    for rule, (who, client) in itertools.product(rules, clients.items()):
        if rule.endpoint == "auth.logout":
            continue  # logging the fuzzer's own sessions out would test nothing further
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths = [_real_path(rule, real)]
            if rule.arguments:
                paths += [_hostile_path(rule, quote(v, safe="")) for v in HOSTILE[:12]]
                paths += [_hostile_path(rule, raw) for raw in RAW_PATH_BYTES]
            response = _send_raw(client, method, paths[0], fields)
            response.close()
            if response.status_code >= 500:
                failures.append(f"{who} {method} {paths[0][:100]} value=non-UTF-8 → "
                                f"{response.status_code} {raised[-1] if raised else ''}")
            for index, path in enumerate(paths):
                values = HOSTILE if index == 0 else [HOSTILE[index % len(HOSTILE)]]
                for value in values:
                    response = _send(client, app, method, path, value, fields)
                    response.close()
                    if response.status_code >= 500:
                        failures.append(f"{who} {method} {path[:100]} value={value[:20]!r}"
                                        f" → {response.status_code} "
                                        f"{raised[-1] if raised else ''}")
    distinct = {f.split(" → ")[1] + " ← " + f.split(" value=")[0]: f for f in failures}
    assert not failures, (f"{len(failures)} server errors, {len(distinct)} distinct:\n"
                          + "\n".join(sorted(distinct.values())[:80]))

    # Nothing the fuzzer sent may stop a resident's ordinary visit from being counted.
    ordinary = Resident(app.test_client(), stickers)
    ordinary.client.environ_base["REMOTE_ADDR"] = "10.9.8.7"
    assert ordinary.scan().status_code == 200
    token = receipt_token(ordinary.message(text="电梯又停了"))
    scans.flush(app)
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Scan).where(
            Scan.code_seen == stickers["TS-B1-U1-E1"])) >= 1
        case = db.session.scalar(sa.select(Case).where(Case.public_token == token))
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Report).where(
            Report.case_id == case.id)) >= 1
