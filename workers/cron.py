"""Periodic jobs for `rq cron workers/cron.py` (RQ >= 2.5; run exactly one cron process).

Each entry enqueues a small function on an RQ queue; the worker (workers/worker.py) runs it
inside the app context, and the function starts the real, tracked job through app.jobs.
Areas add their own `register(...)` lines below.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from rq.cron import register  # noqa: E402


def _start(kind: str) -> str | None:
    """Enqueue the tracked job `kind` on the low queue (joining one already queued or running)."""
    from app.jobs import enqueue

    run = enqueue(kind, queue="low")
    return f"{kind}: job run {run.id}" if run else None


def monthly_statements() -> list[str]:
    """Start last month's statement run of every estate that wants statements (O5, S3)."""
    from app.extensions import db
    from app.statements.runs import schedule_monthly_statements

    return schedule_monthly_statements(db.session)


# Hourly on the 1st (UTC): each estate's month ends at its own local midnight, and a run
# that finds everything issued and delivered does nothing.
register(monthly_statements, queue_name="low", cron="5 * 1 * *")


def koios_readings() -> str:
    """Start yesterday's Koios readings import (S2); sites already up to date are skipped."""
    from app.sources.sparkmeter import start_koios_import

    return f"koios readings: run {start_koios_import().id}"


def koios_payments() -> str:
    """Start the Koios payments import (S2): payments made at SparkMeter since the last one."""
    from app.sources.koios_payments import start_koios_payments_import

    return f"koios payments: run {start_koios_payments_import().id}"


def thundercloud_exports() -> str:
    """Start the ThunderCloud import (S2): recent daily exports per site, then the export folder."""
    from app.sources.thundercloud import start_thundercloud_import

    return f"thundercloud: run {start_thundercloud_import().id}"


# SparkMeter (S2). Readings and exports once a night, after the vendor's day has closed (UTC);
# payments hourly, since staff look for a top-up soon after it is made. Each start joins a run
# already going, and every import is idempotent, so an overlap or a retry writes nothing twice.
register(koios_readings, queue_name="low", cron="30 1 * * *")
register(koios_payments, queue_name="low", cron="20 * * * *")
register(thundercloud_exports, queue_name="low", cron="45 1 * * *")


def budget_alerts() -> str | None:
    """Check tenants' budget alerts (T4); each alert repeats at most once per its frequency window."""
    return _start("budget_alerts")


register(budget_alerts, queue_name="low", cron="*/30 * * * *")


def tariff_schedule() -> str | None:
    """Send tariff notices that are due and switch on versions whose date has come (C5)."""
    return _start("tariff_schedule")


def meter_watch() -> str | None:
    """Flag frozen registers on occupied units (M3)."""
    return _start("meter_watch")


# Hourly: each estate's day starts at its own local midnight; runs with nothing due do nothing.
register(tariff_schedule, queue_name="low", cron="7 * * * *")
register(meter_watch, queue_name="low", cron="23 * * * *")


def pocket_flows() -> str | None:
    """Fold new pocket postings into the owner reports' monthly roll-ups (O1, O2)."""
    return _start("pocket_flows")


# Every 10 minutes: an owner's page then folds at most ten minutes of postings itself.
register(pocket_flows, queue_name="low", cron="*/10 * * * *")


def ledger_anchors() -> str | None:
    """Email each estate's ledger chain head to LEDGER_ANCHOR_EMAIL (C3 anchors kept off-site)."""
    return _start("ledger_anchor_email")


# Daily, early morning UTC: one email with every estate's head (nothing sent when unset).
register(ledger_anchors, queue_name="low", cron="15 3 * * *")
