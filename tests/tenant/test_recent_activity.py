"""Recent pocket activity (dashboard, unit pages): newest by occurred_at, however the postings arrived."""
from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import Account, LedgerTransaction, Posting
from app.reports.summaries import recent_pocket_activity
from tests import factories


def sorted_in_full(s, account_ids: list[int], limit: int) -> list[tuple]:
    """The answer by sorting every posting of the pockets (what the index path must reproduce)."""
    rows = s.execute(
        select(LedgerTransaction.id, LedgerTransaction.occurred_at, Posting.id, Posting.amount, Account.utility)
        .join(Posting, Posting.transaction_id == LedgerTransaction.id)
        .join(Account, Account.id == Posting.account_id)
        .where(Posting.account_id.in_(account_ids))).all()
    rows.sort(key=lambda r: (r[1], r[0], r[2]), reverse=True)
    return [(r[0], r[1], Decimal(r[3]), r[4]) for r in rows[:limit]]


def as_tuples(lines) -> list[tuple]:
    return [(line.transaction_id, line.occurred_at, line.amount, line.utility) for line in lines]


@pytest.mark.parametrize("limit", [1, 3, 10, 20, 200])
def test_back_dated_and_out_of_order_postings_keep_their_place(home, committed, limit):
    """Postings recorded out of occurred_at order (back-dated, late, ties) come back exactly as a full sort gives them."""
    start = datetime(2026, 10, 1, 8, 0, tzinfo=datetime.now().astimezone().tzinfo)
    rng = random.Random(7)
    with committed() as s:
        electricity, water = s.get(Account, home.pocket), s.get(Account, home.water_pocket)
        # 30 in order on electricity, a few back-dated ones posted last, one far-future-dated one
        # posted early on water, and same-instant ties across both pockets.
        for i in range(30):
            factories.make_topup(s, electricity, f"{i + 1}.00", occurred_at=start + timedelta(hours=i))
        factories.make_topup(s, water, "7.77", occurred_at=start + timedelta(days=40))
        for i in range(12):
            factories.make_topup(s, water, f"0.{i + 10}", occurred_at=start + timedelta(hours=rng.randint(0, 60)))
        for pocket in (electricity, water):
            factories.make_topup(s, pocket, "3.33", occurred_at=start + timedelta(hours=29))
        for i in range(5):
            factories.make_topup(s, electricity, f"9{i}.00", occurred_at=start - timedelta(days=i + 1))
    with committed() as s:
        ids = [home.pocket, home.water_pocket]
        got = as_tuples(recent_pocket_activity(s, ids, limit=limit))
        assert got == sorted_in_full(s, ids, limit)
        assert len(got) == min(limit, 30 + 1 + 12 + 2 + 5 + 2)  # + the fixture's two top-ups
        # A pocket on its own, and a pocket with a single posting (fewer than `limit`: no bound).
        assert as_tuples(recent_pocket_activity(s, [home.pocket], limit=limit)) == sorted_in_full(
            s, [home.pocket], limit)


def test_back_dated_posting_falls_behind_newer_ones(home, committed):
    """A top-up posted last but dated before everything shows after the newer ones, not first."""
    with committed() as s:
        electricity = s.get(Account, home.pocket)
        now = datetime.now().astimezone()
        for i in range(12):
            factories.make_topup(s, electricity, "1.00", occurred_at=now - timedelta(minutes=12 - i), memo=f"t{i}")
        factories.make_topup(s, electricity, "50.00", occurred_at=now - timedelta(days=30), memo="back-dated")
    with committed() as s:
        lines = recent_pocket_activity(s, [home.pocket], limit=10)
        assert [line.memo for line in lines] == [f"t{i}" for i in range(11, 1, -1)]
        assert "back-dated" not in [line.memo for line in recent_pocket_activity(s, [home.pocket], limit=13)][:12]


def test_no_pockets_or_no_limit_gives_nothing(home, committed):
    with committed() as s:
        assert recent_pocket_activity(s, [], limit=10) == []
        assert recent_pocket_activity(s, [home.pocket], limit=0) == []
