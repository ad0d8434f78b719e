"""Arrival order never changes the money: the same readings in order or shuffled, in any batches,
leave the same pocket balance under flat, time-of-use and inclining block tariffs: on one-way
meters, with or without the register wrapping at its size, and on net-metered meters whose
register also falls (exports credited at the solar rate)."""
import itertools
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.metering.ingest import ingest
from app.models import LedgerTransaction, Reading
from app.models.metering import TariffVersion
from tests.factories import make_estate_with_wallet, make_meter, make_unit, make_wallet, unique
from tests.metering.conftest import balance, direct

RATES = {
    "flat": {"rate": "2.37"},
    "tou": {"default_rate": "2.10", "windows": [{"start": "06:00", "end": "09:30", "rate": "4.13"},
                                                {"start": "22:00", "end": "05:00", "rate": "0.97"}]},
    # Small blocks so a few readings cross them, and the month boundary resets them.
    "block": {"blocks": [{"up_to": "3", "rate": "1.11"}, {"up_to": "7.5", "rate": "2.73"},
                         {"up_to": None, "rate": "5.09"}]},
}

readings_strategy = st.lists(
    st.tuples(st.integers(-96, 96),  # half hours from a local month boundary (two days either side)
              st.decimals(Decimal("0"), Decimal("4"), places=3)),  # 0: a register that did not move
    min_size=2, max_size=9, unique_by=lambda item: item[0])


def month_boundary(tz) -> datetime:
    """A local month start more than two days in the past (readings stay out of the future)."""
    local = (datetime.now(UTC) - timedelta(days=40)).astimezone(tz)
    year, month = divmod(local.year * 12 + local.month, 12)
    return datetime(year, month + 1, 1, tzinfo=tz).astimezone(UTC)


@pytest.fixture(params=sorted(RATES))
def tariffed(request, session):
    kit = make_estate_with_wallet(session)
    session.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind=request.param, rates=RATES[request.param], standing_charge=Decimal("5"),
                              solar_rate=Decimal("0.73")))
    session.commit()
    return kit


def metered_unit(session, kit, register_digits=None, bidirectional=False):
    """A fresh unit with its own wallet and meter in the kit's estate (one per arrival order)."""
    unit = make_unit(session, kit.estate)
    wallet = make_wallet(session, unit)
    meter = make_meter(session, unit, serial=unique("M"))
    meter.register_digits, meter.bidirectional = register_digits, bidirectional
    session.commit()
    return meter, next(p for p in wallet.pockets if p.utility == "electricity")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(readings=readings_strategy, seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(("plain", "wraps", "net")))
def test_shuffled_arrival_bills_what_in_order_arrival_bills(session, tariffed, readings, seed, mode):
    boundary = month_boundary(tariffed.estate.tz)
    # A 4-digit register started just below 10,000 wraps within the first few readings; a
    # net-metered one moves between -2 and +2 a step, so it exports as often as it imports.
    start, digits = (Decimal("9998"), 4) if mode == "wraps" else (Decimal("1000"), None)
    register, used, series = start, Decimal(0), []
    for offset, rise in sorted(readings):
        rise = rise - 2 if mode == "net" else rise
        register, used = (register + rise) % 10_000 if mode == "wraps" else register + rise, used + rise
        series.append((boundary + timedelta(minutes=30 * offset), register))
    used -= sorted(readings)[0][1] - (2 if mode == "net" else 0)  # the first reading only sets the register

    meters = {"register_digits": digits, "bidirectional": mode == "net"}
    in_order, in_order_pocket = metered_unit(session, tariffed, **meters)
    for moment, value in series:
        ingest(session, [direct(in_order.serial, moment, str(value))])
        session.commit()

    shuffled, shuffled_pocket = metered_unit(session, tariffed, **meters)
    chaos = random.Random(seed)
    arrivals = series[:]
    chaos.shuffle(arrivals)
    arrivals += chaos.sample(series, k=chaos.randint(0, 2))  # redeliveries
    while arrivals:
        size = chaos.randint(1, 3)
        ingest(session, [direct(shuffled.serial, moment, str(value)) for moment, value in arrivals[:size]])
        session.commit()
        arrivals = arrivals[size:]

    assert balance(session, shuffled_pocket) == balance(session, in_order_pocket)
    for meter in (in_order, shuffled):
        stored = session.scalar(select(func.sum(Reading.consumption)).where(Reading.meter_id == meter.id))
        assert stored == used
    # Re-pricing only ever adds adjustments: each late reading at most one, keyed by it.
    keys = session.scalars(select(LedgerTransaction.idempotency_key).where(
        LedgerTransaction.kind == "adjustment",
        LedgerTransaction.idempotency_key.like(f"reprice:{shuffled.serial}:%"))).all()
    assert len(keys) == len(set(keys)) <= len(series)


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_standing_charges_follow_the_readings_not_their_order(session, tariffed, order):
    """A month's standing charge comes with any span ending in it, even one that used nothing:
    in order, the span into the new month used nothing; out of order it once carried the use."""
    boundary = month_boundary(tariffed.estate.tz)
    series = [(boundary - timedelta(minutes=30), "998.001"), (boundary, "998.002"),
              (boundary + timedelta(minutes=30), "998.002")]
    meter, pocket = metered_unit(session, tariffed)
    for index in order:
        ingest(session, [direct(meter.serial, *series[index])])
        session.commit()
    months = session.scalars(select(LedgerTransaction.idempotency_key).where(
        LedgerTransaction.kind == "standing_charge", LedgerTransaction.idempotency_key.like(f"standing:{meter.serial}:%"))
        .order_by(LedgerTransaction.idempotency_key)).all()
    assert len(months) == 2, months  # the month the boundary closes, and the one after it
    assert balance(session, pocket) == Decimal("-10.00"), "two R5 standing charges; 0.002 kWh rounds to nothing"


