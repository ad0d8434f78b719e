"""Browser fixtures: the app seeded with demo data behind a real HTTP server, and Debian's chromium.

The server is werkzeug's, in a thread of this process, on 127.0.0.1 and a free port; it
serves the same app (and test database) as the other tests. The browser is always
/usr/bin/chromium: a downloaded browser is never used. Without it the tests fail with a
clear message, unless SKIP_BROWSER_TESTS=1 says to skip them.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app.extensions import db, limiter

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SHOTS = Path("/tmp/meterwise-shots")


def pytest_collection_modifyitems(items):
    if os.environ.get("SKIP_BROWSER_TESTS") == "1":
        skip = pytest.mark.skip(reason="SKIP_BROWSER_TESTS=1")
        for item in items:
            if "e2e" in item.keywords:
                item.add_marker(skip)


@dataclass
class LiveServer:
    url: str
    logins: dict[str, tuple[str, str]]  # role -> (email, password)


@pytest.fixture
def live_server(app):
    """The app with the demo data (2 days), served over HTTP from a background thread."""
    from app.demo import seed

    with app.app_context():
        limiter.reset()
        try:
            logins = seed(db.session, days=2)
        finally:
            db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(f"http://127.0.0.1:{server.server_port}",
                         {role: (email, password) for role, email, password in logins})
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
        with app.app_context():
            limiter.reset()


@pytest.fixture(scope="session")
def _chromium_session():
    """One chromium for the whole run, started by the first test that asks for it."""
    state = {}
    yield state
    if "browser" in state:
        state["browser"].close()
    if "playwright" in state:
        state["playwright"].stop()


@pytest.fixture
def browser(_chromium_session):
    """`browser()` returns Debian's chromium, headless. It is called inside the test, so a
    missing browser is a test failure with a message, not a setup error."""
    def launch():
        if not os.path.exists(CHROMIUM):
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install "
                        "chromium, or `make browser`), or set SKIP_BROWSER_TESTS=1 to skip the "
                        "browser tests. A downloaded browser is never used.")
        state = _chromium_session
        if "browser" not in state:
            from playwright.sync_api import sync_playwright

            state["playwright"] = sync_playwright().start()
            state["browser"] = state["playwright"].chromium.launch(executable_path=CHROMIUM,
                                                                   args=CHROMIUM_ARGS)
        return state["browser"]
    return launch


@pytest.fixture
def open_page(browser):
    """`open_page(viewport)` opens a page in a fresh browser context, closed after the test."""
    opened = []

    def make(viewport: dict):
        page = browser().new_page(viewport=viewport)
        opened.append(page)
        return page
    yield make
    for page in opened:
        if not page.is_closed():
            page.close()  # closes its context too


@pytest.fixture
def shots() -> Path:
    """Where screenshots go (outside the repository)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS
