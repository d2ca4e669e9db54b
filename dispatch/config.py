"""Settings read from the environment, checked once when the app starts.

A setting that is missing or malformed stops the service at start with a message that names it,
rather than failing later inside a request or a job.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SMS_BACKENDS = ("console",)


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def load_settings(environ: Mapping[str, str], instance_path: str) -> dict[str, object]:
    """Build the Flask config from environment variables (see the README table)."""
    settings: dict[str, object] = {
        "SQLALCHEMY_DATABASE_URI": _database_url(environ, instance_path),
        "REDIS_URL": _redis_url(environ),
        "PUBLIC_BASE_URL": _public_base_url(environ),
        "SECRET_KEY": _secret_key(environ, instance_path),
        "SMS_BACKEND": _choice(environ, "SMS_BACKEND", SMS_BACKENDS, "console"),
        "TIME_ZONE": _time_zone(environ),
        "SWEEP_SECONDS": _positive_float(environ, "SWEEP_SECONDS", 5.0),
    }
    return settings


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
    name = environ.get("TIME_ZONE", "Asia/Shanghai").strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"TIME_ZONE: unknown time zone {name!r}") from exc
    return name


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
