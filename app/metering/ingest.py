"""The one readings pipeline (M1-M5, C6): decode, validate, store, bill, roll up, dead-letter.

`ingest(session, messages)` takes a batch from any source (MQTT worker, HTTP endpoint, a
replayed dead letter) and never commits: the caller commits the batch as one unit of work
and only then acknowledges the messages, so a crash re-delivers and the replay is harmless.

Order independence (several workers on a shared subscription): the batch's meters are row
locked, readings are unique per (meter, timestamp) and bills are keyed
`reading:<serial>:<timestamp>`. A reading that arrives after a later one ("late") falls
inside a span that was already billed; it splits the span's stored consumption, so the
quantity billed always equals the register's rise, whatever the order. Under time-of-use and
block tariffs the split changes the price: the affected spans are priced again as in-order
arrival would have priced them and the difference is posted as one adjustment keyed
`reprice:<serial>:<timestamp of the late reading>` (postings are never changed). On a
net-metered meter the split can also turn part of an import into an export (or back), which
moves money at the solar rate in any estate, units estates included: the same adjustment.

Block positions: a span starting at `s` is priced from the consumption rolled up in the local
month of `s` by readings up to `s` (a reading counts in the month its roll-up bucket is in).
Batched, unbatched and re-priced spans all follow this one rule, so the totals agree.
"""
from __future__ import annotations

import os
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ARRAY, Integer, String, any_, bindparam, func, insert, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.billing import charges, tariffs
from app.settings import get_setting, put_setting
from app.labels import label
from app.ledger import Entry, pg_array, post_many
from app.ledger.accounts import open_wallet, system_account
from app.metering import credit_control, rollups, validation
from app.metering.decoders import DEFAULT_PROFILES, DecodedReading, DecodeError, decode
from app.models import Account, Estate, Meter, Reading, Unit, Wallet, utcnow
from app.models.ingest import IngestHeartbeat
from app.models.metering import DeadLetter, MeterAlert
from app.money import UTILITY_UNITS, format_amount, quantize

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
class _Span:
    """Consumption to bill: the register's rise over (start, end] on one meter.

    Every span, even one with nothing to bill, carries the standing charge of the local month
    its end falls in (once per meter and month), so which months are charged depends on the
    readings a meter sent, never on the order they arrived in.
    """

    meter: Meter
    start: datetime
    end: datetime
    quantity: Decimal
    late: bool = False  # billed on a later reading's key because an earlier one arrived after it


@dataclass
class _Batch:
    now: datetime
    readings: list[dict] = field(default_factory=list)
    spans: list[_Span] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)
    dead: list[dict] = field(default_factory=list)
    advanced: dict[int, tuple[datetime, Decimal]] = field(default_factory=dict)
    entries: list[Entry] = field(default_factory=list)  # late readings' bills and re-pricings
    prices: dict[tuple[int, str], list] = field(default_factory=dict)
    stored_uplinks: set[tuple[int, str]] = field(default_factory=set)  # (meter id, deduplicationId) already kept


def ingest(session: Session, messages: list[Message], *, now: datetime | None = None,
           keep_dead_letters: bool = True) -> IngestReport:
    """Run a batch of raw messages through the pipeline; the caller commits."""
    batch = _Batch(now=now or utcnow())
    report = IngestReport()
    profiles = get_setting(session, "chirpstack_profiles", default=None) or DEFAULT_PROFILES
    decoded: list[tuple[Message, DecodedReading]] = []
    for message in messages:
        try:
            decoded.append((message, decode(message.topic, message.payload, profiles)))
        except DecodeError as error:
            _dead(batch, message, str(error), None)
    meters = _lock_meters(session, decoded)
    estates = {e.id: e for e in session.scalars(
        select(Estate).where(Estate.id.in_({m.estate_id for m in meters.values()})))}
    per_meter: dict[int, list[tuple[Message, DecodedReading]]] = defaultdict(list)
    by_id: dict[int, Meter] = {}
    for message, reading in decoded:
        meter = meters.get(("serial", reading.serial) if reading.serial else ("eui", reading.dev_eui))
        if meter is None:
            _dead(batch, message, f"unknown meter {reading.serial or reading.dev_eui}",
                  reading.serial or reading.dev_eui)
            continue
        # Only meters that stamp readings on their boundaries are held to them (LoRaWAN
        # devices send on free-running timers and are billed at their own times).
        interval = meter.interval_minutes if meter.reports_on_boundaries else None
        refusal = (validation.timestamp_refusal(reading.taken_at, batch.now)
                   or validation.interval_refusal(reading.taken_at, interval))
        if refusal:
            _dead(batch, message, refusal, meter.serial)
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
    _advance_meters(session, batch.advanced)
    report.duplicates += len(batch.readings) - len(inserted)
    report.accepted += len(inserted)
    spans = [s for s in batch.spans if s.late or (s.meter.id, s.end) in inserted]
    touched = _bill(session, batch, report, spans, estates)
    rollups.apply(session, batch.totals)
    if batch.alerts:
        session.execute(insert(MeterAlert), batch.alerts)
    report.alerts = len(batch.alerts)
    report.dead_letters = [row["reason"] for row in batch.dead]
    if batch.dead and keep_dead_letters:
        session.execute(insert(DeadLetter), batch.dead)
    session.flush()
    if touched:
        credit_control.after_pocket_change(session, touched)
    return report


