"""Staff settlement pages (U3): parties, rules per utility, monthly runs, reversals, payouts, statements."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from app.billing import settlement
from app.extensions import db
from app.htmx import redirect, render
from app.i18n.formatting import translated_label
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond, titled
from app.layers.portal import job_panel
from app.layers.staff import bp
from app.models import Estate, JobRun
from app.models.meter import UTILITIES
from app.models.settlement import PARTY_ROLES, RULE_METHODS, SettlementLine, SettlementParty, SettlementRun
from app.periods import InvalidPeriod, checked_period, last_complete_period, previous_period
from app.reports.export import Column
from app.statements.runs import month_label

RULE_ROWS = 5
REPORT_COLUMNS = [
    Column("Utility", lambda r: r["utility"]), Column("Run", lambda r: r["run"], numeric=True),
    Column("Status", lambda r: r["status"]), Column("Party", lambda r: r["party"]), Column("Role", lambda r: r["role"]),
    Column("Rule", lambda r: r["rule"]),
    Column("Revenue", lambda r: r["revenue"], numeric=True), Column("Share", lambda r: r["amount"], numeric=True),
    Column(N_("Paid (bank reference)"), lambda r: r["paid"]), Column(N_("Revenue basis"), lambda r: r["basis"]),
]


def _estate_or_404(estate_id: int | None) -> Estate:
    estate = db.session.get(Estate, estate_id) if estate_id else None
    if estate is None:
        abort(404)
    return estate


def _months(estate: Estate) -> list[str]:
    months = [last_complete_period(estate.tz)]
    while len(months) < 12:
        months.append(previous_period(months[-1]))
    return months


def _page(estate: Estate, *, period: str | None = None, utility: str | None = None, errors=None, form=None,
          status: int = 200):
    estates = db.session.scalars(select(Estate).order_by(Estate.name)).all()
    months = _months(estate)
    period = period or months[0]
    utility = utility if utility in UTILITIES else (settlement.settled_utilities(db.session, estate.id) or ["electricity"])[0]
    parties = settlement.parties(db.session, estate.id)
    balances = settlement.party_balances(db.session, estate.id)
    in_force = settlement.rules_in_force(db.session, estate.id, utility, "9999-12")
    runs = settlement.runs_of(db.session, estate.id, period)
    job = db.session.scalar(select(JobRun).where(JobRun.kind == settlement.JOB_KIND,
                                                 JobRun.target == settlement.job_target(estate, period))
                            .order_by(JobRun.id.desc()))
    revenue = {u: settlement.period_revenue(db.session, estate, u, period)
               for u in settlement.settled_utilities(db.session, estate.id)}
    part = request.args.get("part") if request.method == "GET" else None
    resent = settlement.resend_counts(db.session, [line.id for r in runs for line in r.lines])
    return render("staff/settlement/index.html", part if part in ("runs",) else None,
                  estates=estates, estate=estate, period=period, months=months, utility=utility,
                  utilities=UTILITIES, parties=parties, balances=balances, in_force=in_force, runs=runs, run=job,
                  resent=resent, revenue=revenue, roles=PARTY_ROLES, methods=RULE_METHODS, rule_rows=RULE_ROWS,
                  errors=dict(errors or {}), form=form if form is not None else {}, month_label=month_label,
                  rule_text=settlement.rule_text, basis_text=settlement.BASIS_TEXT), status


@bp.get("/settlement")
def settlement_page():
    first = db.session.scalar(select(Estate.id).order_by(Estate.name).limit(1))
    if first is None:
        return render("staff/settlement/index.html", estate=None, estates=[])
    estate = _estate_or_404(request.args.get("estate_id", type=int) or first)
    period = request.args.get("period")
    if period:
        try:
            period = checked_period(period)
        except InvalidPeriod:
            abort(400, gettext("choose a month as YYYY-MM"))
    if fmt := requested_format():
        period = period or _months(estate)[0]
        return respond(settlement.estate_report_rows(db.session, estate.id, period), REPORT_COLUMNS,
                       titled(N_("Settlement %(estate)s %(period)s"), estate=estate.code, period=period), fmt,
                       subtitle=f"{estate.name} · {month_label(period)} · amounts in {estate.currency}",
                       timezone=estate.timezone)
    return _page(estate, period=period, utility=request.args.get("utility"))


@bp.post("/estates/<int:estate_id>/settlement/parties")
def add_settlement_party(estate_id: int):
    estate = _estate_or_404(estate_id)
    try:
        party = settlement.add_party(db.session, estate, name=request.form.get("name", ""),
                                     role=request.form.get("role", ""),
                                     contact_email=request.form.get("contact_email", ""), user_id=current_user.id)
    except settlement.SettlementError as error:
        db.session.rollback()
        return _page(estate, errors=error.errors, form=request.form, status=400)
    flash(gettext("%(party)s added; give it a rule below.", party=party.name), "success")
    return redirect(url_for("staff.settlement_page", estate_id=estate.id))


@bp.post("/estates/<int:estate_id>/settlement/rules")
def save_settlement_rules(estate_id: int):
    estate = _estate_or_404(estate_id)
    form = request.form
    rows = []
    for n in range(1, RULE_ROWS + 1):
        party_id = form.get(f"rule-{n}-party", type=int)
        method = form.get(f"rule-{n}-method", "")
        value = form.get(f"rule-{n}-value", "")
        if party_id or value.strip():
            rows.append(settlement.RuleInput(party_id, method, value))
    utility = form.get("utility", "")
    try:
        rule_set = settlement.save_rules(db.session, estate, utility, form.get("effective_from", ""), rows,
                                         user_id=current_user.id)
    except settlement.SettlementError as error:
        db.session.rollback()
        return _page(estate, utility=utility, errors=_renumber(error.errors, form), form=form, status=400)
    flash(gettext("%(utility)s rules saved; they settle %(month)s and later months.",
                  utility=translated_label(utility, "utility"), month=month_label(rule_set.effective_from)), "success")
    return redirect(url_for("staff.settlement_page", estate_id=estate.id, utility=utility))


def _renumber(errors: dict[str, str], form) -> dict[str, str]:
    """Map the validator's rule numbers (filled rows only) back to the form's row numbers."""
    filled = [n for n in range(1, RULE_ROWS + 1)
              if form.get(f"rule-{n}-party") or form.get(f"rule-{n}-value", "").strip()]
    mapped = {}
    for key, message in errors.items():
        parts = key.split("-")
        if len(parts) == 3 and parts[0] == "rule" and parts[1].isdigit() and int(parts[1]) <= len(filled):
            key = f"rule-{filled[int(parts[1]) - 1]}-{parts[2]}"
        mapped[key] = message
    return mapped


@bp.post("/estates/<int:estate_id>/settlement/<period>/run")
def run_settlement(estate_id: int, period: str):
    estate = _estate_or_404(estate_id)
    try:
        period = checked_period(period)
    except InvalidPeriod:
        abort(400, gettext("choose a month as YYYY-MM"))
    if period > last_complete_period(estate.tz):
        abort(400, gettext("%(period)s has not ended in %(estate)s", period=period, estate=estate.name))
    return job_panel(settlement.start_run(estate, period, user_id=current_user.id))


@bp.post("/settlement/runs/<int:settlement_run_id>/reverse")
def reverse_settlement_run(settlement_run_id: int):
    run = db.session.get(SettlementRun, settlement_run_id) or abort(404)
    estate = db.session.get(Estate, run.estate_id)
    try:
        settlement.reverse_run(db.session, run, reason=request.form.get("reason", ""), user_id=current_user.id)
    except settlement.SettlementError as error:
        db.session.rollback()
        return _page(estate, period=run.period, utility=run.utility,
                     errors={f"run-{run.id}": next(iter(error.errors.values()))}, status=400)
    flash(gettext("Run %(number)s of %(month)s reversed; run the month again to settle it anew.",
                  number=run.run_number, month=month_label(run.period)),
          "success")
    return redirect(url_for("staff.settlement_page", estate_id=estate.id, period=run.period, utility=run.utility))


@bp.post("/settlement/lines/<int:line_id>/paid")
def mark_settlement_paid(line_id: int):
    line = db.session.get(SettlementLine, line_id) or abort(404)
    run = line.run
    estate = db.session.get(Estate, run.estate_id)
    try:
        settlement.mark_paid(db.session, line, reference=request.form.get("reference", ""), user_id=current_user.id)
    except settlement.SettlementError as error:
        db.session.rollback()
        return _page(estate, period=run.period, utility=run.utility,
                     errors={f"line-{line_id}": next(iter(error.errors.values()))}, status=400)
    flash(gettext("%(party)s's share marked paid (reference %(reference)s).", party=line.party.name,
                  reference=line.paid_reference), "success")
    return redirect(url_for("staff.settlement_page", estate_id=estate.id, period=run.period, utility=run.utility))


@bp.get("/settlement/parties/<int:party_id>/statement")
def settlement_statement(party_id: int):
    party = db.session.get(SettlementParty, party_id) or abort(404)
    estate = db.session.get(Estate, party.estate_id)
    period = request.args.get("period") or None
    if period:
        try:
            period = checked_period(period)
        except InvalidPeriod:
            abort(400, gettext("choose a month as YYYY-MM"))
    rows, columns, title, subtitle, note = settlement.party_statement(db.session, party, period)
    return respond(rows, columns, title, requested_format() or "pdf", subtitle=subtitle, timezone=estate.timezone,
                   note=note)


@bp.post("/settlement/runs/<int:settlement_run_id>/send-statements")
def send_settlement_statements(settlement_run_id: int):
    """Email each party of the run its statement PDF; parties already sent are told when."""
    run = db.session.get(SettlementRun, settlement_run_id) or abort(404)
    estate = db.session.get(Estate, run.estate_id)
    for outcome in settlement.send_party_statements(db.session, run):
        flash(outcome.text(estate.timezone), "error" if outcome.status in ("failed", "no_contact") else "success")
    return redirect(url_for("staff.settlement_page", estate_id=estate.id, period=run.period, utility=run.utility))


@bp.post("/settlement/lines/<int:line_id>/resend-statement")
def resend_settlement_statement(line_id: int):
    """Send one party's statement of a posted run again, on purpose (recorded on the line, audited)."""
    line = db.session.get(SettlementLine, line_id) or abort(404)
    run = line.run
    estate = db.session.get(Estate, run.estate_id)
    try:
        outcome = settlement.resend_party_statement(db.session, line)
    except settlement.SettlementError as error:
        db.session.rollback()
        return _page(estate, period=run.period, utility=run.utility,
                     errors={f"line-{line_id}": next(iter(error.errors.values()))}, status=400)
    flash(outcome.text(estate.timezone), "error" if outcome.status in ("failed", "no_contact") else "success")
    return redirect(url_for("staff.settlement_page", estate_id=estate.id, period=run.period, utility=run.utility)
                    + f"#run-{run.id}")
