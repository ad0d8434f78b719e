"""The audit trail (X2): `record()` is the one call every write path uses."""
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.models import AuditLog


@dataclass(frozen=True)
class Actor:
    label: str  # the user's email, or "system:<job>"
    user_id: int | None = None
    ip: str | None = None


SYSTEM = Actor("system")
current_actor: ContextVar[Actor] = ContextVar("current_actor", default=SYSTEM)


@contextmanager
def acting_as(actor: Actor | None) -> Iterator[None]:
    """Audit rows written inside the block name `actor` (a CLI command, a job, a user's queued
    work); None leaves the current actor as it is."""
    if actor is None:
        yield
        return
    token = current_actor.set(actor)
    try:
        yield
    finally:
        current_actor.reset(token)


def record(
    session: Session,
    action: str,
    entity: Any,
    *,
    old: dict[str, Any] | None = None,
    new: dict[str, Any] | None = None,
    estate_id: int | None = None,
    actor: Actor | None = None,
) -> AuditLog:
    """Add an audit row for `action` on `entity` in the caller's unit of work."""
    who = actor or current_actor.get()
    row = AuditLog(
        actor_user_id=who.user_id, actor=who.label, ip=who.ip, action=action,
        entity_type=type(entity).__name__ if not isinstance(entity, str) else entity,
        entity_id=None if isinstance(entity, str) else str(getattr(entity, "id", "") or ""),
        estate_id=estate_id if estate_id is not None else getattr(entity, "estate_id", None),
        old=_jsonable(old), new=_jsonable(new),
    )
    session.add(row)
    return row


def changes(obj: Any, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply `values` to `obj`; return (old, new) for the fields that really changed."""
    old, new = {}, {}
    for name, value in values.items():
        before = getattr(obj, name)
        if before != value:
            old[name], new[name] = before, value
            setattr(obj, name, value)
    return old, new


def _jsonable(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if values is None:
        return None
    return {k: v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
            for k, v in values.items()}
