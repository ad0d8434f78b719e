"""Settlement to parties (U3): rules per estate and utility, monthly runs, statements and payouts.

Revenue of a month is what the utility's revenue account took in that month (transaction
period), settlement transfers and their reversals left out: in currency-wallet estates the
money billed for consumption and standing charges ("billed"); in units-wallet estates the
money received for units sold ("sold"). Every run says which.

A run splits the revenue over the rule set in force, in rule order: percentages (shared by
largest remainder, so their rounded total is the rounded exact total), fixed amounts, and one
remainder that takes what is left. Parts always sum to the revenue to the minor unit; a split
whose remainder would be negative is refused. Each part is one ledger transfer from revenue
to the party's account, keyed `settlement:<estate>:<utility>:<period>:<run>:<party>`: a rerun
of a posted month posts nothing; a correction is a reversal of the run, then a new run with
the next run number. Nothing posts into a locked period (the ledger refuses it).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

from flask_babel import gettext
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session, aliased

from app import audit
from app.i18n.label_texts import N_
from app.jobs import enqueue, job
from app.ledger import Entry, LedgerError, post_many, reverse
from app.ledger.accounts import system_account
from app.models import Account, Estate, LedgerTransaction, Posting, utcnow
from app.models.meter import UTILITIES
from app.models.settlement import (PARTY_ROLES, RULE_METHODS, SettlementLine, SettlementParty, SettlementRule,
                                   SettlementRuleSet, SettlementRun)
from app.money import MoneyError, format_amount, minor_units, parse_amount, quantize
from app.periods import InvalidPeriod, checked_period, last_complete_period, month_bounds

JOB_KIND = "settlement_run"
TRANSACTION_KIND = "settlement"
PAYOUT_KIND = "settlement_payout"
MAX_RULES = 20
BASIS_TEXT = {  # English msgids: shown through gettext (`basis_text()`, the `translate` filter)
    "billed": N_("Revenue is the money billed for consumption and standing charges in the month."),
    "sold": N_("Revenue is the money received for units sold in the month (units wallet)."),
}


def basis_text(basis: str) -> str:
    """What "revenue" means for a run's basis, in the reader's language."""
    return gettext(BASIS_TEXT[basis])


class SettlementError(Exception):
    """A settlement request was refused and nothing was written; `errors` is keyed by field."""

    def __init__(self, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.errors = errors or {"settlement": message}


class RuleError(SettlementError):
    """The rules do not make a valid split (values, parties, not exactly one remainder)."""


class PartyError(SettlementError):
    """A party's name, role or contact is not acceptable."""


class SplitRefused(SettlementError):
    """The month's revenue cannot be split by these rules (nothing to split, remainder below zero)."""


class RunError(SettlementError):
    """A run, reversal or payout cannot be done (locked period, nothing to reverse, paid already)."""


# --- parties ------------------------------------------------------------------------------


def parties(session: Session, estate_id: int) -> list[SettlementParty]:
    """The estate's parties, by name."""
    return list(session.scalars(select(SettlementParty).where(SettlementParty.estate_id == estate_id)
                                .order_by(SettlementParty.name)))


def add_party(session: Session, estate: Estate, *, name: str, role: str, contact_email: str = "",
              user_id: int | None = None) -> SettlementParty:
    """Add a party with its own ledger account (kind "party"); commits."""
    name, contact_email = (name or "").strip(), (contact_email or "").strip()
    errors = {}
    if not 1 <= len(name) <= 200:
        errors["name"] = "Give the party a name (up to 200 characters)."
    elif session.scalar(select(SettlementParty.id).where(SettlementParty.estate_id == estate.id,
                                                         func.lower(SettlementParty.name) == name.lower())):
        errors["name"] = f"{estate.name} already has a party called {name}."
    if role not in PARTY_ROLES:
        errors["role"] = "Choose what kind of party this is."
    if contact_email and ("@" not in contact_email or len(contact_email) > 254 or " " in contact_email):
        errors["contact_email"] = "Enter an email address like accounts@example.com, or leave it empty."
    if errors:
        raise PartyError("the party was not added", errors)
    number = (session.scalar(select(func.count(SettlementParty.id))
                             .where(SettlementParty.estate_id == estate.id)) or 0) + 1
    while session.scalar(select(Account.id).where(Account.estate_id == estate.id,
                                                  Account.code == f"party:{number}")):
        number += 1
    account = system_account(session, estate, "party", str(number), name=f"{name} (settlement)")
    party = SettlementParty(estate_id=estate.id, name=name, role=role, contact_email=contact_email or None,
                            account_id=account.id)
    session.add(party)
    session.flush()
    audit.record(session, "settlement.party_added", party, new={"name": name, "role": role,
                                                                "contact_email": contact_email})
    session.commit()
    return party


