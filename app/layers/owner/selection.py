"""What an owner page covers: the owner's units, narrowed to the estate picked in the selector."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC

from flask import abort, request
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import Select, select

from app.auth.scope import estate_or_404, unit_ids_query, visible_estates
from app.extensions import db
from app.models import Estate, Unit
from app.periods import current_period
from app.routing import INTEGER_MAX, whole_number

ROLES = ("owner",)


@dataclass
class Selection:
    estates: list[Estate]   # the estates the selector offers
    estate: Estate | None   # the one picked, None for all of them
    unit_ids: Select        # a SELECT of the ids of the units in view

    @property
    def estate_id(self) -> int | None:
        return self.estate.id if self.estate else None

    def current_period(self) -> str:
        """This month (YYYY-MM) in the picked estate's timezone, else in the first estate's."""
        estate = self.estate or (self.estates[0] if self.estates else None)
        return current_period(estate.tz if estate else UTC)


def int_arg(name: str, default: int, lowest: int, highest: int | None = None) -> int:
    """A whole-number query parameter within bounds, else 400 with a message saying so."""
    raw = request.args.get(name, "").strip()
    if not raw:
        return default
    value = whole_number(raw, lowest, highest if highest is not None else INTEGER_MAX)
    if value is None:
        if highest is not None:
            abort(400, gettext("%(name)s must be a whole number from %(lowest)s to %(highest)s",
                               name=name, lowest=lowest, highest=highest))
        abort(400, gettext("%(name)s must be a whole number, %(lowest)s or more", name=name, lowest=lowest))
    return value


def page_of(rows: list, per_page: int) -> tuple[list, int, int]:
    """The `?page=` of `rows` shown `per_page` at a time (past the end: the last page): the rows,
    the page number and the number of pages."""
    pages = max(1, -(-len(rows) // per_page))
    page = min(int_arg("page", 1, 1), pages)
    return rows[(page - 1) * per_page:page * per_page], page, pages


def current_selection() -> Selection:
    """The owner's units for this request; `?estate=<id>` outside the owner's grants is a 404."""
    raw = request.args.get("estate", "").strip()
    estate = None
    if raw:
        estate_id = whole_number(raw, 0, 10**19)  # a number too large for an id names nothing: 404 below
        if estate_id is None:
            abort(400, gettext("estate must be an estate id"))
        estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    ids = select(Unit.id) if current_user.is_staff else unit_ids_query(current_user, ROLES)
    if estate is not None:
        ids = select(Unit.id).where(Unit.id.in_(ids), Unit.estate_id == estate.id)
    return Selection(visible_estates(db.session, current_user, ROLES), estate, ids)
