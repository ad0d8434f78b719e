"""The schedule of periodic jobs (S3): one list that `rq cron workers/cron.py` and the staff
Jobs screen both read, so what runs and what staff see can never disagree.

Each `ScheduledJob` names its cron expression (UTC), the tracked job kind it starts (the
`JobRun.kind` whose runs are its history) and a starter: a small function called in the
worker's app context that starts (or joins) the tracked run. Starting is idempotent: a run
already queued or running for the same target is joined, so a cron that fires twice (a
restart, two schedulers by mistake) or a staff retry on top of the cron writes nothing twice.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_UISP_REFRESH_HOURS = 6
_RECENT = timedelta(days=7)  # failures counted on the Jobs screen


@dataclass(frozen=True)
class ScheduledJob:
    """One periodic job: its cron name, UTC cron expression, tracked kind and starter."""

    name: str
    cron: str
    kind: str
    start: Callable[[], object]
    why: str
    queue: str = "low"

    def next_run(self, now: datetime | None = None) -> datetime:
        """When the cron fires next (UTC)."""
        from croniter import croniter

        return croniter(self.cron, now or datetime.now(UTC)).get_next(datetime)

    @property
    def in_words(self) -> str:
        return cron_in_words(self.cron)


def _tracked(kind: str) -> Callable[[], object]:
    def start() -> object:
        from app.jobs import enqueue

        return enqueue(kind, queue="low")
    start.__name__ = f"start_{kind}"
    return start


def _monthly_statements() -> object:
    from app.extensions import db
    from app.statements.runs import schedule_monthly_statements

    return schedule_monthly_statements(db.session)


def _koios_readings() -> object:
    from app.sources.sparkmeter import start_koios_import

    return start_koios_import()


def _koios_payments() -> object:
    from app.sources.koios_payments import start_koios_payments_import

    return start_koios_payments_import()


def _thundercloud() -> object:
    from app.sources.thundercloud import start_thundercloud_import

    return start_thundercloud_import()


def _uisp_refresh() -> object:
    from app.jobs import enqueue
    from app.sources.suspensions import REFRESH_KIND, job_target, refresh_target

    target = refresh_target("all")
    return enqueue(REFRESH_KIND, target, target=job_target(target), queue="low")


def _levy_runs() -> object:  # issue 18: the month's levies of every estate with levy definitions (B3)
    from app.billing.levies import schedule_levy_runs
    from app.extensions import db

    return schedule_levy_runs(db.session)


def _settlement() -> object:  # issue 20
    from app.billing.settlement import schedule_monthly_settlement
    from app.extensions import db

    return schedule_monthly_settlement(db.session)


def _solar_allocations() -> object:  # issue 19: last month's shared solar in every estate with a scheme
    from app.billing.shared_solar import schedule_solar_allocations
    from app.extensions import db

    return schedule_solar_allocations(db.session)


def uisp_refresh_cron(hours: int) -> str:
    """The cron expression of a whole-system UISP refresh every `hours` hours (1-24)."""
    if not isinstance(hours, int) or isinstance(hours, bool) or not 1 <= hours <= 24:
        raise ValueError(f"UISP_REFRESH_HOURS must be a whole number of hours from 1 to 24, not {hours!r}")
    return "40 3 * * *" if hours == 24 else f"40 */{hours} * * *"


def schedule(uisp_refresh_hours: int = DEFAULT_UISP_REFRESH_HOURS) -> list[ScheduledJob]:
    """Every periodic job, in the order the Jobs screen lists them."""
    return [
        # Hourly on the 1st (UTC): each estate's month ends at its own local midnight, and a
        # run that finds everything issued and delivered does nothing.
        ScheduledJob("monthly_statements", "5 * 1 * *", "generate_monthly_statements", _monthly_statements,
                     "Last month's statements for every estate that wants them (O5)."),
        # SparkMeter (S2): readings and exports once a night after the vendor's day has closed;
        # payments hourly, since staff look for a top-up soon after it is made.
        ScheduledJob("koios_readings", "30 1 * * *", "koios_import", _koios_readings,
                     "Yesterday's Koios readings; sites already up to date are skipped (S2)."),
        ScheduledJob("koios_payments", "20 * * * *", "koios_payments_import", _koios_payments,
                     "Payments made at SparkMeter since the last import (S2)."),
        ScheduledJob("thundercloud_exports", "45 1 * * *", "thundercloud_import", _thundercloud,
                     "Recent ThunderCloud daily exports per site, then the export folder (S2)."),
        # UISP (S1): the whole local copy, so it is fresh without anyone pressing the button.
        ScheduledJob("uisp_refresh", uisp_refresh_cron(uisp_refresh_hours), "uisp_refresh", _uisp_refresh,
                     "The whole UISP copy: clients, services, invoices and payments (S1)."),
        ScheduledJob("budget_alerts", "*/30 * * * *", "budget_alerts", _tracked("budget_alerts"),
                     "Tenants' budget alerts; each repeats at most once per its window (T4)."),
        # Hourly: each estate's day starts at its own local midnight; runs with nothing due do nothing.
        ScheduledJob("tariff_schedule", "7 * * * *", "tariff_schedule", _tracked("tariff_schedule"),
                     "Tariff notices that are due, and versions whose date has come (C5)."),
        ScheduledJob("relay_holds", "*/5 * * * *", "relay_holds", _tracked("relay_holds"),
                     "Relay holds whose time ran out are released and supply restored where the balance allows (C7)."),
        # Daily (M8): this month's and the next three months' reading partitions, made ahead.
        ScheduledJob("readings_partitions", "50 2 * * *", "readings_partitions", _tracked("readings_partitions"),
                     "Reading partitions for this month and the next three (M8)."),
        ScheduledJob("meter_watch", "23 * * * *", "meter_watch", _tracked("meter_watch"),
                     "Frozen registers on occupied units (M3)."),
        # Every 10 minutes: an owner's page then folds at most ten minutes of postings itself.
        ScheduledJob("pocket_flows", "*/10 * * * *", "pocket_flows", _tracked("pocket_flows"),
                     "New pocket postings folded into the owner reports' roll-ups (O1, O2)."),
        # Daily, early morning UTC: one email with every estate's head (nothing sent when unset).
        ScheduledJob("levy_runs", "35 * 1 * *", "levy_run", _levy_runs,
                     "Each estate's levies for the month just begun; a month already charged posts nothing (B3)."),
        ScheduledJob("ledger_anchors", "15 3 * * *", "ledger_anchor_email", _tracked("ledger_anchor_email"),
                     "Each estate's ledger chain head emailed to LEDGER_ANCHOR_EMAIL (C3)."),
        # Utility layer (issue 19): after the night's imports (01:30-01:45) so their days are complete.
        ScheduledJob("utility_losses", "10 2 * * *", "utility_losses", _tracked("utility_losses"),
                     "Each estate's last three days of bulk against unit meters; alerts a new loss episode (U1, U2)."),
        ScheduledJob("meter_anomalies", "25 2 * * *", "meter_anomalies", _tracked("meter_anomalies"),
                     "Yesterday's anomaly score for every unit meter; a high score opens a case (U4)."),
        ScheduledJob("utility_profiles", "40 2 * * *", "utility_profiles", _tracked("utility_profiles"),
                     "Each estate's consumption profiles over 7, 30 and 90 days, stored for the utility pages (U5)."),
        ScheduledJob("demand_watch", "*/5 * * * *", "demand_watch", _tracked("demand_watch"),
                     "Estate demand against its threshold: warnings, holds on the heaviest consumers, restoration (U5)."),
        # Issue 21: webhook retries are due at their own times (seconds to hours apart).
        ScheduledJob("webhook_retries", "* * * * *", "webhook_retries", _tracked("webhook_retries"),
                     "Outgoing webhooks whose retry time has come (A7)."),
        # issue 20: settlement on the 2nd (hourly: each estate's month ends at its own midnight;
        # months already settled post nothing) and the reconciliation of yesterday every morning.
        # Shared solar (issue 19) at 00:15 on the 2nd: every estate's month has ended by then and its
        # last day's imports are in (01:30-01:45 on the 1st); before the settlement (from 00:35),
        # so the month's solar revenue is in what is settled. A month already allocated posts nothing.
        ScheduledJob("solar_allocations", "15 0 2 * *", "solar_allocation", _solar_allocations,
                     "Last month's shared solar shared among the units of each estate with a scheme (Quantify 11.2)."),
        ScheduledJob("settlement", "35 * 2 * *", "settlement_run", _settlement,
                     "Last month's revenue settled to each estate's parties by its rules (U3)."),
        ScheduledJob("daily_reconciliation", "30 4 * * *", "daily_reconciliation", _tracked("daily_reconciliation"),
                     "Yesterday's readings vs bills, payments vs gateway records, bulk vs units, ledger (U6)."),
        # Arrears (A4, issue 16): daily; each ladder step is applied once per episode, so a rerun does nothing.
        ScheduledJob("arrears_ladder", "35 4 * * *", "arrears_ladder", _tracked("arrears_ladder"),
                     "Each estate's escalation ladder over units in arrears: warn, restrict, suspend, escalate (A4)."),
        # Debt cohorts (A5, issue 16): daily; takes the year's cohort on its day, snapshots last month and this.
        ScheduledJob("debt_cohorts", "50 4 * * *", "debt_cohorts", _tracked("debt_cohorts"),
                     "Each estate's debt cohort: taken on its day of the fiscal year, snapshotted monthly (A5)."),
        # Issue 22: daily, so a Monday or a 1st missed is caught up the next day; a period sent is never resent.
        ScheduledJob("report_subscriptions", "15 6 * * *", "report_subscriptions", _tracked("report_subscriptions"),
                     "Reports people subscribed to, emailed weekly (Mondays) or monthly (the 1st) (Quantify 1.7)."),
        # Issue 21: stored Idempotency-Key responses live 24 h; meters gone silent become meter.offline events.
        ScheduledJob("idempotency_purge", "55 3 * * *", "idempotency_purge", _tracked("idempotency_purge"),
                     "API responses stored for Idempotency-Key replays, forgotten after 24 hours (A7)."),
        ScheduledJob("meter_offline_events", "*/5 * * * *", "meter_offline_events", _tracked("meter_offline_events"),
                     "Meters gone offline since the last run, sent to meter.offline webhook subscribers (A7)."),
    ]


def configured_schedule(config) -> list[ScheduledJob]:
    """The schedule with the app's (or the environment's) settings applied."""
    return schedule(int(config.get("UISP_REFRESH_HOURS", DEFAULT_UISP_REFRESH_HOURS)))


def by_name(config, name: str) -> ScheduledJob | None:
    return next((entry for entry in configured_schedule(config) if entry.name == name), None)


def by_kind(config, kind: str) -> ScheduledJob | None:
    return next((entry for entry in configured_schedule(config) if entry.kind == kind), None)


def start_scheduled(name: str) -> str:
    """What `rq cron` enqueues: start the scheduled job `name` (in the worker's app context)."""
    from flask import current_app

    entry = by_name(current_app.config, name)
    if entry is None:
        return f"{name}: no longer scheduled"
    started = entry.start()
    run_id = getattr(started, "id", None)
    return f"{name}: job run {run_id}" if run_id else f"{name}: {started}"


def cron_in_words(expression: str) -> str:
    """A person's reading of the cron expressions the schedule uses ("Every 30 minutes")."""
    parts = expression.split()
    if len(parts) != 5:
        return f"cron {expression}"
    minute, hour, day, month, weekday = parts
    if (month, weekday) != ("*", "*"):
        return f"cron {expression} (UTC)"
    if minute.startswith("*/") and (hour, day) == ("*", "*"):
        return f"Every {minute[2:]} minutes"
    if not minute.isdigit():
        return f"cron {expression} (UTC)"
    at = f":{int(minute):02d}"
    if hour == "*" and day == "*":
        return f"Hourly at {at}"
    if hour == "*" and day.isdigit():
        return f"Hourly at {at} on day {day} of each month (UTC)"
    if hour.startswith("*/") and day == "*":
        return f"Every {hour[2:]} hours at {at} (from 00{at} UTC)"
    if hour.isdigit() and day == "*":
        return f"Daily at {int(hour):02d}{at} UTC"
    if hour.isdigit() and day.isdigit():
        return f"Monthly on day {day} at {int(hour):02d}{at} UTC"
    return f"cron {expression} (UTC)"


# --- what the Jobs screen shows -------------------------------------------------------------


@dataclass
class ScheduleRow:
    """One scheduled job on the Jobs screen: its schedule, last run, next run and what is running."""

    entry: ScheduledJob
    last: object | None  # the latest JobRun of its kind
    running: list
    failures: int  # failed runs among the recent ones
    next_run: datetime


@dataclass
class KindRow:
    """A job kind that runs only when something asks for it (a button, a payment)."""

    kind: str
    last: object | None
    running: list


def duration_seconds(run) -> float | None:
    """How long a finished run took (None while it runs or before it started)."""
    if run is None or run.started_at is None or run.finished_at is None:
        return None
    return (run.finished_at - run.started_at).total_seconds()


def schedule_rows(session, config, now: datetime | None = None) -> tuple[list[ScheduleRow], list[KindRow]]:
    """The Jobs screen: every scheduled job, then every other registered kind that has run."""
    from sqlalchemy import func, select

    from app.jobs import REGISTRY
    from app.models import JobRun

    now = now or datetime.now(UTC)
    entries = configured_schedule(config)
    latest_ids = dict(session.execute(select(JobRun.kind, func.max(JobRun.id)).group_by(JobRun.kind)).all())
    latest = {run.kind: run for run in session.scalars(
        select(JobRun).where(JobRun.id.in_(list(latest_ids.values()) or [0])))}
    running: dict[str, list] = {}
    for run in session.scalars(select(JobRun).where(JobRun.status.in_(("queued", "running")))
                               .order_by(JobRun.id)):
        running.setdefault(run.kind, []).append(run)
    since = now.replace(microsecond=0) - _RECENT
    failed = dict(session.execute(select(JobRun.kind, func.count()).where(
        JobRun.status == "failed", JobRun.created_at >= since).group_by(JobRun.kind)).all())
    rows = [ScheduleRow(entry, latest.get(entry.kind), running.get(entry.kind, []), failed.get(entry.kind, 0),
                        entry.next_run(now)) for entry in entries]
    scheduled = {entry.kind for entry in entries}
    others = [KindRow(kind, latest.get(kind), running.get(kind, []))
              for kind in sorted(REGISTRY) if kind not in scheduled]
    return rows, others


def kind_history(session, kind: str, limit: int = 50) -> list:
    """A kind's latest runs, newest first."""
    from sqlalchemy import select

    from app.models import JobRun

    return list(session.scalars(select(JobRun).where(JobRun.kind == kind).order_by(JobRun.id.desc()).limit(limit)))


class JobScheduleError(Exception):
    """A retry that cannot be done; `errors` is keyed by field."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errors = {"job": message}


class NotScheduled(JobScheduleError):
    """Only scheduled jobs can be started again from the Jobs screen (others need their own page)."""


@dataclass
class RetryResult:
    entry: ScheduledJob
    run: object | None  # the JobRun started or joined (None when the starter starts several)
    message: str


def retry_job(session, config, kind: str) -> RetryResult:
    """Start a scheduled job now (or join its run already going), audited; commits once."""
    from app import audit
    from app.i18n.stored import N_, fill
    from app.models import JobRun

    entry = by_kind(config, kind)
    if entry is None:
        raise NotScheduled(N_("This job runs when something asks for it; start it again from its own page."))
    before = session.query(JobRun.id).filter(JobRun.kind == kind).order_by(JobRun.id.desc()).limit(1).scalar()
    started = entry.start()
    run = started if isinstance(started, JobRun) else None
    if run is not None:
        joined = run.id == before and not run.finished
        # Audited in English; the Jobs screen shows it through `render_stored()` in the reader's language.
        message = (fill(N_("joined run #%(run)s, already %(status)s"), run=run.id, status=run.status) if joined
                   else fill(N_("started run #%(run)s"), run=run.id))
    else:
        message = fill(N_("started: %(started)s"), started=", ".join(started) if started else N_("nothing was due"))
    audit.record(session, "job.retry", run if run is not None else f"job:{kind}",
                 old={"last_run": before}, new={"kind": kind, "run": run.id if run else None, "outcome": message})
    session.commit()
    return RetryResult(entry, run, message)

