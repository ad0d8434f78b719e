"""Historical backfill of the SparkMeter imports (issue 22 item 4): a date range as one stoppable job.

Staff (or `flask sources backfill`) ask for Koios readings or ThunderCloud exports of one estate
over a range of days. A `SourceBackfill` row remembers the range and the last day completed;
the `source_backfill` job imports the days oldest first, one day at a time, and commits the
resume point after each, so a stop (the Stop button sets `stop_requested_at`; the job looks
between days), a failure or a dead worker loses at most the day in hand, and Resume starts at
the day after `last_completed_day`.

Idempotent like the daily imports, by the same guards: Koios readings meet ingest's
(meter, timestamp) key, ThunderCloud site-days their `ThunderCloudExport` row and heartbeats
their id. So re-running a range, or the day a stop interrupted, stores nothing twice.

Koios differs from the nightly import (`sparkmeter.import_koios_day`) in three ways:
- the freshness watermark (`koios.synced.<site>`) is neither read nor moved: a backfill asks
  for days the nightly import has long passed, and must not make it go back;
- only the estate's sites and meters: the sites are those of the Koios customers whose meter
  is one of the estate's SparkMeter meters;
- Koios sends each interval's kWh, which become registers accumulated from the meter's
  stored register before them (`sparkmeter._register_before`, as the nightly import does).
  After a meter's newest stored reading they are ingested and billed as usual. Before the
  meter's billing start (its first stored reading; 1PWR backfills years before go-live) they
  go through `ingest(..., history_only=True)`: stored and rolled up, never billed (the vendor
  sold that energy), older than MAX_AGE included. Their registers continue from the stored
  history before them, from 0 for the oldest (Koios has no register of its own), so they need
  not meet the billed registers. An interval between the billing start and the newest stored
  reading that is not stored already cannot be given a register that fits between the stored
  ones (the stored span already billed the register's rise), so it is counted as `skipped`.

ThunderCloud exports are per site: an estate's sites are its `thundercloud_sites` setting
(the estate settings page, Vendors and devices), and a ThunderCloud backfill fetches only
those (a backfill of an estate without any is refused); payments are matched to units by
meter serial as the nightly import does.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from flask import current_app
from flask_babel import gettext, lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.i18n.stored import N_, fill
from app.jobs import enqueue, job
from app.metering.decoders import HTTP_TOPIC, parse_time
from app.metering.ingest import Message, billing_start, ingest
from app.metering.validation import MAX_AGE
from app.models import Estate, JobRun, Meter, Reading, canonical_serial, utcnow
from app.models.backfills import BACKFILL_SOURCES, SourceBackfill

BACKFILL_JOB = "source_backfill"
MAX_RANGE_DAYS = 366  # one request at most a year; longer histories are several backfills
UNFINISHED = ("queued", "running", "stopping")


class BackfillError(ValueError):
    """A backfill request or action refused; `errors` maps form fields to messages."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(str(m) for m in errors.values()))
        self.errors = errors


@dataclass
class DayOutcome:
    accepted: int = 0
    duplicates: int = 0
    skipped: int = 0
    history: int = 0  # of `accepted`: before the meter's billing start, stored unbilled
    complete: bool = True  # False: some site-day could not be fetched, the day is tried again
    problem: str = ""


def parse_request(source: str, estate_id: str | int | None, first: str, last: str, *,
                  today: date | None = None) -> tuple[str, int, date, date]:
    """Check a backfill request's fields; return them parsed or raise BackfillError by field."""
    today = today or datetime.now(UTC).date()
    errors: dict[str, str] = {}
    if source not in BACKFILL_SOURCES:
        errors["source"] = str(_l("Choose Koios or ThunderCloud."))
    try:
        estate = int(estate_id or 0)
        if estate <= 0:
            raise ValueError
    except (TypeError, ValueError):
        errors["estate"] = str(_l("Choose an estate."))
        estate = 0
    days = {}
    for name, text in (("first_day", first), ("last_day", last)):
        try:
            days[name] = date.fromisoformat((text or "").strip())
        except ValueError:
            errors[name] = str(_l("Give a date as YYYY-MM-DD."))
    if len(days) == 2:
        first_day, last_day = days["first_day"], days["last_day"]
        if last_day >= today:
            errors["last_day"] = str(_l("Choose a day that has ended: yesterday or earlier."))
        elif first_day > last_day:
            errors["first_day"] = str(_l("The first day must not be after the last day."))
        elif (last_day - first_day).days + 1 > MAX_RANGE_DAYS:
            errors["first_day"] = str(_l("At most %(days)s days in one backfill.", days=MAX_RANGE_DAYS))
    if errors:
        raise BackfillError(errors)
    return source, estate, days["first_day"], days["last_day"]


