"""The money core: every movement of value goes through `post_many()` (or `post()` for one).

Design overview (the rules, each guarded in Python and, where marked, by the database):

1. A transaction has two or more legs; per commodity (a currency, or KWH/KL in units-mode
   estates) the legs sum to exactly zero. [DB: deferred zero-sum trigger on PostgreSQL]
2. Amounts are Decimal, quantised to the commodity's minor units (app.money). Never float.
3. Postings and transactions are append-only: corrections are `reverse()` entries.
   [DB: UPDATE/DELETE triggers on PostgreSQL and SQLite]
4. Every transaction has a unique idempotency key formed from its cause
   (`payfast:<pf_payment_id>`, `reading:<meter>:<ts>`); posting the same key again returns
   the original transaction and writes nothing; the same key with other legs is an error.
   [DB: unique index]
5. Nothing posts into a locked financial period; a closed one takes adjustments only.
   [DB: insert trigger for locked periods]
6. Each estate's transactions form a SHA-256 hash chain (seq, prev_hash, hash). The chain
   head row is locked while appending, which also serialises balance updates per estate.
7. `Account.balance` caches the sum of the account's postings and is written only here,
   in the same database transaction as the postings.

Functions take a session and plain values and never commit: the caller's unit of work
commits once, so a reading, its bill and its relay command land together or not at all.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from app.models import Account, Estate, FinancialPeriod, LedgerChain, LedgerTransaction, Posting, utcnow
from app.money import MoneyError, quantize, to_decimal

GENESIS_HASH = "0" * 64
ADJUSTMENT_KINDS = frozenset({"adjustment", "reversal"})


class LedgerError(Exception):
    """Base class: the entry was refused and nothing was written."""


class UnbalancedTransaction(LedgerError):
    """Legs do not sum to zero per commodity."""


class InvalidEntry(LedgerError):
    """The entry is malformed: too few legs, zero or non-decimal amounts, no key."""


class UnknownAccount(LedgerError):
    """A leg names an account that does not exist or belongs to another estate."""


class PeriodLocked(LedgerError):
    """The financial period is locked (C8)."""


class PeriodClosed(LedgerError):
    """The financial period is closed; only adjustments and reversals may post."""


class IdempotencyConflict(LedgerError):
    """The key was used before for a transaction with different legs."""


@dataclass(frozen=True)
class Leg:
    account_id: int
    amount: Decimal


@dataclass
class Entry:
    """One transaction to post; `legs` are (account id, signed amount)."""

    estate_id: int
    kind: str
    idempotency_key: str
    legs: Sequence[Leg | tuple[int, Decimal | str | int]]
    occurred_at: datetime | None = None
    memo: str = ""
    reverses_id: int | None = None
    created_by_user_id: int | None = None
    # Filled in by validation.
    _legs: list[tuple[int, Decimal, str]] = field(default_factory=list, repr=False)
    _period: str = ""


@dataclass(frozen=True)
class Posted:
    """The outcome of posting one entry: `created` is False for a replayed key."""

    transaction_id: int
    created: bool
    hash: str


def post(session: Session, entry: Entry) -> Posted:
    """Post one transaction, or return the original on a replayed idempotency key."""
    return post_many(session, [entry])[0]


def post_many(session: Session, entries: Sequence[Entry]) -> list[Posted]:
    """Post many independent transactions in one database round trip per step."""
    if not entries:
        return []
    estates = _load_estates(session, {e.estate_id for e in entries})
    accounts = _load_accounts(session, entries)
    for entry in entries:
        _validate(entry, accounts, estates)
    _check_periods(session, entries)

    results: dict[int, Posted] = {}  # by index in `entries`
    first_index_of_key: dict[str, int] = {}
    for index, entry in enumerate(entries):
        first_index_of_key.setdefault(entry.idempotency_key, index)

    by_estate: dict[int, list[int]] = defaultdict(list)
    for key, index in first_index_of_key.items():
        by_estate[entries[index].estate_id].append(index)

    # Lock chain heads in a fixed order so two batches over several estates never deadlock.
    for estate_id in sorted(by_estate):
        chain = _lock_chain(session, estate_id)
        indexes = by_estate[estate_id]
        existing = _existing(session, [entries[i].idempotency_key for i in indexes])
        new_indexes = []
        for i in indexes:
            if entries[i].idempotency_key in existing:
                results[i] = _replay(entries[i], existing[entries[i].idempotency_key])
            else:
                new_indexes.append(i)
        if new_indexes:
            _append(session, chain, [entries[i] for i in new_indexes], results, new_indexes)

    # Later entries in the batch with an already-seen key are replays of the first.
    for index, entry in enumerate(entries):
        if index not in results:
            first = first_index_of_key[entry.idempotency_key]
            if _leg_signature(entry._legs) != _leg_signature(entries[first]._legs):
                raise IdempotencyConflict(
                    f"key {entry.idempotency_key!r} appears twice in the batch with different legs"
                )
            original = results[first]
            results[index] = Posted(original.transaction_id, False, original.hash)
    return [results[i] for i in range(len(entries))]


def reverse(
    session: Session,
    transaction_id: int,
    *,
    memo: str = "",
    occurred_at: datetime | None = None,
    created_by_user_id: int | None = None,
) -> Posted:
    """Post the exact opposite of a transaction; reversing twice returns the first reversal."""
    original = session.get(LedgerTransaction, transaction_id)
    if original is None:
        raise InvalidEntry(f"transaction {transaction_id} does not exist")
    if original.reverses_id is not None:
        raise InvalidEntry(f"transaction {transaction_id} is itself a reversal")
    legs = [Leg(p.account_id, -p.amount) for p in original.postings]
    return post(session, Entry(
        estate_id=original.estate_id,
        kind="reversal",
        idempotency_key=f"reversal:{original.id}",
        legs=legs,
        occurred_at=occurred_at,
        memo=memo or f"Reversal of #{original.id} {original.memo}".strip(),
        reverses_id=original.id,
        created_by_user_id=created_by_user_id,
    ))


def period_of(moment: datetime, timezone: str) -> str:
    """Return the YYYY-MM financial period a moment falls in, in the estate's timezone."""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%Y-%m")