def ingest_paused(session: Session) -> bool:
    """Whether maintenance mode (M7) holds ingest."""
    return bool(get_setting(session, MAINTENANCE_KEY, default=False))


def set_maintenance(session: Session, on: bool) -> None:
    """Switch maintenance mode; the caller commits."""
    put_setting(session, MAINTENANCE_KEY, bool(on))


def record_heartbeat(session: Session, client_id: str, *, started_at: datetime, connected: bool, paused: bool,
                     backlog: int, last_batch_at: datetime | None, last_batch_size: int, readings: int,
                     stopped: bool = False) -> None:
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
    """Run a dead letter through the pipeline again; record and return the outcome."""
    payload = dead_letter.raw_payload if dead_letter.raw_payload is not None else dead_letter.payload.encode()
    report = ingest(session, [Message(dead_letter.topic, bytes(payload))], keep_dead_letters=False)
    if report.dead_letters:
        outcome = f"refused again: {report.dead_letters[0]}"
    elif report.duplicates:
        outcome = "already stored: nothing to do"
    else:
        outcome = "accepted" + (" and billed" if report.billed else "")
    dead_letter.replayed_at = utcnow()
    dead_letter.replay_outcome = outcome[:500]
    return outcome


# --- steps --------------------------------------------------------------------------------


def one_of(session: Session, column, values, item_type=Integer):
    """`column IN values`; on PostgreSQL `= ANY(:array)`, one parameter whatever the count."""
    # Hundreds of expanded IN parameters made psycopg re-parse each statement: most of a batch.
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam("values", list(values), type_=ARRAY(item_type), unique=True))
    return column.in_(list(values))


READABLE_PAYLOAD = 20_000  # characters of the readable copy; the raw bytes are kept whole


def _text(value: str, limit: int | None = None) -> str:
    """Text a PostgreSQL text column takes: NUL removed (it cannot store one), cut to `limit`."""
    value = value.replace("\x00", "")
    return value[:limit] if limit else value


def dead_letter_row(topic: str, payload: bytes | str, reason: str, serial: str | None,
                    received_at: datetime) -> dict:
    """A dead letter's column values that always fit: raw bytes kept, text bounded and NUL-free."""
    raw = payload if isinstance(payload, bytes) else str(payload).encode("utf-8", "surrogateescape")
    return {"topic": _text(str(topic), 300), "raw_payload": raw,
            "payload": _text(raw.decode("utf-8", "replace"), READABLE_PAYLOAD),
            "reason": _text(str(reason), 500) or "refused",
            "meter_serial": _text(serial, 64) or None if serial else None, "received_at": received_at}


def _dead(batch: _Batch, message: Message, reason: str, serial: str | None) -> None:
    batch.dead.append(dead_letter_row(message.topic, message.payload, reason, serial,
                                      message.received_at or batch.now))


def _stored_uplinks(session: Session, per_meter: dict[int, list[tuple[Message, DecodedReading]]]) -> set:
    """The batch's (meter, deduplicationId) pairs already stored: replayed ChirpStack uplinks."""
    wanted = {(meter_id, r.uplink_id) for meter_id, items in per_meter.items() for _, r in items if r.uplink_id}
    if not wanted:
        return set()
    rows = session.execute(select(Reading.meter_id, Reading.uplink_id).where(
        one_of(session, Reading.meter_id, {m for m, _ in wanted}),
        one_of(session, Reading.uplink_id, {u for _, u in wanted}, String))).all()
    return {(meter_id, uplink) for meter_id, uplink in rows} & wanted


