"""Credit control (C7): relay commands from pocket balances, their outbox, acks and timeouts.

Commands are written as `RelayCommand` rows in the same transaction as the balance change
(an outbox); `publish_pending()` sends them after commit and `record_ack()` closes them.
Payments code calls `after_pocket_change(session, account_ids)` after crediting pockets.
Each relay transition tells the unit's current tenants ("Supply cut"/"Supply restored",
through `notify()`) with the balance and the estate's top-up channels: the portal's top-up
page and, when the estate has an `mpesa_paybill` setting, the paybill and account reference.
A reading that finds the relay already in the wanted state sends nothing.

Relay holds are deliberate cuts (a suspension for arrears, a spend limit, demand management,
a staff decision): `place_hold()` switches the meter off with its reason and, while any hold
on a meter is active, `after_pocket_change()` never switches it back on, so a top-up that
leaves a debt unpaid does not reconnect the unit. `release_hold()` ends one and restores the
supply when the balance allows and no other hold remains; holds with an `until` lapse by
themselves (`release_expired_holds()`, a cron job). Water is never held: it is never cut.

The minimum activation amount is money. In units estates (C1) pockets hold kWh, so the
balance is valued at today's unit price (`tariffs.unit_price`: flat rate or time-of-use
default rate, in the estate's local date) before the comparison; with no price in force
the balance cannot be valued and any positive balance restores supply.
"""
from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.billing import tariffs
from app.estates.settings_catalog import setting_default
from app.jobs import job
from app.settings import get_setting
from app.labels import label
from app.models import Account, Estate, Meter, Unit, Wallet, utcnow
from app.models.metering import HOLD_KINDS, MeterAlert, RelayCommand, RelayHold
from app.money import format_amount

log = logging.getLogger(__name__)
ACK_TIMEOUT = timedelta(minutes=5)
MPESA_PAYBILL_KEY = "mpesa_paybill"  # estate setting: the paybill number tenants pay into


def after_pocket_change(session: Session, account_ids: Iterable[int]) -> list[RelayCommand]:
    """Queue relay commands (and water flags) that the new pocket balances call for."""
    ids = set(account_ids)
    if not ids or _uncontrolled(session, ids):
        return []
    rows = session.execute(
        select(Account, Wallet.unit_id, Estate).join(Wallet, Account.wallet_id == Wallet.id)
        .join(Estate, Estate.id == Account.estate_id)
        .where(Account.id.in_(ids), Account.utility.in_(("electricity", "water")))
    ).all()
    rows = [row for row in rows if row[2].feature_enabled("credit_control")]
    if not rows:
        return []
    # A replaced (detached) meter is off the supply: it is never commanded again.
    meters = session.scalars(select(Meter).where(
        Meter.unit_id.in_({unit_id for _, unit_id, _ in rows}), Meter.role == "unit",
        Meter.detached_at.is_(None))).all()
    units_estates = {estate.id for _, _, estate in rows if estate.wallet_denomination == "units"}
    prices = tariffs.class_prices(session, units_estates) if units_estates else {}
    classes = tariffs.unit_class_keys(session, {unit_id for _, unit_id, _ in rows}) if units_estates else {}
    held = held_meter_ids(session, {meter.id for meter in meters})
    # Credit limits (A4, app.billing.debt): how far below zero each pocket may go, in money.
    from app.billing.debt import money_limits, today_rates
    rates = today_rates(session, [(pocket, estate, unit_id) for pocket, unit_id, estate in rows])
    limits = money_limits(session, [(pocket, estate) for pocket, _, estate in rows], rates)
    commands = []
    told: set[tuple[int, str]] = set()  # a unit with two electricity meters hears once
    for pocket, unit_id, estate in rows:
        session.refresh(pocket, ["balance"])
        for meter in meters:
            if meter.unit_id != unit_id or meter.utility != pocket.utility:
                continue
            limit = limits.get(pocket.id, Decimal("0"))
            worth = pocket.balance * rates[pocket.id] if rates.get(pocket.id) else pocket.balance
            if pocket.utility == "water":
                _flag_water(session, estate, meter, pocket, worth, limit)
            elif worth <= -limit and pocket.balance <= 0 and meter.relay_state != "off":
                commands.append(issue(session, meter, "off", f"balance {pocket.balance} at or below zero"
                                      + (f" and past its credit limit {limit}" if limit else "")))
                if (pocket.id, "off") not in told:
                    told.add((pocket.id, "off"))
                    tell_tenants(session, estate, unit_id, pocket, "off")
            elif worth > -limit and meter.relay_state == "off" and meter.id not in held:
                value, shown = activation_value(estate, pocket, tariffs.prices_for(
                    prices, estate.id, pocket.utility, classes.get(unit_id)))
                if value is None or value + limit >= estate.minimum_activation_amount:
                    commands.append(issue(session, meter, "on",
                                          f"balance {shown} reached {estate.minimum_activation_amount}"))
                    if (pocket.id, "on") not in told:
                        told.add((pocket.id, "on"))
                        tell_tenants(session, estate, unit_id, pocket, "on")
    session.flush()
    return commands


