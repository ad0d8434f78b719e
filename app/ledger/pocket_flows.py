"""Pocket postings rolled up per account, month and kind (for O1 and O2), kept up to date by folding.

`fold()` adds to `pocket_flow_totals` every transaction of an estate's hash chain after the
estate's watermark, then moves the watermark. That is safe because an estate's chain is
appended under a lock on its head until commit (app.ledger): every committed transaction has
a sequence number at or below the highest committed one, and none appears below it later.
The watermark row is locked while folding, so two readers never add the same transactions.
Reports call `fold()` before reading, so what they show is as fresh as the ledger; the work
per call is proportional to what was posted since the last one, which the `pocket_flows` job
(every 10 minutes from workers/cron.py) keeps small.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, aliased

from app.jobs import job
from app.models import Account, LedgerTransaction, Posting
from app.models.reporting import PocketFlowTotal, PocketFlowWatermark


def _insert(session: Session):
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def fold(session: Session, estate_ids: Iterable[int]) -> int:
    """Roll up the pocket postings of these estates not folded yet, and commit; returns transactions folded."""
    insert = _insert(session)
    folded = 0
    for estate_id in sorted(set(estate_ids)):
        # One round trip for the usual case, nothing new: the chain's head (a backward scan of
        # the (estate_id, seq) index) against the watermark, no lock taken.
        head, last = session.execute(select(
            select(func.max(LedgerTransaction.seq)).where(LedgerTransaction.estate_id == estate_id).scalar_subquery(),
            select(PocketFlowWatermark.last_seq).where(PocketFlowWatermark.estate_id == estate_id)
            .scalar_subquery())).one()
        if head is None or (last is not None and last >= head):
            continue
        session.execute(insert(PocketFlowWatermark).values(estate_id=estate_id, last_seq=0)
                        .on_conflict_do_nothing(index_elements=["estate_id"]))
        last = session.scalar(select(PocketFlowWatermark.last_seq)
                              .where(PocketFlowWatermark.estate_id == estate_id).with_for_update())
        head = session.scalar(select(func.max(LedgerTransaction.seq)).where(LedgerTransaction.estate_id == estate_id))
        if head <= last:
            continue  # another request folded while this one waited for the lock
        original = aliased(LedgerTransaction)
        kind = func.coalesce(original.kind, LedgerTransaction.kind)
        rows = (select(Posting.account_id, LedgerTransaction.period, kind, func.sum(Posting.amount))
                .select_from(LedgerTransaction)
                .join(Posting, Posting.transaction_id == LedgerTransaction.id)
                .join(Account, Account.id == Posting.account_id)
                .outerjoin(original, original.id == LedgerTransaction.reverses_id)
                .where(LedgerTransaction.estate_id == estate_id, LedgerTransaction.seq > last,
                       LedgerTransaction.seq <= head, Account.kind == "pocket")
                .group_by(Posting.account_id, LedgerTransaction.period, kind))
        statement = insert(PocketFlowTotal).from_select(["account_id", "period", "kind", "amount"], rows)
        statement = statement.on_conflict_do_update(
            index_elements=["account_id", "period", "kind"],
            set_={"amount": PocketFlowTotal.amount + statement.excluded.amount})
        session.execute(statement)
        session.execute(update(PocketFlowWatermark).where(PocketFlowWatermark.estate_id == estate_id)
                        .values(last_seq=head))
        folded += head - last
        session.commit()  # per estate: the watermark's lock is held no longer than its fold
    return folded


@job("pocket_flows")
def fold_all_job(session: Session, progress) -> str:
    """Fold every estate's new pocket postings, so an owner's first page view has little left to add."""
    from app.models import Estate

    folded = fold(session, session.scalars(select(Estate.id)))
    return f"{folded} ledger transaction(s) folded into the pocket roll-ups"
