"""Fixtures for the web tests: committed data, a fresh rate limiter, and signing in.

Requests here run in their own application context. The shared `session` fixture keeps
one app context open for the whole test, and Flask then reuses it for every request,
which would carry `g` (Flask-Login's current user, Flask-WTF's CSRF token) from one
request into the next. So data is written in short contexts (`committed()`), and each
request starts clean, as it does in production.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser
from datetime import date
from itertools import count

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.extensions import db, limiter
from app.models import Tenancy, User
from tests import factories

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


CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')
CSRF_HEADER = re.compile(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'')


def csrf_from(html: str) -> str:
    """The CSRF token of a rendered page: a form's hidden input, else the <body> hx-headers."""
    found = CSRF_INPUT.search(html)
    if found:
        return found.group(1) or found.group(2)
    found = CSRF_HEADER.search(html)
    assert found, "the page carries no CSRF token (no hidden input, no hx-headers on <body>)"
    return found.group(1)


def page_token(client, path: str = "/login") -> str:
    """GET a page and return its CSRF token (the session cookie now holds its secret)."""
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return csrf_from(response.get_data(as_text=True))


def sign_in(client, email: str, password: str = factories.DEFAULT_PASSWORD, next_url: str | None = None):
    """Sign in through the real login form; returns the POST response (not followed)."""
    token = page_token(client, "/login")
    url = "/login" + (f"?next={next_url}" if next_url else "")
    return client.post(url, data={"email": email, "password": password, "csrf_token": token})


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


@dataclass
class World:
    """Two estates: estate 1 has units A and A2, estate 2 has unit B; one login per role.

    Every layer user's grant covers estate 1 or unit A only. Values are plain ids and
    emails so they outlive the session that made them.
    """

    estate1: int
    estate2: int
    unit_a: int
    unit_a2: int
    unit_b: int
    estate1_name: str
    estate2_name: str
    unit_a_number: str
    unit_b_number: str
    emails: dict[str, str]  # role -> email; "staff", "tenant", ..., "nobody" (no grants)
    tenant_b: str           # tenant of unit B in estate 2


@cache
def default_password_hash() -> str:
    """One real hash of DEFAULT_PASSWORD, reused: scrypt costs ~0.2 s per user made."""
    return generate_password_hash(factories.DEFAULT_PASSWORD)


def make_login(s: Session, role: str | None = None, **options):
    """factories.make_user with the password hash computed once per run."""
    user = factories.make_user(s, role, password=None, **options)
    user.password_hash = default_password_hash()
    s.flush()
    return user


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


@dataclass
class Cell:
    text: str
    classes: set[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Cell]]

    def texts(self) -> list[list[str]]:
        return [[cell.text for cell in row] for row in self.rows]


class _TableReader(HTMLParser):
    """Reads every <table>: header texts and body rows of cells (text with spaces collapsed)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[Table] = []
        self._cell: tuple[list[str], set[str], bool] | None = None
        self._row: list[Cell] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(Table([], []))
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ([], set((dict(attrs).get("class") or "").split()), tag == "th")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0].append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            parts, classes, header = self._cell
            # Only ASCII whitespace: money keeps its narrow no-break thousands space.
            text = re.sub(r"[ \t\r\n]+", " ", "".join(parts)).strip()
            (self.tables[-1].headers.append(text) if header else self._row.append(Cell(text, classes)))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row:
                self.tables[-1].rows.append(self._row)
            self._row = None


def tables_of(page_html: str) -> list[Table]:
    """Every table of a page, as a reader would see it."""
    reader = _TableReader()
    reader.feed(page_html)
    return reader.tables


def table_with(page_html: str, header: str) -> Table:
    """The page's table that has a column headed `header`."""
    found = [t for t in tables_of(page_html) if header in t.headers]
    assert found, f"no table with a {header!r} column"
    return found[0]
