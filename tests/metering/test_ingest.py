"""The ingest pipeline on PostgreSQL: billing, idempotency, order, dead letters, roll-ups."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.metering.ingest import Message, ingest, replay_dead_letter
from app.models import LedgerTransaction, Reading
from app.models.metering import ConsumptionRollup, DeadLetter, MeterAlert, TariffVersion
from tests.factories import make_estate_with_wallet, make_meter, make_topup
from tests.metering.conftest import at, balance, direct


def bills(session) -> list[str]:
    return list(session.scalars(select(LedgerTransaction.idempotency_key)
                                .where(LedgerTransaction.kind == "consumption")
                                .order_by(LedgerTransaction.idempotency_key)))


def test_readings_bill_the_register_rise_at_the_tariff(session, metered):
    report = ingest(session, [direct("23022673", at(60), "100.0"), direct("23022673", at(30), "101.5"),
                              direct("000023022673", at(0), "103.0")])
    session.commit()
    assert (report.accepted, report.billed, report.dead_letters) == (3, 2, [])
    assert balance(session, metered.pocket) == Decimal("94.00")  # 3 kWh at R2.00
    assert balance(session, metered.revenue) == Decimal("6.00")
    key = f"reading:23022673:{at(0).isoformat()}"
    assert key in bills(session)
    assert session.get(type(metered.meter), metered.meter.id).last_register == Decimal("103.0")


def test_the_same_message_twice_is_billed_once(session, metered):
    first = [direct("23022673", at(60), "100"), direct("23022673", at(30), "102")]
    ingest(session, first)
    session.commit()
    report = ingest(session, first + [direct("23022673", at(30), "102")])
    session.commit()
    assert (report.accepted, report.duplicates, report.billed) == (0, 3, 0)
    assert balance(session, metered.pocket) == Decimal("96.00")
    assert session.scalar(select(func.count(Reading.id))) == 2


def test_out_of_order_arrival_bills_the_same_total(session, metered):
    ingest(session, [direct("23022673", at(90), "100")])
    session.commit()
    ingest(session, [direct("23022673", at(0), "106")])  # spans 90 minutes
    session.commit()
    late = ingest(session, [direct("23022673", at(60), "101"), direct("23022673", at(30), "103")])
    session.commit()
    assert late.accepted == 2 and late.billed == 0
    assert balance(session, metered.pocket) == Decimal("88.00")  # 6 kWh, billed once
    stored = dict(session.execute(select(Reading.taken_at, Reading.consumption)).all())
    assert [stored[at(m)] for m in (60, 30, 0)] == [Decimal(1), Decimal(2), Decimal(3)]
    day = session.scalars(select(ConsumptionRollup.consumption).where(ConsumptionRollup.grain == "month")).all()
    assert sum(day) == Decimal(6)


def test_a_late_first_reading_bills_the_span_nobody_billed(session, metered):
    ingest(session, [direct("23022673", at(0), "105")])
    session.commit()
    ingest(session, [direct("23022673", at(30), "104")])
    session.commit()
    assert balance(session, metered.pocket) == Decimal("98.00")


def test_refused_messages_land_in_dead_letters_with_reasons_and_bill_nothing(session, metered):
    ingest(session, [direct("23022673", at(30), "100")])
    session.commit()
    future = datetime.now(UTC) + timedelta(days=1)
    report = ingest(session, [
        Message("meters/23022673/readings", b"{oops"),
        direct("99999", at(0), "5"),
        direct("23022673", at(0), "90"),
        direct("23022673", future, "120"),
    ])
    session.commit()
    reasons = {row.reason for row in session.scalars(select(DeadLetter))}
    assert len(reasons) == 4 and report.billed == 0
    assert any(r.startswith("malformed JSON") for r in reasons)
    assert "unknown meter 99999" in reasons
    assert any("went backwards" in r for r in reasons)
    assert any("in the future" in r for r in reasons)
    assert balance(session, metered.pocket) == Decimal("100.00")
    assert session.scalar(select(MeterAlert.kind)) == "tamper"
    raw = session.scalar(select(DeadLetter.payload).where(DeadLetter.reason.like("malformed%")))
    assert raw == "{oops"


def test_half_hourly_meters_accept_only_on_the_hour_and_half_hour(session, metered):
    metered.meter.interval_minutes = 30
    session.commit()
    report = ingest(session, [direct("23022673", at(30), "100"),
                              direct("23022673", at(30) + timedelta(minutes=7), "100.5")])
    session.commit()
    assert report.accepted == 1
    assert "off the meter's 30-minute interval" in report.dead_letters[0]


def test_replaying_a_dead_letter_after_the_meter_is_added_bills_it(session, metered):
    ingest(session, [direct("555", at(60), "10"), direct("555", at(30), "12")])
    session.commit()
    make_meter(session, metered.unit, serial="555", utility="electricity")
    session.commit()
    outcomes = [replay_dead_letter(session, letter) for letter in
                session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()]
    session.commit()
    assert outcomes == ["accepted", "accepted and billed"]
    assert balance(session, metered.pocket) == Decimal("96.00")
    assert session.scalar(select(func.count(DeadLetter.id))) == 2  # kept, marked replayed


def test_units_estate_deducts_kwh_from_the_pocket(session):
    kit = make_estate_with_wallet(session, denomination="units")
    make_meter(session, kit.unit, serial="77")
    make_topup(session, kit.pocket("electricity"), "50.000", clearing=kit.accounts.units_issued["electricity"])
    session.commit()
    ingest(session, [direct("77", at(60), "10"), direct("77", at(0), "12.250")])
    session.commit()
    assert balance(session, kit.pocket("electricity")) == Decimal("47.750")


def test_standing_charge_once_a_month_and_blocks_within_the_month(session, metered):
    session.execute(TariffVersion.__table__.delete())
    session.add(TariffVersion(estate_id=metered.estate.id, utility="electricity",
                              effective_from=date(2020, 1, 1), kind="block", standing_charge=Decimal("10"),
                              rates={"blocks": [{"up_to": "1000000", "rate": "1.00"},
                                                {"up_to": None, "rate": "5.00"}]}))
    session.commit()
    ingest(session, [direct("23022673", at(60), "0"), direct("23022673", at(30), "1")])
    session.commit()
    ingest(session, [direct("23022673", at(0), "2")])
    session.commit()
    assert balance(session, metered.pocket) == Decimal("88.00")  # 2 kWh at R1 + R10 once


def test_roll_ups_follow_the_estate_day(session, metered):
    ingest(session, [direct("23022673", at(60), "100"), direct("23022673", at(30), "101"),
                     direct("23022673", at(0), "103.5")])
    session.commit()
    total = session.scalar(select(func.sum(ConsumptionRollup.consumption)).where(ConsumptionRollup.grain == "day"))
    hours = session.scalar(select(func.sum(ConsumptionRollup.consumption)).where(ConsumptionRollup.grain == "hour"))
    assert total == hours == Decimal("3.5")
    start = session.scalars(select(ConsumptionRollup.period_start).where(ConsumptionRollup.grain == "day")).first()
    assert start.astimezone(metered.estate.tz).hour == 0


def test_spike_is_flagged_but_billed(session, metered):
    base = at(0) - timedelta(days=3)
    history = [direct("23022673", base + timedelta(hours=h), str(100 + h * Decimal("0.5"))) for h in range(48)]
    ingest(session, history)
    session.commit()
    report = ingest(session, [direct("23022673", at(0), "2000")])
    session.commit()
    assert report.billed == 1
    kinds = set(session.scalars(select(MeterAlert.kind)))
    assert "spike" in kinds and "gap" in kinds


def test_a_mid_month_tariff_change_keeps_the_months_one_standing_charge(session, metered):
    """The month's standing charge is the version in force on the 1st, whichever span posts it."""
    tz = metered.estate.tz
    this_month = datetime.now(tz).date().replace(day=1)
    last_month = (this_month - timedelta(days=1)).replace(day=1)
    session.execute(TariffVersion.__table__.delete())
    for since, rate, standing in ((date(2020, 1, 1), "2.00", "10"), (last_month.replace(day=15), "3.00", "25")):
        session.add(TariffVersion(estate_id=metered.estate.id, utility="electricity", effective_from=since,
                                  kind="flat", rates={"rate": rate}, standing_charge=Decimal(standing)))
    session.commit()

    def on(day: int) -> datetime:
        return datetime.combine(last_month.replace(day=day), datetime.min.time(), tz).replace(hour=10)

    # Separate batches: a span under v1, one across the change with no use, one wholly under v2.
    for day, register in ((5, "0"), (10, "1"), (16, "1"), (20, "2")):
        report = ingest(session, [direct("23022673", on(day), register)])
        session.commit()
        assert report.dead_letters == []
    standing = session.scalars(select(LedgerTransaction).where(LedgerTransaction.kind == "standing_charge")).all()
    assert [t.idempotency_key for t in standing] == [f"standing:23022673:{last_month:%Y-%m}"]
    assert balance(session, metered.pocket) == Decimal("85.00")  # R100 - R10 standing - 1 kWh at R2 - 1 kWh at R3