def _alert(batch: _Batch, meter: Meter, kind: str, detail: str) -> None:
    batch.alerts.append({"meter_id": meter.id, "kind": kind, "detail": detail[:500],
                         "raised_at": batch.now})


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
            _dead(batch, message, refusal, meter.serial)
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
            batch.spans.append(_Span(meter, last_at, at, consumption))
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
    before = session.scalars(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at < at)
                             .order_by(Reading.taken_at.desc()).limit(1)).first()
    after = session.scalars(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at > at)
                            .order_by(Reading.taken_at).limit(1)).first()
    refusal = validation.late_register_refusal(before.register if before else None, register,
                                               after.register if after else None,
                                               after.consumption if after else None, meter=meter)
    if refusal:
        _dead(batch, message, refusal, meter.serial)
        _alert(batch, meter, "tamper", refusal)
        return
    plan = _Reprice.before_split(session, batch, meter, estate, before, at, after)
    own = validation.consumption_between(before.register, register, meter) if before else None
    # Roll-ups change at once (not with the batch): spans billed later in this batch and the
    # re-pricing below read month positions that must include this reading.
    changes: dict = {}
    first_span = None
    if after is not None and after.consumption is None:
        # The later reading was the meter's first: its rise from this one was never billed.
        after.consumption = validation.consumption_between(register, after.register, meter)
        rollups.add_to_buckets(changes, meter.id, after.taken_at, tz, after.consumption, 0)
        first_span = _Span(meter, at, after.taken_at, after.consumption, late=True)
        if plan is None:  # billed with the batch (units estates, or nothing to price it)
            batch.spans.append(first_span)
    elif after is not None and own is not None:
        # Already billed as part of the later reading's span: move the quantity.
        after.consumption -= own
        rollups.add_to_buckets(changes, meter.id, after.taken_at, tz, -own, 0)
        if plan is None:  # the new span (before, at] bills nothing more, but owes its month's standing charge
            batch.spans.append(_Span(meter, before.taken_at, at, Decimal(0), late=True))
    session.add(Reading(meter_id=meter.id, taken_at=at, register=register, consumption=own,
                        received_at=message.received_at or batch.now, uplink_id=reading.uplink_id))
    rollups.add_to_buckets(changes, meter.id, at, tz, own or Decimal(0))
    session.flush()
    rollups.apply(session, changes)
    report.accepted += 1
    if plan is not None:
        plan.post_difference(session, batch, at, first_span)


