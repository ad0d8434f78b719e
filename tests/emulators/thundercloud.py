"""ThunderCloud emulator: daily heartbeat export files per site (CSV or Parquet), with top-ups.

`heartbeat_rows(site, day)` is deterministic: each meter reports every 4 hours, its credit
falls with use and jumps up by a top-up on some days. Sites "S1", "S2" (the default
THUNDERCLOUD_SITES) carry the demo TPM mini-grid's meter serials, so the demo matches their
payments to units; other site ids get serials no demo meter has. The WSGI app serves a site-day's file at
GET /api/v0/exports?site=<site>&date=<YYYY-MM-DD>[&format=csv|parquet] (header
`Authentication-Token` checked when a token is set); days from today on answer 404 (not
produced yet), as do unknown sites when `sites` is set. Faults like the other emulators:
`latency`, every `error_every`-th request answers 503, every `stall_every`-th stalls for
`stall_seconds`, and `malformed_rows` rows per file lack their timestamp.
"""
from __future__ import annotations

import csv
import io
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from flask import Flask, Response, jsonify, request

from tests.emulators import count_call, fails_with_503

TOPUP = Decimal("50.00")
FIRST_DAY = date(2024, 1, 1)
COLUMNS = ["heartbeat_id", "meter_serial", "customer_code", "timestamp", "credit_balance"]


def meter_serial(site: str, n: int) -> str:
    """Meter n's serial (1-based): site "S<k>" is the demo's SparkMeter site k ("SM0k000n", the
    serials of the TPM mini-grid's meters, as the Koios emulator reports them); others "TC<site>000n"."""
    match = re.fullmatch(r"S(\d{1,2})", site)
    return f"SM{int(match.group(1)):02d}{n:04d}" if match else f"TC{site}{n:04d}"


def day_number(day: date) -> int:
    """Days since the emulated meters were installed; meter n tops up when divisible by n+1."""
    return (day - FIRST_DAY).days


def heartbeat_rows(site: str, day: date, meters: int = 3, malformed: int = 0) -> list[dict]:
    """One day's heartbeats: credit falls 1.25 per 4 h; meter n tops up 50 on days divisible by n+1."""
    rows = []
    epoch = day_number(day)
    for n in range(meters):
        serial = meter_serial(site, n + 1)
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
    for n in range(malformed):  # a logger that lost its clock: no timestamp
        rows.append({"heartbeat_id": f"hb-TC{site}-broken-{day:%Y%m%d}-{n}", "meter_serial": f"TC{site}9999",
                     "customer_code": None, "timestamp": None, "credit_balance": "1.00"})
    return rows


def heartbeat_csv(site: str, day: date, meters: int = 3, malformed: int = 0) -> str:
    """The day's heartbeats as a CSV export."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(heartbeat_rows(site, day, meters, malformed))
    return out.getvalue()


def heartbeat_parquet(site: str, day: date, meters: int = 3, malformed: int = 0) -> bytes:
    """The same heartbeats as a Parquet export with typed columns (timestamp, decimal)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = heartbeat_rows(site, day, meters, malformed)
    schema = pa.schema([("heartbeat_id", pa.string()), ("meter_serial", pa.string()),
                        ("customer_code", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC")),
                        ("credit_balance", pa.decimal128(12, 2))])
    table = pa.Table.from_pylist([
        {**row, "timestamp": datetime.fromisoformat(row["timestamp"]) if row["timestamp"] else None,
         "credit_balance": Decimal(row["credit_balance"])} for row in rows], schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


@dataclass
class ThunderCloudEmulator:
    token: str = ""
    sites: tuple[str, ...] = ()          # empty: any site id has an export
    meters: int = 3
    file_format: str = "csv"             # served when the request names none
    latency: float = 0.0
    error_every: int = 0
    stall_every: int = 0
    stall_seconds: float = 2.0
    malformed_rows: int = 0
    calls: int = 0
    served: list[str] = field(default_factory=list)  # "site/day" of each file served
    _lock: threading.Lock = field(default_factory=threading.Lock)


def create_app(emulator: ThunderCloudEmulator | None = None, token: str = "") -> Flask:
    """The ThunderCloud emulator as a WSGI app (defaults from THUNDERCLOUD_EMULATOR_FORMAT)."""
    emulator = emulator or ThunderCloudEmulator(
        token=token, file_format=os.environ.get("THUNDERCLOUD_EMULATOR_FORMAT", "parquet"))
    app = Flask("thundercloud_emulator")
    app.extensions["thundercloud"] = emulator

    def error(status: int, message: str):
        return jsonify({"error": message}), status

    @app.before_request
    def gate():
        number = count_call(emulator)
        if emulator.token and request.headers.get("Authentication-Token") != emulator.token:
            return error(401, "invalid token")
        if fails_with_503(emulator, number):
            return error(503, "service unavailable")
        return None

    @app.get("/api/v0/exports")
    def export():
        site = request.args.get("site", "")
        try:
            day = date.fromisoformat(request.args.get("date", ""))
        except ValueError:
            return error(400, "date must be YYYY-MM-DD")
        if not site or (emulator.sites and site not in emulator.sites):
            return error(404, "unknown site")
        if day >= datetime.now(UTC).date():
            return error(404, "export not produced yet")
        file_format = request.args.get("format") or emulator.file_format
        emulator.served.append(f"{site}/{day.isoformat()}")
        name = f"heartbeats-{site}-{day.isoformat()}.{file_format}"
        if file_format == "parquet":
            body = heartbeat_parquet(site, day, emulator.meters, emulator.malformed_rows)
            mimetype = "application/vnd.apache.parquet"
        elif file_format == "csv":
            body = heartbeat_csv(site, day, emulator.meters, emulator.malformed_rows)
            mimetype = "text/csv"
        else:
            return error(400, "format must be csv or parquet")
        return Response(body, mimetype=mimetype,
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    return app