def test_billing_opens_only_the_pocket_of_the_meter_billed(session, metered):
    """A water meter added to a unit whose wallet has only electricity: its first bill opens
    the water pocket, and no other pocket appears (pockets open on demand, issue 12 item 2)."""
    from app.models import Account, Wallet
    wallet = session.scalar(select(Wallet).where(Wallet.unit_id == metered.unit.id))
    for pocket in list(wallet.pockets):
        if pocket.utility != "electricity":
            wallet.pockets.remove(pocket)
            session.delete(pocket)
    session.add(TariffVersion(estate_id=metered.estate.id, utility="water", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "10.00"}))
    make_meter(session, metered.unit, serial="W-77", utility="water")
    session.commit()
    ingest(session, [direct("W-77", at(60), "5.000"), direct("W-77", at(0), "5.500")])
    session.commit()
    pockets = dict(session.execute(select(Account.utility, Account.balance)
                                   .where(Account.wallet_id == wallet.id)).all())
    assert pockets == {"electricity": Decimal("100.00"), "water": Decimal("-5.00")}


def test_readings_either_side_of_local_midnight_are_not_history_for_the_spike_check(session, metered):
    """Two readings an hour apart on two calendar days are an hour of history, not two days."""
    today = datetime.now(metered.estate.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    midnight = (today - timedelta(days=1)).astimezone(UTC)
    ingest(session, [direct("23022673", midnight - timedelta(minutes=30), "100"),
                     direct("23022673", midnight + timedelta(minutes=30), "101")])
    session.commit()
    ingest(session, [direct("23022673", midnight + timedelta(hours=1), "103")])  # 4/hour after 1/hour
    session.commit()
    assert "spike" not in set(session.scalars(select(MeterAlert.kind)))
