"""What every request goes through before a view sees it, and what every answer carries.

Linli is reachable by anyone who finds a sticker, so it assumes hostile input (docs/security.md):

- **Size**: a request body is at most `MAX_CONTENT_LENGTH` (three 10 MB photos and the form),
  with at most `MAX_FORM_PARTS` multipart parts; larger ones get a 413 before anything is read.
- **Text**: NUL and the other control characters (all but tab and line breaks) are removed
  from every path segment, query and form value. PostgreSQL refuses NUL in text, spreadsheets
  refuse control characters, and no person types them.
- **Numbers**: `<int:…>` in a route stops at PostgreSQL's `integer`; a larger id is a 404,
  not an out-of-range error. A value the database still refuses (`DataError`) is a 400.
- **Redirects**: `next=` and the like go only to a path on this site (`safe_path`).
- **Headers**: a Content Security Policy without inline scripts, no framing, no sniffing, and
  HSTS when the site is served over https.
- **Cookies**: the staff session cookie is HttpOnly, SameSite=Lax, and Secure behind https.

Flask's own config already holds these names (most as `None`), so a `setdefault` would never
take effect: `init_app` sets each one unless the deployment or the test chose another value.
"""

from __future__ import annotations

import logging
import re
from typing import Any, overload
from urllib.parse import urlsplit

import phonenumbers
import sqlalchemy.exc as sa_exc
from flask import Flask, Request, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.routing import IntegerConverter, Map
from werkzeug.utils import cached_property

from dispatch.db import db

log = logging.getLogger(__name__)

#: The largest value PostgreSQL's `integer` holds: every id column.
MAX_ID = 2**31 - 1

#: Request limits (the reverse proxy should enforce the same or less: docs/security.md).
LIMITS: dict[str, Any] = {
    # Three 10 MB photos and the form's text. Files beyond 500 KB wait on disk, not in memory.
    "MAX_CONTENT_LENGTH": 32 * 1024 * 1024,
    # The largest form has a dozen fields and three photos.
    "MAX_FORM_PARTS": 100,
    "MAX_FORM_MEMORY_SIZE": 500 * 1024,
}

#: Characters no person types: C0 controls except tab, line feed and carriage return, and DEL.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

#: The policy for every page. Styles may be inline (the member pages carry a small <style>
#: so they need one request); scripts come only from /static. `blob:` images and media are
#: what the message form's script shows before sending: the shrunk photos, the voice note.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
       "worker-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"


def clean(text: str) -> str:
    """`text` without the control characters no person types."""
    return CONTROL.sub("", text)


def _clean_multidict(values: MultiDict[str, Any], storage: type) -> Any:
    return storage([(clean(key), clean(value) if isinstance(value, str) else value)
                    for key, value in values.items(multi=True)])


class CleanRequest(Request):
    """A request whose query and form values carry no control characters.

    `raw_form` keeps the form as it was sent: a provider's signature covers those values
    (a genuine SMS may hold a vertical tab), so a webhook checks it against them and then
    reads the clean `form` like every other view.
    """

    @cached_property
    def args(self) -> Any:
        return _clean_multidict(super().args, self.parameter_storage_class)

    @property
    def raw_form(self) -> Any:
        """The form values as sent, control characters and all: for signature checks only."""
        self.form  # noqa: B018 (loads both)
        return self.__dict__["raw_form"]

    def _load_form_data(self) -> None:
        if "raw_form" in self.__dict__:  # loaded and cleaned already
            return
        super()._load_form_data()
        self.__dict__["raw_form"] = self.__dict__["form"]
        self.__dict__["form"] = _clean_multidict(self.__dict__["form"],
                                                 self.parameter_storage_class)


class IdConverter(IntegerConverter):
    """`<int:…>` that matches only what fits an `integer` column."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = MAX_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


@overload
def number(value: object, default: int) -> int: ...
@overload
def number(value: object, default: None = None) -> int | None: ...
def number(value: object, default: int | None = None) -> int | None:
    """A whole number written in ASCII digits that fits an `integer` column, else `default`.

    `int()` also takes "١٢٣", "+5", " 7 " and numbers too large for any column; ids and
    counts typed into a URL or a form must be plain digits.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value if 0 <= value <= MAX_ID else default
    text = str(value) if value is not None else ""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_ID:
        return default
    return int(text)


#: A web address as people type them: with a scheme, starting www., or a dotted name with a
#: path (`evil.example/x`). Full-width dots and slashes count too: phones offer them.
_LINK = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www[.．])\S+"
                   r"|[\w-]+(?:[.．。][\w-]+)*[.．。][a-z][\w-]*[/／]\S*",
                   re.IGNORECASE | re.ASCII)


def without_links(text: str) -> str:
    """`text` with every web address replaced by [链接].

    A resident's words are quoted in the alert a member receives from the service's own
    number; a link in them would look like Linli's and could lead anywhere.
    """
    return _LINK.sub("[链接]", text)


