"""Who an API key acts as (issue 21): the person who issued it, or, for a key made with
`flask api-key create` (no issuer), a system actor named after the key.

The command line is the operator's, who has staff reach: a CLI key with the `manage`
permission may move tenants in and out within its scope (every estate, or its `--estate`),
as "CLI key “NAME”". Rows that record a user (who made a tenancy, a refund) name none, and
the audit rows name the key.
"""
from __future__ import annotations

from dataclasses import dataclass

from app.audit import Actor
from app.models.api import ApiKey

ACTOR_LENGTH = 254  # audit_log.actor


def cli_key_label(key: ApiKey) -> str:
    return f"CLI key “{key.name}”"


def audit_actor(key: ApiKey, ip: str | None) -> Actor:
    """The actor audit rows written for a request with `key` name."""
    if key.created_by_user_id is not None:
        return Actor(f"api:{key.prefix}", key.created_by_user_id, ip)
    return Actor(f"api:{key.prefix} ({cli_key_label(key)})"[:ACTOR_LENGTH], None, ip)


@dataclass(frozen=True)
class CliKeyActor:
    """The user a move is made as for a key without an issuer: staff reach, no login (id None)."""

    key_name: str
    id: None = None
    active: bool = True
    is_staff: bool = True

    @property
    def display_name(self) -> str:
        return f"CLI key “{self.key_name}”"


def move_actor(key: ApiKey) -> CliKeyActor | None:
    """The stand-in actor of a CLI key, or None when the key has an issuer (who must be looked up)."""
    return CliKeyActor(key.name) if key.created_by_user_id is None else None
