"""Utility shared solar page (Quantify 11.2): how the estate shares its solar, each month's
allocation per unit (planned or posted), and for staff the scheme form, the run and its reversal."""
from decimal import Decimal

from flask import abort, flash, request, url_for
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user

from app.auth.scope import estate_or_404
from app.billing import shared_solar
from app.billing.shared_solar import METHOD_LABELS, SolarError
from app.extensions import db
from app.htmx import redirect, render
from app.layers.export import requested_format, respond
from app.layers.owner.selection import page_of
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.models import utcnow
from app.models.utility import SOLAR_METHODS
from app.periods import last_complete_period, shift_period
from app.reports.export import Column, money_column

UNITS_PER_PAGE = 50  # the allocation table on the page; the totals, chart and downloads cover every unit


def _months(estate) -> list[str]:
    last = last_complete_period(estate.tz, utcnow())
    return [shift_period(last, -back) for back in range(12)]


def _period(estate, raw) -> str:
    months = _months(estate)
    period = raw or months[0]
    if period not in months:
        abort(400, _("month must be one of the last 12 complete months"))
    return period


def _page(estate, period, *, errors=None, form=None, status=200):
    scheme = shared_solar.scheme_of(db.session, estate)
    try:
        report, refused = shared_solar.plan_allocation(db.session, estate, period), None
    except SolarError as error:
        report, refused = None, error.errors.get("period")
    rows = report.rows if report else []
    shown = [r for r in rows if r.status != "left out"]  # the chart: every unit with a share, not one page
    chart = {"type": "bar", "unit": "kWh", "stacked": True, "labels": [r.unit_number for r in shown],
             "datasets": [{"label": _("Solar share"), "data": [float(r.kwh) for r in shown], "backgroundColor": "#f2c94c"},
                          {"label": _("From the grid"), "data": [float(r.used - r.kwh) for r in shown],
                           "backgroundColor": "#8aa4c8"}]}
    paged, page, pages = page_of(rows, UNITS_PER_PAGE)
    return render("utility/solar.html", estate=estate, period=period, months=_months(estate), report=report,
                  rows=paged, page=page, pages=pages,
                  per_page=UNITS_PER_PAGE, chart=chart, posted=any(r.status == "already" for r in rows),
                  refused=refused, scheme=scheme, method_labels=METHOD_LABELS,
                  methods=SOLAR_METHODS,
                  custom=shared_solar.custom_text(db.session, scheme), errors=errors or {}, form=form,
                  runs=shared_solar.allocations_of(db.session, estate),
                  can_edit=current_user.is_staff), status


@bp.get("/estates/<int:estate_id>/solar")
def solar(estate_id: int):
    """The month's allocation report; ?format=csv|pdf downloads it."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    period = _period(estate, request.args.get("month"))
    fmt = requested_format()
    if fmt:
        try:
            report = shared_solar.plan_allocation(db.session, estate, period)
        except SolarError as error:
            abort(400, error.errors.get("period", str(error)))
        state = _("posted") if any(r.status == "already" for r in report.rows) else _("not posted yet")
        subtitle = _("%(gen)s kWh generated, method: %(method)s, run %(run)s (%(state)s)",
                     gen=report.generation, method=METHOD_LABELS[report.method], run=report.run, state=state)
        return respond(report.rows, allocation_columns(estate.currency),
                       _("%(estate)s shared solar %(period)s", estate=estate.name, period=period), fmt,
                       subtitle=subtitle, timezone=estate.timezone)
    return _page(estate, period)


def _staff_only():
    if not current_user.is_staff:
        abort(404)


@bp.post("/estates/<int:estate_id>/solar/scheme")
def save_solar_scheme(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    _staff_only()
    period = _period(estate, request.form.get("month"))
    try:
        shared_solar.save_scheme(db.session, estate, request.form, user_id=current_user.id)
    except SolarError as error:
        db.session.rollback()
        return _page(estate, period, errors=error.errors, form=request.form, status=400)
    flash(_("Sharing method saved; months already posted keep theirs."), "success")
    return redirect(url_for("utility.solar", estate_id=estate.id, month=period))


@bp.post("/estates/<int:estate_id>/solar/run")
def run_solar_allocation(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    _staff_only()
    period = _period(estate, request.form.get("month"))
    try:
        report = shared_solar.run_allocation(db.session, estate, period, user_id=current_user.id)
    except SolarError as error:
        db.session.rollback()
        return _page(estate, period, errors=error.errors, status=400)
    if report.problems:
        return _page(estate, period, errors={"run": " ".join(report.problems)}, status=400)
    posted = sum(1 for r in report.rows if r.status == "posted")
    flash(_("Shared solar for %(period)s posted to %(n)s units.", period=period, n=posted) if posted
          else _("%(period)s was already allocated: nothing posted.", period=period), "success")
    return redirect(url_for("utility.solar", estate_id=estate.id, month=period))


@bp.post("/estates/<int:estate_id>/solar/reverse")
def reverse_solar_allocation(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    _staff_only()
    period = _period(estate, request.form.get("month"))
    try:
        count = shared_solar.reverse_allocation(db.session, estate, period, user_id=current_user.id)
    except SolarError as error:
        db.session.rollback()
        return _page(estate, period, errors=error.errors, status=400)
    flash(_("%(n)s units' shares of %(period)s reversed; the month may be allocated again.", n=count, period=period),
          "success")
    return redirect(url_for("utility.solar", estate_id=estate.id, month=period))


def allocation_columns(currency: str) -> list[Column]:
    return [Column(_("Unit"), lambda r: r.unit_number), Column(_("Weight"), lambda r: r.weight.quantize(Decimal("0.01")), numeric=True),
            Column(_("Used kWh"), lambda r: r.used, numeric=True), Column(_("Solar share kWh"), lambda r: r.kwh, numeric=True),
            money_column(_("Solar charge"), lambda r: r.solar_amount, lambda r: currency),
            money_column(_("Grid rate"), lambda r: r.grid_rate, lambda r: currency),
            money_column(_("Grid charge given back"), lambda r: r.grid_credit, lambda r: currency),
            money_column(_("Net credit"), lambda r: r.net, lambda r: currency),
            Column(_("State"), lambda r: r.reason or STATE_LABELS.get(r.status, r.status))]


STATE_LABELS = {"already": _l("Posted"), "posted": _l("Posted"), "new": _l("Not posted yet"), "left out": _l("No share")}
