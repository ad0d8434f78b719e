"""Local stand-ins for the external systems (PayFast, UISP, SparkMeter Koios/ThunderCloud).

Each emulator is a small WSGI app speaking the documented shapes (../shared/INTEGRATIONS.md),
with configurable size, latency and injected faults. Tests start them in threads;
`make run` serves them all with `python -m tests.emulators`. Nothing in app/ knows they are
emulators: the app only sees URLs from its configuration.
"""

# name -> (port used by `make run`, "module:factory" returning a WSGI app). The app's dev
# configuration defaults point at these ports.
EMULATORS: dict[str, tuple[int, str]] = {
    "payfast": (5101, "tests.emulators.payfast:create_app"),
    "uisp": (5102, "tests.emulators.uisp:create_app"),
    "koios": (5103, "tests.emulators.koios:create_app"),
    "thundercloud": (5104, "tests.emulators.thundercloud:create_app"),
}
