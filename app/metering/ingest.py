"""The one readings pipeline (M1-M5, C6): decode, validate, store, bill, roll up, dead-letter.

`ingest(session, messages)` takes a batch from any source (MQTT worker, HTTP endpoint, a
replayed dead letter) and never commits: the caller commits the batch as one unit of work
and only then acknowledges the messages, so a crash re-delivers and the replay is harmless.

Order independence (several workers on a shared subscription): the batch's meters are row
locked, readings are unique per (meter, timestamp) and bills are keyed
`reading:<serial>:<timestamp>`. A reading that arrives after a later one ("late") falls
inside a span that was already billed; it splits the span's stored consumption, so the
quantity billed always equals the register's rise, whatever the order. Pricing the spans and
building their ledger entries (and re-pricing the spans a late reading splits) is billing's:
`app.billing.consumption`.

History only (`history_only=True`, a vendor backfill before go-live): readings older than the
meter's billing start (its first stored reading, remembered as `Meter.history_before`) are
stored and rolled up but never billed, and never move the meter's latest reading; the ledger
is not touched. Anything at or after the billing start is refused (import it normally), and a
normal reading before the billing start is refused too: that energy was sold at the vendor.
"""
from __future__ import annotations

import os
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import String, bindparam, insert, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.i18n.stored import N_, fill
from app import audit
from app.billing.consumption import Reprice, Span, bill
from app.ledger import Entry
from app.estates.settings_catalog import setting_default
from app.integration import events
from app.settings import get_setting, put_setting
from app.metering import credit_control, rollups, validation
from app.metering.decoders import DEFAULT_PROFILES, DecodedReading, DecodeError, decode
from app.models import Estate, Meter, Reading, utcnow
from app.models.ingest import IngestHeartbeat
from app.models.metering import DeadLetter, MeterAlert, ReadingArchive
from app.sql_arrays import one_of, pg_array

MAINTENANCE_KEY = "ingest_maintenance"
HISTORY = timedelta(days=7)  # what "the meter's usual use" looks back over


@dataclass(frozen=True)
class Message:
    """One inbound message as received: topic and raw payload bytes."""

    topic: str
    payload: bytes
    received_at: datetime | None = None


@dataclass
class IngestReport:
    """What a batch did, counted per outcome."""

    accepted: int = 0
    duplicates: int = 0
    billed: int = 0
    alerts: int = 0
    dead_letters: list[str] = field(default_factory=list)  # reasons, in message order
    repriced: int = 0  # adjustments posted because a late reading split a billed span


@dataclass
class _Batch:
    now: datetime
    readings: list[dict] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)
    dead: list[dict] = field(default_factory=list)
    advanced: dict[int, tuple[datetime, Decimal]] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)  # late readings' bills and re-pricings
    prices: dict[tuple, list] = field(default_factory=dict)
    stored_uplinks: set[tuple[int, str]] = field(default_factory=set)  # (meter id, deduplicationId) already kept
    archives: dict | None = None  # archived months (M8) by first day, loaded once a batch