# --- rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleInput:
    """One rule as typed: the party, its method and value (text as in the form)."""

    party_id: int | None
    method: str
    value: str = ""


@dataclass(frozen=True)
class Rule:
    party_id: int
    method: str
    value: Decimal | None


def validate_rules(rows: list[RuleInput], currency: str, party_ids: set[int]) -> list[Rule]:
    """Check rules as typed; RuleError carries a message per field (`rule-<n>-value`, `rules`)."""
    errors: dict[str, str] = {}
    rules: list[Rule] = []
    seen: set[int] = set()
    rows = [row for row in rows if row.party_id or (row.value or "").strip()]
    if not rows:
        errors["rules"] = "Add at least one rule: one party must take the remainder."
    if len(rows) > MAX_RULES:
        errors["rules"] = f"At most {MAX_RULES} rules."
    for n, row in enumerate(rows, start=1):
        if row.party_id not in party_ids:
            errors[f"rule-{n}-party"] = "Choose one of the estate's parties."
        elif row.party_id in seen:
            errors[f"rule-{n}-party"] = "This party already has a rule; each party takes one share."
        else:
            seen.add(row.party_id)
        value: Decimal | None = None
        if row.method not in RULE_METHODS:
            errors[f"rule-{n}-method"] = "Choose percentage, fixed amount or remainder."
        elif row.method == "percentage":
            try:
                value = parse_amount(row.value, currency, places=4)
            except MoneyError as error:
                errors[f"rule-{n}-value"] = f"Percentage: {error}."
            else:
                if not Decimal(0) < value <= 100:
                    errors[f"rule-{n}-value"] = "A percentage is more than 0 and at most 100."
        elif row.method == "fixed":
            try:
                value = parse_amount(row.value, currency)
            except MoneyError as error:
                errors[f"rule-{n}-value"] = f"Amount: {error}."
            else:
                if value <= 0:
                    errors[f"rule-{n}-value"] = "A fixed amount is more than zero."
        elif (row.value or "").strip():
            errors[f"rule-{n}-value"] = "The remainder takes what is left: leave its value empty."
        rules.append(Rule(row.party_id or 0, row.method, value))
    remainders = sum(1 for rule in rules if rule.method == "remainder")
    if rows and remainders != 1:
        errors["rules"] = ("Exactly one party takes the remainder, so every cent is shared "
                           f"(these rules have {remainders}).")
    percent = sum((rule.value or 0 for rule in rules if rule.method == "percentage"), Decimal(0))
    if percent > 100:
        errors.setdefault("rules", f"The percentages add up to {percent.normalize():f} %: at most 100 %.")
    if errors:
        raise RuleError("the rules were not saved", errors)
    return rules


def save_rules(session: Session, estate: Estate, utility: str, effective_from: str, rows: list[RuleInput], *,
               user_id: int | None = None) -> SettlementRuleSet:
    """Save a new rule set for the utility from a month on (earlier runs keep theirs); commits."""
    errors = {}
    if utility not in UTILITIES:
        errors["utility"] = "Choose a utility."
    try:
        effective_from = checked_period(effective_from)
    except InvalidPeriod:
        errors["effective_from"] = "Choose the first month these rules settle (YYYY-MM)."
    party_ids = {party.id for party in parties(session, estate.id)}
    try:
        rules = validate_rules(rows, estate.currency, party_ids)
    except RuleError as error:
        errors.update(error.errors)
    if errors:
        raise RuleError("the rules were not saved", errors)
    previous = rules_in_force(session, estate.id, utility, effective_from)
    rule_set = SettlementRuleSet(estate_id=estate.id, utility=utility, effective_from=effective_from,
                                 created_by_user_id=user_id)
    rule_set.rules = [SettlementRule(position=n, party_id=rule.party_id, method=rule.method, value=rule.value)
                      for n, rule in enumerate(rules, start=1)]
    session.add(rule_set)
    session.flush()
    audit.record(session, "settlement.rules_saved", rule_set, old=_rules_audit(previous),
                 new=_rules_audit(rule_set))
    session.commit()
    return rule_set


def _rules_audit(rule_set: SettlementRuleSet | None) -> dict | None:
    if rule_set is None:
        return None
    return {"utility": rule_set.utility, "effective_from": rule_set.effective_from,
            "rules": [{"party_id": r.party_id, "method": r.method,
                       "value": None if r.value is None else str(r.value)} for r in rule_set.rules]}


