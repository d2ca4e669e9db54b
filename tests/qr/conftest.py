"""Sticker tests print for a public https base URL: printing refuses anything else by default."""

from __future__ import annotations

import pytest
from flask import Flask

PUBLIC_BASE_URL = "https://linli.example.cn"


@pytest.fixture
def sqlite_app(sqlite_app: Flask) -> Flask:
    sqlite_app.config["PUBLIC_BASE_URL"] = PUBLIC_BASE_URL
    return sqlite_app


@pytest.fixture
def pg_app(pg_app: Flask) -> Flask:
    pg_app.config["PUBLIC_BASE_URL"] = PUBLIC_BASE_URL
    return pg_app
