"""The escalation ladder (A4): a daily job that acts on each unit's debt, one step at a time.

An estate's ladder (`arrears_ladder`, default Quantify's: day 0 warn, day 30 restrict, day 60
suspend, day 90 escalate) lists steps "after N days in arrears do ACTION". A unit is in an
*episode* from the local day it went into debt (the oldest of its debts, `app.billing.debt`)
until nothing is owed; each step is applied once per episode and remembered on it, so a job
that runs twice a day does nothing twice and a job that missed days catches up.

- warn: the tenants are told what is owed and since when (in-app, email, SMS).
- restrict: the recovery share of each top-up rises to the restricted rate; they are told.
- suspend: each electricity meter of the unit gets an "arrears" relay hold, so a top-up that
  leaves the debt unpaid does not reconnect it; released once the debt is back within the
  unit's credit limit. Water is never cut (it stays held at its limit by credit control).
- escalate: a task on the agent's arrears page, assignable and closable.

A payment plan that is being kept pauses the ladder; once an instalment is missed the ladder
resumes where the days have got to. Paying is never blocked. When the debt is cleared the
episode ends and what the ladder did is undone (holds released, recovery back to normal).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from flask_babel import gettext, lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import record as audit
from app.billing.debt import UnitDebt, debts, money_limits, today_rates, unit_debts
from app.estates.settings_catalog import setting_default
from app.jobs import job
from app.metering.credit_control import HoldRefused, active_holds, place_hold, release_hold
from app.models import Account, Estate, Meter, Person, Tenancy, Unit, User, Wallet, utcnow
from app.models.debt import LADDER_ACTIONS, ArrearsEpisode, ArrearsTask, PaymentPlan
from app.models.payments import Payment
from app.money import format_amount
from app.settings import get_setting
from app.sql_arrays import one_of
from app.routing import whole_number

LADDER_KEY = "arrears_ladder"


def ladder_steps(session: Session, estate: Estate) -> list[tuple[int, str]]:
    """The estate's ladder as (days, action), in order."""
    raw = get_setting(session, LADDER_KEY, estate.id, default=setting_default(LADDER_KEY)) or []
    items = raw.split(",") if isinstance(raw, str) else raw
    steps = []
    for item in items:
        days, _, action = str(item).strip().partition(":")
        if whole_number(days, 0, 36_500) is not None and action in LADDER_ACTIONS:
            steps.append((int(days), action))
    return sorted(steps)


STEP_WORDS = {"warn": _l("warned"), "restrict": _l("recovery raised"), "suspend": _l("suspended"),
              "escalate": _l("escalated")}


def steps_in_words(steps_done: str) -> str:
    """An episode's steps as a person reads them: "warned (day 0), recovery raised (day 30)"."""
    words = []
    for step in filter(None, steps_done.split(",")):
        days, _, action = step.partition(":")
        words.append(gettext("%(step)s (day %(day)s)", step=STEP_WORDS.get(action, action), day=days))
    return ", ".join(words)


# --- payment plans -------------------------------------------------------------------------

def instalment_date(plan: PaymentPlan, index: int) -> date:
    """When instalment `index` (0 first) falls due: weekly from the start, or monthly on its day."""
    import calendar
    from datetime import timedelta

    if plan.frequency == "weekly":
        return plan.starts_on + timedelta(days=7 * index)
    months = plan.starts_on.month - 1 + index
    year, month = plan.starts_on.year + months // 12, months % 12 + 1
    return date(year, month, min(plan.starts_on.day, calendar.monthrange(year, month)[1]))


def instalments_due(plan: PaymentPlan, today: date) -> int:
    """How many instalments fell due before today (today's may still be paid today)."""
    count = 0
    while instalment_date(plan, count) < today:
        count += 1
    return count


def plan_paid(session: Session, plan: PaymentPlan) -> Decimal:
    """What the unit has paid since the plan started (every credited payment counts)."""
    estate = session.get(Estate, plan.estate_id)
    start = datetime.combine(plan.starts_on, datetime.min.time(), tzinfo=estate.tz)
    return Decimal(session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(
        Payment.unit_id == plan.unit_id, Payment.status == "credited", Payment.credited_at >= start)) or 0)


def plan_kept(session: Session, plan: PaymentPlan, today: date) -> bool:
    """Whether every instalment due so far has been paid."""
    return plan_paid(session, plan) >= plan.instalment * instalments_due(plan, today)


