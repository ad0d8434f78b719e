"""Decoders (M2): pure functions from a topic and raw payload to one register reading.

Registers come out in the utility's billing unit: kWh for energy, kL for water (1 m³ = 1 kL).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from app.models.meter import canonical_serial

CHIRPSTACK_UP = re.compile(r"^application/(?P<app>[^/]+)/device/(?P<eui>[^/]+)/event/up$")
DIRECT_READINGS = re.compile(r"^meters/(?P<serial>[^/]+)/readings$")
HTTP_TOPIC = "http/readings"

# Unit -> factor to the billing unit (kWh or kL).
REGISTER_UNITS: dict[str, Decimal] = {
    "wh": Decimal("0.001"), "kwh": Decimal(1), "mwh": Decimal(1000),
    "l": Decimal("0.001"), "kl": Decimal(1), "m3": Decimal(1), "m³": Decimal(1),
}
REGISTER_FIELDS = ("register", "energy", "total_energy", "energy_kwh", "volume", "total_volume")
# Which field of a ChirpStack `object` holds the register, per device profile name;
# "default" applies to profiles not listed. Overridden by the `chirpstack_profiles` setting.
DEFAULT_PROFILES: dict[str, dict[str, str]] = {
    "default": {"field": "energy", "unit": "kWh"},
}
UNIT_VALUE = re.compile(r"^\s*(?P<number>[-+]?\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z³0-9]+)?\s*$")


class DecodeError(ValueError):
    """The payload cannot be read as a reading; the message says what was wrong."""


@dataclass(frozen=True)
class DecodedReading:
    """A register value at a moment, from one message; `serial` or `dev_eui` names the meter."""

    taken_at: datetime
    register: Decimal
    serial: str | None = None
    dev_eui: str | None = None
    frame_counter: int | None = None
    extras: tuple[tuple[str, str], ...] = ()


def decode(topic: str, payload: bytes | str,
           profiles: dict[str, dict[str, str]] | None = None) -> DecodedReading:
    """Decode a message from any of the inbound topics."""
    document = _json(payload)
    if match := CHIRPSTACK_UP.match(topic):
        return decode_chirpstack(document, profiles or DEFAULT_PROFILES, match["eui"])
    if match := DIRECT_READINGS.match(topic):
        return decode_direct(document, match["serial"])
    if topic == HTTP_TOPIC:
        return decode_direct(document, None)
    raise DecodeError(f"no decoder for topic {topic!r}")


def decode_chirpstack(document: dict[str, Any], profiles: dict[str, dict[str, str]],
                      topic_eui: str | None = None) -> DecodedReading:
    """Decode a ChirpStack v4 uplink event (deviceInfo.devEui, object, time, fCnt)."""
    info = document.get("deviceInfo") or {}
    eui = str(info.get("devEui") or topic_eui or "").strip().lower()
    if not eui:
        raise DecodeError("uplink has no deviceInfo.devEui")
    decoded = document.get("object")
    if not isinstance(decoded, dict):
        raise DecodeError("uplink has no decoded object (is a codec set on the device profile?)")
    profile = profiles.get(str(info.get("deviceProfileName") or "")) or profiles.get("default") \
        or DEFAULT_PROFILES["default"]
    field, unit = profile.get("field", "energy"), profile.get("unit", "kWh")
    if field not in decoded:
        raise DecodeError(f"uplink object has no {field!r} field")
    register = register_value(decoded[field], unit)
    return DecodedReading(
        taken_at=parse_time(document.get("time")), register=register, dev_eui=eui,
        frame_counter=int(document.get("fCnt") or 0),
    )


def decode_direct(document: dict[str, Any], topic_serial: str | None) -> DecodedReading:
    """Decode direct meter JSON with unit-suffixed values ("3.01 kWh", "230.1 V")."""
    raw_id = document.get("meter") or document.get("meter_id") or document.get("serial") or topic_serial
    if raw_id in (None, ""):
        raise DecodeError("reading names no meter")
    field = next((name for name in REGISTER_FIELDS if name in document), None)
    if field is None:
        raise DecodeError(f"reading has none of the register fields {', '.join(REGISTER_FIELDS)}")
    extras = tuple(sorted((k, str(v)) for k, v in document.items()
                          if k not in {field, "meter", "meter_id", "serial", "time", "timestamp"}))
    return DecodedReading(
        taken_at=parse_time(document.get("time", document.get("timestamp"))),
        register=register_value(document[field], None),
        serial=canonical_serial(str(raw_id)), extras=extras,
    )


def register_value(value: Any, default_unit: str | None) -> Decimal:
    """Read "3.01 kWh", "3010 Wh", 3.01 (with a default unit) as kWh or kL."""
    if isinstance(value, bool) or value is None:
        raise DecodeError(f"register {value!r} is not a number")
    match = UNIT_VALUE.match(str(value))
    if match is None:
        raise DecodeError(f"register {value!r} is not a number with a unit")
    unit = (match["unit"] or default_unit or "").lower()
    if unit not in REGISTER_UNITS:
        raise DecodeError(f"register {value!r} has no energy or volume unit")
    try:
        number = Decimal(match["number"])
    except InvalidOperation:
        raise DecodeError(f"register {value!r} is not a number") from None
    if number < 0:
        raise DecodeError(f"register {value!r} is negative")
    return number * REGISTER_UNITS[unit]


def parse_time(value: Any) -> datetime:
    """Read an ISO 8601 time (zone required, 'Z' allowed) or epoch seconds, as UTC."""
    if value is None or isinstance(value, bool):
        raise DecodeError("reading has no time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(int(value), UTC)
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # ChirpStack sends nanoseconds; Python keeps microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise DecodeError(f"time {value!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise DecodeError(f"time {value!r} has no timezone")
    return moment.astimezone(UTC)


def _json(payload: bytes | str) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as error:
        raise DecodeError(f"malformed JSON: {error}") from None
    if not isinstance(document, dict):
        raise DecodeError("payload is not a JSON object")
    return document