def _uncontrolled(session: Session, ids: set[int]) -> bool:
    """Whether these accounts, all loaded in the session with their estates, are none of them a
    pocket credit control acts on (not electricity or water, or the estate has it off): then
    `after_pocket_change()` has nothing to read or do (the caller's top-up skips its query)."""
    from sqlalchemy.orm.util import identity_key

    identity_map = session.identity_map
    for account_id in ids:
        account = identity_map.get(identity_key(Account, account_id))
        if account is None or "utility" not in account.__dict__ or "estate_id" not in account.__dict__:
            return False  # not loaded (or expired): ask the database
        if account.utility not in ("electricity", "water"):
            continue
        estate = identity_map.get(identity_key(Estate, account.estate_id))
        if estate is None or "features" not in estate.__dict__ or estate.feature_enabled("credit_control"):
            return False
    return True


class HoldRefused(ValueError):
    """The meter cannot be held: water is never cut, and SparkMeter's meters take no commands."""


def held_meter_ids(session: Session, meter_ids: Iterable[int], now: datetime | None = None) -> set[int]:
    """Of these meters, the ones with an active hold."""
    ids = set(meter_ids)
    if not ids:
        return set()
    now = now or utcnow()
    return set(session.scalars(select(RelayHold.meter_id).where(
        RelayHold.meter_id.in_(ids), RelayHold.released_at.is_(None),
        (RelayHold.until.is_(None)) | (RelayHold.until > now))))


def active_holds(session: Session, meter_ids: Iterable[int], now: datetime | None = None) -> list[RelayHold]:
    """The active holds on these meters, oldest first."""
    ids = set(meter_ids)
    now = now or utcnow()
    return list(session.scalars(select(RelayHold).where(
        RelayHold.meter_id.in_(ids), RelayHold.released_at.is_(None),
        (RelayHold.until.is_(None)) | (RelayHold.until > now)).order_by(RelayHold.set_at, RelayHold.id)))


def place_hold(session: Session, meter: Meter, kind: str, reason: str, *, set_by_user_id: int | None = None,
               until: datetime | None = None) -> RelayHold:
    """Hold the meter's supply off for `reason`; the meter's active hold of this kind if it has one.

    Switches the relay off (a command in the outbox) unless it is off already. Audited. The
    caller tells the people concerned in its own words, and commits.
    """
    from app.audit import record as audit
    from app.metering.queries import IMPORTED_PROTOCOLS

    if kind not in HOLD_KINDS:
        raise ValueError(f"unknown hold kind {kind!r}")
    if meter.utility == "water":
        raise HoldRefused("water is never cut: it is held at its credit limit instead")
    if meter.protocol in IMPORTED_PROTOCOLS:
        raise HoldRefused(f"meter {meter.serial} is controlled by SparkMeter and takes no commands from here")
    if meter.detached_at is not None:
        raise HoldRefused(f"meter {meter.serial} was replaced and is off the supply")
    existing = session.scalar(select(RelayHold).where(
        RelayHold.meter_id == meter.id, RelayHold.kind == kind, RelayHold.released_at.is_(None)))
    if existing is not None:
        if existing.until is not None and (until is None or until > existing.until):
            existing.until = until  # a longer hold of the same kind extends the one in place
        return existing
    hold = RelayHold(meter_id=meter.id, kind=kind, reason=reason[:200], set_by_user_id=set_by_user_id,
                     until=until)
    session.add(hold)
    if meter.relay_state != "off":
        issue(session, meter, "off", f"hold: {reason}")
    session.flush()
    audit(session, "relay.hold", hold, new={"meter": meter.serial, "kind": kind, "reason": reason[:200],
                                            "until": until.isoformat() if until else None},
          estate_id=meter.estate_id)
    return hold