def active_plan(session: Session, unit_id: int) -> PaymentPlan | None:
    return session.scalar(select(PaymentPlan).where(PaymentPlan.unit_id == unit_id, PaymentPlan.status == "active")
                          .order_by(PaymentPlan.id.desc()))


# --- the daily run -------------------------------------------------------------------------

@dataclass
class LadderReport:
    """What one run did: steps applied as (unit number, step), episodes opened and closed, paused units."""

    applied: list[tuple[str, str]] = field(default_factory=list)
    opened: int = 0
    closed: int = 0
    paused: list[str] = field(default_factory=list)
    released: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{len(self.applied)} step{'s' if len(self.applied) != 1 else ''} applied, {self.opened} opened, "
                f"{self.closed} closed, {len(self.paused)} paused by a plan, {self.released} holds released")


def unit_limit(session: Session, estate: Estate, unit_id: int) -> Decimal:
    """The unit's credit limit for the ladder: its electricity pocket's (money)."""
    pocket = session.scalar(select(Account).join(Wallet, Wallet.id == Account.wallet_id).where(
        Wallet.unit_id == unit_id, Account.utility == "electricity"))
    if pocket is None:
        return Decimal("0")
    rates = today_rates(session, [(pocket, estate, unit_id)])
    return money_limits(session, [(pocket, estate)], rates).get(pocket.id, Decimal("0"))


def unit_limits(session: Session, estate: Estate, unit_ids: set[int]) -> dict[int, Decimal]:
    """Each unit's credit limit for the ladder (its electricity pocket's, money), in one pass."""
    if not unit_ids:
        return {}
    # Plain rows (id, estate, utility), not Account objects: every debtor's pocket is read daily.
    pockets = [(row, row.unit_id) for row in session.execute(
        select(Account.id, Account.estate_id, Account.utility, Wallet.unit_id)
        .join(Wallet, Wallet.id == Account.wallet_id)
        .where(one_of(session, Wallet.unit_id, unit_ids), Account.utility == "electricity"))]
    rates = today_rates(session, [(pocket, estate, unit_id) for pocket, unit_id in pockets])
    limits = money_limits(session, [(pocket, estate) for pocket, _ in pockets], rates)
    return {unit_id: limits[pocket.id] for pocket, unit_id in pockets}


def run_ladder(session: Session, estate: Estate, *, today: date | None = None, now: datetime | None = None,
               unit_ids: set[int] | None = None) -> LadderReport:
    """Apply the ladder to every unit of the estate (or these units) once; the caller commits."""
    now = now or utcnow()
    today = today or now.astimezone(estate.tz).date()
    report = LadderReport()
    owed = {unit_id: debt for unit_id, debt in unit_debts(debts(session, [estate], unit_ids=unit_ids,
                                                                 today=today, now=now)).items() if debt.owed > 0}
    query = select(ArrearsEpisode).where(ArrearsEpisode.estate_id == estate.id, ArrearsEpisode.closed_at.is_(None))
    if unit_ids is not None:
        query = query.where(ArrearsEpisode.unit_id.in_(unit_ids))
    episodes = {episode.unit_id: episode for episode in session.scalars(query)}
    steps = ladder_steps(session, estate)
    units = {unit_id: debt.items[0].unit for unit_id, debt in owed.items()}  # loaded by debts() already
    missing = set(episodes) - set(units)
    if missing:
        units.update({unit.id: unit for unit in session.scalars(select(Unit).where(one_of(session, Unit.id, missing)))})
    limits = unit_limits(session, estate, set(owed))
    plans = {plan.unit_id: plan for plan in session.scalars(select(PaymentPlan).where(
        PaymentPlan.estate_id == estate.id, PaymentPlan.status == "active").order_by(PaymentPlan.id))}
    for unit_id, episode in episodes.items():
        if unit_id not in owed:
            end_episode(session, episode, units[unit_id], report, now=now)
    opened = [ArrearsEpisode(estate_id=estate.id, unit_id=unit_id, since=debt.since, opened_at=now)
              for unit_id, debt in owed.items() if unit_id not in episodes]
    if opened:  # one flush for every new episode (a flush each grew with the session: minutes at 10,000)
        session.add_all(opened)
        session.flush()
        for episode in opened:
            episodes[episode.unit_id] = episode
            audit(session, "arrears.episode_open", episode, estate_id=estate.id,
                  new={"unit": units[episode.unit_id].number, "since": episode.since.isoformat()})
        report.opened += len(opened)
    with session.no_autoflush:  # the steps' reads need none of the rows this run adds; flushed once below
        _apply_steps(session, estate, owed, episodes, units, limits, plans, steps, today, report)
    session.flush()
    return report


