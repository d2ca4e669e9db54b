"""The app factory and its settings: a bad setting stops the start with a message naming it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from dispatch.config import TUNABLES, ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_run_on_sqlite_in_the_instance_folder_without_redis(tmp_path: Path) -> None:
    settings = load_settings({}, str(tmp_path))
    assert settings["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/linli.sqlite3"
    assert settings["REDIS_URL"] is None
    assert settings["SMS_BACKEND"] == "console"
    assert settings["TIME_ZONE"] == "Asia/Shanghai"


def test_a_generated_secret_key_survives_a_restart(tmp_path: Path) -> None:
    first = load_settings({}, str(tmp_path))["SECRET_KEY"]
    assert load_settings({}, str(tmp_path))["SECRET_KEY"] == first
    assert len(str(first)) >= 32


def test_postgres_urls_get_the_psycopg_driver(tmp_path: Path) -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://u@db/linli"}, str(tmp_path))
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db/linli"


@pytest.mark.parametrize(("name", "value"), [
    ("DATABASE_URL", "mysql://root@localhost/linli"),
    ("REDIS_URL", "localhost:6379"),
    ("PUBLIC_BASE_URL", "linli.example.cn"),
    ("PUBLIC_BASE_URL", "https://linli.example.cn/?a=1"),
    ("SECRET_KEY", "short"),
    ("SMS_BACKEND", "pigeon"),
    ("TIME_ZONE", "Mars/Olympus"),
    ("SWEEP_SECONDS", "soon"),
    ("TRUSTED_PROXIES", "all"),
    ("RESIDENT_LIMIT_PAGES", "plenty"),
    ("THROTTLE_ALERTS", "five"),
    ("THROTTLE_GAP_SECONDS", "-1"),
    ("SMS_VALIDITY_SECONDS", "86400"),
    ("TWILIO_TIMEOUT", "0"),
    ("RESIDENT_FALLBACK_HOTLINE", " "),
    ("STAFF_LIMIT_LOGIN_USER", "ten"),
    ("STAFF_LIMIT_LOGIN_IP", "30 a day"),
    ("PUSH_SERVICE_HOSTS", "https://push.example.cn/"),
    ("PUSH_SERVICE_HOSTS", " , "),
])
def test_a_malformed_setting_is_named_in_the_error(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings({name: value}, str(tmp_path))


def test_the_service_refuses_to_start_with_a_bad_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "routes"], cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PUBLIC_BASE_URL": "ftp://nowhere",
             "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL: expected an absolute http(s) URL" in result.stderr


def test_importing_the_app_module_builds_nothing() -> None:
    probe = "import app, sys; sys.exit('app' in vars(app))"
    assert subprocess.run([sys.executable, "-c", probe], cwd=ROOT, timeout=60).returncode == 0


def test_a_serving_process_freezes_the_heap_it_started_with(tmp_path: Path) -> None:
    """Full garbage collections then skip what lives as long as the process; tests, which
    build many apps in one process, do not freeze."""
    probe = ("import gc, sys; from app import create_app; create_app({'TESTING': True}); "
             "tested = gc.get_freeze_count(); create_app(); "
             "sys.exit(0 if tested == 0 and gc.get_freeze_count() > 10_000 else 1)")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "SECRET_KEY": "x" * 40,
                                 "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3"})
    assert result.returncode == 0


def test_behind_a_trusted_proxy_the_resident_address_comes_from_its_header(
        sqlite_template: Path) -> None:
    from flask import request

    from app import create_app
    from tests.conftest import base_config

    app = create_app(base_config(SQLALCHEMY_DATABASE_URI=f"sqlite:///{sqlite_template}",
                                 TRUSTED_PROXIES=1))
    app.add_url_rule("/whoami", "whoami", lambda: request.remote_addr or "")
    answer = app.test_client().get("/whoami", headers={"X-Forwarded-For": "203.0.113.7"})
    assert answer.get_data(as_text=True) == "203.0.113.7"



#: A valid value for each tuning setting, and what the app config then holds.
TUNED = {
    "RESIDENT_LIMIT_PAGES": ("30 per minute", "30 per minute"),
    "RESIDENT_LIMIT_MISSES": ("3 per minute;9 per hour", "3 per minute;9 per hour"),
    "RESIDENT_LIMIT_REPORTS_IP": ("5 per hour", "5 per hour"),
    "RESIDENT_LIMIT_REPORTS_STICKER": ("100 per hour", "100 per hour"),
    "RESIDENT_LIMIT_REPORTS_PHONE": ("2 per hour", "2 per hour"),
    "RESIDENT_LIMIT_CALLS_IP": ("4 per minute", "4 per minute"),
    "RESIDENT_LIMIT_CALLS_STICKER": ("20 per hour", "20 per hour"),
    "RESIDENT_LIMIT_CALLBACKS_IP": ("3 per hour", "3 per hour"),
    "RESIDENT_LIMIT_LOOKUPS_IP": ("4 per hour", "4 per hour"),
    "RESIDENT_FALLBACK_HOTLINE": ("0752-12345", "0752-12345"),
    "RESIDENT_POLL_SECONDS": ("30", 30),
    "RESIDENT_PAGE_CACHE_SECONDS": ("2.5", 2.5),
    "SCAN_FLUSH_SECONDS": ("2", 2.0),
    "MAX_CONTENT_LENGTH": ("1048576", 1048576),
    "STAFF_SESSION_HOURS": ("12", 12.0),
    "THROTTLE_GAP_SECONDS": ("0", 0.0),
    "THROTTLE_ALERTS": ("3", 3),
    "THROTTLE_ALERT_WINDOW_SECONDS": ("600", 600.0),
    "SMS_VALIDITY_SECONDS": ("300", 300),
    "TWILIO_TIMEOUT": ("4.5", 4.5),
    "PUSH_TIMEOUT": ("6", 6.0),
    "STAFF_LIMIT_LOGIN_USER": ("5 per 15 minutes", "5 per 15 minutes"),
    "STAFF_LIMIT_LOGIN_IP": ("20 per 15 minutes;100 per day", "20 per 15 minutes;100 per day"),
    "PUSH_SERVICE_HOSTS": ("push.example.cn, .Push.Example.org",
                           ("push.example.cn", ".push.example.org")),
}


def _readme_settings() -> set[str]:
    """The variables the README's configuration table names."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Configuration"):text.index("## Channels")]
    return {name for line in table.splitlines() if line.startswith("| `")
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1])}


