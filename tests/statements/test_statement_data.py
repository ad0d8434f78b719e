"""Statement figures reconcile to the ledger exactly, month after month (O5)."""
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.ledger import Entry, post, post_many
from app.ledger.accounts import system_account
from app.models import LedgerTransaction, Posting
from app.periods import next_period
from app.statements.figures import CATEGORIES, StatementPeriodError, load_statements, month_bounds, statement_for
from tests.factories import make_estate_with_wallet, make_meter, make_unit, make_wallet

MONTHS = ("2026-01", "2026-02", "2026-03", "2026-04")
# kind posted -> the statement line it must land on, and the sign it moves the pocket by
KINDS = {"topup": ("topups", 1), "consumption": ("consumption", -1), "levy": ("levies", -1),
         "standing_charge": ("standing_charges", -1), "adjustment": ("adjustments", 1),
         "refund": ("adjustments", -1)}

activity = st.lists(
    st.tuples(
        st.integers(0, len(MONTHS) - 1),             # month
        st.sampled_from(["first", "last", "mid"]),   # where in the local month
        st.sampled_from(sorted(KINDS)),
        st.sampled_from(["electricity", "water"]),
        st.integers(1, 500_000),                     # cents
    ),
    min_size=0, max_size=30,
)


def moment(period: str, where: str, timezone: str, n: int) -> datetime:
    """A local instant at the very start, very end or middle of a month, as UTC."""
    start, end = month_bounds(period, timezone)
    if where == "first":
        return start + timedelta(microseconds=n % 1000)
    if where == "last":
        return end - timedelta(microseconds=1 + n % 1000)
    return start + (end - start) / 2 + timedelta(seconds=n % 3600)


def pocket_sum(session, account_id: int, through: str) -> Decimal:
    """What the ledger itself says a pocket held at the end of a month."""
    total = session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .where(Posting.account_id == account_id, LedgerTransaction.period <= through))
    return Decimal(total)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=activity, timezone=st.sampled_from(["Africa/Johannesburg", "Pacific/Kiritimati",
                                                "America/Santiago"]))
def test_random_months_of_activity_reconcile_exactly(session, rows, timezone):
    prefix = uuid.uuid4().hex[:10]
    kit = make_estate_with_wallet(session, timezone=timezone)
    other = make_unit(session, kit.estate)  # a neighbour whose money must never leak in
    other_wallet = make_wallet(session, other)
    levy = system_account(session, kit.estate, "levy", "scheme")
    counterpart = {"topup": kit.accounts.clearing, "consumption": kit.accounts.revenue["electricity"],
                   "levy": levy, "standing_charge": kit.accounts.revenue["water"],
                   "adjustment": kit.accounts.suspense, "refund": kit.accounts.clearing}
    expected = {(m, u, c): Decimal(0) for m in MONTHS for u in ("electricity", "water")
                for c in CATEGORIES}
    entries = []
    for n, (month, where, kind, utility, cents) in enumerate(rows):
        category, sign = KINDS[kind]
        amount = Decimal(cents) / 100 * sign
        expected[(MONTHS[month], utility, category)] += amount
        for wallet in (kit.wallet, other_wallet):
            entries.append(Entry(
                estate_id=kit.estate.id, kind=kind, idempotency_key=f"{prefix}:{n}:{wallet.id}",
                legs=[(wallet.pocket(utility).id, amount), (counterpart[kind].id, -amount)],
                occurred_at=moment(MONTHS[month], where, timezone, n), memo=f"{kind} {n}"))
    post_many(session, entries)
    session.commit()
    try:
        previous_closing = {"electricity": Decimal(0), "water": Decimal(0)}
        for period in MONTHS:
            statement = statement_for(session, kit.unit, period)
            pockets = {p.utility: p for p in statement.pockets}
            for utility in ("electricity", "water"):
                pocket = pockets[utility]
                assert pocket.opening == previous_closing[utility]
                for category in CATEGORIES:
                    assert pocket.movements[category] == expected[(period, utility, category)], \
                        (period, utility, category)
                assert pocket.closing == pocket_sum(session, kit.pocket(utility).id, period)
                previous_closing[utility] = pocket.closing
            topups = {u: sum((a for line in statement.topups for u2, a, _ in line.parts if u2 == u), Decimal(0)) for u in ("electricity", "water")}
            assert topups == {u: pockets[u].movements["topups"] for u in ("electricity", "water")}
    finally:
        session.rollback()