def ingest(session: Session, messages: list[Message], *, now: datetime | None = None,
           keep_dead_letters: bool = True, estate_ids: frozenset[int] | None = None,
           history_only: bool = False) -> IngestReport:
    """Run a batch of raw messages through the pipeline; the caller commits.

    `estate_ids` limits the batch to those estates' meters (an estate-scoped API key's): a
    reading for another estate's meter is refused exactly as an unknown meter is, and not
    kept as a dead letter (replaying it would bypass the key's scope).

    `history_only` stores readings before each meter's billing start without billing them
    (see the module docstring and `_ingest_history`).
    """
    if history_only:
        return _ingest_history(session, messages, now=now or utcnow(), keep_dead_letters=keep_dead_letters,
                               estate_ids=estate_ids)
    batch = _Batch(now=now or utcnow())
    out_of_scope: set[int] = set()  # ids of dead-letter rows refused for scope
    report = IngestReport()
    decoded, meters = _decode_and_lock(session, batch, messages)
    estates = {e.id: e for e in session.scalars(
        select(Estate).where(Estate.id.in_({m.estate_id for m in meters.values()})))}
    per_meter: dict[int, list[tuple[Message, DecodedReading]]] = defaultdict(list)
    by_id: dict[int, Meter] = {}
    for message, reading in decoded:
        meter = meters.get(("serial", reading.serial) if reading.serial else ("eui", reading.dev_eui))
        if meter is None or (estate_ids is not None and meter.estate_id not in estate_ids):
            _dead(batch, message, fill(N_("unknown meter %(meter)s"), meter=reading.serial or reading.dev_eui),
                  reading.serial or reading.dev_eui, reading.taken_at)
            if meter is not None:
                out_of_scope.add(id(batch.dead[-1]))
            continue
        if meter.detached_at is not None:
            _dead(batch, message, _detached_reason(session, meter), meter.serial, reading.taken_at)
            continue
        # Only meters that stamp readings on their boundaries are held to them (LoRaWAN
        # devices send on free-running timers and are billed at their own times).
        interval = meter.interval_minutes if meter.reports_on_boundaries else None
        refusal = (validation.timestamp_refusal(reading.taken_at, batch.now)
                   or validation.interval_refusal(reading.taken_at, interval)
                   or _archived_refusal(session, batch, reading.taken_at))
        if refusal:
            _dead(batch, message, refusal, meter.serial, reading.taken_at)
            continue
        per_meter[meter.id].append((message, reading))
        by_id[meter.id] = meter
    batch.stored_uplinks = _stored_uplinks(session, per_meter)
    usual = rollups.usual_per_hour(session, set(by_id), batch.now - HISTORY) if by_id else {}
    for meter_id, items in per_meter.items():
        meter = by_id[meter_id]
        items.sort(key=lambda item: item[1].taken_at)
        _walk(session, batch, report, meter, estates[meter.estate_id], items, usual.get(meter_id))
    inserted = _insert_readings(session, batch)
    events.readings_accepted(session, batch.readings, inserted, by_id)  # meter.reading webhooks (A7), if wanted
    _advance_meters(session, batch.advanced)
    report.duplicates += len(batch.readings) - len(inserted)
    report.accepted += len(inserted)
    spans = [s for s in batch.spans if s.late or (s.meter.id, s.end) in inserted]
    billed = bill(session, batch, spans, estates)
    report.billed += billed.billed
    report.repriced += billed.repriced
    rollups.apply(session, batch.totals)
    if batch.alerts:
        session.execute(insert(MeterAlert), batch.alerts)
    report.alerts = len(batch.alerts)
    report.dead_letters = [row["reason"] for row in batch.dead]
    kept = [row for row in batch.dead if id(row) not in out_of_scope]
    if kept and keep_dead_letters:
        session.execute(insert(DeadLetter), kept)
    session.flush()
    if billed.pockets:
        credit_control.after_pocket_change(session, billed.pockets)
    return report


def ingest_paused(session: Session) -> bool:
    """Whether maintenance mode (M7) holds ingest."""
    return bool(get_setting(session, MAINTENANCE_KEY, default=setting_default(MAINTENANCE_KEY)))


def set_maintenance(session: Session, on: bool) -> None:
    """Switch maintenance mode; commits once."""
    put_setting(session, MAINTENANCE_KEY, bool(on))
    session.commit()


def ingest_and_commit(session: Session, messages: list[Message], *,
                      estate_ids: frozenset[int] | None = None) -> IngestReport:
    """Run one batch through the pipeline and commit it; commits once (the HTTP endpoint's unit of work)."""
    report = ingest(session, messages, estate_ids=estate_ids)
    session.commit()
    return report


