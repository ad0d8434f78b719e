"""Utility carbon page (U5): kg CO2e per month and utility, per unit for one month, solar offset."""
from decimal import Decimal

from flask import abort, request
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user

from app.analytics.carbon import CARBON_UTILITIES, estate_carbon
from app.auth.scope import estate_or_404
from app.extensions import db
from app.htmx import render
from app.i18n.formatting import translated_label
from app.layers.export import requested_format, respond, respond_report
from app.layers.owner.selection import page_of
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.models import utcnow
from app.periods import current_period, shift_period
from app.reports.export import Column, Section
from app.reports.pdf import ChartSeries, ReportChart

MONTHS = 12
UNITS_PER_PAGE = 50  # the page's unit table; its exports and the month figures cover every unit


@bp.get("/estates/<int:estate_id>/carbon")
def carbon(estate_id: int):
    """The last 12 local months' footprint, offset and net; each unit's footprint in one month."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    this_month = current_period(estate.tz, utcnow())
    months = [shift_period(this_month, -back) for back in range(MONTHS - 1, -1, -1)]
    month = request.args.get("month") or months[-2]  # the last complete month
    if month not in months:
        abort(400, _("month must be one of the last 12"))
    report = estate_carbon(db.session, estate, months, unit_month=month)
    unit_rows = [u for u in report.units if u.period == month]
    fmt = requested_format()
    if fmt:
        table = request.args.get("table", "months")
        if table == "months":
            return respond(report.months, month_columns(report.utilities), _("%(estate)s carbon footprint by month", estate=estate.name), fmt,
                           subtitle=_("kg CO2e; emission factors for %(country)s", country=estate.country),
                           timezone=estate.timezone)
        if table == "units":
            return respond(unit_rows, unit_columns(report.utilities), _("%(estate)s carbon footprint by unit %(month)s", estate=estate.name, month=month),
                           fmt,
                           subtitle=_("kg CO2e"), timezone=estate.timezone)
        if table == "report":
            if fmt != "pdf":
                abort(400, _("the whole report is a PDF: format=pdf"))
            note = _("kg CO2e from the unit meters' use times the emission factor in force on each local day; the "
                     "solar offset is the estate's solar generation times the electricity factor.")
            title = _("%(estate)s carbon footprint", estate=estate.name)
            return respond_report(_sections(report, unit_rows, month), title,
                                  subtitle=_("kg CO2e; emission factors for %(country)s", country=estate.country),
                                  timezone=estate.timezone, note=note)
        abort(400, _("table must be months, units or report"))
    shown, page, pages = page_of(unit_rows, UNITS_PER_PAGE)
    return render("utility/carbon.html", estate=estate, report=report, months=months, month=month,
                  unit_rows=shown, unit_count=len(unit_rows), page=page, pages=pages, per_page=UNITS_PER_PAGE,
                  utilities=report.utilities)


COLOURS = {"electricity": "#8aa4c8", "water": "#0f766e", "hot_water": "#e0a458"}


def _sections(report, unit_rows, month) -> list[Section]:
    """The whole carbon report: the months with their stacked chart, the month's units, the factors."""
    series = [ChartSeries(translated_label(u, "utility"), [float(m.kg.get(u, 0)) for m in report.months], COLOURS[u])
              for u in report.utilities if any(m.kg.get(u, 0) for m in report.months)]
    if any(m.offset_kg for m in report.months):
        series.append(ChartSeries(_("Solar offset"), [-float(m.offset_kg) for m in report.months], "#f2c94c"))
    chart = ReportChart("bar", [m.period for m in report.months], series, unit="kg CO2e", stacked=True)
    factors = [(u, day, kg) for u, entries in report.factors.items() for day, kg in entries]
    return [
        Section(_("By month, last 12"), report.months, month_columns(report.utilities), chart=chart),
        Section(_("By unit, %(month)s", month=month), unit_rows, unit_columns(report.utilities)),
        Section(_("Emission factors in use"), factors, FACTOR_COLUMNS),
    ]


THREE = Decimal("0.001")


def _kg(utility):
    return lambda row: row.kg.get(utility, Decimal(0)).quantize(THREE)


def _use(utility):
    return lambda row: Decimal(row.use.get(utility, 0)).quantize(THREE)


USE_LABELS = {"electricity": (_l("Electricity kWh"), _l("Electricity kg CO2e")),
              "water": (_l("Water kL"), _l("Water kg CO2e")),
              "hot_water": (_l("Hot water kL"), _l("Hot water kg CO2e"))}


def month_columns(utilities=CARBON_UTILITIES) -> list[Column]:
    """The months table: use and kg of each utility the estate has, then the totals."""
    per_utility = [column for u in utilities for column in (
        Column(USE_LABELS[u][0], _use(u), numeric=True), Column(USE_LABELS[u][1], _kg(u), numeric=True))]
    return [
        Column(_l("Month"), lambda m: m.period), *per_utility,
        Column(_l("Footprint kg CO2e"), lambda m: m.total_kg.quantize(THREE), numeric=True),
        Column(_l("Solar kWh"), lambda m: m.solar_kwh.quantize(THREE), numeric=True),
        Column(_l("Solar offset kg CO2e"), lambda m: m.offset_kg.quantize(THREE), numeric=True),
        Column(_l("Net kg CO2e"), lambda m: m.net_kg.quantize(THREE), numeric=True),
        Column(_l("Use without a factor"), lambda m: "; ".join(f"{u}: {q.quantize(THREE)}" for u, q in m.unpriced.items())),
    ]


def unit_columns(utilities=CARBON_UTILITIES) -> list[Column]:
    """The units table: kg of each utility the estate has and the unit's total."""
    return [Column(_l("Unit"), lambda u: u.unit_number), Column(_l("Month"), lambda u: u.period),
            *[Column(USE_LABELS[u][1], _kg(u), numeric=True) for u in utilities],
            Column(_l("Total kg CO2e"), lambda u: u.total_kg, numeric=True)]


FACTOR_COLUMNS = [
    Column(_l("Utility"), lambda f: translated_label(f[0], "utility")),
    Column(_l("From"), lambda f: f[1]), Column(_l("kg CO2e per unit"), lambda f: f[2], numeric=True),
]
