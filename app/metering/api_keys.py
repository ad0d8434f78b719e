"""Keys for the HTTP readings endpoint (M4): `readings:write` keys of the one API key model.

The keys themselves live in app/integration/keys.py (one model, one issue/revoke path); these are the
readings endpoint's names for them, kept for `flask api-key create NAME` and the gateways.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integration import keys
from app.metering import MeteringError
from app.models.api import ApiKey

READINGS_PERMISSION = "readings:write"


class ApiKeyError(MeteringError):
    """The key cannot be created or revoked as asked."""


def create_api_key(session: Session, name: str) -> str:
    """Add a readings key over every estate and return it (the only time it is visible); commits."""
    return keys.issue_key(session, name[:100], permissions=[READINGS_PERMISSION]).key


def issue_api_key(session: Session, name: str, *, user_id: int | None = None) -> tuple[ApiKey, str]:
    """Create, audit and commit a named readings key; return the row and the plain key."""
    try:
        new = keys.issue_key(session, name, permissions=[READINGS_PERMISSION])
    except keys.ApiKeyError as error:
        raise ApiKeyError(str(error)) from error
    return new.row, new.key


def revoke_api_key(session: Session, key_id: int) -> ApiKey:
    """Revoke a key for good (it answers 401 from now on); audit and commit."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise ApiKeyError(f"There is no API key #{key_id}.")
    try:
        return keys.revoke_key(session, row)
    except keys.ApiKeyError as error:
        raise ApiKeyError(str(error)) from error


def api_keys(session: Session) -> list[ApiKey]:
    """Every key, live ones first, newest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())))


def key_is_valid(session: Session, key: str | None) -> bool:
    """Whether a presented key is live and may post readings (and note that it was used)."""
    row = keys.authenticate(session, key)
    return row is not None and READINGS_PERMISSION in row.permission_set
