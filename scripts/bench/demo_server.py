"""The demo community on SQLite with the in-process runner, served on a real socket: what the
browser benchmarks (photo upload, Lighthouse) put a browser in front of."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import BaseWSGIServer, make_server

from app import create_app

ROOT = Path(__file__).resolve().parents[2]


def demo_app(database: Path, **config: Any) -> tuple[Flask, str]:
    """The demo imported into a new SQLite file: (the app, an elevator sticker's code)."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}", "REDIS_URL": None,
                      "SMS_BACKEND": "console", **config})
    from dispatch.community import load_demo
    from dispatch.db import db
    from dispatch.models import Place, PlaceKind, Sticker

    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        load_demo()
        code = db.session.scalar(sa.select(Sticker.code).join(Place).where(
            Place.kind == PlaceKind.ELEVATOR).order_by(Place.id).limit(1))
    return app, code


def serve(app: Flask, host: str = "127.0.0.1") -> tuple[str, BaseWSGIServer]:
    """Serve `app` in a thread on a free port; its links point at `host` (the base URL)."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://{host}:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return url, server
