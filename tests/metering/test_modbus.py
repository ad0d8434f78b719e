"""Modbus poller (M9) against pymodbus servers started here on free loopback ports: register maps,
float32 and scaled uint32 energy, a register going backwards, garbage, and a device that
disappears and comes back, all while the other devices go on being read."""
import asyncio
import json
import socket
import struct
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.metering import modbus
from app.metering.modbus import (
    GarbageAnswer, ModbusPoller, RegisterMapError, RegisterSpec, decode_registers, load_register_map, record_polls)
from app.models import Reading, utcnow
from app.models.ingest import ModbusDeviceStatus
from app.models.metering import DeadLetter, MeterAlert
from tests.factories import make_meter, make_user
from tests.helpers import sign_in

TIMEOUT = 0.3  # seconds: a stopped server is noticed quickly


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def float_words(value: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", value)))


def uint32_words(value: int) -> list[int]:
    return [value >> 16, value & 0xFFFF]


class FakeMeters:
    """A Modbus-TCP server whose registers the test sets: {(device id, function, address): value}."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.registers: dict[tuple[int, int, int], int] = {}
        self.refuse: set[int] = set()  # device ids that answer with a Modbus exception
        self.server = None

    def set(self, device_id: int, function: int, address: int, words: list[int]) -> None:
        for offset, word in enumerate(words):
            self.registers[(device_id, function, address + offset)] = word

    def _action(self, device_id: int):
        async def action(function_code, start_address, address, count, current_registers, set_values):
            from pymodbus.constants import ExcCodes

            if device_id in self.refuse:
                return ExcCodes.DEVICE_FAILURE
            for i in range(count):
                current_registers[address - start_address + i] = self.registers.get(
                    (device_id, function_code, address + i), 0)
            return None
        return action

    async def start(self, device_ids=(1, 2, 3)) -> None:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        def blocks():
            bits = [SimData(0, count=16, datatype=DataType.BITS)]
            return (bits, list(bits), [SimData(0, count=400, datatype=DataType.REGISTERS)],
                    [SimData(0, count=400, datatype=DataType.REGISTERS)])
        devices = [SimDevice(id=i, simdata=blocks(), action=self._action(i)) for i in device_ids]
        self.server = ModbusTcpServer(devices, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        await self.server.shutdown()


def tcp_map(*devices: tuple[str, int, int, str]) -> str:
    """A register map of (serial, port, device id, model) TCP devices on loopback."""
    return "\n".join(f'[[device]]\nserial = "{serial}"\ntransport = "tcp"\nhost = "127.0.0.1"\nport = {port}\n'
                     f'device_id = {device_id}\ninterval = 1\nmodel = "{model}"\n'
                     for serial, port, device_id, model in devices)


@pytest.fixture
def clock(monkeypatch):
    """The poller's clock: starts an hour ago, `clock.tick()` moves it a minute (no real waiting)."""
    class Clock:
        now = utcnow().replace(microsecond=0) - timedelta(hours=1)

        def tick(self):
            self.now += timedelta(minutes=1)
    moment = Clock()
    monkeypatch.setattr(modbus, "utcnow", lambda: moment.now)
    return moment


@pytest.fixture
def meters(session, metered):
    make_meter(session, metered.unit, serial="SDM1")
    make_meter(session, metered.unit, serial="DDS1")
    make_meter(session, metered.unit, serial="GONE1")
    session.commit()


def registers(session, serial: str) -> list[Decimal]:
    from app.models import Meter

    meter = session.scalar(select(Meter).where(Meter.serial == serial))
    return [r.register for r in session.scalars(select(Reading).where(Reading.meter_id == meter.id)
                                                .order_by(Reading.taken_at))]


def test_float32_and_scaled_uint32_maps_read_the_right_kwh(session, meters, clock):
    async def scenario():
        server = FakeMeters()
        await server.start()
        server.set(1, 4, 342, float_words(1234.5))   # SDM120 total active energy, float32
        server.set(1, 4, 0, float_words(230.1))      # its voltage
        server.set(2, 3, 0, uint32_words(123456))    # DDS238 energy in 0.01 kWh
        poller = ModbusPoller(load_register_map(tcp_map(("SDM1", server.port, 1, "eastron_sdm120"),
                                                        ("DDS1", server.port, 2, "dds238"))), timeout=TIMEOUT)
        try:
            results = await poller.poll_once()
        finally:
            poller.close()
            await server.stop()
        return results
    results = asyncio.run(scenario())
    assert [(r.device.serial, r.state, r.values.get("energy")) for r in results] == [
        ("SDM1", "ok", Decimal("1234.5")), ("DDS1", "ok", Decimal("1234.56"))]
    assert results[0].values["voltage"] == Decimal("230.1")
    report = record_polls(session, results)
    assert (report.accepted, report.dead_letters) == (2, [])
    assert registers(session, "SDM1") == [Decimal("1234.5")] and registers(session, "DDS1") == [Decimal("1234.56")]
    assert session.get(ModbusDeviceStatus, "SDM1").state == "ok"


def test_a_register_going_backwards_becomes_a_dead_letter(session, meters, clock):
    async def scenario():
        server = FakeMeters()
        await server.start()
        poller = ModbusPoller(load_register_map(tcp_map(("SDM1", server.port, 1, "eastron_sdm120"))),
                              timeout=TIMEOUT)
        reports = []
        try:
            for value in (100.0, 101.5, 90.25):
                server.set(1, 4, 342, float_words(value))
                reports.append(record_polls(session, await poller.poll_once()))
                clock.tick()
        finally:
            poller.close()
            await server.stop()
        return reports
    reports = asyncio.run(scenario())
    assert [r.accepted for r in reports] == [1, 1, 0]
    assert "went backwards from 101.5 to 90.25" in reports[2].dead_letters[0]
    assert registers(session, "SDM1") == [Decimal("100"), Decimal("101.5")]
    letter = session.scalar(select(DeadLetter))
    assert letter.topic == "modbus/SDM1" and letter.meter_serial == "SDM1"
    assert session.scalar(select(MeterAlert.kind)) == "tamper"


def test_a_stopped_server_is_reported_and_polling_resumes_when_it_returns(
        app, session, meters, clock, fresh_rate_limits):
    async def scenario():
        steady, flaky = FakeMeters(), FakeMeters()
        await steady.start()
        await flaky.start()
        steady.set(1, 4, 342, float_words(500.0))
        steady.set(3, 3, 0, uint32_words(1000))
        steady.refuse.add(3)  # answers, but with a Modbus exception: garbage
        flaky.set(1, 3, 0, uint32_words(10_000))
        poller = ModbusPoller(load_register_map(tcp_map(
            ("SDM1", steady.port, 1, "eastron_sdm120"), ("DDS1", flaky.port, 1, "dds238"),
            ("GONE1", steady.port, 3, "dds238"))), timeout=TIMEOUT)
        rounds = []
        try:
            rounds.append(record_polls(session, await poller.poll_once()))
            clock.tick()
            await flaky.stop()
            steady.set(1, 4, 342, float_words(501.0))
            rounds.append(record_polls(session, await poller.poll_once()))
            clock.tick()
            rounds.append(record_polls(session, await poller.poll_once()))  # still down: counted again
            clock.tick()
            flaky = FakeMeters(flaky.port)  # the device comes back on the same address
            await flaky.start()
            flaky.set(1, 3, 0, uint32_words(10_050))
            rounds.append(record_polls(session, await poller.poll_once()))
        finally:
            poller.close()
            await steady.stop()
            await flaky.stop()
        return rounds
    rounds = asyncio.run(scenario())
    assert rounds[0].failed.keys() == {"GONE1"} and "garbage" in rounds[0].failed["GONE1"]
    assert rounds[1].failed.keys() == {"DDS1", "GONE1"}
    assert rounds[1].failed["DDS1"].split(":")[0] in ("timeout", "unreachable")
    assert [r.accepted for r in rounds] == [2, 1, 1, 2], "the steady meter is read while the other is gone"
    assert registers(session, "SDM1") == [Decimal("500"), Decimal("501"), Decimal("501"), Decimal("501")]
    assert registers(session, "DDS1") == [Decimal("100"), Decimal("100.5")]
    session.expire_all()
    back = session.get(ModbusDeviceStatus, "DDS1")
    assert (back.state, back.failures, back.failing_since) == ("ok", 0, None)
    broken = session.get(ModbusDeviceStatus, "GONE1")
    assert (broken.state, broken.failures) == ("garbage", 4) and "exception" in broken.last_error

    from app.models import Meter
    staff = make_user(session, "staff")
    session.commit()
    client = app.test_client()
    assert sign_in(client, staff.email).status_code == 302
    gone = session.scalar(select(Meter.id).where(Meter.serial == "GONE1"))
    page = client.get(f"/staff/meters/{gone}").get_data(as_text=True)
    assert "Modbus poller" in page and "Answering nonsense" in page and "4 polls in a row" in page
    assert f"tcp 127.0.0.1:" in page


def test_a_device_that_never_answers_is_reported_without_holding_up_the_rest(session, meters, clock):
    async def scenario():
        server = FakeMeters()
        await server.start()
        server.set(1, 4, 342, float_words(42.0))
        dead_port = free_port()  # nothing listens here
        poller = ModbusPoller(load_register_map(tcp_map(("SDM1", server.port, 1, "eastron_sdm120"),
                                                        ("GONE1", dead_port, 1, "dds238"))), timeout=TIMEOUT)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            results = await poller.poll_once()
        finally:
            poller.close()
            await server.stop()
        return results, loop.time() - started
    results, took = asyncio.run(scenario())
    assert {r.device.serial: r.state for r in results} == {"SDM1": "ok", "GONE1": "unreachable"}
    assert took < 2
    record_polls(session, results)
    assert registers(session, "SDM1") == [Decimal("42")]
    assert "cannot connect" in session.get(ModbusDeviceStatus, "GONE1").last_error


@pytest.mark.parametrize(("spec", "words", "value"), [
    (RegisterSpec("energy", 0, 4, "float32", "big"), float_words(1234.5), Decimal("1234.5")),
    (RegisterSpec("energy", 0, 4, "float32", "little"), float_words(1234.5)[::-1], Decimal("1234.5")),
    (RegisterSpec("energy", 0, 3, "uint32", "big", Decimal("0.01")), uint32_words(123456), Decimal("1234.56")),
    (RegisterSpec("energy", 0, 3, "uint32", "little", Decimal("0.1")), uint32_words(70000)[::-1], Decimal("7000.0")),
    (RegisterSpec("voltage", 0, 3, "uint16", "big", Decimal("0.1"), "V"), [2301], Decimal("230.1")),
])
def test_registers_decode_by_type_word_order_and_scale(spec, words, value):
    assert decode_registers(words, spec) == value


@pytest.mark.parametrize(("spec", "words", "reason"), [
    (RegisterSpec("energy", 0), [0x7FC0, 0], "not a number"),  # NaN
    (RegisterSpec("energy", 0), [0x7F80, 0], "not a number"),  # +inf
    (RegisterSpec("energy", 0), float_words(-5.0), "negative"),
    (RegisterSpec("energy", 0), [1], "1 registers where 2"),
])
def test_garbage_registers_are_refused(spec, words, reason):
    with pytest.raises(GarbageAnswer, match=reason):
        decode_registers(words, spec)


def test_register_maps_name_what_is_wrong_where():
    specs = load_register_map(
        '[[device]]\nserial = "000023022673"\ntransport = "rtu"\nserial_port = "/dev/ttyUSB0"\n'
        'baudrate = 2400\ndevice_id = 7\ninterval = 30\n'
        '[[device.register]]\nquantity = "energy"\naddress = 0\nfunction = 3\ntype = "uint32"\n'
        'word_order = "little"\nscale = 0.01\n')
    assert len(specs) == 1 and specs[0].serial == "23022673" and specs[0].address == "rtu /dev/ttyUSB0 unit 7"
    assert specs[0].registers[0] == RegisterSpec("energy", 0, 3, "uint32", "little", Decimal("0.01"), "kWh")
    bad = ('[[device]]\nserial = "A"\ntransport = "bus"\n'
           '[[device]]\nserial = "B"\nhost = "h"\ndevice_id = 300\nmodel = "nope"\n'
           '[[device]]\nserial = "C"\nhost = "h"\n[[device.register]]\nquantity = "energy"\naddress = -1\n'
           'function = 6\ntype = "int8"\nword_order = "middle"\nscale = 0\n'
           '[[device]]\nserial = "D"\nhost = "h"\n[[device.register]]\nquantity = "voltage"\naddress = 1\n')
    with pytest.raises(RegisterMapError) as refused:
        load_register_map(bad)
    errors = refused.value.errors
    for where in ("device[0].transport", "device[1].device_id", "device[1].model", "device[2].register[0].address",
                  "device[2].register[0].function", "device[2].register[0].type",
                  "device[2].register[0].word_order", "device[2].register[0].scale", "device[3].register"):
        assert where in errors, where
    for text, where in (("not toml [", "file"), ("x = 1", "device"), ("missing.toml", "file")):
        with pytest.raises(RegisterMapError) as refused:
            load_register_map(text)
        assert where in refused.value.errors


def test_shipped_maps_load():
    for name in ("eastron_sdm120", "eastron_sdm630", "dds238"):
        device = load_register_map(str(modbus.MAPS_DIR / f"{name}.toml"))[0]
        assert device.registers[0].quantity == "energy"


def test_any_register_map_text_is_loaded_or_refused_with_reasons():
    from hypothesis import given, settings, strategies as st

    values = st.one_of(st.integers(-10, 70000), st.text(max_size=12), st.floats(allow_nan=True), st.booleans())
    register = st.dictionaries(st.sampled_from(["quantity", "address", "function", "type", "word_order",
                                                "scale", "unit"]), values, max_size=7)
    device = st.dictionaries(st.sampled_from(["serial", "transport", "host", "port", "serial_port", "device_id",
                                              "interval", "model", "baudrate", "parity", "stopbits"]),
                             values, max_size=8)

    def toml_value(value):
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return "nan" if value != value else ("inf" if value == float("inf") else
                                                 "-inf" if value == float("-inf") else repr(value))
        return json.dumps(value) if isinstance(value, str) else str(value)

    @settings(max_examples=50, deadline=None)
    @given(devices=st.lists(st.tuples(device, st.lists(register, max_size=3)), max_size=3))
    def check(devices):
        text = ""
        for fields, registers in devices:
            text += "[[device]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in fields.items())
            for entry in registers:
                text += "[[device.register]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in entry.items())
        try:
            specs = load_register_map(text + "\n")
        except RegisterMapError as error:
            assert error.errors
        else:
            assert all(any(r.quantity == "energy" for r in s.registers) for s in specs)
    check()