def _apply_steps(session: Session, estate: Estate, owed: dict, episodes: dict, units: dict, limits: dict,
                 plans: dict, steps: list, today: date, report: LadderReport) -> None:
    """Each indebted unit's due steps, once per episode (run_ladder's loop)."""
    due: list[tuple[Unit, ArrearsEpisode, UnitDebt, Decimal, int, list[tuple[int, str]]]] = []
    for unit_id, debt in owed.items():
        unit = units[unit_id]
        episode = episodes[unit_id]
        if debt.since < episode.since:
            episode.since = debt.since  # an older debt joined the episode (a record dated back)
        limit = limits.get(unit_id, Decimal("0"))
        if "suspend" in episode.steps_done and debt.owed <= limit:
            report.released += release_arrears_holds(session, unit, "debt within the credit limit")
        plan = plans.get(unit_id)
        if plan is not None and plan_kept(session, plan, today):
            report.paused.append(unit.number)
            continue
        days = (today - episode.since).days
        todo = [(after, action) for after, action in steps
                if days >= after and f"{after}:{action}" not in episode.done]
        if todo:
            due.append((unit, episode, debt, limit, days, todo))
    # Whom to tell, read once for every unit told this run (not a query or two per notice).
    recipients = Recipients.load(session, estate, {unit.id for unit, *_, todo in due
                                                   if any(action != "escalate" for _, action in todo)})
    for unit, episode, debt, limit, days, todo in due:
        for after, action in todo:
            key = f"{after}:{action}"
            apply_step(session, estate, unit, episode, action, debt, limit, report, recipients)
            episode.steps_done = ",".join([*[s for s in episode.steps_done.split(",") if s], key])
            audit(session, "arrears.step", episode, new={"unit": unit.number, "step": key,
                                                        "owed": str(debt.owed), "days": days},
                  estate_id=estate.id)
            report.applied.append((unit.number, key))


def apply_step(session: Session, estate: Estate, unit: Unit, episode: ArrearsEpisode, action: str,
               debt: UnitDebt, limit: Decimal, report: LadderReport,
               recipients: Recipients | None = None) -> None:
    """Do one rung of the ladder for the unit."""
    if action == "restrict":
        episode.restricted = True
    elif action == "suspend" and debt.owed > limit:
        meters = session.scalars(select(Meter).where(Meter.unit_id == unit.id, Meter.role == "unit",
                                                     Meter.utility == "electricity", Meter.detached_at.is_(None)))
        for meter in meters:
            try:
                place_hold(session, meter, "arrears",
                           f"arrears of {format_amount(debt.owed, estate.currency)} since {debt.since.isoformat()}")
            except HoldRefused as refused:
                report.notes.append(f"unit {unit.number}: {refused}")
    elif action == "escalate":
        if session.scalar(select(ArrearsTask.id).where(ArrearsTask.episode_id == episode.id)) is None:
            session.add(ArrearsTask(estate_id=estate.id, unit_id=unit.id, episode_id=episode.id,
                                    title=f"Unit {unit.number} owes {format_amount(debt.owed, estate.currency)} "
                                          f"since {debt.since.isoformat()}"[:200]))
        return  # the agent's page carries it; the tenants are not told of the hand-over
    tell(session, estate, unit, action, debt, recipients)


@dataclass
class Recipients:
    """Who is told of ladder steps: each unit's tenants today with their active login (if any),
    and the estate's restricted recovery rate; read in three queries for a whole run."""

    people: dict[int, list[tuple[Person, User | None]]]
    restricted_percent: object

    @classmethod
    def load(cls, session: Session, estate: Estate, unit_ids: set[int]) -> Recipients:
        percent = get_setting(session, "arrears_restricted_percent", estate.id,
                              default=setting_default("arrears_restricted_percent"))
        people: dict[int, list[tuple[Person, User | None]]] = {unit_id: [] for unit_id in unit_ids}
        ids = sorted(unit_ids)
        today = date.today()  # as current_tenant_persons reads "today"
        found: list[tuple[int, Person]] = []
        for start in range(0, len(ids), 5000):
            found.extend(session.execute(
                select(Tenancy.unit_id, Person).join(Person, Person.id == Tenancy.person_id)
                .where(one_of(session, Tenancy.unit_id, ids[start:start + 5000]), Tenancy.move_in <= today,
                       (Tenancy.move_out.is_(None)) | (Tenancy.move_out > today))
                .order_by(Tenancy.unit_id, Person.id)).all())
        person_ids = sorted({person.id for _, person in found})
        users: dict[int, User] = {}
        for start in range(0, len(person_ids), 5000):
            for user in session.scalars(select(User).where(one_of(session, User.person_id,
                                                                  person_ids[start:start + 5000]),
                                                           User.active.is_(True)).order_by(User.id.desc())):
                users[user.person_id] = user  # the oldest active login, as a scalar() read found it
        for unit_id, person in found:
            people[unit_id].append((person, users.get(person.id)))
        return cls(people, percent)


