"""Utility finance page (U5): ARPU with cumulative paying accounts, revenue per quarter, use by tenure."""
from flask import abort, request
from flask_login import current_user

from app.analytics.operator_finance import arpu_rows, estate_tenure, payment_events, period_of
from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import render
from app.layers.export import requested_format, respond
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.models import utcnow
from app.periods import add_months
from app.reports.export import Column, money_column

TABLES = ("months", "quarters", "estates", "tenure")


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
    """ARPU per month (12) and quarter (8), revenue per quarter, ARPU by estate and use by tenure."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    today = utcnow().astimezone(estate.tz).date()
    months = [period_of(add_months(today.replace(day=1), -back), "month") for back in range(11, -1, -1)]
    quarters = _quarters(today, 8)
    events = payment_events(db.session, estate)
    monthly = arpu_rows(events, "month", months)
    quarterly = arpu_rows(events, "quarter", quarters)
    latest = quarters[-1]
    by_estate = []
    for other in visible_estates(db.session, current_user, ROLES):
        rows = arpu_rows(payment_events(db.session, other), "quarter", [latest])
        by_estate.append((other, rows[0] if rows else None))
    tenure = estate_tenure(db.session, estate, events)
    fmt = requested_format()
    if fmt:
        table = request.args.get("table", "months")
        if table not in TABLES:
            abort(400, "table must be months, quarters, estates or tenure")
        currency = estate.currency
        if table in ("months", "quarters"):
            rows = monthly if table == "months" else quarterly
            return respond(rows, arpu_columns(currency), f"{estate.name} ARPU by {table[:-1]}", fmt,
                           timezone=estate.timezone)
        if table == "estates":
            return respond(by_estate, ESTATE_COLUMNS, f"ARPU by estate {latest}", fmt, timezone=estate.timezone)
        return respond(tenure, TENURE_COLUMNS, f"{estate.name} consumption by tenure", fmt, timezone=estate.timezone)
    return render("utility/finance.html", estate=estate, monthly=monthly, quarterly=quarterly, latest=latest,
                  by_estate=by_estate, tenure=tenure)


def arpu_columns(currency):
    return [Column("Period", lambda r: r.period), money_column("Revenue", lambda r: r.revenue, lambda r: currency),
            Column("Accounts paying in the period", lambda r: r.paying, numeric=True),
            Column("Cumulative paying accounts", lambda r: r.cumulative_accounts, numeric=True),
            money_column("ARPU", lambda r: r.arpu, lambda r: currency)]


ESTATE_COLUMNS = [
    Column("Estate", lambda r: r[0].name),
    money_column("Revenue", lambda r: r[1].revenue if r[1] else None, lambda r: r[0].currency),
    Column("Cumulative paying accounts", lambda r: r[1].cumulative_accounts if r[1] else 0, numeric=True),
    money_column("ARPU", lambda r: r[1].arpu if r[1] else None, lambda r: r[0].currency),
]
TENURE_COLUMNS = [Column("Tenure", lambda r: r.bucket), Column("Account-months", lambda r: r.account_months, numeric=True),
                  Column("kWh", lambda r: r.consumption, numeric=True),
                  Column("kWh per account-month", lambda r: r.average, numeric=True)]
