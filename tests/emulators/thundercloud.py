"""ThunderCloud emulator: daily heartbeat export files (CSV) per site, with top-ups in them.

`heartbeat_csv(site, day)` is deterministic: each meter reports every 4 hours, its credit
falls with use and jumps up by a top-up on some days. The WSGI app serves the files at
/exports/heartbeats/<site>/<YYYY-MM-DD>.csv (header `Authentication-Token` when set).
"""
from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

from flask import Flask, Response, abort, request

TOPUP = Decimal("50.00")
FIRST_DAY = date(2024, 1, 1)


def day_number(day: date) -> int:
    """Days since the emulated meters were installed; meter n tops up when divisible by n+1."""
    return (day - FIRST_DAY).days


def heartbeat_rows(site: str, day: date, meters: int = 3) -> list[dict]:
    """One day's heartbeats: credit falls 1.25 per 4 h; meter n tops up 50 on days divisible by n+1."""
    rows = []
    epoch = day_number(day)
    for n in range(meters):
        serial = f"TC{site}{n + 1:04d}"
        # Top-ups of earlier days are in the opening credit, so days join without a jump.
        credit = Decimal(100) + TOPUP * ((epoch + n) // (n + 1)) - Decimal("7.5") * epoch
        for slot in range(6):
            at = datetime(day.year, day.month, day.day, slot * 4, tzinfo=UTC)
            if slot == 3 and epoch % (n + 1) == 0:
                credit += TOPUP
            credit -= Decimal("1.25")
            rows.append({"heartbeat_id": f"hb-{serial}-{at:%Y%m%d%H}", "meter_serial": serial,
                         "customer_code": f"C-{serial}", "timestamp": at.isoformat(),
                         "credit_balance": f"{credit:.2f}"})
    return rows


def heartbeat_csv(site: str, day: date, meters: int = 3) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["heartbeat_id", "meter_serial", "customer_code",
                                             "timestamp", "credit_balance"])
    writer.writeheader()
    writer.writerows(heartbeat_rows(site, day, meters))
    return out.getvalue()


def create_app(token: str = "") -> Flask:
    app = Flask("thundercloud_emulator")

    @app.get("/exports/heartbeats/<site>/<day>.csv")
    def export(site: str, day: str):
        if token and request.headers.get("Authentication-Token") != token:
            abort(401)
        try:
            when = date.fromisoformat(day)
        except ValueError:
            abort(404)
        return Response(heartbeat_csv(site, when), mimetype="text/csv")

    return app
