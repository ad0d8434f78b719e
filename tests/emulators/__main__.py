"""Serve every registered emulator on its port until interrupted (used by `make run`)."""
import importlib
import signal
import sys
import threading

from werkzeug.serving import make_server

from tests.emulators import EMULATORS


def main() -> None:
    servers = []
    for name, (port, target) in EMULATORS.items():
        module_name, factory = target.split(":")
        app = getattr(importlib.import_module(module_name), factory)()
        server = make_server("127.0.0.1", port, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        print(f"emulator {name} on http://127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    for server in servers:
        server.shutdown()
    sys.exit(0)


if __name__ == "__main__":
    main()