def release_hold(session: Session, hold: RelayHold, *, released_by_user_id: int | None = None,
                 reason: str = "") -> list[RelayCommand]:
    """End the hold; supply comes back if the pocket allows it and no other hold remains."""
    from app.audit import record as audit

    if hold.released_at is not None:
        return []
    hold.released_at, hold.released_by_user_id = utcnow(), released_by_user_id
    hold.release_reason = reason[:200]
    session.flush()
    meter = session.get(Meter, hold.meter_id)
    audit(session, "relay.release", hold, new={"meter": meter.serial, "kind": hold.kind, "reason": reason[:200]},
          estate_id=meter.estate_id)
    return restore_if_allowed(session, meter)


def restore_if_allowed(session: Session, meter: Meter) -> list[RelayCommand]:
    """Run credit control over the pocket that feeds the meter (after a hold ends or lapses).

    Where the estate has no credit control, balances never cut supply, so the hold was the only
    reason the meter is off: it is switched on once no hold remains.
    """
    if meter.unit_id is None or meter.detached_at is not None:
        return []
    estate = session.get(Estate, meter.estate_id)
    if not estate.feature_enabled("credit_control"):
        if meter.relay_state == "off" and meter.id not in held_meter_ids(session, [meter.id]):
            return [issue(session, meter, "on", "hold ended")]
        return []
    pocket_ids = session.scalars(select(Account.id).join(Wallet, Account.wallet_id == Wallet.id).where(
        Wallet.unit_id == meter.unit_id, Account.utility == meter.utility)).all()
    return after_pocket_change(session, pocket_ids)


def release_expired_holds(session: Session, now: datetime | None = None) -> int:
    """Close holds whose time ran out and restore what they cut; the caller commits."""
    now = now or utcnow()
    lapsed = session.scalars(select(RelayHold).where(
        RelayHold.released_at.is_(None), RelayHold.until.is_not(None), RelayHold.until <= now)).all()
    for hold in lapsed:
        hold.released_at, hold.release_reason = now, "hold time ended"
    session.flush()
    for meter_id in {hold.meter_id for hold in lapsed}:
        restore_if_allowed(session, session.get(Meter, meter_id))
    return len(lapsed)


@job("relay_holds")
def lapse_holds_job(session: Session, progress) -> str:
    """Release holds whose time ran out (spend limits at the day's end, demand hold times)."""
    released = release_expired_holds(session)
    return f"{released} hold{'s' if released != 1 else ''} released"


def topup_channels(session: Session, estate: Estate, unit: Unit) -> list:
    """How a tenant of the unit can top up, as phrases: the portal link, M-PESA when configured."""
    from flask import current_app

    # Built from the URL map, not url_for: ingest workers bill outside a request.
    path = current_app.url_map.bind("topup").build("tenant.topup", {"unit_id": unit.id})
    from flask_babel import lazy_gettext as _l

    # Lazy: each message writes them in its recipient's language when it is rendered (X8).
    channels = [_l("online at %(link)s", link=f"{current_app.config['PUBLIC_URL'].rstrip('/')}{path}")]
    paybill = get_setting(session, MPESA_PAYBILL_KEY, estate.id, default=setting_default(MPESA_PAYBILL_KEY))
    if paybill:
        # The unit's account number is what it was given to quote; older units use CODE-number.
        account = unit.account_number or f"{estate.code}-{unit.number}"
        channels.append(_l("by M-PESA to paybill %(paybill)s, account %(account)s", paybill=paybill, account=account))
    return channels


def tell_tenants(session: Session, estate: Estate, unit_id: int, pocket: Account, state: str) -> None:
    """Tell the unit's tenants their supply was cut or restored; emails leave after commit."""
    from app.models import User
    from app.notify import notify
    from app.payments.credit import current_tenant_persons

    unit = session.get(Unit, unit_id)
    try:
        context = {"state": state, "unit": unit, "estate": estate,
                   "utility": label("utility", pocket.utility),
                   "balance": format_amount(Decimal(pocket.balance), pocket.commodity),
                   "minimum": format_amount(estate.minimum_activation_amount, estate.currency)
                   if estate.minimum_activation_amount > 0 else None,
                   "channels": topup_channels(session, estate, unit)}
        for person in current_tenant_persons(session, unit_id):
            user = session.scalar(select(User).where(User.person_id == person.id, User.active.is_(True)))
            notify(session, "supply_change", context, user=user, person=person,
                   channels=("in_app", "email", "sms") if user else ("email", "sms"))
    except RuntimeError:  # no application context (a bare script): notices need templates
        log.warning("supply %s notice for unit %s not sent: no application context", state, unit_id)


