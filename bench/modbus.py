"""Modbus poller throughput (M9): polls/s of N simulated meters, the poller vs sequential polling.

`.venv/bin/python bench/modbus.py [--devices 40] [--lines 10] [--rounds 5] [--latency-ms 20]`
starts `--lines` pymodbus TCP servers on free loopback ports (each a gateway in front of one
RS485 line) holding `--devices` meters between them, each answering after `--latency-ms` (an
RS485 request at 9600 baud takes about that long). It measures (a) the baseline: every meter
read one after the other over one connection per line, as a simple loop would; (b) the poller
(`ModbusPoller.poll_once`): lines concurrently, meters on a line in turn (a bus answers one
request at a time). It prints polls/s for each, the ratio (b)/(a), and checks both read every
meter's energy right. Nothing is written to a database: ingest's own speed is bench/ingest.py.
"""
import argparse
import asyncio
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import logging  # noqa: E402

logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

from app.metering.modbus import ModbusPoller, load_register_map, poll_device  # noqa: E402


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def start_line(port: int, device_ids: list[int], latency: float):
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    def blocks():
        bits = [SimData(0, count=16, datatype=DataType.BITS)]
        return (bits, list(bits), [SimData(0, count=400, datatype=DataType.REGISTERS)],
                [SimData(0, count=400, datatype=DataType.REGISTERS)])

    def action_for(device_id):
        words = struct.unpack(">HH", struct.pack(">f", 1000.0 + device_id))

        async def action(function_code, start_address, address, count, current_registers, set_values):
            await asyncio.sleep(latency)
            if function_code == 4 and address == 342:
                current_registers[address - start_address] = words[0]
                current_registers[address - start_address + 1] = words[1]
            return None
        return action

    server = ModbusTcpServer([SimDevice(id=i, simdata=blocks(), action=action_for(i)) for i in device_ids],
                             address=("127.0.0.1", port))
    await server.serve_forever(background=True)
    return server


def register_map(lines: dict[int, list[int]]) -> str:
    devices = []
    for port, ids in lines.items():
        for device_id in ids:
            devices.append(f'[[device]]\nserial = "B{port}-{device_id}"\ntransport = "tcp"\nhost = "127.0.0.1"\n'
                           f'port = {port}\ndevice_id = {device_id}\ninterval = 1\n'
                           '[[device.register]]\nquantity = "energy"\naddress = 342\nfunction = 4\ntype = "float32"\n')
    return "\n".join(devices)


async def main(args) -> int:
    lines: dict[int, list[int]] = {}
    for index in range(args.devices):
        lines.setdefault(index % args.lines, []).append(index // args.lines + 1)
    lines = {free_port(): ids for ids in lines.values()}
    servers = [await start_line(port, ids, args.latency_ms / 1000) for port, ids in lines.items()]
    devices = load_register_map(register_map(lines))
    expected = {d.serial: 1000 + d.device_id for d in devices}
    try:
        poller = ModbusPoller(devices, timeout=2)
        await poller.poll_once()  # connect every line first, for both runs
        started = time.perf_counter()
        ok_seq = 0
        for _ in range(args.rounds):
            for device in devices:
                result = await poll_device(poller._client(device), device, 2)
                ok_seq += result.state == "ok" and result.values["energy"] == expected[device.serial]
        sequential = args.rounds * len(devices) / (time.perf_counter() - started)
        started = time.perf_counter()
        ok_poller = 0
        for _ in range(args.rounds):
            for result in await poller.poll_once():
                ok_poller += result.state == "ok" and result.values["energy"] == expected[result.device.serial]
        concurrent = args.rounds * len(devices) / (time.perf_counter() - started)
        poller.close()
    finally:
        for server in servers:
            await server.shutdown()
    total = args.rounds * len(devices)
    print(f"{len(devices)} meters on {len(lines)} lines, {args.latency_ms} ms per answer, {args.rounds} rounds")
    print(f"(a) sequential, one meter after another: {sequential:8.1f} polls/s ({ok_seq}/{total} read right)")
    print(f"(b) ModbusPoller, lines concurrently:    {concurrent:8.1f} polls/s ({ok_poller}/{total} read right)")
    print(f"ratio (b)/(a): {concurrent / sequential:.1f}x (at most {len(lines)}x: one bus answers one request at a time)")
    return 0 if ok_seq == ok_poller == total else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=20)
    sys.exit(asyncio.run(main(parser.parse_args())))
