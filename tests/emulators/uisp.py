"""UISP CRM v1.0 emulator: clients, services, invoices and payments with paging and faults.

Shapes follow ../shared/INTEGRATIONS.md (bare arrays, `limit`/`offset`, no total). Data is
generated deterministically from a seed; tests change `emulator.data` directly to simulate
edits and removals at the source. Faults are deterministic so tests can count exactly:
every `error_every`-th request answers 503, every `timeout_every`-th request stalls for
`stall_seconds`, and the clients in `malformed_client_ids` carry an invoice whose
`amountToPay` is not a number.
"""
from __future__ import annotations

import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask, abort, jsonify, request

API = "/crm/api/v1.0"
DEFAULT_KEY = "dev-uisp-key"
INVOICE_PAID, INVOICE_UNPAID, INVOICE_PARTIAL = 3, 1, 2
SERVICE_ACTIVE, SERVICE_SUSPENDED = 1, 3


@dataclass
class UispData:
    clients: dict[int, dict] = field(default_factory=dict)
    services: dict[int, dict] = field(default_factory=dict)
    invoices: dict[int, dict] = field(default_factory=dict)
    payments: dict[int, dict] = field(default_factory=dict)


@dataclass
class UispEmulator:
    """The emulator's state: data, latency, faults and a count of requests served."""

    data: UispData
    app_key: str = DEFAULT_KEY
    latency: float = 0.0
    error_every: int = 0
    timeout_every: int = 0
    stall_seconds: float = 2.0
    malformed_client_ids: set[int] = field(default_factory=set)
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count_call(self) -> int:
        with self._lock:
            self.calls += 1
            return self.calls


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def generate(size: int, estates: tuple[str, ...] = ("ACACIA", "BAOBAB"), seed: int = 7,
             today: date | None = None) -> UispData:
    """Make `size` clients, each with 1–2 services, 4–8 monthly invoices and their payments."""
    rng = random.Random(seed)
    today = today or date.today()
    data = UispData()
    service_id = invoice_id = payment_id = 0
    for client_id in range(1, size + 1):
        behaviour = rng.choice(["good", "good", "good", "late", "bad"])
        outstanding = 0.0
        invoices = []
        for months_back in range(rng.randint(4, 8), 0, -1):
            invoice_id += 1
            created = today - timedelta(days=30 * months_back)
            due = created + timedelta(days=14)
            total = float(rng.choice([150, 250, 350, 450]))
            if behaviour == "good":
                paid_after, paid = rng.randint(-10, 0), True
            elif behaviour == "late":
                paid_after, paid = rng.randint(5, 40), True
            else:
                paid_after, paid = rng.randint(20, 60), rng.random() < 0.4
            if due + timedelta(days=paid_after) > today:
                paid = False
            invoice = {
                "id": invoice_id, "number": f"INV-{invoice_id:07d}", "clientId": client_id,
                "createdDate": _iso(datetime(created.year, created.month, created.day, 8, tzinfo=UTC)),
                "dueDate": _iso(datetime(due.year, due.month, due.day, tzinfo=UTC)),
                "total": total, "amountPaid": total if paid else 0.0,
                "amountToPay": 0.0 if paid else total, "currencyCode": "ZAR",
                "status": INVOICE_PAID if paid else INVOICE_UNPAID,
                "items": [{"label": "Internet", "price": total, "quantity": 1, "total": total}],
            }
            invoices.append(invoice)
            data.invoices[invoice_id] = invoice
            if paid:
                payment_id += 1
                on = due + timedelta(days=paid_after)
                data.payments[payment_id] = {
                    "id": payment_id, "clientId": client_id, "amount": total, "methodId": "cash",
                    "createdDate": _iso(datetime(on.year, on.month, on.day, 10, tzinfo=UTC)),
                    "currencyCode": "ZAR", "note": None, "providerName": None,
                    "providerPaymentId": None,
                    "paymentCovers": [{"invoiceId": invoice_id, "amount": total}],
                }
            else:
                outstanding += total
        suspended = outstanding > 0 and rng.random() < 0.6
        for n in range(rng.choice([1, 1, 1, 2])):
            service_id += 1
            data.services[service_id] = {
                "id": service_id, "clientId": client_id, "servicePlanId": 1 + n,
                "name": ["Home 20 Mbps", "Backup power"][n], "servicePlanType": "Internet",
                "status": SERVICE_SUSPENDED if suspended and n == 0 else SERVICE_ACTIVE,
                "price": 350.0, "totalPrice": 350.0, "activeFrom": _iso(datetime(2024, 1, 1, tzinfo=UTC)),
                "activeTo": None, "prepaid": False, "lastInvoicedDate": invoices[-1]["createdDate"],
                "currencyCode": "ZAR",
            }
        attributes = [{"key": "estate", "name": "Estate", "value": estates[client_id % len(estates)]}]
        if client_id % 10 == 0:
            attributes.append({"key": "vip", "name": "VIP", "value": "1"})
        if client_id % 3 == 0:
            attributes.append({"key": "gracePaymentDay", "name": "Grace payment day",
                               "value": str(1 + client_id % 28)})
        data.clients[client_id] = {
            "id": client_id, "userIdent": f"C{client_id:05d}", "clientType": 1,
            "firstName": rng.choice(["Thabo", "Lerato", "Aisha", "Pieter", "Nomsa", "Kofi"]),
            "lastName": rng.choice(["Mokoena", "Dlamini", "Naidoo", "van Wyk", "Mensah"]),
            "companyName": None, "isActive": client_id % 50 != 0, "isArchived": client_id % 97 == 0,
            "registrationDate": "2024-01-01T00:00:00+0000",
            "accountBalance": -outstanding, "accountCredit": 0.0, "accountOutstanding": outstanding,
            "hasSuspendedService": suspended, "hasOverdueInvoice": outstanding > 0,
            "contacts": [{"email": f"client{client_id}@example.net", "phone": f"+2782{client_id:07d}"}],
            "attributes": attributes,
        }
    return data