def record_heartbeat(session: Session, client_id: str, *, started_at: datetime, connected: bool, paused: bool,
                     backlog: int, last_batch_at: datetime | None, last_batch_size: int, readings: int,
                     stopped: bool = False, last_batch_seconds: float | None = None) -> None:
    """Store an ingest worker's heartbeat (one row per client id) and commit it."""
    row = session.get(IngestHeartbeat, client_id)
    if row is None:
        row = IngestHeartbeat(client_id=client_id)
        session.add(row)
    row.host, row.pid = socket.gethostname()[:255], os.getpid()
    row.started_at, row.beat_at = started_at, utcnow()
    row.stopped_at = row.beat_at if stopped else None
    row.connected, row.paused, row.backlog = connected, paused, backlog
    row.last_batch_at, row.last_batch_size, row.readings = last_batch_at, last_batch_size, readings
    row.last_batch_seconds = last_batch_seconds
    session.commit()


def worker_status(session: Session, stale_after: timedelta, expected: int = 0) -> dict:
    """The ingest workers seen within `stale_after`, for /healthz; degraded below `expected` alive."""
    now = utcnow()
    rows = session.scalars(select(IngestHeartbeat).where(IngestHeartbeat.beat_at >= now - stale_after,
                                                         IngestHeartbeat.stopped_at.is_(None))
                           .order_by(IngestHeartbeat.client_id)).all()
    workers = [{"client_id": row.client_id, "host": row.host, "pid": row.pid,
                "seconds_since_beat": round((now - row.beat_at).total_seconds(), 1),
                "connected": row.connected, "paused": row.paused, "backlog": row.backlog,
                "last_batch_at": row.last_batch_at.isoformat() if row.last_batch_at else None,
                "last_batch_size": row.last_batch_size, "readings": row.readings} for row in rows]
    if expected and len(workers) < expected:
        status = "too_few"
    else:
        status = "ok" if workers else "none_running"
    return {"status": status, "count": len(workers), "expected": expected, "workers": workers}


def replay_dead_letter(session: Session, dead_letter: DeadLetter) -> str:
    """Run a dead letter through the pipeline again; record, audit and return the outcome; commits once."""
    payload = dead_letter.raw_payload if dead_letter.raw_payload is not None else dead_letter.payload.encode()
    report = ingest(session, [Message(dead_letter.topic, bytes(payload))], keep_dead_letters=False)
    # Stored (and audited) in English; pages show it through `render_stored()` in the reader's language.
    if report.dead_letters:
        outcome = fill(N_("refused again: %(reason)s"), reason=report.dead_letters[0])
    elif report.duplicates:
        outcome = N_("already stored: nothing to do")
    else:
        outcome = N_("accepted and billed") if report.billed else N_("accepted")
    dead_letter.replayed_at = utcnow()
    dead_letter.replay_outcome = outcome[:500]
    audit.record(session, "dead_letter.replay", dead_letter, new={"outcome": outcome})
    session.commit()
    return outcome


def dismiss_dead_letter(session: Session, dead_letter: DeadLetter, user_id: int | None) -> bool:
    """Set a message aside for good (garbage, a test device): it no longer counts as open, so it
    no longer holds back the archive of its month. Kept whole and audited; commits. False if it
    was not open."""
    if not dead_letter.open:
        return False
    dead_letter.dismissed_at, dead_letter.dismissed_by_user_id = utcnow(), user_id
    audit.record(session, "dead_letter.dismiss", dead_letter, new={"reason": dead_letter.reason})
    session.commit()
    return True


# --- steps --------------------------------------------------------------------------------


READABLE_PAYLOAD = 20_000  # characters of the readable copy; the raw bytes are kept whole


def _text(value: str, limit: int | None = None) -> str:
    """Text a PostgreSQL text column takes: NUL removed (it cannot store one), cut to `limit`."""
    value = value.replace("\x00", "")
    return value[:limit] if limit else value


