"""Concurrent writers on PostgreSQL: no lost balance update, no duplicate seq, no double post.

Each thread opens its own Session on its own pooled connection, as two web workers or an
RQ worker and a webhook would, and commits every entry separately.
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.ledger import Entry, post
from app.ledger.verify import summarise, verify_ledger
from app.models import Account, LedgerTransaction, Posting
from tests.factories import make_estate_with_wallet

pytestmark = pytest.mark.slow

TOPUPS_PER_THREAD = 200


@pytest.fixture
def kit(session):
    kit = make_estate_with_wallet(session)
    session.commit()
    return kit


def run_in_threads(*workers):
    """Start the workers at the same moment; return their results, re-raising any error."""
    barrier = threading.Barrier(len(workers))

    def start(worker):
        barrier.wait(timeout=10)
        return worker()

    with ThreadPoolExecutor(len(workers)) as pool:
        futures = [pool.submit(start, worker) for worker in workers]
        return [future.result(timeout=120) for future in futures]


def test_concurrent_topups_to_one_pocket_lose_nothing(session, engine, kit):
    pocket_id, clearing_id, estate_id = kit.pocket().id, kit.accounts.clearing.id, kit.estate.id

    def topups(thread: str):
        def work():
            with Session(engine) as own:
                for n in range(TOPUPS_PER_THREAD):
                    amount = Decimal(n % 7 + 1) + Decimal("0.01")
                    post(own, Entry(estate_id, "topup", f"{thread}:{n}",
                                    [(pocket_id, amount), (clearing_id, -amount)]))
                    own.commit()
        return work

    run_in_threads(topups("a"), topups("b"))

    per_thread = sum(Decimal(n % 7 + 1) + Decimal("0.01") for n in range(TOPUPS_PER_THREAD))
    session.expire_all()
    assert session.get(Account, pocket_id).balance == 2 * per_thread
    assert session.scalar(select(func.sum(Posting.amount)).where(Posting.account_id == pocket_id)) == 2 * per_thread
    assert session.get(Account, clearing_id).balance == -2 * per_thread
    seqs = session.scalars(select(LedgerTransaction.seq).order_by(LedgerTransaction.seq)).all()
    assert seqs == list(range(1, 2 * TOPUPS_PER_THREAD + 1))
    report = verify_ledger(session)
    assert report.ok, summarise(report)


def test_same_key_posted_at_the_same_moment_posts_once(session, engine, kit):
    pocket_id, clearing_id, estate_id = kit.pocket().id, kit.accounts.clearing.id, kit.estate.id
    rounds = 25

    for n in range(rounds):
        def deliver():
            # The same ITN delivered twice, e.g. a gateway retry racing the original.
            with Session(engine) as own:
                result = post(own, Entry(estate_id, "topup", f"payfast:{n}",
                                         [(pocket_id, Decimal("10")), (clearing_id, Decimal("-10"))]))
                own.commit()
                return result

        first, second = run_in_threads(deliver, deliver)
        assert first.transaction_id == second.transaction_id
        assert sorted([first.created, second.created]) == [False, True]

    session.expire_all()
    assert session.scalar(select(func.count()).select_from(LedgerTransaction)) == rounds
    assert session.get(Account, pocket_id).balance == Decimal("10") * rounds
    report = verify_ledger(session)
    assert report.ok, summarise(report)


def test_concurrent_posts_in_different_estates_keep_separate_chains(session, engine, kit):
    other = make_estate_with_wallet(session)
    session.commit()
    targets = [(k.estate.id, k.pocket().id, k.accounts.clearing.id) for k in (kit, other)]

    def writer(estate_id, pocket_id, clearing_id):
        def work():
            with Session(engine) as own:
                for n in range(50):
                    post(own, Entry(estate_id, "topup", f"e{estate_id}:{n}",
                                    [(pocket_id, Decimal("1.5")), (clearing_id, Decimal("-1.5"))]))
                    own.commit()
        return work

    run_in_threads(*(writer(*t) for t in targets))
    session.expire_all()
    for estate_id, pocket_id, _ in targets:
        seqs = session.scalars(select(LedgerTransaction.seq).where(LedgerTransaction.estate_id == estate_id)
                               .order_by(LedgerTransaction.seq)).all()
        assert seqs == list(range(1, 51))
        assert session.get(Account, pocket_id).balance == Decimal("75")
    report = verify_ledger(session)
    assert report.ok, summarise(report)