def start_backfill(session: Session, source: str, estate: Estate, first_day: date, last_day: date, *,
                   user_id: int | None = None) -> SourceBackfill:
    """Record a backfill and start its job; commits once (before the job runs). Refused while one of
    the same source and estate is unfinished."""
    running = session.scalar(select(SourceBackfill).where(
        SourceBackfill.source == source, SourceBackfill.estate_id == estate.id,
        SourceBackfill.status.in_(UNFINISHED)).limit(1))
    if running is not None:
        raise BackfillError({"source": str(_l(
            "Backfill #%(id)s of this source and estate has not finished: stop it or wait for it.",
            id=running.id))})
    if source == "thundercloud" and not thundercloud_sites(session, estate):
        raise BackfillError({"estate": str(_l(
            "This estate has no ThunderCloud sites: list them in its settings (ThunderCloud sites) first."))})
    backfill = SourceBackfill(source=source, estate_id=estate.id, first_day=first_day, last_day=last_day,
                              created_by_user_id=user_id)
    session.add(backfill)
    session.flush()
    audit.record(session, "backfill.start", backfill, new={
        "source": source, "first_day": first_day, "last_day": last_day})
    session.commit()
    _enqueue(backfill, user_id)
    session.refresh(backfill)
    return backfill


def request_stop(session: Session, backfill: SourceBackfill) -> SourceBackfill:
    """Ask a queued or running backfill to stop after its current day; commits once."""
    session.refresh(backfill)
    if backfill.status not in ("queued", "running"):
        raise BackfillError({"status": str(_l("Only a queued or running backfill can be stopped."))})
    backfill.stop_requested_at, backfill.status = utcnow(), "stopping"
    audit.record(session, "backfill.stop", backfill, new={"last_completed_day": backfill.last_completed_day})
    session.commit()
    return backfill


def latest_run(session: Session, backfill: SourceBackfill) -> JobRun | None:
    """The backfill's newest job run (its progress panel while it runs)."""
    return session.scalar(select(JobRun).where(JobRun.target == job_target(backfill.id))
                          .order_by(JobRun.id.desc()).limit(1))


def job_target(backfill_id: int) -> str:
    return f"backfill:{backfill_id}"


def can_resume(session: Session, backfill: SourceBackfill) -> bool:
    """Stopped or failed with days left, or left unfinished by a job that is no longer running
    (a worker that died before it began: its row would otherwise wait forever)."""
    if backfill.resumable:
        return True
    if backfill.status not in UNFINISHED or backfill.next_day is None:
        return False
    run = latest_run(session, backfill)
    return run is None or run.finished


def resume_backfill(session: Session, backfill: SourceBackfill, *, user_id: int | None = None) -> SourceBackfill:
    """Start a stopped or failed backfill again from the day after its last completed one; commits once."""
    session.refresh(backfill)
    if not can_resume(session, backfill):
        raise BackfillError({"status": str(_l("Only a stopped or failed backfill with days left can be resumed."))})
    backfill.status, backfill.stop_requested_at, backfill.error = "queued", None, None
    audit.record(session, "backfill.resume", backfill, new={"from": backfill.next_day})
    session.commit()
    _enqueue(backfill, user_id)
    session.refresh(backfill)
    return backfill


def _enqueue(backfill: SourceBackfill, user_id: int | None):
    return enqueue(BACKFILL_JOB, backfill.id, target=job_target(backfill.id), user_id=user_id, queue="low")


def recent_backfills(session: Session, limit: int = 50) -> list[tuple[SourceBackfill, Estate]]:
    """The newest backfills with their estate, for the staff page."""
    return list(session.execute(select(SourceBackfill, Estate).join(Estate, Estate.id == SourceBackfill.estate_id)
                                .order_by(SourceBackfill.id.desc()).limit(limit)).all())


# --- the job ------------------------------------------------------------------------------