def _page(rows: list[dict]) -> list[dict]:
    limit = request.args.get("limit", type=int)
    offset = request.args.get("offset", default=0, type=int)
    rows = rows[offset:]
    return rows if limit is None else rows[:limit]


def _by_client(rows: dict[int, dict]) -> list[dict]:
    client_id = request.args.get("clientId", type=int)
    return [r for r in rows.values() if client_id is None or r["clientId"] == client_id]


def create_app(size: int | None = None, latency: float | None = None,
               estates: tuple[str, ...] | None = None, **faults: Any) -> Flask:
    """A UISP CRM emulator; defaults from UISP_EMULATOR_SIZE / _LATENCY_MS / _ESTATES.

    Client n carries the estate attribute estates[n % len(estates)]; the default codes are
    the demo seed's estates plus one no estate has (clients outside every estate).
    """
    size = size if size is not None else int(os.environ.get("UISP_EMULATOR_SIZE", "200"))
    if latency is None:
        latency = int(os.environ.get("UISP_EMULATOR_LATENCY_MS", "0")) / 1000
    estates = estates or tuple(os.environ.get("UISP_EMULATOR_ESTATES", "SUN,MAS,NONE").split(","))
    emulator = UispEmulator(data=generate(size, estates), latency=latency, **faults)
    app = Flask("uisp_emulator")
    app.extensions["uisp"] = emulator

    @app.before_request
    def gate():
        number = emulator.count_call()
        if emulator.latency:
            time.sleep(emulator.latency)
        if request.headers.get("X-Auth-App-Key") != emulator.app_key:
            return jsonify({"code": 401, "message": "Unauthorized"}), 401
        if emulator.error_every and number % emulator.error_every == 0:
            return jsonify({"code": 503, "message": "Service unavailable"}), 503
        if emulator.timeout_every and number % emulator.timeout_every == 0:
            time.sleep(emulator.stall_seconds)
        return None

    def malformed(rows: list[dict]) -> list[dict]:
        out = []
        for row in rows:
            if row["clientId"] in emulator.malformed_client_ids and row is _first_invoice(row["clientId"]):
                row = {**row, "amountToPay": "n/a"}
            out.append(row)
        return out

    def _first_invoice(client_id: int) -> dict | None:
        return next((r for r in emulator.data.invoices.values() if r["clientId"] == client_id), None)

    @app.get(f"{API}/clients")
    def clients():
        return jsonify(_page(list(emulator.data.clients.values())))

    @app.get(f"{API}/clients/<int:client_id>")
    def client(client_id: int):
        return jsonify(emulator.data.clients.get(client_id) or abort(404))

    @app.get(f"{API}/clients/services")
    def services():
        statuses = {int(s) for s in request.args.getlist("statuses[]")}
        rows = [r for r in _by_client(emulator.data.services) if not statuses or r["status"] in statuses]
        return jsonify(_page(rows))

    @app.get(f"{API}/invoices")
    def invoices():
        return jsonify(_page(malformed(_by_client(emulator.data.invoices))))

    @app.get(f"{API}/payments")
    def payments():
        return jsonify(_page(_by_client(emulator.data.payments)))

    return app