def tell(session: Session, estate: Estate, unit: Unit, action: str, debt: UnitDebt,
         recipients: Recipients | None = None) -> None:
    """Tell the unit's tenants of a ladder step (in-app, email, SMS)."""
    from app.notify import notify

    if recipients is None or unit.id not in recipients.people:
        recipients = Recipients.load(session, estate, {unit.id})
    context = {"action": action, "unit": unit, "estate": estate,
               "owed": format_amount(debt.owed, estate.currency), "since": debt.since,
               "restricted_percent": recipients.restricted_percent}
    try:
        for person, user in recipients.people[unit.id]:
            notify(session, "arrears_notice", context, user=user, person=person,
                   channels=("in_app", "email", "sms") if user else ("email", "sms"))
    except RuntimeError:  # no application context: notices need templates
        pass


def release_arrears_holds(session: Session, unit: Unit, reason: str) -> int:
    """Release the unit's arrears holds (supply returns where the balance allows)."""
    meters = list(session.scalars(select(Meter.id).where(Meter.unit_id == unit.id)))
    released = 0
    for hold in active_holds(session, meters):
        if hold.kind == "arrears":
            release_hold(session, hold, reason=reason)
            released += 1
    return released


def end_episode(session: Session, episode: ArrearsEpisode, unit: Unit, report: LadderReport, *,
                now: datetime) -> None:
    """The debt is cleared: close the episode and undo what the ladder did."""
    report.released += release_arrears_holds(session, unit, "arrears cleared")
    episode.closed_at, episode.restricted = now, False
    for plan in session.scalars(select(PaymentPlan).where(PaymentPlan.unit_id == unit.id,
                                                          PaymentPlan.status == "active")):
        plan.status, plan.ended_at = "ended", now
    audit(session, "arrears.episode_close", episode, new={"unit": unit.number, "steps": episode.steps_done},
          estate_id=episode.estate_id)
    report.closed += 1


def after_payment(session: Session, unit: Unit) -> None:
    """After a top-up: if the unit has an episode, settle it at once (a cleared debt reconnects now)."""
    if session.scalar(select(ArrearsEpisode.id).where(ArrearsEpisode.unit_id == unit.id,
                                                      ArrearsEpisode.closed_at.is_(None))) is None:
        return
    estate = session.get(Estate, unit.estate_id)
    owed = unit_debts(debts(session, [estate], unit_ids={unit.id})).get(unit.id)
    if owed is None or owed.owed <= 0:
        episode = session.scalar(select(ArrearsEpisode).where(ArrearsEpisode.unit_id == unit.id,
                                                              ArrearsEpisode.closed_at.is_(None)))
        end_episode(session, episode, unit, LadderReport(), now=utcnow())
    elif owed.owed <= unit_limit(session, estate, unit.id):
        release_arrears_holds(session, unit, "debt within the credit limit")


@job("arrears_ladder")
def ladder_job(session: Session, progress) -> str:
    """Apply each estate's escalation ladder once (A4); each estate commits on its own."""
    estates = list(session.scalars(select(Estate).order_by(Estate.id)))
    progress.set_total(len(estates))
    applied = opened = closed = 0
    for estate in estates:
        report = run_ladder(session, estate)
        session.commit()
        applied, opened, closed = applied + len(report.applied), opened + report.opened, closed + report.closed
        for note in report.notes:
            progress.error(f"{estate.code}: {note}")
        progress.step()
    return f"{applied} ladder steps applied, {opened} episodes opened, {closed} closed"


# --- what agents and staff do from the arrears pages ----------------------------------------