class _Reprice:
    """What a late reading changes in money: the spans around it, priced before and after."""

    def __init__(self, meter: Meter, estate: Estate, pocket: Account, counterpart: Account, versions: list,
                 window: tuple[datetime, datetime], position: Decimal, old: Decimal) -> None:
        self.meter, self.estate, self.pocket, self.versions = meter, estate, pocket, versions
        self.counterpart = counterpart  # revenue, or units issued in units estates
        self.window, self.position, self.old = window, position, old
        self.split_end = window[1]  # the reading after the late one: the adjustment's moment
        self.ends: list[datetime] = []  # the window's span ends: each owes its month's standing charge

    @classmethod
    def before_split(cls, session: Session, batch: _Batch, meter: Meter, estate: Estate,
                     before: Reading | None, at: datetime, after: Reading | None) -> _Reprice | None:
        """Price the stored spans the late reading will touch, or None when money cannot change."""
        units_mode = estate.wallet_denomination == "units"
        if after is None or meter.unit_id is None or meter.role != "unit" \
                or (units_mode and not meter.bidirectional):
            return None  # units estates bill quantities: a split moves none, unless it moves an export
        if (estate.id, meter.utility) not in batch.prices:
            batch.prices[(estate.id, meter.utility)] = tariffs.load_prices(
                session, {estate.id}).get((estate.id, meter.utility), [])
        versions = batch.prices[(estate.id, meter.utility)]
        if not versions and not units_mode:
            return None
        pocket = _pockets(session, {(meter.unit_id, meter.utility)}).get((meter.unit_id, meter.utility))
        if pocket is None:
            return None
        start = before.taken_at if before is not None else at
        end = after.taken_at
        if any(p.kind == "block" for p in versions):
            # Moving consumption between months, or adding a first span, shifts the block
            # position of every later span in the month of `after`: price those too.
            month_end = _month_start(after.taken_at - _TICK, estate.tz, months=1)
            following = session.scalar(select(Reading.taken_at).where(
                Reading.meter_id == meter.id, Reading.taken_at >= month_end).order_by(Reading.taken_at).limit(1))
            end = following or session.scalar(select(Reading.taken_at).where(
                Reading.meter_id == meter.id).order_by(Reading.taken_at.desc()).limit(1))
            position = _position(session, meter, estate, start)
        else:
            position = Decimal(0)  # flat and time-of-use prices do not depend on it
        plan = cls(meter, estate, pocket, _counterpart(session, estate, meter.utility), versions, (start, end),
                   position, Decimal(0))
        plan.old, plan.split_end = plan._priced(session), after.taken_at
        return plan

    def _value(self, start: datetime, end: datetime, quantity: Decimal, position: Decimal) -> Decimal | None:
        """What one span takes from the pocket, in its terms: the bill, or minus an export's
        credit (as `_bill` posts them); None when no tariff prices the consumption."""
        if quantity < 0:
            return -charges.export_credit(self.estate, self.pocket, self.versions, end, -quantity)[0]
        if self.estate.wallet_denomination == "units":
            return quantize(quantity, self.pocket.commodity)
        return _price_span(self.versions, self.estate, start, end, quantity, position)

    def _priced(self, session: Session) -> Decimal:
        """The stored spans in the window priced as in-order arrival prices them."""
        rows = session.execute(select(Reading.taken_at, Reading.consumption).where(
            Reading.meter_id == self.meter.id, Reading.taken_at >= self.window[0],
            Reading.taken_at <= self.window[1]).order_by(Reading.taken_at)).all()
        tz, total = self.estate.tz, Decimal(0)
        positions: dict[date, Decimal] = defaultdict(Decimal)
        self.ends = []
        if rows:
            positions[_month_of_span(rows[0][0], tz)] = self.position
        for (start, _), (end, consumption) in zip(rows, rows[1:]):
            self.ends.append(end)
            if consumption:
                amount = self._value(start, end, consumption, positions[_month_of_span(start, tz)])
                total += amount or Decimal(0)
            positions[_month_of_reading(end, tz)] += consumption or Decimal(0)
        return total

    def post_difference(self, session: Session, batch: _Batch, at: datetime, first_span: _Span | None) -> None:
        """Queue what brings the billed total to the in-order total: a bill for a span nobody
        billed (the meter's first reading got an earlier one) and an adjustment for the rest."""
        difference = self._priced(session) - self.old
        meter, estate, counterpart = self.meter, self.estate, self.counterpart
        if first_span is not None:
            # In-order arrival bills this span at the month position of its start: the window's.
            amount = self._value(first_span.start, first_span.end, first_span.quantity, self.position)
            if amount is None:
                _alert(batch, meter, "no_tariff", f"{format_amount(first_span.quantity, UTILITY_UNITS[meter.utility])}"
                       f" to {first_span.end.isoformat()} not billed: no tariff")
            elif first_span.quantity < 0:
                batch.entries += charges.export_credit_entries(estate, meter, self.pocket, counterpart, self.versions,
                                                               first_span.end, -first_span.quantity)
                difference -= amount
            elif amount:
                batch.entries.append(_consumption_entry(estate, meter, self.pocket, counterpart, first_span, amount))
                difference -= amount
        # Keyed per meter and month: the months already charged replay and post nothing.
        for end in self.ends:
            batch.entries += _standing_charge(estate, meter, self.pocket, counterpart, self.versions, end)
        if difference == 0:
            return
        moment = at.astimezone(UTC)
        batch.entries.append(Entry(
            estate_id=estate.id, kind="adjustment", idempotency_key=f"reprice:{meter.serial}:{moment.isoformat()}",
            legs=[(self.pocket.id, -difference), (counterpart.id, difference)], occurred_at=self.split_end,
            memo=f"{label('utility', meter.utility)} re-priced on meter {meter.serial}: "
                 f"late reading at {moment:%Y-%m-%d %H:%M} UTC",
        ))


_TICK = timedelta(microseconds=1)


def _month_start(moment: datetime, tz, months: int = 0) -> datetime:
    """The start (an instant) of the local month `moment` falls in, `months` later."""
    local = moment.astimezone(tz)
    year, month = divmod(local.year * 12 + local.month - 1 + months, 12)
    return datetime(year, month + 1, 1, tzinfo=tz).astimezone(UTC)


