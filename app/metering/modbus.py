"""Modbus/RS485 polling (M9): register maps, reading the registers, and feeding `ingest()`.

A register map is TOML (SPEC "Fixed interfaces"): one `[[device]]` per meter with
`transport` ("tcp" or "rtu"), `host`/`port` (tcp) or `serial_port`/`baudrate`/`parity`/
`stopbits` (rtu), `device_id`, `serial` (the meter's serial in Meterwise) and `interval`
(seconds), and `[[device.register]]` entries: `quantity` ("energy" is the register that is
billed; others such as "voltage" or "power" travel as extras), `address`, `function` (3
holding or 4 input), `type` (uint16, uint32 or float32), `word_order` ("big": high word
first, or "little") and `scale` (the raw value times scale is the quantity in `unit`; energy
in kWh). A device may say `model = "eastron_sdm120"` to take the registers of a shipped map
(app/metering/modbus_maps/*.toml) instead of listing them.

Polling: devices on one connection (a TCP host:port, a gateway in front of an RS485 line, or
one serial port) are read one after the other, as a bus allows one request at a time; separate
connections are polled concurrently (asyncio). Every reading goes through
`app.metering.ingest.ingest()` as a message on `modbus/<serial>`, so VEE (a register going
backwards is a dead letter and a tamper alert), billing and roll-ups are the same as for MQTT.
A timeout, an answer that makes no sense (an exception code, NaN, a negative register) or a
device that cannot be reached is logged and recorded per meter (`ModbusDeviceStatus`, shown on
the staff meter page); one bad device never stops the others, and a device that comes back is
simply read again on its next poll.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import struct
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.metering import MeteringError
from app.models import utcnow
from app.models.ingest import ModbusDeviceStatus
from app.models.meter import canonical_serial

log = logging.getLogger(__name__)
MAPS_DIR = Path(__file__).with_name("modbus_maps")
TYPES = {"uint16": 1, "uint32": 2, "float32": 2}
TRANSPORTS = ("tcp", "rtu")
STATES = ("ok", "timeout", "garbage", "unreachable")


class RegisterMapError(MeteringError):
    """The register map cannot be used; `errors` says where (``device[2].register[1].type``)."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{where}: {what}" for where, what in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class RegisterSpec:
    """One quantity read from one or two registers."""

    quantity: str
    address: int
    function: int = 3
    type: str = "float32"
    word_order: str = "big"
    scale: Decimal = Decimal(1)
    unit: str = ""

    @property
    def count(self) -> int:
        return TYPES[self.type]


@dataclass(frozen=True)
class DeviceSpec:
    """One wired meter: where it is, its Modbus device id, its serial and what to read."""

    serial: str
    transport: str
    device_id: int
    interval: float
    registers: tuple[RegisterSpec, ...]
    host: str | None = None
    port: int = 502
    serial_port: str | None = None
    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1

    @property
    def line(self) -> tuple:
        """The connection this device shares with others (polled one at a time)."""
        if self.transport == "tcp":
            return ("tcp", self.host, self.port)
        return ("rtu", self.serial_port, self.baudrate, self.parity, self.stopbits)

    @property
    def address(self) -> str:
        where = f"{self.host}:{self.port}" if self.transport == "tcp" else self.serial_port
        return f"{self.transport} {where} unit {self.device_id}"


# --- register maps ---------------------------------------------------------------------------


def load_register_map(source: str | Path) -> list[DeviceSpec]:
    """Read a TOML register map (a path, or TOML text) into device specs; RegisterMapError if unusable."""
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and source.endswith(".toml")):
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as error:
            raise RegisterMapError({"file": f"cannot read {source}: {error.strerror}"}) from None
    else:
        text = source
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise RegisterMapError({"file": f"not TOML: {error}"}) from None
    devices = document.get("device")
    if not isinstance(devices, list) or not devices:
        raise RegisterMapError({"device": "the map has no [[device]] entries"})
    errors: dict[str, str] = {}
    specs, serials = [], set()
    for index, raw in enumerate(devices):
        where = f"device[{index}]"
        spec = _device(raw, where, errors)
        if spec is None:
            continue
        if spec.serial in serials:
            errors[f"{where}.serial"] = f"meter {spec.serial} is in the map twice"
            continue
        serials.add(spec.serial)
        specs.append(spec)
    if errors:
        raise RegisterMapError(errors)
    return specs


def shipped_models() -> dict[str, tuple[RegisterSpec, ...]]:
    """The register lists of the maps shipped in app/metering/modbus_maps (by file name)."""
    models = {}
    for path in sorted(MAPS_DIR.glob("*.toml")):
        document = tomllib.loads(path.read_text(encoding="utf-8"))
        errors: dict[str, str] = {}
        registers = _registers(document["device"][0].get("register"), path.stem, errors)
        if errors:
            raise RegisterMapError(errors)
        models[path.stem] = registers
    return models


