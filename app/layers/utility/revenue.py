"""Utility revenue assurance page (U4): expected vs billed vs collected, anomaly scores, cases."""
from flask import abort, request
from flask_babel import gettext as _, lazy_gettext as _l
from flask_login import current_user

from app.analytics.losses import recipients
from app.analytics.revenue_assurance import (CaseError, RULE_LABELS, cases, latest_scores, revenue_months,
                                             scored_count, update_case, why_text)
from app.auth.scope import estate_or_404
from app.extensions import db
from app.htmx import render
from app.i18n.formatting import translated_label
from app.layers.export import requested_format, respond
from app.layers.utility import bp
from app.layers.utility.views import ROLES
from app.models import utcnow
from app.models.utility import CASE_STATUSES
from app.periods import current_period
from app.reports.export import Column, money_column
from app.routing import whole_number

TABLES = ("months", "scores", "cases")
SCORES = 200  # the latest day's highest scores the page and its download read


@bp.get("/estates/<int:estate_id>/revenue")
def revenue(estate_id: int):
    """The last 12 months' revenue figures, the latest anomaly scores and the cases."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    months = revenue_months(db.session, estate, current_period(estate.tz, utcnow()), 12)
    found = cases(db.session, estate.id)
    fmt = requested_format()
    if not fmt:  # the page lists the meters that scored above 0 of the top 200 and counts the rest
        day, flagged = latest_scores(db.session, estate.id, limit=SCORES, flagged_only=True)
        normal = min(SCORES, scored_count(db.session, estate.id, day)) - len(flagged) if day else 0
        return _page(estate, months, day, flagged, normal, found, {}, None)
    table = request.args.get("table", "months")
    if table not in TABLES:
        abort(400, _("table must be months, scores or cases"))
    if table == "months":
        return respond(months, month_columns(estate.currency), _("%(estate)s revenue assurance", estate=estate.name), fmt,
                       timezone=estate.timezone)
    if table == "scores":
        day, scores = latest_scores(db.session, estate.id, limit=SCORES)
        return respond(scores, SCORE_COLUMNS, _("%(estate)s anomaly scores %(day)s", estate=estate.name, day=day or ""), fmt,
                       timezone=estate.timezone)
    return respond(found, CASE_COLUMNS, _("%(estate)s revenue cases", estate=estate.name), fmt, timezone=estate.timezone)


@bp.post("/estates/<int:estate_id>/cases")
def update_revenue_case(estate_id: int):
    """Change one case's status, assignee or note; the case row is swapped in place."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    case_id = whole_number(request.form.get("case_id"), 1)
    if case_id is None:
        abort(404)
    try:
        update_case(db.session, estate, case_id, request.form, user_id=current_user.id,
                    assignable=recipients(db.session, estate.id))
    except LookupError:
        db.session.rollback()
        abort(404)
    except CaseError as error:
        db.session.rollback()
        return _case_fragment(estate, case_id, error.errors, request.form), 400
    return _case_fragment(estate, case_id, {}, None)


def _case_fragment(estate, case_id, errors, form):
    row = next((r for r in cases(db.session, estate.id) if r[0].id == case_id), None)
    if row is None:
        abort(404)
    return render("utility/_case.html", estate=estate, row=row, errors=errors, form=form,
                  statuses=CASE_STATUSES, assignable=recipients(db.session, estate.id), rule_labels=RULE_LABELS,
                  why_text=why_text)


def _page(estate, months, day, flagged, normal, found, errors, form):
    return render("utility/revenue.html", estate=estate, months=months, day=day, scores=flagged, normal=normal,
                  cases=found, errors=errors, form=form, statuses=CASE_STATUSES,
                  assignable=recipients(db.session, estate.id), rule_labels=RULE_LABELS, why_text=why_text)


def month_columns(currency: str) -> list[Column]:
    return [
        Column(_("Month"), lambda m: m.period),
        money_column(_("Expected"), lambda m: m.expected, lambda m: currency),
        money_column(_("Billed"), lambda m: m.billed, lambda m: currency),
        money_column(_("Collected"), lambda m: m.collected, lambda m: currency),
        money_column(_("Expected not billed"), lambda m: m.unbilled, lambda m: currency),
        Column(_("Collected (percent of expected)"), lambda m: m.collection_percent, numeric=True),
        Column(_("Meters without a tariff"), lambda m: m.unpriced_meters, numeric=True),
    ]


def _parts(parts) -> str:
    return "; ".join(f"{RULE_LABELS.get(p['rule'], p['rule'])} +{p['points']}: {why_text(p)}" for p in parts) or _("Normal")


SCORE_COLUMNS = [
    Column(_l("Unit"), lambda s: s[2].number if s[2] else ""),
    Column(_l("Meter"), lambda s: s[1].serial),
    Column(_l("Utility"), lambda s: translated_label(s[1].utility, "utility")),
    Column(_l("Day"), lambda s: s[0].day),
    Column(_l("Use"), lambda s: s[0].consumption, numeric=True),
    Column(_l("Score"), lambda s: s[0].score, numeric=True),
    Column(_l("Why"), lambda s: _parts(s[0].parts)),
]
CASE_COLUMNS = [
    Column(_l("Opened"), lambda c: c[0].opened_on),
    Column(_l("Unit"), lambda c: c[2].number if c[2] else ""),
    Column(_l("Meter"), lambda c: c[1].serial),
    Column(_l("Score"), lambda c: c[0].score, numeric=True),
    Column(_l("Status"), lambda c: translated_label(c[0].status, "case_status")),
    Column(_l("Assigned to"), lambda c: c[3].email if c[3] else ""),
    Column(_l("Note"), lambda c: c[0].note),
    Column(_l("Why"), lambda c: _parts(c[0].parts)),
]
