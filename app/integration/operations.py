"""What an integration can do besides reads and top-ups (A7): bills, maintenance, registering units.

Each function reuses the domain that owns the thing (M6 consumption queries, the ingest
maintenance switch, the estate-admin unit and meter rules), audits under the API key's name
(`app.api.access` sets the actor) and commits once, like the pages that do the same.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app import audit
from app.estates import meters as estate_meters
from app.estates import units as estate_units
from app.metering.ingest import ingest_paused, set_maintenance
from app.metering.queries import PeriodConsumption, consumption_in
from app.models import Account, Estate, LedgerTransaction, Meter, Posting, Unit, Wallet
from app.models.api import ApiKey


# --- Last month's bill --------------------------------------------------------------------

@dataclass(frozen=True)
class MeterBill:
    """A meter's last local month: its first and last reading and what its readings billed."""

    month: str  # YYYY-MM
    readings: PeriodConsumption
    amount_billed: Decimal
    commodity: str


def last_month_bill(session: Session, meter: Meter, now: datetime | None = None) -> MeterBill:
    """Last month's readings (M6 `last_month`) and the consumption charges its readings posted."""
    readings = consumption_in(session, meter, "last_month", now)
    estate = session.get(Estate, meter.estate_id)
    pocket = session.scalar(select(Account).join(Wallet, Wallet.id == Account.wallet_id).where(
        Wallet.unit_id == meter.unit_id, Account.kind == "pocket", Account.utility == meter.utility)) \
        if meter.unit_id is not None else None
    amount = Decimal(0)
    if pocket is not None:
        # Bills are keyed by the reading that closed each span; late readings re-price with "reprice:".
        amount = -(session.scalar(select(func.coalesce(func.sum(Posting.amount), 0))
                                  .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
                                  .where(Posting.account_id == pocket.id,
                                         LedgerTransaction.occurred_at >= readings.start,
                                         LedgerTransaction.occurred_at < readings.end,
                                         or_(LedgerTransaction.idempotency_key.like(f"reading:{meter.serial}:%"),
                                             LedgerTransaction.idempotency_key.like(f"reprice:{meter.serial}:%"))))
                   or Decimal(0))
    month = readings.start.astimezone(estate.tz).strftime("%Y-%m")
    return MeterBill(month, readings, Decimal(amount), pocket.commodity if pocket is not None else estate.currency)


# --- Maintenance mode ---------------------------------------------------------------------

def switch_maintenance(session: Session, key: ApiKey, on: bool) -> bool:
    """Switch ingest maintenance mode (M7) for a staff key, audited; commits once; return the new state."""
    before = ingest_paused(session)
    if before != bool(on):
        audit.record(session, "maintenance.switch", f"api_key:{key.prefix}", old={"maintenance": before},
                     new={"maintenance": bool(on), "key": key.prefix})
    set_maintenance(session, on)
    return ingest_paused(session)


# --- Registering a unit with its meter ----------------------------------------------------