def _month_of_span(start: datetime, tz) -> date:
    """The local month a span starting at `start` takes its block position from."""
    return start.astimezone(tz).date().replace(day=1)


def _month_of_reading(moment: datetime, tz) -> date:
    """The local month a reading's consumption is rolled up in (a boundary closes the month before)."""
    return (moment - _TICK).astimezone(tz).date().replace(day=1)


def _position(session: Session, meter: Meter, estate: Estate, start: datetime) -> Decimal:
    """Consumption of the readings in the local month of `start`, up to `start`."""
    since = _month_start(start, estate.tz)
    return session.scalar(select(func.coalesce(func.sum(Reading.consumption), 0)).where(
        Reading.meter_id == meter.id, Reading.taken_at > since, Reading.taken_at <= start)) or Decimal(0)


def _price_span(versions: list, estate: Estate, start: datetime, end: datetime, quantity: Decimal,
                position: Decimal) -> Decimal | None:
    """A span's charge rounded once, from the block position given; None when no tariff covers it."""
    tz = estate.tz
    if not versions:
        return None
    first_day = start.astimezone(tz).date()
    price = tariffs.price_on(versions, first_day)
    if price is None:
        return None
    if price.kind == "flat" and price is tariffs.price_on(versions, end.astimezone(tz).date()):
        # One flat rate over the whole span: what charge() adds up piece by piece, in one step.
        return quantize(quantity * Decimal(price.rates["rate"]), estate.currency)
    return quantize(tariffs.charge(versions, tz, start, end, quantity, {_month_of_span(start, tz): position}),
                    estate.currency)


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


def _bill(session: Session, batch: _Batch, report: IngestReport, spans: list[_Span],
          estates: dict[int, Estate]) -> list[int]:
    """Price each span and post the charges through the ledger; return the pockets charged."""
    spans = [s for s in spans if s.meter.unit_id is not None and s.meter.role == "unit"]
    if not spans and not batch.entries:
        return []
    pockets = _pockets(session, {(s.meter.unit_id, s.meter.utility) for s in spans}) if spans else {}
    prices = tariffs.load_prices(session, {s.meter.estate_id for s in spans}) if spans else {}
    blocks = [s for s in spans if any(p.kind == "block" for p in prices.get((s.meter.estate_id, s.meter.utility), ()))]
    used = _used_in_month(session, blocks, estates)
    counterparts: dict[tuple[int, str], Account] = {}
    zones = {estate_id: estate.tz for estate_id, estate in estates.items()}
    entries: list[Entry] = []
    for span in spans:
        meter, estate = span.meter, estates[span.meter.estate_id]
        tz = zones[estate.id]
        pocket = pockets.get((meter.unit_id, meter.utility))
        if pocket is None:
            continue
        units_mode = estate.wallet_denomination == "units"
        if (estate.id, meter.utility) not in counterparts:
            counterparts[(estate.id, meter.utility)] = _counterpart(session, estate, meter.utility)
        counterpart = counterparts[(estate.id, meter.utility)]
        versions = prices.get((estate.id, meter.utility)) or []
        entries += _standing_charge(estate, meter, pocket, counterpart, versions, span.end)
        if span.quantity < 0:  # a net-metered export: credited at the solar rate (C5)
            used[meter.id][_month_of_reading(span.end, tz)] += span.quantity  # as roll-ups count it
            entries += charges.export_credit_entries(estate, meter, pocket, counterpart, versions,
                                                     span.end, -span.quantity)
            continue
        if span.quantity == 0:
            continue
        if units_mode:
            amount = quantize(span.quantity, pocket.commodity)
        else:
            positions = used[meter.id]
            amount = _price_span(versions, estate, span.start, span.end, span.quantity,
                                 positions[_month_of_span(span.start, tz)])
            # The next span's position counts this one where roll-ups count it.
            positions[_month_of_reading(span.end, tz)] += span.quantity
            if amount is None:
                _alert(batch, meter, "no_tariff", f"{format_amount(span.quantity, UTILITY_UNITS[meter.utility])}"
                       f" to {span.end.isoformat()} not billed: no tariff")
                continue
        if amount == 0:
            continue
        entries.append(_consumption_entry(estate, meter, pocket, counterpart, span, amount))
    entries = _without_repeats(entries + batch.entries)
    posted = post_many(session, entries)
    report.billed += sum(1 for e, p in zip(entries, posted, strict=True) if p.created and e.kind == "consumption")
    report.repriced += sum(1 for e, p in zip(entries, posted, strict=True) if p.created and e.kind == "adjustment")
    # Credit control only looks at pockets in estates that switched it on.
    charged = {pockets[(s.meter.unit_id, s.meter.utility)].id for s in spans
               if (s.meter.unit_id, s.meter.utility) in pockets
               and estates[s.meter.estate_id].feature_enabled("credit_control")}
    return sorted(charged | {e.legs[0][0] for e in batch.entries
                             if estates[e.estate_id].feature_enabled("credit_control")})


