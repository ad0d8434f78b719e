"""Checks the ledger: hash chains, zero-sum, and cached balances and pockets' "in debt since"
against postings (C3)."""
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, func, select
from sqlalchemy.orm import Session

from app.jobs import job
from app.ledger import DEBT_TRACKED_KINDS, GENESIS_HASH, transaction_hash
from app.ledger.anchors import Anchor, anchor_problem
from app.models import Account, Estate, LedgerChain, LedgerTransaction, Posting
from app.sql_arrays import driver_rows, matches_any, planned_for_these_values

BATCH = 2000
_CHAINED_COLUMNS = (
    LedgerTransaction.id, LedgerTransaction.estate_id, LedgerTransaction.seq,
    LedgerTransaction.idempotency_key, LedgerTransaction.kind, LedgerTransaction.occurred_at,
    LedgerTransaction.period, LedgerTransaction.memo, LedgerTransaction.reverses_id,
    LedgerTransaction.prev_hash, LedgerTransaction.hash,
)


@dataclass
class ChainReport:
    estate_id: int
    estate_code: str
    transactions: int = 0
    first_broken_id: int | None = None
    first_broken_seq: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken_id is None and self.reason is None


@dataclass
class BalanceMismatch:
    account_id: int
    code: str
    cached: Decimal
    from_postings: Decimal


@dataclass
class DebtSinceMismatch:
    account_id: int
    code: str
    cached: datetime | None
    from_postings: datetime | None


@dataclass
class VerifyReport:
    chains: list[ChainReport] = field(default_factory=list)
    balance_mismatches: list[BalanceMismatch] = field(default_factory=list)
    debt_since_mismatches: list[DebtSinceMismatch] = field(default_factory=list)
    unbalanced_transaction_ids: list[int] = field(default_factory=list)
    anchor_problems: list[str] = field(default_factory=list)
    anchors_held: list[Anchor] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (all(chain.ok for chain in self.chains) and not self.balance_mismatches
                and not self.debt_since_mismatches and not self.unbalanced_transaction_ids and not self.anchor_problems)


def verify_ledger(session: Session, estate_id: int | None = None,
                  anchors: Sequence[Anchor] = ()) -> VerifyReport:
    """Recompute every hash chain and cached balance, and check each anchor kept outside the database."""
    report = VerifyReport()
    for anchor in anchors:
        problem = anchor_problem(session, anchor)
        if problem:
            report.anchor_problems.append(problem)
        else:
            report.anchors_held.append(anchor)
    estates = select(Estate).order_by(Estate.id)
    if estate_id is not None:
        estates = estates.where(Estate.id == estate_id)
    for estate in session.scalars(estates):
        report.chains.append(_verify_chain(session, estate))
    report.balance_mismatches = _balance_mismatches(session, estate_id)
    report.debt_since_mismatches = _debt_since_mismatches(session, estate_id)
    report.unbalanced_transaction_ids = _unbalanced(session, estate_id)
    return report


def _verify_chain(session: Session, estate: Estate) -> ChainReport:
    result = ChainReport(estate.id, estate.code)
    prev_hash, expected_seq, last_seen = GENESIS_HASH, 1, 0
    postgres = session.get_bind().dialect.name == "postgresql"
    while True:
        # Plain driver rows, not ORM objects: the caller's session (and its identity map) is
        # left exactly as it was, memory stays flat on long chains, and no per-row type
        # conversion slows a re-hash of every transaction.
        transactions = driver_rows(session,
            select(*_CHAINED_COLUMNS)
            .where(LedgerTransaction.estate_id == estate.id, LedgerTransaction.seq > last_seen)
            .order_by(LedgerTransaction.seq)
            .limit(BATCH)
        )
        if not transactions:
            break
        legs = defaultdict(list)
        with planned_for_these_values(session, postgres):
            rows = driver_rows(session,
                select(Posting.transaction_id, Posting.account_id, Posting.amount, Posting.commodity)
                .where(matches_any(Posting.transaction_id, [t[0] for t in transactions], postgres,
                                   BigInteger))
            )
        for transaction_id, account_id, amount, commodity in rows:
            legs[transaction_id].append((account_id, amount, commodity))
        for (transaction_id, estate_id, seq, key, kind, occurred_at, period, memo, reverses_id,
             stored_prev, digest) in transactions:
            result.transactions += 1
            problem = None
            if seq != expected_seq:
                problem = f"sequence gap: expected {expected_seq}, found {seq}"
            elif stored_prev != prev_hash:
                problem = "prev_hash does not match the previous transaction's hash"
            elif digest != transaction_hash(
                stored_prev, estate_id=estate_id, seq=seq, idempotency_key=key, kind=kind,
                occurred_at=occurred_at, period=period, memo=memo, reverses_id=reverses_id,
                legs=legs[transaction_id],
            ):
                problem = "content does not match its hash (transaction or postings altered)"
            if problem:
                result.first_broken_id, result.first_broken_seq, result.reason = transaction_id, seq, problem
                return result
            prev_hash, expected_seq, last_seen = digest, seq + 1, seq
    head = session.execute(
        select(LedgerChain.last_seq, LedgerChain.last_hash).where(LedgerChain.estate_id == estate.id)
    ).first()
    if head is not None and (head.last_seq != last_seen or head.last_hash != prev_hash):
        result.reason = f"chain head says seq {head.last_seq}; the chain ends at {last_seen}"
    return result


