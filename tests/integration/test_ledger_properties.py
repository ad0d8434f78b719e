"""Random sequences of posts, replays and reversals keep the ledger's invariants (C2, C3, C4).

Each example builds two estates of its own (ZAR and XOF) and idempotency keys with a fresh
prefix, commits after every operation, and checks a Python model of the balances against
the database: cached balances, sums of postings, the hash chains and the count of
transactions. Rows from earlier examples stay until the test's TRUNCATE; they are
checked again by verify_ledger on every example.
"""
import uuid
from collections import defaultdict
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.ledger import Entry, IdempotencyConflict, post, post_many, reverse
from app.ledger.verify import summarise, verify_ledger
from app.models import Account, LedgerTransaction, Posting
from app.money import quantize
from tests.factories import make_estate_with_wallet

CURRENCIES = ("ZAR", "XOF")
ACCOUNTS_PER_ESTATE = 4  # electricity and water pockets, clearing, electricity revenue

# An "entry template": which estate, which two accounts, how many minor units. The key of
# template i is fixed per example, so posting template i again is a replay.
templates = st.lists(
    st.tuples(st.integers(0, len(CURRENCIES) - 1), st.integers(0, ACCOUNTS_PER_ESTATE - 1),
              st.integers(1, ACCOUNTS_PER_ESTATE - 1), st.integers(1, 10**9)),
    min_size=1, max_size=6,
)
operation = st.one_of(
    st.tuples(st.just("post"), st.integers(0, 5)),
    st.tuples(st.just("batch"), st.lists(st.integers(0, 5), min_size=1, max_size=4)),
    st.tuples(st.just("reverse"), st.integers(0, 20)),
    st.tuples(st.just("conflict"), st.integers(0, 5)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(templates=templates, operations=st.lists(operation, min_size=1, max_size=15))
def test_random_ledger_activity_keeps_every_invariant(session, templates, operations):
    try:
        run_example(session, templates, operations)
    finally:
        session.rollback()


def run_example(session, templates, operations):
    prefix = uuid.uuid4().hex[:12]
    kits = [make_estate_with_wallet(session, currency=c) for c in CURRENCIES]
    session.commit()
    accounts = [[k.pocket("electricity"), k.pocket("water"), k.accounts.clearing,
                 k.accounts.revenue["electricity"]] for k in kits]
    account_ids = [a.id for per_estate in accounts for a in per_estate]

    def entry(i: int, bump: int = 0) -> Entry:
        estate_index, source, offset, minor = templates[i % len(templates)]
        target = (source + offset) % ACCOUNTS_PER_ESTATE
        currency = CURRENCIES[estate_index]
        amount = quantize(Decimal(minor + bump).scaleb(-2 if currency == "ZAR" else 0), currency)
        return Entry(kits[estate_index].estate.id, "topup", f"{prefix}:{i % len(templates)}",
                     [(accounts[estate_index][source].id, -amount),
                      (accounts[estate_index][target].id, amount)])

    expected: dict[int, Decimal] = defaultdict(Decimal)
    posted: dict[str, int] = {}      # key -> transaction id
    reversed_: dict[int, int] = {}   # original id -> reversal id
    keys_written: set[str] = set()

    def apply(e: Entry) -> None:
        for account_id, amount in e.legs:
            expected[account_id] += amount

    for op, arg in operations:
        if op == "post":
            e = entry(arg)
            result = post(session, e)
            assert result.created == (e.idempotency_key not in posted)
            if result.created:
                apply(e)
                posted[e.idempotency_key] = result.transaction_id
            assert result.transaction_id == posted[e.idempotency_key]
        elif op == "batch":
            batch = [entry(i) for i in arg]
            results = post_many(session, batch)
            seen = set(posted)
            for e, result in zip(batch, results, strict=True):
                assert result.created == (e.idempotency_key not in seen)
                if result.created:
                    apply(e)
                    posted[e.idempotency_key] = result.transaction_id
                    seen.add(e.idempotency_key)
                assert result.transaction_id == posted[e.idempotency_key]
        elif op == "reverse":
            originals = sorted(posted.values())
            if not originals:
                continue
            original_id = originals[arg % len(originals)]
            result = reverse(session, original_id)
            assert result.created == (original_id not in reversed_)
            if result.created:
                for p in session.get(LedgerTransaction, original_id).postings:
                    expected[p.account_id] -= p.amount
                reversed_[original_id] = result.transaction_id
                keys_written.add(f"reversal:{original_id}")
            assert result.transaction_id == reversed_[original_id]
        elif op == "conflict":
            e = entry(arg)
            if e.idempotency_key not in posted:
                continue
            try:
                post(session, entry(arg, bump=1))
            except IdempotencyConflict:
                session.rollback()
                continue
            raise AssertionError("a reused key with other legs was accepted")
        session.commit()
    keys_written |= set(posted)

    cached = dict(session.execute(select(Account.id, Account.balance).where(Account.id.in_(account_ids))).all())
    summed = dict(session.execute(
        select(Posting.account_id, func.sum(Posting.amount))
        .where(Posting.account_id.in_(account_ids)).group_by(Posting.account_id)).all())
    for account_id in account_ids:
        assert cached[account_id] == expected[account_id], account_id
        assert summed.get(account_id, Decimal(0)) == expected[account_id], account_id
    estate_ids = [k.estate.id for k in kits]
    count = session.scalar(select(func.count()).select_from(LedgerTransaction)
                           .where(LedgerTransaction.estate_id.in_(estate_ids)))
    assert count == len(keys_written)
    report = verify_ledger(session)
    assert report.ok, summarise(report)
