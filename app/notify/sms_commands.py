"""Two-way SMS (T5): a tenant texts BAL, USE or HELP (or the French and Sesotho words) to the gateway.

The SMS gateway relays every message its phone receives (`app.payments.mpesa_sms`); one that is
not a payment confirmation comes here. A message from a phone number (never an alphanumeric
sender id such as MPESA, never a trusted payment sender) is read as a command:

- the phone is matched on its whole E.164 number (each person's phone read in their estate's
  country), never on a suffix, against current tenants and people with a family (view) grant
  on a unit;
- BAL answers each pocket's balance with its days of credit left, USE today's, this week's and
  this month's use, HELP how to top up (the estate's M-PESA paybill and the unit's account number);
  figures come from the tenant dashboard (`app.reports.usage.unit_dashboard`), so they agree;
- `BAL A03` names a unit when the phone belongs to several; without one, the reply lists them;
- an unknown phone or an unknown word gets one polite help reply.

Replies are notifications on the SMS channel (the outbox the gateway collects, shown in the
staff SMS log), in the person's language, or the keyword's when the phone is unknown. At most
REPLIES_PER_HOUR replies go to one phone an hour, and UNKNOWN_REPLIES_PER_DAY a day to a phone
we do not know, so the gateway can never be used to spam. Nothing here credits or posts money.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import phones
from app.metering.credit_control import MPESA_PAYBILL_KEY
from app.models import Estate, Notification, Person, RoleGrant, Tenancy, Unit, User, utcnow

REPLIES_PER_HOUR = 5
UNKNOWN_REPLIES_PER_DAY = 1
MAX_COMMAND_CHARS = 60  # a command is a word and a unit; longer texts get the help reply
REPLY_TEMPLATES = ("sms_balance", "sms_use", "sms_help", "sms_choose_unit", "sms_unknown_phone")

# keyword -> (command, language it is written in); matched case-insensitively, accents ignored.
KEYWORDS: dict[str, tuple[str, str]] = {
    "BAL": ("balance", "en"), "BALANCE": ("balance", "en"),
    "USE": ("use", "en"), "USAGE": ("use", "en"),
    "HELP": ("help", "en"),
    "SOLDE": ("balance", "fr"),
    "CONSO": ("use", "fr"), "CONSOMMATION": ("use", "fr"),
    "AIDE": ("help", "fr"),
    "CHELETE": ("balance", "st"), "SALE": ("balance", "st"),
    "TSEBELISO": ("use", "st"),
    "THUSO": ("help", "st"),
}
UNIT_ROLES_ANSWERED = ("tenant", "family")  # a family grant is a view of the wallet (F2)
_WORD = re.compile(r"[A-Z0-9/-]{1,32}")


@dataclass(frozen=True)
class Command:
    kind: str  # balance, use, help, unknown
    language: str | None  # the keyword's language, None for an unknown word
    unit_ref: str | None = None


def _plain(text: str) -> str:
    """Upper case without accents ('tšebeliso' -> 'TSEBELISO'), spaces collapsed."""
    decomposed = unicodedata.normalize("NFKD", text)
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).upper().split())


def parse_command(text: str | None) -> Command:
    """Read 'bal', ' BAL  A03 ', 'Solde', 'tšebeliso' into a command; anything else is unknown."""
    plain = _plain(text or "")[:MAX_COMMAND_CHARS + 1]
    words = plain.split(" ") if plain else []
    if not words or len(plain) > MAX_COMMAND_CHARS or len(words) > 2:
        return Command("unknown", None)
    found = KEYWORDS.get(words[0].strip(".!?"))
    if found is None:
        return Command("unknown", None)
    unit_ref = words[1].strip(".!?") if len(words) == 2 else None
    if unit_ref is not None and not _WORD.fullmatch(unit_ref):
        return Command("unknown", None)
    return Command(found[0], found[1], unit_ref)


def reply_address(sender: str) -> str | None:
    """The number to answer, in E.164 when it says its country; None for sender ids ('MPESA')."""
    text = re.sub(r"[\s\-().]", "", sender or "")
    if not re.fullmatch(r"\+?[0-9]{7,15}", text):
        return None
    return phones.try_e164(text, None) or text


# --- who is texting -----------------------------------------------------------------------

@dataclass
class Texter:
    person: Person
    units: list[Unit]


def find_texter(session: Session, address: str, today: date | None = None) -> Texter | None:
    """The one person whose phone is this whole number, with the units they may ask about."""
    digits = re.sub(r"\D", "", address)
    if len(digits) < 7:
        return None
    wanted = phones.try_e164(address, None)
    today = today or date.today()
    pattern = "%" + "%".join(digits[-8:]) + "%"  # coarse filter; the whole number is compared below
    rented = (select(Person, Unit, Estate.country).join(Tenancy, Tenancy.person_id == Person.id)
              .join(Unit, Unit.id == Tenancy.unit_id).join(Estate, Estate.id == Unit.estate_id)
              .where(Person.phone.like(pattern), Tenancy.move_in <= today,
                     (Tenancy.move_out.is_(None)) | (Tenancy.move_out > today)))
    granted = (select(Person, Unit, Estate.country).join(User, User.person_id == Person.id)
               .join(RoleGrant, RoleGrant.user_id == User.id).join(Unit, Unit.id == RoleGrant.unit_id)
               .join(Estate, Estate.id == Unit.estate_id)
               .where(Person.phone.like(pattern), User.active.is_(True),
                      RoleGrant.role.in_(UNIT_ROLES_ANSWERED)))
    people: dict[int, Texter] = {}
    for query in (rented, granted):
        for person, unit, country in session.execute(query):
            number = phones.try_e164(address, country) if wanted is None else wanted
            if number is None or phones.try_e164(person.phone, country) != number:
                continue
            texter = people.setdefault(person.id, Texter(person, []))
            if unit.id not in {u.id for u in texter.units}:
                texter.units.append(unit)
    if len(people) != 1:
        return None  # nobody, or a number two people share: answer as for an unknown phone
    texter = next(iter(people.values()))
    texter.units.sort(key=lambda u: (u.estate_id, u.number))
    return texter


def pick_unit(units: list[Unit], ref: str | None) -> Unit | None:
    """The unit the texter means: the only one, else the one named by number or account number."""
    if ref is None:
        return units[0] if len(units) == 1 else None
    ref = ref.upper()
    for unit in units:
        if unit.number.upper() == ref or (unit.account_number or "").upper() == ref:
            return unit
    return None


# --- answering ----------------------------------------------------------------------------

def replies_sent(session: Session, address: str, since: datetime) -> int:
    return session.scalar(select(func.count()).select_from(Notification).where(
        Notification.channel == "sms", Notification.template.in_(REPLY_TEMPLATES),
        Notification.to_address == address, Notification.created_at >= since))


def answer_text_command(session: Session, row, sender: str, trusted: frozenset[str]) -> str | None:
    """Answer one relayed SMS that is not a payment; returns the reply template, or None.

    Sets the SmsMessage row's outcome and reason; the caller commits (inside its savepoint).
    """
    if sender.strip().upper() in trusted:
        return None  # the payment provider's own messages are never answered
    address = reply_address(sender)
    if address is None:
        return None
    now = utcnow()
    command = parse_command(row.content)
    texter = find_texter(session, address)
    limit, window = (REPLIES_PER_HOUR, timedelta(hours=1)) if texter else (UNKNOWN_REPLIES_PER_DAY, timedelta(days=1))
    row.outcome = "command"
    if replies_sent(session, address, now - window) >= limit:
        row.reason = f"{command.kind}: not answered, {limit} replies already sent to {address} in the last " \
                     f"{'hour' if texter else 'day'}"
        return None
    template, context, person = _reply(session, command, texter, address)
    from app.notify import notify
    notify(session, template, context, person=person, channels=("sms",))
    row.reason = f"{command.kind}: answered ({template})"
    return template


def _reply(session: Session, command: Command, texter: Texter | None, address: str):
    """(template, context, person) of the answer to one command."""
    if texter is None:
        return "sms_unknown_phone", {"estate": None}, Person(full_name=address, phone=address,
                                                            language=command.language)
    person = _replying_to(texter.person, address, command)
    unit = pick_unit(texter.units, command.unit_ref)
    if command.kind == "unknown" or unit is None and command.kind == "help":
        unit = unit or texter.units[0]
        return "sms_help", _help_context(session, unit, texter), person
    if unit is None:
        return "sms_choose_unit", {"estate": texter.units[0].estate, "units": texter.units,
                                   "keyword": _keyword(command, person)}, person
    if command.kind == "help":
        return "sms_help", _help_context(session, unit, texter), person
    from app.reports.usage import unit_dashboard
    dashboard = unit_dashboard(session, unit)
    context = {"estate": unit.estate, "unit": unit, "pockets": dashboard.pockets}
    if command.kind == "use":
        context["week"] = week_use(session, unit, dashboard)
        return "sms_use", context, person
    return "sms_balance", context, person


def _replying_to(person: Person, address: str, command: Command) -> Person:
    """The person, answered at the number they texted from (their stored phone may be written locally)."""
    if person.phone == address:
        return person
    return Person(id=person.id, full_name=person.full_name, phone=address, estate_id=person.estate_id,
                  language=person.language)


def _keyword(command: Command, person: Person) -> str:
    """The balance or use keyword in the texter's language ('BAL', 'SOLDE', 'CHELETE')."""
    language = person.language or command.language or "en"
    wanted = command.kind if command.kind in ("balance", "use") else "balance"
    return next((word for word, (kind, lang) in KEYWORDS.items() if kind == wanted and lang == language), "BAL")


def _help_context(session: Session, unit: Unit, texter: Texter) -> dict:
    from app.estates.settings_catalog import setting_default
    from app.settings import get_setting

    estate = unit.estate
    paybill = get_setting(session, MPESA_PAYBILL_KEY, estate.id, default=setting_default(MPESA_PAYBILL_KEY))
    return {"estate": estate, "unit": unit, "paybill": paybill,
            "account": unit.account_number or f"{estate.code}-{unit.number}",
            "units": texter.units if len(texter.units) > 1 else []}


def week_use(session: Session, unit: Unit, dashboard) -> dict[str, object]:
    """Each metered pocket's use since Monday (local), from the same day roll-ups as the dashboard."""
    from decimal import Decimal

    from app.reports.usage import day_totals
    tz = unit.estate.tz
    today = dashboard.as_of.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    week = {}
    for pocket in dashboard.pockets:
        ids = dashboard.meter_ids.get(pocket.utility, [])
        if ids:
            totals = day_totals(session, ids, monday, today + timedelta(days=1), tz)
            week[pocket.utility] = sum(totals.values(), Decimal(0))
    return week
