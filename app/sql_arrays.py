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


def insert_rows(session: Session, model, rows: list[dict], *, return_ids: bool = False) -> list[int]:
    """Insert many rows of `model` at once; with `return_ids`, their new ids in the rows' order.

    On PostgreSQL the rows travel by COPY (ids drawn from the table's sequence first), which
    skips parsing a statement per thousand rows: for an import of 10,000 units that was most of
    the time. Python-side column defaults (`default=utcnow`, `default=list`) are applied here as
    an INSERT would; JSON columns are sent as JSON. Elsewhere it is one executemany INSERT.
    The caller's transaction holds the rows; nothing is committed.
    """
    from sqlalchemy import JSON, insert, text

    if not rows:
        return []
    table = model.__table__
    if session.get_bind().dialect.name != "postgresql":
        if not return_ids:
            session.execute(insert(model), rows)
            return []
        return list(session.scalars(insert(model).returning(model.id, sort_by_parameter_order=True), rows))
    from psycopg.types.json import Json

    names = list(rows[0])
    filled = []  # columns the rows leave out that have a Python-side default
    for column in table.columns:
        if column.name in names or column.primary_key or column.default is None:
            continue
        filled.append((column.name, column.default))
    ids: list[int] = []
    if return_ids:
        ids = sorted(session.scalars(text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                                          "FROM generate_series(1, :count)"),
                                     {"table": table.name, "count": len(rows)}))
    columns = (["id"] if return_ids else []) + names + [name for name, _ in filled]
    json_columns = {column.name for column in table.columns if isinstance(column.type, JSON)}
    positions = [index for index, name in enumerate(columns) if name in json_columns]
    cursor = session.connection().connection.driver_connection.cursor()
    quoted = ", ".join(f'"{name}"' for name in columns)
    with cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
        for index, row in enumerate(rows):
            values = ([ids[index]] if return_ids else []) + [row[name] for name in names]
            for _, default in filled:
                values.append(default.arg(None) if default.is_callable else default.arg)
            for position in positions:
                if values[position] is not None:
                    values[position] = Json(values[position])
            copy.write_row(values)
    return ids


def driver_rows(session: Session, statement) -> list[tuple]:
    """Run a read and return its rows as the database driver made them, on PostgreSQL.

    For reads of tens of thousands of rows (a day's ledger re-hashed, its readings) SQLAlchemy's
    per-row work (Row objects, the UTC datetime type's conversion) cost more than the query.
    psycopg already hands back Decimals and timezone-aware datetimes (in the connection's
    zone: convert with `astimezone(UTC)` before printing one). Elsewhere (SQLite keeps
    numbers as floats and datetimes as text) the rows go through SQLAlchemy's types as usual.
    """
    result = session.connection().execute(statement)
    if session.get_bind().dialect.name == "postgresql":
        try:
            return result.cursor.fetchall()
        finally:
            result.close()
    return [tuple(row) for row in result.all()]