def _counterpart(session: Session, estate: Estate, utility: str) -> Account:
    """Where a pocket's charges go: revenue, or the units-issued account in units estates."""
    if estate.wallet_denomination == "units":
        return system_account(session, estate, "units_issued", utility, utility=utility,
                              commodity=UTILITY_UNITS[utility])
    return system_account(session, estate, "revenue", utility, utility=utility)


def _without_repeats(entries: list[Entry]) -> list[Entry]:
    """Drop exact repeats (a meter's standing charge for the month comes with each of its spans)."""
    # The ledger would replay them anyway, after validating each: a third of a batch's entries.
    seen: dict[str, tuple] = {}
    kept = []
    for entry in entries:
        legs = tuple(entry.legs)
        if seen.get(entry.idempotency_key) == legs:
            continue
        seen.setdefault(entry.idempotency_key, legs)
        kept.append(entry)
    return kept


def _consumption_entry(estate: Estate, meter: Meter, pocket: Account, counterpart: Account, span: _Span,
                       amount: Decimal) -> Entry:
    """The bill for one span, keyed by the reading that closed it."""
    quantity_text = format_amount(span.quantity, UTILITY_UNITS[meter.utility])
    return Entry(
        estate_id=estate.id, kind="consumption",
        idempotency_key=f"reading:{meter.serial}:{span.end.astimezone(UTC).isoformat()}",
        legs=[(pocket.id, -amount), (counterpart.id, amount)], occurred_at=span.end,
        memo=f"{label('utility', meter.utility)} {quantity_text} on meter {meter.serial}",
    )


def _standing_charge(estate: Estate, meter: Meter, pocket: Account, revenue: Account,
                     versions: list, moment: datetime) -> list[Entry]:
    """The month's standing charge, once per meter and local month, in money or in units."""
    return charges.standing_charge_entries(estate, meter, pocket, revenue, versions, moment)


def _pockets(session: Session, wanted: set[tuple[int, str]]) -> dict[tuple[int, str], Account]:
    """The pockets by (unit id, utility) of the meters billed; missing ones are opened (on demand)."""
    unit_ids = {unit_id for unit_id, _ in wanted}
    rows = session.execute(select(Wallet.unit_id, Account).join(Account, Account.wallet_id == Wallet.id)
                           .where(one_of(session, Wallet.unit_id, unit_ids))).all()
    found = {(unit_id, account.utility): account for unit_id, account in rows}
    for unit_id in sorted({u for u, _ in wanted - set(found)}):
        missing = tuple(utility for u, utility in sorted(wanted - set(found)) if u == unit_id)
        wallet = open_wallet(session, session.get(Unit, unit_id), missing)
        found.update({(unit_id, pocket.utility): pocket for pocket in wallet.pockets})
    return found


def _used_in_month(session: Session, spans: list[_Span], estates: dict[int, Estate]) -> dict[int, dict[date, Decimal]]:
    """Consumption already rolled up per meter and local month, for inclining blocks."""
    wanted: set[tuple[int, datetime]] = set()
    for span in spans:
        tz = estates[span.meter.estate_id].tz
        for month in (_month_of_span(span.start, tz), _month_of_reading(span.end, tz)):
            wanted.add((span.meter.id, datetime(month.year, month.month, 1, tzinfo=tz).astimezone(UTC)))
    stored = rollups.month_totals(session, wanted)
    used: dict[int, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    estate_of = {span.meter.id: span.meter.estate_id for span in spans}
    for (meter_id, start), total in stored.items():
        used[meter_id][start.astimezone(estates[estate_of[meter_id]].tz).date()] = total
    return used
