"""Local stand-ins for the external systems (PayFast, UISP, SparkMeter Koios/ThunderCloud).

Each emulator is a small WSGI app speaking the documented shapes (../shared/INTEGRATIONS.md),
with configurable size, latency and injected faults. Tests start them in threads;
`make run` serves them all with `python -m tests.emulators`. Nothing in app/ knows they are
emulators: the app only sees URLs from its configuration.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import WSGIRequestHandler, make_server


class _QuietHandler(WSGIRequestHandler):
    """Serves requests without a log line per request."""

    def log_request(self, *args, **kwargs) -> None:
        pass


@contextmanager
def serving(wsgi_app) -> Iterator[str]:
    """Serve `wsgi_app` on a free loopback port in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()


# name -> (port used by `make run`, "module:factory" returning a WSGI app). The app's dev
# configuration defaults point at these ports.
EMULATORS: dict[str, tuple[int, str]] = {
    "payfast": (5101, "tests.emulators.payfast:create_app"),
    "uisp": (5102, "tests.emulators.uisp:create_app"),
    "koios": (5103, "tests.emulators.koios:create_app"),
    "thundercloud": (5104, "tests.emulators.thundercloud:create_app"),
}


def count_call(emulator) -> int:
    """Count one request on an emulator (thread-safe), wait its latency; returns the request's number."""
    with emulator._lock:
        emulator.calls += 1
        number = emulator.calls
    if emulator.latency:
        time.sleep(emulator.latency)
    return number


def fails_with_503(emulator, number: int) -> bool:
    """Whether request `number` should answer 503 (`error_every`); stalls it first if `stall_every` says so."""
    if emulator.error_every and number % emulator.error_every == 0:
        return True
    if emulator.stall_every and number % emulator.stall_every == 0:
        time.sleep(emulator.stall_seconds)
    return False