class RegistrationRefused(ValueError):
    """The unit or its meter breaks a rule; `errors` maps a body field to its message. Nothing was written."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Registered:
    unit: Unit
    meter: Meter | None


def register_unit(session: Session, estate: Estate, values: dict, meter_values: dict | None) -> Registered:
    """Create a unit (estate-admin rules, account number from the pattern) and its meter; commits.

    The meter's values are checked before the unit is made, so a refused meter leaves nothing
    behind; only a race (another caller registering the same serial in between) could leave
    the unit without its meter, which the error then says.
    """
    if meter_values is not None:
        errors = estate_meters.new_unit_meter_errors(session, estate, meter_values)
        if errors:
            raise RegistrationRefused({f"meter.{name}": text for name, text in errors.items()})
    try:
        unit = estate_units.create_unit(session, estate, values).unit
    except estate_units.UnitError as error:
        session.rollback()
        raise RegistrationRefused(dict(error.errors)) from None
    meter = None
    if meter_values is not None:
        try:
            meter = estate_meters.add_meter(session, unit, meter_values).meter
        except estate_meters.MeterError as error:
            session.rollback()
            raise RegistrationRefused({f"meter.{name}": f"{text} (unit {unit.number} was registered without it)"
                                       for name, text in error.errors.items()}) from None
    return Registered(unit, meter)



# --- Move-in and move-out -----------------------------------------------------------------

def _actor(session: Session, key: ApiKey):
    """The person a key acts as for moves: its issuer, or for a CLI key the system actor named after
    it (`app.integration.key_actors`); a key whose issuer is gone or inactive may not move tenants."""
    from app.integration.key_actors import move_actor
    from app.models import User

    if (system := move_actor(key)) is not None:
        return system
    user = session.get(User, key.created_by_user_id)
    if user is None or not user.active:
        raise RegistrationRefused({"key": "Moves are made as the person who issued the key, and that login is "
                                          "no longer active: issue a new key from the API keys page."})
    return user


def _day(text: str, name: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise RegistrationRefused({name: "Enter a date as YYYY-MM-DD."}) from None


def _registers(values: dict | None, name: str) -> dict[str, Decimal | None]:
    from app.estates.tenancies import parse_register
    from app.models.meter import UTILITIES

    errors: dict[str, str] = {}
    parsed: dict[str, Decimal | None] = {}
    for utility, raw in (values or {}).items():
        if utility not in UTILITIES:
            errors[f"{name}.{utility}"[:80]] = f"Choose a utility: {', '.join(UTILITIES)}."
        elif not isinstance(raw, str):
            errors[f"{name}.{utility}"] = 'Send the register as a decimal string, like "10234.5".'
        else:
            parsed[utility] = parse_register(raw, f"{name}.{utility}", errors)
    if errors:
        raise RegistrationRefused(errors)
    return parsed


def move_in(session: Session, key: ApiKey, unit: Unit, person: dict, day_text: str, openings: dict | None):
    """Move a tenant in through `app.estates.tenancies.move_in` as the key's issuer; commits once."""
    from app.estates.access import AccessError
    from app.estates import tenancies

    actor = _actor(session, key)
    day = _day(day_text, "move_in")
    registers = _registers(openings, "openings")
    try:
        return tenancies.move_in(session, actor, unit, person, day, registers, user_id=actor.id)
    except AccessError as error:
        session.rollback()
        raise RegistrationRefused(dict(error.errors)) from None


def move_out(session: Session, key: ApiKey, unit: Unit, day_text: str, closings: dict | None):
    """Move the unit's tenant out through `app.estates.tenancies.move_out` as the key's issuer; commits once."""
    from app.estates.access import AccessError
    from app.estates import tenancies

    actor = _actor(session, key)
    day = _day(day_text, "move_out")
    registers = _registers(closings, "closings")
    tenancy = tenancies.current_tenancy(session, unit)
    if tenancy is None:
        raise RegistrationRefused({"unit_id": f"Unit {unit.number} has no tenant to move out."})
    try:
        return tenancies.move_out(session, actor, tenancy, day, registers, user_id=actor.id)
    except AccessError as error:
        session.rollback()
        raise RegistrationRefused(dict(error.errors)) from None


# --- Bulk top-up --------------------------------------------------------------------------

def bulk_topup(session: Session, key: ApiKey, estate: Estate, rows: list[tuple[int, str, Decimal]],
               idempotency_key: str, description: str | None = None):
    """Plan and start an agent bulk top-up (`app.payments.bulk_topup`), once per Idempotency-Key.

    The batch is named after the key and a digest of its Idempotency-Key, so the same request
    sent again, even after its stored response expired, finds the first batch and credits nothing.
    """
    import hashlib

    from app.models.moves import BulkTopup
    from app.payments import bulk_topup as bulk

    tag = f"api:{key.id}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}"
    existing = session.scalar(select(BulkTopup).where(BulkTopup.estate_id == estate.id,
                                                      BulkTopup.description.like(tag + "%")))
    if existing is not None:
        return existing
    units = {unit.id: unit for unit in session.scalars(select(Unit).where(
        Unit.estate_id == estate.id, Unit.id.in_({unit_id for unit_id, _, _ in rows})))}
    planned_rows = [(units.get(unit_id), units[unit_id].number if unit_id in units else f"#{unit_id}", utility,
                     str(amount)) for unit_id, utility, amount in rows]
    from flask_babel import force_locale

    try:
        with force_locale("en"):  # the API answers in English (its refusals are plain gettext texts)
            batch = bulk.plan_bulk_topup(session, estate, planned_rows, user_id=key.created_by_user_id,
                                         description=f"{tag} {description or ''}".strip()[:300])
    except bulk.BulkTopupError as error:
        session.rollback()
        raise RegistrationRefused(dict(error.errors)) from None
    bulk.start_bulk_topup(session, batch, user_id=key.created_by_user_id)
    return session.get(BulkTopup, batch.id, populate_existing=True)
