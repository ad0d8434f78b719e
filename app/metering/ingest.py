"""The one readings pipeline (M1-M5, C6): decode, validate, store, bill, roll up, dead-letter.

`ingest(session, messages)` takes a batch from any source (MQTT worker, HTTP endpoint, a
replayed dead letter) and never commits: the caller commits the batch as one unit of work
and only then acknowledges the messages, so a crash re-delivers and the replay is harmless.

Order independence (several workers on a shared subscription): the batch's meters are row
locked, readings are unique per (meter, timestamp) and bills are keyed
`reading:<serial>:<timestamp>`. A reading that arrives after a later one ("late") falls
inside a span that was already billed; it splits the span's stored consumption and posts
nothing, so the money billed always equals the register's rise, whatever the order.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ARRAY, Integer, String, any_, bindparam, insert, or_, select, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.billing import tariffs
from app.estates import get_setting, put_setting
from app.ledger import Entry, post_many
from app.ledger.accounts import open_wallet, system_account
from app.metering import credit_control, rollups, validation
from app.metering.decoders import DEFAULT_PROFILES, DecodedReading, DecodeError, decode
from app.models import Account, Estate, Meter, Reading, Unit, Wallet, utcnow
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


@dataclass
class _Span:
    """Consumption to bill: the register's rise over (start, end] on one meter."""

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
        refusal = (validation.timestamp_refusal(reading.taken_at, batch.now)
                   or validation.interval_refusal(reading.taken_at, meter.interval_minutes))
        if refusal:
            _dead(batch, message, refusal, meter.serial)
            continue
        per_meter[meter.id].append((message, reading))
        by_id[meter.id] = meter
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


def replay_dead_letter(session: Session, dead_letter: DeadLetter) -> str:
    """Run a dead letter through the pipeline again; record and return the outcome."""
    report = ingest(session, [Message(dead_letter.topic, dead_letter.payload.encode())],
                    keep_dead_letters=False)
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


def _dead(batch: _Batch, message: Message, reason: str, serial: str | None) -> None:
    payload = message.payload.decode("utf-8", "replace") if isinstance(message.payload, bytes) \
        else str(message.payload)
    batch.dead.append({"topic": message.topic[:300], "payload": payload, "reason": reason[:500],
                       "meter_serial": serial, "received_at": message.received_at or batch.now})


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
    for message, reading in items:
        at, register = reading.taken_at, reading.register
        if at in seen:
            report.duplicates += 1
            continue
        seen.add(at)
        if meter.last_reading_at is not None and at <= meter.last_reading_at:
            _late(session, batch, report, meter, tz, message, reading)
            continue
        refusal = validation.register_refusal(meter.last_register, register)
        if refusal:
            _dead(batch, message, refusal, meter.serial)
            _alert(batch, meter, "tamper", refusal)
            seen.discard(at)
            continue
        consumption = None
        if meter.last_register is not None:
            consumption = register - meter.last_register
            span = at - meter.last_reading_at
            for kind, flag in (("gap", validation.gap_flag(meter.last_reading_at, at, meter.interval_minutes)),
                               ("spike", validation.spike_flag(consumption, span, usual))):
                if flag:
                    _alert(batch, meter, kind, flag)
            if consumption > 0:
                batch.spans.append(_Span(meter, meter.last_reading_at, at, consumption))
        batch.readings.append({"meter_id": meter.id, "taken_at": at, "register": register,
                               "consumption": consumption, "received_at": message.received_at or batch.now})
        rollups.add_to_buckets(batch.totals, meter.id, at, tz, consumption or Decimal(0))
        # Loaded values follow along without an ORM flush; _advance_meters writes them at once.
        set_committed_value(meter, "last_reading_at", at)
        set_committed_value(meter, "last_register", register)
        batch.advanced[meter.id] = (at, register)