def without_phones(text: str, *, leniency: int = phonenumbers.Leniency.POSSIBLE) -> str:
    """`text` with everything that could be a phone number replaced by [电话].

    Residents write their numbers into complaints and members into their notes; a printed
    monthly report passes through many hands. libphonenumber's matcher at its most lenient
    finds mobiles, landlines with area codes and +86 forms, spaced, dashed or in full-width
    digits; it also takes an ISO date written with its time (2026-03-02 10), which costs the
    report little. A stricter `leniency` (`Leniency.VALID`) keeps dates and ids: the logs.
    """
    found = list(phonenumbers.PhoneNumberMatcher(text, "CN", leniency=leniency))
    for match in reversed(found):
        text = text[:match.start] + "[电话]" + text[match.end:]
    return text


#: Seven digits or more, ASCII or full-width, perhaps spaced or dashed: a log line without
#: such a run holds no phone number, and skips libphonenumber (~0.1 ms a line).
_DIGIT_RUN = re.compile(r"(?:[0-9０-９][\s\-]?){7,}")
#: A 32-digit hexadecimal id (a uuid4's hex): every line an RQ worker logs names the worker by
#: one, and most such names hold a run of seven digits. An id is not a phone number.
_HEX_ID = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{32}(?![0-9A-Za-z])")


def _masked(text: str) -> str:
    """`text` with every valid phone number replaced by [电话]. Only valid numbers: at the
    lenient level dates, ids and provider ids in log lines would go too."""
    if not _DIGIT_RUN.search(text) or not _DIGIT_RUN.search(_HEX_ID.sub("#", text)):
        return text
    return without_phones(text, leniency=phonenumbers.Leniency.VALID)


def mask_phones_in_logs() -> None:
    """Mask phone numbers in every log record this process makes, whoever makes it.

    Members' addresses are logged by their last four digits (the channels do so), but the
    words of a message are the resident's, and residents type their numbers into them: the
    console channel logs what it "sends", and an error may quote a statement's parameters.
    Masking where each record is made covers every logger and handler (the worker's, the web
    server's, a test's), and the traceback an error carries. Idempotent: the app is built more
    than once in a process (tests, `flask` commands).
    """
    make = logging.getLogRecordFactory()
    if getattr(make, "masks_phones", False):
        return

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a call with the wrong arguments: logging reports it when emitting
            return record
        if (masked := _masked(message)) != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _masked(logging.Formatter().formatException(record.exc_info))
        return record

    masked_record.masks_phones = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)


def safe_path(target: str | None, default: str = "/") -> str:
    """`target` if it is a path on this site, else `default`.

    Browsers drop tabs and line breaks from URLs and read a backslash as a slash, so
    `/\\t/evil.example` would leave the site: anything but a plain local path is refused.
    """
    if not target or CONTROL.search(target) or any(c in target for c in "\t\r\n\\"):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    return target


def clean_view_args(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """Path segments without control characters (a NUL in a sticker code is just unknown)."""
    if values:
        for key, value in values.items():
            if isinstance(value, str):
                values[key] = clean(value)


def refused_data(error: sa_exc.DataError) -> tuple[str, int, dict[str, str]]:
    """The database refused a value (out of range, malformed): the request was wrong, say so."""
    log.warning("refused input for %s %s: %s", request.method, request.path,
                (str(error.orig).splitlines() or ["?"])[0])
    db.session.rollback()
    return ("输入的内容无法处理，请检查后再试。The input could not be processed.\n", 400,
            {"Content-Type": "text/plain; charset=utf-8"})


#: The security headers every answer carries, HTTPS or not (a view may set stricter ones).
FIXED_HEADERS = (("Content-Security-Policy", CSP), ("X-Frame-Options", "DENY"),
                 ("X-Content-Type-Options", "nosniff"))


def headers(response: Response) -> Response:
    """The security headers every answer carries (a view may set stricter ones)."""
    for name, value in FIXED_HEADERS:
        response.headers.setdefault(name, value)
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    return response


def _set_unless_chosen(app: Flask, name: str, value: Any) -> None:
    """Set `name` unless the deployment or a test chose a value other than Flask's default."""
    if app.config.get(name) == app.default_config.get(name):
        app.config[name] = value


def prepare(app: Flask) -> None:
    """What must be in place before any route is added: the request class and `<int:…>`."""
    app.request_class = CleanRequest
    app.url_map.converters["int"] = IdConverter


def init_app(app: Flask) -> None:
    """Limits, cookie flags, clean input, refused data as 400, and the headers."""
    for name, value in LIMITS.items():
        _set_unless_chosen(app, name, value)
    https = str(app.config.get("PUBLIC_BASE_URL", "")).startswith("https://")
    _set_unless_chosen(app, "SESSION_COOKIE_HTTPONLY", True)
    _set_unless_chosen(app, "SESSION_COOKIE_SAMESITE", "Lax")
    _set_unless_chosen(app, "SESSION_COOKIE_SECURE", https)
    app.url_value_preprocessor(clean_view_args)
    app.register_error_handler(sa_exc.DataError, refused_data)
    app.after_request(headers)
