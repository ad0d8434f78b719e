"""The money core: every movement of value goes through `post_many()` (or `post()` for one).

Design overview (the rules, each guarded in Python and, where marked, by the database):

1. A transaction has two or more legs; per commodity (a currency, or KWH/KL in units-mode
   estates) the legs sum to exactly zero. [DB: deferred zero-sum trigger on PostgreSQL]
2. Amounts are Decimal, quantised to the commodity's minor units (app.money). Never float.
3. Postings and transactions are append-only: corrections are `reverse()` entries.
   [DB: UPDATE/DELETE triggers on PostgreSQL and SQLite; TRUNCATE triggers on PostgreSQL]
   Each estate's chain head is also published outside the database (app.ledger.anchors).
4. Every transaction has a unique idempotency key formed from its cause
   (`payfast:<pf_payment_id>`, `reading:<meter>:<ts>`); posting the same key again returns
   the original transaction and writes nothing; the same key with other legs is an error.
   [DB: unique index]
5. Nothing posts into a locked financial period; a closed one takes adjustments only.
   [DB: insert trigger for locked periods]
6. Each estate's transactions form a SHA-256 hash chain (seq, prev_hash, hash). The chain
   head row is locked while appending, which also serialises balance updates per estate.
7. `Account.balance` caches the sum of the account's postings and is written only here,
   in the same database transaction as the postings. So is `Account.in_debt_since` of a
   wallet pocket: the `occurred_at` of the transaction at which its running balance, in
   ledger order (seq), last went from zero or above to below zero; null while the balance
   is zero or above. `ledger verify` recomputes both from the postings.

Functions take a session and plain values and never commit: the caller's unit of work
commits once, so a reading, its bill and its relay command land together or not at all.
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import BigInteger, String, bindparam, insert, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from app.models import Account, Estate, FinancialPeriod, LedgerChain, LedgerTransaction, Posting, utcnow
from app.money import MoneyError, minor_units, quantize, to_decimal
from app.periods import period_of
from app.sql_arrays import matches_any, pg_array, planned_for_these_values

GENESIS_HASH = "0" * 64
ADJUSTMENT_KINDS = frozenset({"adjustment", "reversal"})
# Account kinds whose "in debt since" is kept next to the balance (app.billing.debt ages them).
DEBT_TRACKED_KINDS = frozenset({"pocket"})


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
    # The caller knows no transaction holds the key (it was made in this very transaction from a
    # row whose own unique index was just passed, as an API top-up's payment): the replay lookup
    # is skipped. Should one exist after all, the key's unique index refuses the write.
    new_key: bool = False
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
    postgres = session.get_bind().dialect.name == "postgresql"
    accounts, timezones = _load_accounts(session, entries, postgres)
    for entry in entries:
        _validate(entry, accounts, timezones)

    results: dict[int, Posted] = {}  # by index in `entries`
    first_index_of_key: dict[str, int] = {}
    for index, entry in enumerate(entries):
        first = first_index_of_key.setdefault(entry.idempotency_key, index)
        if first != index and _leg_signature(entry._legs) != _leg_signature(entries[first]._legs):
            raise IdempotencyConflict(
                f"key {entry.idempotency_key!r} appears twice in the batch with different legs"
            )

    by_estate: dict[int, list[int]] = defaultdict(list)
    for key, index in first_index_of_key.items():
        by_estate[entries[index].estate_id].append(index)

    # Lock chain heads in a fixed order so two batches over several estates never deadlock;
    # the statement locking a head also reads its estate's closed and locked periods among
    # those the batch posts into. Every period, replay and conflict is decided before
    # anything is appended: a refused batch leaves nothing behind in the caller's unit of work.
    wanted: dict[int, set[str]] = defaultdict(set)
    for entry in entries:
        wanted[entry.estate_id].add(entry._period)
    chains: dict[int, LedgerChain] = {}
    status: dict[tuple[int, str], str] = {}
    for estate_id in sorted(by_estate):
        chains[estate_id] = _lock_chain(session, estate_id, postgres, wanted[estate_id], status, entries)
    _refuse_closed_periods(entries, status)
    to_append: list[tuple[LedgerChain, list[int]]] = []
    for estate_id in sorted(by_estate):
        chain = chains[estate_id]
        indexes = by_estate[estate_id]
        existing = _existing(session, [entries[i].idempotency_key for i in indexes
                                       if not entries[i].new_key], postgres)
        new_indexes = []
        for i in indexes:
            if entries[i].idempotency_key in existing:
                results[i] = _replay(entries[i], existing[entries[i].idempotency_key])
            else:
                new_indexes.append(i)
        if new_indexes:
            to_append.append((chain, new_indexes))
    tracked = {account_id for account_id, (_, _, kept) in accounts.items() if kept}
    for chain, new_indexes in to_append:
        _append(session, chain, [entries[i] for i in new_indexes], results, new_indexes, postgres,
                tracked)

    # Later entries in the batch with an already-seen key are replays of the first.
    for index, entry in enumerate(entries):
        if index not in results:
            original = results[first_index_of_key[entry.idempotency_key]]
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
    return _digest(prev_hash, estate_id, seq, idempotency_key, kind, occurred_at, period, memo,
                   reverses_id, _leg_signature(legs))


def _digest(prev_hash: str, estate_id: int, seq: int, idempotency_key: str, kind: str,
            occurred_at: datetime, period: str, memo: str, reverses_id: int | None,
            signature: list[tuple[int, Decimal, str]]) -> str:
    """SHA-256 of the canonical text, one line per field then one per leg of the sorted,
    quantised `signature` (`_leg_signature`): the bytes every stored hash was made from.

    The text is built by one join without per-field helpers: the hot path of posting
    and of every verify (a daily reconciliation re-hashes about 100,000 transactions).
    """
    if occurred_at.tzinfo is not UTC:
        occurred_at = occurred_at.astimezone(UTC)  # prints "+00:00" like any UTC zone
    text = "\n".join((
        prev_hash, str(estate_id), str(seq), idempotency_key, kind,
        occurred_at.isoformat(timespec="microseconds"), period, memo, str(reverses_id or ""),
        *[f"{account}:{amount}:{commodity}" for account, amount, commodity in signature],
    ))
    return hashlib.sha256(text.encode()).hexdigest()


# --- internals -------------------------------------------------------------------------
#
# On PostgreSQL each step of a batch is one statement whose text does not grow with the
# batch: lists travel as array parameters (app.sql_arrays). Other databases (SQLite in
# development) take the portable statements.


# Up to this many accounts are looked up by `id IN (...)`: a primary-key probe whose prepared
# plan is right whatever the table's size (an array's generic plan is not: see app.sql_arrays).
FEW_ACCOUNTS = 4


def _load_accounts(
    session: Session, entries: Sequence[Entry], postgres: bool
) -> tuple[dict[int, tuple[int, str, bool]], dict[int, str]]:
    """Each leg's account as (estate id, commodity, whether its "in debt since" is kept), and
    the timezone of each estate owning one (one query: every leg must be in its entry's estate,
    so an entry whose estate owns none of its accounts is refused by `_validate`)."""
    ids: set[int] = set()
    for entry in entries:
        for leg in entry.legs:
            ids.add(int(leg[0] if isinstance(leg, tuple) else leg.account_id))
    query = (select(Account.id, Account.estate_id, Account.commodity, Account.kind, Estate.timezone)
             .join(Estate, Estate.id == Account.estate_id))
    if len(ids) <= FEW_ACCOUNTS:  # one post's legs: a short IN of primary keys, prepared like any lookup
        rows = session.execute(query.where(Account.id.in_(sorted(ids)))).all()
    else:
        with planned_for_these_values(session, postgres):
            rows = session.execute(query.where(matches_any(Account.id, ids, postgres))).all()
    accounts = {row.id: (row.estate_id, row.commodity, row.kind in DEBT_TRACKED_KINDS) for row in rows}
    return accounts, {row.estate_id: row.timezone for row in rows}


def _validate(entry: Entry, accounts: dict[int, tuple[int, str, bool]], timezones: dict[int, str]) -> None:
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
        estate_id, commodity, _ = account
        if estate_id != entry.estate_id:
            if entry.estate_id not in timezones:  # no leg's account is the estate's: may not exist
                raise UnknownAccount(f"{entry.idempotency_key}: estate {entry.estate_id} does not exist "
                                     f"or owns none of the accounts (account {account_id} is another's)")
            raise UnknownAccount(
                f"{entry.idempotency_key}: account {account_id} belongs to another estate"
            )
        try:
            amount = _quantized(raw if type(raw) is Decimal else to_decimal(raw), commodity)
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
    entry._period = period_of(entry.occurred_at, timezones[entry.estate_id])


def _refuse_closed_periods(entries: Sequence[Entry], status: dict[tuple[int, str], str]) -> None:
    """Refuse the batch if an entry posts into a locked period, or a closed one (but adjustments)."""
    if not status:
        return
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


def _lock_chain(session: Session, estate_id: int, postgres: bool, periods: set[str],
                status: dict[tuple[int, str], str], entries: Sequence[Entry]) -> LedgerChain:
    """Lock the estate's chain head (created on its first post) and add to `status` the estate's
    periods among `periods` that are not open, read by the same statement."""
    locked = (
        select(LedgerChain, FinancialPeriod.period, FinancialPeriod.status)
        .outerjoin(FinancialPeriod, (FinancialPeriod.estate_id == LedgerChain.estate_id)
                   & FinancialPeriod.period.in_(periods) & (FinancialPeriod.status != "open"))
        .where(LedgerChain.estate_id == estate_id)
        .with_for_update(of=LedgerChain)
        .execution_options(populate_existing=True)
    )
    rows = session.execute(locked).all()
    if not rows:  # an estate's first post: its periods are checked before its head is made
        mine = [entry for entry in entries if entry.estate_id == estate_id]
        _refuse_closed_periods(mine, _period_status(session, estate_id, periods))
        if postgres:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        session.execute(
            dialect_insert(LedgerChain)
            .values(estate_id=estate_id, last_seq=0, last_hash=GENESIS_HASH)
            .on_conflict_do_nothing(index_elements=["estate_id"])
        )
        rows = session.execute(locked).all()
    for _, period, state in rows:
        if period is not None:
            status[(estate_id, period)] = state
    return rows[0][0]


def _period_status(session: Session, estate_id: int, periods: set[str]) -> dict[tuple[int, str], str]:
    rows = session.execute(
        select(FinancialPeriod.period, FinancialPeriod.status).where(
            FinancialPeriod.estate_id == estate_id, FinancialPeriod.period.in_(periods),
            FinancialPeriod.status != "open",
        )
    )
    return {(estate_id, period): state for period, state in rows}


def _existing(session: Session, keys: list[str], postgres: bool) -> dict[str, tuple[int, str, list]]:
    """The transactions already holding some of `keys`, with their legs, by key."""
    # Keys first (an index probe each), legs only for the keys found: usually none.
    found: dict[str, tuple[int, str, list]] = {}
    # SQLite caps the parameters of one statement; a single array parameter has no such cap.
    step = max(len(keys), 1) if postgres else 1000
    with planned_for_these_values(session, postgres):
        for start in range(0, len(keys), step):
            rows = session.execute(
                select(LedgerTransaction.idempotency_key, LedgerTransaction.id, LedgerTransaction.hash)
                .where(matches_any(LedgerTransaction.idempotency_key, keys[start:start + step],
                               postgres, String))
            ).all()
            for key, transaction_id, digest in rows:
                found[key] = (transaction_id, digest, [])
        key_of = {transaction_id: key for key, (transaction_id, _, _) in found.items()}
        ids = list(key_of)
        for start in range(0, len(ids), step):
            rows = session.execute(
                select(Posting.transaction_id, Posting.account_id, Posting.amount, Posting.commodity)
                .where(matches_any(Posting.transaction_id, ids[start:start + step], postgres, BigInteger))
                .order_by(Posting.id)
            ).all()
            for transaction_id, account_id, amount, commodity in rows:
                found[key_of[transaction_id]][2].append((account_id, amount, commodity))
    return found


def _leg_signature(legs: Iterable[tuple[int, Decimal, str]]) -> list[tuple[int, Decimal, str]]:
    """The legs as hashed and compared: account id, amount in the commodity's minor units, sorted."""
    return sorted([(int(a), _quantized(amount, c), c) for a, amount, c in legs])


