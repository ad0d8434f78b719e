"""Tenant usage charts (T2): daily, weekly and monthly use per utility from the roll-ups, and CSV."""
import json

from flask import abort, request
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import unit_or_404
from app.extensions import db
from app.htmx import render
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond
from app.layers.tenant import bp
from app.layers.tenant.views import ROLES
from app.models import Unit
from app.models.meter import UTILITIES
from app.money import UTILITY_UNITS
from app.reports.export import Column, money_column
from app.reports.usage import GRAINS, unit_meters, usage_series

def usage_columns(quantity_unit: str) -> list[Column]:
    """The export columns of a usage series in kWh or kL."""
    return [Column(N_("Period start"), lambda p: p.start), Column("Period", lambda p: p.label),
            money_column("Consumption", lambda p: p.consumption, lambda p: quantity_unit)]


def chart_context(unit: Unit, meter_ids: list[int], utilities: list[str], utility: str, grain: str) -> dict:
    """What the usage partial needs: the series, its table and the chart's JSON."""
    points = usage_series(db.session, meter_ids, grain, unit.estate.tz)
    quantity_unit = UTILITY_UNITS[utility]
    chart = {"labels": [p.label for p in points], "values": [str(p.consumption) for p in points],
             "unit": {"KWH": "kWh", "KL": "kL"}[quantity_unit]}
    return {"unit": unit, "points": points, "utility": utility, "grain": grain, "grains": GRAINS,
            "utilities": utilities, "metered": bool(meter_ids), "quantity_unit": quantity_unit,
            "chart_json": json.dumps(chart), "total": sum((p.consumption for p in points), 0)}


@bp.get("/units/<int:unit_id>/usage")
def usage(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    meters = unit_meters(db.session, unit.id)
    utilities = list(dict.fromkeys(u for u, _ in meters))
    utility = request.args.get("utility") or (utilities[0] if utilities else "electricity")
    grain = request.args.get("grain") or "daily"
    if utility not in UTILITIES:
        abort(400, gettext("utility must be one of %(choices)s", choices=", ".join(UTILITIES)))
    if grain not in GRAINS:
        abort(400, gettext("grain must be one of %(choices)s", choices=", ".join(GRAINS)))
    context = chart_context(unit, [i for u, i in meters if u == utility], utilities, utility, grain)
    fmt = requested_format()
    if fmt:
        return respond(context["points"], usage_columns(context["quantity_unit"]),
                       f"{GRAINS[grain]} {utility} use unit {unit.number}", fmt,
                       subtitle=f"{unit.estate.name} · {unit.estate.timezone} days")
    return render("tenant/usage.html", "usage", **context)

