"""Issue 11 items 3, 4, 6: dead letters always fit; ChirpStack uplinks at their own times."""
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.metering.ingest import Message, dead_letter_row, ingest, replay_dead_letter
from app.models import LedgerTransaction, Meter, Reading
from app.models.metering import DeadLetter, TariffVersion
from tests.factories import make_meter
from tests.metering.conftest import at, balance, direct

EUI = "a81758fffe0312ab"
TOPIC = f"application/7d5c2f3e-0000-4000-8000-000000000001/device/{EUI}/event/up"


def uplink(received: datetime, energy: float, *, dedup: str, device_time: datetime | None = None) -> Message:
    """A ChirpStack v4 uplink as ChirpStack publishes it: `time` is when the gateway heard it."""
    decoded = {"energy": energy}
    if device_time is not None:
        decoded["time"] = device_time.isoformat()
    body = {"deduplicationId": dedup, "time": received.isoformat().replace("+00:00", "Z"),
            "deviceInfo": {"tenantId": "t", "applicationId": "a", "deviceProfileName": "Kamstrup",
                           "deviceName": "A03 meter", "devEui": EUI, "tags": {}},
            "devAddr": "00189440", "fCnt": 7, "fPort": 1, "data": "AQID", "object": decoded,
            "rxInfo": [{"gatewayId": "g", "rssi": -60, "snr": 9.5}]}
    return Message(TOPIC, json.dumps(body).encode())


def lorawan_meter(session, metered) -> Meter:
    meter = make_meter(session, metered.unit, serial="41273605", protocol="chirpstack", dev_eui=EUI,
                       interval_minutes=30)
    session.commit()
    return meter


# --- item 3: a dead letter is always writable ---------------------------------------------


def test_nul_bytes_and_overlong_ids_are_dead_lettered_whole(session, metered):
    nul = b'{"meter": "23022673", "time": "2026-11-21T10:00:00Z", "energy": "1\x00 kWh"}'
    escaped = json.dumps({"meter": "23022673\u0000", "time": at(30).isoformat(), "energy": "1 kWh"}).encode()
    long_id = json.dumps({"meter": "9" * 100, "time": at(30).isoformat(), "energy": "1 kWh"}).encode()
    report = ingest(session, [Message("meters/23022673/readings", nul), Message("http/readings", escaped),
                              Message("http/readings", long_id), direct("23022673", at(30), "100")])
    session.commit()
    assert report.accepted == 1
    assert [reason.split(" ")[0] for reason in report.dead_letters] == ["malformed", "meter", "meter"]
    assert "longer than 64 characters" in report.dead_letters[2]
    letters = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
    assert [bytes(letter.raw_payload) for letter in letters] == [nul, escaped, long_id]  # nothing lost
    assert "\x00" not in letters[0].payload and letters[0].payload.startswith('{"meter": "23022673"')
    assert replay_dead_letter(session, letters[0]).startswith("refused again: malformed JSON")


def test_a_dead_letter_row_fits_its_columns():
    row = dead_letter_row("meters/x\x00/readings" + "t" * 400, b"\x00\xff" * 20_000, "why\x00" * 200,
                          "S" * 100 + "\x00", datetime.now(UTC))
    assert len(row["topic"]) == 300 and "\x00" not in row["topic"]
    assert len(row["reason"]) == 500 and "\x00" not in row["reason"]
    assert row["meter_serial"] == "S" * 64
    assert row["raw_payload"] == b"\x00\xff" * 20_000
    assert "\x00" not in row["payload"] and len(row["payload"]) <= 20_000


# --- item 4: ChirpStack uplinks on free-running timers ------------------------------------


