"""Webhook events raised by the rest of the app (A7): one call from where each thing happens.

- `wallet.low_balance`: a tenant's budget alert (low or critical) was sent (app/notify/budget_alerts.py);
- `meter.reading`: ingest accepted readings (app/metering/ingest.py);
- `meter.offline`: a live meter's last reading became older than the offline rule allows
  (`app.metering.queries.offline_after`), found by the `meter_offline_events` cron job;
- `tenant.onboarded`: a tenant moved in (app/estates/tenancies.py);
- `wallet.topup` is raised by `credit_payment()` itself.

Each hook first asks `wanted()` whether any live subscription wants the event for the estate:
a per-process lookup cached for CACHE_SECONDS, so ingest in estates without a `meter.reading`
subscription pays one set lookup and no query. Subscriptions made here (add, enable) clear the
cache; another process sees them within CACHE_SECONDS. Deliveries are queued by
`app.notify.webhooks_out.emit()` in the caller's transaction and sent after its commit.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from app.jobs import job
from app.models import Meter, Unit, utcnow

CACHE_SECONDS = 30
OFFLINE_JOB = "meter_offline_events"
OFFLINE_FIRST_LOOK = timedelta(hours=1)  # the first run (no earlier one) looks back this far
OFFLINE_MAX_LOOK = timedelta(days=1)  # a scheduler down for days does not announce last week's meters


@dataclass(frozen=True)
class _Wanted:
    everywhere: bool  # a subscription over every estate wants it
    estate_ids: frozenset[int]
    loaded_at: float


_cache: dict[tuple[str, str], _Wanted] = {}
_lock = threading.Lock()


def forget() -> None:
    """Drop the cached subscriptions (called when one is added or switched on or off)."""
    with _lock:
        _cache.clear()


def _subscriptions(session: Session, event_type: str) -> _Wanted:
    from app.models.api import WebhookEndpoint

    bind = session.get_bind()
    key = (str(getattr(bind, "url", None) or bind.engine.url), event_type)  # an Engine, or a Connection
    found = _cache.get(key)
    if found is not None and time.monotonic() - found.loaded_at < CACHE_SECONDS:
        return found
    rows = session.execute(select(WebhookEndpoint.estate_id, WebhookEndpoint.events).where(
        WebhookEndpoint.disabled_at.is_(None), WebhookEndpoint.events.contains(event_type))).all()
    wanting = [estate_id for estate_id, events in rows if event_type in events.split()]
    found = _Wanted(None in wanting, frozenset(e for e in wanting if e is not None), time.monotonic())
    with _lock:
        _cache[key] = found
    return found


def wanted(session: Session, event_type: str, estate_id: int | None) -> bool:
    """Whether some live subscription wants `event_type` in this estate (cached lookup)."""
    found = _subscriptions(session, event_type)
    return found.everywhere or estate_id in found.estate_ids


def _emit(session: Session, event_type: str, estate_id: int, data: dict) -> int:
    from app.notify.webhooks_out import emit

    return emit(session, event_type, estate_id, data)


# --- wallet.low_balance -------------------------------------------------------------------

def budget_alert_sent(session: Session, alert) -> None:
    """A tenant's budget alert went out: a low or critical one is a `wallet.low_balance` event."""
    from app.models import Account, Wallet

    unit = alert.context["unit"]
    if alert.kind not in ("low", "critical") or not wanted(session, "wallet.low_balance", unit.estate_id):
        return
    pocket = session.scalar(select(Account).join(Wallet, Wallet.id == Account.wallet_id).where(
        Wallet.unit_id == unit.id, Account.kind == "pocket", Account.utility == alert.utility))
    _emit(session, "wallet.low_balance", unit.estate_id, {
        "estate_id": unit.estate_id, "unit_id": unit.id, "unit_number": unit.number, "utility": alert.utility,
        "level": alert.kind, "balance": str(pocket.balance) if pocket is not None else None,
        "threshold": str((alert.setting.thresholds or {}).get(alert.utility)),
        "commodity": pocket.commodity if pocket is not None else None})


# --- meter.reading ------------------------------------------------------------------------