def rules_in_force(session: Session, estate_id: int, utility: str, period: str) -> SettlementRuleSet | None:
    """The rule set that settles the month: the latest saved with effective_from at or before it."""
    return session.scalar(
        select(SettlementRuleSet).where(SettlementRuleSet.estate_id == estate_id,
                                        SettlementRuleSet.utility == utility,
                                        SettlementRuleSet.effective_from <= period)
        .order_by(SettlementRuleSet.effective_from.desc(), SettlementRuleSet.id.desc()).limit(1))


def settled_utilities(session: Session, estate_id: int) -> list[str]:
    """The utilities the estate has settlement rules for, in pocket order."""
    found = set(session.scalars(select(SettlementRuleSet.utility).where(SettlementRuleSet.estate_id == estate_id)))
    return [utility for utility in UTILITIES if utility in found]


# --- the split ----------------------------------------------------------------------------


def split(revenue: Decimal, rules: list[Rule], currency: str) -> list[Decimal]:
    """Each rule's part of `revenue`, in rule order, summing exactly to it; SplitRefused otherwise."""
    revenue = quantize(revenue, currency)
    if revenue <= 0:
        raise SplitRefused(f"There is no revenue to settle ({format_amount(revenue, currency)}).")
    step = Decimal(1).scaleb(-minor_units(currency))
    parts: list[Decimal | None] = [None] * len(rules)
    percent = [(i, revenue * rule.value / 100) for i, rule in enumerate(rules) if rule.method == "percentage"]
    # Largest remainder: floor each exact share, then hand the minor units still owed to the
    # shares that lost most to the floor (earlier rules first on a tie).
    floors = {i: exact.quantize(step, rounding=ROUND_FLOOR) for i, exact in percent}
    wanted = sum((exact for _, exact in percent), Decimal(0)).quantize(step, rounding=ROUND_HALF_EVEN)
    extra = int((wanted - sum(floors.values(), Decimal(0))) / step)
    by_loss = sorted(percent, key=lambda item: (-(item[1] - floors[item[0]]), item[0]))
    for n, (i, _) in enumerate(by_loss):
        parts[i] = floors[i] + (step if n < extra else 0)
    for i, rule in enumerate(rules):
        if rule.method == "fixed":
            parts[i] = quantize(rule.value, currency)
    remainder_index = next(i for i, rule in enumerate(rules) if rule.method == "remainder")
    taken = sum((part for part in parts if part is not None), Decimal(0))
    left = revenue - taken
    if left < 0:
        raise SplitRefused(
            f"The fixed amounts and percentages ({format_amount(taken, currency)}) come to more than the "
            f"revenue ({format_amount(revenue, currency)}): the remainder would be "
            f"{format_amount(left, currency)}. Change the rules, then run again.")
    parts[remainder_index] = left
    return [part for part in parts]  # type: ignore[misc]


# --- revenue ------------------------------------------------------------------------------


def revenue_account(session: Session, estate: Estate, utility: str) -> Account:
    return system_account(session, estate, "revenue", utility, utility=utility)


def period_revenue(session: Session, estate: Estate, utility: str, period: str) -> tuple[Decimal, str]:
    """The month's revenue of a utility and its basis ("billed" or "sold")."""
    basis = "sold" if estate.wallet_denomination == "units" else "billed"
    account_id = session.scalar(select(Account.id).where(Account.estate_id == estate.id,
                                                         Account.code == f"revenue:{utility}"))
    if account_id is None:  # nothing ever billed: and reading a figure opens no account
        return quantize(Decimal(0), estate.currency), basis
    original = aliased(LedgerTransaction)
    total = session.scalar(
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .outerjoin(original, original.id == LedgerTransaction.reverses_id)
        .where(Posting.account_id == account_id, LedgerTransaction.period == period,
               LedgerTransaction.kind != TRANSACTION_KIND,
               func.coalesce(original.kind, "") != TRANSACTION_KIND))
    return quantize(Decimal(total or 0), estate.currency), basis


# --- runs ---------------------------------------------------------------------------------


@dataclass
class PlannedLine:
    position: int
    party: SettlementParty
    method: str
    value: Decimal | None
    amount: Decimal


@dataclass
class UtilityOutcome:
    """What a run did (or would do) for one utility."""

    utility: str
    status: str  # posted, would_post, already_posted, refused
    message: str = ""
    revenue: Decimal | None = None
    basis: str = ""
    run: SettlementRun | None = None
    lines: list[PlannedLine] = field(default_factory=list)


