"""SparkMeter Koios emulator: customers (cursor), data freshness and historical (v2), payments (v1).

Shapes follow ../shared/INTEGRATIONS.md. Readings are generated deterministically per site,
meter and hour. Faults: pages larger than `max_page_ok` answer 504 (a slow gateway),
every `error_every`-th request answers 503, and `stall_every`-th request stalls for
`stall_seconds`. Payments are idempotent by external_id (a repeat POST returns the original).
Credentials are checked when `api_key` is set (tests); `make run` accepts any.
"""
from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from flask import Flask, jsonify, request

ORG = "org-emulated"


@dataclass
class KoiosEmulator:
    sites: list[str]
    meters: dict[str, list[str]]             # site -> meter serials
    customers: list[dict]
    latest: dict[str, datetime | None]       # site -> last reading time available
    api_key: str = ""
    api_secret: str = ""
    latency: float = 0.0
    max_page_ok: int = 200
    error_every: int = 0
    stall_every: int = 0
    stall_seconds: float = 2.0
    payments: dict[str, dict] = field(default_factory=dict)  # external_id -> payment
    calls: int = 0
    historical_calls: list[int] = field(default_factory=list)  # per_page of each call
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def readings(self, site: str, day: date) -> list[dict]:
        """Hourly readings of every meter of `site` on `day` (UTC), up to `latest`."""
        rows = []
        cutoff = self.latest.get(site)
        for index, serial in enumerate(self.meters[site]):
            for hour in range(24):
                end = datetime(day.year, day.month, day.day, hour, tzinfo=UTC) + timedelta(hours=1)
                if cutoff is None or end > cutoff:
                    break
                kwh = Decimal(index % 5 + 1) / 10
                rows.append({
                    "site": site, "timestamp": end.isoformat().replace("+00:00", "Z"),
                    "meter": {"serial_number": serial, "customer": {"id": f"cust-{serial}"}},
                    "kilowatt_hours": str(kwh), "energy": str(kwh * 1000),
                    "voltage_avg": "229.8", "current_avg": "1.2", "power_factor_avg": "0.97",
                    "type": "interval", "state": "ElectricalMeterStateOn",
                })
        return rows


def build(sites: int = 2, meters_per_site: int = 5, latest: datetime | None = None) -> KoiosEmulator:
    """An organisation with `sites` sites of `meters_per_site` meters, one customer per meter."""
    latest = latest or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    site_ids = [str(uuid.UUID(int=n + 1)) for n in range(sites)]
    meters = {s: [f"SM{n + 1:02d}{m + 1:04d}" for m in range(meters_per_site)] for n, s in enumerate(site_ids)}
    customers = [{"id": f"cust-{serial}", "code": f"C-{serial}", "name": f"Customer {serial}",
                  "site": site, "meters": [{"serial_number": serial}]}
                 for site in site_ids for serial in meters[site]]
    return KoiosEmulator(site_ids, meters, customers, {s: latest for s in site_ids})


def create_app(emulator: KoiosEmulator | None = None) -> Flask:
    """The Koios emulator as a WSGI app (defaults from KOIOS_EMULATOR_SITES / _METERS)."""
    emulator = emulator or build(int(os.environ.get("KOIOS_EMULATOR_SITES", "2")),
                                 int(os.environ.get("KOIOS_EMULATOR_METERS", "5")))
    app = Flask("koios_emulator")
    app.extensions["koios"] = emulator

    def error(status: int, title: str):
        return jsonify({"errors": [{"title": title}]}), status

    @app.before_request
    def gate():
        with emulator._lock:
            emulator.calls += 1
            number = emulator.calls
        if emulator.latency:
            time.sleep(emulator.latency)
        if emulator.api_key and (request.headers.get("X-API-KEY") != emulator.api_key
                                 or request.headers.get("X-API-SECRET") != emulator.api_secret):
            return error(401, "invalid credentials")
        if emulator.error_every and number % emulator.error_every == 0:
            return error(503, "service unavailable")
        if emulator.stall_every and number % emulator.stall_every == 0:
            time.sleep(emulator.stall_seconds)
        return None

    @app.get("/api/v1/customers")
    def customers():
        rows = emulator.customers
        if request.args.get("code"):
            rows = [c for c in rows if c["code"] == request.args["code"]]
        per_page = min(request.args.get("per_page", default=100, type=int), 200)
        start = int(request.args.get("cursor") or 0)
        page = rows[start:start + per_page]
        more = start + per_page < len(rows)
        return jsonify({"data": page, "pagination": {"count": len(page), "has_more": more,
                                                     "cursor": str(start + per_page) if more else None}})

    @app.post("/api/v2/organizations/<org>/data/freshness")
    def freshness(org: str):
        sites = ((request.get_json(silent=True) or {}).get("filters") or {}).get("sites") or emulator.sites
        return jsonify({"freshness": {s: ({"reading": emulator.latest[s].isoformat()}
                                          if emulator.latest.get(s) else None)
                                      for s in sites if s in emulator.meters}})

    @app.post("/api/v2/organizations/<org>/data/historical")
    def historical(org: str):
        body = request.get_json(silent=True) or {}
        per_page = body.get("per_page", 100)
        if not isinstance(per_page, int) or not 1 <= per_page <= 200:
            return error(400, "per_page must be 1-200")
        emulator.historical_calls.append(per_page)
        if per_page > emulator.max_page_ok:
            return error(504, "gateway timeout")
        filters = body.get("filters") or {}
        dates = filters.get("date_range") or {}
        try:
            day = date.fromisoformat(dates["from"])
        except (KeyError, ValueError):
            return error(400, "date_range.from is required (YYYY-MM-DD)")
        rows = [r for site in filters.get("sites") or [] if site in emulator.meters
                for r in emulator.readings(site, day)]
        start = int(body.get("cursor") or 0)
        page = rows[start:start + per_page]
        more = start + per_page < len(rows)
        return jsonify({"data": page, "pagination": {"count": len(page), "has_more": more,
                                                     "cursor": str(start + per_page) if more else None}})

    @app.post("/api/v1/payments")
    def create_payment():
        body = request.get_json(silent=True) or {}
        external_id = str(body.get("external_id") or "")
        if not external_id:
            return error(422, "external_id is required")
        if external_id in emulator.payments:
            return jsonify({"data": emulator.payments[external_id]}), 200
        if not any(c["code"] == body.get("customer_code") for c in emulator.customers):
            return error(422, "customer not found")
        try:
            amount = Decimal(str(body.get("amount")))
        except InvalidOperation:
            return error(422, "amount must be a decimal string")
        if not isinstance(body.get("amount"), str) or amount <= 0:
            return error(422, "amount must be a positive decimal string")
        payment = {"id": f"kp-{len(emulator.payments) + 1}", "customer_code": body["customer_code"],
                   "amount": str(amount), "memo": body.get("memo"), "external_id": external_id,
                   "created": datetime.now(UTC).isoformat()}
        emulator.payments[external_id] = payment
        return jsonify({"data": payment}), 201

    @app.get("/api/v1/payments")
    def find_payment():
        found = emulator.payments.get(request.args.get("external_id", ""))
        return jsonify({"data": found}) if found else error(404, "payment not found")

    return app
