"""The import kinds: units, persons, meters and opening balances (the mechanism is app/estates/imports.py).

Adding a kind is one class here (or in its own module imported at the bottom): set `name`,
`label`, `fields`, `key_column`, `key_label`, write `parse` (one row's cells on their own),
`classify` (the parsed rows against live data, in bulk) and `apply` (bulk writes), and
decorate it with `@register`. The pages, the CLI, the jobs and the templates pick it up.

The per-field rules are built from the model constants (OCCUPANCY_STATUSES, UTILITIES,
METER_ROLES, PROTOCOLS) and the shared normalisers (canonical_serial, to_e164, parse_amount)
so the unit, meter and person forms can share them.
"""
from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal, InvalidOperation

from sqlalchemy import or_, select

from app import audit
from app.estates.imports import Field, ImportContext, ImportKind, Row, register
from app.estates.account_numbers import next_account_numbers
from app.labels import label
from app.models import LedgerTransaction, Meter, OccupancyChange, Person, Posting, Tenancy, Unit, UnitOwnership
from app.models.estate import OCCUPANCY_STATUSES
from app.models.ledger import Account
from app.models.meter import METER_ROLES, PROTOCOLS, UTILITIES, canonical_serial
from app.phones import InvalidPhone, to_e164
from app.sql_arrays import insert_rows, one_of