@dataclass
class RunReport:
    estate: Estate
    period: str
    dry_run: bool
    outcomes: list[UtilityOutcome]

    @property
    def posted(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "posted")

    def summary(self) -> str:
        if not self.outcomes:
            return gettext("%(estate)s has no settlement rules for %(month)s.", estate=self.estate.name, month=self.period)
        return "\n".join(f"{o.utility.replace('_', ' ')}: {o.status.replace('_', ' ')}"
                         + (f" {format_amount(o.revenue, self.estate.currency)}" if o.revenue is not None else "")
                         + (f" — {o.message}" if o.message else "") for o in self.outcomes)


def current_run(session: Session, estate_id: int, utility: str, period: str) -> SettlementRun | None:
    """The posted (not reversed) run of a month, if any."""
    return session.scalar(select(SettlementRun).where(
        SettlementRun.estate_id == estate_id, SettlementRun.utility == utility, SettlementRun.period == period,
        SettlementRun.status == "posted").order_by(SettlementRun.run_number.desc()).limit(1))


def run_settlement(session: Session, estate: Estate, period: str, *, utility: str | None = None,
                   dry_run: bool = False, user_id: int | None = None, now=None) -> RunReport:
    """Settle an ended month for each utility with rules (or one); commits unless `dry_run`.

    The same report either way; a utility already settled is reported and posts nothing.
    """
    try:
        period = checked_period(period)
    except InvalidPeriod:
        raise RunError("Choose a month as YYYY-MM.", {"period": "Choose a month as YYYY-MM."}) from None
    if period > last_complete_period(estate.tz, now):
        raise RunError(f"{period} has not ended in {estate.name}; a month is settled after it ends.",
                       {"period": "Choose a month that has ended."})
    if not dry_run and utility in (None, "electricity", "solar"):  # net of the grid charge solar gives back
        from app.billing.shared_solar import allocate_before_billing
        allocate_before_billing(session, estate, period, user_id=user_id, now=now)
    utilities = [utility] if utility else settled_utilities(session, estate.id)
    if not utility and "solar" not in utilities and period_revenue(session, estate, "solar", period)[0] != 0:
        utilities.append("solar")  # reported as refused (no rules), so the money is not passed over in silence
    outcomes = []
    for name in utilities:
        outcomes.append(_settle_utility(session, estate, name, period, dry_run=dry_run, user_id=user_id))
    if dry_run:
        session.rollback()
    else:
        session.commit()
    return RunReport(estate, period, dry_run, outcomes)


def _settle_utility(session: Session, estate: Estate, utility: str, period: str, *, dry_run: bool,
                    user_id: int | None) -> UtilityOutcome:
    outcome = UtilityOutcome(utility, "refused")
    existing = current_run(session, estate.id, utility, period)
    if existing is not None:
        outcome.status, outcome.run, outcome.revenue, outcome.basis = (
            "already_posted", existing, existing.revenue, existing.basis)
        outcome.message = gettext("run %(number)s is posted; reverse it to settle again", number=existing.run_number)
        return outcome
    revenue, basis = period_revenue(session, estate, utility, period)
    outcome.revenue, outcome.basis = revenue, basis  # shown with a refusal too: the money left unsettled
    rule_set = rules_in_force(session, estate.id, utility, period)
    if rule_set is None:
        outcome.message = gettext("no settlement rules in force for %(month)s", month=period)
        return outcome
    rules = [Rule(r.party_id, r.method, r.value) for r in rule_set.rules]
    try:
        amounts = split(revenue, rules, estate.currency)
    except SplitRefused as error:
        outcome.message = str(error)
        return outcome
    outcome.lines = [PlannedLine(r.position, r.party, r.method, r.value, amount)
                     for r, amount in zip(rule_set.rules, amounts, strict=True)]
    if dry_run:
        outcome.status = "would_post"
        return outcome
    number = (session.scalar(select(func.max(SettlementRun.run_number)).where(
        SettlementRun.estate_id == estate.id, SettlementRun.utility == utility,
        SettlementRun.period == period)) or 0) + 1
    _, end = month_bounds(period, estate.timezone)
    occurred_at = end - timedelta(microseconds=1)  # the settled month's last moment: its period
    source = revenue_account(session, estate, utility)
    entries = []
    for line in outcome.lines:
        if line.amount == 0:
            continue
        entries.append(Entry(
            estate_id=estate.id, kind=TRANSACTION_KIND,
            idempotency_key=f"settlement:{estate.code}:{utility}:{period}:{number}:{line.party.id}",
            legs=[(source.id, -line.amount), (line.party.account_id, line.amount)], occurred_at=occurred_at,
            memo=f"Settlement {period} {utility.replace('_', ' ')} run {number}: {line.party.name}",
            created_by_user_id=user_id))
    savepoint = session.begin_nested()
    try:
        posted = post_many(session, entries)
    except LedgerError as error:
        savepoint.rollback()
        outcome.message = _ledger_refusal(error, period)
        return outcome
    run = SettlementRun(estate_id=estate.id, utility=utility, period=period, run_number=number,
                        rule_set_id=rule_set.id, basis=basis, revenue=revenue, currency=estate.currency,
                        created_by_user_id=user_id)
    by_party = {entry.idempotency_key.rsplit(":", 1)[1]: p.transaction_id for entry, p in zip(entries, posted)}
    run.lines = [SettlementLine(position=line.position, party_id=line.party.id, method=line.method,
                                value=line.value, amount=line.amount,
                                transaction_id=by_party.get(str(line.party.id)))
                 for line in outcome.lines]
    session.add(run)
    session.flush()
    savepoint.commit()
    audit.record(session, "settlement.run_posted", run, new={
        "utility": utility, "period": period, "run": number, "revenue": str(revenue), "basis": basis,
        "parts": {str(line.party.id): str(line.amount) for line in outcome.lines}})
    outcome.status, outcome.run = "posted", run
    return outcome