def _late(session: Session, batch: _Batch, report: IngestReport, meter: Meter, tz,
          message: Message, reading: DecodedReading) -> None:
    """A reading older than the meter's latest: a duplicate, or one that splits a billed span."""
    at, register = reading.taken_at, reading.register
    if session.scalar(select(Reading.id).where(Reading.meter_id == meter.id, Reading.taken_at == at)):
        report.duplicates += 1
        return
    before = session.scalars(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at < at)
                             .order_by(Reading.taken_at.desc()).limit(1)).first()
    after = session.scalars(select(Reading).where(Reading.meter_id == meter.id, Reading.taken_at > at)
                            .order_by(Reading.taken_at).limit(1)).first()
    refusal = validation.register_refusal(before.register if before else None, register,
                                          after.register if after else None)
    if refusal:
        _dead(batch, message, refusal, meter.serial)
        _alert(batch, meter, "tamper", refusal)
        return
    own = register - before.register if before else None
    if after is not None and after.consumption is None:
        # The later reading was the meter's first: its rise from this one was never billed.
        after.consumption = after.register - register
        if after.consumption > 0:
            batch.spans.append(_Span(meter, at, after.taken_at, after.consumption, late=True))
        rollups.add_to_buckets(batch.totals, meter.id, after.taken_at, tz, after.consumption, 0)
    elif after is not None and own is not None:
        # Already billed as part of the later reading's span: move the quantity, post nothing.
        after.consumption -= own
        rollups.add_to_buckets(batch.totals, meter.id, after.taken_at, tz, -own, 0)
    session.add(Reading(meter_id=meter.id, taken_at=at, register=register, consumption=own,
                        received_at=message.received_at or batch.now))
    session.flush()
    report.accepted += 1
    rollups.add_to_buckets(batch.totals, meter.id, at, tz, own or Decimal(0))


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
        session.execute(_ADVANCE_METERS, {"ids": ids, "ats": [advanced[i][0] for i in ids],
                                          "registers": [advanced[i][1] for i in ids]})
        return
    table = Meter.__table__
    session.execute(table.update().where(table.c.id == bindparam("meter"))
                    .values(last_reading_at=bindparam("at"), last_register=bindparam("register")),
                    [{"meter": i, "at": advanced[i][0], "register": advanced[i][1]} for i in ids])


_INSERT_READINGS = text(
    "INSERT INTO readings (meter_id, taken_at, register, consumption, received_at)"
    " SELECT * FROM unnest(CAST(:meter_id AS integer[]), CAST(:taken_at AS timestamptz[]),"
    " CAST(:register AS numeric[]), CAST(:consumption AS numeric[]), CAST(:received_at AS timestamptz[]))"
    " ON CONFLICT (meter_id, taken_at) DO NOTHING RETURNING meter_id, taken_at")


def _insert_readings(session: Session, batch: _Batch) -> set[tuple[int, datetime]]:
    """Insert the in-order readings; return the (meter, timestamp) pairs that were new."""
    if not batch.readings:
        return set()
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_INSERT_READINGS, {
            name: [row[name] for row in batch.readings]
            for name in ("meter_id", "taken_at", "register", "consumption", "received_at")}).all()
        return {(meter_id, taken_at.astimezone(UTC)) for meter_id, taken_at in rows}
    from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = (dialect_insert(Reading).on_conflict_do_nothing(index_elements=["meter_id", "taken_at"])
                 .returning(Reading.meter_id, Reading.taken_at))
    rows = session.execute(statement, batch.readings).all()
    return {(meter_id, taken_at.astimezone(UTC)) for meter_id, taken_at in rows}