def activation_value(estate: Estate, pocket: Account, versions: list) -> tuple[Decimal | None, str]:
    """A pocket's balance in money, to compare with the minimum activation amount, and its label."""
    if estate.wallet_denomination != "units":
        return pocket.balance, str(pocket.balance)
    rate = tariffs.unit_price(tariffs.price_on(versions, utcnow().astimezone(estate.tz).date()))
    if rate is None:
        return None, f"{pocket.balance} {pocket.commodity} (no unit price in force)"
    value = pocket.balance * rate
    return value, f"{pocket.balance} {pocket.commodity} worth {value:.2f}"


def issue(session: Session, meter: Meter, state: str, reason: str) -> RelayCommand:
    """Record a relay command for publishing after commit; the meter's relay takes that state."""
    command = RelayCommand(command_id=uuid.uuid4().hex, meter_id=meter.id, state=state,
                           topic=command_topic(session, meter), reason=reason[:200], status="pending")
    session.add(command)
    meter.relay_state = state
    return command


def command_topic(session: Session, meter: Meter) -> str:
    """Where a meter listens: ChirpStack downlink topic, or the direct meter's command topic."""
    if meter.protocol == "chirpstack" and meter.dev_eui:
        application = get_setting(session, "chirpstack_application_id", meter.estate_id,
                                  default=setting_default("chirpstack_application_id"))
        return f"application/{application}/device/{meter.dev_eui}/command/down"
    return f"meters/{meter.serial}/commands"


def command_payload(command: RelayCommand, meter: Meter) -> str:
    """The JSON published for a command (wrapped as a ChirpStack downlink where needed)."""
    body = {"command": "relay", "state": command.state, "command_id": command.command_id}
    if "/command/down" in command.topic:
        return json.dumps({"devEui": meter.dev_eui, "confirmed": True, "fPort": 10, "object": body})
    return json.dumps(body)


def publish_pending(session: Session, publish: Callable[[str, str], bool], limit: int = 100) -> int:
    """Publish queued commands (locked, so two publishers never send one twice); caller commits."""
    pending = session.scalars(select(RelayCommand).where(RelayCommand.status == "pending")
                              .order_by(RelayCommand.id).limit(limit).with_for_update(skip_locked=True)).all()
    sent = 0
    for command in pending:
        meter = session.get(Meter, command.meter_id)
        if publish(command.topic, command_payload(command, meter)):
            command.status, command.published_at = "published", utcnow()
            sent += 1
    return sent


def record_ack(session: Session, payload: bytes | str) -> RelayCommand | None:
    """Close the command an acknowledgement names; unknown or malformed acks are ignored."""
    try:
        document = json.loads(payload)
        command_id = str(document["command_id"])
    except (ValueError, KeyError, TypeError):
        return None
    command = session.scalar(select(RelayCommand).where(RelayCommand.command_id == command_id))
    if command is None or command.status == "acknowledged":
        return command
    command.status, command.acknowledged_at = "acknowledged", utcnow()
    command.ack_payload = payload.decode() if isinstance(payload, bytes) else payload
    return command


def flag_silent_meters(session: Session, now: datetime | None = None,
                       timeout: timedelta = ACK_TIMEOUT) -> int:
    """Time out published commands nobody acknowledged and flag their meters."""
    now = now or utcnow()
    late = session.scalars(select(RelayCommand).where(
        RelayCommand.status == "published", RelayCommand.published_at < now - timeout)).all()
    for command in late:
        command.status = "timed_out"
        session.add(MeterAlert(meter_id=command.meter_id, kind="relay_no_ack", raised_at=now,
                               detail=f"relay {command.state} command {command.command_id} not acknowledged"))
    return len(late)


def _flag_water(session: Session, estate: Estate, meter: Meter, pocket: Account, worth: Decimal,
                limit: Decimal) -> None:
    """Water is never cut: past its credit limit (money, A4) the meter is flagged for arrears."""
    if worth >= -limit:
        return
    recent = session.scalar(select(MeterAlert.id).where(
        MeterAlert.meter_id == meter.id, MeterAlert.kind == "water_credit_limit",
        MeterAlert.raised_at > utcnow() - timedelta(days=1)))
    if recent is None:
        session.add(MeterAlert(meter_id=meter.id, kind="water_credit_limit",
                               detail=f"water balance {pocket.balance} is past the credit limit {limit}"))