def _ledger_refusal(error: LedgerError, period: str) -> str:
    from app.ledger import PeriodClosed, PeriodLocked

    if isinstance(error, PeriodLocked):
        return gettext("%(month)s is locked: nothing may be posted into it", month=period)
    if isinstance(error, PeriodClosed):
        return gettext("%(month)s is closed: reopen it to settle it", month=period)
    return gettext("the ledger refused the transfer: %(error)s", error=error)


def reverse_run(session: Session, run: SettlementRun, *, reason: str, user_id: int | None = None) -> SettlementRun:
    """Reverse every transfer of a posted run (its month can then be settled again); commits."""
    reason = (reason or "").strip()
    if not reason:
        raise RunError("Say why the run is reversed.", {"reason": "Say why the run is reversed."})
    if run.status != "posted":
        raise RunError(f"Run {run.run_number} is already reversed.")
    if any(line.paid_at for line in run.lines):
        raise RunError("A share of this run has been paid out: a paid run is not reversed.")
    original_ids = [line.transaction_id for line in run.lines if line.transaction_id]
    try:
        for line in run.lines:
            if line.transaction_id:
                original = session.get(LedgerTransaction, line.transaction_id)
                posted = reverse(session, line.transaction_id, occurred_at=original.occurred_at,
                                 memo=f"Reversal of settlement {run.period} run {run.run_number}: {reason}",
                                 created_by_user_id=user_id)
                line.reversal_transaction_id = posted.transaction_id
    except LedgerError as error:
        session.rollback()
        raise RunError(f"The reversal was refused: {_ledger_refusal(error, run.period)}.") from None
    run.status, run.reversed_at, run.reversed_by_user_id, run.reversal_reason = "reversed", utcnow(), user_id, reason
    audit.record(session, "settlement.run_reversed", run, old={"status": "posted"},
                 new={"status": "reversed", "reason": reason, "transactions": original_ids})
    session.commit()
    return run


def mark_paid(session: Session, line: SettlementLine, *, reference: str, user_id: int | None = None) -> SettlementLine:
    """Record that a party's share was paid out (bank reference); posts party → payouts; commits."""
    reference = (reference or "").strip()
    if not 1 <= len(reference) <= 100:
        raise RunError("Enter the bank reference of the payment.", {"reference": "Enter the bank reference (up to 100 characters)."})
    if line.paid_at is not None:
        raise RunError(f"This share was marked paid already (reference {line.paid_reference}).")
    run = line.run
    if run.status != "posted":
        raise RunError("This run was reversed: its shares are not paid out.")
    estate = session.get(Estate, run.estate_id)
    if line.amount > 0:
        payouts = system_account(session, estate, "clearing", "settlement_payouts", name="Settlement payouts")
        try:
            posted = post_many(session, [Entry(
                estate_id=estate.id, kind=PAYOUT_KIND, idempotency_key=f"settlement_payout:{line.id}",
                legs=[(line.party.account_id, -line.amount), (payouts.id, line.amount)],
                memo=f"Payout to {line.party.name}, settlement {run.period} run {run.run_number}, ref {reference}",
                created_by_user_id=user_id)])[0]
        except LedgerError as error:
            session.rollback()
            raise RunError(f"The payout was refused: {error}") from None
        line.payout_transaction_id = posted.transaction_id
    line.paid_at, line.paid_reference, line.paid_by_user_id = utcnow(), reference, user_id
    audit.record(session, "settlement.payout_marked", line, estate_id=estate.id,
                 new={"reference": reference, "amount": str(line.amount)})
    session.commit()
    return line