def test_a_month_ends_at_local_midnight_not_utc(session):
    kit = make_estate_with_wallet(session, timezone="Africa/Johannesburg")
    tz = ZoneInfo("Africa/Johannesburg")
    # 31 Jan 23:30 local is 21:30 UTC; 1 Feb 00:30 local is still 31 Jan 22:30 UTC.
    post(session, Entry(kit.estate.id, "topup", "late-jan", [(kit.pocket().id, Decimal("10")),
         (kit.accounts.clearing.id, Decimal("-10"))], occurred_at=datetime(2026, 1, 31, 23, 30, tzinfo=tz)))
    post(session, Entry(kit.estate.id, "topup", "early-feb", [(kit.pocket().id, Decimal("7")),
         (kit.accounts.clearing.id, Decimal("-7"))], occurred_at=datetime(2026, 2, 1, 0, 30, tzinfo=tz)))
    session.commit()
    january = {p.utility: p for p in statement_for(session, kit.unit, "2026-01").pockets}["electricity"]
    february = {p.utility: p for p in statement_for(session, kit.unit, "2026-02").pockets}["electricity"]
    assert (january.movements["topups"], january.closing) == (Decimal("10.00"), Decimal("10.00"))
    assert (february.opening, february.movements["topups"], february.closing) == \
        (Decimal("10.00"), Decimal("7.00"), Decimal("17.00"))


def test_units_mode_shows_units_and_the_money_paid(session):
    kit = make_estate_with_wallet(session, currency="LSL", denomination="units")
    pocket = kit.pocket("electricity")
    assert pocket.commodity == "KWH"
    when = datetime(2026, 3, 10, 12, tzinfo=ZoneInfo("Africa/Maseru"))
    post(session, Entry(kit.estate.id, "topup", "units-topup", [
        (kit.accounts.clearing.id, Decimal("-105.00")), (kit.accounts.revenue["electricity"].id, Decimal("105.00")),
        (kit.accounts.units_issued["electricity"].id, Decimal("-50.000")), (pocket.id, Decimal("50.000"))],
        occurred_at=when, memo="M-Pesa top-up M 105.00: electricity 50.000 kWh at M 2.10/kWh"))
    post(session, Entry(kit.estate.id, "consumption", "units-use", [
        (pocket.id, Decimal("-12.345")), (kit.accounts.units_issued["electricity"].id, Decimal("12.345"))],
        occurred_at=when + timedelta(days=1), memo="Electricity 12.345 kWh on 11 Mar 2026"))
    meter = make_meter(session, kit.unit, utility="electricity")
    from app.models import Reading
    session.add(Reading(meter_id=meter.id, taken_at=when + timedelta(hours=5), register=Decimal("112.345"),
                        consumption=Decimal("12.345")))
    session.commit()
    statement = statement_for(session, kit.unit, "2026-03")
    electricity = {p.utility: p for p in statement.pockets}["electricity"]
    assert electricity.commodity == "KWH"
    assert electricity.movements["topups"] == Decimal("50.000")
    assert electricity.movements["consumption"] == Decimal("-12.345")
    assert electricity.closing == Decimal("37.655")
    assert electricity.topup_value == Decimal("105.00")
    assert electricity.quantity == Decimal("12.345")
    assert statement.topup_value_total == Decimal("105.00")


def test_consumption_rate_is_read_from_the_postings(session):
    kit = make_estate_with_wallet(session)
    when = datetime(2026, 2, 3, 9, tzinfo=ZoneInfo("Africa/Johannesburg"))
    post(session, Entry(kit.estate.id, "consumption", "use-1", [
        (kit.pocket().id, Decimal("-28.50")), (kit.accounts.revenue["electricity"].id, Decimal("28.50"))],
        occurred_at=when, memo="Electricity 10.000 kWh on 03 Feb 2026 at R 2.85/kWh"))
    session.commit()
    electricity = {p.utility: p for p in statement_for(session, kit.unit, "2026-02").pockets}["electricity"]
    assert electricity.rates == ["R 2.85/kWh"]
    assert electricity.daily == {when.date(): Decimal("28.50")}


def test_batched_loading_equals_one_unit_at_a_time(session):
    kit = make_estate_with_wallet(session)
    units = [kit.unit] + [make_unit(session, kit.estate) for _ in range(3)]
    for i, unit in enumerate(units):
        wallet = make_wallet(session, unit)
        post(session, Entry(kit.estate.id, "topup", f"batch-{i}", [
            (wallet.pocket("water").id, Decimal(i + 1)), (kit.accounts.clearing.id, -Decimal(i + 1))],
            occurred_at=datetime(2026, 5, 2, tzinfo=ZoneInfo("UTC"))))
    session.commit()
    batched = {s.unit_id: s.figures() for s in load_statements(session, kit.estate, "2026-05")}
    single = {u.id: statement_for(session, u, "2026-05").figures() for u in units}
    assert batched == single
    assert next_period("2026-12") == "2027-01"


def test_months_that_have_not_begun_or_are_malformed_are_refused(session):
    kit = make_estate_with_wallet(session)
    with pytest.raises(StatementPeriodError):
        statement_for(session, kit.unit, "2999-01")
    with pytest.raises(StatementPeriodError):
        statement_for(session, kit.unit, "2026-13")
