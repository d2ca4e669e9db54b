"""The app the ops tests and the load benchmark deploy: the real one, with settings the
environment cannot give laid over it from `LINLI_CONFIG_JSON`.

All test traffic comes from 127.0.0.1, so the per-address rate limits that protect a real
deployment (where residents come from many addresses) are raised here, and the Twilio client
timeout is shortened so provider drills stay short. `LINLI_APP="tests.ops.tuned:create_app()"`
makes `scripts/deploy-local` start every process with it.
"""

from __future__ import annotations

import json
import os

from flask import Flask

from app import create_app as create_real_app


def create_app() -> Flask:
    """The real app, with `LINLI_CONFIG_JSON` (a JSON object of config keys) laid over it."""
    return create_real_app(json.loads(os.environ.get("LINLI_CONFIG_JSON") or "{}"))