# The quantum (Decimal("0.01") for ZAR) of each commodity seen, so quantising a Decimal
# read from the database costs one C call instead of app.money's checks and look-ups.
_QUANTA: dict[str, Decimal] = {}


def _quantized(amount, commodity: str) -> Decimal:
    """`app.money.quantize(amount, commodity)`, with a fast path for finite Decimals."""
    if type(amount) is Decimal and amount.is_finite():
        quantum = _QUANTA.get(commodity)
        if quantum is None:
            quantum = _QUANTA[commodity] = Decimal(1).scaleb(-minor_units(commodity))
        return amount.quantize(quantum, rounding=ROUND_HALF_EVEN)
    return quantize(amount, commodity)


def _replay(entry: Entry, existing: tuple[int, str, list]) -> Posted:
    transaction_id, digest, legs = existing
    if _leg_signature(legs) != _leg_signature(entry._legs):
        raise IdempotencyConflict(
            f"key {entry.idempotency_key!r} was already used by transaction {transaction_id} "
            "with different legs"
        )
    return Posted(transaction_id, False, digest)


# PostgreSQL: a batch is written by one statement whatever its size. Columns travel as
# arrays; data-modifying CTEs insert the transactions, their postings (joined to the new
# ids by seq, in leg order), add the deltas to the cached balances and move the chain head.
_TRANSACTION_COLUMNS = {
    "estate_id": "integer", "seq": "bigint", "kind": "varchar", "idempotency_key": "varchar",
    "occurred_at": "timestamptz", "recorded_at": "timestamptz", "period": "varchar",
    "memo": "varchar", "reverses_id": "bigint", "created_by_user_id": "integer",
    "prev_hash": "varchar", "hash": "varchar",
}
_WRITE_BATCH = text(
    "WITH txn AS ("
    f" INSERT INTO ledger_transactions ({', '.join(_TRANSACTION_COLUMNS)})"
    " SELECT * FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _TRANSACTION_COLUMNS.items())
    + ") RETURNING id, seq"
    "), new_postings AS ("
    " INSERT INTO postings (transaction_id, account_id, amount, commodity)"
    " SELECT txn.id, leg.account_id, leg.amount, leg.commodity"
    " FROM unnest(CAST(:leg_seq AS bigint[]), CAST(:leg_account_id AS integer[]),"
    " CAST(:leg_amount AS numeric[]), CAST(:leg_commodity AS varchar[]))"
    " WITH ORDINALITY AS leg(seq, account_id, amount, commodity, n)"
    " JOIN txn ON txn.seq = leg.seq ORDER BY leg.n"
    # Row locks are taken in join order, not id order: safe because the chain head lock
    # already serialises every balance change of an estate, and accounts belong to one estate.
    # "In debt since" of the pockets: each entry's net movement of a pocket is a step, in
    # batch (= seq) order; the running balance after each step starts from the cached balance
    # (the statement's snapshot, taken after the chain head was locked). The last step that
    # went from zero or above to below zero dates the debt; a balance left at zero or above
    # clears it; otherwise the date already kept stands.
    "), steps AS ("
    " SELECT step.account_id, step.at, step.n, step.amount,"
    " accounts.balance + sum(step.amount) OVER (PARTITION BY step.account_id ORDER BY step.n) AS after"
    " FROM unnest(CAST(:step_account_id AS integer[]), CAST(:step_amount AS numeric[]),"
    " CAST(:step_at AS timestamptz[])) WITH ORDINALITY AS step(account_id, amount, at, n)"
    " JOIN accounts ON accounts.id = step.account_id"
    "), crossings AS ("
    " SELECT account_id, (array_agg(at ORDER BY n DESC))[1] AS at FROM steps"
    " WHERE after < 0 AND after - amount >= 0 GROUP BY account_id"
    "), balances AS ("
    " UPDATE accounts SET balance = accounts.balance + delta.amount,"
    " in_debt_since = CASE WHEN NOT delta.tracked THEN accounts.in_debt_since"
    " WHEN accounts.balance + delta.amount >= 0 THEN NULL"
    " ELSE COALESCE(crossings.at, accounts.in_debt_since) END"
    " FROM unnest(CAST(:delta_account_id AS integer[]), CAST(:delta_amount AS numeric[]),"
    " CAST(:delta_tracked AS boolean[])) AS delta(account_id, amount, tracked)"
    " LEFT JOIN crossings ON crossings.account_id = delta.account_id"
    " WHERE accounts.id = delta.account_id"
    " RETURNING accounts.id, accounts.balance, accounts.in_debt_since"
    "), head AS ("
    " UPDATE ledger_chains SET last_seq = CAST(:head_seq AS bigint), last_hash = :head_hash"
    " WHERE estate_id = CAST(:head_estate_id AS integer)"
    # The new transactions' ids by seq, then the accounts' new balances (for the loaded objects).
    ") SELECT id, seq, CAST(NULL AS integer) AS account_id, CAST(NULL AS numeric) AS balance,"
    " CAST(NULL AS timestamptz) AS in_debt_since FROM txn"
    " UNION ALL SELECT NULL, NULL, id, balance, in_debt_since FROM balances"
)