def _device(raw: Any, where: str, errors: dict[str, str]) -> DeviceSpec | None:
    if not isinstance(raw, dict):
        errors[where] = "is not a table"
        return None
    before = len(errors)
    transport = raw.get("transport", "tcp")
    if transport not in TRANSPORTS:
        errors[f"{where}.transport"] = f"must be tcp or rtu, not {transport!r}"
    serial = raw.get("serial")
    if not isinstance(serial, str | int) or isinstance(serial, bool) or not str(serial).strip():
        errors[f"{where}.serial"] = "names no meter serial"
    device_id = _int(raw.get("device_id", 1), f"{where}.device_id", errors, 0, 247)
    interval = raw.get("interval", 60)
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0.05 <= interval <= 86400:
        errors[f"{where}.interval"] = "must be seconds from 0.05 to 86400"
    options: dict[str, Any] = {}
    if transport == "tcp":
        host = raw.get("host")
        if not isinstance(host, str) or not host.strip():
            errors[f"{where}.host"] = "a TCP device needs its host"
        options["host"] = host
        options["port"] = _int(raw.get("port", 502), f"{where}.port", errors, 1, 65535)
    elif transport == "rtu":
        port = raw.get("serial_port") or raw.get("port")
        if not isinstance(port, str) or not port.strip():
            errors[f"{where}.serial_port"] = "an RTU device needs its serial port (e.g. /dev/ttyUSB0)"
        options["serial_port"] = port
        options["baudrate"] = _int(raw.get("baudrate", 9600), f"{where}.baudrate", errors, 300, 921600)
        parity = raw.get("parity", "N")
        if parity not in ("N", "E", "O"):
            errors[f"{where}.parity"] = "must be N, E or O"
        options["parity"] = parity
        options["stopbits"] = _int(raw.get("stopbits", 1), f"{where}.stopbits", errors, 1, 2)
    model = raw.get("model")
    if model is not None:
        models = shipped_models()
        if model not in models:
            errors[f"{where}.model"] = f"no shipped map {model!r} (there are {', '.join(sorted(models))})"
            registers: tuple[RegisterSpec, ...] = ()
        else:
            registers = models[model]
    else:
        registers = _registers(raw.get("register"), where, errors)
    if len(errors) > before:
        return None
    return DeviceSpec(serial=canonical_serial(str(serial).strip()), transport=transport, device_id=device_id,
                      interval=float(interval), registers=registers, **options)


def _registers(raw: Any, where: str, errors: dict[str, str]) -> tuple[RegisterSpec, ...]:
    if not isinstance(raw, list) or not raw:
        errors[f"{where}.register"] = "lists no [[device.register]] entries"
        return ()
    registers, start = [], len(errors)
    for index, entry in enumerate(raw):
        at = f"{where}.register[{index}]"
        if not isinstance(entry, dict):
            errors[at] = "is not a table"
            continue
        before = len(errors)
        quantity = entry.get("quantity")
        if not isinstance(quantity, str) or not quantity.strip() or len(quantity) > 40:
            errors[f"{at}.quantity"] = "names no quantity (energy, voltage, power, ...)"
        address = _int(entry.get("address"), f"{at}.address", errors, 0, 65535)
        function = entry.get("function", 3)
        if function not in (3, 4) or isinstance(function, bool):
            errors[f"{at}.function"] = "must be 3 (holding registers) or 4 (input registers)"
        kind = entry.get("type", "float32")
        if kind not in TYPES:
            errors[f"{at}.type"] = "must be uint16, uint32 or float32"
        order = entry.get("word_order", "big")
        if order not in ("big", "little"):
            errors[f"{at}.word_order"] = "must be big (high word first) or little"
        scale = entry.get("scale", 1)
        try:
            scale = Decimal(str(scale)) if not isinstance(scale, bool) else None
        except InvalidOperation:
            scale = None
        if scale is None or not scale.is_finite() or scale <= 0:
            errors[f"{at}.scale"] = "must be a positive number"
        unit = entry.get("unit", "kWh" if quantity == "energy" else "")
        if not isinstance(unit, str) or len(unit) > 10:
            errors[f"{at}.unit"] = "must be a short unit (kWh, V, W, A, Hz)"
        if len(errors) == before:
            registers.append(RegisterSpec(quantity.strip(), address, function, kind, order, scale, unit))
    if registers and len(errors) == start and not any(r.quantity == "energy" for r in registers):
        errors[f"{where}.register"] = "has no 'energy' register (the one that is billed)"
    return tuple(registers)


