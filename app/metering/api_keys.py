"""API keys for the HTTP readings endpoint (M4): issued once in plain text, stored hashed."""
import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models.metering import IngestApiKey


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str) -> str:
    """Store a new key for a gateway and return it (the only time it is visible)."""
    key = "mwk_" + secrets.token_urlsafe(32)
    session.add(IngestApiKey(name=name[:100], key_hash=_digest(key)))
    return key


def key_is_valid(session: Session, key: str | None) -> bool:
    """Whether a presented key matches an unrevoked one."""
    if not key:
        return False
    found = session.scalar(select(IngestApiKey.id).where(
        IngestApiKey.key_hash == _digest(key), IngestApiKey.revoked_at.is_(None)))
    return found is not None
