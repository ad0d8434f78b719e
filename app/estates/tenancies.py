"""Moving tenants in and out (A3): one submit, one database transaction, figures shown first.

Move-in: the person (chosen or new), the tenancy, opening readings through `ingest()` (a
register below the last one is refused with ingest's reason), the unit's pockets brought to
zero (what they held while the unit stood vacant is the owner's: it moves to the owner's
pocket, `accounts.owner_pocket`), the unit marked occupied, the invite emailed (or an SMS
with the account number for someone with only a phone).

Move-out: closing readings through `ingest()` (so the final consumption is priced by the
tariff like any reading), then for each pocket its balance after that final bill is either
refunded (moved to the estate's refunds-payable account, with a `Refund` staff mark paid)
or, when negative, carried as an arrears record on the person (`app.billing.arrears`); the
tenancy ended, the unit vacant, the login deactivated when it reaches nothing else, and the
person emailed their final figures. `dry_run=True` does all of it and rolls back, so the
page shows exactly what confirming will post.

Keys: `move_in:<tenancy>:<utility>`, `move_out:refund:<tenancy>:<utility>`, arrears
`move_out` / `tenancy:<id>:<utility>`, `refund_paid:<refund>`.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.estates.access import (AccessError, GrantResult, _check_reach, _revoke, _unit_grant, _vacate_if_empty,
                                login_of, place_tenant)
from app.i18n.formatting import local_date, local_time
from app.integration import events
from app.labels import label
from app.ledger import Entry, post
from app.ledger.accounts import open_wallet, owner_pocket, system_account
from app.metering import credit_control
from app.metering.decoders import HTTP_TOPIC
from app.metering.ingest import Message, ingest
from app.models import Account, Estate, Meter, Person, RoleGrant, Tenancy, Unit, User, utcnow
from app.models.meter import UTILITIES
from app.models.moves import Refund
from app.money import UTILITY_UNITS, format_amount, quantize

MAX_REGISTER = Decimal("1e12")
BACKDATE_DAYS = 62  # how far back a move may be recorded (readings older than that are refused anyway)


class MoveError(AccessError):
    """A move the rules refuse; `errors` maps a form field to its message. Nothing was written."""


@dataclass
class PocketOutcome:
    utility: str
    balance: Decimal  # after the final bill, before the refund or the debt
    commodity: str
    action: str  # refund, debt, none
    amount: Decimal

    @property
    def label(self) -> str:
        return label("pocket", self.utility)

    @property
    def balance_text(self) -> str:
        return format_amount(self.balance, self.commodity)

    @property
    def amount_text(self) -> str:
        return format_amount(self.amount, self.commodity)


@dataclass
class ReadingOutcome:
    utility: str
    serial: str
    register: Decimal
    at: datetime


@dataclass
class MoveInResult:
    tenancy_id: int
    person_id: int
    person_name: str
    readings: list[ReadingOutcome]
    carried: list[tuple[str, Decimal, str]]  # (utility, amount moved to the owner, commodity)
    invite_email: str | None = None
    sms_to: str | None = None


@dataclass
class MoveOutResult:
    tenancy_id: int
    person_id: int
    person_name: str
    move_out: date
    readings: list[ReadingOutcome]
    pockets: list[PocketOutcome] = field(default_factory=list)
    refund_ids: list[int] = field(default_factory=list)
    arrears_ids: list[int] = field(default_factory=list)
    login_deactivated: bool = False
    dry_run: bool = False

    @property
    def refund_total(self) -> Decimal:
        return sum((p.amount for p in self.pockets if p.action == "refund"), Decimal("0"))

    @property
    def debt_total(self) -> Decimal:
        return sum((p.amount for p in self.pockets if p.action == "debt"), Decimal("0"))


# --- reads ------------------------------------------------------------------------------------

def unit_meters(session: Session, unit: Unit) -> list[Meter]:
    """The unit's attached meters, in pocket order (the ones a move reads)."""
    meters = session.scalars(select(Meter).where(Meter.unit_id == unit.id, Meter.detached_at.is_(None),
                                                 Meter.role == "unit")).all()
    return sorted(meters, key=lambda m: (UTILITIES.index(m.utility) if m.utility in UTILITIES else 99, m.id))