def _append(
    session: Session,
    chain: LedgerChain,
    entries: list[Entry],
    results: dict[int, Posted],
    indexes: list[int],
    postgres: bool,
    tracked: set[int] = frozenset(),
) -> None:
    recorded_at = utcnow()
    seq, prev = chain.last_seq, chain.last_hash
    rows = []
    for entry in entries:
        seq += 1
        # _validate left the legs as (int, quantised Decimal, commodity): sorting them is
        # their _leg_signature.
        digest = _digest(prev, entry.estate_id, seq, entry.idempotency_key, entry.kind,
                         entry.occurred_at, entry._period, entry.memo, entry.reverses_id,
                         sorted(entry._legs))
        rows.append({
            "estate_id": entry.estate_id, "seq": seq, "kind": entry.kind,
            "idempotency_key": entry.idempotency_key, "occurred_at": entry.occurred_at,
            "recorded_at": recorded_at, "period": entry._period, "memo": entry.memo,
            "reverses_id": entry.reverses_id, "created_by_user_id": entry.created_by_user_id,
            "prev_hash": prev, "hash": digest,
        })
        prev = digest
    deltas: dict[int, Decimal] = defaultdict(Decimal)
    steps: list[tuple[int, Decimal, datetime]] = []  # tracked pockets: (account, entry's net, when)
    for entry in entries:
        net: dict[int, Decimal] | None = None
        for account_id, amount, _ in entry._legs:
            deltas[account_id] += amount
            if account_id in tracked:
                net = net if net is not None else defaultdict(Decimal)
                net[account_id] += amount
        if net:
            steps.extend((a, d, entry.occurred_at) for a, d in net.items() if d != 0)
    stepped = {a for a, _, _ in steps}
    # A pocket whose steps cancel out may still have crossed zero inside the batch: kept.
    changes = [(a, d) for a, d in sorted(deltas.items()) if d != 0 or a in stepped]

    balances: dict[int, tuple[Decimal, datetime | None]] = {}  # PostgreSQL: as the statement left them
    if postgres:
        ids = _write_batch_postgres(session, chain, entries, rows, changes, seq, prev, steps, tracked, balances)
    else:
        ids = _write_batch_portable(session, chain, entries, rows, changes, seq, prev, steps, tracked)
    for transaction_id, row, index in zip(ids, rows, indexes, strict=True):
        results[index] = Posted(transaction_id, True, row["hash"])

    # Loaded Account objects now hold stale balances: given the new ones where the write
    # returned them (no second read for a caller that shows the balance), else expired.
    identity_map = session.identity_map
    if len(identity_map) < len(deltas):
        stale = [obj for obj in identity_map.values()
                 if isinstance(obj, Account) and obj.id in deltas]
    else:
        stale = [obj for obj in (identity_map.get(identity_key(Account, a)) for a in deltas) if obj]
    for obj in stale:
        after = balances.get(obj.id)
        if after is None:
            session.expire(obj, ["balance", "in_debt_since"])
        else:
            set_committed_value(obj, "balance", after[0])
            set_committed_value(obj, "in_debt_since", after[1])


