"""Fuzzing the readings entry points (issue 11 item 6): the decoders and POST /api/v1/readings.

A decoder gives a reading that fits its columns or a DecodeError, never another exception; the
HTTP endpoint answers below 500 and writes all or nothing: every reading it reports accepted is
stored and every refusal it reports is a dead letter, and a 4xx leaves the database as it was.
"""
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.metering.api_keys import create_api_key
from app.metering.decoders import MAX_ID, MAX_REGISTER, DecodedReading, DecodeError, decode
from app.models import LedgerTransaction, Reading
from app.models.metering import DeadLetter

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
NOW = datetime.now(UTC).replace(microsecond=0)

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=10**15, max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=80),
    st.text(alphabet=st.sampled_from("0\x00\x7f\n é9"), min_size=60, max_size=120))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
times = st.one_of(
    st.sampled_from([NOW.isoformat(), (NOW - timedelta(minutes=30)).isoformat(), "9999-12-31T23:59:59-05:00",
                     "0001-01-01T00:00:00+05:00", "2026-11-21T10:00:00.123456789Z", "NaN", "1e400",
                     "2026-13-01T00:00:00Z", "2026-11-21T10:00:00\x00Z"]),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**20), max_value=10**20),
    json_values)
meters = st.one_of(st.sampled_from(["23022673", "000023022673", "0", "nope", "9" * 65, "23022673\x00",
                                    " ", "\u202e23022673"]), st.text(max_size=100), st.integers(), json_values)
registers = st.one_of(
    st.builds(lambda n, u: f"{n} {u}", st.decimals(allow_nan=True, allow_infinity=True, places=None),
              st.sampled_from(["kWh", "Wh", "MWh", "kL", "m3", "V", ""])),
    st.sampled_from(["1" * 30 + " kWh", "99999999999999.999999 kWh", "100000000000000 kWh", "-1 kWh",
                     "3.01\x00 kWh", "1e5 kWh"]),
    json_values)
direct_documents = st.fixed_dictionaries(
    {}, optional={"meter": meters, "meter_id": meters, "serial": meters, "time": times, "timestamp": times,
                  "energy": registers, "register": registers, "volume": registers, "voltage": json_values})
uplinks = st.fixed_dictionaries({
    "deduplicationId": st.one_of(st.uuids().map(str), st.text(max_size=70), json_values),
    "time": times,
    "deviceInfo": st.one_of(st.fixed_dictionaries({"devEui": st.one_of(
        st.sampled_from(["a81758fffe0312ab", "A81758FFFE0312AB", "zz", "a" * 40]), json_values),
        "deviceProfileName": json_values}), json_values),
    "object": st.one_of(st.fixed_dictionaries({"energy": registers}, optional={"time": times}), json_values),
    "fCnt": json_values,
})
raw_payloads = st.one_of(st.binary(max_size=200), st.just(b"[" * 100_000), st.just(b'{"time": NaN}'),
                         st.just(b'{"a": ' + b"9" * 5000 + b"}"))


def check_decoded(topic: str, payload: bytes) -> None:
    try:
        reading = decode(topic, payload)
    except DecodeError as error:
        assert str(error)
        return
    assert isinstance(reading, DecodedReading)
    assert reading.taken_at.tzinfo is not None
    assert Decimal(0) <= reading.register < MAX_REGISTER
    for name in (reading.serial, reading.dev_eui, reading.uplink_id):
        assert name is None or (0 < len(name) <= MAX_ID and "\x00" not in name)


@FUZZ
@given(document=direct_documents)
def test_direct_and_http_decoders_refuse_with_a_reason_never_crash(document):
    payload = json.dumps(document).encode()
    check_decoded("http/readings", payload)
    check_decoded("meters/000023022673/readings", payload)


@FUZZ
@given(document=uplinks)
def test_the_chirpstack_decoder_refuses_with_a_reason_never_crashes(document):
    check_decoded("application/7d5c2f3e/device/a81758fffe0312ab/event/up", json.dumps(document).encode())


@FUZZ
@given(payload=raw_payloads)
def test_raw_bytes_are_refused_with_a_reason(payload):
    check_decoded("meters/1/readings", payload)
    check_decoded("application/x/device/a81758fffe0312ab/event/up", payload)


def counts(session) -> tuple[int, int, int]:
    session.rollback()
    return (session.scalar(select(func.count(Reading.id))), session.scalar(select(func.count(DeadLetter.id))),
            session.scalar(select(func.count(LedgerTransaction.id))))


@FUZZ
@given(body=st.one_of(
    direct_documents.map(lambda d: json.dumps(d).encode()),
    st.lists(direct_documents, min_size=1, max_size=5).map(lambda items: json.dumps({"readings": items}).encode()),
    st.fixed_dictionaries({"readings": json_values}).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    raw_payloads))
def test_post_readings_never_answers_5xx_and_writes_all_or_nothing(session, metered, client, body):
    key = getattr(metered, "api_key", None)
    if key is None:
        key = metered.api_key = create_api_key(session, "fuzz gateway")
        session.commit()
    before = counts(session)
    response = client.post("/api/v1/readings", data=body, headers={"X-API-Key": key},
                           content_type="application/json")
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    readings, letters, transactions = counts(session)
    if response.status_code == 200:
        answer = response.get_json()
        assert readings - before[0] == answer["accepted"]
        assert letters - before[1] == len(answer["refused"])
        assert all(isinstance(reason, str) and reason for reason in answer["refused"])
    else:
        assert (readings, letters, transactions) == before