def current_tenancy(session: Session, unit: Unit) -> Tenancy | None:
    """The unit's open tenancy (the latest, when co-tenants share it)."""
    return session.scalars(select(Tenancy).where(Tenancy.unit_id == unit.id, Tenancy.move_out.is_(None))
                           .order_by(Tenancy.move_in.desc(), Tenancy.id.desc()).limit(1)).first()


def parse_register(raw: str | None, field_name: str, errors: dict[str, str]) -> Decimal | None:
    """A register typed on a form: None when empty; an error in `errors` when not a number >= 0."""
    text = (raw or "").strip().replace(",", ".")
    if not text:
        return None
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = None
    if value is None or not value.is_finite() or value < 0 or value >= MAX_REGISTER:
        errors[field_name] = gettext("Enter the register as a number, like 10234.5.")
        return None
    return value


# --- building blocks ---------------------------------------------------------------------------

def _check_day(day: date, estate: Estate, now: datetime, errors: dict[str, str], name: str,
               not_before: date | None = None) -> None:
    today = now.astimezone(estate.tz).date()
    if day > today:
        errors[name] = gettext("Enter today's date or an earlier one.")
    elif day < today - timedelta(days=BACKDATE_DAYS):
        errors[name] = gettext("A move is recorded within %(days)s days of it.", days=BACKDATE_DAYS)
    elif not_before is not None and day < not_before:
        errors[name] = gettext("Enter %(day)s or later.", day=local_date(not_before))


def reading_time(estate: Estate, day: date, now: datetime, meter: Meter, *, end_of_day: bool) -> datetime:
    """When a move's reading is taken: now on today's moves, else the day's start (in) or end (out)."""
    today = now.astimezone(estate.tz).date()
    if day >= today:
        at = now.replace(microsecond=0)
    else:
        clock = time(23, 30) if end_of_day else time(0, 0)
        at = datetime.combine(day, clock, tzinfo=estate.tz).astimezone(now.tzinfo)
    interval = meter.interval_minutes if meter.reports_on_boundaries else None
    if interval:
        minutes = at.hour * 60 + at.minute
        at = at.replace(second=0) - timedelta(minutes=minutes % interval)
    return at


def _read(session: Session, meters: list[Meter], registers: Mapping[str, Decimal | None], estate: Estate,
          day: date, now: datetime, *, prefix: str, end_of_day: bool) -> list[ReadingOutcome]:
    """Put each given register through ingest; a refusal raises MoveError naming the field."""
    done = []
    for meter in meters:
        register = registers.get(meter.utility)
        if register is None:
            continue
        at = reading_time(estate, day, now, meter, end_of_day=end_of_day)
        report = ingest(session, [manual_message(meter, register, at)], now=now, keep_dead_letters=False)
        if report.dead_letters:
            raise MoveError({f"{prefix}_{meter.utility}": gettext("The reading was refused: %(why)s.",
                                                                  why=report.dead_letters[0])})
        if not report.accepted:
            raise MoveError({f"{prefix}_{meter.utility}": gettext(
                "The meter already has a reading at %(time)s: try again in a moment.",
                time=local_time(at, estate.timezone, "%d %b %Y %H:%M:%S"))})
        done.append(ReadingOutcome(meter.utility, meter.serial, register, at))
    return done


def manual_message(meter: Meter, register: Decimal, at: datetime) -> Message:
    """A reading typed by a person, in the HTTP gateway's JSON, so it takes the pipeline like any other."""
    unit = UTILITY_UNITS[meter.utility].lower()
    body = {"meter": meter.serial, "register": f"{format(register, 'f')} {unit}", "time": at.isoformat()}
    return Message(HTTP_TOPIC, json.dumps(body).encode())


def _pockets(session: Session, unit: Unit) -> list[Account]:
    wallet = open_wallet(session, unit)
    pockets = list(wallet.pockets)
    for pocket in pockets:
        session.refresh(pocket, ["balance"])
    return sorted(pockets, key=lambda p: UTILITIES.index(p.utility) if p.utility in UTILITIES else 99)


