"""Rate limits on the resident pages: per client address, per sticker, per call-back phone.

Counts live in Redis when `REDIS_URL` is set (every web worker sees the same counts) and in
memory otherwise. Each limit reads its rate from the app config, so a deployment can tune
them and tests can make them tiny. Chosen so that a resident never meets them by accident:
mobile carriers put many phones behind one address, so the per-address limits are loose and
the tight ones sit on what an abuser cannot rotate cheaply (the sticker, the phone number).

- `RESIDENT_LIMIT_PAGES`: any resident page, per address.
- `RESIDENT_LIMIT_MISSES`: unknown or unusable codes and status links, per address. Only
  misses count, but once spent every resident page answers 429 for the window (except a
  kept sticker page, below), so guessing codes teaches nothing.
- `RESIDENT_LIMIT_REPORTS_IP`: message and 我也遇到了 submissions (valid or not), per address.
- `RESIDENT_LIMIT_REPORTS_STICKER`: filed reports, per sticker.
- `RESIDENT_LIMIT_REPORTS_PHONE`: filed reports, per call-back phone.
- `RESIDENT_LIMIT_CALLS_IP` and `RESIDENT_LIMIT_CALLS_STICKER`: recorded taps on the call
  button. Exceeding them never stops a call: the 429 page shows the hotline as a link.
- `RESIDENT_LIMIT_CALLBACKS_IP`: 回访 answers, per address.
- `RESIDENT_LIMIT_LOOKUPS_IP`: looking a case up by its number and call-back phone, per
  address (a wrong guess also counts as a miss, above).

A sticker page kept in memory (`dispatch.resident.pages`: someone scanned that sticker in
the last few seconds) is served before any of these are checked. Counting it would cost a
Redis round trip, more than serving it; and a guesser reaches one only by guessing a code
right, which is what the codes' 60 random bits make hopeless, kept or not. Floods of any page
from one address are the reverse proxy's to stop (docs/deploy.md).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from dispatch.resident import phones
from qr import codes

DEFAULT_LIMITS = {
    "RESIDENT_LIMIT_PAGES": "120 per minute",
    "RESIDENT_LIMIT_MISSES": "10 per minute;30 per hour",
    "RESIDENT_LIMIT_REPORTS_IP": "20 per hour;60 per day",
    # A broken lift at rush hour is hundreds of genuine reports on one sticker; they all join
    # one case and members are paced per phone, so this only stops a scripted flood.
    "RESIDENT_LIMIT_REPORTS_STICKER": "600 per hour",
    "RESIDENT_LIMIT_REPORTS_PHONE": "5 per hour;10 per day",
    "RESIDENT_LIMIT_CALLS_IP": "10 per minute;60 per day",
    "RESIDENT_LIMIT_CALLS_STICKER": "60 per hour",
    "RESIDENT_LIMIT_CALLBACKS_IP": "10 per hour",
    "RESIDENT_LIMIT_LOOKUPS_IP": "10 per hour;30 per day",
}

limiter = Limiter(get_remote_address)


def configured(name: str) -> Callable[[], str]:
    """The rate named `name` in the app config, looked up per request."""
    return lambda: str(current_app.config[name])


def sticker_key() -> str:
    """The sticker a request is about, in canonical form however it was typed."""
    seen = str((request.view_args or {}).get("code", ""))
    return codes.normalise(seen) or seen.upper()[:64]


def phone_key() -> str:
    """The call-back phone in a submitted form, in E.164 when it is valid."""
    raw = request.form.get("phone", "")
    return phones.try_normalise(raw) or "".join(ch for ch in raw if ch.isdigit())[:20]


def without_phone() -> bool:
    """No call-back phone to count: none given, or one without a digit (the form refuses it)."""
    return not phone_key()


def filed(response: Response) -> bool:
    """A report was filed: the submission redirected to its receipt."""
    return response.status_code == 303


def missed(response: Response) -> bool:
    """The code or link named nothing usable."""
    return response.status_code == 404


pages = limiter.shared_limit(configured("RESIDENT_LIMIT_PAGES"), scope="resident-pages")
misses = limiter.shared_limit(configured("RESIDENT_LIMIT_MISSES"), scope="resident-misses",
                              deduct_when=missed)
reports_ip = limiter.shared_limit(configured("RESIDENT_LIMIT_REPORTS_IP"),
                                  scope="resident-reports")
reports_sticker = limiter.shared_limit(configured("RESIDENT_LIMIT_REPORTS_STICKER"),
                                       scope="resident-reports-sticker", key_func=sticker_key,
                                       deduct_when=filed)
reports_phone = limiter.shared_limit(configured("RESIDENT_LIMIT_REPORTS_PHONE"),
                                     scope="resident-reports-phone", key_func=phone_key,
                                     exempt_when=without_phone, deduct_when=filed)
calls_ip = limiter.shared_limit(configured("RESIDENT_LIMIT_CALLS_IP"), scope="resident-calls")
calls_sticker = limiter.shared_limit(configured("RESIDENT_LIMIT_CALLS_STICKER"),
                                     scope="resident-calls-sticker", key_func=sticker_key)
callbacks_ip = limiter.shared_limit(configured("RESIDENT_LIMIT_CALLBACKS_IP"),
                                    scope="resident-callbacks")
lookups_ip = limiter.shared_limit(configured("RESIDENT_LIMIT_LOOKUPS_IP"),
                                  scope="resident-lookups")


def init_app(app: Flask) -> None:
    """Configure the limiter: Redis storage when REDIS_URL is set, memory otherwise."""
    for name, rate in DEFAULT_LIMITS.items():
        app.config.setdefault(name, rate)
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config.get("REDIS_URL") or "memory://")
    app.config.setdefault("RATELIMIT_KEY_PREFIX", "linli-limits")
    # A Redis outage must not take the resident pages down with it.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    limiter.init_app(app)
    # Every Linli limit is a decorator, which checks its limits itself. The extension's own
    # before-request check is for default, application and meta limits, which Linli has none
    # of; it would walk its empty lists on every request of every page, at a sixth of the
    # cost of serving a kept sticker page (docs/benchmarks.md).
    hooks = app.before_request_funcs.get(None, [])
    if limiter._check_request_limit in hooks:  # not there when RATELIMIT_ENABLED is off
        hooks.remove(limiter._check_request_limit)
