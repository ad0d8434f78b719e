"""SparkMeter Koios emulator: customers (cursor), data freshness and historical (v2), payments (v1).

Shapes follow ../shared/INTEGRATIONS.md. Readings are generated deterministically per site,
meter and hour. Faults: pages larger than `max_page_ok` answer 504 (a slow gateway),
every `error_every`-th request answers 503, and `stall_every`-th request stalls for
`stall_seconds`. Payments are idempotent by external_id (a repeat POST returns the original).
The payments listing (GET /api/v1/payments without external_id; its shape is assumed to
page like customers) holds payments made at the vendor (`build(payments=...)`), some for
customers nobody knows (`unknown_payments`) and some malformed (`malformed_payments`), plus
those POSTed; `payment_faults` ("503", "timeout") are spent one per listing request.
POST /api/v1/payments/{id}/reverse records a negative payment with its own external_id
(idempotent by it; a second reversal of the same payment is refused).
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

from tests.emulators import count_call, fails_with_503

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
    vendor_payments: list[dict] = field(default_factory=list)  # made at SparkMeter, no external_id
    payment_faults: list[str] = field(default_factory=list)    # "503" or "timeout", one per listing call
    listing_calls: int = 0
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


def build(sites: int = 2, meters_per_site: int = 5, latest: datetime | None = None, *,
          payments: int = 0, unknown_payments: int = 0, malformed_payments: int = 0) -> KoiosEmulator:
    """An organisation with `sites` sites of `meters_per_site` meters, one customer per meter."""
    latest = latest or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    site_ids = [str(uuid.UUID(int=n + 1)) for n in range(sites)]
    meters = {s: [f"SM{n + 1:02d}{m + 1:04d}" for m in range(meters_per_site)] for n, s in enumerate(site_ids)}
    customers = [{"id": f"cust-{serial}", "code": f"C-{serial}", "name": f"Customer {serial}",
                  "site": site, "meters": [{"serial_number": serial}]}
                 for site in site_ids for serial in meters[site]]
    emulator = KoiosEmulator(site_ids, meters, customers, {s: latest for s in site_ids})
    emulator.vendor_payments = vendor_payments(customers, latest, payments, unknown_payments, malformed_payments)
    return emulator


def vendor_payments(customers: list[dict], latest: datetime, known: int, unknown: int,
                    malformed: int) -> list[dict]:
    """Payments made at the vendor over the day before `latest`, one a minute, in time order."""
    start = latest - timedelta(days=1)
    rows = []
    for n in range(known + unknown):
        code = customers[n % len(customers)]["code"] if n < known and customers else f"C-NOBODY{n}"
        rows.append({"id": f"kv-{n + 1}", "customer_code": code, "amount": f"{10 + 5 * (n % 4)}.00",
                     "currency": "LSL", "memo": "cash agent", "external_id": None,
                     "created": (start + timedelta(minutes=n)).isoformat().replace("+00:00", "Z")})
    broken = [{"amount": "12,50"}, {"id": None}, {"created": "yesterday"}, {"amount": "-5.00"}]
    for n in range(malformed):
        at = (start + timedelta(minutes=known + unknown + n)).isoformat()
        rows.append({"id": f"kv-bad-{n + 1}", "customer_code": customers[0]["code"] if customers else "C-X",
                     "amount": "12.50", "currency": "LSL", "created": at, **broken[n % len(broken)]})
    return rows


def create_app(emulator: KoiosEmulator | None = None) -> Flask:
    """The Koios emulator as a WSGI app (defaults from KOIOS_EMULATOR_SITES / _METERS / _PAYMENTS)."""
    emulator = emulator or build(int(os.environ.get("KOIOS_EMULATOR_SITES", "2")),
                                 int(os.environ.get("KOIOS_EMULATOR_METERS", "5")),
                                 payments=int(os.environ.get("KOIOS_EMULATOR_PAYMENTS", "12")),
                                 unknown_payments=1, malformed_payments=1)
    app = Flask("koios_emulator")
    app.extensions["koios"] = emulator

    def error(status: int, title: str):
        return jsonify({"errors": [{"title": title}]}), status

    @app.before_request
    def gate():
        number = count_call(emulator)
        if emulator.api_key and (request.headers.get("X-API-KEY") != emulator.api_key
                                 or request.headers.get("X-API-SECRET") != emulator.api_secret):
            return error(401, "invalid credentials")
        if fails_with_503(emulator, number):
            return error(503, "service unavailable")
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

    @app.post("/api/v1/payments/<payment_id>/reverse")
    def reverse_payment(payment_id: str):
        body = request.get_json(silent=True) or {}
        external_id = str(body.get("external_id") or "")
        if not external_id:
            return error(422, "external_id is required")
        with emulator._lock:
            if external_id in emulator.payments:  # a repeat: the original reversal
                return jsonify({"data": emulator.payments[external_id]}), 200
            original = next((p for p in emulator.payments.values() if p["id"] == payment_id), None)
            if original is None:
                return error(404, "payment not found")
            if original.get("reversed_by"):
                return error(422, "payment already reversed")
            reversal = {"id": f"kp-{len(emulator.payments) + 1}", "customer_code": original["customer_code"],
                        "amount": str(-Decimal(original["amount"])), "memo": body.get("memo"),
                        "external_id": external_id, "reverses": original["id"],
                        "created": datetime.now(UTC).isoformat()}
            original["reversed_by"] = reversal["id"]
            emulator.payments[external_id] = reversal
        return jsonify({"data": reversal}), 201

    @app.get("/api/v1/payments")
    def find_payment():
        if "external_id" not in request.args:
            return list_payments()
        found = emulator.payments.get(request.args.get("external_id", ""))
        return jsonify({"data": found}) if found else error(404, "payment not found")

    def list_payments():
        with emulator._lock:
            emulator.listing_calls += 1
            fault = emulator.payment_faults.pop(0) if emulator.payment_faults else None
        if fault == "503":
            return error(503, "service unavailable")
        if fault == "timeout":
            time.sleep(emulator.stall_seconds)
        rows = emulator.vendor_payments + list(emulator.payments.values())
        since = request.args.get("since")
        if since:
            try:
                moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                return error(400, "since must be ISO 8601")
            rows = [r for r in rows if _created(r) is None or _created(r) >= moment]
        per_page = min(request.args.get("per_page", default=100, type=int), 200)
        start = int(request.args.get("cursor") or 0)
        page = rows[start:start + per_page]
        more = start + per_page < len(rows)
        return jsonify({"data": page, "pagination": {"count": len(page), "has_more": more,
                                                     "cursor": str(start + per_page) if more else None}})

    return app


def _created(row: dict) -> datetime | None:
    """A listed payment's time, None when it is unreadable (malformed rows are always listed)."""
    try:
        return datetime.fromisoformat(str(row.get("created")).replace("Z", "+00:00"))
    except ValueError:
        return None