def dead_letter_row(topic: str, payload: bytes | str, reason: str, serial: str | None,
                    received_at: datetime, reading_at: datetime | None = None) -> dict:
    """A dead letter's column values that always fit: raw bytes kept, text bounded and NUL-free."""
    raw = payload if isinstance(payload, bytes) else str(payload).encode("utf-8", "surrogateescape")
    return {"topic": _text(str(topic), 300), "raw_payload": raw,
            "payload": _text(raw.decode("utf-8", "replace"), READABLE_PAYLOAD),
            "reason": _text(str(reason), 500) or "refused",
            "meter_serial": _text(serial, 64) or None if serial else None, "received_at": received_at,
            "reading_at": reading_at}


def _dead(batch: _Batch, message: Message, reason: str, serial: str | None,
          reading_at: datetime | None = None) -> None:
    """Keep the refused message; `reading_at` (when decoded) ties it to its month for the archive."""
    batch.dead.append(dead_letter_row(message.topic, message.payload, reason, serial,
                                      message.received_at or batch.now, reading_at))


def _detached_reason(session: Session, meter: Meter) -> str:
    """Why a replaced meter's reading is refused: it no longer bills anything."""
    replaced_by = session.get(Meter, meter.replaced_by_meter_id) if meter.replaced_by_meter_id else None
    if replaced_by is not None:
        return fill(N_("meter %(meter)s was detached (replaced by meter %(new)s) at %(at)s: its readings are no "
                       "longer billed"), meter=meter.serial, new=replaced_by.serial, at=meter.detached_at.isoformat())
    return fill(N_("meter %(meter)s was detached (replaced) at %(at)s: its readings are no longer billed"),
                meter=meter.serial, at=meter.detached_at.isoformat())


def _stored_uplinks(session: Session, per_meter: dict[int, list[tuple[Message, DecodedReading]]]) -> set:
    """The batch's (meter, deduplicationId) pairs already stored: replayed ChirpStack uplinks."""
    wanted = {(meter_id, r.uplink_id) for meter_id, items in per_meter.items() for _, r in items if r.uplink_id}
    if not wanted:
        return set()
    rows = session.execute(select(Reading.meter_id, Reading.uplink_id).where(
        one_of(session, Reading.meter_id, {m for m, _ in wanted}),
        one_of(session, Reading.uplink_id, {u for _, u in wanted}, String))).all()
    return {(meter_id, uplink) for meter_id, uplink in rows} & wanted


def _archived_refusal(session: Session, batch: _Batch, at: datetime) -> str | None:
    """Why a reading of an archived month is refused (M8): its month lives in a file now."""
    if batch.archives is None:  # one query a batch
        batch.archives = {row.month: row for row in session.scalars(
            select(ReadingArchive).where(ReadingArchive.restored_at.is_(None)))}
    archive = batch.archives.get(at.astimezone(UTC).date().replace(day=1)) if batch.archives else None
    if archive is None:
        return None
    return (f"the readings of {archive.month:%Y-%m} are archived ({archive.file_name}): "
            "restore the month before adding readings to it")


def _alert(batch: _Batch, meter: Meter, kind: str, detail: str) -> None:
    batch.alerts.append({"meter_id": meter.id, "kind": kind, "detail": detail[:500],
                         "raised_at": batch.now})


def _decode_and_lock(session: Session, batch: _Batch, messages: list[Message]
                     ) -> tuple[list[tuple[Message, DecodedReading]], dict[tuple, Meter]]:
    """Decode each message (an undecodable one becomes a dead letter) and lock the meters they name."""
    profiles = get_setting(session, "chirpstack_profiles", default=None) or DEFAULT_PROFILES
    decoded: list[tuple[Message, DecodedReading]] = []
    for message in messages:
        try:
            decoded.append((message, decode(message.topic, message.payload, profiles)))
        except DecodeError as error:
            _dead(batch, message, str(error), None)
    return decoded, _lock_meters(session, decoded)


