"""Linli (邻里): the Flask app factory and the `app` object for `flask --app app …`.

Everything the service is made of is registered here, so this one screen shows the system:
settings from the environment, the database, the job runner, and the web parts.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from dispatch import cli, errors, health, hooks, member, resident, security, sessions, staff
from dispatch.config import from_os_environ
from dispatch.db import db
from dispatch.jobs import reconcile, table
from dispatch.member import push
from dispatch.metrics import prometheus
from dispatch.roster import kept
from qr import cli as qr_cli

migrate = Migrate()
csrf = CSRFProtect()


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from the environment, or from `test_config` laid over it in tests."""
    app = Flask(__name__, instance_relative_config=True)
    security.prepare(app)  # clean input and bounded ids, before any route is added
    app.config.from_mapping(from_os_environ(app.instance_path))
    if test_config:
        app.config.from_mapping(test_config)
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The Twilio SDK logs ten lines of headers per request at INFO: noise in the worker logs at
    # a real cost per message (docs/benchmarks.md). Its warnings and errors still show.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    security.mask_phones_in_logs()  # a resident's number typed into a message: never logged

    app.session_interface = sessions.SignedCookieSessions()
    security.init_app(app)  # request limits, cookie flags, security headers: docs/security.md
    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/migrations"), render_as_batch=True,
                     compare_type=True)
    csrf.init_app(app)
    table.init_app(app)  # the jobs and their runner: RQ with REDIS_URL, else in-process
    kept.init_app(app)  # rosters kept per process for the ladder steps (with Redis)

    # Who talks to Linli
    resident.init_app(app)  # /s, /c      residents, no login (own CSRF cookie)
    member.init_app(app)  # /m            members, by signed links and Web Push
    staff.init_app(app)  # /staff         the console: board, roster, figures, stickers
    hooks.init_app(app)  # /webhooks      Twilio and Alibaba Cloud, signature-checked
    # Resident forms carry a signed double-submit cookie instead (dispatch/resident/csrf.py);
    # webhooks check signatures, the push subscription a signed member token.
    for exempt in (resident.views.bp, push.bp, *hooks.BLUEPRINTS):
        csrf.exempt(exempt)

    # Operations: health and metrics, the 503 page, the command line
    app.register_blueprint(health.bp)
    app.register_blueprint(prometheus.bp)
    errors.init_app(app)  # database outages: a 503 with the hotline, not a trace
    cli.init_app(app)
    qr_cli.init_app(app)
    reconcile.init_app(app)
    cli.guard_database_errors(app)  # last: every command is registered by now

    if app.config.get("TRUSTED_PROXIES"):
        # Behind TLS termination the client's address and scheme come from the proxy's headers;
        # rate limits per resident address depend on it. Outermost, so every layer (the kept
        # sticker pages', `dispatch.resident.fast`, too) sees the client's own.
        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]
    if not app.config.get("TESTING"):
        # A web or worker process builds one app and serves with it for days: what it holds
        # now (modules, mappers, routes) lives as long as the process. Frozen, it is no longer
        # walked by each full garbage collection, which otherwise stopped one console request
        # in ten for ~100 ms (docs/benchmarks.md, "The console's long tail"). Not in tests:
        # they build hundreds of apps in one process, and frozen cycles are never freed.
        gc.freeze()
    return app


def __getattr__(name: str) -> Flask:
    """`app.app` is built on first use, so importing this module has no side effects."""
    if name == "app":
        globals()["app"] = built = create_app()
        return built
    raise AttributeError(name)
