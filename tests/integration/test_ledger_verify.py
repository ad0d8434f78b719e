"""Tampering that bypasses the app is found by verify_ledger and `flask ledger verify` (C3).

Each test disables the append-only triggers the way an attacker with table-owner rights
could, changes history, and re-enables them; TRUNCATE after the test clears the damage.
"""
from decimal import Decimal

import pytest
from sqlalchemy import text

from app.ledger.verify import summarise, verify_ledger
from tests.factories import make_estate_with_wallet, make_topup


@pytest.fixture
def ledger(session):
    """An estate with five committed top-ups of 10, 20, 30, 40, 50; returns (kit, ids)."""
    kit = make_estate_with_wallet(session)
    ids = [make_topup(session, kit.pocket(), str(10 * n), clearing=kit.accounts.clearing).transaction_id
           for n in range(1, 6)]
    session.commit()
    return kit, ids


def tamper(session, *statements, **params):
    """Run statements with the append-only triggers off, then switch them back on."""
    session.execute(text("ALTER TABLE postings DISABLE TRIGGER postings_append_only"))
    session.execute(text("ALTER TABLE ledger_transactions DISABLE TRIGGER ledger_transactions_append_only"))
    for statement in statements:
        session.execute(text(statement), params)
    session.execute(text("ALTER TABLE postings ENABLE TRIGGER postings_append_only"))
    session.execute(text("ALTER TABLE ledger_transactions ENABLE TRIGGER ledger_transactions_append_only"))
    session.commit()


def test_an_intact_ledger_verifies(session, ledger, cli_runner):
    report = verify_ledger(session)
    assert report.ok
    assert [c.transactions for c in report.chains] == [5]
    result = cli_runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "5 transactions, chain intact" in result.output
    assert "LEDGER OK" in result.output


def test_an_altered_posting_is_found_at_its_transaction(session, ledger, cli_runner):
    kit, ids = ledger
    third = ids[2]
    tamper(session, "UPDATE postings SET amount = 300 WHERE transaction_id = :t AND amount > 0", t=third)

    report = verify_ledger(session)
    assert not report.ok
    (chain,) = report.chains
    assert chain.first_broken_id == third
    assert chain.first_broken_seq == 3
    assert "altered" in chain.reason
    assert report.unbalanced_transaction_ids == [third]
    assert [m.account_id for m in report.balance_mismatches] == [kit.pocket().id]

    result = cli_runner.invoke(args=["ledger", "verify"])
    assert result.exit_code == 1
    assert f"BROKEN at transaction {third}" in result.output
    assert "LEDGER BROKEN" in result.output


def test_an_altered_memo_breaks_the_chain_too(session, ledger):
    _, ids = ledger
    tamper(session, "UPDATE ledger_transactions SET memo = 'nothing to see' WHERE id = :t", t=ids[1])
    report = verify_ledger(session)
    assert report.chains[0].first_broken_id == ids[1]
    assert report.balance_mismatches == [] and report.unbalanced_transaction_ids == []


def test_a_rewritten_hash_is_caught_by_the_next_link(session, ledger):
    # Recomputing one hash is not enough: the next transaction's prev_hash no longer matches.
    from app.ledger import transaction_hash
    from app.models import LedgerTransaction

    _, ids = ledger
    tamper(session, "UPDATE postings SET amount = -amount WHERE transaction_id = :t", t=ids[1])
    txn = session.get(LedgerTransaction, ids[1])
    session.refresh(txn)
    forged = transaction_hash(
        txn.prev_hash, estate_id=txn.estate_id, seq=txn.seq, idempotency_key=txn.idempotency_key,
        kind=txn.kind, occurred_at=txn.occurred_at, period=txn.period, memo=txn.memo,
        reverses_id=txn.reverses_id, legs=[(p.account_id, p.amount, p.commodity) for p in txn.postings],
    )
    tamper(session, "UPDATE ledger_transactions SET hash = :h WHERE id = :t", h=forged, t=ids[1])

    chain = verify_ledger(session).chains[0]
    assert chain.first_broken_id == ids[2]
    assert "prev_hash" in chain.reason


def test_a_cached_balance_mismatch_is_reported(session, ledger, cli_runner):
    kit, _ = ledger
    pocket = kit.pocket()
    session.execute(text("UPDATE accounts SET balance = 1000 WHERE id = :a"), {"a": pocket.id})
    session.commit()

    report = verify_ledger(session)
    assert not report.ok
    assert report.chains[0].ok  # history itself is intact
    (mismatch,) = report.balance_mismatches
    assert (mismatch.account_id, mismatch.cached, mismatch.from_postings) == (
        pocket.id, Decimal("1000"), Decimal("150"))
    assert "is 1000.000000 but its postings sum to 150" in summarise(report)
    assert cli_runner.invoke(args=["ledger", "verify"]).exit_code == 1


def test_a_deleted_transaction_leaves_a_gap(session, ledger):
    _, ids = ledger
    tamper(session, "DELETE FROM postings WHERE transaction_id = :t",
           "DELETE FROM ledger_transactions WHERE id = :t", t=ids[1])

    chain = verify_ledger(session).chains[0]
    assert chain.first_broken_id == ids[2]
    assert "sequence gap: expected 2, found 3" in chain.reason


def test_deleting_the_newest_transaction_is_noticed_by_the_chain_head(session, ledger):
    _, ids = ledger
    tamper(session, "DELETE FROM postings WHERE transaction_id = :t",
           "DELETE FROM ledger_transactions WHERE id = :t", t=ids[-1])

    report = verify_ledger(session)
    assert not report.chains[0].ok
    assert "chain head says seq 5; the chain ends at 4" in report.chains[0].reason


def test_verify_can_be_limited_to_one_estate(session, ledger, cli_runner):
    _, ids = ledger
    healthy = make_estate_with_wallet(session)
    make_topup(session, healthy.pocket(), "5", clearing=healthy.accounts.clearing)
    session.commit()
    tamper(session, "UPDATE postings SET amount = 1 WHERE transaction_id = :t AND amount > 0", t=ids[0])

    assert verify_ledger(session, healthy.estate.id).ok
    result = cli_runner.invoke(args=["ledger", "verify", "--estate", healthy.estate.code])
    assert result.exit_code == 0, result.output
    result = cli_runner.invoke(args=["ledger", "verify", "--estate", "NOPE"])
    assert result.exit_code != 0 and "no estate with code 'NOPE'" in result.output