def _write_batch_postgres(
    session: Session, chain: LedgerChain, entries: list[Entry], rows: list[dict],
    changes: list[tuple[int, Decimal]], seq: int, prev: str,
    steps: list[tuple[int, Decimal, datetime]], tracked: set[int],
    balances: dict[int, tuple[Decimal, datetime | None]],
) -> list[int]:
    """Write the batch with one statement; return the new transaction ids in `rows` order and
    put each changed account's new balance and "in debt since" in `balances`."""
    params: dict[str, object] = {name: pg_array([row[name] for row in rows]) for name in _TRANSACTION_COLUMNS}
    legs = [(row["seq"], account_id, amount, commodity)
            for entry, row in zip(entries, rows, strict=True)
            for account_id, amount, commodity in entry._legs]
    params["leg_seq"], params["leg_account_id"], params["leg_amount"], params["leg_commodity"] = (
        [pg_array(column) for column in zip(*legs, strict=True)]
    )
    params["delta_account_id"] = pg_array(a for a, _ in changes)
    params["delta_amount"] = pg_array(d for _, d in changes)
    params["delta_tracked"] = pg_array(a in tracked for a, _ in changes)
    params["step_account_id"] = pg_array(a for a, _, _ in steps)
    params["step_amount"] = pg_array(d for _, d, _ in steps)
    params["step_at"] = pg_array(at for _, _, at in steps)
    params.update(head_seq=seq, head_hash=prev, head_estate_id=chain.estate_id)
    id_of_seq = {}
    for transaction_id, row_seq, account_id, balance, since in session.execute(_WRITE_BATCH, params):
        if transaction_id is not None:
            id_of_seq[row_seq] = transaction_id
        else:
            balances[account_id] = (balance, since)
    # The statement moved the head; tell the loaded object without writing it again.
    set_committed_value(chain, "last_seq", seq)
    set_committed_value(chain, "last_hash", prev)
    return [id_of_seq[row["seq"]] for row in rows]