def runs_of(session: Session, estate_id: int, period: str | None = None) -> list[SettlementRun]:
    """The estate's runs (of a month), newest first."""
    query = select(SettlementRun).where(SettlementRun.estate_id == estate_id)
    if period:
        query = query.where(SettlementRun.period == period)
    return list(session.scalars(query.order_by(SettlementRun.period.desc(), SettlementRun.utility,
                                               SettlementRun.run_number.desc()).limit(200)))


# --- statements ---------------------------------------------------------------------------


@dataclass
class StatementRow:
    period: str
    utility: str
    run_number: int
    status: str
    basis: str
    revenue: Decimal
    rule: str
    amount: Decimal
    paid: str


def rule_text(method: str, value: Decimal | None, currency: str) -> str:
    """A rule as the reader writes it: "62.5 % of revenue", "R 500.00 a month", "Remainder"."""
    from app.i18n.formatting import money_text, number_text

    if method == "percentage":
        places = max(0, -value.normalize().as_tuple().exponent)
        return gettext("%(percent)s %% of revenue", percent=number_text(value, places))
    if method == "fixed":
        return gettext("%(amount)s a month", amount=money_text(value, currency))
    return gettext("Remainder")


def party_statement_rows(session: Session, party: SettlementParty, period: str | None = None) -> list[StatementRow]:
    """A party's settlement lines (of a month, or all), newest first."""
    query = (select(SettlementLine, SettlementRun).join(SettlementRun, SettlementRun.id == SettlementLine.run_id)
             .where(SettlementLine.party_id == party.id))
    if period:
        query = query.where(SettlementRun.period == period)
    rows = []
    for line, run in session.execute(query.order_by(SettlementRun.period.desc(), SettlementRun.run_number)):
        rows.append(StatementRow(
            run.period, gettext(run.utility.replace("_", " ").capitalize()), run.run_number,
            gettext("Reversed") if run.status == "reversed" else gettext("Posted"), basis_text(run.basis), run.revenue,
            rule_text(line.method, line.value, run.currency), line.amount,
            gettext("Paid, ref %(reference)s", reference=line.paid_reference) if line.paid_at
            else ("—" if run.status == "reversed" else gettext("Not yet paid"))))
    return rows


def party_statement(session: Session, party: SettlementParty, period: str | None = None):
    """A party's settlement statement as (rows, columns, title, subtitle, note) for `respond()` or `to_pdf()`.

    The note says what "revenue" is (billed, or units sold), above the table.
    """
    from app.reports.export import Column, money_column
    from app.statements.runs import month_label

    estate = session.get(Estate, party.estate_id)
    currency = estate.currency
    rows = party_statement_rows(session, party, period)
    # Headings, cells, title and note in the reader's language (a party's email: the estate's).
    columns = [Column(gettext("Month"), lambda r: r.period), Column(gettext("Utility"), lambda r: r.utility),
               Column(gettext("Run"), lambda r: r.run_number, numeric=True),
               Column(gettext("Status"), lambda r: r.status), Column(gettext("Rule"), lambda r: r.rule),
               money_column(gettext("Revenue"), lambda r: r.revenue, lambda r: currency),
               money_column(gettext("Share"), lambda r: r.amount, lambda r: currency),
               Column(gettext("Payout"), lambda r: r.paid)]
    bases = sorted({r.basis for r in rows}) or [basis_text("sold" if estate.wallet_denomination == "units" else "billed")]
    role = gettext(party.role.replace("_", " ").capitalize()).lower()
    subtitle = f"{party.name} ({role}) · {estate.name}" + (f" · {month_label(period)}" if period else "")
    title = gettext("Settlement statement %(estate)s %(party)s %(period)s", estate=estate.code, party=party.name,
                    period=period or gettext("all months"))
    return rows, columns, title, subtitle, " ".join(bases)


def party_statement_pdf(session: Session, party: SettlementParty, period: str | None = None) -> bytes:
    """The party's settlement statement of a month (or all months) as a PDF, times in the estate's zone."""
    from zoneinfo import ZoneInfo

    from app.reports.export import to_pdf

    rows, columns, title, subtitle, note = party_statement(session, party, period)
    return to_pdf(rows, columns, title, ZoneInfo(session.get(Estate, party.estate_id).timezone), subtitle=subtitle,
                  note=note)