def _int(value: Any, where: str, errors: dict[str, str], low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[where] = f"must be a whole number from {low} to {high}"
        return low
    return value


# --- decoding registers ----------------------------------------------------------------------


class GarbageAnswer(Exception):
    """The device answered, but not with a value a meter can hold."""


def decode_registers(registers: list[int], spec: RegisterSpec) -> Decimal:
    """The quantity in the spec's unit from raw 16-bit registers (raises GarbageAnswer)."""
    if len(registers) != spec.count or any(not 0 <= r <= 0xFFFF for r in registers):
        raise GarbageAnswer(f"{spec.quantity}: {len(registers)} registers where {spec.count} were asked for")
    words = list(registers) if spec.word_order == "big" else list(reversed(registers))
    raw = struct.pack(">" + "H" * len(words), *words)
    if spec.type == "float32":
        number = struct.unpack(">f", raw)[0]
        if not math.isfinite(number):
            raise GarbageAnswer(f"{spec.quantity}: register holds {number} (not a number)")
        value = Decimal(f"{number:.7g}")  # a float32 carries about 7 significant digits
    else:
        value = Decimal(struct.unpack(">I" if spec.type == "uint32" else ">H", raw)[0])
    value *= spec.scale
    if spec.quantity == "energy" and value < 0:
        raise GarbageAnswer(f"energy register reads {value} (negative)")
    return value


# --- polling ---------------------------------------------------------------------------------


@dataclass
class PollResult:
    """One device's poll: the values read, or what went wrong."""

    device: DeviceSpec
    at: datetime
    state: str = "ok"  # ok, timeout, garbage, unreachable
    values: dict[str, Decimal] = field(default_factory=dict)
    error: str | None = None

    def message(self):
        """The reading as an ingest message on `modbus/<serial>`."""
        from app.metering.ingest import Message

        body: dict[str, Any] = {"meter": self.device.serial, "time": self.at.isoformat()}
        units = {r.quantity: r.unit for r in self.device.registers}
        for quantity, value in self.values.items():
            body[quantity] = f"{value.normalize():f} {units.get(quantity) or ''}".strip()
        return Message(f"modbus/{self.device.serial}", json.dumps(body).encode(), received_at=self.at)


def make_client(device: DeviceSpec, timeout: float):
    """A pymodbus async client for the device's connection (no retries: the next poll retries)."""
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

    if device.transport == "tcp":
        return AsyncModbusTcpClient(device.host, port=device.port, timeout=timeout, retries=0,
                                    reconnect_delay=0, reconnect_delay_max=0)
    return AsyncModbusSerialClient(device.serial_port, baudrate=device.baudrate, parity=device.parity,
                                   stopbits=device.stopbits, timeout=timeout, retries=0,
                                   reconnect_delay=0, reconnect_delay_max=0)


async def poll_device(client, device: DeviceSpec, timeout: float) -> PollResult:
    """Read every register of one device; never raises (a failure is the result's state)."""
    from pymodbus.exceptions import ConnectionException, ModbusException

    result = PollResult(device, utcnow().replace(microsecond=0))
    try:
        if not client.connected:
            connected = await asyncio.wait_for(client.connect(), timeout)
            if not connected:
                result.state, result.error = "unreachable", f"cannot connect to {device.address}"
                return result
        for spec in device.registers:
            read = client.read_holding_registers if spec.function == 3 else client.read_input_registers
            answer = await asyncio.wait_for(read(spec.address, count=spec.count, device_id=device.device_id),
                                            timeout + 0.5)
            if answer.isError():
                raise GarbageAnswer(f"{spec.quantity}: device answered Modbus exception "
                                    f"{getattr(answer, 'exception_code', '?')}")
            result.values[spec.quantity] = decode_registers(list(answer.registers), spec)
    except GarbageAnswer as error:
        result.state, result.error = "garbage", str(error)
    except (asyncio.TimeoutError, TimeoutError):
        result.state, result.error = "timeout", f"no answer within {timeout:g} s"
    except ConnectionException as error:
        result.state, result.error = "unreachable", f"connection lost: {_short(error)}"
    except ModbusException as error:  # an IO error mid-answer: the device stopped answering
        result.state, result.error = "timeout", _short(error)
    except (OSError, ValueError, struct.error) as error:
        result.state, result.error = "unreachable", _short(error)
    if result.state != "ok":
        result.values = {}
        if result.state in ("unreachable", "timeout"):
            client.close()  # the next poll connects afresh (a device that came back answers)
    return result


def _short(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"


class ModbusPoller:
    """Polls a register map: one client per connection, devices due by their own interval."""

    def __init__(self, devices: list[DeviceSpec], *, timeout: float = 2.0):
        self.devices = devices
        self.timeout = timeout
        self.clients: dict[tuple, Any] = {}
        self.next_due: dict[str, float] = {}

    def _client(self, device: DeviceSpec):
        if device.line not in self.clients:
            self.clients[device.line] = make_client(device, self.timeout)
        return self.clients[device.line]

    async def _poll_line(self, devices: list[DeviceSpec]) -> list[PollResult]:
        results = []
        for device in devices:  # a bus answers one request at a time
            results.append(await poll_device(self._client(device), device, self.timeout))
        return results

    async def poll_once(self, devices: list[DeviceSpec] | None = None) -> list[PollResult]:
        """Poll the given devices (default: all), lines concurrently, devices on a line in turn."""
        lines: dict[tuple, list[DeviceSpec]] = {}
        for device in devices if devices is not None else self.devices:
            lines.setdefault(device.line, []).append(device)
        batches = await asyncio.gather(*(self._poll_line(group) for group in lines.values()))
        return [result for batch in batches for result in batch]

    def due(self, now: float) -> list[DeviceSpec]:
        """Devices whose interval has passed since their last poll (all of them at first)."""
        due = [d for d in self.devices if self.next_due.get(d.serial, 0) <= now]
        for device in due:
            self.next_due[device.serial] = now + device.interval
        return due

    def seconds_to_next(self, now: float) -> float:
        return max(0.0, min((self.next_due.get(d.serial, 0) for d in self.devices), default=1.0) - now)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()


@dataclass
class PollReport:
    """What one round of polls did."""

    polled: int = 0
    read: int = 0
    accepted: int = 0
    dead_letters: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # serial -> state: error


def record_polls(session: Session, results: list[PollResult]) -> PollReport:
    """Feed the good readings through `ingest()` and store each device's status; commits once."""
    from app.metering.ingest import ingest

    report = PollReport(polled=len(results))
    good = [result for result in results if result.state == "ok"]
    if good:
        outcome = ingest(session, [result.message() for result in good])
        report.read, report.accepted, report.dead_letters = len(good), outcome.accepted, outcome.dead_letters
    for result in results:
        _record_status(session, result)
        if result.state != "ok":
            report.failed[result.device.serial] = f"{result.state}: {result.error}"
    session.commit()
    return report


def _record_status(session: Session, result: PollResult) -> None:
    row = session.get(ModbusDeviceStatus, result.device.serial)
    if row is None:
        row = ModbusDeviceStatus(meter_serial=result.device.serial, state="ok", failures=0)
        session.add(row)
    was = row.state
    row.address = result.device.address[:255]
    row.last_poll_at = result.at
    if result.state == "ok":
        if was != "ok":
            log.info("modbus meter %s (%s) answers again", result.device.serial, result.device.address)
        row.state, row.last_ok_at, row.failing_since, row.failures = "ok", result.at, None, 0
        return
    if was != result.state:
        log.warning("modbus meter %s (%s): %s: %s", result.device.serial, result.device.address,
                    result.state, result.error)
    row.state = result.state
    row.last_error = (result.error or result.state)[:500]
    row.failing_since = row.failing_since or result.at
    row.failures = (row.failures or 0) + 1


def device_status(session: Session, serial: str) -> ModbusDeviceStatus | None:
    """What the poller last saw of this meter (None: it is not polled over Modbus)."""
    return session.get(ModbusDeviceStatus, serial)


async def run_poller(app, devices: list[DeviceSpec], *, timeout: float, stop: asyncio.Event) -> None:
    """Poll until `stop` is set: due devices each round, their readings ingested and committed."""
    from app.extensions import db

    poller = ModbusPoller(devices, timeout=timeout)
    loop = asyncio.get_running_loop()
    try:
        while not stop.is_set():
            due = poller.due(loop.time())
            if due:
                results = await poller.poll_once(due)
                with app.app_context():
                    try:
                        report = record_polls(db.session, results)
                    except Exception:  # the database is down or a bug: log, keep polling
                        db.session.rollback()
                        log.exception("could not store %d Modbus polls", len(results))
                    else:
                        if report.dead_letters:
                            log.warning("modbus: %d readings refused: %s", len(report.dead_letters),
                                        "; ".join(report.dead_letters[:5]))
                    finally:
                        db.session.remove()
            try:
                await asyncio.wait_for(stop.wait(), max(0.05, poller.seconds_to_next(loop.time())))
            except (asyncio.TimeoutError, TimeoutError):
                pass
    finally:
        poller.close()
