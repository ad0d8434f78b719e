"""Helpers for tests that are not fixtures: signing in, CSRF tokens, logins, reading tables.

Import them (`from tests.helpers import sign_in, table_with`); fixtures stay in the
conftest.py files, where pytest finds them by name.
"""
from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from functools import cache
from html.parser import HTMLParser

from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from tests import factories


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


def xdist_worker_number() -> int:
    """This pytest-xdist worker's number (gw0 → 0), 0 when the suite runs in one process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


def redis_test_url(database: int) -> str:
    """A Redis database of this worker's own: `database` counted down by the worker number,
    so two workers never flush each other's queues (15, 14, ... for one group; 9, 8, ... for another)."""
    port = os.environ.get("TEST_REDIS_PORT", "6379")  # a parallel session may run its own server
    return f"redis://127.0.0.1:{port}/{database - xdist_worker_number()}"


def statuses_at_once(app, n: int, request) -> list[int]:
    """Send `request(client)` from `n` threads released together, each with its own test client
    (concurrent duplicates of one request); the status codes they got."""
    barrier, statuses = threading.Barrier(n), []

    def send():
        own = app.test_client()
        barrier.wait()
        statuses.append(request(own).status_code)

    threads = [threading.Thread(target=send) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses
