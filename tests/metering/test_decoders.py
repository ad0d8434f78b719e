"""Decoders: table tests over real-shaped payloads (ChirpStack v4 uplinks, direct meter JSON)."""
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from app.metering.decoders import DecodeError, decode

EUI = "0004a30b001c0530"
UP_TOPIC = f"application/7d5c2f3e-0000-4000-8000-000000000001/device/{EUI}/event/up"


def uplink(obj, *, profile="Kamstrup", time="2026-11-21T10:30:00.123456789Z", fcnt=42):
    return json.dumps({
        "deduplicationId": "3c1c1d2b", "time": time,
        "deviceInfo": {"tenantId": "t", "applicationId": "a", "deviceProfileName": profile,
                       "deviceName": "meter", "devEui": EUI.upper(), "tags": {}},
        "devAddr": "00189440", "fCnt": fcnt, "fPort": 1, "data": "AQID", "object": obj,
        "rxInfo": [{"gatewayId": "g", "rssi": -60, "snr": 9.5}],
    }).encode()


@pytest.mark.parametrize(("topic", "payload", "serial", "eui", "register", "taken_at"), [
    (UP_TOPIC, uplink({"energy": 1234.5}), None, EUI, Decimal("1234.5"),
     datetime(2026, 11, 21, 10, 30, 0, 123456, UTC)),
    ("meters/000023022673/readings",
     b'{"meter": "000023022673", "time": "2026-11-21T10:30:00+02:00", "energy": "3.01 kWh",'
     b' "voltage": "230.1 V", "power": "1200 W"}',
     "23022673", None, Decimal("3.01"), datetime(2026, 11, 21, 8, 30, tzinfo=UTC)),
    ("meters/23022673/readings", b'{"time": 1795257000, "energy": "3010 Wh"}',
     "23022673", None, Decimal("3.010"), datetime.fromtimestamp(1795257000, UTC)),
    ("meters/W77/readings", b'{"serial": "0W77", "time": "2026-11-21T10:00:00Z", "volume": "12.5 m3"}',
     "W77", None, Decimal("12.5"), datetime(2026, 11, 21, 10, tzinfo=UTC)),
    ("http/readings", b'{"meter_id": "00042", "time": "2026-11-21T10:00:00Z", "register": "1.5 MWh"}',
     "42", None, Decimal("1500"), datetime(2026, 11, 21, 10, tzinfo=UTC)),
])
def test_decodes_each_source_to_one_reading(topic, payload, serial, eui, register, taken_at):
    reading = decode(topic, payload)
    assert (reading.serial, reading.dev_eui, reading.register, reading.taken_at) == (
        serial, eui, register, taken_at)


def test_padded_and_unpadded_ids_are_one_meter():
    padded = decode("meters/000023022673/readings", b'{"time": 1795257000, "energy": "1 kWh"}')
    plain = decode("meters/23022673/readings", b'{"time": 1795257000, "energy": "1 kWh"}')
    assert padded.serial == plain.serial == "23022673"