@dataclass
class SendOutcome:
    """What became of one party's statement email for a run."""

    party: str
    status: str  # sent | logged | already_sent | already_logged | no_contact | failed | resent | resent_logged
    to: str = ""
    sent_at: object = None  # when it was (first) sent, for "already sent"
    error: str = ""

    def text(self, timezone: str) -> str:
        from app.i18n.formatting import local_date

        when = local_date(self.sent_at.astimezone(ZoneInfo(timezone)), "%d %b %Y %H:%M") if self.sent_at else ""
        return {
            "sent": gettext("%(party)s: statement emailed to %(to)s", party=self.party, to=self.to),
            "logged": gettext("%(party)s: statement written to the log for %(to)s (MAIL_URL unset, not emailed)",
                              party=self.party, to=self.to),
            "already_sent": gettext("%(party)s: statement already sent to %(to)s on %(when)s", party=self.party,
                                    to=self.to, when=when),
            "already_logged": gettext("%(party)s: statement already written to the log for %(to)s on %(when)s "
                                      "(MAIL_URL unset, not emailed)", party=self.party, to=self.to, when=when),
            "no_contact": gettext("%(party)s: no contact email, statement not sent", party=self.party),
            "failed": gettext("%(party)s: statement to %(to)s not sent (%(error)s); try again", party=self.party,
                              to=self.to, error=self.error),
            "resent": gettext("%(party)s: statement sent again to %(to)s", party=self.party, to=self.to),
            "resent_logged": gettext("%(party)s: statement written to the log again for %(to)s (MAIL_URL unset, "
                                     "not emailed)", party=self.party, to=self.to),
        }[self.status]


def send_party_statements(session: Session, run: SettlementRun) -> list[SendOutcome]:
    """Email each party of a run its settlement statement of the month (PDF attached), once per run and party.

    A party already sent this run's statement is reported with when; one without a contact
    email is reported; an SMTP failure is reported and can be retried. Each email is audited
    (`settlement.statement_sent`); commits.
    """
    outcomes = []
    for line in run.lines:
        if line.statement_sent_at is not None:
            outcomes.append(SendOutcome(line.party.name, "already_logged" if line.statement_outcome == "logged"
                                        else "already_sent", line.statement_sent_to, line.statement_sent_at))
            continue
        outcomes.append(_email_statement(session, run, line))
    return outcomes


def resend_party_statement(session: Session, line: SettlementLine) -> SendOutcome:
    """Send one party's statement of a posted run again, on purpose, to its contact email now.

    Unlike `send_party_statements` it sends whether or not the statement went before. The line
    then records this latest send; each resend is audited (`settlement.statement_resent`, with
    when and to whom it had gone before), so `resend_counts` can say how often. Commits.
    """
    run = line.run
    if run.status != "posted":
        raise RunError(gettext("Run %(number)s was reversed: its statements are no longer sent.",
                               number=run.run_number), {f"line-{line.id}": gettext(
                                   "This run was reversed: its statements are no longer sent.")})
    return _email_statement(session, run, line, resend=True)


def _email_statement(session: Session, run: SettlementRun, line: SettlementLine, *, resend: bool = False) -> SendOutcome:
    """Email one party its statement of the run's month, record the send on the line and audit it; commits."""
    import smtplib
    from email.message import EmailMessage

    from flask import current_app

    from app.i18n.formatting import money_text
    from app.notify import in_language
    from app.notify.email import send_email
    from app.statements.runs import month_label

    estate = session.get(Estate, run.estate_id)
    party = line.party
    if not party.contact_email:
        return SendOutcome(party.name, "no_contact")
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = party.contact_email
    # A party is no person: its email and PDF are in the estate's language (else English).
    with in_language(session, None, estate.id):
        label = month_label(run.period)
        message["Subject"] = gettext("%(estate)s: settlement statement for %(month)s (%(party)s)",
                                     estate=estate.name, month=label, party=party.name)
        message.set_content(
            gettext("Hello,") + "\n\n"
            + gettext("Attached is %(party)s's settlement statement from %(estate)s for %(month)s: %(utility)s run "
                      "%(number)s, your share %(amount)s.", party=party.name, estate=estate.name, month=label,
                      utility=gettext(run.utility.replace("_", " ").capitalize()).lower(), number=run.run_number,
                      amount=money_text(line.amount, run.currency))
            + "\n" + basis_text(run.basis) + "\n\nMeterwise\n")
        pdf = party_statement_pdf(session, party, run.period)
    message.add_attachment(pdf, maintype="application", subtype="pdf",
                           filename=f"settlement-{estate.code}-{run.period}-party{party.id}.pdf")
    try:
        status = send_email(message)
    except (OSError, smtplib.SMTPException) as error:
        return SendOutcome(party.name, "failed", party.contact_email, error=f"{type(error).__name__}: {error}")
    before = {"sent_at": line.statement_sent_at, "to": line.statement_sent_to, "outcome": line.statement_outcome}
    line.statement_sent_at, line.statement_sent_to, line.statement_outcome = utcnow(), party.contact_email, status
    audit.record(session, "settlement.statement_resent" if resend else "settlement.statement_sent", line,
                 estate_id=estate.id, old=before if resend else None,
                 new={"run": run.id, "period": run.period, "party": party.name, "to": party.contact_email,
                      "outcome": status})
    session.commit()  # one email, one record: a failure later in the loop never resends this one
    if resend:
        status = "resent_logged" if status == "logged" else "resent"
    return SendOutcome(party.name, status, party.contact_email, line.statement_sent_at)