# --- move-in ----------------------------------------------------------------------------------

def move_in(session: Session, actor: User, unit: Unit, person: Person | Mapping[str, str | None],
            day: date, openings: Mapping[str, Decimal | None], *, invite: bool = True,
            now: datetime | None = None, user_id: int | None = None) -> MoveInResult:
    """Move a tenant into the unit: tenancy, opening readings, pockets from zero, occupied, invited; commits once."""
    result = place_move_in(session, actor, unit, person, day, openings, invite=invite, now=now, user_id=user_id)
    session.commit()
    return result


def place_move_in(session: Session, actor: User, unit: Unit, person: Person | Mapping[str, str | None],
                  day: date, openings: Mapping[str, Decimal | None], *, invite: bool = True,
                  now: datetime | None = None, user_id: int | None = None,
                  onboarding: bool = False) -> MoveInResult:
    """Do everything a move-in does; the caller commits (the move-in page and the tenancies import).

    `onboarding` (bulk onboarding of tenants already living there): any past move-in date
    is taken, and the opening readings are taken now rather than on that date.
    """
    from app.notify import notify

    now = now or utcnow()
    estate = session.get(Estate, unit.estate_id)
    _check_reach(session, actor, estate.id)
    errors: dict[str, str] = {}
    occupant = current_tenancy(session, unit)
    if occupant is not None:
        errors["person_id"] = gettext("%(person)s still rents unit %(unit)s: move them out first.",
                                      person=occupant.person.full_name, unit=unit.number)
    last_out = session.scalar(select(Tenancy.move_out).where(Tenancy.unit_id == unit.id,
                                                              Tenancy.move_out.is_not(None))
                              .order_by(Tenancy.move_out.desc()).limit(1))
    if onboarding:
        if day > now.astimezone(estate.tz).date():
            errors["move_in"] = gettext("Enter today's date or an earlier one.")
        elif last_out is not None and day < last_out:
            errors["move_in"] = gettext("Enter %(day)s or later.", day=local_date(last_out))
    else:
        _check_day(day, estate, now, errors, "move_in", not_before=last_out)
    if errors:
        raise MoveError(errors)
    meters = unit_meters(session, unit)
    reading_day = now.astimezone(estate.tz).date() if onboarding else day
    readings = _read(session, meters, openings, estate, reading_day, now, prefix="opening", end_of_day=False)
    tenancy, granted = place_tenant(session, actor, unit, person, day, invite=invite, user_id=user_id)
    carried = []
    pockets = _pockets(session, unit)
    for pocket in pockets:
        balance = pocket.balance
        if balance == 0:
            continue
        owner = owner_pocket(session, unit, pocket.utility)
        post(session, Entry(estate_id=estate.id, kind="adjustment", idempotency_key=f"move_in:{tenancy.id}:{pocket.utility}",
                            legs=[(pocket.id, -balance), (owner.id, balance)], occurred_at=now,
                            created_by_user_id=user_id,
                            memo=f"Unit {unit.number} while vacant: {format_amount(balance, pocket.commodity)} "
                                 f"{label('pocket', pocket.utility).lower()} to the owner at move-in"))
        carried.append((pocket.utility, balance, pocket.commodity))
    prorated = prorate_standing_charges(session, estate, unit, tenancy, day, leaving=False, now=now, user_id=user_id)
    if pockets:
        credit_control.after_pocket_change(session, [p.id for p in pockets])
    person_row = session.get(Person, tenancy.person_id)
    sms_to = None
    if (granted is None or granted.invite_link is None) and person_row.phone and not person_row.email:
        from app.metering.credit_control import topup_channels
        notify(session, "move_in_welcome", {"unit": unit, "estate": estate, "move_in": day,
                                            "channels": topup_channels(session, estate, unit)},
               person=person_row, channels=("sms",))
        sms_to = person_row.phone
    audit.record(session, "tenancy.move_in", tenancy, estate_id=estate.id, new={
        "unit": unit.number, "person_id": person_row.id, "move_in": day,
        "openings": {r.utility: str(r.register) for r in readings},
        "to_owner": {u: str(a) for u, a, _c in carried},
        "standing_charge_share": {u: str(a) for u, a in prorated}})
    events.tenant_onboarded(session, unit, tenancy.id, person_row.id, day)  # tenant.onboarded webhooks (A7)
    return MoveInResult(tenancy.id, person_row.id, person_row.full_name, readings, carried,
                        invite_email=granted.user.email if granted and granted.invite_link else None,
                        sms_to=sms_to)