def readings_accepted(session: Session, rows: Iterable[dict], accepted: set, meters: dict[int, Meter]) -> int:
    """ingest's hook: one `meter.reading` per new reading of an estate that wants them."""
    found = _subscriptions(session, "meter.reading")
    if not found.everywhere and not found.estate_ids:
        return 0
    sent = 0
    for row in rows:
        meter = meters.get(row["meter_id"])
        if meter is None or (row["meter_id"], row["taken_at"]) not in accepted:
            continue
        if not (found.everywhere or meter.estate_id in found.estate_ids):
            continue
        sent += _emit(session, "meter.reading", meter.estate_id, {
            "estate_id": meter.estate_id, "unit_id": meter.unit_id, "serial": meter.serial,
            "utility": meter.utility, "taken_at": row["taken_at"].isoformat(), "register": str(row["register"]),
            "consumption": None if row["consumption"] is None else str(row["consumption"])})
    return sent


# --- tenant.onboarded ---------------------------------------------------------------------

def tenant_onboarded(session: Session, unit: Unit, tenancy_id: int, person_id: int, move_in) -> None:
    """A tenant moved into a unit (the move-in page, the tenancies import, bulk onboarding)."""
    if not wanted(session, "tenant.onboarded", unit.estate_id):
        return
    _emit(session, "tenant.onboarded", unit.estate_id, {
        "estate_id": unit.estate_id, "unit_id": unit.id, "unit_number": unit.number, "tenancy_id": tenancy_id,
        "person_id": person_id, "move_in": move_in.isoformat()})


# --- meter.offline ------------------------------------------------------------------------

def meters_gone_offline(session: Session, since: datetime, now: datetime) -> list[Meter]:
    """Live meters whose offline moment (last reading + the offline rule) fell in (since, now]."""
    from app.metering.queries import IMPORTED_PROTOCOLS, offline_after

    kinds = session.execute(select(Meter.protocol, Meter.interval_minutes).where(
        Meter.protocol.not_in(IMPORTED_PROTOCOLS), Meter.detached_at.is_(None),
        Meter.last_reading_at.is_not(None)).distinct()).all()
    if not kinds:
        return []
    # One window per (protocol, interval): portable, no interval arithmetic in SQL.
    crossed = or_(*(and_(Meter.protocol == protocol,
                         Meter.interval_minutes.is_(None) if interval is None else Meter.interval_minutes == interval,
                         Meter.last_reading_at > since - offline_after(protocol, interval),
                         Meter.last_reading_at <= now - offline_after(protocol, interval))
                    for protocol, interval in kinds))
    return list(session.scalars(select(Meter).where(Meter.detached_at.is_(None), crossed).order_by(Meter.id)))


def announce_offline_meters(session: Session, since: datetime, now: datetime | None = None) -> int:
    """Emit `meter.offline` for meters that went offline in (since, now]; the caller commits."""
    from app.metering.queries import offline_after

    now = now or utcnow()
    found = _subscriptions(session, "meter.offline")
    if not found.everywhere and not found.estate_ids:
        return 0
    sent = 0
    for meter in meters_gone_offline(session, since, now):
        if not (found.everywhere or meter.estate_id in found.estate_ids):
            continue
        sent += _emit(session, "meter.offline", meter.estate_id, {
            "estate_id": meter.estate_id, "unit_id": meter.unit_id, "serial": meter.serial,
            "utility": meter.utility, "last_reading_at": meter.last_reading_at.isoformat(),
            "offline_since": (meter.last_reading_at + offline_after(meter.protocol, meter.interval_minutes)).isoformat()})
    return sent


@job(OFFLINE_JOB)
def offline_meters_job(session: Session, progress) -> str:
    """Cron job: announce the meters gone offline since the previous run (one event per silence)."""
    from app.models import JobRun

    now = utcnow()
    previous = session.scalar(select(func.max(JobRun.started_at)).where(
        JobRun.kind == OFFLINE_JOB, JobRun.status == "done"))
    since = max(previous, now - OFFLINE_MAX_LOOK) if previous is not None else now - OFFLINE_FIRST_LOOK
    if since.tzinfo is None:
        since = since.replace(tzinfo=now.tzinfo)
    sent = announce_offline_meters(session, since, now)
    session.commit()
    return f"{sent} meter.offline event{'s' if sent != 1 else ''} queued"

