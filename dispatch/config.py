"""Settings read from the environment, checked once when the app starts.

A setting that is missing or malformed stops the service at start with a message that names it,
rather than failing later inside a request or a job.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse_many

from dispatch import clock

SMS_BACKENDS = ("console", "twilio", "aliyun")
TWILIO_API_BASE_URL = "https://api.twilio.com"
ALIYUN_SMS_ENDPOINT = "dysmsapi.aliyuncs.com"
WECOM_API_BASE_URL = "https://qyapi.weixin.qq.com"
DINGTALK_API_BASE_URL = "https://oapi.dingtalk.com"
ALIYUN_VOICE_API_BASE_URL = "https://dyvmsapi.aliyuncs.com"
WECOM = ("WECOM_CORP_ID", "WECOM_AGENT_ID", "WECOM_SECRET", "WECOM_TOKEN", "WECOM_AES_KEY")
ALIYUN_VOICE = ("ALIYUN_VOICE_SHOW_NUMBER", "ALIYUN_VOICE_TTS_CODE")
ALIYUN_VOICE_IVR = ("ALIYUN_VOICE_IVR_CODE", "ALIYUN_VOICE_IVR_REPLY_CODE")


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def load_settings(environ: Mapping[str, str], instance_path: str) -> dict[str, object]:
    """Build the Flask config from environment variables (see the README table)."""
    settings: dict[str, object] = {
        "SQLALCHEMY_DATABASE_URI": _database_url(environ, instance_path),
        "REDIS_URL": _redis_url(environ),
        "PUBLIC_BASE_URL": _public_base_url(environ),
        "STICKERS_ALLOW_INSECURE_URL": _flag(environ, "STICKERS_ALLOW_INSECURE_URL"),
        "SECRET_KEY": _secret_key(environ, instance_path),
        "SMS_BACKEND": _choice(environ, "SMS_BACKEND", SMS_BACKENDS, "console"),
        "TIME_ZONE": _time_zone(environ),
        "SWEEP_SECONDS": _positive_float(environ, "SWEEP_SECONDS", 5.0),
        "TRUSTED_PROXIES": _proxies(environ),
    }
    settings.update(_channel_settings(environ, str(settings["SMS_BACKEND"])))
    settings.update(_tunables(environ))
    return settings


def _flag(environ: Mapping[str, str], name: str) -> bool:
    """A yes/no setting: 1/true/yes or 0/false/no (unset: no)."""
    raw = environ.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no"):
        return False
    if raw in ("1", "true", "yes"):
        return True
    raise ConfigError(f"{name}: expected 1 or 0, got {raw!r}")


def _rate(name: str, raw: str) -> str:
    """A rate limit in Flask-Limiter's notation ("10 per minute;30 per hour")."""
    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected rates such as '10 per minute;30 per hour', "
                          f"got {raw!r}") from None
    return raw.strip()


def _number(kind: type[int] | type[float], low: float, high: float | None = None
            ) -> Callable[[str, str], float]:
    """A reader for a number of `kind` in [low, high]."""
    def read(name: str, raw: str) -> float:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}: expected {'a whole number' if kind is int else 'a number'}"
                              f", got {raw!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
            raise ConfigError(f"{name}: must be {bound}, got {raw!r}")
        return value
    return read


def _text(name: str, raw: str) -> str:
    if not raw.strip():
        raise ConfigError(f"{name}: must not be empty")
    return raw.strip()