def _write_batch_portable(
    session: Session, chain: LedgerChain, entries: list[Entry], rows: list[dict],
    changes: list[tuple[int, Decimal]], seq: int, prev: str,
    steps: list[tuple[int, Decimal, datetime]], tracked: set[int],
) -> list[int]:
    """Write the batch with portable statements (SQLite); return the new ids in `rows` order."""
    ids = session.scalars(
        insert(LedgerTransaction).returning(LedgerTransaction.id, sort_by_parameter_order=True),
        rows,
    ).all()
    session.execute(insert(Posting), [
        {"transaction_id": transaction_id, "account_id": account_id, "amount": amount,
         "commodity": commodity}
        for transaction_id, entry in zip(ids, entries, strict=True)
        for account_id, amount, commodity in entry._legs
    ])
    accounts = Account.__table__
    stepped = {a for a, _, _ in steps}
    plain = [(a, d) for a, d in changes if a not in stepped]
    if plain:
        session.execute(
            update(accounts)
            .where(accounts.c.id == bindparam("account"))
            .values(balance=accounts.c.balance + bindparam("delta")),
            [{"account": a, "delta": d} for a, d in plain],
        )
    if stepped:  # pockets: the same arithmetic as the PostgreSQL statement, in Python
        ids_wanted = sorted(stepped)
        before: dict[int, tuple[Decimal, datetime | None]] = {}
        for start in range(0, len(ids_wanted), 900):
            for account_id, balance, since in session.execute(
                    select(accounts.c.id, accounts.c.balance, accounts.c.in_debt_since)
                    .where(accounts.c.id.in_(ids_wanted[start:start + 900]))):
                before[account_id] = (balance, since)
        by_account: dict[int, list[tuple[Decimal, datetime]]] = defaultdict(list)
        for account_id, amount, at in steps:
            by_account[account_id].append((amount, at))
        updates = []
        for account_id, moves in by_account.items():
            balance, since = before[account_id]
            balance, since = debt_since_after(balance, since, moves)
            updates.append({"account": account_id, "new_balance": balance, "since": since})
        session.execute(
            update(accounts)
            .where(accounts.c.id == bindparam("account"))
            .values(balance=bindparam("new_balance"), in_debt_since=bindparam("since")),
            updates,
        )
    chain.last_seq, chain.last_hash = seq, prev
    session.flush([chain])
    return ids


def debt_since_after(balance: Decimal, since: datetime | None,
                     steps: Iterable[tuple[Decimal, datetime]]) -> tuple[Decimal, datetime | None]:
    """A pocket's balance and "in debt since" after `steps` (amount, when), applied in order.

    The rule kept in `Account.in_debt_since` (and checked by `ledger verify`): a step that takes
    the balance from zero or above to below zero dates the debt; one that leaves it at zero
    or above clears it; any other keeps the date it had.
    """
    for amount, at in steps:
        after = balance + amount
        if after >= 0:
            since = None
        elif balance >= 0:
            since = at
        balance = after
    return balance, since
