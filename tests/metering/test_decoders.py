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