#: A host name as a push service's endpoints carry it, or `.domain` for its subdomains.
_HOST = re.compile(r"\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _hosts(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated host names; a leading dot allows the subdomains (PUSH_SERVICE_HOSTS)."""
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    bad = [h for h in hosts if not _HOST.fullmatch(h)]
    if not hosts or bad:
        raise ConfigError(f"{name}: expected host names separated by commas, such as "
                          f"'fcm.googleapis.com,.push.apple.com', got {raw!r}")
    return hosts


#: Tuning settings, read from the environment only when set: a variable left unset keeps the
#: default of the module that owns it (the README's configuration table lists both).
TUNABLES: dict[str, Callable[[str, str], object]] = {
    **{name: _rate for name in (
        "RESIDENT_LIMIT_PAGES", "RESIDENT_LIMIT_MISSES", "RESIDENT_LIMIT_REPORTS_IP",
        "RESIDENT_LIMIT_REPORTS_STICKER", "RESIDENT_LIMIT_REPORTS_PHONE",
        "RESIDENT_LIMIT_CALLS_IP", "RESIDENT_LIMIT_CALLS_STICKER", "RESIDENT_LIMIT_CALLBACKS_IP",
        "RESIDENT_LIMIT_LOOKUPS_IP")},
    "RESIDENT_FALLBACK_HOTLINE": _text,
    "RESIDENT_POLL_SECONDS": _number(int, 1),
    "RESIDENT_PAGE_CACHE_SECONDS": _number(float, 0),
    "SCAN_FLUSH_SECONDS": _number(float, 0.01),
    "MAX_CONTENT_LENGTH": _number(int, 1024),
    "STAFF_SESSION_HOURS": _number(float, 0.01),
    "THROTTLE_GAP_SECONDS": _number(float, 0),
    "THROTTLE_ALERTS": _number(int, 1),
    "THROTTLE_ALERT_WINDOW_SECONDS": _number(float, 1),
    # Twilio accepts a validity period of 1 to 36,000 seconds.
    "SMS_VALIDITY_SECONDS": _number(int, 1, 36000),
    "TWILIO_TIMEOUT": _number(float, 0.1),
    "PUSH_TIMEOUT": _number(float, 0.1),
    "STAFF_LIMIT_LOGIN_USER": _rate,
    "STAFF_LIMIT_LOGIN_IP": _rate,
    "PUSH_SERVICE_HOSTS": _hosts,
}


def _tunables(environ: Mapping[str, str]) -> dict[str, object]:
    return {name: read(name, environ[name]) for name, read in TUNABLES.items()
            if name in environ}


def _channel_settings(environ: Mapping[str, str], sms_backend: str) -> dict[str, object]:
    """Provider credentials: required for the backends chosen, checked here, not at first send.

    Twilio is needed by `SMS_BACKEND=twilio` and by the voice number; Web Push is on when its
    VAPID keys are given; Alibaba Cloud SMS by `SMS_BACKEND=aliyun`.
    """
    def get(name: str) -> str | None:
        return environ.get(name, "").strip() or None

    settings: dict[str, object] = {name: get(name) for name in (
        "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_MESSAGING_SERVICE_SID",
        "TWILIO_VOICE_NUMBER", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY", "VAPID_SUBJECT",
        "ALIYUN_ACCESS_KEY_ID", "ALIYUN_ACCESS_KEY_SECRET", "ALIYUN_SMS_SIGN_NAME",
        "ALIYUN_SMS_TEMPLATE_CODE", "ALIYUN_REPORT_TOKEN", *WECOM, *ALIYUN_VOICE,
        *ALIYUN_VOICE_IVR)}
    for name, default in (("WECOM_API_BASE_URL", WECOM_API_BASE_URL),
                          ("DINGTALK_API_BASE_URL", DINGTALK_API_BASE_URL),
                          ("ALIYUN_VOICE_API_BASE_URL", ALIYUN_VOICE_API_BASE_URL)):
        settings[name] = _base_url(environ, name, default)
    settings["TWILIO_API_BASE_URL"] = _base_url(environ, "TWILIO_API_BASE_URL",
                                                TWILIO_API_BASE_URL)
    settings["ALIYUN_SMS_ENDPOINT"] = get("ALIYUN_SMS_ENDPOINT") or ALIYUN_SMS_ENDPOINT
    if sms_backend == "twilio" or settings["TWILIO_VOICE_NUMBER"]:
        why = "SMS_BACKEND=twilio" if sms_backend == "twilio" else "TWILIO_VOICE_NUMBER"
        _require(settings, why, "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")
    if sms_backend == "twilio" and not (settings["TWILIO_FROM"]
                                        or settings["TWILIO_MESSAGING_SERVICE_SID"]):
        raise ConfigError("TWILIO_FROM: SMS_BACKEND=twilio needs TWILIO_FROM (the sending "
                          "number) or TWILIO_MESSAGING_SERVICE_SID")
    if any(settings[n] for n in ("VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY", "VAPID_SUBJECT")):
        _require(settings, "Web Push", "VAPID_PRIVATE_KEY", "VAPID_PUBLIC_KEY", "VAPID_SUBJECT")
        if not str(settings["VAPID_SUBJECT"]).startswith(("mailto:", "https://")):
            raise ConfigError("VAPID_SUBJECT: expected mailto:someone@example.cn or an https URL")
    if sms_backend == "aliyun":
        _require(settings, "SMS_BACKEND=aliyun", "ALIYUN_ACCESS_KEY_ID",
                 "ALIYUN_ACCESS_KEY_SECRET", "ALIYUN_SMS_SIGN_NAME", "ALIYUN_SMS_TEMPLATE_CODE")
    settings.update(_wecom(settings))
    _aliyun_voice(settings)
    return settings


def _wecom(settings: Mapping[str, object]) -> dict[str, object]:
    """The WeCom application: all five settings or none; the agent id is a number and the
    EncodingAESKey WeCom's 43 characters."""
    if not any(settings[name] for name in WECOM):
        return {}
    _require(settings, "WeCom", *WECOM)
    agent = str(settings["WECOM_AGENT_ID"])
    if not agent.isdigit():
        raise ConfigError(f"WECOM_AGENT_ID: expected the application's number, got {agent!r}")
    key = str(settings["WECOM_AES_KEY"])
    if len(key) != 43 or not key.isalnum() or not key.isascii():
        raise ConfigError("WECOM_AES_KEY: expected the 43 letters and digits of the "
                          "EncodingAESKey from the application's callback settings")
    return {"WECOM_AGENT_ID": int(agent)}


def _aliyun_voice(settings: Mapping[str, object]) -> None:
    """Alibaba Cloud voice: the show number and the alert template together, with the account's
    keys; the two IVR templates together, and only beside them."""
    if any(settings[name] for name in ALIYUN_VOICE_IVR):
        _require(settings, "Alibaba Cloud IVR calls", *ALIYUN_VOICE_IVR, *ALIYUN_VOICE)
    if any(settings[name] for name in ALIYUN_VOICE):
        _require(settings, "Alibaba Cloud voice", *ALIYUN_VOICE, "ALIYUN_ACCESS_KEY_ID",
                 "ALIYUN_ACCESS_KEY_SECRET")


def _require(settings: Mapping[str, object], why: str, *names: str) -> None:
    for name in names:
        if not settings.get(name):
            raise ConfigError(f"{name}: must be set for {why}")


def _base_url(environ: Mapping[str, str], name: str, default: str) -> str:
    url = environ.get(name, "").strip().rstrip("/") or default
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}: expected an absolute http(s) URL, got {url!r}")
    return url


