"""The `tenancies` import kind (A3 bulk onboarding): each good row does what the move-in page does.

`unit,email,full_name,phone,move_in[,opening_electricity,opening_water,opening_hot_water,opening_solar]`:
the person is found in the estate by email (else phone) or registered, the tenancy starts on
`move_in`, the opening readings go through ingest (taken at the import, since tenants already
living there moved in long ago), the wallet starts at zero, the unit is occupied and the invite
is emailed (an SMS with the account number for people with only a phone). A unit that already
has a tenant is rejected, unless it is this person from this date (unchanged: importing the
file again does nothing). Import tenancies before opening balances: a move-in empties the pockets.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from app.estates.import_kinds import estate_unit_ids, read_decimal, read_unit_number, refuse_unknown_unit
from app.estates.imports import Field, ImportKind, register
from app.models import Person, Tenancy, User
from app.models.meter import UTILITIES
from app.phones import InvalidPhone, to_e164

OPENING = tuple(f"opening_{u}" for u in UTILITIES)
_REGISTER_MAX = Decimal("999999999999")


class _SystemActor:
    """Who acts for an import run from the command line (no login): reaches every estate."""

    id = None
    is_staff = True
    display_name = "Meterwise"


@register
class TenanciesKind(ImportKind):
    """Tenants moved in, one row per unit, exactly as the move-in page does it."""

    name = "tenancies"
    label = "Tenancies (move-ins)"
    key_column = "unit"
    key_label = "unit number"
    fields = (
        Field("unit", "the number of a unit of the estate", required=True, column_required=True),
        Field("email", "an email address like thandi@example.com", column_required=True),
        Field("full_name", "a name of up to 200 characters", required=True, column_required=True),
        Field("phone", "a phone number like 082 123 4567 or +266 5775 5403", cell="phone", column_required=True),
        Field("move_in", "a date like 2026-03-01", required=True, column_required=True),
        *(Field(name, "a register reading like 10234.5", cell="number") for name in OPENING),
    )
    help = ("One row per unit: the tenant (email, else phone) and the move-in date, with the meters' "
            "opening readings if you have them. Each row moves the tenant in like the move-in page: "
            "tenancy, readings, wallet from zero, unit occupied, invite. Import tenancies before "
            "opening balances.")

    def parse(self, ctx, row):
        number = read_unit_number(row)
        name = " ".join(row.cell("full_name").split())
        if not name or len(name) > 200:
            row.error("full_name", "a name of up to 200 characters", row.cell("full_name"))
        email = row.cell("email").lower() or None
        if email is not None:
            from app.estates.people import PersonInvalid, normalise_email
            try:
                email = normalise_email(email)
            except PersonInvalid:
                row.error("email", "an email address like thandi@example.com", row.cell("email"))
                email = None
        phone = None
        if row.cell("phone"):
            try:
                phone = to_e164(row.cell("phone"), ctx.estate.country)
            except InvalidPhone:
                row.error("phone", f"a phone number of {ctx.estate.country} or one starting with +", row.cell("phone"))
        elif not row.cell("email"):
            row.error("email", "an email or a phone (one of them is required)", "")
        move_in = None
        try:
            move_in = date.fromisoformat(row.cell("move_in")) if len(row.cell("move_in")) == 10 else None
        except ValueError:
            move_in = None
        if move_in is None or not 1990 <= move_in.year <= 2200:
            row.error("move_in", "a date like 2026-03-01", row.cell("move_in"))
            move_in = None
        openings = {}
        for column in OPENING:
            value = read_decimal(row, column, "a register reading like 10234.5", places=6, maximum=_REGISTER_MAX)
            if value is not None:
                openings[column.removeprefix("opening_")] = str(value)
        row.key = number
        row.values = {"unit": number, "full_name": name, "email": email, "phone": phone,
                      "move_in": move_in.isoformat() if move_in else None, "openings": openings}

    def classify(self, ctx, rows):
        units = estate_unit_ids(ctx)
        ids = [units[row.values["unit"]] for row in rows if row.values["unit"] in units]
        current = {}
        if ids:
            for unit_id, move_in, email, phone, name in ctx.session.execute(
                    select(Tenancy.unit_id, Tenancy.move_in, Person.email, Person.phone, Person.full_name)
                    .join(Person, Person.id == Tenancy.person_id)
                    .where(Tenancy.unit_id.in_(ids), Tenancy.move_out.is_(None))):
                current[unit_id] = (move_in, (email or "").lower(), phone, name)
        for row in rows:
            unit_id = units.get(row.values["unit"])
            if unit_id is None:
                refuse_unknown_unit(ctx, row, row.values["unit"])
                continue
            row.target_id = unit_id
            if unit_id in current:
                move_in, email, phone, name = current[unit_id]
                same = (row.values["email"] and row.values["email"] == email) or \
                       (not row.values["email"] and row.values["phone"] and row.values["phone"] == phone)
                if same and move_in.isoformat() == row.values["move_in"]:
                    row.action = "unchanged"
                else:
                    row.refuse("unit", "a unit nobody rents", f"that {name} rents it since {move_in.isoformat()} "
                               "(move them out first)")
                continue
            row.action = "create"

    def apply(self, ctx, rows):
        from app.estates.people import estate_person_ids
        from app.estates.tenancies import place_move_in
        from app.models import Unit

        session = ctx.session
        actor = session.get(User, ctx.user_id) if ctx.user_id else _SystemActor()
        for row in rows:
            values = row.values
            person = None
            for column, value in (("email", values["email"]), ("phone", values["phone"])):
                if value and person is None:
                    match = func.lower(Person.email) if column == "email" else Person.phone
                    person = session.scalars(select(Person).where(
                        match == value, Person.id.in_(estate_person_ids(ctx.estate.id)))
                        .order_by(Person.id).limit(1)).first()
            chosen = person or {"full_name": values["full_name"], "email": values["email"] or "",
                                "phone": values["phone"] or ""}
            openings = {u: Decimal(v) for u, v in values["openings"].items()}
            result = place_move_in(session, actor, session.get(Unit, row.target_id), chosen,
                                   date.fromisoformat(values["move_in"]), openings, now=ctx.now,
                                   user_id=ctx.user_id, onboarding=True)
            row.object_id = result.tenancy_id


__all__ = ["TenanciesKind"]
