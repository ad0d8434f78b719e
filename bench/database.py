"""A benchmark's own PostgreSQL database (created fresh before a run, dropped after) and app settings."""
from sqlalchemy import create_engine, text


def _admin(url, statement: str) -> None:
    """Run one statement on the server's `postgres` database, outside a transaction."""
    engine = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()


def recreate_database(url) -> None:
    """Drop the database named in `url` if it exists, then create it empty."""
    drop_database(url)
    _admin(url, f'CREATE DATABASE "{url.database}"')


def drop_database(url) -> None:
    """Drop the database named in `url`, disconnecting anyone still on it."""
    _admin(url, f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')


def bench_config(url):
    """The app settings every benchmark runs with: its own database, no pool options, no login limit."""
    from app.config import Config

    class BenchConfig(Config):
        SECRET_KEY = "bench"
        SQLALCHEMY_DATABASE_URI = url.render_as_string(hide_password=False)
        SQLALCHEMY_ENGINE_OPTIONS = {}
        RATELIMIT_ENABLED = False

    return BenchConfig