def _database_url(environ: Mapping[str, str], instance_path: str) -> str:
    url = environ.get("DATABASE_URL", "").strip()
    if not url:
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        return "sqlite:///" + str(Path(instance_path) / "linli.sqlite3")
    if url.startswith("postgres://"):
        # Heroku-style URLs name the driver SQLAlchemy no longer accepts.
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    scheme = url.split(":", 1)[0]
    if scheme not in ("sqlite", "postgresql+psycopg"):
        raise ConfigError(
            f"DATABASE_URL: unsupported database {scheme!r}; use postgresql://… or sqlite:///…"
        )
    return url


def _redis_url(environ: Mapping[str, str]) -> str | None:
    url = environ.get("REDIS_URL", "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ConfigError(f"REDIS_URL: expected redis://host:port/db, got {url!r}")
    return url


def _public_base_url(environ: Mapping[str, str]) -> str:
    url = environ.get("PUBLIC_BASE_URL", "http://localhost:5000").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"PUBLIC_BASE_URL: expected an absolute http(s) URL such as "
            f"https://linli.example.cn, got {url!r}"
        )
    if parts.query or parts.fragment:
        raise ConfigError("PUBLIC_BASE_URL: must not carry a query or fragment")
    return url


def _secret_key(environ: Mapping[str, str], instance_path: str) -> str:
    """Use SECRET_KEY, or a key generated once and kept in the instance folder.

    Member action links are signed with this key, so it must survive restarts: a demo run
    without the variable still gets a stable key.
    """
    key = environ.get("SECRET_KEY")
    if key is not None:
        if len(key) < 16:
            raise ConfigError("SECRET_KEY: must be at least 16 characters long")
        return key
    path = Path(instance_path) / "secret_key"
    if not path.exists():
        Path(instance_path).mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _choice(environ: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = environ.get(name, default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _time_zone(environ: Mapping[str, str]) -> str:
    name = environ.get("TIME_ZONE", clock.DEFAULT_ZONE).strip()
    if not clock.is_zone(name):
        raise ConfigError(f"TIME_ZONE: unknown time zone {name!r}")
    return name


def _proxies(environ: Mapping[str, str]) -> int:
    """How many reverse proxies in front of the app set X-Forwarded-For (0: none)."""
    raw = environ.get("TRUSTED_PROXIES", "0").strip()
    if not raw.isdigit() or int(raw) > 5:
        raise ConfigError(f"TRUSTED_PROXIES: expected a number of proxies from 0 to 5, got {raw!r}")
    return int(raw)


def _positive_float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than 0")
    return value


def from_os_environ(instance_path: str) -> dict[str, object]:
    """Settings from this process's environment."""
    return load_settings(os.environ, instance_path)