def _lock_meters(session: Session, decoded: list[tuple[Message, DecodedReading]]) -> dict[tuple, Meter]:
    """Load and row-lock the batch's meters (in id order: no deadlocks between workers)."""
    serials = {r.serial for _, r in decoded if r.serial}
    euis = {r.dev_eui for _, r in decoded if r.dev_eui}
    if not serials and not euis:
        return {}
    rows = session.scalars(
        select(Meter).where(or_(one_of(session, Meter.serial, serials, String),
                                one_of(session, Meter.dev_eui, euis, String)))
        .order_by(Meter.id).with_for_update().execution_options(populate_existing=True))
    found: dict[tuple, Meter] = {}
    for meter in rows:
        found[("serial", meter.serial)] = meter
        if meter.dev_eui:
            found[("eui", meter.dev_eui.lower())] = meter
    return found


def _walk(session: Session, batch: _Batch, report: IngestReport, meter: Meter, estate: Estate,
          items: list[tuple[Message, DecodedReading]], usual: Decimal | None) -> None:
    """Check one meter's readings in time order against its last register; plan rows and bills."""
    tz = estate.tz
    seen: set[datetime] = set()
    uplinks = {u for m, u in batch.stored_uplinks if m == meter.id}
    # The meter's latest reading as the walk advances (written back once, at the end).
    last_at, last_register = meter.last_reading_at, meter.last_register
    for message, reading in items:
        at, register = reading.taken_at, reading.register
        if at in seen or reading.uplink_id in uplinks:
            report.duplicates += 1
            continue
        seen.add(at)
        if reading.uplink_id:
            uplinks.add(reading.uplink_id)
        if last_at is not None and at <= last_at:
            _late(session, batch, report, meter, estate, message, reading)
            continue
        refusal = validation.register_refusal(last_register, register, meter=meter)
        if refusal:
            _dead(batch, message, refusal, meter.serial, at)
            _alert(batch, meter, "tamper", refusal)
            seen.discard(at)
            uplinks.discard(reading.uplink_id)
            continue
        consumption = None
        if last_register is not None:
            consumption = validation.consumption_between(last_register, register, meter)
            span = at - last_at
            for kind, flag in (("gap", validation.gap_flag(last_at, at, meter.interval_minutes)),
                               ("spike", validation.spike_flag(consumption, span, usual)),
                               ("rollover", validation.rollover_flag(last_register, register, meter))):
                if flag:
                    _alert(batch, meter, kind, flag)
            # Below zero only on net-metered meters: an export (M3).
            batch.spans.append(Span(meter, last_at, at, consumption))
        batch.readings.append({"meter_id": meter.id, "taken_at": at, "register": register,
                               "consumption": consumption, "received_at": message.received_at or batch.now,
                               "uplink_id": reading.uplink_id})
        rollups.add_to_buckets(batch.totals, meter.id, at, tz, consumption or Decimal(0))
        last_at, last_register = at, register
    if (last_at, last_register) != (meter.last_reading_at, meter.last_register):
        # Loaded values follow along without an ORM flush; _advance_meters writes them at once.
        set_committed_value(meter, "last_reading_at", last_at)
        set_committed_value(meter, "last_register", last_register)
        batch.advanced[meter.id] = (last_at, last_register)


