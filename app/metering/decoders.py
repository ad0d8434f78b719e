"""Decoders (M2): pure functions from a topic and raw payload to one register reading.

Registers come out in the utility's billing unit: kWh for energy, kL for water (1 m³ = 1 kL).
Anything that cannot be read, or would not fit the columns it goes to (a meter id over 64
characters, a register beyond numeric(20,6), a time no calendar holds, a NUL in an id), is a
`DecodeError` naming what was wrong: a refusal for the dead letters, never a crash.

ChirpStack uplinks: ChirpStack's `time` is when the gateway heard the uplink, not when the
meter read its register. The device's own timestamp in the decoded `object` (the profile's
`time_field`, else `time` or `timestamp`) wins when there is one. `deduplicationId` names the
uplink (`uplink_id`), so a replayed uplink is stored once whatever time it carries.

NB-IoT meters (`nbiot/<imei>/up` over MQTT, or CoAP-relayed JSON posted to the HTTP ingest with
an `imei` field): `{"imei": "867724030012345", "serial": "000023022673", "ts": 1795257000,
"data": {"energy_wh": 1234567, "voltage_v": 230.1, "battery_v": 3.6}, "radio": {"rsrp": -95}}`.
The meter is `serial` (or `meter`) when given, else the IMEI; the register is the first of
`energy_wh`, `energy_kwh`, `volume_l`, `volume_m3` (the unit in the name) or a unit-suffixed
`energy`/`volume` ("3.01 kWh"), in `data` or at the top level; the time is `ts` (epoch
seconds), `ts_ms` (milliseconds) or an ISO `time`. Battery and radio figures travel as extras.

Modbus (`modbus/<serial>`): the poller's own readings (app/metering/modbus.py), direct-meter JSON.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.estates.settings_catalog import setting_default
from app.metering import MeteringError
from app.models.meter import canonical_serial

CHIRPSTACK_UP = re.compile(r"^application/(?P<app>[^/]+)/device/(?P<eui>[^/]+)/event/up$")
DIRECT_READINGS = re.compile(r"^meters/(?P<serial>[^/]+)/readings$")
HTTP_TOPIC = "http/readings"
NBIOT_UP = re.compile(r"^nbiot/(?P<imei>[^/]+)/up$")
MODBUS_READINGS = re.compile(r"^modbus/(?P<serial>[^/]+)$")
# NB-IoT register fields whose name carries the unit, in order of preference.
NBIOT_REGISTERS = (("energy_wh", "Wh"), ("energy_kwh", "kWh"), ("volume_l", "L"), ("volume_m3", "m3"),
                   ("energy", None), ("volume", None))
NBIOT_EXTRAS = ("voltage_v", "current_a", "power_w", "battery_v", "temperature_c")
IMEI = re.compile(r"^\d{14,16}$")

# Unit -> factor to the billing unit (kWh or kL).
REGISTER_UNITS: dict[str, Decimal] = {
    "wh": Decimal("0.001"), "kwh": Decimal(1), "mwh": Decimal(1000),
    "l": Decimal("0.001"), "kl": Decimal(1), "m3": Decimal(1), "m³": Decimal(1),
}
REGISTER_FIELDS = ("register", "energy", "total_energy", "energy_kwh", "volume", "total_volume")
# Which field of a ChirpStack `object` holds the register, per device profile name;
# "default" applies to profiles not listed. Overridden by the `chirpstack_profiles` setting.
# An optional "time_field" names the object field with the device's own timestamp (else
# `time` or `timestamp` when present, else ChirpStack's reception `time`).
DEFAULT_PROFILES: dict[str, dict[str, str]] = setting_default("chirpstack_profiles")  # the catalogue's
OBJECT_TIME_FIELDS = ("time", "timestamp")
MAX_ID = 64  # meters.serial, dead_letters.meter_serial, readings.uplink_id
MAX_REGISTER = Decimal(10) ** 14  # numeric(20, 6) holds 14 whole digits
EUI = re.compile(r"^[0-9a-f]{1,32}$")
UNIT_VALUE = re.compile(r"^\s*(?P<number>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z³0-9]+)?\s*$")


class DecodeError(MeteringError):
    """The payload cannot be read as a reading; the message says what was wrong."""


@dataclass(frozen=True)
class DecodedReading:
    """A register value at a moment, from one message; `serial` or `dev_eui` names the meter."""

    taken_at: datetime
    register: Decimal
    serial: str | None = None
    dev_eui: str | None = None
    frame_counter: int | None = None
    uplink_id: str | None = None  # ChirpStack's deduplicationId
    extras: tuple[tuple[str, str], ...] = ()


def decode(topic: str, payload: bytes | str,
           profiles: dict[str, dict[str, str]] | None = None) -> DecodedReading:
    """Decode a message from any of the inbound topics."""
    document = _json(payload)
    if match := CHIRPSTACK_UP.match(topic):
        return decode_chirpstack(document, profiles or DEFAULT_PROFILES, match["eui"])
    if match := DIRECT_READINGS.match(topic):
        return decode_direct(document, match["serial"])
    if match := NBIOT_UP.match(topic):
        return decode_nbiot(document, match["imei"])
    if match := MODBUS_READINGS.match(topic):
        return decode_direct(document, match["serial"])
    if topic == HTTP_TOPIC:
        if "imei" in document:  # CoAP-relayed NB-IoT JSON
            return decode_nbiot(document, None)
        return decode_direct(document, None)
    raise DecodeError(f"no decoder for topic {topic!r}")


def decode_chirpstack(document: dict[str, Any], profiles: dict[str, dict[str, str]],
                      topic_eui: str | None = None) -> DecodedReading:
    """Decode a ChirpStack v4 uplink event (deviceInfo.devEui, object, time, fCnt, deduplicationId)."""
    info = document.get("deviceInfo")
    info = info if isinstance(info, dict) else {}
    raw_eui = info.get("devEui") or topic_eui or ""
    eui = raw_eui.strip().lower() if isinstance(raw_eui, str) else ""
    if not eui:
        raise DecodeError("uplink has no deviceInfo.devEui")
    if not EUI.match(eui):
        raise DecodeError(f"DevEUI {_short(raw_eui)} is not up to 32 hexadecimal digits")
    decoded = document.get("object")
    if not isinstance(decoded, dict):
        raise DecodeError("uplink has no decoded object (is a codec set on the device profile?)")
    name = info.get("deviceProfileName")
    profile = profiles.get(name if isinstance(name, str) else "") or profiles.get("default") \
        or DEFAULT_PROFILES["default"]
    field, unit = profile.get("field", "energy"), profile.get("unit", "kWh")
    if field not in decoded:
        raise DecodeError(f"uplink object has no {field!r} field")
    register = register_value(decoded[field], unit)
    time_field = profile.get("time_field") or next((name for name in OBJECT_TIME_FIELDS if name in decoded), None)
    if time_field and decoded.get(time_field) is not None:
        taken_at = parse_time(decoded[time_field])  # the device's own clock
    else:
        taken_at = parse_time(document.get("time"))  # when the gateway heard it
    uplink_id = document.get("deduplicationId")
    if uplink_id is not None:
        uplink_id = _identifier(uplink_id, "deduplicationId")
    return DecodedReading(taken_at=taken_at, register=register, dev_eui=eui,
                          frame_counter=_counter(document.get("fCnt")), uplink_id=uplink_id)


def decode_direct(document: dict[str, Any], topic_serial: str | None) -> DecodedReading:
    """Decode direct meter JSON with unit-suffixed values ("3.01 kWh", "230.1 V")."""
    raw_id = document.get("meter") or document.get("meter_id") or document.get("serial") or topic_serial
    if raw_id in (None, ""):
        raise DecodeError("reading names no meter")
    serial = canonical_serial(_identifier(raw_id, "meter id"))
    field = next((name for name in REGISTER_FIELDS if name in document), None)
    if field is None:
        raise DecodeError(f"reading has none of the register fields {', '.join(REGISTER_FIELDS)}")
    extras = tuple(sorted((k[:100], str(v)[:100]) for k, v in document.items()
                          if isinstance(v, str | int | float) and not isinstance(v, bool)
                          and k not in {field, "meter", "meter_id", "serial", "time", "timestamp"}))
    return DecodedReading(
        taken_at=parse_time(document.get("time", document.get("timestamp"))),
        register=register_value(document[field], None),
        serial=serial, extras=extras,
    )


def decode_nbiot(document: dict[str, Any], topic_imei: str | None) -> DecodedReading:
    """Decode an NB-IoT meter's JSON uplink (imei, serial, ts, data{energy_wh, ...}, radio{...})."""
    raw_imei = document.get("imei", topic_imei)
    if raw_imei in (None, ""):
        raise DecodeError("NB-IoT uplink has no imei")
    imei = _identifier(raw_imei, "imei")
    if not IMEI.match(imei):
        raise DecodeError(f"imei {_short(raw_imei)} is not 14 to 16 digits")
    if topic_imei is not None and topic_imei != imei:
        raise DecodeError(f"imei {_short(raw_imei)} does not match the topic's {_short(topic_imei)}")
    raw_id = document.get("serial") or document.get("meter")
    serial = canonical_serial(_identifier(raw_id, "meter id")) if raw_id not in (None, "") else imei
    data = document.get("data", document)
    if not isinstance(data, dict):
        raise DecodeError("NB-IoT uplink's data is not an object")
    found = next(((name, unit) for name, unit in NBIOT_REGISTERS if name in data), None)
    if found is None:
        raise DecodeError("NB-IoT uplink has none of the register fields "
                          + ", ".join(name for name, _ in NBIOT_REGISTERS))
    name, unit = found
    value = data[name]
    if unit is not None and isinstance(value, str):
        raise DecodeError(f"{name} {_short(value)} must be a number (its unit is in its name)")
    register = register_value(value, unit)
    if "ts_ms" in document and document.get("ts") is None:
        millis = document["ts_ms"]
        if isinstance(millis, bool) or not isinstance(millis, int):
            raise DecodeError(f"ts_ms {_short(millis)} is not whole milliseconds")
        taken_at = parse_time(millis // 1000)
    else:
        taken_at = parse_time(document.get("ts", document.get("time", document.get("timestamp"))))
    extras = [(key, str(data[key])[:100]) for key in NBIOT_EXTRAS
              if isinstance(data.get(key), int | float) and not isinstance(data.get(key), bool)]
    radio = document.get("radio")
    if isinstance(radio, dict):
        extras += [(f"radio_{key}"[:100], str(value)[:100]) for key, value in radio.items()
                   if isinstance(key, str) and isinstance(value, int | float) and not isinstance(value, bool)]
    extras.append(("imei", imei))
    return DecodedReading(taken_at=taken_at, register=register, serial=serial, extras=tuple(sorted(extras)))


def register_value(value: Any, default_unit: str | None) -> Decimal:
    """Read "3.01 kWh", "3010 Wh", 3.01 (with a default unit) as kWh or kL."""
    if isinstance(value, bool) or value is None:
        raise DecodeError(f"register {value!r} is not a number")
    if not isinstance(value, str | int | float):
        raise DecodeError(f"register {_short(value)} is not a number with a unit")
    try:
        text = str(value)
    except ValueError:  # an int beyond Python's digit limit
        raise DecodeError("register is not a number") from None
    match = UNIT_VALUE.match(text) if len(text) <= 100 else None
    if match is None:
        raise DecodeError(f"register {_short(value)} is not a number with a unit")
    unit = (match["unit"] or default_unit or "").lower()
    if unit not in REGISTER_UNITS:
        raise DecodeError(f"register {_short(value)} has no energy or volume unit")
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        raise DecodeError(f"register {_short(value)} is not a number") from None
    if number < 0:
        raise DecodeError(f"register {_short(value)} is negative")
    register = number * REGISTER_UNITS[unit]
    if register >= MAX_REGISTER:
        raise DecodeError(f"register {_short(value)} is beyond {MAX_REGISTER:,.0f}")
    return register


def parse_time(value: Any) -> datetime:
    """Read an ISO 8601 time (zone required, 'Z' allowed) or epoch seconds, as UTC."""
    if value is None or isinstance(value, bool):
        raise DecodeError("reading has no time")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(int(value), UTC)
        except (OverflowError, OSError, ValueError):  # NaN, Infinity, beyond year 9999
            raise DecodeError(f"epoch time {_short(value)} is not a time") from None
    if not isinstance(value, str):
        raise DecodeError(f"time {_short(value)} is neither ISO 8601 nor epoch seconds")
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # ChirpStack sends nanoseconds; Python keeps microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError(f"time {_short(value)} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise DecodeError(f"time {_short(value)} has no timezone")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the calendar's end in UTC
        raise DecodeError(f"time {_short(value)} is out of range") from None


def _identifier(value: Any, name: str) -> str:
    """An id as text: a string or whole number, at most MAX_ID characters, no control characters."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise DecodeError(f"{name} {_short(value)} is not a string or number")
    text = str(value).strip() if isinstance(value, str) else str(value)
    if not text or len(text) > MAX_ID:
        raise DecodeError(f"{name} {_short(value)} is empty or longer than {MAX_ID} characters")
    if any(ord(char) < 32 or char == "\x7f" for char in text):
        raise DecodeError(f"{name} {_short(value)} contains control characters")
    return text


def _counter(value: Any) -> int:
    """ChirpStack's fCnt; missing or unreadable counts as 0 (as ChirpStack omits 0)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32 else 0


def _short(value: Any, limit: int = 80) -> str:
    """A value for a refusal reason: repr (NUL and controls escaped), cut to `limit` characters."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # deep nesting; an int beyond the digit limit
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _json(payload: bytes | str) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise DecodeError(f"malformed JSON: {_short(str(error), 200)[1:-1]}") from None
    if not isinstance(document, dict):
        raise DecodeError("payload is not a JSON object")
    return document
