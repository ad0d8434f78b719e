"""Folding the pocket roll-ups (O1/O2) while top-ups commit and other readers fold: every
transaction is added exactly once, whoever folds it and whenever it commits."""
import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.ledger import Entry, post
from app.ledger.pocket_flows import fold
from app.models import Posting
from app.models.reporting import PocketFlowTotal, PocketFlowWatermark
from tests.factories import make_estate_with_wallet
from tests.integration.test_ledger_concurrency import run_in_threads

pytestmark = pytest.mark.slow

TOPUPS = 150


def test_concurrent_folds_count_every_transaction_once(session, engine):
    kit = make_estate_with_wallet(session)
    session.commit()
    estate_id, clearing_id = kit.estate.id, kit.accounts.clearing.id
    pockets = [p.id for p in kit.wallet.pockets]
    posting_done = threading.Event()

    def poster():
        with Session(engine) as own:
            for n in range(TOPUPS):
                amount = Decimal(n % 9 + 1) + Decimal("0.25")
                pocket = pockets[n % len(pockets)]
                post(own, Entry(estate_id, "topup", f"fold-race:{n}", [(pocket, amount), (clearing_id, -amount)]))
                own.commit()
        posting_done.set()
        return TOPUPS

    def folder():
        folded = 0
        with Session(engine) as own:
            while not posting_done.is_set():
                folded += fold(own, [estate_id])
            folded += fold(own, [estate_id])
        return folded

    _, first, second = run_in_threads(poster, folder, folder)
    with Session(engine) as own:
        folded_later = fold(own, [estate_id])

    assert first + second + folded_later == TOPUPS, "each transaction folded by exactly one reader"
    session.expire_all()
    totals = dict(session.execute(select(PocketFlowTotal.account_id, func.sum(PocketFlowTotal.amount))
                                  .where(PocketFlowTotal.account_id.in_(pockets))
                                  .group_by(PocketFlowTotal.account_id)).all())
    posted = dict(session.execute(select(Posting.account_id, func.sum(Posting.amount))
                                  .where(Posting.account_id.in_(pockets)).group_by(Posting.account_id)).all())
    assert totals == posted and sum(posted.values()) > 0
    assert session.scalar(select(PocketFlowWatermark.last_seq).where(PocketFlowWatermark.estate_id == estate_id)) \
        == TOPUPS