def _late(session: Session, batch: _Batch, report: IngestReport, meter: Meter, estate: Estate,
          message: Message, reading: DecodedReading) -> None:
    """A reading older than the meter's latest: a duplicate, or one that splits a billed span."""
    at, register, tz = reading.taken_at, reading.register, estate.tz
    if session.scalar(select(Reading.id).where(Reading.meter_id == meter.id, Reading.taken_at == at)):
        report.duplicates += 1
        return
    if meter.history_before is not None and at < meter.history_before:
        # It would bill the rise up to the first billed reading: energy the vendor already sold.
        _dead(batch, message, fill(N_("timestamp %(at)s is before meter %(meter)s's billing start (%(start)s): "
                                      "readings before it are history, never billed"), at=at.isoformat(),
                                   meter=meter.serial, start=meter.history_before.isoformat()),
              meter.serial, at)
        return
    before = session.scalars(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at < at)
                             .order_by(Reading.taken_at.desc()).limit(1)).first()
    after = session.scalars(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at > at)
                            .order_by(Reading.taken_at).limit(1)).first()
    refusal = validation.late_register_refusal(before.register if before else None, register,
                                               after.register if after else None,
                                               after.consumption if after else None, meter=meter)
    if refusal:
        _dead(batch, message, refusal, meter.serial, at)
        _alert(batch, meter, "tamper", refusal)
        return
    plan = Reprice.before_split(session, batch, meter, estate, before, at, after)
    own = validation.consumption_between(before.register, register, meter) if before else None
    # Roll-ups change at once (not with the batch): spans billed later in this batch and the
    # re-pricing below read month positions that must include this reading.
    changes: dict = {}
    first_span = None
    if after is not None and after.consumption is None:
        # The later reading was the meter's first: its rise from this one was never billed.
        after.consumption = validation.consumption_between(register, after.register, meter)
        rollups.add_to_buckets(changes, meter.id, after.taken_at, tz, after.consumption, 0)
        first_span = Span(meter, at, after.taken_at, after.consumption, late=True)
        if plan is None:  # billed with the batch (units estates, or nothing to price it)
            batch.spans.append(first_span)
    elif after is not None and own is not None:
        # Already billed as part of the later reading's span: move the quantity.
        after.consumption -= own
        rollups.add_to_buckets(changes, meter.id, after.taken_at, tz, -own, 0)
        if plan is None:  # the new span (before, at] bills nothing more, but owes its month's standing charge
            batch.spans.append(Span(meter, before.taken_at, at, Decimal(0), late=True))
    session.add(Reading(meter_id=meter.id, taken_at=at, register=register, consumption=own,
                        received_at=message.received_at or batch.now, uplink_id=reading.uplink_id))
    rollups.add_to_buckets(changes, meter.id, at, tz, own or Decimal(0))
    session.flush()
    rollups.apply(session, changes)
    report.accepted += 1
    if plan is not None:
        plan.post_difference(session, batch, at, first_span)


_ADVANCE_METERS = text(
    "UPDATE meters SET last_reading_at = new.at, last_register = new.register"
    " FROM unnest(CAST(:ids AS integer[]), CAST(:ats AS timestamptz[]), CAST(:registers AS numeric[]))"
    " AS new(id, at, register) WHERE meters.id = new.id")


def _advance_meters(session: Session, advanced: dict[int, tuple[datetime, Decimal]]) -> None:
    """Store each meter's newest reading and register (one statement on PostgreSQL)."""
    if not advanced:
        return
    ids = sorted(advanced)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_ADVANCE_METERS, {"ids": pg_array(ids), "ats": pg_array(advanced[i][0] for i in ids),
                                          "registers": pg_array(advanced[i][1] for i in ids)})
        return
    table = Meter.__table__
    session.execute(table.update().where(table.c.id == bindparam("meter"))
                    .values(last_reading_at=bindparam("at"), last_register=bindparam("register")),
                    [{"meter": i, "at": advanced[i][0], "register": advanced[i][1]} for i in ids])


_READING_COLUMNS = ("meter_id", "taken_at", "register", "consumption", "received_at", "uplink_id")
# No conflict target: a replay clashes on (meter, time) or on (meter, deduplicationId).
_INSERT_READINGS = text(
    "INSERT INTO readings (meter_id, taken_at, register, consumption, received_at, uplink_id)"
    " SELECT * FROM unnest(CAST(:meter_id AS integer[]), CAST(:taken_at AS timestamptz[]),"
    " CAST(:register AS numeric[]), CAST(:consumption AS numeric[]), CAST(:received_at AS timestamptz[]),"
    " CAST(:uplink_id AS varchar[]))"
    " ON CONFLICT DO NOTHING RETURNING meter_id, taken_at")


