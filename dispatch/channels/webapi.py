"""JSON over HTTP for the providers that have no SDK here (WeCom, DingTalk): one call, one answer.

Domain-free on purpose (the standard library only): the provider leaves that use it are built
before they are wired into dispatch, and must stay importable without the database.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

#: Answers larger than this are not a provider's JSON.
MAX_ANSWER = 1 << 20


class Unreachable(Exception):
    """No answer came: `code` is "timeout" or "connection" (the provider may have the message)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code


@dataclass(frozen=True, slots=True)
class Answer:
    """The provider's HTTP status and its JSON body ({} when the body was not JSON)."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


def call(method: str, url: str, payload: dict[str, Any] | None = None, *,
         timeout: float) -> Answer:
    """Send one request and read the JSON answer; HTTP error statuses are answers too."""
    data = None if payload is None else json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Content-Type": "application/json; charset=utf-8", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, _json(response.read(MAX_ANSWER)))
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, _json(error.read(MAX_ANSWER)))
    except TimeoutError as error:
        raise Unreachable("timeout", str(error)) from None
    except OSError as error:  # URLError is one
        reason = getattr(error, "reason", error)
        if isinstance(reason, TimeoutError):
            raise Unreachable("timeout", str(reason)) from None
        raise Unreachable("connection", str(reason)) from None


def _json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}
