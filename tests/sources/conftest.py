"""Fixtures for the sources tests: emulators served on free ports in background threads."""
from __future__ import annotations

import pytest

from app.sources.uisp import UispApi
from tests.emulators import serving


@pytest.fixture
def uisp():
    """`uisp(size=..., **faults)` starts a UISP emulator; returns (emulator state, API client)."""
    from tests.emulators.uisp import API, create_app

    stack = []

    def start(size: int = 30, page_size: int = 7, timeout: float = 5.0, **faults):
        app = create_app(size=size, latency=0, estates=("ACACIA", "BAOBAB"), **faults)
        context = serving(app)
        base = context.__enter__()
        stack.append(context)
        api = UispApi(base + API, "dev-uisp-key", timeout=timeout, retries=3, backoff=0.01,
                      page_size=page_size)
        return app.extensions["uisp"], api
    yield start
    for context in stack:
        context.__exit__(None, None, None)


@pytest.fixture
def serve_koios():
    """`serve_koios(emulator)` serves a Koios emulator (keys "key"/"secret"); returns an API client for it."""
    from app.sources.sparkmeter import KoiosApi
    from tests.emulators.koios import create_app

    contexts = []

    def start(emulator):
        context = serving(create_app(emulator))
        base = context.__enter__()
        contexts.append(context)
        return KoiosApi(base, "key", "secret", "org-emulated", timeout=2, backoff=0.01)
    yield start
    for context in contexts:
        context.__exit__(None, None, None)


from tests.web.conftest import _fresh_rate_limits, committed, login, new_client, world  # noqa: E402,F401


@pytest.fixture
def uisp_config(app, uisp, monkeypatch):
    """Point the app's UISP settings at a fresh emulator; returns the emulator state."""
    def start(**options):
        emulator, api = uisp(**options)
        monkeypatch.setitem(app.config, "UISP_URL", api.base_url)
        monkeypatch.setitem(app.config, "UISP_BACKOFF", 0.01)
        monkeypatch.setitem(app.config, "UISP_PAGE_SIZE", api.page_size)
        return emulator
    return start
