"""Utility carbon page (U5): kg CO2e per month and utility, per unit for one month, solar offset."""
from decimal import Decimal

from flask import abort, request
from flask_babel import gettext as _
from flask_login import current_user

from app.analytics.carbon import CARBON_UTILITIES, estate_carbon
from app.auth.scope import estate_or_404
from app.extensions import db
from app.htmx import render
from app.layers.export import requested_format, respond
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.models import utcnow
from app.periods import current_period, shift_period
from app.reports.export import Column

MONTHS = 12


@bp.get("/estates/<int:estate_id>/carbon")
def carbon(estate_id: int):
    """The last 12 local months' footprint, offset and net; each unit's footprint in one month."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    this_month = current_period(estate.tz, utcnow())
    months = [shift_period(this_month, -back) for back in range(MONTHS - 1, -1, -1)]
    month = request.args.get("month") or months[-2]  # the last complete month
    if month not in months:
        abort(400, "month must be one of the last 12")
    report = estate_carbon(db.session, estate, months, unit_month=month)
    unit_rows = [u for u in report.units if u.period == month]
    fmt = requested_format()
    if fmt:
        table = request.args.get("table", "months")
        if table == "months":
            return respond(report.months, MONTH_COLUMNS, f"{estate.name} carbon footprint by month", fmt,
                           subtitle=_("kg CO2e; emission factors for %(country)s", country=estate.country),
                           timezone=estate.timezone)
        if table == "units":
            return respond(unit_rows, UNIT_COLUMNS, f"{estate.name} carbon footprint by unit {month}", fmt,
                           subtitle=_("kg CO2e"), timezone=estate.timezone)
        abort(400, "table must be months or units")
    return render("utility/carbon.html", estate=estate, report=report, months=months, month=month,
                  unit_rows=unit_rows, utilities=CARBON_UTILITIES)


THREE = Decimal("0.001")


def _kg(utility):
    return lambda row: row.kg.get(utility, Decimal(0)).quantize(THREE)


def _use(utility):
    return lambda row: Decimal(row.use.get(utility, 0)).quantize(THREE)


MONTH_COLUMNS = [
    Column("Month", lambda m: m.period),
    Column("Electricity kWh", _use("electricity"), numeric=True),
    Column("Electricity kg CO2e", _kg("electricity"), numeric=True),
    Column("Water kL", _use("water"), numeric=True),
    Column("Water kg CO2e", _kg("water"), numeric=True),
    Column("Hot water kL", _use("hot_water"), numeric=True),
    Column("Hot water kg CO2e", _kg("hot_water"), numeric=True),
    Column("Footprint kg CO2e", lambda m: m.total_kg, numeric=True),
    Column("Solar kWh", lambda m: m.solar_kwh.quantize(THREE), numeric=True),
    Column("Solar offset kg CO2e", lambda m: m.offset_kg, numeric=True),
    Column("Net kg CO2e", lambda m: m.net_kg, numeric=True),
    Column("Use without a factor", lambda m: "; ".join(f"{u}: {q.quantize(THREE)}" for u, q in m.unpriced.items())),
]
UNIT_COLUMNS = [
    Column("Unit", lambda u: u.unit_number), Column("Month", lambda u: u.period),
    Column("Electricity kg CO2e", _kg("electricity"), numeric=True),
    Column("Water kg CO2e", _kg("water"), numeric=True),
    Column("Hot water kg CO2e", _kg("hot_water"), numeric=True),
    Column("Total kg CO2e", lambda u: u.total_kg, numeric=True),
]