def _bill(session: Session, batch: _Batch, report: IngestReport, spans: list[_Span],
          estates: dict[int, Estate]) -> list[int]:
    """Price each span and post the charges through the ledger; return the pockets charged."""
    spans = [s for s in spans if s.meter.unit_id is not None and s.meter.role == "unit"]
    if not spans:
        return []
    pockets = _pockets(session, {s.meter.unit_id for s in spans})
    prices = tariffs.load_prices(session, {s.meter.estate_id for s in spans})
    blocks = [s for s in spans if any(p.kind == "block" for p in prices.get((s.meter.estate_id, s.meter.utility), ()))]
    used = _used_in_month(session, blocks, estates)
    counterparts: dict[tuple[int, str], Account] = {}
    entries: list[Entry] = []
    for span in spans:
        meter, estate = span.meter, estates[span.meter.estate_id]
        pocket = pockets.get((meter.unit_id, meter.utility))
        if pocket is None:
            continue
        units_mode = estate.wallet_denomination == "units"
        kind = "units_issued" if units_mode else "revenue"
        if (estate.id, meter.utility, kind) not in counterparts:
            counterparts[(estate.id, meter.utility, kind)] = system_account(
                session, estate, kind, meter.utility, utility=meter.utility,
                commodity=UTILITY_UNITS[meter.utility] if units_mode else None)
        counterpart = counterparts[(estate.id, meter.utility, kind)]
        quantity_text = format_amount(span.quantity, UTILITY_UNITS[meter.utility])
        if units_mode:
            amount = quantize(span.quantity, pocket.commodity)
        else:
            versions = prices.get((estate.id, meter.utility))
            if not versions or tariffs.price_on(versions, span.start.astimezone(estate.tz).date()) is None:
                _alert(batch, meter, "no_tariff", f"{quantity_text} to {span.end.isoformat()} not billed: no tariff")
                continue
            amount = quantize(tariffs.charge(versions, estate.tz, span.start, span.end, span.quantity,
                                             used[meter.id]), estate.currency)
            entries += _standing_charge(estate, meter, pocket, counterpart, versions, span.end)
        if amount == 0:
            continue
        entries.append(Entry(
            estate_id=estate.id, kind="consumption",
            idempotency_key=f"reading:{meter.serial}:{span.end.astimezone(UTC).isoformat()}",
            legs=[(pocket.id, -amount), (counterpart.id, amount)], occurred_at=span.end,
            memo=f"{meter.utility.replace('_', ' ').capitalize()} {quantity_text} on meter {meter.serial}",
        ))
    posted = post_many(session, entries)
    report.billed += sum(1 for e, p in zip(entries, posted, strict=True) if p.created and e.kind == "consumption")
    # Credit control only looks at pockets in estates that switched it on.
    return sorted({pockets[(s.meter.unit_id, s.meter.utility)].id for s in spans
                   if (s.meter.unit_id, s.meter.utility) in pockets
                   and estates[s.meter.estate_id].feature_enabled("credit_control")})


def _standing_charge(estate: Estate, meter: Meter, pocket: Account, revenue: Account,
                     versions: list, moment: datetime) -> list[Entry]:
    """The month's standing charge, once per meter and local month (keyed, so replays are free)."""
    local = moment.astimezone(estate.tz)
    price = tariffs.price_on(versions, local.date())
    amount = quantize(price.standing_charge, estate.currency) if price else Decimal(0)
    if amount <= 0:
        return []
    return [Entry(estate_id=estate.id, kind="standing_charge",
                  idempotency_key=f"standing:{meter.serial}:{local:%Y-%m}",
                  legs=[(pocket.id, -amount), (revenue.id, amount)], occurred_at=moment,
                  memo=f"{meter.utility.replace('_', ' ').capitalize()} standing charge {local:%b %Y}")]


def _pockets(session: Session, unit_ids: set[int]) -> dict[tuple[int, str], Account]:
    """The pockets of these units by (unit id, utility); wallets are opened when missing."""
    rows = session.execute(select(Wallet.unit_id, Account).join(Account, Account.wallet_id == Wallet.id)
                           .where(one_of(session, Wallet.unit_id, unit_ids))).all()
    found = {(unit_id, account.utility): account for unit_id, account in rows}
    for unit_id in unit_ids - {u for u, _ in found}:
        wallet = open_wallet(session, session.get(Unit, unit_id))
        found.update({(unit_id, pocket.utility): pocket for pocket in wallet.pockets})
    return found


def _used_in_month(session: Session, spans: list[_Span], estates: dict[int, Estate]) -> dict[int, dict[date, Decimal]]:
    """Consumption already rolled up per meter and local month, for inclining blocks."""
    wanted: set[tuple[int, datetime]] = set()
    for span in spans:
        tz = estates[span.meter.estate_id].tz
        for moment in (span.start, span.end):
            local = moment.astimezone(tz)
            wanted.add((span.meter.id, datetime(local.year, local.month, 1, tzinfo=tz).astimezone(UTC)))
    stored = rollups.month_totals(session, wanted)
    used: dict[int, dict[date, Decimal]] = defaultdict(dict)
    estate_of = {span.meter.id: span.meter.estate_id for span in spans}
    for (meter_id, start), total in stored.items():
        used[meter_id][start.astimezone(estates[estate_of[meter_id]].tz).date()] = total
    return used
