"""Settings: estate and global values by key (`get_setting`, `put_setting`, `clear_setting`); each write is audited.

An estate's own value wins over the global one (estate_id None). Ingest, billing, payments,
sources and statements read them; nothing here commits (the caller does).
"""
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.models import Setting


def get_setting(session: Session, key: str, estate_id: int | None = None, default: Any = None) -> Any:
    """Return a setting: the estate's own value, else the global one, else `default`."""
    rows = session.scalars(select(Setting).where(
        Setting.key == key, (Setting.estate_id == estate_id) | Setting.estate_id.is_(None)))
    values = {row.estate_id: row.value for row in rows}
    if estate_id in values:
        return values[estate_id]
    return values.get(None, default)


def put_setting(session: Session, key: str, value: Any, estate_id: int | None = None) -> None:
    """Store a setting globally (estate_id None) or for one estate."""
    row = session.scalar(select(Setting).where(Setting.key == key, Setting.estate_id.is_(estate_id)
                                               if estate_id is None else Setting.estate_id == estate_id))
    old = row.value if row else None
    if row is None:
        session.add(Setting(key=key, value=value, estate_id=estate_id))
    else:
        row.value = value
    audit.record(session, "setting.put", "Setting", old={key: old}, new={key: value}, estate_id=estate_id)


def clear_setting(session: Session, key: str, estate_id: int | None = None) -> bool:
    """Remove an estate's own value (or the global one), audited; False when there was none."""
    row = session.scalar(select(Setting).where(Setting.key == key, Setting.estate_id.is_(estate_id)
                                               if estate_id is None else Setting.estate_id == estate_id))
    if row is None:
        return False
    audit.record(session, "setting.clear", "Setting", old={key: row.value}, new={key: None}, estate_id=estate_id)
    session.delete(row)
    return True


def own_settings(session: Session, estate_id: int) -> dict[str, Any]:
    """The values an estate has set itself, by key (without the global ones)."""
    return {row.key: row.value for row in session.scalars(select(Setting).where(Setting.estate_id == estate_id))}