@job(BACKFILL_JOB)
def backfill_job(session: Session, progress, backfill_id: int) -> str:
    """Worker job: import the backfill's days from where it stopped, checking for Stop between days."""
    backfill = session.get(SourceBackfill, backfill_id)
    if backfill is None:
        return fill(N_("backfill %(id)s no longer exists"), id=backfill_id)
    if backfill.status in ("done", "stopped"):
        return fill(N_("backfill %(id)s is %(status)s: nothing to do"), id=backfill_id, status=backfill.status)
    estate = session.get(Estate, backfill.estate_id)
    first = backfill.next_day
    days = [first + timedelta(days=n) for n in range((backfill.last_day - first).days + 1)] if first else []
    progress.set_total(len(days))
    backfill.status, backfill.job_run_id = "running", progress.run_id
    if backfill.stop_requested_at is not None:
        backfill.status = "stopping"
    session.commit()
    try:
        import_day = (_koios_days(session, estate) if backfill.source == "koios"
                      else _thundercloud_days(session, estate))
        for day in days:
            session.refresh(backfill)  # Stop is pressed in another transaction
            if backfill.stop_requested_at is not None:
                return _finish(session, backfill, "stopped")
            outcome = import_day(day)
            if not outcome.complete:
                backfill.error = outcome.problem
                return _finish(session, backfill, "failed")
            backfill.last_completed_day, backfill.days_done = day, backfill.days_done + 1
            backfill.accepted += outcome.accepted
            backfill.duplicates += outcome.duplicates
            backfill.skipped += outcome.skipped
            backfill.history += outcome.history
            session.commit()  # the resume point moves with the day's rows
            progress.step()
    except Exception as error:
        session.rollback()
        backfill = session.get(SourceBackfill, backfill_id)
        backfill.error = f"{type(error).__name__}: {error}"[:2000]
        _finish(session, backfill, "failed")
        raise
    session.refresh(backfill)
    return _finish(session, backfill, "stopped" if backfill.stop_requested_at and backfill.next_day else "done")


def _finish(session: Session, backfill: SourceBackfill, status: str) -> str:
    backfill.status, backfill.finished_at = status, utcnow()
    backfill.summary = summary(backfill)
    session.commit()
    return backfill.summary


def summary(backfill: SourceBackfill) -> str:
    """One line for the job panel and the list: where the range stands and what it brought.

    Written in the current language: English in the job that stores it, the reader's when the
    backfills page renders it again from the row's counts (template global `backfill_summary`)."""
    through = (gettext("through %(day)s", day=backfill.last_completed_day.isoformat())
               if backfill.last_completed_day else gettext("no day completed"))
    status = gettext(backfill.status) if backfill.status in _STATUS_WORDS else backfill.status
    text = gettext("%(status)s: %(done)s of %(total)s days (%(through)s); ", status=status,
                   done=backfill.days_done, total=backfill.total_days, through=through)
    if backfill.source == "koios":
        text += gettext("%(accepted)s new readings, %(duplicates)s already stored", accepted=backfill.accepted,
                        duplicates=backfill.duplicates)
        if backfill.history:
            text += gettext(" (%(history)s of them before billing began: history, not billed)",
                            history=backfill.history)
    else:
        text += gettext("%(accepted)s new heartbeats, %(duplicates)s site-days imported before",
                        accepted=backfill.accepted, duplicates=backfill.duplicates)
    if backfill.skipped:
        text += gettext(", %(skipped)s inside stored history (skipped)", skipped=backfill.skipped)
    return text + (f"; {backfill.error}" if backfill.status == "failed" and backfill.error else "")


_STATUS_WORDS = (N_("queued"), N_("running"), N_("stopping"), N_("stopped"), N_("done"), N_("failed"))


def _koios_days(session: Session, estate: Estate):
    """A day importer for the estate's Koios sites and meters."""
    from app.sources.sparkmeter import KoiosApi

    api = KoiosApi.from_config()
    meters = {m.serial: m for m in session.scalars(select(Meter).where(
        Meter.estate_id == estate.id, Meter.protocol == "sparkmeter", Meter.detached_at.is_(None)))}
    sites = sorted({customer["site"] for customer in api.list_customers() if customer.get("site")
                    and any(_serial(m) in meters for m in customer.get("meters") or [])})

    def import_day(day: date) -> DayOutcome:
        outcome = DayOutcome()
        for site in sites:
            rows = api.historical_day(site, day)
            _ingest_koios_rows(session, rows, meters, outcome)
        return outcome
    return import_day


def _serial(meter: dict) -> str:
    try:
        return canonical_serial(str(meter.get("serial_number") or ""))
    except ValueError:
        return ""


