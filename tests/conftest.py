"""Shared fixtures: one app and one migrated PostgreSQL database per test run.

How the database is handled
- The test database (TestConfig: `meterwise_test` on 127.0.0.1, or the URL in the
  TEST_DATABASE_URL environment variable) is created when missing and migrated once per
  run with Alembic, so the ledger's triggers (append-only, deferred zero-sum, period lock)
  are the real ones.
- The rule: every test commits for real, and every table is emptied after each test that
  used the app. There is no savepoint-per-test rollback (../shared/STYLE.md rule 13 still
  says so; this is what the suite does and why):
  - the ledger's zero-sum check is a deferred constraint trigger, which fires only at
    COMMIT: in a test rolled back to a savepoint it would never run;
  - the code under test commits its own unit of work (a web request, a domain function,
    a job), and jobs, `Progress` rows and the thread tests open their own Sessions on
    other connections, which cannot see (or be undone with) one outer transaction.
  Isolation therefore comes from emptying every table (TRUNCATE ... RESTART IDENTITY
  CASCADE; row triggers do not fire on TRUNCATE), so ids start at 1 again in every test.
  The ledger's own TRUNCATE triggers are disabled for that one transaction only
  (ALTER TABLE ... DISABLE TRIGGER). Factories flush and leave the commit to the test.
- Only a database whose name contains "test" is ever emptied.

Fixtures
- `app`         the Flask app for the whole run (create_app("test")).
- `app_ctx`     an application context pushed for one test.
- `db_session`  the app's scoped `db.session` inside that context (alias: `session`).
                Requests made with `client` during the test reuse the same context and
                therefore the same session: commit before asserting on what a request did,
                and `session.expire_all()` to see a request's writes.
- `client`      `app.test_client()`.
- `cli_runner`  `app.test_cli_runner()` for `flask ...` commands.
- `engine`      the app's engine, for tests that open their own Sessions (threads).

Data comes from `tests/factories.py`; helpers that are not fixtures (signing in, CSRF
tokens, reading tables) are in `tests/helpers.py`.
"""
from __future__ import annotations

import logging
import os

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app import create_app
from app.config import TestConfig
from app.extensions import db


def _database_url() -> str:
    """The test database; under pytest-xdist each worker gets its own (`meterwise_test_gw1`)."""
    url = os.environ.get("TEST_DATABASE_URL") or TestConfig.SQLALCHEMY_DATABASE_URI
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not make_url(url).database.endswith(f"_{worker}"):
        parsed = make_url(url)
        url = parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)
    return url


def _ensure_database(url: str) -> None:
    """Create the test database when it does not exist yet (connecting to `postgres`)."""
    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("postgresql"):
        pytest.exit(f"tests need PostgreSQL; TEST_DATABASE_URL is {parsed.render_as_string()}",
                    returncode=2)
    if "test" not in (parsed.database or ""):
        pytest.exit(f"refusing to use database {parsed.database!r}: every test empties it, so "
                    "its name must contain 'test'", returncode=2)
    params = {"dbname": "postgres", "host": parsed.host or "127.0.0.1",
              "port": parsed.port or 5432, "user": parsed.username or "postgres",
              "autocommit": True, "connect_timeout": 5}
    if parsed.password:
        params["password"] = parsed.password
    try:
        with psycopg.connect(**params) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (parsed.database,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(parsed.database)))
    except psycopg.OperationalError as error:
        pytest.exit(f"PostgreSQL is not reachable at {parsed.host}:{parsed.port}: {error}",
                    returncode=2)


def _migrate(app) -> None:
    """Run Alembic to head; undo the logger disabling of alembic's fileConfig()."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
    # migrations/env.py calls logging.config.fileConfig(), which disables every logger
    # created before it; tests that use caplog on app loggers need them back.
    for logger in logging.root.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            logger.disabled = False


def _user_tables(app) -> list[str]:
    with app.app_context(), db.engine.connect() as conn:
        # Partitions are emptied with their table (and month partitions come and go: M8).
        return list(conn.scalars(text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "AND c.relname <> 'alembic_version' ORDER BY c.relname"
        )))


def _truncate_triggers(app) -> list[tuple[str, str]]:
    """(table, trigger) of every user trigger that fires on TRUNCATE (the ledger's, 0016)."""
    with app.app_context(), db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND NOT t.tgisinternal AND (t.tgtype & 32) <> 0 ORDER BY 1, 2"))]


def empty_database(app) -> None:
    """Remove every row of every table, and reset the id sequences."""
    tables = app.extensions["meterwise_test_tables"]
    if not tables:
        return
    with app.app_context():
        db.session.remove()
        with db.engine.connect() as conn:
            # A connection left inside a transaction (a leaked Session, a thread) would make
            # TRUNCATE wait forever; fail loudly instead.
            conn.execute(text("SET lock_timeout = '10s'"))
            # The ledger refuses TRUNCATE (migration 0016); the owner may switch that off,
            # and only inside this transaction: the triggers are back on when it commits.
            guarded = app.extensions["meterwise_truncate_triggers"]
            for table, trigger in guarded:
                conn.execute(text(f'ALTER TABLE "{table}" DISABLE TRIGGER "{trigger}"'))
            conn.execute(text("TRUNCATE {} RESTART IDENTITY CASCADE".format(
                ", ".join(f'"{name}"' for name in tables))))
            for table, trigger in guarded:
                conn.execute(text(f'ALTER TABLE "{table}" ENABLE TRIGGER "{trigger}"'))
            conn.commit()


@pytest.fixture(scope="session")
def app():
    """The Flask app on a migrated, empty test database."""
    url = _database_url()
    os.environ["TEST_DATABASE_URL"] = url
    _ensure_database(url)

    class Config(TestConfig):
        SQLALCHEMY_DATABASE_URI = url

    app = create_app(Config)
    _migrate(app)
    app.extensions["meterwise_test_tables"] = _user_tables(app)
    app.extensions["meterwise_truncate_triggers"] = _truncate_triggers(app)
    empty_database(app)  # a previous run may have been interrupted
    yield app
    empty_database(app)
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def _empty_database_after_test(request):
    """After each test that used the app, leave every table empty for the next one."""
    yield
    if "app" in request.fixturenames:
        empty_database(request.getfixturevalue("app"))


@pytest.fixture
def app_ctx(app):
    """An application context for the test; the scoped session is removed afterwards."""
    with app.app_context() as ctx:
        yield ctx


@pytest.fixture
def db_session(app_ctx):
    """The app's scoped session (db.session); tests commit through it for real."""
    yield db.session
    db.session.rollback()


@pytest.fixture
def session(db_session):
    """Alias of `db_session`."""
    return db_session


@pytest.fixture
def engine(app_ctx):
    """The app's engine, for tests that open their own Session per thread."""
    return db.engine


@pytest.fixture
def client(app):
    """A test client; combine with `session` to share one app context with the requests."""
    return app.test_client()


@pytest.fixture
def cli_runner(app):
    """Runs `flask ...` commands against the test app."""
    return app.test_cli_runner()