# --- move-out ---------------------------------------------------------------------------------

def move_out(session: Session, actor: User, tenancy: Tenancy, day: date, closings: Mapping[str, Decimal | None], *,
             dry_run: bool = False, now: datetime | None = None, user_id: int | None = None) -> MoveOutResult:
    """Move the tenant out: closing readings billed, refund or debt per pocket, tenancy ended; commits once.

    With `dry_run` everything is done and rolled back: the figures are the ones confirming posts.
    """
    from app.billing.arrears import open_arrears

    now = now or utcnow()
    unit = session.get(Unit, tenancy.unit_id)
    estate = session.get(Estate, unit.estate_id)
    _check_reach(session, actor, estate.id)
    errors: dict[str, str] = {}
    if tenancy.move_out is not None:
        errors["move_out"] = gettext("This tenancy has already ended.")
    elif estate.wallet_denomination == "units":
        errors["move_out"] = gettext("%(estate)s sells units: its pockets hold kWh and kL, which are not refunded "
                                     "in money here. End the tenancy from the administration page.",
                                     estate=estate.name)
    else:
        _check_day(day, estate, now, errors, "move_out", not_before=tenancy.move_in)
    if errors:
        raise MoveError(errors)
    person = session.get(Person, tenancy.person_id)
    result = MoveOutResult(tenancy.id, person.id, person.full_name, day, [], dry_run=dry_run)
    result.readings = _read(session, unit_meters(session, unit), closings, estate, day, now,
                            prefix="closing", end_of_day=True)
    session.flush()
    prorate_standing_charges(session, estate, unit, tenancy, day, leaving=True, now=now, user_id=user_id)
    refunds = None
    for pocket in _pockets(session, unit):
        balance = quantize(pocket.balance, pocket.commodity)
        outcome = PocketOutcome(pocket.utility, balance, pocket.commodity, "none", Decimal("0"))
        if balance > 0:
            refunds = refunds or system_account(session, estate, "refunds_payable", "move_out",
                                                name="Refunds payable (move-outs)")
            posted = post(session, Entry(
                estate_id=estate.id, kind="refund", idempotency_key=f"move_out:refund:{tenancy.id}:{pocket.utility}",
                legs=[(pocket.id, -balance), (refunds.id, balance)], occurred_at=now, created_by_user_id=user_id,
                memo=f"Refund at move-out of unit {unit.number}: {person.full_name}, "
                     f"{label('pocket', pocket.utility).lower()} {format_amount(balance, pocket.commodity)}"))
            refund = Refund(estate_id=estate.id, unit_id=unit.id, person_id=person.id, tenancy_id=tenancy.id,
                            utility=pocket.utility, amount=balance, currency=estate.currency,
                            transaction_id=posted.transaction_id)
            session.add(refund)
            session.flush()
            audit.record(session, "refund.owed", refund, estate_id=estate.id,
                         new={"unit": unit.number, "utility": pocket.utility, "amount": str(balance)})
            result.refund_ids.append(refund.id)
            outcome.action, outcome.amount = "refund", balance
        elif balance < 0:
            record = open_arrears(session, estate=estate, person=person, amount=-balance,
                                  reason=f"Unit {unit.number} {label('pocket', pocket.utility).lower()} "
                                         f"balance at move-out on {day.isoformat()}",
                                  source="move_out", source_ref=f"tenancy:{tenancy.id}:{pocket.utility}",
                                  against=pocket, unit=unit, utility=pocket.utility, occurred_at=now,
                                  user_id=user_id)
            result.arrears_ids.append(record.id)
            outcome.action, outcome.amount = "debt", -balance
        result.pockets.append(outcome)
    tenancy.move_out = day
    audit.record(session, "tenancy.move_out", tenancy, estate_id=estate.id, old={"move_out": None},
                 new={"move_out": day, "closings": {r.utility: str(r.register) for r in result.readings},
                      "refunded": str(result.refund_total), "debt": str(result.debt_total)})
    grant = _unit_grant(session, person, "tenant", unit)
    if grant is not None:
        _revoke(session, grant, estate.id)
    _vacate_if_empty(session, unit, day, user_id=user_id)
    result.login_deactivated = _deactivate_if_unused(session, person)
    _send_final(session, person, unit, estate, result)
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return result