def test_every_tuning_setting_is_taken_from_the_environment_into_the_app(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import create_app

    environ = {name: raw for name, (raw, _) in TUNED.items()}
    settings = load_settings(environ, str(tmp_path))
    assert {name: settings[name] for name in TUNED} == {
        name: value for name, (_, value) in TUNED.items()}
    for name, raw in {**environ, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                      "SECRET_KEY": "x" * 20}.items():
        monkeypatch.setenv(name, raw)
    app = create_app()
    assert {name: app.config[name] for name in TUNED} == {
        name: value for name, (_, value) in TUNED.items()}


def test_every_setting_the_readme_table_names_is_read_and_every_one_read_is_named(
        tmp_path: Path) -> None:
    documented = _readme_settings()
    read = set(load_settings({}, str(tmp_path))) | set(TUNABLES) | {"DATABASE_URL",
                                                                     "WORKER_CLASS"}
    assert documented - read == set()
    assert set(TUNABLES) - documented == set()
    assert set(TUNED) == set(TUNABLES)


def dispatch_children() -> set[str]:
    """The modules and packages directly in dispatch/ (the translations are data)."""
    folder = ROOT / "dispatch"
    return {p.stem for p in folder.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in folder.iterdir() if (p / "__init__.py").exists()}


def test_the_dispatch_map_names_every_module_and_package_and_no_other() -> None:
    import dispatch

    named = set(re.findall(r"^- `(\w+)`", dispatch.__doc__ or "", re.M))
    assert named == dispatch_children()


def test_the_readme_layout_has_a_line_for_every_package_of_dispatch() -> None:
    layout = (ROOT / "README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    packages = {name for name in dispatch_children() if (ROOT / "dispatch" / name).is_dir()}
    assert {name for name in packages if f"`dispatch/{name}/`" not in layout} == set()
    modules = dispatch_children() - packages
    assert {name for name in modules if f"{name}.py" not in layout} == set()