def test_device_profile_chooses_the_register_field_and_unit():
    profiles = {"default": {"field": "energy", "unit": "kWh"},
                "WaterLoRa": {"field": "totalVolume", "unit": "L"}}
    reading = decode(UP_TOPIC, uplink({"totalVolume": 12500, "energy": 9}, profile="WaterLoRa"), profiles)
    assert reading.register == Decimal("12.500")  # litres to kL
    default = decode(UP_TOPIC, uplink({"energy": 9}, profile="Other"), profiles)
    assert default.register == Decimal(9)


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("meters/1/readings", b"{not json", "malformed JSON"),
    ("meters/1/readings", b"[1, 2]", "not a JSON object"),
    ("meters/1/readings", b'{"time": "2026-11-21T10:00:00Z", "voltage": "230 V"}', "register fields"),
    ("meters/1/readings", b'{"time": "2026-11-21T10:00:00Z", "energy": "230 V"}', "no energy or volume unit"),
    ("meters/1/readings", b'{"time": "2026-11-21T10:00:00Z", "energy": "-3 kWh"}', "negative"),
    ("meters/1/readings", b'{"time": "2026-11-21T10:00:00", "energy": "3 kWh"}', "no timezone"),
    ("meters/1/readings", b'{"time": "yesterday", "energy": "3 kWh"}', "not ISO 8601"),
    ("meters/1/readings", b'{"energy": "3 kWh"}', "no time"),
    (UP_TOPIC, uplink(None), "no decoded object"),
    (UP_TOPIC, uplink({"power": 3}), "no 'energy' field"),
    ("meters/1/status", b'{}', "no decoder"),
])
def test_bad_payloads_say_what_is_wrong(topic, payload, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(topic, payload)


# --- NB-IoT (M2): MQTT `nbiot/<imei>/up`, or CoAP-relayed JSON posted to the HTTP ingest --------

IMEI = "867724030012345"


def nbiot(**fields):
    body = {"imei": IMEI, "serial": "000023022673", "ts": 1795257000,
            "data": {"energy_wh": 1234567, "voltage_v": 230.1, "battery_v": 3.6}, "radio": {"rsrp": -95, "ecl": 0}}
    body.update(fields)
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


@pytest.mark.parametrize(("topic", "payload", "serial", "register", "taken_at"), [
    (f"nbiot/{IMEI}/up", nbiot(), "23022673", Decimal("1234.567"), datetime.fromtimestamp(1795257000, UTC)),
    ("http/readings", nbiot(), "23022673", Decimal("1234.567"), datetime.fromtimestamp(1795257000, UTC)),
    (f"nbiot/{IMEI}/up", nbiot(serial=None), IMEI, Decimal("1234.567"), datetime.fromtimestamp(1795257000, UTC)),
    (f"nbiot/{IMEI}/up", nbiot(data={"energy_kwh": 12.5}), "23022673", Decimal("12.5"),
     datetime.fromtimestamp(1795257000, UTC)),
    (f"nbiot/{IMEI}/up", nbiot(data={"volume_l": 12500}), "23022673", Decimal("12.5"),
     datetime.fromtimestamp(1795257000, UTC)),
    (f"nbiot/{IMEI}/up", nbiot(data={"volume_m3": 3.25}), "23022673", Decimal("3.25"),
     datetime.fromtimestamp(1795257000, UTC)),
    (f"nbiot/{IMEI}/up", nbiot(data=None, energy="3.01 kWh"), "23022673", Decimal("3.01"),
     datetime.fromtimestamp(1795257000, UTC)),
    (f"nbiot/{IMEI}/up", nbiot(ts=None, ts_ms=1795257000123), "23022673", Decimal("1234.567"),
     datetime.fromtimestamp(1795257000, UTC)),
    (f"nbiot/{IMEI}/up", nbiot(ts=None, time="2026-11-21T10:30:00+02:00"), "23022673", Decimal("1234.567"),
     datetime(2026, 11, 21, 8, 30, tzinfo=UTC)),
])
def test_nbiot_uplinks_decode_to_one_reading(topic, payload, serial, register, taken_at):
    reading = decode(topic, payload)
    assert (reading.serial, reading.register, reading.taken_at) == (serial, register, taken_at)


def test_nbiot_battery_and_radio_travel_as_extras():
    extras = dict(decode(f"nbiot/{IMEI}/up", nbiot()).extras)
    assert extras == {"battery_v": "3.6", "voltage_v": "230.1", "radio_rsrp": "-95", "radio_ecl": "0", "imei": IMEI}


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    (f"nbiot/{IMEI}/up", nbiot(imei="12ab"), "not 14 to 16 digits"),
    (f"nbiot/{IMEI}/up", nbiot(imei="867724030099999"), "does not match the topic"),
    ("http/readings", nbiot(imei=""), "no imei"),
    (f"nbiot/{IMEI}/up", nbiot(data={"voltage_v": 230}), "none of the register fields"),
    (f"nbiot/{IMEI}/up", nbiot(data={"energy_wh": "12 kWh"}), "must be a number"),
    (f"nbiot/{IMEI}/up", nbiot(data={"energy_wh": -5}), "negative"),
    (f"nbiot/{IMEI}/up", nbiot(data=[1, 2]), "data is not an object"),
    (f"nbiot/{IMEI}/up", nbiot(ts=None), "no time"),
    (f"nbiot/{IMEI}/up", nbiot(ts=None, ts_ms="soon"), "not whole milliseconds"),
    (f"nbiot/{IMEI}/up", nbiot(serial="x" * 80), "longer than 64"),
])
def test_bad_nbiot_uplinks_say_what_is_wrong(topic, payload, reason):
    with pytest.raises(DecodeError, match=reason):
        decode(topic, payload)


def test_modbus_poller_readings_decode_like_direct_meters():
    reading = decode("modbus/SDM1", b'{"meter": "SDM1", "time": "2026-11-21T10:00:07Z", "energy": "12.5 kWh"}')
    assert (reading.serial, reading.register) == ("SDM1", Decimal("12.5"))


def test_any_nbiot_document_decodes_or_says_why():
    from hypothesis import given, settings, strategies as st

    scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=20))
    documents = st.dictionaries(st.sampled_from(["imei", "serial", "meter", "ts", "ts_ms", "time", "data", "radio",
                                                 "energy", "energy_wh", "volume_l"]),
                                st.one_of(scalars, st.dictionaries(st.text(max_size=10), scalars, max_size=4)),
                                max_size=8)

    @settings(max_examples=50, deadline=None)
    @given(document=documents)
    def check(document):
        try:
            decode(f"nbiot/{IMEI}/up", json.dumps(document, allow_nan=True).encode())
        except DecodeError:
            pass
    check()
