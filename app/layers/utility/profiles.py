"""Utility consumption profiles page (U5): each unit light / moderate / heavy, peak hour, weekday
against weekend, and the estate's demand curve by hour of day."""
from flask import abort, request
from flask_babel import gettext as _
from flask_login import current_user

from app.analytics.profiles import DAY_CHOICES, stored_profiles
from app.auth.scope import estate_or_404
from app.extensions import db
from app.htmx import render
from app.i18n.formatting import translated_label
from app.layers.export import requested_format, respond
from app.layers.owner.selection import page_of
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.reports.export import Column
from app.routing import whole_number

UTILITIES = ("electricity", "water", "hot_water")
DAYS = DAY_CHOICES
UNITS_PER_PAGE = 50  # the units table on the page; the band counts, chart and downloads cover every unit


def _hour(value) -> str:
    return f"{value:02d}:00" if value is not None else "—"


@bp.get("/estates/<int:estate_id>/profiles")
def profiles(estate_id: int):
    """The last 7, 30 or 90 local days of one utility's unit meters."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    utility = request.args.get("utility", "electricity")
    if utility not in UTILITIES:
        abort(400, _("utility must be electricity, water or hot_water"))
    days = whole_number(request.args.get("days", "30"))
    if days not in DAYS:
        abort(400, _("days must be 7, 30 or 90"))
    report = stored_profiles(db.session, estate, utility=utility, days=days)
    fmt = requested_format()
    if fmt:
        label = translated_label(utility, "utility").lower()
        span = _("%(first)s to %(last)s", first=f"{report.first:%d %b %Y}", last=f"{report.last:%d %b %Y}")
        table = request.args.get("table", "units")
        if table == "units":
            return respond(report.units, unit_columns(utility), _("%(estate)s %(utility)s consumption profiles", estate=estate.name, utility=label),
                           fmt,
                           subtitle=span, timezone=estate.timezone)
        if table == "curve":
            return respond(report.curve, curve_columns(utility), _("%(estate)s %(utility)s demand by hour", estate=estate.name, utility=label),
                           fmt,
                           subtitle=span, timezone=estate.timezone)
        abort(400, _("table must be units or curve"))
    shown, page, pages = page_of(report.units, UNITS_PER_PAGE)
    return render("utility/profiles.html", estate=estate, report=report, utility=utility, days=days,
                  utilities=UTILITIES, day_choices=DAYS, quantity=_quantity(utility),
                  rows=shown, page=page, pages=pages,
                  per_page=UNITS_PER_PAGE)


def _quantity(utility: str) -> str:
    return "kWh" if utility == "electricity" else "kL"


def unit_columns(utility: str) -> list[Column]:
    q = _quantity(utility)
    return [Column(_("Unit"), lambda u: u.unit_number), Column(_("Band"), lambda u: u.band_label),
            Column(_("Use (%(q)s)", q=q), lambda u: u.total, numeric=True),
            Column(_("Peak hour"), lambda u: _hour(u.peak_hour)),
            Column(_("Weekday per day (%(q)s)", q=q), lambda u: u.weekday_per_day, numeric=True),
            Column(_("Weekend per day (%(q)s)", q=q), lambda u: u.weekend_per_day, numeric=True),
            Column(_("Weekend vs weekday (%)"), lambda u: u.weekend_ratio, numeric=True)]


def curve_columns(utility: str) -> list[Column]:
    per_hour = _("Average kW") if utility == "electricity" else _("Average kL per hour")
    return [Column(_("Hour"), lambda r: _hour(r[0])), Column(per_hour, lambda r: r[1], numeric=True)]
