"""A real server and Debian's Chromium for the browser tests.

The app runs in a werkzeug server thread on 127.0.0.1 (port chosen by the OS) against the
demo community on PostgreSQL (the resident flow on SQLite too); Playwright drives
/usr/bin/chromium at a phone's viewport.
Screenshots go to test-artifacts/ (ignored by git, kept by CI as artifacts).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from dispatch.community import load_demo
from tests.conftest import unavailable

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PHONE = {"width": 390, "height": 844}


@dataclass
class Live:
    """The running server: its app (for setting up and checking data) and base URL."""

    app: Flask
    url: str


@pytest.fixture
def live(app: Flask) -> Iterator[Live]:
    """The app with the demo community, served on a real socket."""
    with app.app_context():
        load_demo()
    app.config["RESIDENT_POLL_SECONDS"] = 0.5
    yield from serve(app, "live-server")


def serve(app: Flask, name: str) -> Iterator[Live]:
    """Serve `app` on a real socket until the generator is closed; the app's links point there."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = url
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    try:
        yield Live(app, url)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


@pytest.fixture(scope="session")
def playwright_driver() -> Iterator[Any]:
    """Playwright's driver, one per test session: a second one started while the first runs
    fails ("Sync API inside the asyncio loop"), so every browser is launched from this one."""
    if shutil.which(CHROMIUM) is None:
        unavailable("Chromium at /usr/bin/chromium", FileNotFoundError(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def chromium(playwright_driver: Any) -> Iterator[Any]:
    """Debian's Chromium, launched once per test session."""
    yield from launch_chromium(playwright_driver)


def launch_chromium(playwright: Any, *extra_args: str) -> Iterator[Any]:
    """Debian's Chromium, closed when the generator is (a fixture's body)."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", *extra_args])
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Any:
    """`shots(page, "01-scan")` saves a full-page screenshot under test-artifacts/."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Any, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return take
