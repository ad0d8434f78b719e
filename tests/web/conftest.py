"""Fixtures for the web tests: committed data, a fresh rate limiter, and signing in.

Helpers that are not fixtures (sign_in, csrf_from, make_login, table_with, World ...) are in
tests/helpers.py.

Requests here run in their own application context. The shared `session` fixture keeps
one app context open for the whole test, and Flask then reuses it for every request,
which would carry `g` (Flask-Login's current user, Flask-WTF's CSRF token) from one
request into the next. So data is written in short contexts (`committed()`), and each
request starts clean, as it does in production.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from itertools import count

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import db, limiter
from app.models import Tenancy, User
from tests import factories
from tests.helpers import World, make_login, sign_in

_client_addresses = count(10)


@pytest.fixture(autouse=True)
def _fresh_rate_limits(app):
    """Every test starts with untouched login rate limits (storage is memory://)."""
    with app.app_context():
        limiter.reset()
    yield
    with app.app_context():
        limiter.reset()


@pytest.fixture
def committed(app):
    """`with committed() as s:` gives a session in a short app context and commits on exit."""
    @contextmanager
    def open_session() -> Iterator[Session]:
        with app.app_context():
            try:
                yield db.session
                db.session.commit()
            finally:
                db.session.remove()
    return open_session


@pytest.fixture
def new_client(app):
    """Make test clients, each from its own address (so per-IP limits stay per client)."""
    def make(address: str | None = None):
        client = app.test_client()
        client.environ_base["REMOTE_ADDR"] = address or f"10.0.0.{next(_client_addresses)}"
        return client
    return make


@pytest.fixture
def login(new_client):
    """`login(email)` returns a fresh client signed in as that user (asserting it worked)."""
    def do(email: str, password: str = factories.DEFAULT_PASSWORD):
        client = new_client()
        response = sign_in(client, email, password)
        assert response.status_code == 302, (email, response.status_code,
                                              response.get_data(as_text=True)[:500])
        return client
    return do


@pytest.fixture
def world(committed) -> World:
    with committed() as s:
        kit1 = factories.make_estate_with_wallet(s, name="Acacia Gardens")
        unit_a = kit1.unit
        unit_a2 = factories.make_unit(s, kit1.estate)
        factories.make_wallet(s, unit_a2)
        kit2 = factories.make_estate_with_wallet(s, name="Baobab Court")
        unit_b = kit2.unit
        emails = {}
        for role in ("tenant", "owner", "family"):
            emails[role] = make_login(s, role, unit=unit_a).email
        for role in ("body_corporate", "agent", "utility"):
            emails[role] = make_login(s, role, estate=kit1.estate).email
        emails["staff"] = make_login(s, "staff").email
        emails["nobody"] = make_login(s).email
        tenant_b = make_login(s, "tenant", unit=unit_b)
        # A tenant sees the unit's history during their tenancy only (app/reports/history.py).
        for email, unit in ((emails["tenant"], unit_a), (tenant_b.email, unit_b)):
            person_id = s.scalar(select(User.person_id).where(User.email == email))
            s.add(Tenancy(unit_id=unit.id, person_id=person_id, move_in=date(2020, 1, 1)))
        tenant_b = tenant_b.email
        return World(kit1.estate.id, kit2.estate.id, unit_a.id, unit_a2.id, unit_b.id,
                     kit1.estate.name, kit2.estate.name, unit_a.number, unit_b.number,
                     emails, tenant_b)
