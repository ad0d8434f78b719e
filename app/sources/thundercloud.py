"""SparkMeter ThunderCloud export import: heartbeats, and payments seen as credit jumps (S2).

Exports are daily heartbeat files per site, CSV or Parquet (picked by file extension, then
content type, then Parquet's "PAR1" magic). Columns: heartbeat_id, meter_serial,
customer_code, timestamp (ISO 8601 with zone, or a Parquet timestamp), credit_balance. A
payment is a rise in a meter's account credit between consecutive heartbeats larger than the
threshold; its kWh is amount / rate. Such payments are recorded only, never credited: they
were paid at the vendor, which already credited its meter (see koios_payments.py).
Heartbeats and payments are keyed by heartbeat id, so importing the same rows again adds nothing.

Matching a payment to a unit: by meter serial (canonical_serial), to our meter with protocol
"sparkmeter" on a unit, as koios_payments.py does. A payment whose serial is no such meter yet
keeps unit_id NULL and is tried again on every import, so a meter added later picks it up.

Where files come from: fetched over HTTP per configured site and day
(`GET {THUNDERCLOUD_URL}/api/v0/exports?site=&date=`, header `Authentication-Token`; the
endpoint is our reading of "daily heartbeat files per site", not documented further), and any
file dropped in THUNDERCLOUD_EXPORT_DIR. Every imported file leaves a ThunderCloudExport row:
a fetched site-day is never fetched again, a dropped file is imported again only when its
content changes.
"""
from __future__ import annotations

import csv
import hashlib
import io
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from urllib3.util.retry import Retry

from app.i18n.stored import N_, fill
from app.jobs import enqueue, job
from app.metering.decoders import DecodeError, parse_time
from app.models import Estate, Meter, Unit, canonical_serial
from app.models.sources import ThunderCloudExport, ThunderCloudHeartbeat, ThunderCloudPayment
from app.sources.sparkmeter import _timed_out

log = logging.getLogger(__name__)
COLUMNS = ("heartbeat_id", "meter_serial", "customer_code", "timestamp", "credit_balance")
THUNDERCLOUD_IMPORT = "thundercloud_import"
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


