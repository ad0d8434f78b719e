"""History-only ingest (issue 22): readings before a meter's billing start stored and rolled up, never billed."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.ledger.verify import verify_ledger
from app.metering.ingest import ingest
from app.models import LedgerTransaction, Meter, Reading
from app.models.metering import ConsumptionRollup
from tests.metering.conftest import balance, direct

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
GO_LIVE = NOW - timedelta(days=2)


def transactions(session) -> int:
    return session.scalar(select(func.count()).select_from(LedgerTransaction))


def day_rollups(session, meter_id) -> dict:
    rows = session.execute(select(ConsumptionRollup.period_start, ConsumptionRollup.consumption).where(
        ConsumptionRollup.meter_id == meter_id, ConsumptionRollup.grain == "day")).all()
    return {start: value for start, value in rows}


def test_history_before_the_first_billed_reading_is_stored_rolled_up_and_never_billed(session, metered):
    serial = metered.meter.serial
    for hours, register in ((0, "500"), (1, "501")):  # go-live: the first billed span
        ingest(session, [direct(serial, GO_LIVE + timedelta(hours=hours), register)], now=NOW)
    session.commit()
    posted, pocket = transactions(session), balance(session, metered.pocket)
    rollups_before = sum(day_rollups(session, metered.meter.id).values())
    # Three days of hourly history before go-live, registers from 0 (a vendor's interval kWh summed).
    start = GO_LIVE - timedelta(days=3)
    history = [direct(serial, start + timedelta(hours=n), str(Decimal("0.5") * (n + 1))) for n in range(72)]
    report = ingest(session, history, now=NOW, history_only=True)
    session.commit()
    assert (report.accepted, report.billed, report.dead_letters) == (72, 0, [])
    assert transactions(session) == posted and balance(session, metered.pocket) == pocket
    assert verify_ledger(session).ok
    meter = session.get(Meter, metered.meter.id)
    assert meter.last_reading_at == GO_LIVE + timedelta(hours=1) and meter.last_register == Decimal("501")
    assert meter.history_before == GO_LIVE
    # 71 spans of 0.5 kWh (the oldest reading has nothing before it), in the day roll-ups.
    assert sum(day_rollups(session, meter.id).values()) - rollups_before == Decimal("35.5")

    again = ingest(session, history, now=NOW, history_only=True)
    session.commit()
    assert (again.accepted, again.duplicates) == (0, 72)
    assert session.scalar(select(func.count()).select_from(Reading)) == 74
    assert sum(day_rollups(session, meter.id).values()) - rollups_before == Decimal("35.5")


def test_a_gap_inside_history_is_filled_and_takes_its_share_of_the_later_reading(session, metered):
    serial = metered.meter.serial
    ingest(session, [direct(serial, GO_LIVE, "900")], now=NOW)
    start = GO_LIVE - timedelta(days=1)
    ingest(session, [direct(serial, start, "10"), direct(serial, start + timedelta(hours=4), "14")],
           now=NOW, history_only=True)
    session.commit()
    filled = ingest(session, [direct(serial, start + timedelta(hours=n), str(10 + n)) for n in (1, 2, 3)],
                    now=NOW, history_only=True)
    session.commit()
    assert filled.accepted == 3
    spans = session.execute(select(Reading.taken_at, Reading.consumption).where(Reading.taken_at < GO_LIVE)
                            .order_by(Reading.taken_at)).all()
    assert [c for _, c in spans] == [None, Decimal(1), Decimal(1), Decimal(1), Decimal(1)]
    assert sum(day_rollups(session, metered.meter.id).values()) == Decimal(4)


def test_history_at_or_after_the_billing_start_and_late_billed_readings_before_it_are_refused(session, metered):
    serial = metered.meter.serial
    assert ingest(session, [direct(serial, GO_LIVE, "5")], now=NOW, history_only=True).dead_letters == [
        f"meter {serial.lstrip('0')} has no billed reading yet: history-only ingest stores readings before the "
        "first billed one; import these normally"]
    ingest(session, [direct(serial, GO_LIVE, "100"), direct(serial, GO_LIVE + timedelta(hours=1), "101")], now=NOW)
    session.commit()
    report = ingest(session, [direct(serial, GO_LIVE - timedelta(hours=3), "1"),
                              direct(serial, GO_LIVE + timedelta(minutes=30), "100.5")], now=NOW, history_only=True)
    assert report.accepted == 1 and "is not before meter" in report.dead_letters[0]
    session.commit()
    posted = transactions(session)
    late = ingest(session, [direct(serial, GO_LIVE - timedelta(hours=1), "99")], now=NOW)
    session.commit()
    assert late.accepted == 0 and "before meter" in late.dead_letters[0] and "billing start" in late.dead_letters[0]
    assert transactions(session) == posted
