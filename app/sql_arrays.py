"""PostgreSQL array parameters: lists travel as one `= ANY(:array)` or `unnest(...)` parameter.

On PostgreSQL each step of a batch (ingest, ledger posting, statements) is one statement
whose text does not grow with the batch. An expanded `IN (...)` or a multi-row VALUES made
psycopg re-parse thousands of placeholders on every call: most of the time spent on a batch.
Other databases (SQLite in development) take the portable statements.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ARRAY, Integer, any_, bindparam
from sqlalchemy.orm import Session


def pg_array(values: Iterable) -> str:
    """A PostgreSQL array literal of `values`, for a `CAST(:param AS type[])` parameter."""
    # psycopg's list dumper tests every element against regular expressions: for the
    # ingest pipeline's batches that was a tenth of the time. Strings and timestamps are
    # quoted (backslash and double quote escaped); None is NULL; numbers go as they print.
    parts: list[str] = []
    append = parts.append
    # A batch repeats one timestamp object (recorded_at) many times. The cache holds each
    # object as well as its text, so no id can be reused by a new object during this call.
    stamps: dict[int, tuple[datetime, str]] = {}
    for value in values:
        kind = type(value)
        if value is None:
            append("NULL")
        elif kind is int or kind is Decimal:
            append(str(value))
        elif kind is str:
            if '"' in value or "\\" in value:
                value = value.replace("\\", "\\\\").replace('"', '\\"')
            append(f'"{value}"')
        elif kind is datetime:
            cached = stamps.get(id(value))
            if cached is None:
                cached = stamps[id(value)] = (value, f'"{value.isoformat()}"')
            append(cached[1])
        elif isinstance(value, bool):
            append("true" if value else "false")
        elif isinstance(value, int | Decimal):
            append(str(value))
        elif isinstance(value, datetime):
            append(f'"{value.isoformat()}"')
        else:
            append('"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(parts) + "}"


def matches_any(column, values, postgres: bool, item_type=Integer):
    """`column IN values`, written `column = ANY(:array)` (one parameter whatever the count) on PostgreSQL."""
    if postgres:
        return column == any_(bindparam("values", list(values), type_=ARRAY(item_type), unique=True))
    return column.in_(list(values))


def one_of(session: Session, column, values, item_type=Integer):
    """`column IN values` in the dialect of the session's database (see `matches_any`)."""
    # Hundreds of expanded IN parameters made psycopg re-parse each statement: most of a batch.
    return matches_any(column, values, session.get_bind().dialect.name == "postgresql", item_type)


@contextmanager
def planned_for_these_values(session: Session, postgres: bool) -> Iterator[None]:
    """Keep psycopg from preparing the lookups run inside: plan each for its own array."""
    # A prepared statement soon runs a cached generic plan. For `key = ANY(:array)` one
    # made while the table was small is a sequential scan comparing every row with every
    # element; measured here it cost 0.6 s per 1,000-key batch at 100k transactions.
    driver = session.connection().connection.driver_connection if postgres else None
    if not hasattr(driver, "prepare_threshold"):  # psycopg 3 prepares; other drivers do not
        yield
        return
    saved = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = saved
