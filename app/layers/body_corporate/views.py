"""Body corporate pages: scheme figures, and one scheme's dashboard (B1) with common property (B2)."""
import json

from flask import flash, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.billing.scheme import common_property, scheme_months
from app.estates.queries import recent_periods
from app.estates.status import EstateRuleError, set_period_status
from app.extensions import db
from app.htmx import redirect, render
from app.i18n.formatting import translated_label
from app.i18n.label_texts import N_
from app.layers.body_corporate import bp
from app.layers.export import requested_format, respond, titled
from app.periods import current_period, parse_period
from app.reports.export import Column, money_column
from app.reports.summaries import estate_figures

ROLES = ("body_corporate",)
MONTH_COLUMNS = [
    Column("Month", lambda r: r.period),
    money_column("Levies billed", lambda r: r.billed, lambda r: r.currency),
    money_column("Levies collected", lambda r: r.collected, lambda r: r.currency),
    money_column(N_("Levy arrears at month end"), lambda r: r.arrears, lambda r: r.currency),
    money_column(N_("Utility spend (common property)"), lambda r: r.utility_spend, lambda r: r.currency),
    money_column("Surplus / deficit", lambda r: r.surplus, lambda r: r.currency),
]


@bp.get("/")
def index():
    figures = [estate_figures(db.session, e) for e in visible_estates(db.session, current_user, ROLES)]
    return render("body_corporate/index.html", figures=figures)


@bp.get("/estates/<int:estate_id>")
def estate(estate_id: int):
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    return _dashboard(found)


def _dashboard(found, lock_error=None):
    months = scheme_months(db.session, found, 12)
    for row in months:
        row.currency = found.currency
    fmt = requested_format()
    if fmt:
        return respond(months, MONTH_COLUMNS, titled(N_("Scheme finances %(estate)s"), estate=found.code), fmt, subtitle=found.name,
                       timezone=found.timezone)
    grain = "day" if request.args.get("grain") == "day" else "month"
    chart = {"labels": [m.period for m in reversed(months)], "unit": found.currency,
             "series": [{"label": gettext("Levies billed"), "values": [str(m.billed) for m in reversed(months)]},
                        {"label": gettext("Collected"), "values": [str(m.collected) for m in reversed(months)]},
                        {"label": gettext("Levy arrears"), "values": [str(m.arrears) for m in reversed(months)]},
                        {"label": gettext("Utility spend"), "values": [str(m.utility_spend) for m in reversed(months)]}]}
    periods = [(p, s) for p, s in recent_periods(db.session, found, 12) if p < current_period(found.tz)]
    return render("body_corporate/dashboard.html", f=estate_figures(db.session, found), estate=found,
                  months=months, this_month=months[0], chart_json=json.dumps(chart), grain=grain,
                  common=common_property(db.session, found, grain, 31 if grain == "day" else 12),
                  periods=periods, lock_error=lock_error)


@bp.post("/estates/<int:estate_id>/periods/<period>")
def set_period(estate_id: int, period: str):
    """Close or lock a month that has ended (C8, B4): audited, never undone."""
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    parse_period(period)
    status = request.form.get("status", "")
    try:
        if period >= current_period(found.tz):
            raise EstateRuleError(gettext("%(period)s has not ended; only a month that has ended can be closed or locked",
                                           period=period))
        if status not in ("closed", "locked"):
            raise EstateRuleError(gettext("choose close or lock"))
        set_period_status(db.session, found, period, status)
    except EstateRuleError as error:
        db.session.rollback()
        response = _dashboard(found, lock_error=f"{period}: {error}")
        response.status_code = 400
        return response
    flash(gettext("%(estate)s %(period)s is now %(status)s.", estate=found.name, period=period,
                  status=translated_label(status, "period_status").lower()), "success")
    return redirect(url_for("body_corporate.estate", estate_id=found.id) + "#periods")