class LadderError(ValueError):
    """A plan or task change that cannot be made; `errors` is keyed by field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def agree_plan(session: Session, unit: Unit, values: dict, *, user_id: int | None = None) -> PaymentPlan:
    """Agree a payment plan for the unit (ending the one in place); audited; commits once."""
    from app.money import MoneyError, parse_amount

    estate = session.get(Estate, unit.estate_id)
    errors: dict[str, str] = {}
    try:
        instalment = parse_amount(values.get("instalment"), estate.currency)
        if instalment <= 0:
            errors["instalment"] = "an instalment is more than zero"
    except MoneyError as error:
        errors["instalment"] = str(error)
    frequency = str(values.get("frequency") or "")
    if frequency not in ("weekly", "monthly"):
        errors["frequency"] = "choose weekly or monthly"
    try:
        starts_on = date.fromisoformat(str(values.get("starts_on") or "").strip()[:10])
    except ValueError:
        errors["starts_on"] = "give the first instalment's date, like 2026-12-01"
    if errors:
        raise LadderError(errors)
    now = utcnow()
    for old in session.scalars(select(PaymentPlan).where(PaymentPlan.unit_id == unit.id,
                                                         PaymentPlan.status == "active")):
        old.status, old.ended_at = "ended", now
    plan = PaymentPlan(estate_id=estate.id, unit_id=unit.id, instalment=instalment, frequency=frequency,
                       starts_on=starts_on, note=str(values.get("note") or "")[:200], created_by_user_id=user_id)
    session.add(plan)
    session.flush()
    audit(session, "arrears.plan", plan, new={"unit": unit.number, "instalment": str(instalment),
                                              "frequency": frequency, "starts_on": starts_on.isoformat()},
          estate_id=estate.id)
    session.commit()
    return plan


def end_plan(session: Session, plan: PaymentPlan, *, user_id: int | None = None) -> None:
    """End a payment plan: the ladder resumes; audited; commits once."""
    if plan.status == "active":
        plan.status, plan.ended_at = "ended", utcnow()
        audit(session, "arrears.plan_end", plan, old={"status": "active"}, new={"status": "ended"},
              estate_id=plan.estate_id)
    session.commit()


def update_task(session: Session, task: ArrearsTask, action: str, *, user_id: int, note: str = "") -> ArrearsTask:
    """Take (assign to oneself), hand to another user, or close an escalation task; commits once."""
    old = {"status": task.status, "assigned_to": task.assigned_to_user_id}
    if action == "take":
        task.assigned_to_user_id = user_id
    elif action == "close":
        if task.status == "closed":
            raise LadderError({"task": "this task is closed already"})
        task.status, task.closed_at, task.closed_by_user_id = "closed", utcnow(), user_id
        task.close_note = note.strip()[:200]
    else:
        raise LadderError({"task": "choose take or close"})
    session.flush()
    audit(session, f"arrears.task_{action}", task, old=old,
          new={"status": task.status, "assigned_to": task.assigned_to_user_id, "note": task.close_note},
          estate_id=task.estate_id)
    session.commit()
    return task


def seed_demo_arrears(session: Session, estate: Estate, tenants: dict) -> list[str]:
    """Demo (issue 16): a few of the estate's tenants with aged arrears brought over from a previous
    system, one on a payment plan. The demo runs the ladder once after every debt is seeded (levy
    arrears come later), not here. The caller commits."""
    from datetime import timedelta

    from app.billing.arrears import open_arrears
    from app.ledger.accounts import system_account

    opening = system_account(session, estate, "opening_balance", "migration", name="Balances brought over")
    units = {unit.number: unit for unit in session.scalars(select(Unit).where(Unit.estate_id == estate.id))}
    now = utcnow()
    chosen = [number for number in sorted(tenants) if number in units and number != "A03"][:4]
    ages = (130, 75, 40, 12)
    amounts = ("1850.00", "920.50", "410.00", "95.00")
    for number, days, amount in zip(chosen, ages, amounts):
        open_arrears(session, estate=estate, person=tenants[number], amount=Decimal(amount), unit=units[number],
                     reason="Balance owed on the previous billing system", source="migration",
                     source_ref=f"demo:{number}", against=opening, occurred_at=now - timedelta(days=days))
    if len(chosen) > 1:
        plan = PaymentPlan(estate_id=estate.id, unit_id=units[chosen[1]].id, instalment=Decimal("150.00"),
                           frequency="monthly", starts_on=(now + timedelta(days=3)).astimezone(estate.tz).date(),
                           note="Agreed by phone")
        session.add(plan)
    session.flush()
    return chosen
