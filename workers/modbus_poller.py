"""Modbus poller entry point (`make modbus`, M9): builds the app once and polls the register map.

The map is MODBUS_MAP_PATH (default instance/modbus.toml) or the path given as the first
argument; the work is app.metering.modbus. SIGTERM or Ctrl-C stops it after the current round.
"""
import asyncio
import logging
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from app import create_app  # noqa: E402
from app.metering.modbus import RegisterMapError, load_register_map, run_poller  # noqa: E402

log = logging.getLogger("modbus_poller")


def main() -> None:
    """Load the register map and poll it until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    path = sys.argv[1] if len(sys.argv) > 1 else app.config["MODBUS_MAP_PATH"]
    try:
        devices = load_register_map(path)
    except RegisterMapError as error:
        sys.exit(f"register map {path}: {error}")
    log.info("polling %d Modbus meters from %s", len(devices), path)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_poller(app, devices, timeout=app.config["MODBUS_TIMEOUT"], stop=stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()