def _insert_readings(session: Session, batch: _Batch) -> set[tuple[int, datetime]]:
    """Insert the in-order readings; return the (meter, timestamp) pairs that were new."""
    if not batch.readings:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_INSERT_READINGS, {
            name: pg_array([row[name] for row in batch.readings])
            for name in _READING_COLUMNS}).all()
        return {(meter_id, taken_at.astimezone(UTC)) for meter_id, taken_at in rows}
    from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = (dialect_insert(Reading).on_conflict_do_nothing()
                 .returning(Reading.meter_id, Reading.taken_at))
    rows = session.execute(statement, batch.readings).all()
    return {(meter_id, taken_at.astimezone(UTC)) for meter_id, taken_at in rows}



# --- history only (vendor backfills before go-live) ----------------------------------------


def _ingest_history(session: Session, messages: list[Message], *, now: datetime, keep_dead_letters: bool,
                    estate_ids: frozenset[int] | None) -> IngestReport:
    """Store readings older than each meter's billing start, unbilled; roll them up; the caller commits.

    Idempotent by the same (meter, timestamp) key. A reading that falls between stored history
    readings takes its share of the later one's consumption (nothing was billed there).
    """
    batch = _Batch(now=now)
    report = IngestReport()
    out_of_scope: set[int] = set()
    decoded, meters = _decode_and_lock(session, batch, messages)
    per_meter: dict[int, list[tuple[Message, DecodedReading]]] = defaultdict(list)
    by_id: dict[int, Meter] = {}
    for message, reading in decoded:
        meter = meters.get(("serial", reading.serial) if reading.serial else ("eui", reading.dev_eui))
        at = reading.taken_at
        if meter is None or (estate_ids is not None and meter.estate_id not in estate_ids):
            _dead(batch, message, fill(N_("unknown meter %(meter)s"), meter=reading.serial or reading.dev_eui),
                  reading.serial or reading.dev_eui, at)
            if meter is not None:
                out_of_scope.add(id(batch.dead[-1]))
            continue
        interval = meter.interval_minutes if meter.reports_on_boundaries else None
        # History is old by nature: only the future and the interval are checked, not MAX_AGE.
        refusal = ((validation.timestamp_refusal(at, batch.now) if at > batch.now else None)
                   or validation.interval_refusal(at, interval) or _archived_refusal(session, batch, at))
        if refusal:
            _dead(batch, message, refusal, meter.serial, at)
            continue
        per_meter[meter.id].append((message, reading))
        by_id[meter.id] = meter
    estates = {e.id: e for e in session.scalars(
        select(Estate).where(Estate.id.in_({m.estate_id for m in by_id.values()})))} if by_id else {}
    changes: dict = {}
    planned: list[tuple[dict, object]] = []  # (row, estate timezone)
    for meter_id, items in per_meter.items():
        meter = by_id[meter_id]
        start = billing_start(session, meter)
        if start is None:
            for message, reading in items:
                _dead(batch, message, fill(N_("meter %(meter)s has no billed reading yet: history-only ingest stores "
                                              "readings before the first billed one; import these normally"),
                                           meter=meter.serial),
                      meter.serial, reading.taken_at)
            continue
        items.sort(key=lambda item: item[1].taken_at)
        tz = estates[meter.estate_id].tz
        for row in _history_walk(session, batch, report, meter, start, items, changes, tz):
            planned.append((row, tz))
        if meter.history_before is None:
            meter.history_before = start
    batch.readings = [row for row, _ in planned]
    inserted = _insert_readings(session, batch)
    for row, tz in planned:
        if (row["meter_id"], row["taken_at"]) in inserted:
            rollups.add_to_buckets(changes, row["meter_id"], row["taken_at"], tz, row["consumption"] or Decimal(0))
    report.accepted = len(inserted)
    report.duplicates += len(planned) - len(inserted)
    rollups.apply(session, changes)
    report.dead_letters = [row["reason"] for row in batch.dead]
    kept = [row for row in batch.dead if id(row) not in out_of_scope]
    if kept and keep_dead_letters:
        session.execute(insert(DeadLetter), kept)
    session.flush()
    return report