def test_chirpstack_uplinks_at_reception_times_are_accepted_and_billed(session, metered):
    lorawan_meter(session, metered)
    first = at(60) + timedelta(seconds=53.737)  # 20:00:53.737Z: when the gateway heard it
    report = ingest(session, [uplink(first, 100.0, dedup="d-1"),
                              uplink(first + timedelta(minutes=30, seconds=1.2), 101.5, dedup="d-2")])
    session.commit()
    assert (report.accepted, report.billed, report.dead_letters) == (2, 1, [])
    stored = session.scalars(select(Reading.taken_at).order_by(Reading.taken_at)).all()
    assert stored == [first, first + timedelta(minutes=30, seconds=1.2)]  # their real times
    assert balance(session, metered.pocket) == Decimal("97.00")


def test_meters_declared_on_boundaries_still_refuse_off_boundary_readings(session, metered):
    assert Meter(protocol="chirpstack").reports_on_boundaries is False
    assert Meter(protocol="http").reports_on_boundaries is Meter().reports_on_boundaries is True
    meter = lorawan_meter(session, metered)
    meter.reports_on_boundaries = True  # e.g. a LoRaWAN meter that does stamp its interval
    session.commit()
    report = ingest(session, [uplink(at(30) + timedelta(seconds=53), 100.0, dedup="d-1")])
    assert "off the meter's 30-minute interval" in report.dead_letters[0]


def test_the_device_timestamp_wins_over_the_reception_time(session, metered):
    lorawan_meter(session, metered)
    heard = at(30) + timedelta(minutes=2, seconds=9)
    taken = at(30) + timedelta(minutes=1, seconds=4)
    ingest(session, [uplink(heard, 100.0, dedup="d-1", device_time=taken)])
    session.commit()
    reading = session.scalar(select(Reading))
    assert reading.taken_at == taken
    assert reading.received_at > heard  # ingest time, not either of the message's times
    assert reading.uplink_id == "d-1"


def test_a_replayed_uplink_is_stored_once_by_its_deduplication_id(session, metered):
    lorawan_meter(session, metered)
    heard = at(60) + timedelta(seconds=14)
    ingest(session, [uplink(heard, 100.0, dedup="d-1"), uplink(heard + timedelta(minutes=30), 102.0, dedup="d-2")])
    session.commit()
    # ChirpStack re-published both (another integration, a restart): d-2 with a later reception time.
    again = ingest(session, [uplink(heard, 100.0, dedup="d-1"),
                             uplink(heard + timedelta(minutes=31), 102.0, dedup="d-2"),
                             uplink(heard + timedelta(minutes=60), 103.0, dedup="d-3"),
                             uplink(heard + timedelta(minutes=61), 103.0, dedup="d-3")])
    session.commit()
    assert (again.accepted, again.duplicates, again.dead_letters) == (1, 3, [])
    assert session.scalar(select(func.count(Reading.id))) == 3
    assert balance(session, metered.pocket) == Decimal("94.00")  # 3 kWh, once


def test_a_span_across_a_time_of_use_boundary_is_priced_at_its_real_times(session, metered):
    session.execute(TariffVersion.__table__.delete())
    session.add(TariffVersion(estate_id=metered.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="tou", rates={"default_rate": "3.00",
                                                 "windows": [{"start": "22:00", "end": "06:00", "rate": "1.00"}]}))
    lorawan_meter(session, metered)
    tz = metered.estate.tz
    yesterday = (datetime.now(UTC) - timedelta(days=1)).astimezone(tz).date()
    start = datetime(yesterday.year, yesterday.month, yesterday.day, 21, 44, 10, tzinfo=tz).astimezone(UTC)
    ingest(session, [uplink(start, 100.0, dedup="d-1"), uplink(start + timedelta(minutes=30), 103.0, dedup="d-2")])
    session.commit()
    # 3 kWh over 21:44:10-22:14:10 local: 950 s of 1800 at R3.00, 850 s at R1.00 (not snapped to 22:00).
    expected = (Decimal(3) * 950 / 1800 * 3 + Decimal(3) * 850 / 1800).quantize(Decimal("0.01"))
    assert expected == Decimal("6.17")
    assert balance(session, metered.pocket) == Decimal("100") - expected
    assert session.scalar(select(LedgerTransaction.occurred_at).where(LedgerTransaction.kind == "consumption")) \
        == start + timedelta(minutes=30)
