"""Idempotency-Key on money-moving POSTs, with Stripe's semantics.

The first request under a (key, Idempotency-Key) claims a row in the same transaction as the
work it guards, and its response (status and body) is stored there too: one commit, and a crash
rolls the claim back with the work. On PostgreSQL the claim also takes an advisory lock in the
same statement, so of concurrent requests exactly one runs and the others get a 409 without
waiting. The response is replayed for 24 hours. The same key with a different body is a 422;
while the first is still running, a 409. A 5xx is not kept, so the client may retry.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

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


LOCK_CLASS = 0x4D574944  # "MWID": the first half of a claim's advisory lock (the second: the key's digest)


def _lock_id(api_key_id: int, idempotency_key: str) -> int:
    """A signed 32-bit digest of (key, Idempotency-Key): the second half of the claim's advisory lock."""
    value = int.from_bytes(hashlib.sha256(f"{api_key_id}:{idempotency_key}".encode()).digest()[:4], "big")
    return value - (1 << 32) if value >= 1 << 31 else value


def _upsert(dialect: str, values: dict, cutoff):
    """INSERT the claim; on a clash, take over only a row past its 24 hours (else nothing returned)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(IdempotentRequest).values(**values)
    return statement.on_conflict_do_update(
        index_elements=["api_key_id", "idempotency_key"],
        set_={"request_hash": statement.excluded.request_hash, "created_at": statement.excluded.created_at,
              "response_status": statement.excluded.response_status,
              "response_body": statement.excluded.response_body},
        where=IdempotentRequest.created_at < cutoff).returning(IdempotentRequest.id)


# PostgreSQL: the claim takes a transaction-level advisory lock in the same statement. Only the
# request holding it inserts; a concurrent one with the same key finds the lock taken, inserts
# nothing and sees no row yet (the first has not committed): a 409, never a wait on the index.
_CLAIM_POSTGRES = text("""
    INSERT INTO api_idempotent_requests (api_key_id, idempotency_key, request_hash, created_at)
    SELECT :api_key_id, :idempotency_key, :request_hash, :created_at
    WHERE pg_try_advisory_xact_lock(:lock_class, :lock_id)
    ON CONFLICT (api_key_id, idempotency_key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, created_at = EXCLUDED.created_at,
        response_status = NULL, response_body = NULL
    WHERE api_idempotent_requests.created_at < :cutoff
    RETURNING id""")


def claim(session: Session, api_key_id: int, idempotency_key: str, fingerprint: str) -> Claim:
    """Claim the key for this request inside `session`'s transaction, or say how to answer it.

    The claim commits with the work it guards (`settle()`), so a crash or a rollback releases
    it with everything else: one commit per request. Of concurrent requests under one key
    exactly one claims it; the others get a 409 while it runs and its stored response after.
    A claim older than 24 hours is taken over. Never commits.
    """
    now = utcnow()
    values = {"api_key_id": api_key_id, "idempotency_key": idempotency_key, "request_hash": fingerprint,
              "created_at": now}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        inserted = session.execute(_CLAIM_POSTGRES, {
            **values, "cutoff": now - KEEP_FOR, "lock_class": LOCK_CLASS,
            "lock_id": _lock_id(api_key_id, idempotency_key)}).scalar()
    else:  # SQLite: one writer at a time; a second request waits for the first's commit
        inserted = session.execute(_upsert(dialect, {**values, "response_status": None, "response_body": None},
                                           now - KEEP_FOR)).scalar()
    if inserted is not None:
        return Claim(row_id=inserted)
    row = session.execute(select(IdempotentRequest.request_hash, IdempotentRequest.response_status,
                                 IdempotentRequest.response_body).where(
        IdempotentRequest.api_key_id == api_key_id,
        IdempotentRequest.idempotency_key == idempotency_key)).one_or_none()
    if row is None:  # another request holds the key and has not committed yet
        return Claim(status=409, refusal="a request with this Idempotency-Key is still being processed; "
                                         "retry in a moment")
    if row.request_hash != fingerprint:
        return Claim(status=422, refusal="this Idempotency-Key was used with a different request body; "
                                         "use a new key for a new request")
    if row.response_status is None:
        return Claim(status=409, refusal="a request with this Idempotency-Key is still being processed; "
                                         "retry in a moment")
    return Claim(status=row.response_status, body=row.response_body, replayed=True)


def settle(session: Session, row_id: int, status: int, body: str) -> bool:
    """Store the first response on the claim, in the caller's transaction (the caller commits).

    False when the claim is gone: the work rolled back (a refusal), taking the claim with it;
    `store_refusal()` then keeps the answer on its own.
    """
    table = IdempotentRequest.__table__  # a plain UPDATE: nothing loaded needs synchronising
    return session.execute(update(table).where(table.c.id == row_id)
                           .values(response_status=status, response_body=body)).rowcount == 1


def finish(session: Session, engine: Engine, claim_row_id: int, api_key_id: int, idempotency_key: str, fingerprint: str,
           status: int, body: str) -> None:
    """End a claimed request with its response; commits (the claim, the work and the response together).

    A 5xx is not kept (the work is rolled back and the claim freed, so the client may retry); a
    refusal whose work rolled back took the claim along, and its answer is stored on its own.
    """
    if status >= 500:
        session.rollback()
        release(engine, claim_row_id)
    elif settle(session, claim_row_id, status, body):
        session.commit()
    else:
        session.rollback()
        store_refusal(engine, api_key_id, idempotency_key, fingerprint, status, body)


def store_refusal(engine: Engine, api_key_id: int, idempotency_key: str, fingerprint: str,
                  status: int, body: str) -> None:
    """Keep a response whose work was rolled back (a 4xx), in its own transaction; commits.

    A request that claimed the key in between keeps its own claim (nothing is stored over it).
    """
    now = utcnow()
    with engine.connect() as connection:
        connection.execute(_upsert(engine.dialect.name, {
            "api_key_id": api_key_id, "idempotency_key": idempotency_key, "request_hash": fingerprint,
            "created_at": now, "response_status": status, "response_body": body}, now - KEEP_FOR))
        connection.commit()


def release(engine: Engine, row_id: int) -> None:
    """Forget a claim whose request failed (a 5xx), so the client may retry; commits.

    Only a claim the work committed before failing is still there (a rollback took the rest).
    """
    with engine.connect() as connection:
        connection.execute(delete(IdempotentRequest).where(IdempotentRequest.id == row_id,
                                                           IdempotentRequest.response_status.is_(None)))
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
