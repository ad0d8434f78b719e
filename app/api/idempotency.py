"""Idempotency-Key on money-moving POSTs, with Stripe's semantics.

The first request under a (key, Idempotency-Key) claims a row in its own short transaction
(`INSERT ... ON CONFLICT DO NOTHING`: of concurrent requests exactly one wins); its response
(status and body) is stored and replayed for 24 hours. The same key with a different body is
a 422; while the first is still running, a 409. A 5xx is not kept, so the client may retry.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Engine

from app.jobs import job
from app.models import utcnow
from app.models.api import IdempotentRequest

KEEP_FOR = timedelta(hours=24)
MAX_KEY_LENGTH = 255
PURGE_JOB = "idempotency_purge"


@dataclass(frozen=True)
class Claim:
    """What to do with a request: run it (`row_id`), or answer `status`/`body` as stored or refused."""

    row_id: int | None = None
    status: int | None = None
    body: str | None = None
    replayed: bool = False
    refusal: str | None = None


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests under one key "the same": method, path and exact body."""
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def _insert(engine: Engine):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(IdempotentRequest)


def claim(engine: Engine, api_key_id: int, idempotency_key: str, fingerprint: str) -> Claim:
    """Claim the key for this request, or say how to answer it (replay, 409, 422); commits."""
    now = utcnow()
    with engine.connect() as connection:
        connection.execute(delete(IdempotentRequest).where(
            IdempotentRequest.api_key_id == api_key_id, IdempotentRequest.idempotency_key == idempotency_key,
            IdempotentRequest.created_at < now - KEEP_FOR))
        inserted = connection.execute(
            _insert(engine).values(api_key_id=api_key_id, idempotency_key=idempotency_key,
                                   request_hash=fingerprint, created_at=now)
            .on_conflict_do_nothing(index_elements=["api_key_id", "idempotency_key"])
            .returning(IdempotentRequest.id)).scalar()
        connection.commit()
        if inserted is not None:
            return Claim(row_id=inserted)
        row = connection.execute(select(IdempotentRequest).where(
            IdempotentRequest.api_key_id == api_key_id,
            IdempotentRequest.idempotency_key == idempotency_key)).one_or_none()
    if row is None:  # deleted between the two statements (a 5xx released it): ask again
        return Claim(status=409, refusal="a request with this Idempotency-Key was just retried; send it again")
    if row.request_hash != fingerprint:
        return Claim(status=422, refusal="this Idempotency-Key was used with a different request body; "
                                         "use a new key for a new request")
    if row.response_status is None:
        return Claim(status=409, refusal="a request with this Idempotency-Key is still being processed; "
                                         "retry in a moment")
    return Claim(status=row.response_status, body=row.response_body, replayed=True)


def store(engine: Engine, row_id: int, status: int, body: str) -> None:
    """Keep the first response for replays; a 5xx releases the key instead."""
    with engine.connect() as connection:
        if status >= 500:
            connection.execute(delete(IdempotentRequest).where(IdempotentRequest.id == row_id))
        else:
            connection.execute(update(IdempotentRequest).where(IdempotentRequest.id == row_id)
                               .values(response_status=status, response_body=body))
        connection.commit()


def purge_expired(engine: Engine) -> int:
    """Forget stored responses older than 24 hours; return how many."""
    with engine.connect() as connection:
        count = connection.execute(delete(IdempotentRequest).where(
            IdempotentRequest.created_at < utcnow() - KEEP_FOR)).rowcount
        connection.commit()
    return count


@job(PURGE_JOB)
def purge_job(session, progress) -> str:
    """Cron job (daily): forget the stored responses past their 24 hours."""
    from app.extensions import db

    count = purge_expired(db.engine)
    return f"{count} stored response{'s' if count != 1 else ''} forgotten"