def test_a_late_reading_under_time_of_use_posts_one_adjustment(session):
    kit = make_estate_with_wallet(session)
    session.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="tou", rates={"default_rate": "1.00",
                                                 "windows": [{"start": "00:00", "end": "12:00", "rate": "3.00"}]}))
    make_meter(session, kit.unit, serial="TOU1")
    session.commit()
    tz = kit.estate.tz
    day = (datetime.now(UTC) - timedelta(days=3)).astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    # 0:00 -> 24:00 billed as one span: 12 kWh spread evenly, half at R3, half at R1 = R24.
    ingest(session, [direct("TOU1", day, "0"), direct("TOU1", day + timedelta(hours=24), "12")])
    session.commit()
    pocket = kit.pocket("electricity")
    assert balance(session, pocket) == Decimal("-24.00")
    # All 12 kWh were in fact used in the morning: in order that costs R36.
    late = direct("TOU1", day + timedelta(hours=12), "12")
    report = ingest(session, [late])
    session.commit()
    assert (report.accepted, report.billed, report.repriced) == (1, 0, 1)
    assert balance(session, pocket) == Decimal("-36.00")
    adjustment = session.scalars(select(LedgerTransaction).where(LedgerTransaction.kind == "adjustment")).one()
    key = f"reprice:TOU1:{(day + timedelta(hours=12)).astimezone(UTC).isoformat()}"
    assert adjustment.idempotency_key == key
    assert "late reading" in adjustment.memo
    # Redelivered: a duplicate, nothing more is posted.
    again = ingest(session, [late])
    session.commit()
    assert (again.duplicates, again.repriced) == (1, 0)
    assert balance(session, pocket) == Decimal("-36.00")


def test_a_late_first_reading_under_blocks_bills_its_span_first_and_shifts_the_rest(session):
    kit = make_estate_with_wallet(session)
    session.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="block", rates={"blocks": [{"up_to": "3", "rate": "1.00"},
                                                              {"up_to": None, "rate": "5.00"}]}))
    make_meter(session, kit.unit, serial="BLK1")
    session.commit()
    tz = kit.estate.tz
    local = (datetime.now(UTC) - timedelta(days=35)).astimezone(tz)
    noon = datetime(local.year, local.month, 15, 12, tzinfo=tz)
    t0, t1, t2 = noon, noon + timedelta(hours=1), noon + timedelta(hours=2)
    # In order: 2 kWh in block 1 (R2), then 1 kWh in block 1 and 1 kWh in block 2 (R6): R8.
    ingest(session, [direct("BLK1", t1, "2")])
    ingest(session, [direct("BLK1", t2, "4")])  # billed from the month's start: R2 so far
    session.commit()
    pocket = kit.pocket("electricity")
    assert balance(session, pocket) == Decimal("-2.00")
    report = ingest(session, [direct("BLK1", t0, "0")])  # the meter's true first reading
    session.commit()
    assert (report.billed, report.repriced) == (1, 1)
    assert balance(session, pocket) == Decimal("-8.00")
    kinds = dict(session.execute(select(LedgerTransaction.idempotency_key, LedgerTransaction.kind)
                                 .where(LedgerTransaction.idempotency_key.like("%BLK1%"))).all())
    assert kinds[f"reading:BLK1:{t1.astimezone(UTC).isoformat()}"] == "consumption"  # its own key, as in order
    assert kinds[f"reprice:BLK1:{t0.astimezone(UTC).isoformat()}"] == "adjustment"  # the later span moved up a block
