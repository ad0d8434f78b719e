"""A pocket's "in debt since" kept with its balance by app.ledger, and checked by `ledger verify`."""
import importlib.util
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import text

from app.ledger import Entry, post_many, reverse
from app.ledger.verify import in_debt_since_from_postings, summarise, verify_ledger
from tests.factories import make_estate_with_wallet, make_topup, unique

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def move(kit, amount: str, at: datetime) -> Entry:
    """Money into (+) or out of (-) the pocket, against clearing."""
    return Entry(estate_id=kit.estate.id, kind="topup", idempotency_key=unique("since:"), occurred_at=at,
                 legs=[(kit.pocket().id, Decimal(amount)), (kit.accounts.clearing.id, -Decimal(amount))])


def since(session, kit):
    session.refresh(kit.pocket())
    return kit.pocket().in_debt_since


def test_kept_on_every_crossing_and_cleared_at_zero(session):
    kit = make_estate_with_wallet(session)
    post_many(session, [move(kit, "20", day(0))])
    assert since(session, kit) is None
    post_many(session, [move(kit, "-30", day(1))])  # 20 -> -10: in debt from day 1
    assert since(session, kit) == day(1)
    post_many(session, [move(kit, "-5", day(2))])  # deeper: still day 1
    assert since(session, kit) == day(1)
    post_many(session, [move(kit, "15", day(3))])  # exactly zero: not in debt
    assert since(session, kit) is None
    charge = post_many(session, [move(kit, "-1", day(4))])[0]
    assert since(session, kit) == day(4)
    reverse(session, charge.transaction_id, occurred_at=day(5))  # back to zero
    assert since(session, kit) is None
    session.commit()
    assert verify_ledger(session, kit.estate.id).ok


def test_a_batch_takes_the_last_crossing_also_when_its_moves_cancel_out(session):
    kit = make_estate_with_wallet(session)
    post_many(session, [move(kit, "-5", day(0))])  # -5 since day 0
    # +10 (5: cleared), -10 (-5: in debt again on day 2): net zero, yet the date moved
    post_many(session, [move(kit, "10", day(1)), move(kit, "-10", day(2))])
    assert since(session, kit) == day(2)
    post_many(session, [move(kit, "10", day(3)), move(kit, "-20", day(4)), move(kit, "30", day(5)),
                        move(kit, "-40", day(6)), move(kit, "-1", day(7))])
    assert since(session, kit) == day(6)
    session.commit()
    assert in_debt_since_from_postings(session, estate_id=kit.estate.id) == {kit.pocket().id: day(6)}
    assert verify_ledger(session, kit.estate.id).ok


def test_verify_reports_a_tampered_or_missing_date(session, cli_runner):
    kit = make_estate_with_wallet(session)
    other = make_estate_with_wallet(session)
    make_topup(session, kit.pocket(), "-50", clearing=kit.accounts.clearing, occurred_at=day(3))
    make_topup(session, other.pocket(), "10", clearing=other.accounts.clearing, occurred_at=day(3))
    session.commit()
    assert verify_ledger(session).ok
    session.execute(text("UPDATE accounts SET in_debt_since = :at WHERE id = :id"),
                    {"at": day(1), "id": kit.pocket().id})
    session.execute(text("UPDATE accounts SET in_debt_since = :at WHERE id = :id"),
                    {"at": day(2), "id": other.pocket().id})  # not in debt at all
    session.commit()
    report = verify_ledger(session)
    assert not report.ok
    assert {(m.account_id, m.cached, m.from_postings) for m in report.debt_since_mismatches} == {
        (kit.pocket().id, day(1), day(3)), (other.pocket().id, day(2), None)}
    assert "but its postings say" in summarise(report)
    result = cli_runner.invoke(args=["ledger", "verify"])
    assert "in debt since of" in result.output and "LEDGER BROKEN" in result.output
    session.execute(text("UPDATE accounts SET in_debt_since = NULL WHERE id = :id"), {"id": kit.pocket().id})
    session.commit()
    assert [m.cached for m in verify_ledger(session, kit.estate.id).debt_since_mismatches] == [None]


def test_the_migration_backfills_what_the_ledger_keeps(session):
    kit = make_estate_with_wallet(session)
    post_many(session, [move(kit, "10", day(0)), move(kit, "-30", day(1)), move(kit, "25", day(2)),
                        move(kit, "-7", day(3))])
    session.commit()
    kept = since(session, kit)
    assert kept == day(3)
    path = Path(__file__).resolve().parents[2] / "migrations" / "versions" / "0045a_in_debt_since.py"
    spec = importlib.util.spec_from_file_location("in_debt_since_migration", path)
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    session.execute(text("UPDATE accounts SET in_debt_since = NULL"))
    migration.backfill(session.connection())
    session.commit()
    assert since(session, kit) == kept
    assert verify_ledger(session, kit.estate.id).ok


amounts = st.integers(min_value=-40, max_value=40).filter(bool).map(lambda n: Decimal(n) / 4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(amounts, min_size=1, max_size=4), min_size=1, max_size=6))
def test_whatever_the_batches_the_kept_date_is_the_recomputed_one(session, batches):
    kit = make_estate_with_wallet(session)
    n = 0
    for batch in batches:
        entries = []
        for amount in batch:
            n += 1
            entries.append(move(kit, str(amount), day(n)))
        post_many(session, entries)
    session.flush()
    expected = in_debt_since_from_postings(session, estate_id=kit.estate.id).get(kit.pocket().id)
    assert since(session, kit) == expected
    assert (expected is None) == (kit.pocket().balance >= 0)
    session.rollback()
