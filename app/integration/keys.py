"""API keys (A7): issued once in plain text, stored as a SHA-256, scoped to estates, with permissions.

A key reads `mw_live_<public id>_<secret>` (`mw_test_…` where API_KEY_MODE is "test"); the
public id and prefix are kept in clear so people can tell keys apart. Keys issued before this
(`mwk_…`, in gateways in the field) keep working as `readings:write` keys over every estate.

Scope follows the people who issue keys (app/auth/scope.py): staff keys may cover every
estate or one; an agent's key covers one of the agent's estates, and only while the agent
still holds that estate. `issue_key()` and `revoke_key()` audit and commit.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import ColumnElement, select, true, update
from sqlalchemy.orm import Session

from app import audit
from app.auth.scope import estate_ids_query
from app.models import Estate, RoleGrant, User, utcnow
from app.models.api import API_PERMISSIONS, ApiKey

LEGACY_PREFIX = "mwk_"
KEY_MODES = ("live", "test")
DEFAULT_RATE_LIMIT_PER_HOUR = 1000
# Legacy `mwk_` gateway keys "keep working unchanged" (issue 21): before A7 they had no limit, and a
# gateway posting each meter's reading on its own request makes thousands an hour. Counted, so a
# runaway gateway is still stopped, but at a gateway's scale (a per-key override still wins).
GATEWAY_RATE_LIMIT_PER_HOUR = 100_000
MAX_RATE_LIMIT_PER_HOUR = 1_000_000
LAST_USED_RESOLUTION = timedelta(minutes=5)
PERMISSION_LABELS = {
    "read": "Read estates, units, meters, wallets",
    "readings:write": "Post readings",
    "topups:write": "Top up wallets",
    "manage": "Manage units and meters",
    "webhooks:manage": "Manage webhooks",
}


class ApiKeyError(Exception):
    """The key cannot be created or revoked as asked; `errors` is keyed by form field."""

    def __init__(self, message: str, field: str = "name"):
        super().__init__(message)
        self.errors = {field: message}


def digest(key: str) -> str:
    """The stored form of a key: its SHA-256 in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_permissions(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """Permissions from a comma/space list or a sequence, in catalogue order; unknown ones refused."""
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(v).strip() for v in value]
    unknown = sorted({item for item in items if item not in API_PERMISSIONS})
    if unknown:
        raise ApiKeyError(f"Unknown permission {', '.join(unknown)}: choose from {', '.join(API_PERMISSIONS)}.",
                          "permissions")
    if not items:
        raise ApiKeyError("Choose at least one permission.", "permissions")
    return [p for p in API_PERMISSIONS if p in items]


@dataclass(frozen=True)
class NewKey:
    """A key just issued: its row and the plain key, visible this once."""

    row: ApiKey
    key: str


def issue_key(session: Session, name: str, *, permissions, estate: Estate | None = None,
              issuer: User | None = None, rate_limit_per_hour: int | None = None,
              mode: str = "live", legacy: bool = False) -> NewKey:
    """Create, audit and commit a key; `issuer` None is the CLI (like staff: any scope)."""
    name = (name or "").strip()
    if not name:
        raise ApiKeyError("Give the key a name (which system or gateway uses it).")
    if len(name) > 100:
        raise ApiKeyError("A key name has at most 100 characters.")
    chosen = parse_permissions(permissions)
    if mode not in KEY_MODES:
        raise ApiKeyError(f"Key mode is live or test, not {mode!r}.", "mode")
    if rate_limit_per_hour is not None and not 1 <= rate_limit_per_hour <= MAX_RATE_LIMIT_PER_HOUR:
        raise ApiKeyError(f"A rate limit is between 1 and {MAX_RATE_LIMIT_PER_HOUR:,} requests an hour.",
                          "rate_limit_per_hour")
    if issuer is not None and not issuer.is_staff:
        if estate is None:
            raise ApiKeyError("Choose the estate the key may reach.", "estate_id")
        reachable = session.scalar(select(Estate.id).where(
            Estate.id == estate.id, Estate.id.in_(estate_ids_query(issuer, ("agent",)))))
        if reachable is None:
            raise ApiKeyError("Choose one of your estates.", "estate_id")
    if legacy:
        public_id, key = None, LEGACY_PREFIX + secrets.token_urlsafe(32)
        prefix = key[:12]
    else:
        public_id = secrets.token_hex(4)
        prefix = f"mw_{mode}_{public_id}"
        key = f"{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(name=name, key_hash=digest(key), prefix=prefix, public_id=public_id,
                 permissions=" ".join(chosen), estate_id=estate.id if estate else None,
                 created_by_user_id=issuer.id if issuer else None, rate_limit_per_hour=rate_limit_per_hour)
    session.add(row)
    session.flush()
    audit.record(session, "api_key.create", row, estate_id=row.estate_id,
                 new={"name": name, "prefix": prefix, "permissions": row.permissions,
                      "estate": estate.code if estate else "all", "rate_limit_per_hour": rate_limit_per_hour})
    session.commit()
    return NewKey(row, key)