def transaction_hash(
    prev_hash: str,
    *,
    estate_id: int,
    seq: int,
    idempotency_key: str,
    kind: str,
    occurred_at: datetime,
    period: str,
    memo: str,
    reverses_id: int | None,
    legs: Iterable[tuple[int, Decimal, str]],
) -> str:
    """Hash a transaction's content chained to its predecessor's hash."""
    lines = [
        prev_hash, str(estate_id), str(seq), idempotency_key, kind,
        occurred_at.astimezone(ZoneInfo("UTC")).isoformat(timespec="microseconds"),
        period, memo, str(reverses_id or ""),
    ]
    lines += [f"{account}:{quantize(amount, commodity)}:{commodity}"
              for account, amount, commodity in sorted(_leg_signature(legs))]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


# --- internals -------------------------------------------------------------------------


def _load_estates(session: Session, ids: set[int]) -> dict[int, Estate]:
    estates = {e.id: e for e in session.scalars(select(Estate).where(Estate.id.in_(ids)))}
    missing = ids - estates.keys()
    if missing:
        raise UnknownAccount(f"estate(s) {sorted(missing)} do not exist")
    return estates


def _load_accounts(session: Session, entries: Sequence[Entry]) -> dict[int, tuple[int, str]]:
    ids: set[int] = set()
    for entry in entries:
        for leg in entry.legs:
            ids.add(int(leg[0] if isinstance(leg, tuple) else leg.account_id))
    rows = session.execute(
        select(Account.id, Account.estate_id, Account.commodity).where(Account.id.in_(ids))
    )
    return {row.id: (row.estate_id, row.commodity) for row in rows}


def _validate(entry: Entry, accounts: dict[int, tuple[int, str]], estates: dict[int, Estate]) -> None:
    if not entry.idempotency_key or len(entry.idempotency_key) > 200:
        raise InvalidEntry("an idempotency key of 1 to 200 characters is required")
    if not entry.kind:
        raise InvalidEntry("a transaction kind is required")
    if len(entry.legs) < 2:
        raise InvalidEntry(f"{entry.idempotency_key}: a transaction needs at least two legs")
    legs: list[tuple[int, Decimal, str]] = []
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for leg in entry.legs:
        account_id, raw = (leg if isinstance(leg, tuple) else (leg.account_id, leg.amount))
        account = accounts.get(int(account_id))
        if account is None:
            raise UnknownAccount(f"{entry.idempotency_key}: account {account_id} does not exist")
        estate_id, commodity = account
        if estate_id != entry.estate_id:
            raise UnknownAccount(
                f"{entry.idempotency_key}: account {account_id} belongs to another estate"
            )
        try:
            amount = quantize(to_decimal(raw), commodity)
        except MoneyError as error:
            raise InvalidEntry(f"{entry.idempotency_key}: {error}") from None
        if amount == 0:
            raise InvalidEntry(f"{entry.idempotency_key}: a leg of zero is not a movement")
        legs.append((int(account_id), amount, commodity))
        totals[commodity] += amount
    off = {c: t for c, t in totals.items() if t != 0}
    if off:
        detail = ", ".join(f"{c} {t:+}" for c, t in sorted(off.items()))
        raise UnbalancedTransaction(f"{entry.idempotency_key}: legs do not sum to zero ({detail})")
    if entry.occurred_at is None:
        entry.occurred_at = utcnow()
    elif entry.occurred_at.tzinfo is None:
        raise InvalidEntry(f"{entry.idempotency_key}: occurred_at must be timezone-aware")
    entry._legs = legs
    entry._period = period_of(entry.occurred_at, estates[entry.estate_id].timezone)