class ThunderCloudError(RuntimeError):
    """ThunderCloud could not be reached, refused, or kept failing after retries."""

    def __init__(self, message: str, *, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable  # no connection at all: the other site-days would fail too


@dataclass
class HeartbeatImportReport:
    files: int = 0
    cached: int = 0            # files skipped: fetched or imported before
    not_ready: int = 0         # site-days ThunderCloud has no export for yet
    failed: int = 0            # site-days that could not be downloaded (retried next run)
    fetch_errors: list[str] = field(default_factory=list)  # why, one per failed download
    rows: int = 0
    new_heartbeats: int = 0
    new_payments: int = 0
    matched: int = 0           # payments given their unit (new ones, or waiting ones now known)
    unmatched: int = 0         # payments still without a unit after the run
    errors: list[str] = field(default_factory=list)  # "line N: reason" / "site day: reason"

    def add(self, other: HeartbeatImportReport, prefix: str) -> None:
        """Fold one file's counts into the run's, naming the file in its errors."""
        self.files += 1
        self.rows += other.rows
        self.new_heartbeats += other.new_heartbeats
        self.new_payments += other.new_payments
        self.matched += other.matched
        self.unmatched = other.unmatched  # a state, not a count: the latest file's word
        self.errors += [f"{prefix} {error}" for error in other.errors]

    def merge(self, other: HeartbeatImportReport) -> None:
        """Fold another run part's counts and errors into this one."""
        for name in ("files", "cached", "not_ready", "failed", "rows", "new_heartbeats", "new_payments",
                     "matched"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.unmatched = other.unmatched
        self.errors += other.errors
        self.fetch_errors += other.fetch_errors

    def summary(self) -> str:
        counts = dict(rows=self.rows, heartbeats=self.new_heartbeats, payments=self.new_payments,
                      matched=self.matched, unmatched=self.unmatched, refused=len(self.errors),
                      files=self.files, cached=self.cached, not_ready=self.not_ready, failed=self.failed)
        if self.failed:
            return fill(N_("ThunderCloud: %(files)s files imported, %(cached)s already imported, %(not_ready)s not "
                           "ready, %(failed)s failed to download; %(rows)s rows, %(heartbeats)s new heartbeats, "
                           "%(payments)s payments detected, %(matched)s matched to units, %(unmatched)s unmatched, "
                           "%(refused)s rows refused"), **counts)
        if self.files or self.cached or self.not_ready:
            return fill(N_("ThunderCloud: %(files)s files imported, %(cached)s already imported, %(not_ready)s not "
                           "ready; %(rows)s rows, %(heartbeats)s new heartbeats, %(payments)s payments detected, "
                           "%(matched)s matched to units, %(unmatched)s unmatched, %(refused)s rows refused"),
                        **counts)
        return fill(N_("ThunderCloud: %(rows)s rows, %(heartbeats)s new heartbeats, %(payments)s payments "
                       "detected, %(matched)s matched to units, %(unmatched)s unmatched, %(refused)s rows refused"),
                    **counts)


def export_format(data: bytes, name: str = "", content_type: str = "") -> str:
    """'csv' or 'parquet', from the file name, else the content type, else the bytes."""
    suffix = Path(name).suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    kind = content_type.split(";")[0].strip().lower()
    if "parquet" in kind:
        return "parquet"
    if kind in ("text/csv", "application/csv", "text/plain"):
        return "csv"
    return "parquet" if data[:4] == b"PAR1" else "csv"


def read_export(data: bytes, file_format: str, report: HeartbeatImportReport) -> list[dict]:
    """The raw records of a CSV or Parquet export (column name -> value); [] when unreadable."""
    if file_format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowException, OSError) as error:
            report.errors.append(f"file: not a readable Parquet file ({error})")
            return []
        names, records = table.column_names, table.to_pylist()
    else:
        try:
            reader = csv.DictReader(io.StringIO(data.decode("utf-8-sig")))
            names, records = list(reader.fieldnames or []), list(reader)
        except (UnicodeDecodeError, csv.Error) as error:
            report.errors.append(f"file: not a readable CSV file ({error})")
            return []
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        report.errors.append(f"header: missing {', '.join(missing)}")
        return []
    return records


def parse_heartbeats(records: list[dict], report: HeartbeatImportReport) -> list[dict]:
    """Validated heartbeat rows; bad ones are reported by line (CSV numbering) and skipped."""
    rows = []
    for line, record in enumerate(records, start=2):
        report.rows += 1
        try:
            heartbeat_id, serial = _text(record["heartbeat_id"]), _text(record["meter_serial"])
            if not heartbeat_id or not serial:
                raise ValueError("heartbeat_id and meter_serial are required")
            rows.append({"heartbeat_id": heartbeat_id[:64], "meter_serial": canonical_serial(serial),
                         "customer_code": _text(record["customer_code"])[:64] or None,
                         "taken_at": _moment(record["timestamp"]),
                         "credit_balance": _amount(record["credit_balance"])})
        except (ValueError, InvalidOperation, DecodeError) as error:
            report.errors.append(f"line {line}: {error or 'unreadable value'}")
    return rows


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _moment(value: object) -> datetime:
    """A CSV ISO 8601 string or a Parquet timestamp, as aware UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"time {value.isoformat()} has no timezone")
        return value.astimezone(UTC)
    if value is None or _text(value) == "":
        raise ValueError("timestamp is missing")
    return parse_time(_text(value))


def _amount(value: object) -> Decimal:
    """credit_balance as a Decimal (a Parquet decimal arrives as one; floats go through str)."""
    if value is None or _text(value) == "":
        raise ValueError("credit_balance is missing")
    amount = value if isinstance(value, Decimal) else Decimal(_text(value))
    if not amount.is_finite():
        raise ValueError(f"credit_balance {value!r} is not a number")
    return amount


def import_heartbeats(session: Session, text: str, *, threshold: Decimal, rate: Decimal) -> HeartbeatImportReport:
    """Import one CSV export given as text; commit."""
    return import_export(session, text.encode(), "csv", threshold=threshold, rate=rate)


def import_export(session: Session, data: bytes, file_format: str, *, threshold: Decimal,
                  rate: Decimal) -> HeartbeatImportReport:
    """Store the new heartbeats of one export file and record the payments they reveal; commit."""
    report = HeartbeatImportReport()
    _store(session, data, file_format, report, threshold, rate)
    session.commit()
    return report


def _store(session: Session, data: bytes, file_format: str, report: HeartbeatImportReport,
           threshold: Decimal, rate: Decimal) -> None:
    rows = parse_heartbeats(read_export(data, file_format, report), report)
    if rows:
        report.new_heartbeats = _insert_new(session, ThunderCloudHeartbeat, rows)
        report.new_payments = _detect_payments(session, {row["meter_serial"] for row in rows}, threshold, rate)
    report.matched = match_payments(session)
    report.unmatched = unmatched_payments(session)


def _insert_new(session: Session, model, rows: list[dict]) -> int:
    """INSERT ... ON CONFLICT (heartbeat_id) DO NOTHING; return how many were new."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = insert(model).on_conflict_do_nothing(index_elements=["heartbeat_id"]).returning(model.heartbeat_id)
    return sum(len(session.execute(stmt, [row]).all()) for row in rows)


def _detect_payments(session: Session, meters: set[str], threshold: Decimal, rate: Decimal) -> int:
    """Walk each meter's heartbeats in time order; every credit rise above `threshold` is a payment."""
    found = []
    for serial in sorted(meters):
        beats = session.scalars(select(ThunderCloudHeartbeat).where(
            ThunderCloudHeartbeat.meter_serial == serial).order_by(ThunderCloudHeartbeat.taken_at)).all()
        for before, after in zip(beats, beats[1:]):
            jump = after.credit_balance - before.credit_balance
            if jump > threshold:
                found.append({"heartbeat_id": after.heartbeat_id, "previous_heartbeat_id": before.heartbeat_id,
                              "meter_serial": serial, "customer_code": after.customer_code,
                              "detected_at": after.taken_at, "amount": jump,
                              "kwh": (jump / rate).quantize(Decimal("0.001"))})
    return _insert_new(session, ThunderCloudPayment, found) if found else 0


def match_payments(session: Session) -> int:
    """Give each unmatched payment the unit whose SparkMeter meter has its serial; return how many."""
    waiting = session.execute(
        select(ThunderCloudPayment, Meter.unit_id).join(Meter, Meter.serial == ThunderCloudPayment.meter_serial)
        .where(ThunderCloudPayment.unit_id.is_(None), Meter.protocol == "sparkmeter",
               Meter.unit_id.is_not(None))).all()
    for payment, unit_id in waiting:
        payment.unit_id = unit_id
    session.flush()
    return len(waiting)


def unmatched_payments(session: Session) -> int:
    """How many recorded payments still have no unit."""
    return session.scalar(select(func.count()).select_from(ThunderCloudPayment).where(
        ThunderCloudPayment.unit_id.is_(None))) or 0


def recent_thundercloud_payments(session: Session, limit: int = 20) -> list[tuple]:
    """The newest payments with their unit and its estate (None when unmatched), for the Sources page."""
    return list(session.execute(
        select(ThunderCloudPayment, Unit, Estate).outerjoin(Unit, Unit.id == ThunderCloudPayment.unit_id)
        .outerjoin(Estate, Estate.id == Unit.estate_id)
        .order_by(ThunderCloudPayment.detected_at.desc(), ThunderCloudPayment.id.desc()).limit(limit)).all())


# --- where the files come from ----------------------------------------------------------


class ThunderCloudApi:
    """ThunderCloud v0 exports: `Authentication-Token`, 5xx and timeouts retried with backoff."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0, retries: int = 4,
                 backoff: float = 0.5):
        self.base_url = base_url.rstrip("/")
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.http = requests.Session()
        self.http.headers["Authentication-Token"] = token
        retry = Retry(total=retries, connect=retries, read=0, status=retries, backoff_factor=backoff,
                      status_forcelist=(429, 500, 502, 503, 504), allowed_methods=frozenset({"GET"}),
                      respect_retry_after_header=True, raise_on_status=False)
        for prefix in ("http://", "https://"):
            self.http.mount(prefix, HTTPAdapter(max_retries=retry))

    @classmethod
    def from_config(cls) -> ThunderCloudApi:
        config = current_app.config
        return cls(config["THUNDERCLOUD_URL"], config["THUNDERCLOUD_TOKEN"],
                   timeout=config["THUNDERCLOUD_TIMEOUT"], backoff=config["THUNDERCLOUD_BACKOFF"])

    def export(self, site: str, day: date) -> tuple[bytes, str] | None:
        """One site-day's export file and its format; None when ThunderCloud has none (404)."""
        params = {"site": site, "date": day.isoformat()}
        for attempt in range(self.retries + 1):
            try:
                response = self.http.get(self.base_url + "/api/v0/exports", params=params,
                                         timeout=(3.05, self.timeout))
                break
            except requests.RequestException as error:
                if not _timed_out(error) or attempt == self.retries:
                    raise ThunderCloudError(f"export {site} {day}: {error}", unreachable=not _timed_out(error)
                                            and isinstance(error, requests.ConnectionError)) from error
                time.sleep(self.backoff * 2 ** attempt)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ThunderCloudError(f"export {site} {day}: HTTP {response.status_code}")
        disposition = response.headers.get("Content-Disposition", "")
        name = disposition.split("filename=")[-1].strip('" ') if "filename=" in disposition else ""
        return response.content, export_format(response.content, name, response.headers.get("Content-Type", ""))


def fetch_exports(session: Session, api: ThunderCloudApi, sites: list[str], days: list[date], *,
                  threshold: Decimal, rate: Decimal, progress=None) -> HeartbeatImportReport:
    """Fetch and import each site-day not fetched before; one failing site-day never stops the rest."""
    total = HeartbeatImportReport()
    unreachable = False
    for site in sites:
        for day in days:
            name = f"{site}/{day.isoformat()}"
            if unreachable:
                total.failed += 1  # left for the next run, which fetches what it has not got
            elif session.scalar(select(ThunderCloudExport.id).where(ThunderCloudExport.name == name).limit(1)):
                total.cached += 1
            else:
                try:
                    fetched = api.export(site, day)
                except ThunderCloudError as error:
                    total.failed += 1
                    total.fetch_errors.append(str(error))
                    if progress:
                        progress.error(str(error) if not error.unreachable else
                                       f"ThunderCloud unreachable, the remaining downloads wait for the next run: {error}")
                    unreachable = error.unreachable
                    fetched = False
                if fetched is None:
                    total.not_ready += 1
                elif fetched:
                    data, file_format = fetched
                    report = _import_file(session, name, data, file_format, "http", threshold, rate,
                                          site=site, day=day)
                    total.add(report, name)
                    _report_errors(progress, name, report)
            if progress:
                progress.step()
    return total


def import_folder(session: Session, directory: Path, *, threshold: Decimal, rate: Decimal,
                  progress=None) -> HeartbeatImportReport:
    """Import every CSV/Parquet export in `directory` whose content was not imported before."""
    total = HeartbeatImportReport()
    for path in folder_files(directory):
        data = path.read_bytes()
        name = f"folder:{path.name}"
        known = session.scalar(select(ThunderCloudExport.id).where(
            ThunderCloudExport.name == name, ThunderCloudExport.sha256 == _sha256(data)))
        if known:
            total.cached += 1
        else:
            report = _import_file(session, name, data, export_format(data, path.name), "folder",
                                  threshold, rate)
            total.add(report, path.name)
            _report_errors(progress, path.name, report)
        if progress:
            progress.step()
    return total


def folder_files(directory: Path) -> list[Path]:
    """The export files waiting in a folder (none when it does not exist)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _import_file(session: Session, name: str, data: bytes, file_format: str, origin: str,
                 threshold: Decimal, rate: Decimal, *, site: str | None = None,
                 day: date | None = None) -> HeartbeatImportReport:
    """Import one file and remember it in the same transaction; commit."""
    report = HeartbeatImportReport()
    _store(session, data, file_format, report, threshold, rate)
    session.add(ThunderCloudExport(
        name=name, sha256=_sha256(data), origin=origin, site=site, day=day, file_format=file_format,
        size_bytes=len(data), rows=report.rows, new_heartbeats=report.new_heartbeats,
        new_payments=report.new_payments, refused=len(report.errors)))
    session.commit()
    return report


def _report_errors(progress, name: str, report: HeartbeatImportReport) -> None:
    if progress:
        for error in report.errors:
            progress.error(f"{name} {error}")


def export_days(last: date, count: int) -> list[date]:
    """The `count` days ending with `last`, oldest first (a missed night is caught up)."""
    return [last - timedelta(days=n) for n in reversed(range(max(count, 1)))]


@job(THUNDERCLOUD_IMPORT)
def thundercloud_import_job(session: Session, progress, directory: str | None = None,
                            day: str | None = None) -> str:
    """Worker job: fetch the configured sites' recent exports, then import the export folder."""
    config = current_app.config
    rules = {"threshold": Decimal(config["THUNDERCLOUD_PAYMENT_THRESHOLD"]),
             "rate": Decimal(config["THUNDERCLOUD_RATE_PER_KWH"])}
    sites = [s.strip() for s in config["THUNDERCLOUD_SITES"].split(",") if s.strip()]
    fetching = bool(config["THUNDERCLOUD_URL"] and sites)
    days = ([date.fromisoformat(day)] if day else
            export_days(datetime.now(UTC).date() - timedelta(days=1), config["THUNDERCLOUD_FETCH_DAYS"]))
    folder = Path(directory or config["THUNDERCLOUD_EXPORT_DIR"])
    progress.set_total((len(sites) * len(days) if fetching else 0) + len(folder_files(folder)))
    total = HeartbeatImportReport()
    if fetching:
        total.merge(fetch_exports(session, ThunderCloudApi.from_config(), sites, days, progress=progress, **rules))
    total.merge(import_folder(session, folder, progress=progress, **rules))
    total.matched += match_payments(session)  # waiting payments whose meter was added since
    total.unmatched = unmatched_payments(session)
    session.commit()
    return total.summary()


def start_thundercloud_import(user_id: int | None = None):
    """Start, or join when one is running, the tracked ThunderCloud import."""
    return enqueue(THUNDERCLOUD_IMPORT, target="thundercloud:exports", user_id=user_id)