def revoke_key(session: Session, row: ApiKey) -> ApiKey:
    """Revoke a key for good (it answers 401 from now on); audit and commit."""
    if row.revoked_at is not None:
        raise ApiKeyError(f"Key “{row.name}” is already revoked.")
    row.revoked_at = utcnow()
    audit.record(session, "api_key.revoke", row, estate_id=row.estate_id, old={"revoked_at": None},
                 new={"name": row.name, "prefix": row.prefix, "revoked_at": row.revoked_at})
    session.commit()
    return row


def keys_for(session: Session, user: User | None) -> list[ApiKey]:
    """The keys a user may see and revoke (staff: all; an agent: those on the agent's estates)."""
    query = select(ApiKey).order_by(ApiKey.revoked_at.is_not(None), ApiKey.id.desc())
    if user is not None and not user.is_staff:
        query = query.where(ApiKey.estate_id.in_(estate_ids_query(user, ("agent",))))
    return list(session.scalars(query))


def key_for(session: Session, user: User, key_id: int) -> ApiKey | None:
    """One key if the user may manage it, else None (the view answers 404)."""
    row = session.get(ApiKey, key_id)
    if row is None or user.is_staff:
        return row
    return row if row.estate_id is not None and session.scalar(select(Estate.id).where(
        Estate.id == row.estate_id, Estate.id.in_(estate_ids_query(user, ("agent",))))) else None


def authenticate(session: Session, presented: str | None) -> ApiKey | None:
    """The live key matching a presented one (one indexed lookup), its use stamped; else None."""
    if not presented or len(presented) > 200:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == digest(presented), ApiKey.revoked_at.is_(None)))
    if row is not None:
        _stamp_last_use(session, row)
    return row


def _stamp_last_use(session: Session, row: ApiKey) -> None:
    """Record the key's use in its own transaction, at most once per LAST_USED_RESOLUTION."""
    now = utcnow()
    if row.last_used_at is not None and row.last_used_at >= now - LAST_USED_RESOLUTION:
        return
    with session.get_bind().connect() as connection:
        connection.execute(update(ApiKey).where(
            ApiKey.id == row.id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
        ).values(last_used_at=now))
        connection.commit()


def estate_condition(key: ApiKey, column) -> ColumnElement[bool]:
    """A WHERE condition on an estate id column limiting rows to the key's scope."""
    condition = true() if key.estate_id is None else column == key.estate_id
    creator = key.created_by_user_id
    if creator is not None:
        # An agent's key reaches only what its agent still reaches (the same grants as the pages).
        staff = select(RoleGrant.id).where(RoleGrant.user_id == creator, RoleGrant.role == "staff").exists()
        grants = estate_ids_query(SimpleNamespace(id=creator), ("agent",))
        condition = condition & (staff | column.in_(grants))
    return condition


def scope_estate_ids(session: Session, key: ApiKey) -> frozenset[int] | None:
    """The ids of the estates a key reaches now; None for a CLI key over every estate (no limit)."""
    if key.estate_id is None and key.created_by_user_id is None:
        return None
    return frozenset(session.scalars(select(Estate.id).where(estate_condition(key, Estate.id))))


def rate_limit(key: ApiKey, default: int = DEFAULT_RATE_LIMIT_PER_HOUR) -> str:
    """The key's Flask-Limiter limit string."""
    return f"{key.rate_limit_per_hour or default} per hour"