def prorate_standing_charges(session: Session, estate: Estate, unit: Unit, tenancy: Tenancy, day: date, *,
                             leaving: bool, now: datetime, user_id: int | None = None) -> list[tuple[str, Decimal]]:
    """Split the move month's standing charge by days between the tenant and the owner; the caller commits.

    A standing charge posts once a month, in full, to whoever holds the wallet at the month's
    first reading (`app.billing.charges`; the move's own readings post it if nothing did yet).
    Leaving on day d of a D-day month, the tenant pays days 1..d: the charge less its d/D part
    goes back to the pocket from the owner's pocket (the unit stands vacant: the owner's cost).
    Arriving on day d, the tenant pays days d..D: the charge less its (d - 1)/D part moves from
    the new tenant's pocket to the owner's, who bore the whole month while the unit stood vacant (a move-in
    empties the pocket to the owner first). A tenant in and out within one month thus pays
    exactly the days between. Keys `move_out:standing:<tenancy>:<utility>` and
    `move_in:standing:<tenancy>:<utility>`; returns the (utility, share moved) pairs.
    """
    import calendar

    from app.billing.consumption import earlier_meters, standing_serial
    from app.models import LedgerTransaction, Posting

    days = calendar.monthrange(day.year, day.month)[1]
    share_days = days - day.day if leaving else days - day.day + 1
    if share_days <= 0:
        return []
    paid_days = day.day if leaving else day.day - 1  # the days before the share, paid by the other side
    meters = unit_meters(session, unit)
    chains = earlier_meters(session, {m.id for m in meters})
    pockets = {p.utility: p for p in open_wallet(session, unit).pockets}
    moved = []
    for meter in meters:
        pocket = pockets.get(meter.utility)
        if pocket is None or meter.utility in {u for u, _ in moved}:
            continue
        charged = session.scalar(select(Posting.amount).join(
            LedgerTransaction, LedgerTransaction.id == Posting.transaction_id).where(
            LedgerTransaction.idempotency_key == f"standing:{standing_serial(meter, chains)}:{day:%Y-%m}",
            Posting.account_id == pocket.id))
        if charged is None or charged >= 0:
            continue  # no standing charge this month on this pocket
        # Rounded as "the month less the first days' part", so the parts of one month always add up
        # to the charge and a tenant in and out within it pays exactly its days between.
        share = -charged - quantize(-charged * paid_days / days, pocket.commodity)
        if share <= 0:
            continue
        owner = owner_pocket(session, unit, meter.utility)
        sign = 1 if leaving else -1
        what = label("pocket", meter.utility).lower()
        post(session, Entry(
            estate_id=estate.id, kind="adjustment", occurred_at=now, created_by_user_id=user_id,
            idempotency_key=f"move_{'out' if leaving else 'in'}:standing:{tenancy.id}:{meter.utility}",
            legs=[(pocket.id, sign * share), (owner.id, -sign * share)],
            memo=(f"Unit {unit.number} {what} standing charge {day:%b %Y}: {share_days} of {days} days "
                  + ("after the move-out, to the owner" if leaving else "from the move-in, from the owner")
                  + f" ({format_amount(share, pocket.commodity)})")))
        moved.append((meter.utility, share))
    return moved


def _deactivate_if_unused(session: Session, person: Person) -> bool:
    """Deactivate the person's login when no grant is left on it (staff logins are never touched)."""
    from app.auth.sessions import end_sessions

    user = login_of(session, person)
    if user is None or not user.active:
        return False
    if session.scalar(select(RoleGrant.id).where(RoleGrant.user_id == user.id).limit(1)) is not None:
        return False
    audit.record(session, "user.deactivated", user, old={"active": True}, new={"active": False, "why": "move_out"})
    user.active = False
    end_sessions(session, user)
    return True


