"""Bulk upserts keyed by a source id that touch only rows whose values really changed."""
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Table, Text, cast, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

CHUNK = 1000


def upsert_changed(session: Session, table: Table, rows: Sequence[dict[str, Any]], now: datetime,
                   key: str = "uisp_id") -> int:
    """Insert new rows, update changed ones (un-removing them); return how many were written."""
    if not rows:
        return 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    columns = [name for name in rows[0] if name != key]
    for start in range(0, len(rows), CHUNK):
        chunk = [{**row, "changed_at": now, "removed_at": None} for row in rows[start:start + CHUNK]]
        stmt = insert(table)
        excluded = stmt.excluded
        differs = or_(*(_comparable(table.c[name]).is_distinct_from(_comparable(excluded[name]))
                        for name in columns),
                      table.c.removed_at.is_not(None))
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c[key]],
            # Only excluded.* here: a bound value outside VALUES makes SQLAlchemy send
            # one statement per row instead of one per chunk (measured: 5k vs 50k+ rows/s).
            set_={**{name: excluded[name] for name in columns},
                  "changed_at": excluded.changed_at, "removed_at": excluded.removed_at},
            where=differs,
        )
        session.execute(stmt, chunk)
    # Every row written carries exactly `now`: counting them is cheaper than RETURNING, which
    # made the batched statement ~6x slower (rowcount is -1 for batched inserts).
    return session.scalar(select(func.count()).select_from(table).where(table.c.changed_at == now))


def mark_removed(session: Session, table: Table, live_scope, seen: Iterable[int], now: datetime,
                 key: str = "uisp_id") -> int:
    """Set removed_at on live rows matched by `live_scope` whose key was not `seen`; return count."""
    seen = set(seen)
    live = session.scalars(select(table.c[key]).where(table.c.removed_at.is_(None), live_scope)).all()
    gone = [value for value in live if value not in seen]
    for start in range(0, len(gone), CHUNK):
        session.execute(update(table).where(table.c[key].in_(gone[start:start + CHUNK]))
                        .values(removed_at=now, changed_at=now))
    return len(gone)


def _comparable(column):
    """JSON has no equality operator on PostgreSQL: compare its text (we always write it alike)."""
    return cast(column, Text) if isinstance(column.type, JSON) else column
