"""Body corporate reports: the audit-ready PDF for an AGM over a run of months (B4)."""
from io import BytesIO

from flask import abort, redirect, request, send_file, url_for
from flask_login import current_user

from app.auth.scope import estate_or_404
from app.extensions import db
from app.estates.queries import recent_periods
from app.htmx import render
from app.layers.body_corporate import bp
from app.periods import parse_period
from app.statements.audit_report import build_audit_report, render_audit_report
from app.statements.figures import StatementPeriodError

ROLES = ("body_corporate",)


@bp.get("/estates/<int:estate_id>/reports")
def reports(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    first = request.args.get("from")
    if first:  # the range form: on to the PDF of those months
        return redirect(url_for("body_corporate.audit_report", estate_id=estate.id, period=first,
                                to=request.args.get("to") or first))
    return render("body_corporate/statements/reports.html", estate=estate,
                  periods=recent_periods(db.session, estate, 12))


@bp.get("/estates/<int:estate_id>/audit/<period>.pdf")
def audit_report(estate_id: int, period: str):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    last = request.args.get("to") or period
    parse_period(period)
    parse_period(last)
    try:
        report = build_audit_report(db.session, estate, period, last)
    except StatementPeriodError as error:
        abort(400, str(error))
    pdf = render_audit_report(db.session, report)
    span = period if last == period else f"{period}-to-{last}"
    return send_file(BytesIO(pdf), mimetype="application/pdf", max_age=0,
                     download_name=f"audit-{estate.code}-{span}.pdf")
