"""Staff statements page: run an estate's month, watch its progress, see failures, download."""
from io import BytesIO

from flask import abort, request, send_file
from flask_babel import gettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.htmx import render
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond, titled
from app.layers.portal import job_panel
from app.layers.staff import bp
from app.models import Estate, JobRun, Unit
from app.periods import last_complete_period, parse_period, previous_period
from app.reports.export import Column
from app.statements.figures import StatementPeriodError
from app.statements.runs import (
    JOB_KIND, estate_statement_rows, job_target, month_label, start_run, statement_pdf,
)

STATEMENT_COLUMNS = [
    Column(_l("Unit"), lambda r: r.unit_number),
    Column(_l("Issued"), lambda r: r.issued_at),
    Column(_l("PDF SHA-256"), lambda r: r.pdf_sha256),
    Column(_l("Emails sent"), lambda r: r.sent, numeric=True),
    Column(_l("Emails written to log"), lambda r: r.logged, numeric=True),
    Column(_l("Emails waiting"), lambda r: r.pending, numeric=True),
    Column(_l("Emails failed"), lambda r: r.failed, numeric=True),
    Column(_l("Flag"), lambda r: r.discrepancy),
    Column(_l("Last error"), lambda r: r.last_error),
]


@bp.get("/statements")
def statements():
    estates = db.session.scalars(select(Estate).order_by(Estate.name)).all()
    if not estates:
        return render("staff/statements/index.html", estates=[], estate=None)
    estate = db.session.get(Estate, request.args.get("estate_id", type=int) or estates[0].id)
    if estate is None:
        abort(404)
    latest = last_complete_period(estate.tz)
    period = request.args.get("period") or latest
    parse_period(period)
    if period > latest:
        abort(400, gettext("choose a month that has ended (YYYY-MM)"))
    rows = estate_statement_rows(db.session, estate, period)
    fmt = requested_format()
    if fmt:
        return respond(rows, STATEMENT_COLUMNS, titled(N_("Statements %(estate)s %(period)s"), estate=estate.code, period=period), fmt,
                       subtitle=f"{estate.name} · {month_label(period)}", timezone=estate.timezone)
    months = [latest]
    while len(months) < 12:
        months.append(previous_period(months[-1]))
    run = db.session.scalar(select(JobRun).where(
        JobRun.kind == JOB_KIND, JobRun.target == job_target(estate, period)).order_by(JobRun.id.desc()))
    part = request.args.get("part")  # a section fetching itself again after a run
    return render("staff/statements/index.html", part if part in ("run_form", "units") else None,
                  estates=estates, estate=estate, period=period,
                  months=months, rows=rows, run=run, month_label=month_label)


@bp.post("/estates/<int:estate_id>/statements/<period>")
def run_statements(estate_id: int, period: str):
    estate = db.session.get(Estate, estate_id) or abort(404)
    parse_period(period)
    if period > last_complete_period(estate.tz):
        abort(400, gettext("%(period)s has not ended in %(estate)s", period=period, estate=estate.name))
    run = start_run(estate, period, user_id=current_user.id)
    return job_panel(run)


@bp.get("/units/<int:unit_id>/statements/<period>.pdf")
def statement_download(unit_id: int, period: str):
    unit = db.session.get(Unit, unit_id) or abort(404)
    return _send_statement(unit, period)


def _send_statement(unit: Unit, period: str):
    parse_period(period)
    try:
        pdf, filename, _ = statement_pdf(db.session, unit, period)
    except StatementPeriodError:
        abort(404)
    return send_file(BytesIO(pdf), mimetype="application/pdf", download_name=filename,
                     as_attachment=False, max_age=0)