def billing_start(session: Session, meter: Meter) -> datetime | None:
    """When the meter's billed readings begin: its remembered start, else its first stored reading."""
    if meter.history_before is not None:
        return meter.history_before
    first = session.scalar(select(Reading.taken_at).where(Reading.meter_id == meter.id)
                           .order_by(Reading.taken_at).limit(1))
    return first.astimezone(UTC) if first is not None else None


def _history_walk(session: Session, batch: _Batch, report: IngestReport, meter: Meter, start: datetime,
                  items: list[tuple[Message, DecodedReading]], changes: dict, tz) -> list[dict]:
    """One meter's history readings in time order among the stored history; the rows to insert.

    A stored history reading whose predecessor becomes a new one has its consumption recomputed
    (its roll-up moves by the difference, straight into `changes`).
    """
    keep = []
    for message, reading in items:
        if reading.taken_at >= start:
            _dead(batch, message, fill(N_("timestamp %(at)s is not before meter %(meter)s's billing start (%(start)s): "
                                          "history-only ingest stores older readings"),
                                       at=reading.taken_at.isoformat(), meter=meter.serial, start=start.isoformat()),
                  meter.serial, reading.taken_at)
        else:
            keep.append((message, reading))
    if not keep:
        return []
    low, high = keep[0][1].taken_at, keep[-1][1].taken_at
    stored = list(session.scalars(select(Reading).where(
        Reading.meter_id == meter.id, Reading.taken_at >= low, Reading.taken_at <= high).order_by(Reading.taken_at)))
    before = session.scalars(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at < low)
                             .order_by(Reading.taken_at.desc()).limit(1)).first()
    after = session.scalars(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at > high,
                                                  Reading.taken_at < start).order_by(Reading.taken_at).limit(1)).first()
    if after is not None:
        stored.append(after)
    stored_at = [row.taken_at.astimezone(UTC) for row in stored]
    rows: list[dict] = []
    previous = before.register if before is not None else None
    previous_is_new = False
    position = 0  # stored rows before the current item have been passed
    seen: set[datetime] = set()

    def pass_stored(until: datetime | None) -> None:
        nonlocal position, previous, previous_is_new
        while position < len(stored) and (until is None or stored_at[position] < until):
            row = stored[position]
            if previous_is_new:  # its span now starts at a new history reading
                own = validation.consumption_between(previous, row.register, meter)
                rollups.add_to_buckets(changes, meter.id, stored_at[position], tz, own - (row.consumption or 0), 0)
                row.consumption = own
            previous, previous_is_new = row.register, False
            position += 1

    for message, reading in keep:
        at, register = reading.taken_at, reading.register
        pass_stored(at)
        if at in seen or (position < len(stored) and stored_at[position] == at):
            report.duplicates += 1
            continue
        following = stored[position].register if position < len(stored) else None
        refusal = validation.late_register_refusal(previous, register, following, None, meter=meter)
        if refusal:
            _dead(batch, message, refusal, meter.serial, at)
            continue
        seen.add(at)
        consumption = validation.consumption_between(previous, register, meter) if previous is not None else None
        rows.append({"meter_id": meter.id, "taken_at": at, "register": register, "consumption": consumption,
                     "received_at": message.received_at or batch.now, "uplink_id": reading.uplink_id})
        previous, previous_is_new = register, True
    pass_stored(None)
    return rows
