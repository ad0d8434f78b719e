"""API keys for the HTTP readings endpoint (M4): issued once in plain text, stored hashed.

Staff (app/layers/staff/metering.py) and `flask api-key create|list|revoke` both go through
`issue_api_key()` / `revoke_api_key()`, which audit and commit. A key's prefix is kept in
clear so people can tell keys apart; its last use is stamped at most every few minutes, in
its own short transaction, so gateways never queue behind one another on the key's row.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import audit
from app.metering import MeteringError
from app.models import utcnow
from app.models.metering import IngestApiKey

KEY_PREFIX = "mwk_"
PREFIX_LENGTH = 12  # "mwk_" and 8 characters of the secret
LAST_USED_RESOLUTION = timedelta(minutes=5)


class ApiKeyError(MeteringError):
    """The key cannot be created or revoked as asked."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str) -> str:
    """Add a new key for a gateway and return it (the only time it is visible); caller commits."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(IngestApiKey(name=name[:100], key_hash=_digest(key), prefix=key[:PREFIX_LENGTH]))
    return key


def issue_api_key(session: Session, name: str, *, user_id: int | None = None) -> tuple[IngestApiKey, str]:
    """Create, audit and commit a named key; return the row and the plain key."""
    name = (name or "").strip()
    if not name:
        raise ApiKeyError("Give the key a name (which gateway or system uses it).")
    if len(name) > 100:
        raise ApiKeyError("A key name has at most 100 characters.")
    key = create_api_key(session, name)
    session.flush()
    row = session.scalar(select(IngestApiKey).where(IngestApiKey.key_hash == _digest(key)))
    audit.record(session, "api_key.create", row, new={"name": name, "prefix": row.prefix})
    session.commit()
    return row, key


def revoke_api_key(session: Session, key_id: int) -> IngestApiKey:
    """Revoke a key for good (it answers 401 from now on); audit and commit."""
    row = session.get(IngestApiKey, key_id)
    if row is None:
        raise ApiKeyError(f"There is no API key #{key_id}.")
    if row.revoked_at is not None:
        raise ApiKeyError(f"Key “{row.name}” is already revoked.")
    row.revoked_at = utcnow()
    audit.record(session, "api_key.revoke", row, old={"revoked_at": None},
                 new={"name": row.name, "prefix": row.prefix, "revoked_at": row.revoked_at})
    session.commit()
    return row


def api_keys(session: Session) -> list[IngestApiKey]:
    """Every key, live ones first, newest first."""
    return list(session.scalars(select(IngestApiKey).order_by(
        IngestApiKey.revoked_at.is_not(None), IngestApiKey.id.desc())))


def key_is_valid(session: Session, key: str | None) -> bool:
    """Whether a presented key matches an unrevoked one (and note that it was used)."""
    if not key:
        return False
    found = session.scalar(select(IngestApiKey.id).where(
        IngestApiKey.key_hash == _digest(key), IngestApiKey.revoked_at.is_(None)))
    if found is None:
        return False
    _stamp_last_use(session, found)
    return True


def _stamp_last_use(session: Session, key_id: int) -> None:
    """Record the key's use in its own transaction, at most once per LAST_USED_RESOLUTION."""
    now = utcnow()
    with session.get_bind().connect() as connection:
        connection.execute(update(IngestApiKey).where(
            IngestApiKey.id == key_id,
            (IngestApiKey.last_used_at.is_(None)) | (IngestApiKey.last_used_at < now - LAST_USED_RESOLUTION),
        ).values(last_used_at=now))
        connection.commit()
