"""SparkMeter ThunderCloud export import: heartbeats, and payments seen as credit jumps (S2).

Exports are daily CSV heartbeat files per site (Parquet is not read: pyarrow is not a
dependency). Columns: heartbeat_id, meter_serial, customer_code, timestamp (ISO 8601 with
zone), credit_balance. A payment is a rise in a meter's account credit between consecutive
heartbeats larger than the threshold; its kWh is amount / rate. Heartbeats and payments are
keyed by heartbeat id, so importing the same file again adds nothing.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.jobs import job
from app.metering.decoders import DecodeError, parse_time
from app.models import canonical_serial
from app.models.sources import ThunderCloudHeartbeat, ThunderCloudPayment

COLUMNS = ("heartbeat_id", "meter_serial", "customer_code", "timestamp", "credit_balance")


@dataclass
class HeartbeatImportReport:
    rows: int = 0
    new_heartbeats: int = 0
    new_payments: int = 0
    errors: list[str] = field(default_factory=list)  # "line N: reason"

    def summary(self) -> str:
        return (f"ThunderCloud: {self.rows} rows, {self.new_heartbeats} new heartbeats, "
                f"{self.new_payments} payments detected, {len(self.errors)} rows refused")


def parse_heartbeats(text: str, report: HeartbeatImportReport) -> list[dict]:
    """Rows of a heartbeat CSV as column values; bad rows are reported by line and skipped."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        report.errors.append(f"header: missing {', '.join(missing)}")
        return []
    rows = []
    for line, row in enumerate(reader, start=2):
        report.rows += 1
        try:
            if not row["heartbeat_id"] or not row["meter_serial"]:
                raise ValueError("heartbeat_id and meter_serial are required")
            rows.append({"heartbeat_id": row["heartbeat_id"].strip(),
                         "meter_serial": canonical_serial(row["meter_serial"]),
                         "customer_code": (row["customer_code"] or "").strip() or None,
                         "taken_at": parse_time(row["timestamp"]),
                         "credit_balance": Decimal(row["credit_balance"].strip())})
        except (ValueError, InvalidOperation, DecodeError, AttributeError) as error:
            report.errors.append(f"line {line}: {error or 'unreadable value'}")
    return rows


def import_heartbeats(session: Session, text: str, *, threshold: Decimal, rate: Decimal) -> HeartbeatImportReport:
    """Store new heartbeats of one export file and record the payments they reveal; commit."""
    report = HeartbeatImportReport()
    rows = parse_heartbeats(text, report)
    if rows:
        report.new_heartbeats = _insert_new(session, ThunderCloudHeartbeat, rows)
        meters = {row["meter_serial"] for row in rows}
        report.new_payments = _detect_payments(session, meters, threshold, rate)
    session.commit()
    return report


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


@job("thundercloud_import")
def thundercloud_import_job(session: Session, progress, directory: str | None = None) -> str:
    """Worker job: import every heartbeat CSV in THUNDERCLOUD_EXPORT_DIR (or `directory`)."""
    config = current_app.config
    files = sorted(Path(directory or config["THUNDERCLOUD_EXPORT_DIR"]).glob("*.csv"))
    progress.set_total(len(files))
    total = HeartbeatImportReport()
    for path in files:
        report = import_heartbeats(session, path.read_text(encoding="utf-8"),
                                   threshold=Decimal(config["THUNDERCLOUD_PAYMENT_THRESHOLD"]),
                                   rate=Decimal(config["THUNDERCLOUD_RATE_PER_KWH"]))
        total.rows += report.rows
        total.new_heartbeats += report.new_heartbeats
        total.new_payments += report.new_payments
        for error in report.errors:
            progress.error(f"{path.name} {error}")
            total.errors.append(error)
        progress.step()
    return total.summary()