def _send_final(session: Session, person: Person, unit: Unit, estate: Estate, result: MoveOutResult) -> None:
    from app.notify import notify

    if not person.email:
        return
    # The final statement PDF (the statement renderer, the tenancy's last month) is attached
    # when the email is delivered, so it shows the move-out's postings once they are committed.
    notify(session, "move_out_statement", {"unit": unit, "estate": estate, "move_out": result.move_out,
                                           "pockets": result.pockets, "statement_url": None,
                                           "attached": True},
           person=person, channels=("email",),
           attachment={"kind": "statement", "unit_id": unit.id, "period": f"{result.move_out:%Y-%m}"})


# --- refunds ----------------------------------------------------------------------------------

def refunds_of(session: Session, estate: Estate, *, status: str | None = None) -> list[tuple[Refund, Unit, Person]]:
    """The estate's move-out refunds with their unit and person, newest first."""
    query = (select(Refund, Unit, Person).join(Unit, Unit.id == Refund.unit_id).join(Person, Person.id == Refund.person_id)
             .where(Refund.estate_id == estate.id))
    if status:
        query = query.where(Refund.status == status)
    return [tuple(row) for row in session.execute(query.order_by(Refund.id.desc()).limit(500))]


def mark_refund_paid(session: Session, actor: User, refund: Refund, reference: str, *,
                     now: datetime | None = None) -> Refund:
    """Record that a refund was paid out (refunds payable to the payout account); commits once."""
    estate = session.get(Estate, refund.estate_id)
    _check_reach(session, actor, estate.id)
    reference = (reference or "").strip()[:100]
    if refund.status == "paid":
        raise MoveError({"reference": gettext("This refund is already marked paid.")})
    if not reference:
        raise MoveError({"reference": gettext("Enter the payout's reference (bank or mobile-money transaction).")})
    now = now or utcnow()
    payable = system_account(session, estate, "refunds_payable", "move_out", name="Refunds payable (move-outs)")
    payout = system_account(session, estate, "clearing", "refund_payouts", name="Refund payouts")
    post(session, Entry(estate_id=estate.id, kind="refund", idempotency_key=f"refund_paid:{refund.id}",
                        legs=[(payable.id, -refund.amount), (payout.id, refund.amount)], occurred_at=now,
                        created_by_user_id=actor.id, memo=f"Refund {refund.id} paid out ({reference})"))
    refund.status, refund.paid_at, refund.paid_by_user_id, refund.payout_reference = "paid", now, actor.id, reference
    audit.record(session, "refund.paid", refund, estate_id=estate.id, old={"status": "owed"},
                 new={"status": "paid", "reference": reference})
    session.commit()
    return refund


# --- manual readings --------------------------------------------------------------------------

def enter_reading(session: Session, actor: User, meter: Meter, register: Decimal, at: datetime, *,
                  now: datetime | None = None) -> ReadingOutcome:
    """Enter a reading read off a meter's display, through ingest, audited as the agent's; commits once."""
    now = now or utcnow()
    _check_reach(session, actor, meter.estate_id)
    if at > now:
        raise MoveError({"taken_at": gettext("Enter a time that has passed.")})
    interval = meter.interval_minutes if meter.reports_on_boundaries else None
    if interval and (at.minute % interval or at.second):
        at = at.replace(second=0, microsecond=0) - timedelta(minutes=(at.hour * 60 + at.minute) % interval)
    report = ingest(session, [manual_message(meter, register, at)], now=now, keep_dead_letters=False)
    if report.dead_letters:
        session.rollback()
        raise MoveError({"register": gettext("The reading was refused: %(why)s.", why=report.dead_letters[0])})
    if report.duplicates:
        session.rollback()
        raise MoveError({"taken_at": gettext("This meter already has a reading at that time.")})
    audit.record(session, "reading.manual", meter, estate_id=meter.estate_id,
                 new={"serial": meter.serial, "register": str(register), "taken_at": at, "source": "agent"})
    session.commit()
    return ReadingOutcome(meter.utility, meter.serial, register, at)
