"""Utility finance page (U5): ARPU with cumulative paying accounts, revenue per quarter, use by tenure.

Every figure has its table and its own CSV/PDF (`?table=NAME&format=csv|pdf`); `?table=report&format=pdf`
is the whole report in one PDF: each figure's chart and table.
"""
from decimal import Decimal

from flask import abort, request
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user

from app.analytics.operator_finance import arpu_rows, estate_tenure, payment_events, period_of
from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import render
from app.layers.export import requested_format, respond, respond_report
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.models import utcnow
from app.periods import add_months
from app.reports.export import Column, Section, money_column
from app.reports.pdf import ChartSeries, ReportChart

TABLES = ("months", "quarters", "revenue", "estates", "tenure")
PALETTE = ("#8aa4c8", "#0f766e", "#e0a458", "#7a5195", "#ef5675", "#58508d", "#ffa600", "#2f4b7c")


def _quarters(today, count):
    first = today.replace(day=1)
    found = []
    for back in range(0, count * 3, 3):
        label = period_of(add_months(first, -back), "quarter")
        if label not in found:
            found.append(label)
    return sorted(found)


@bp.get("/estates/<int:estate_id>/finance")
def finance(estate_id: int):
    """ARPU per month (12) and quarter (8), revenue per estate and quarter, ARPU by estate and use by tenure."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    today = utcnow().astimezone(estate.tz).date()
    months = [period_of(add_months(today.replace(day=1), -back), "month") for back in range(11, -1, -1)]
    quarters = _quarters(today, 8)
    events = payment_events(db.session, estate)
    monthly = arpu_rows(events, "month", months)
    quarterly = arpu_rows(events, "quarter", quarters)
    latest = quarters[-1]
    # Every estate the user sees, by quarter: the stacked revenue figure (estates in this estate's
    # currency: amounts in two currencies do not stack) and the latest quarter's ARPU by estate.
    per_estate = []
    for other in visible_estates(db.session, current_user, ROLES):
        rows = quarterly if other.id == estate.id else arpu_rows(payment_events(db.session, other), "quarter", quarters)
        per_estate.append((other, {r.period: r for r in rows}))
    by_estate = [(other, rows.get(latest)) for other, rows in per_estate]
    revenue = [(other, rows) for other, rows in per_estate if other.currency == estate.currency]
    tenure = estate_tenure(db.session, estate, events)
    fmt = requested_format()
    if fmt:
        table = request.args.get("table", "months")
        sections = _sections(estate, monthly, quarterly, quarters, revenue, by_estate, latest, tenure)
        amounts = _("Amounts in %(currency)s; ARPU over cumulative paying accounts", currency=estate.currency)
        if table == "report":
            if fmt != "pdf":
                abort(400, _("the whole report is a PDF: format=pdf"))
            note = _("An account is a unit. ARPU is a period's payments divided by the cumulative paying accounts: "
                     "every unit that has paid at least once up to the end of that period. Payments include Koios "
                     "and ThunderCloud payments for mini-grid estates.")
            return respond_report(list(sections.values()), _("%(estate)s operator finance", estate=estate.name),
                                  subtitle=amounts, timezone=estate.timezone, note=note)
        if table not in TABLES:
            abort(400, _("table must be months, quarters, revenue, estates, tenure or report"))
        section = sections[table]
        return respond(section.rows, section.columns, _("%(estate)s - %(figure)s", estate=estate.name, figure=section.heading), fmt, note=section.note,
                       subtitle="" if table == "tenure" else amounts, timezone=estate.timezone)
    return render("utility/finance.html", estate=estate, monthly=monthly, quarterly=quarterly, latest=latest,
                  by_estate=by_estate, tenure=tenure, quarters=quarters, revenue=revenue,
                  revenue_chart=_revenue_chart(revenue, quarters, estate.currency))




def _revenue_chart(revenue, quarters, unit: str = "") -> ReportChart:
    """Revenue per estate per quarter, stacked: one series per estate."""
    series = [ChartSeries(other.name, [float(rows[q].revenue) if q in rows else 0.0 for q in quarters],
                          PALETTE[i % len(PALETTE)]) for i, (other, rows) in enumerate(revenue)]
    return ReportChart("bar", list(quarters), series, unit=unit, stacked=True)


def _sections(estate, monthly, quarterly, quarters, revenue, by_estate, latest, tenure) -> dict[str, Section]:
    """Each figure of the page as the exports write it, keyed by its `?table=` name."""
    currency = estate.currency
    arpu_line = ReportChart("line", [r.period for r in monthly],
                            [ChartSeries(_("ARPU"), [float(r.arpu or 0) for r in monthly], "#0f766e")], unit=currency)
    same = [(other, row) for other, row in by_estate if other.currency == currency]
    arpu_bars = ReportChart("bar", [other.name for other, _row in same],
                            [ChartSeries(_("ARPU"), [float(row.arpu or 0) if row else 0.0 for _other, row in same],
                                         "#0f766e")], unit=currency)
    tenure_bars = ReportChart("bar", [r.bucket for r in tenure],
                              [ChartSeries(_("kWh per account-month"), [float(r.average or 0) for r in tenure],
                                           "#8aa4c8")], unit="kWh")
    return {
        "months": Section(_("ARPU by month"), monthly, arpu_columns(currency), chart=arpu_line),
        "quarters": Section(_("Revenue and ARPU by quarter"), quarterly, arpu_columns(currency)),
        "revenue": Section(_("Revenue per estate by quarter"), revenue, revenue_columns(quarters),
                           note=_("Estates in %(currency)s that you can see.", currency=currency),
                           chart=_revenue_chart(revenue, quarters, currency)),
        "estates": Section(_("ARPU by estate %(quarter)s", quarter=latest), by_estate, ESTATE_COLUMNS,
                           chart=arpu_bars if len(arpu_bars.labels) > 1 else None),
        "tenure": Section(_("Consumption by tenure"), tenure, TENURE_COLUMNS,
                          note=_("Tenure is the months since the account's first payment; each month of an "
                                 "account's use counts once."), chart=tenure_bars),
    }


def arpu_columns(currency):
    return [Column(_("Period"), lambda r: r.period), money_column(_("Revenue"), lambda r: r.revenue, lambda r: currency),
            Column(_("Accounts paying in the period"), lambda r: r.paying, numeric=True),
            Column(_("Cumulative paying accounts"), lambda r: r.cumulative_accounts, numeric=True),
            money_column(_("ARPU"), lambda r: r.arpu, lambda r: currency)]


def revenue_columns(quarters):
    """The full revenue table: an estate a row, a quarter a column, and the estate's total."""
    def quarter(q):
        return money_column(q, lambda r: r[1][q].revenue if q in r[1] else 0, lambda r: r[0].currency)
    return [Column(_("Estate"), lambda r: r[0].name), *[quarter(q) for q in quarters],
            money_column(_("Total"), lambda r: sum((r[1][q].revenue for q in quarters if q in r[1]), 0),
                         lambda r: r[0].currency)]


ESTATE_COLUMNS = [
    Column(_l("Estate"), lambda r: r[0].name),
    money_column(_l("Revenue"), lambda r: r[1].revenue if r[1] else None, lambda r: r[0].currency),
    Column(_l("Cumulative paying accounts"), lambda r: r[1].cumulative_accounts if r[1] else 0, numeric=True),
    money_column(_l("ARPU"), lambda r: r[1].arpu if r[1] else None, lambda r: r[0].currency),
]
TENURE_COLUMNS = [Column(_l("Tenure"), lambda r: r.bucket),
                  Column(_l("Account-months"), lambda r: r.account_months, numeric=True),
                  Column("kWh", lambda r: r.consumption.quantize(Decimal("0.001")), numeric=True),
                  Column(_l("kWh per account-month"), lambda r: r.average, numeric=True)]