def _ingest_koios_rows(session: Session, rows: list[dict], meters: dict[str, Meter], outcome: DayOutcome) -> None:
    """Intervals after each meter's newest stored reading billed, before its billing start stored as
    history, in between counted (not sent); registers from interval kWh."""
    from app.sources.sparkmeter import _register_before

    per_meter: dict[str, list[tuple[datetime, Decimal]]] = {}
    for row in rows:
        try:
            serial = canonical_serial(row["meter"]["serial_number"])
            if serial in meters:
                per_meter.setdefault(serial, []).append(
                    (parse_time(row["timestamp"]), Decimal(str(row["kilowatt_hours"]))))
        except (KeyError, TypeError, ValueError, InvalidOperation):
            continue  # the nightly import reports malformed rows; a backfill only skips them
    messages, history = [], []
    oldest_billable = utcnow() - MAX_AGE
    for serial, intervals in per_meter.items():
        meter = meters[serial]
        session.refresh(meter, ["last_reading_at", "history_before"])
        intervals.sort()
        newest, start = meter.last_reading_at, billing_start(session, meter)
        # (start is None with a newest reading only when every stored reading is archived)
        older = [at for at, _ in intervals if newest is not None and (start is None or start <= at) and at <= newest]
        if older:
            stored = set(session.scalars(select(Reading.taken_at).where(
                Reading.meter_id == meter.id, Reading.taken_at >= older[0], Reading.taken_at <= older[-1])))
            stored = {at.astimezone(UTC) for at in stored}
            outcome.duplicates += sum(1 for at in older if at in stored)
            outcome.skipped += sum(1 for at in older if at not in stored)
        before = [(at, kwh) for at, kwh in intervals if start is not None and at < start]
        fresh = [(at, kwh) for at, kwh in intervals if newest is None or at > newest]
        if newest is None:  # a meter without readings: the backfill is its go-live, ingest's age limit holds
            outcome.skipped += sum(1 for at, _ in fresh if at < oldest_billable)
            fresh = [(at, kwh) for at, kwh in fresh if at >= oldest_billable]
        for chosen, into in ((before, history), (fresh, messages)):
            if not chosen:
                continue
            register = _register_before(session, meter.id, chosen[0][0])
            for taken_at, kwh in chosen:
                register += kwh
                into.append(Message(HTTP_TOPIC, json.dumps({
                    "meter": serial, "register": f"{register} kWh", "time": taken_at.isoformat(),
                    "source": "koios"}).encode()))
    if history:
        report = ingest(session, history, history_only=True)
        outcome.accepted += report.accepted
        outcome.history += report.accepted
        outcome.duplicates += report.duplicates
    if messages:
        report = ingest(session, messages)
        outcome.accepted += report.accepted
        outcome.duplicates += report.duplicates


def thundercloud_sites(session: Session, estate: Estate) -> list[str]:
    """The ThunderCloud site ids that are the estate's (its `thundercloud_sites` setting)."""
    from app.settings import get_setting

    return list(get_setting(session, "thundercloud_sites", estate.id, default=None) or [])


def _thundercloud_days(session: Session, estate: Estate):
    """A day importer for the estate's ThunderCloud sites (the nightly import's fetch, one day)."""
    from app.sources.thundercloud import ThunderCloudApi, fetch_exports

    config = current_app.config
    rules = {"threshold": Decimal(config["THUNDERCLOUD_PAYMENT_THRESHOLD"]),
             "rate": Decimal(config["THUNDERCLOUD_RATE_PER_KWH"])}
    sites = thundercloud_sites(session, estate)
    api = ThunderCloudApi.from_config()

    def import_day(day: date) -> DayOutcome:
        report = fetch_exports(session, api, sites, [day], **rules)
        session.commit()
        return DayOutcome(accepted=report.new_heartbeats, duplicates=report.cached, complete=not report.failed,
                          problem="; ".join(report.fetch_errors)[:2000])
    return import_day


def seed_demo_backfills(session: Session, estate: Estate, today: date) -> None:
    """Demo rows for Staff → Backfills: one finished, one stopped half way (resumable); the caller commits."""
    finished = SourceBackfill(source="thundercloud", estate_id=estate.id, first_day=today - timedelta(days=60),
                              last_day=today - timedelta(days=31), status="done",
                              last_completed_day=today - timedelta(days=31), days_done=30, accepted=1080, duplicates=0,
                              skipped=0,
                              finished_at=utcnow() - timedelta(days=2))
    stopped = SourceBackfill(source="koios", estate_id=estate.id, first_day=today - timedelta(days=30),
                             last_day=today - timedelta(days=1), status="stopped",
                             last_completed_day=today - timedelta(days=19), days_done=12, accepted=2880, duplicates=0,
                             skipped=0,
                             stop_requested_at=utcnow() - timedelta(hours=3),
                             finished_at=utcnow() - timedelta(hours=3))
    for row in (finished, stopped):
        row.summary = summary(row)
        session.add(row)