def _balance_mismatches(session: Session, estate_id: int | None) -> list[BalanceMismatch]:
    sums = (
        select(Posting.account_id, func.sum(Posting.amount).label("total"))
        .group_by(Posting.account_id)
        .subquery()
    )
    query = select(Account.id, Account.code, Account.balance, func.coalesce(sums.c.total, 0)).outerjoin(
        sums, sums.c.account_id == Account.id
    )
    if estate_id is not None:
        query = query.where(Account.estate_id == estate_id)
    return [
        BalanceMismatch(account_id, code, Decimal(cached), Decimal(total))
        for account_id, code, cached, total in session.execute(query)
        if Decimal(cached) != Decimal(total)
    ]


def in_debt_since_from_postings(session: Session, *, estate_id: int | None = None,
                                account_ids: Iterable[int] | None = None) -> dict[int, datetime]:
    """Recompute "in debt since" from the postings, for the pockets whose postings sum below zero.

    Each transaction's net movement of a pocket, in ledger order (seq): the last one that took
    the running sum from zero or above to below zero dates the debt (`Account.in_debt_since`).
    """
    def crossings(extra) -> list:
        moves = (select(Posting.account_id, LedgerTransaction.seq, LedgerTransaction.occurred_at,
                        func.sum(Posting.amount).label("amount"))
                 .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                 .join(Account, Account.id == Posting.account_id)
                 .where(Account.kind.in_(DEBT_TRACKED_KINDS), *extra)
                 .group_by(Posting.account_id, LedgerTransaction.seq, LedgerTransaction.occurred_at)
                 .subquery())
        running = select(
            moves.c.account_id, moves.c.seq, moves.c.occurred_at, moves.c.amount,
            func.sum(moves.c.amount).over(partition_by=moves.c.account_id, order_by=moves.c.seq).label("after"),
            func.sum(moves.c.amount).over(partition_by=moves.c.account_id).label("total"),
        ).subquery()
        return session.execute(  # rounded: SQLite sums amounts as REALs
            select(running.c.account_id, running.c.seq, running.c.occurred_at)
            .where(func.round(running.c.total, 6) < 0, func.round(running.c.after, 6) < 0,
                   func.round(running.c.after - running.c.amount, 6) >= 0)).all()

    filters = [Account.estate_id == estate_id] if estate_id is not None else []
    if account_ids is None:
        rows = crossings(filters)
    else:
        ids, rows = sorted(set(account_ids)), []
        for start in range(0, len(ids), 5000):
            rows.extend(crossings([*filters, Account.id.in_(ids[start:start + 5000])]))
    last: dict[int, tuple[int, datetime]] = {}
    for account_id, seq, occurred_at in rows:
        if account_id not in last or seq > last[account_id][0]:
            last[account_id] = (seq, occurred_at)
    return {account_id: _aware(at) for account_id, (_, at) in last.items()}


def _aware(moment) -> datetime:
    if isinstance(moment, str):  # SQLite may hand a derived column's datetime back as text
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _debt_since_mismatches(session: Session, estate_id: int | None) -> list[DebtSinceMismatch]:
    expected = in_debt_since_from_postings(session, estate_id=estate_id)
    query = select(Account.id, Account.code, Account.in_debt_since).where(Account.kind.in_(DEBT_TRACKED_KINDS))
    if estate_id is not None:
        query = query.where(Account.estate_id == estate_id)
    found = []
    for account_id, code, cached in session.execute(query):
        should = expected.get(account_id)
        if cached is not None or should is not None:
            if cached is None or should is None or _aware(cached) != should:
                found.append(DebtSinceMismatch(account_id, code, cached, should))
    return found


def _unbalanced(session: Session, estate_id: int | None) -> list[int]:
    query = (
        select(Posting.transaction_id)
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .group_by(Posting.transaction_id, Posting.commodity)
        .having(func.round(func.sum(Posting.amount), 6) != 0)  # SQLite sums REALs
    )
    if estate_id is not None:
        query = query.where(LedgerTransaction.estate_id == estate_id)
    return sorted(set(session.scalars(query)))


def summarise(report: VerifyReport) -> str:
    """One paragraph a person can act on."""
    lines = []
    for chain in report.chains:
        if chain.ok:
            lines.append(f"{chain.estate_code}: {chain.transactions} transactions, chain intact")
        elif chain.first_broken_id is not None:
            lines.append(f"{chain.estate_code}: BROKEN at transaction {chain.first_broken_id} "
                         f"(seq {chain.first_broken_seq}): {chain.reason}")
        else:
            lines.append(f"{chain.estate_code}: {chain.reason}")
    for mismatch in report.balance_mismatches:
        lines.append(f"balance of {mismatch.code} (#{mismatch.account_id}) is {mismatch.cached} "
                     f"but its postings sum to {mismatch.from_postings}")
    for mismatch in report.debt_since_mismatches:
        cached = mismatch.cached.isoformat() if mismatch.cached else "not in debt"
        should = mismatch.from_postings.isoformat() if mismatch.from_postings else "not in debt"
        lines.append(f"in debt since of {mismatch.code} (#{mismatch.account_id}) is {cached} "
                     f"but its postings say {should}")
    for transaction_id in report.unbalanced_transaction_ids:
        lines.append(f"transaction {transaction_id} does not sum to zero")
    for anchor in report.anchors_held:
        lines.append(f"{anchor.estate_code}: anchor seq {anchor.seq} holds")
    lines.extend(report.anchor_problems)
    lines.append("LEDGER OK" if report.ok else "LEDGER BROKEN")
    return "\n".join(lines)


@job("ledger_verify")
def verify_job(session: Session, progress, estate_id: int | None = None) -> str:
    """Verify the ledger as a background job; the summary becomes the job's result."""
    progress.set_total(1)
    report = verify_ledger(session, estate_id)
    for line in summarise(report).splitlines():
        if "BROKEN" in line or "does not" in line or "but its postings" in line:  # also "in debt since"
            progress.error(line)
    progress.step()
    return summarise(report)
