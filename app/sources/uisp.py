"""UISP CRM: the HTTP client, the refresh of the local copy, and payment-pattern analysis (S1).

A refresh lists clients, services, invoices and payments in bulk (limit/offset pages, not
one call per customer per kind), parses every client's rows before writing anything (a
client with a malformed row is counted as failed and none of its rows are written), then
upserts all good clients in one transaction. Rows gone at the source are marked removed.
Targets: "all", "estate:<estate id>" or "client:<UISP client id>".
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from sqlalchemy import select, true
from sqlalchemy.orm import Session
from urllib3.util.retry import Retry

from app import audit
from app.i18n.stored import N_, fill
from app.jobs import job
from app.models import Estate, utcnow
from app.models.sources import UispClient, UispInvoice, UispPayment, UispService
from app.sources.upsert import mark_removed, upsert_changed

log = logging.getLogger(__name__)
NOT_COUNTED_INVOICE_STATUSES = {0, 4, 5}  # draft, void, processed proforma
RISKY_MISSED, RISKY_LATE, RISKY_AVERAGE_DAYS = 2, 3, Decimal(30)


class UispError(RuntimeError):
    """UISP could not be reached or answered something unusable (after retries)."""


class MalformedRow(ValueError):
    """A row from UISP lacks a field or carries a value of the wrong kind."""


# --- HTTP client ----------------------------------------------------------------------

class UispApi:
    """A UISP CRM v1.0 client: X-Auth-App-Key, timeouts, retries with backoff on 5xx/timeouts."""

    def __init__(self, base_url: str, app_key: str, *, timeout: float = 10.0, retries: int = 4,
                 backoff: float = 0.5, page_size: int = 1000):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.page_size = page_size
        self.requests_made = 0
        self.http = requests.Session()
        self.http.headers.update({"X-Auth-App-Key": app_key, "Accept": "application/json"})
        retry = Retry(total=retries, connect=retries, read=retries, status=retries,
                      backoff_factor=backoff, status_forcelist=(500, 502, 503, 504),
                      allowed_methods=frozenset({"GET"}), raise_on_status=False)
        self.http.mount("http://", HTTPAdapter(max_retries=retry))
        self.http.mount("https://", HTTPAdapter(max_retries=retry))

    @classmethod
    def from_config(cls) -> UispApi:
        """Build the client from UISP_* settings."""
        config = current_app.config
        return cls(config["UISP_URL"], config["UISP_APP_KEY"], timeout=config["UISP_TIMEOUT"],
                   retries=config["UISP_RETRIES"], backoff=config["UISP_BACKOFF"],
                   page_size=config["UISP_PAGE_SIZE"])

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET one resource; None on 404; UispError when UISP keeps failing."""
        self.requests_made += 1
        try:
            response = self.http.get(f"{self.base_url}/{path}", params=params,
                                     timeout=(3.05, self.timeout))
        except requests.RequestException as error:
            raise UispError(f"GET {path}: {error}") from error
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UispError(f"GET {path}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as error:
            raise UispError(f"GET {path}: the answer is not JSON") from error

    def list_all(self, path: str, **params: Any) -> list[dict]:
        """Every row of a listing, page by page, until a page is shorter than the limit."""
        rows: list[dict] = []
        while True:
            page = self.get(path, {**params, "limit": self.page_size, "offset": len(rows)})
            if not isinstance(page, list):
                raise UispError(f"GET {path}: expected a list")
            rows.extend(page)
            if len(page) < self.page_size:
                return rows

    def list_clients(self) -> list[dict]:
        return self.list_all("clients")

    def get_client(self, client_id: int) -> dict | None:
        return self.get(f"clients/{client_id}")

    def list_services(self, client_id: int | None = None) -> list[dict]:
        return self.list_all("clients/services", **_client_filter(client_id))

    def list_invoices(self, client_id: int | None = None) -> list[dict]:
        return self.list_all("invoices", **_client_filter(client_id))

    def list_payments(self, client_id: int | None = None) -> list[dict]:
        return self.list_all("payments", **_client_filter(client_id))


def _client_filter(client_id: int | None) -> dict[str, Any]:
    return {} if client_id is None else {"clientId": client_id}


# --- parsing --------------------------------------------------------------------------

def _decimal(row: dict, name: str, default: Decimal | None = None) -> Decimal:
    value = row.get(name)
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or value is None:
        raise MalformedRow(f"{name} is {value!r}")
    try:
        return Decimal(str(value)).quantize(Decimal("0.000001"))
    except InvalidOperation as error:
        raise MalformedRow(f"{name} is {value!r}, not a number") from error


def _int(row: dict, name: str) -> int:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedRow(f"{name} is {value!r}, not an integer")
    return value


def _moment(row: dict, name: str, required: bool = True) -> datetime | None:
    value = row.get(name)
    if value is None and not required:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as error:
        raise MalformedRow(f"{name} is {value!r}, not a date") from error
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _day(row: dict, name: str) -> date | None:
    moment = _moment(row, name, required=False)
    return moment.date() if moment else None


def _attributes(row: dict) -> dict[str, str]:
    return {str(a.get("key")): a.get("value") for a in row.get("attributes") or [] if a.get("key")}


def parse_client(row: dict, estate_ids: dict[str, int]) -> dict[str, Any]:
    """The columns of a UispClient from a UISP client row."""
    attributes = _attributes(row)
    grace = attributes.get("gracePaymentDay")
    contact = (row.get("contacts") or [{}])[0]
    name = row.get("companyName") or " ".join(p for p in (row.get("firstName"), row.get("lastName")) if p)
    return {
        "uisp_id": _int(row, "id"),
        "estate_id": estate_ids.get(str(attributes.get("estate") or "").strip().upper()),
        "user_ident": row.get("userIdent"), "name": (name or f"Client {row['id']}")[:200],
        "email": contact.get("email"), "phone": contact.get("phone"),
        "is_active": bool(row.get("isActive")), "is_archived": bool(row.get("isArchived")),
        "is_vip": str(attributes.get("vip") or "").strip().lower() in {"1", "yes", "true", "vip"},
        "grace_payment_day": int(grace) if grace and str(grace).isdigit() and 1 <= int(grace) <= 31 else None,
        "account_balance": _decimal(row, "accountBalance", Decimal(0)),
        "account_outstanding": _decimal(row, "accountOutstanding", Decimal(0)),
        "has_suspended_service": bool(row.get("hasSuspendedService")),
    }


def parse_service(row: dict) -> dict[str, Any]:
    return {"uisp_id": _int(row, "id"), "client_uisp_id": _int(row, "clientId"),
            "name": str(row.get("name") or "")[:200], "status": _int(row, "status"),
            "price": _decimal(row, "totalPrice", _decimal(row, "price", Decimal(0))),
            "active_from": _day(row, "activeFrom"), "active_to": _day(row, "activeTo")}


def parse_invoice(row: dict) -> dict[str, Any]:
    to_pay = _decimal(row, "amountToPay")
    return {"uisp_id": _int(row, "id"), "client_uisp_id": _int(row, "clientId"),
            "number": row.get("number"), "created_at": _moment(row, "createdDate"),
            "due_date": _day(row, "dueDate"), "total": _decimal(row, "total"),
            "amount_paid": _decimal(row, "amountPaid", Decimal(0)), "amount_to_pay": to_pay,
            "currency": str(row.get("currencyCode") or "")[:3], "status": _int(row, "status"),
            "paid": to_pay <= 0}


def parse_payment(row: dict) -> dict[str, Any]:
    covers = [{"invoice_id": _int(c, "invoiceId"), "amount": str(_decimal(c, "amount"))}
              for c in row.get("paymentCovers") or []]
    method = row.get("methodId")
    return {"uisp_id": _int(row, "id"), "client_uisp_id": _int(row, "clientId"),
            "amount": _decimal(row, "amount"), "currency": str(row.get("currencyCode") or "")[:3],
            "created_at": _moment(row, "createdDate"),
            "method": None if method is None else str(method)[:64],
            "provider_payment_id": row.get("providerPaymentId"), "covers": covers}


# --- payment-pattern analysis ---------------------------------------------------------

@dataclass(frozen=True)
class PaymentPattern:
    on_time: int
    late: int
    missed: int
    average_days_late: Decimal | None
    average_payment: Decimal | None
    last_payment_at: datetime | None

    @property
    def risky(self) -> bool:
        return (self.missed >= RISKY_MISSED or self.late >= RISKY_LATE
                or (self.average_days_late or 0) > RISKY_AVERAGE_DAYS)

    def columns(self) -> dict[str, Any]:
        return {"on_time_count": self.on_time, "late_count": self.late, "missed_count": self.missed,
                "average_days_late": self.average_days_late, "average_payment": self.average_payment,
                "last_payment_at": self.last_payment_at, "risky": self.risky}


def analyse_payments(invoices: list[dict], payments: list[dict], today: date) -> PaymentPattern:
    """Classify a client's invoices as paid on time, late or missed (due, still owed)."""
    paid_on: dict[int, date] = {}
    for payment in payments:
        for cover in payment["covers"]:
            day = payment["created_at"].date()
            paid_on[cover["invoice_id"]] = max(day, paid_on.get(cover["invoice_id"], day))
    on_time = late = missed = 0
    days_late: list[int] = []
    for invoice in invoices:
        if invoice["status"] in NOT_COUNTED_INVOICE_STATUSES or invoice["total"] <= 0:
            continue
        due = invoice["due_date"]
        if not invoice["paid"]:
            missed += due is not None and due < today
            continue
        settled = paid_on.get(invoice["uisp_id"])
        if due is None or settled is None or settled <= due:
            on_time += 1
        else:
            late += 1
            days_late.append((settled - due).days)
    amounts = [p["amount"] for p in payments]
    return PaymentPattern(
        on_time, late, missed,
        (Decimal(sum(days_late)) / len(days_late)).quantize(Decimal("0.1")) if days_late else None,
        (sum(amounts) / len(amounts)).quantize(Decimal("0.01")) if amounts else None,
        max((p["created_at"] for p in payments), default=None),
    )


# --- refresh --------------------------------------------------------------------------

@dataclass
class RefreshReport:
    target: str
    clients: int = 0
    refreshed: int = 0
    failed: int = 0
    written: int = 0
    removed: int = 0
    requests: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return fill(N_("UISP %(target)s: %(refreshed)s of %(clients)s clients refreshed, %(failed)s failed; "
                       "%(written)s rows written, %(removed)s marked removed; %(requests)s HTTP requests in "
                       "%(seconds)s s"), target=self.target, refreshed=self.refreshed, clients=self.clients,
                    failed=self.failed, written=self.written, removed=self.removed, requests=self.requests,
                    seconds=f"{self.seconds:.1f}")


@dataclass
class _Fetched:
    clients: list[dict]
    services: list[dict]
    invoices: list[dict]
    payments: list[dict]
    listed_ids: set = field(default_factory=set)  # every client UISP listed, before filtering


def _fetch(api: UispApi, session: Session, target: str) -> tuple[_Fetched, Any]:
    """Download the target's rows and say which live local clients the target covers."""
    kind, _, value = target.partition(":")
    if kind == "client":
        client_id = int(value)
        row = api.get_client(client_id)
        if row is None:
            return _Fetched([], [], [], []), UispClient.uisp_id == client_id
        return (_Fetched([row], api.list_services(client_id), api.list_invoices(client_id),
                         api.list_payments(client_id)), UispClient.uisp_id == client_id)
    fetched = _Fetched(api.list_clients(), api.list_services(), api.list_invoices(), api.list_payments())
    if kind == "estate":
        estate = session.get(Estate, int(value))
        if estate is None:
            raise ValueError(f"no estate {value}")
        code = estate.code.upper()
        fetched.listed_ids = {c.get("id") for c in fetched.clients}  # moved estate != removed
        fetched.clients = [c for c in fetched.clients
                           if str(_attributes(c).get("estate") or "").strip().upper() == code]
        return fetched, UispClient.estate_id == estate.id
    if kind != "all":
        raise ValueError(f"unknown UISP refresh target {target!r}")
    return fetched, true()


def _group(rows: list[dict]) -> dict[Any, list[dict]]:
    grouped: dict[Any, list[dict]] = defaultdict(list)
    for row in rows:
        grouped[row.get("clientId") if isinstance(row, dict) else None].append(row)
    return grouped


def refresh_uisp(session: Session, api: UispApi, target: str = "all", progress=None,
                 today: date | None = None) -> RefreshReport:
    """Bring the local copy of `target` up to date with UISP; commit once."""
    started = time.monotonic()
    report = RefreshReport(target)
    today = today or date.today()
    estate_ids = {code.upper(): id_ for id_, code in session.execute(select(Estate.id, Estate.code))}
    fetched, scope = _fetch(api, session, target)
    services, invoices, payments = (_group(fetched.services), _group(fetched.invoices),
                                    _group(fetched.payments))
    report.clients = len(fetched.clients)
    if progress:
        progress.set_total(report.clients)
    good: dict[str, list[dict]] = {"clients": [], "services": [], "invoices": [], "payments": []}
    failed_ids: set[int] = set()
    for row in fetched.clients:
        client_id = row.get("id")
        try:
            parsed = _parse_one_client(row, services, invoices, payments, estate_ids, today)
        except (MalformedRow, KeyError, TypeError, AttributeError) as error:
            report.failed += 1
            if client_id is not None:
                failed_ids.add(client_id)
            message = f"client {client_id}: {error}"
            report.errors.append(message)
            log.warning("UISP refresh: %s", message)
            if progress:
                progress.error(message)
        else:
            for kind, rows in parsed.items():
                good[kind].extend(rows)
            report.refreshed += 1
        if progress:
            progress.step()
    now = utcnow()
    report.written += upsert_changed(session, UispClient.__table__, good["clients"], now)
    for model, kind in ((UispService, "services"), (UispInvoice, "invoices"), (UispPayment, "payments")):
        report.written += upsert_changed(session, model.__table__, good[kind], now)
    report.removed += _mark_removed(session, scope, fetched, good, failed_ids, now)
    report.requests = api.requests_made
    report.seconds = time.monotonic() - started
    if report.written or report.removed or report.failed:
        audit.record(session, "uisp.refresh", "UispClient", new={
            "target": target, "refreshed": report.refreshed, "failed": report.failed,
            "written": report.written, "removed": report.removed},
            actor=audit.Actor("system:uisp_refresh"))  # the JobRun records who pressed
    session.commit()
    return report


def _parse_one_client(row: dict, services, invoices, payments, estate_ids, today) -> dict[str, list[dict]]:
    """All of one client's rows, parsed, or MalformedRow for the first bad one."""
    client = parse_client(row, estate_ids)
    client_id = client["uisp_id"]
    own_invoices = [parse_invoice(r) for r in invoices.get(client_id, [])]
    own_payments = [parse_payment(r) for r in payments.get(client_id, [])]
    client.update(analyse_payments(own_invoices, own_payments, today).columns())
    client["currency"] = next((r["currency"] for r in own_invoices + own_payments if r["currency"]), None)
    return {"clients": [client], "services": [parse_service(r) for r in services.get(client_id, [])],
            "invoices": own_invoices, "payments": own_payments}


def _mark_removed(session: Session, scope, fetched: _Fetched, good: dict, failed_ids: set, now) -> int:
    """Mark rows of the target gone at the source; failed clients' rows are left alone."""
    seen_clients = {row.get("id") for row in fetched.clients} | fetched.listed_ids
    removed = mark_removed(session, UispClient.__table__, scope, seen_clients, now)
    # Rows of failed clients, and of clients listed but now outside the target, stay as they are.
    protected = failed_ids | (fetched.listed_ids - {row.get("id") for row in fetched.clients})
    for model, kind in ((UispService, "services"), (UispInvoice, "invoices"), (UispPayment, "payments")):
        table = model.__table__
        seen = {row["uisp_id"] for row in good[kind]}
        live_scope = table.c.client_uisp_id.in_(select(UispClient.uisp_id).where(scope))
        keep = set(session.scalars(select(table.c.uisp_id).where(
            table.c.removed_at.is_(None), table.c.client_uisp_id.in_(protected)))) if protected else set()
        removed += mark_removed(session, table, live_scope, seen | keep, now)
    return removed


@job("uisp_refresh")
def uisp_refresh_job(session: Session, progress, target: str = "all") -> str:
    """Worker job: refresh the UISP local copy for `target` and report the counts."""
    report = refresh_uisp(session, UispApi.from_config(), target, progress)
    return report.summary()