_DECIMAL = re.compile(r"[0-9]+(?:[.,][0-9]+)?")
_INTEGER = re.compile(r"[0-9]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_SERIAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
_EUI = re.compile(r"[0-9a-f]{16}")
TRUE_WORDS = {"true", "yes", "y", "1", "x"}
FALSE_WORDS = {"false", "no", "n", "0", ""}
_CHUNK = 5000


# --- cell readers shared by the kinds (and, later, the forms) ---------------------------------------

def read_choice(row: Row, column: str, choices: tuple[str, ...], label_kind: str, *,
                required: bool = False) -> str | None:
    """A code from `choices`, written as the code or its label in any case ("Hot water")."""
    text = row.cell(column)
    if not text:
        if required:
            row.error(column, "one of " + ", ".join(choices), text)
        return None
    wanted = text.strip().lower()
    for code in choices:
        if wanted in (code, code.replace("_", " "), label(label_kind, code).lower()):
            return code
    row.error(column, "one of " + ", ".join(choices), text)
    return None


def read_decimal(row: Row, column: str, expected: str, *, places: int, maximum: Decimal) -> Decimal | None:
    """A non-negative decimal (a comma may be the decimal mark) with at most `places` decimals."""
    text = row.cell(column)
    if not text:
        return None
    if not _DECIMAL.fullmatch(text) or len(text.replace(",", ".").partition(".")[2]) > places:
        row.error(column, expected, text)
        return None
    value = Decimal(text.replace(",", "."))
    if value > maximum:
        row.error(column, expected, text)
        return None
    return value


def read_integer(row: Row, column: str, expected: str, *, low: int, high: int) -> int | None:
    text = row.cell(column)
    if not text:
        return None
    if text.endswith(".0"):
        text = text[:-2]  # a spreadsheet's 30.0
    if not _INTEGER.fullmatch(text) or not low <= int(text) <= high:
        row.error(column, expected, row.cell(column))
        return None
    return int(text)


def read_bool(row: Row, column: str) -> bool | None:
    text = row.cell(column).lower()
    if column not in row.raw or text == "":
        return None
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    row.error(column, "yes or no (true/false, 1/0)", row.cell(column))
    return None


def read_unit_number(row: Row, column: str = "unit") -> str | None:
    text = row.cell(column)
    if not text or len(text) > 32:
        row.error(column, "a unit number of up to 32 characters", text)
        return None
    return text


def estate_unit_ids(ctx: ImportContext) -> dict[str, int]:
    """The estate's unit numbers and ids, loaded once per run."""
    return ctx.cached("unit_ids", lambda: dict(ctx.session.execute(
        select(Unit.number, Unit.id).where(Unit.estate_id == ctx.estate.id)).all()))


def refuse_unknown_unit(ctx: ImportContext, row: Row, number: str) -> None:
    row.refuse("unit", f"a unit of {ctx.estate.name}", f'"{number}", which is not one of its units '
               "(import the units first)")


def _chunks(values: list, size: int = _CHUNK):
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _insert_created(session, model, creates: list, params: list[dict]) -> list[int]:
    """Insert one `model` row per created import row, in bulk; each row learns its object's id."""
    ids = insert_rows(session, model, params, return_ids=True)
    for row, object_id in zip(creates, ids, strict=True):
        row.object_id = object_id
    return ids


def _decimal(value) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# --- units ---------------------------------------------------------------------------------------

@register
class UnitsKind(ImportKind):
    """Units of the estate, named by their number; status changes keep the occupancy history."""

    name = "units"
    label = "Units"
    key_column = "unit"
    key_label = "unit number"
    fields = (
        Field("unit", "a unit number of up to 32 characters", required=True, column_required=True),
        Field("floor_area_m2", "a floor area in m² like 84.5 (at most 2 decimals)", cell="number"),
        Field("status", "one of " + ", ".join(OCCUPANCY_STATUSES)),
    )
    help = ("One row per unit. The unit number is its identity in the estate: a number already there "
            "updates that unit. A blank floor area or status leaves it as it is (a new unit is vacant).")

    def parse(self, ctx, row):
        number = read_unit_number(row)
        area = read_decimal(row, "floor_area_m2", self.fields[1].expected, places=2, maximum=Decimal("1000000"))
        status = read_choice(row, "status", OCCUPANCY_STATUSES, "occupancy")
        row.key = number
        row.values = {"unit": number, "floor_area_m2": None if area is None else str(area), "status": status}

    def classify(self, ctx, rows):
        live = ctx.cached("units", lambda: {number: (unit_id, area, status) for unit_id, number, area, status in
                                            ctx.session.execute(select(Unit.id, Unit.number, Unit.floor_area_m2,
                                                                       Unit.occupancy_status)
                                                                .where(Unit.estate_id == ctx.estate.id))})
        for row in rows:
            found = live.get(row.values["unit"])
            if found is None:
                row.action = "create"
                continue
            unit_id, area, status = found
            row.target_id = unit_id
            wanted_area, wanted_status = _decimal(row.values["floor_area_m2"]), row.values["status"]
            if wanted_area is not None and (area is None or Decimal(area) != wanted_area):
                row.changes["floor_area_m2"] = (area, wanted_area)
            if wanted_status is not None and wanted_status != status:
                row.changes["status"] = (status, wanted_status)
            row.action = "update" if row.changes else "unchanged"

    def apply(self, ctx, rows):
        from app.estates.status import set_occupancy

        session = ctx.session
        creates = [row for row in rows if row.action == "create"]
        if creates:
            # Account numbers are given as the units are made: one insert, no second pass.
            places = next_account_numbers(session, ctx.estate, len(creates))
            params = [{"estate_id": ctx.estate.id, "number": row.values["unit"],
                       "floor_area_m2": _decimal(row.values["floor_area_m2"]),
                       "occupancy_status": row.values["status"] or "vacant", "created_at": ctx.now,
                       "account_sequence": sequence, "account_number": number}
                      for row, (sequence, number) in zip(creates, places, strict=True)]
            ids = _insert_created(session, Unit, creates, params)
            history = [{"unit_id": unit_id, "status": p["occupancy_status"], "changed_at": ctx.now,
                        "changed_by_user_id": ctx.user_id} for unit_id, p in zip(ids, params, strict=True)]
            insert_rows(session, OccupancyChange, history)
            ctx.audit_created("Unit", [(unit_id, {"number": p["number"], "floor_area_m2": p["floor_area_m2"],
                                                  "occupancy_status": p["occupancy_status"],
                                                  "account_number": p["account_number"]})
                                       for unit_id, p in zip(ids, params, strict=True)])
        for row in rows:
            if row.action != "update":
                continue
            unit = session.get(Unit, row.target_id)
            if "floor_area_m2" in row.changes:
                old, new = audit.changes(unit, {"floor_area_m2": _decimal(row.values["floor_area_m2"])})
                audit.record(session, "unit.update", unit, old=old, new=new, estate_id=ctx.estate.id)
            if "status" in row.changes:
                set_occupancy(session, unit, row.values["status"], ctx.user_id)
            row.object_id = unit.id
        ctx.cache.pop("units", None)
        ctx.cache.pop("unit_ids", None)


# --- persons ---------------------------------------------------------------------------------------

@register
class PersonsKind(ImportKind):
    """People registered with the estate, named by their email, else their phone (E.164)."""

    name = "persons"
    label = "People"
    key_column = "email"
    key_label = "email (or phone, for people without one)"
    fields = (
        Field("email", "an email address like thandi@example.com"),
        Field("full_name", "a name of up to 200 characters", required=True, column_required=True),
        Field("phone", "a phone number like 082 123 4567 or +266 5775 5403", cell="phone"),
    )
    help = ("One row per person: an email or a phone is required. The email is the person's identity "
            "(else the phone, written any way: it is read in the estate's country). A blank cell leaves "
            "that detail as it is.")

    def missing_columns(self, headers):
        missing = super().missing_columns(headers)
        if "email" not in headers and "phone" not in headers:
            missing.append("email or phone")
        return missing

    def parse(self, ctx, row):
        name = row.cell("full_name")
        if not name or len(name) > 200:
            row.error("full_name", "a name of up to 200 characters", name)
        email = row.cell("email") or None
        if email is not None and (len(email) > 254 or not _EMAIL.fullmatch(email)):
            row.error("email", "an email address like thandi@example.com", email)
            email = None
        phone = None
        if row.cell("phone"):
            try:
                phone = to_e164(row.cell("phone"), ctx.estate.country)
            except InvalidPhone:
                row.error("phone", f"a phone number of {ctx.estate.country} or one starting with +",
                          row.cell("phone"))
        elif not row.cell("email"):
            row.error("email", "an email or a phone (one of them is required)", "")
        row.key = email.lower() if email else phone
        row.values = {"email": email, "full_name": name, "phone": phone}

    def _people(self, ctx):
        def load():
            estate_units = select(Unit.id).where(Unit.estate_id == ctx.estate.id)
            people = ctx.session.execute(select(Person.id, Person.email, Person.phone, Person.full_name).where(or_(
                Person.estate_id == ctx.estate.id,
                Person.id.in_(select(Tenancy.person_id).where(Tenancy.unit_id.in_(estate_units))),
                Person.id.in_(select(UnitOwnership.person_id).where(UnitOwnership.unit_id.in_(estate_units))),
            ))).all()
            by_email, by_phone, details = defaultdict(list), defaultdict(list), {}
            for person_id, email, phone, full_name in people:
                details[person_id] = (email, phone, full_name)
                if email:
                    by_email[email.lower()].append(person_id)
                if phone:
                    by_phone[phone].append(person_id)
            return by_email, by_phone, details
        return ctx.cached("people", load)

    def classify(self, ctx, rows):
        by_email, by_phone, details = self._people(ctx)
        for row in rows:
            email, phone = row.values["email"], row.values["phone"]
            phone_owners = by_phone.get(phone, []) if phone else []
            if email:
                matches = by_email.get(email.lower(), [])
                if len(matches) > 1:
                    row.refuse("email", "an email only one person of the estate has",
                               f'{len(matches)} people with "{email}" (which one is meant is not guessed)')
                    continue
                person_id = matches[0] if matches else None
                others = [p for p in phone_owners if p != person_id]
                if others:
                    owner = details[others[0]][2]
                    row.refuse("phone", "a phone no other person of the estate has",
                               f'"{phone}", which is {owner}\'s (not guessed: change it on that person first '
                               "or leave the phone out)")
                    continue
            else:
                if len(phone_owners) > 1:
                    row.refuse("phone", "a phone only one person of the estate has",
                               f'{len(phone_owners)} people with "{phone}" (which one is meant is not guessed)')
                    continue
                person_id = phone_owners[0] if phone_owners else None
            if person_id is None:
                row.action = "create"
                continue
            row.target_id = person_id
            old_email, old_phone, old_name = details[person_id]
            if row.values["full_name"] != old_name:
                row.changes["full_name"] = (old_name, row.values["full_name"])
            if phone and phone != old_phone:
                row.changes["phone"] = (old_phone, phone)
            if email and (old_email or "").lower() != email.lower():
                row.changes["email"] = (old_email, email)
            row.action = "update" if row.changes else "unchanged"

    def apply(self, ctx, rows):
        session = ctx.session
        creates = [row for row in rows if row.action == "create"]
        if creates:
            params = [{"full_name": row.values["full_name"], "email": row.values["email"],
                       "phone": row.values["phone"], "estate_id": ctx.estate.id, "created_at": ctx.now}
                      for row in creates]
            ids = _insert_created(session, Person, creates, params)
            ctx.audit_created("Person", [(person_id, {k: p[k] for k in ("full_name", "email", "phone")})
                                         for person_id, p in zip(ids, params, strict=True)])
        for row in rows:
            if row.action != "update":
                continue
            person = session.get(Person, row.target_id)
            old, new = audit.changes(person, {name: row.values[name] for name in row.changes})
            audit.record(session, "person.update", person, old=old, new=new, estate_id=ctx.estate.id)
            row.object_id = person.id
        ctx.cache.pop("people", None)


# --- meters ------------------------------------------------------------------------------------------

METER_FIELDS = ("utility", "role", "protocol", "dev_eui", "interval_minutes", "register_digits", "bidirectional")


@register
class MetersKind(ImportKind):
    """Meters on the estate's units, named by their serial (canonical: 000123 is meter 123)."""

    name = "meters"
    label = "Meters"
    key_column = "serial"
    key_label = "meter serial"
    fields = (
        Field("unit", "the number of a unit of the estate", required=True, column_required=True),
        Field("serial", "a meter serial (letters and digits)", required=True, column_required=True),
        Field("utility", "one of " + ", ".join(UTILITIES), required=True, column_required=True),
        Field("role", "one of " + ", ".join(METER_ROLES)),
        Field("protocol", "one of " + ", ".join(PROTOCOLS)),
        Field("dev_eui", "a LoRaWAN DevEUI of 16 hexadecimal digits"),
        Field("interval_minutes", "whole minutes between readings, 1 to 1440", cell="number"),
        Field("register_digits", "the register's whole digits, 1 to 15", cell="number"),
        Field("bidirectional", "yes or no (net-metered: may export)"),
    )
    help = ("One row per meter. The serial is its identity everywhere (leading zeros do not count); a "
            "serial already in the estate updates that meter, one in another estate is refused. The unit must "
            "exist. Blank cells leave a meter's details as they are; a new meter defaults to role unit, "
            "direct MQTT, not net-metered.")

    def parse(self, ctx, row):
        number = read_unit_number(row)
        text = row.cell("serial")
        serial = None
        if not text or len(text) > 64 or not _SERIAL.fullmatch(text):
            row.error("serial", "a meter serial of letters and digits (up to 64)", text)
        else:
            serial = canonical_serial(text)
        utility = read_choice(row, "utility", UTILITIES, "utility", required=True)
        role = read_choice(row, "role", METER_ROLES, "meter_role")
        protocol = read_choice(row, "protocol", PROTOCOLS, "protocol")
        eui = None
        if row.cell("dev_eui"):
            eui = re.sub(r"[\s:-]", "", row.cell("dev_eui")).lower()
            if not _EUI.fullmatch(eui):
                row.error("dev_eui", "a LoRaWAN DevEUI of 16 hexadecimal digits", row.cell("dev_eui"))
                eui = None
        if protocol == "chirpstack" and not row.cell("dev_eui"):
            row.error("dev_eui", "a DevEUI for a LoRaWAN (ChirpStack) meter", "")
        interval = read_integer(row, "interval_minutes", self.fields[6].expected, low=1, high=1440)
        digits = read_integer(row, "register_digits", self.fields[7].expected, low=1, high=15)
        bidirectional = read_bool(row, "bidirectional")
        row.key = serial
        row.values = {"unit": number, "serial": serial, "utility": utility, "role": role, "protocol": protocol,
                      "dev_eui": eui, "interval_minutes": interval, "register_digits": digits,
                      "bidirectional": bidirectional}

    def classify(self, ctx, rows):
        session = ctx.session
        units = estate_unit_ids(ctx)
        numbers = {unit_id: number for number, unit_id in units.items()}
        serials = [row.key for row in rows]
        live: dict[str, Meter] = {}
        for part in _chunks(serials):
            for meter in session.scalars(select(Meter).where(one_of(session, Meter.serial, part, Meter.serial.type))):
                live[meter.serial] = meter
        euis = [row.values["dev_eui"] for row in rows if row.values["dev_eui"]]
        eui_owner: dict[str, str] = {}
        for part in _chunks(euis):
            eui_owner.update(session.execute(select(Meter.dev_eui, Meter.serial)
                                             .where(one_of(session, Meter.dev_eui, part, Meter.dev_eui.type))).all())
        eui_rows: dict[str, list[Row]] = defaultdict(list)
        for row in rows:
            if row.values["dev_eui"]:
                eui_rows[row.values["dev_eui"]].append(row)
        for row in rows:
            values = row.values
            unit_id = units.get(values["unit"])
            if unit_id is None:
                refuse_unknown_unit(ctx, row, values["unit"])
                continue
            eui = values["dev_eui"]
            if eui and len(eui_rows[eui]) > 1:
                others = ", ".join(str(o.number) for o in eui_rows[eui] if o is not row)
                row.refuse("dev_eui", "each DevEUI once in the file", f'"{eui}" also on row {others}')
                continue
            if eui and eui_owner.get(eui) not in (None, values["serial"]):
                row.refuse("dev_eui", "a DevEUI no other meter has", f'"{eui}", which is meter {eui_owner[eui]}\'s')
                continue
            meter = live.get(values["serial"])
            if meter is None:
                row.action = "create"
                continue
            if meter.estate_id != ctx.estate.id:
                row.refuse("serial", "a serial of this estate's meter or a new one",
                           f'"{row.cell("serial")}", which is a meter of another estate')
                continue
            row.target_id = meter.id
            if meter.unit_id is not None and meter.unit_id != unit_id:
                row.refuse("unit", f"the unit meter {meter.serial} is on ({numbers.get(meter.unit_id, '?')})",
                           f'"{values["unit"]}" (moving a meter is a replacement: use the unit\'s meter page)')
                continue
            if values["utility"] != meter.utility:
                row.refuse("utility", f"the meter's utility ({meter.utility})",
                           f'"{row.cell("utility")}" (a meter measures one utility: add a new meter instead)')
                continue
            if meter.unit_id is None:
                row.changes["unit_id"] = (None, unit_id)
            for name in METER_FIELDS:
                if values[name] is not None and values[name] != getattr(meter, name):
                    row.changes[name] = (getattr(meter, name), values[name])
            row.action = "update" if row.changes else "unchanged"

    def apply(self, ctx, rows):
        session = ctx.session
        units = estate_unit_ids(ctx)
        creates = [row for row in rows if row.action == "create"]
        if creates:
            params = []
            for row in creates:
                v = row.values
                protocol = v["protocol"] or "mqtt_direct"
                params.append({"estate_id": ctx.estate.id, "unit_id": units[v["unit"]], "serial": v["serial"],
                               "utility": v["utility"], "role": v["role"] or "unit", "protocol": protocol,
                               "dev_eui": v["dev_eui"], "relay_state": "unknown",
                               "interval_minutes": v["interval_minutes"], "register_digits": v["register_digits"],
                               "bidirectional": bool(v["bidirectional"]),
                               "reports_on_boundaries": protocol != "chirpstack", "created_at": ctx.now})
            ids = _insert_created(session, Meter, creates, params)
            ctx.audit_created("Meter", [(meter_id, {k: p[k] for k in ("serial", "unit_id", "utility", "role",
                                                                      "protocol", "dev_eui")})
                                        for meter_id, p in zip(ids, params, strict=True)])
        for row in rows:
            if row.action != "update":
                continue
            meter = session.get(Meter, row.target_id)
            wanted = {name: (units[row.values["unit"]] if name == "unit_id" else row.values[name])
                      for name in row.changes}
            old, new = audit.changes(meter, wanted)
            audit.record(session, "meter.update", meter, old=old, new=new, estate_id=ctx.estate.id)
            row.object_id = meter.id


# --- opening balances ---------------------------------------------------------------------------------

def opening_key(unit_id: int, utility: str) -> str:
    """The ledger idempotency key of a unit pocket's opening balance: posted once, ever."""
    return f"opening:{unit_id}:{utility}"


@register
class OpeningBalancesKind(ImportKind):
    """Balances brought over from a previous system, posted once per unit and pocket."""

    name = "opening_balances"
    label = "Opening balances"
    key_column = "unit"
    key_label = "unit and utility"
    fields = (
        Field("unit", "the number of a unit of the estate", required=True, column_required=True),
        Field("utility", "one of " + ", ".join(UTILITIES), required=True, column_required=True),
        Field("amount", "an amount like 150.00, negative for debt", cell="number", required=True,
              column_required=True),
    )
    help = ("One row per unit and utility: the pocket's balance when it moved to Meterwise, negative for "
            "debt (in kWh or kL for an estate that sells units). Each pocket's opening balance is posted "
            "once; importing it again posts nothing.")

    def parse(self, ctx, row):
        from app.ledger.accounts import pocket_commodity
        from app.money import MoneyError, parse_amount

        number = read_unit_number(row)
        utility = read_choice(row, "utility", UTILITIES, "utility", required=True)
        amount = None
        if utility is not None:
            commodity = pocket_commodity(ctx.estate, utility)
            try:
                amount = parse_amount(row.cell("amount"), commodity, allow_negative=True)
            except MoneyError:
                unit_word = label("commodity", commodity)
                row.error("amount", f"an amount in {unit_word} like 150.00 or -75.50 (negative for debt)",
                          row.cell("amount"))
        row.key = f"{number} {utility}" if number and utility else None
        row.values = {"unit": number, "utility": utility, "amount": None if amount is None else str(amount)}

    def classify(self, ctx, rows):
        session = ctx.session
        units = estate_unit_ids(ctx)
        keys = {}
        for row in rows:
            unit_id = units.get(row.values["unit"])
            if unit_id is None:
                refuse_unknown_unit(ctx, row, row.values["unit"])
                continue
            row.target_id = unit_id
            keys[opening_key(unit_id, row.values["utility"])] = row
        posted: dict[str, Decimal] = {}
        for part in _chunks(list(keys)):
            posted.update(session.execute(
                select(LedgerTransaction.idempotency_key, Posting.amount)
                .join(Posting, Posting.transaction_id == LedgerTransaction.id)
                .join(Account, Account.id == Posting.account_id)
                .where(one_of(session, LedgerTransaction.idempotency_key, part, LedgerTransaction.idempotency_key.type),
                       Account.kind == "pocket")).all())
        for key, row in keys.items():
            amount = Decimal(row.values["amount"])
            if key in posted:
                if Decimal(posted[key]) == amount:
                    row.action = "unchanged"
                else:
                    row.refuse("amount", f"the opening balance already posted ({posted[key].normalize():f})",
                               f'"{row.cell("amount")}" (an opening balance is posted once: correct it with an '
                               "adjustment)")
            elif amount == 0:
                row.action = "unchanged"  # nothing to bring over
            else:
                row.action = "create"

    def apply(self, ctx, rows):
        from app.ledger import Entry, post_many
        from app.ledger.accounts import open_wallet, system_account
        from app.metering.credit_control import after_pocket_change

        session = ctx.session
        entries, pockets = [], []
        for row in rows:
            utility = row.values["utility"]
            unit = session.get(Unit, row.target_id)
            pocket = open_wallet(session, unit, (utility,)).pocket(utility)
            opening = system_account(session, ctx.estate, "opening_balance", utility, commodity=pocket.commodity,
                                     utility=utility, name=f"Opening balances, {label('utility', utility).lower()}")
            amount = Decimal(row.values["amount"])
            entries.append(Entry(estate_id=ctx.estate.id, kind="adjustment",
                                 idempotency_key=opening_key(unit.id, utility),
                                 legs=[(pocket.id, amount), (opening.id, -amount)], occurred_at=ctx.now,
                                 memo=f"Opening balance (import #{ctx.batch.id if ctx.batch else '-'})",
                                 created_by_user_id=ctx.user_id))
            pockets.append(pocket.id)
        posted = post_many(session, entries)
        for row, result in zip(rows, posted, strict=True):
            row.object_id = result.transaction_id
        ctx.audit_created("LedgerTransaction", [
            (result.transaction_id, {"opening_balance": row.values["amount"], "unit": row.values["unit"],
                                     "utility": row.values["utility"]})
            for row, result in zip(rows, posted, strict=True) if result.created], action="opening_balance.post")
        after_pocket_change(session, pockets)
from app.estates import import_tenancies  # noqa: E402,F401  (issue 15: the tenancies kind)