def _check_periods(session: Session, entries: Sequence[Entry]) -> None:
    wanted = {(e.estate_id, e._period) for e in entries}
    rows = session.execute(
        select(FinancialPeriod.estate_id, FinancialPeriod.period, FinancialPeriod.status).where(
            FinancialPeriod.estate_id.in_({estate for estate, _ in wanted}),
            FinancialPeriod.period.in_({period for _, period in wanted}),
            FinancialPeriod.status != "open",
        )
    )
    status = {(row.estate_id, row.period): row.status for row in rows}
    for entry in entries:
        state = status.get((entry.estate_id, entry._period))
        if state == "locked":
            raise PeriodLocked(
                f"{entry.idempotency_key}: period {entry._period} is locked; nothing may be posted"
            )
        if state == "closed" and entry.kind not in ADJUSTMENT_KINDS:
            raise PeriodClosed(
                f"{entry.idempotency_key}: period {entry._period} is closed; post an adjustment"
            )


def _lock_chain(session: Session, estate_id: int) -> LedgerChain:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    session.execute(
        dialect_insert(LedgerChain)
        .values(estate_id=estate_id, last_seq=0, last_hash=GENESIS_HASH)
        .on_conflict_do_nothing(index_elements=["estate_id"])
    )
    return session.scalars(
        select(LedgerChain)
        .where(LedgerChain.estate_id == estate_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _existing(session: Session, keys: list[str]) -> dict[str, tuple[int, str, list]]:
    found: dict[str, tuple[int, str, list]] = {}
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        rows = session.execute(
            select(LedgerTransaction.idempotency_key, LedgerTransaction.id, LedgerTransaction.hash,
                   Posting.account_id, Posting.amount, Posting.commodity)
            .join(Posting, Posting.transaction_id == LedgerTransaction.id)
            .where(LedgerTransaction.idempotency_key.in_(chunk))
        )
        for row in rows:
            key = row.idempotency_key
            if key not in found:
                found[key] = (row.id, row.hash, [])
            found[key][2].append((row.account_id, row.amount, row.commodity))
    return found


def _leg_signature(legs: Iterable[tuple[int, Decimal, str]]) -> list[tuple[int, Decimal, str]]:
    return sorted((int(a), quantize(amount, c), c) for a, amount, c in legs)


def _replay(entry: Entry, existing: tuple[int, str, list]) -> Posted:
    transaction_id, digest, legs = existing
    if _leg_signature(legs) != _leg_signature(entry._legs):
        raise IdempotencyConflict(
            f"key {entry.idempotency_key!r} was already used by transaction {transaction_id} "
            "with different legs"
        )
    return Posted(transaction_id, False, digest)


def _append(
    session: Session,
    chain: LedgerChain,
    entries: list[Entry],
    results: dict[int, Posted],
    indexes: list[int],
) -> None:
    recorded_at = utcnow()
    seq, prev = chain.last_seq, chain.last_hash
    rows = []
    for entry in entries:
        seq += 1
        digest = transaction_hash(
            prev, estate_id=entry.estate_id, seq=seq, idempotency_key=entry.idempotency_key,
            kind=entry.kind, occurred_at=entry.occurred_at, period=entry._period, memo=entry.memo,
            reverses_id=entry.reverses_id, legs=entry._legs,
        )
        rows.append({
            "estate_id": entry.estate_id, "seq": seq, "kind": entry.kind,
            "idempotency_key": entry.idempotency_key, "occurred_at": entry.occurred_at,
            "recorded_at": recorded_at, "period": entry._period, "memo": entry.memo,
            "reverses_id": entry.reverses_id, "created_by_user_id": entry.created_by_user_id,
            "prev_hash": prev, "hash": digest,
        })
        prev = digest
    ids = session.scalars(
        insert(LedgerTransaction).returning(LedgerTransaction.id, sort_by_parameter_order=True),
        rows,
    ).all()

    postings = []
    deltas: dict[int, Decimal] = defaultdict(Decimal)
    for transaction_id, entry, row, index in zip(ids, entries, rows, indexes, strict=True):
        for account_id, amount, commodity in entry._legs:
            postings.append({"transaction_id": transaction_id, "account_id": account_id,
                             "amount": amount, "commodity": commodity})
            deltas[account_id] += amount
        results[index] = Posted(transaction_id, True, row["hash"])
    session.execute(insert(Posting), postings)

    accounts = Account.__table__
    changes = [{"account": a, "delta": d} for a, d in sorted(deltas.items()) if d != 0]
    if changes:
        session.execute(
            update(accounts)
            .where(accounts.c.id == bindparam("account"))
            .values(balance=accounts.c.balance + bindparam("delta")),
            changes,
        )
    chain.last_seq, chain.last_hash = seq, prev
    session.flush([chain])
    # Loaded Account objects now hold stale balances.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Account) and obj.id in deltas:
            session.expire(obj, ["balance"])
