"""SparkMeter Koios: the HTTP client and the daily readings import (S2).

Per site and day: a freshness check skips sites whose newest reading was already imported;
the historical query pages with a cursor and adapts its page size (start 50, halve on a 504
or a timeout, never below 10); 429 and other 5xx are retried with exponential backoff.
Koios rows carry the kWh of each interval; they enter the one readings pipeline
(`app.metering.ingest.ingest`) as register values accumulated from the meter's last stored
register, so a re-run meets the (meter, timestamp) guard and writes nothing twice.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session
from urllib3.exceptions import ReadTimeoutError
from urllib3.util.retry import Retry

from app.settings import get_setting, put_setting
from app.i18n.stored import N_, fill
from app.jobs import enqueue, job
from app.metering.decoders import HTTP_TOPIC, parse_time
from app.metering.ingest import Message, ingest
from app.models import Meter, Reading, canonical_serial

log = logging.getLogger(__name__)
FIRST_PAGE_SIZE, SMALLEST_PAGE_SIZE = 50, 10
KOIOS_IMPORT = "koios_import"


class KoiosError(RuntimeError):
    """Koios could not be reached, refused, or kept timing out at the smallest page size."""


class KoiosApi:
    """Koios v1/v2 client: X-API-KEY/X-API-SECRET, retries with backoff, adaptive page size."""

    def __init__(self, base_url: str, api_key: str, api_secret: str, organization: str, *,
                 timeout: float = 30.0, retries: int = 4, backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        self.organization = organization
        self.timeout = timeout
        self.retries, self.backoff = retries, backoff
        self.page_size = FIRST_PAGE_SIZE
        self.http = requests.Session()
        self.http.headers.update({"X-API-KEY": api_key, "X-API-SECRET": api_secret})
        # 504 and read timeouts are not retried here: the historical query halves its page.
        retry = Retry(total=retries, connect=retries, read=0, status=retries, backoff_factor=backoff,
                      status_forcelist=(429, 500, 502, 503), allowed_methods=frozenset({"GET", "POST"}),
                      respect_retry_after_header=True, raise_on_status=False)
        for prefix in ("http://", "https://"):
            self.http.mount(prefix, HTTPAdapter(max_retries=retry))

    @classmethod
    def from_config(cls) -> KoiosApi:
        config = current_app.config
        return cls(config["KOIOS_URL"], config["KOIOS_API_KEY"], config["KOIOS_API_SECRET"],
                   config["KOIOS_ORGANIZATION"], timeout=config["KOIOS_TIMEOUT"])

    def _call(self, method: str, path: str, **options: Any) -> requests.Response:
        try:
            return self.http.request(method, self.base_url + path, timeout=(3.05, self.timeout), **options)
        except requests.RequestException as error:
            raise KoiosError(f"{method} {path}: {error}") from error

    def _json(self, response: requests.Response, what: str) -> dict:
        if response.status_code != 200:
            raise KoiosError(f"{what}: HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError as error:
            raise KoiosError(f"{what}: the answer is not JSON") from error

    def list_customers(self, per_page: int = 100) -> list[dict]:
        """Every customer, following the pagination cursor."""
        rows: list[dict] = []
        cursor = None
        while True:
            params = {"per_page": per_page, **({"cursor": cursor} if cursor else {})}
            body = self._json(self._call("GET", "/api/v1/customers", params=params), "customers")
            rows.extend(body.get("data") or [])
            paging = body.get("pagination") or {}
            cursor = paging.get("cursor")
            if not paging.get("has_more") or not cursor:
                return rows

    def list_payments(self, since: datetime | None = None, per_page: int = 100) -> list[dict]:
        """Every payment Koios lists (made at or after `since`), following the cursor.

        Assumed shape: INTEGRATIONS.md documents only `GET /api/v1/payments?external_id=X`; the
        listing is taken to page like customers, `?since=<iso>&per_page=&cursor=` answering
        `{data, pagination: {count, has_more, cursor}}`. Rows are returned as Koios sent them.
        """
        rows: list[dict] = []
        cursor = None
        while True:
            params = {"per_page": per_page, **({"since": since.isoformat()} if since else {}),
                      **({"cursor": cursor} if cursor else {})}
            body = self._json(self._get_patiently("/api/v1/payments", params), "payments")
            data = body.get("data")
            if not isinstance(data, list):
                raise KoiosError("payments: the answer carries no list of payments")
            rows.extend(data)
            paging = body.get("pagination") or {}
            cursor = paging.get("cursor")
            if not paging.get("has_more") or not cursor:
                return rows

    def _get_patiently(self, path: str, params: dict) -> requests.Response:
        """GET that also retries read timeouts with exponential backoff (5xx: the adapter retries)."""
        for attempt in range(self.retries + 1):
            try:
                return self.http.get(self.base_url + path, params=params, timeout=(3.05, self.timeout))
            except requests.RequestException as error:
                if not _timed_out(error) or attempt == self.retries:
                    raise KoiosError(f"GET {path}: {error}") from error
                time.sleep(self.backoff * 2 ** attempt)
        raise AssertionError("unreachable")

    def freshness(self, sites: list[str]) -> dict[str, datetime | None]:
        """The newest reading time Koios holds per site (None: no data)."""
        body = self._json(self._call(
            "POST", f"/api/v2/organizations/{self.organization}/data/freshness",
            json={"filters": {"sites": sites}}), "freshness")
        return {site: parse_time(value["reading"]) if value and value.get("reading") else None
                for site, value in (body.get("freshness") or {}).items()}

    def historical_day(self, site: str, day: date) -> list[dict]:
        """One site's readings of one day, page by page, halving the page on 504/timeout."""
        rows: list[dict] = []
        cursor = None
        path = f"/api/v2/organizations/{self.organization}/data/historical"
        while True:
            body = {"per_page": self.page_size,
                    "filters": {"sites": [site], "date_range": {"from": day.isoformat(), "to": day.isoformat()}},
                    **({"cursor": cursor} if cursor else {})}
            try:
                response = self.http.request("POST", self.base_url + path, json=body,
                                             timeout=(3.05, self.timeout))
                slow = response.status_code == 504
            except requests.RequestException as error:
                if not _timed_out(error):
                    raise KoiosError(f"historical {site} {day}: {error}") from error
                slow = True
            if slow:
                if self.page_size <= SMALLEST_PAGE_SIZE:
                    raise KoiosError(f"historical {site} {day}: timing out even at {self.page_size} per page")
                self.page_size = max(SMALLEST_PAGE_SIZE, self.page_size // 2)
                log.info("Koios historical: slow gateway, page size now %s", self.page_size)
                continue
            page = self._json(response, f"historical {site} {day}")
            rows.extend(page.get("data") or [])
            paging = page.get("pagination") or {}
            cursor = paging.get("cursor")
            if not paging.get("has_more") or not cursor:
                return rows


def _timed_out(error: requests.RequestException) -> bool:
    """A read timeout, whether requests reports it bare or wrapped by urllib3's retry."""
    if isinstance(error, requests.Timeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, ReadTimeoutError)


@dataclass
class KoiosImportReport:
    day: date
    sites: int = 0
    skipped_fresh: int = 0
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    unknown_meters: set[str] = field(default_factory=set)
    malformed: int = 0

    def summary(self) -> str:
        return fill(N_("Koios %(day)s: %(sites)s sites, %(fresh)s already up to date; %(rows)s rows, %(accepted)s "
                       "readings accepted, %(duplicates)s duplicates, %(malformed)s malformed, %(unknown)s unknown "
                       "meters"), day=self.day, sites=self.sites, fresh=self.skipped_fresh, rows=self.rows,
                    accepted=self.accepted, duplicates=self.duplicates, malformed=self.malformed,
                    unknown=len(self.unknown_meters))


def _sync_key(site: str) -> str:
    return f"koios.synced.{site}"


def import_koios_day(session: Session, api: KoiosApi, day: date, progress=None) -> KoiosImportReport:
    """Import one day of readings from every Koios site into the readings pipeline."""
    report = KoiosImportReport(day)
    sites = sorted({c.get("site") for c in api.list_customers() if c.get("site")})
    report.sites = len(sites)
    if progress:
        progress.set_total(len(sites))
    fresh = api.freshness(sites) if sites else {}
    day_end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    for site in sites:
        newest = fresh.get(site)
        synced = get_setting(session, _sync_key(site))
        wanted_until = min(newest, day_end) if newest else None
        if wanted_until is None or (synced and datetime.fromisoformat(synced) >= wanted_until):
            report.skipped_fresh += 1
        else:
            rows = api.historical_day(site, day)
            report.rows += len(rows)
            _ingest_rows(session, rows, report)
            put_setting(session, _sync_key(site), wanted_until.isoformat())
            session.commit()  # one site at a time: a later failure keeps what was imported
        if progress:
            progress.step()
    return report


def _ingest_rows(session: Session, rows: list[dict], report: KoiosImportReport) -> None:
    """Turn interval kWh rows into register readings and feed them to ingest()."""
    per_meter: dict[str, list[tuple[datetime, Decimal]]] = {}
    for row in rows:
        try:
            serial = canonical_serial(row["meter"]["serial_number"])
            per_meter.setdefault(serial, []).append(
                (parse_time(row["timestamp"]), Decimal(str(row["kilowatt_hours"]))))
        except (KeyError, TypeError, ValueError, InvalidOperation):
            report.malformed += 1
    meters = {m.serial: m for m in session.scalars(select(Meter).where(Meter.serial.in_(per_meter)))}
    messages = []
    for serial, intervals in per_meter.items():
        meter = meters.get(serial)
        if meter is None:
            report.unknown_meters.add(serial)
            continue
        intervals.sort()
        register = _register_before(session, meter.id, intervals[0][0])
        for taken_at, kwh in intervals:
            register += kwh
            payload = {"meter": serial, "register": f"{register} kWh", "time": taken_at.isoformat(),
                       "source": "koios"}
            messages.append(Message(HTTP_TOPIC, json.dumps(payload).encode()))
    if messages:
        outcome = ingest(session, messages)
        report.accepted += outcome.accepted
        report.duplicates += outcome.duplicates


def _register_before(session: Session, meter_id: int, moment: datetime) -> Decimal:
    """The meter's stored register just before `moment` (0 for a meter without readings)."""
    value = session.scalar(select(Reading.register).where(
        Reading.meter_id == meter_id, Reading.taken_at < moment).order_by(Reading.taken_at.desc()).limit(1))
    return value if value is not None else Decimal(0)


@job(KOIOS_IMPORT)
def koios_import_job(session: Session, progress, day: str | None = None) -> str:
    """Worker job: import yesterday's (or `day`'s) Koios readings."""
    when = date.fromisoformat(day) if day else date.today() - timedelta(days=1)
    return import_koios_day(session, KoiosApi.from_config(), when, progress).summary()


def start_koios_import(day: date | None = None, user_id: int | None = None):
    """Start, or join when one is running, the tracked readings import of `day` (default yesterday)."""
    day = day or date.today() - timedelta(days=1)
    return enqueue(KOIOS_IMPORT, day.isoformat(), target=f"koios:readings:{day.isoformat()}", user_id=user_id)