def resend_counts(session: Session, line_ids: list[int]) -> dict[int, int]:
    """How many times each settlement line's statement was sent again on purpose (from the audit log)."""
    from app.models import AuditLog

    if not line_ids:
        return {}
    return {int(entity_id): count for entity_id, count in session.execute(
        select(AuditLog.entity_id, func.count()).where(
            AuditLog.action == "settlement.statement_resent", AuditLog.entity_type == "SettlementLine",
            AuditLog.entity_id.in_([str(i) for i in line_ids])).group_by(AuditLog.entity_id))}


def estate_report_rows(session: Session, estate_id: int, period: str) -> list[dict]:
    """Every party line of the estate's runs of a month (the settlement report)."""
    rows = []
    for run in runs_of(session, estate_id, period):
        for line in run.lines:
            rows.append({"utility": gettext(run.utility.replace("_", " ").capitalize()), "run": run.run_number,
                         "status": gettext("Reversed") if run.status == "reversed" else gettext("Posted"),
                         "basis": basis_text(run.basis), "revenue": run.revenue, "party": line.party.name,
                         "role": gettext(line.party.role.replace("_", " ").capitalize()),
                         "rule": rule_text(line.method, line.value, run.currency), "amount": line.amount,
                         "paid": line.paid_reference or ""})
    return rows


def parse_value(text: str) -> Decimal | None:
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError):
        return None


# --- the monthly job ----------------------------------------------------------------------


def job_target(estate: Estate, period: str) -> str:
    return f"estate:{estate.id}:{period}"


def start_run(estate: Estate, period: str, user_id: int | None = None):
    """Enqueue the month's settlement of an estate (joins a run already under way)."""
    return enqueue(JOB_KIND, estate.id, period, target=job_target(estate, period), user_id=user_id, queue="low")


@job(JOB_KIND)
def settlement_job(session: Session, progress, estate_id: int, period: str, user_id: int | None = None) -> str:
    """Settle an estate's month; a rerun posts nothing."""
    estate = session.get(Estate, estate_id)
    if estate is None:
        raise ValueError(f"estate {estate_id} does not exist")
    progress.set_total(max(len(settled_utilities(session, estate.id)), 1))
    report = run_settlement(session, estate, period, user_id=user_id)
    progress.step(len(report.outcomes))
    lines = [report.summary()]
    for outcome in report.outcomes:  # each party its statement; a rerun reports them already sent
        if outcome.run is not None:
            for sent in send_party_statements(session, outcome.run):
                lines.append(sent.text(estate.timezone))
                if sent.status == "failed":
                    progress.error(sent.text(estate.timezone))
    return "\n".join(lines)


def schedule_monthly_settlement(session: Session) -> list[str]:
    """For early in the month: settle last month for every estate with rules (settled ones post nothing)."""
    started = []
    for estate in session.scalars(select(Estate).order_by(Estate.id)):
        utilities = settled_utilities(session, estate.id)
        if not utilities:
            continue
        period = last_complete_period(estate.tz)
        if all(current_run(session, estate.id, u, period) for u in utilities):
            continue
        start_run(estate, period)
        started.append(job_target(estate, period))
    return started


def party_balances(session: Session, estate_id: int) -> dict[int, Decimal]:
    """What the estate owes each party now (their account balances), by party id."""
    return dict(session.execute(select(SettlementParty.id, Account.balance)
                                .join(Account, and_(Account.id == SettlementParty.account_id))
                                .where(SettlementParty.estate_id == estate_id)).all())
