"""Staff daily reconciliation dashboard (U6): each estate's checks per day, failing items linked."""
from __future__ import annotations

from datetime import date

from flask import abort, flash, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from app.analytics import daily_reconciliation as recon
from app.extensions import db
from app.htmx import redirect, render
from app.jobs import enqueue
from app.layers.portal import job_panel
from app.layers.staff import bp
from app.models import Estate, JobRun


def _day(text: str | None, estate: Estate) -> date:
    if not text:
        return recon.yesterday(estate)
    try:
        return date.fromisoformat(text)
    except ValueError:
        abort(400, gettext("choose a day as YYYY-MM-DD"))


def _target(estate: Estate, day: date) -> str:
    return f"estate:{estate.id}:{day.isoformat()}"


@bp.get("/reconciliation")
def reconciliation(errors=None, status: int = 200):
    estates = db.session.scalars(select(Estate).order_by(Estate.name)).all()
    if not estates:
        return render("staff/reconciliation/index.html", estate=None, estates=[])
    estate_id = request.args.get("estate_id", type=int) or request.view_args.get("estate_id") or estates[0].id
    estate = db.session.get(Estate, estate_id) or abort(404)
    day = _day(request.args.get("day"), estate)
    results = recon.results_of(db.session, estate.id, day)
    days = recon.latest_days(db.session, estate.id)
    overview = [(e, recon.latest_days(db.session, e.id, limit=1)) for e in estates]
    run = db.session.scalar(select(JobRun).where(JobRun.kind == recon.JOB_KIND, JobRun.target == _target(estate, day))
                            .order_by(JobRun.id.desc()))
    part = request.args.get("part")
    return render("staff/reconciliation/index.html", part if part == "results" else None,
                  estates=estates, estate=estate, day=day, results=results, days=days, overview=overview, run=run,
                  labels=recon.CHECK_LABELS, shown_summary=recon.shown_summary, shown_label=recon.shown_label,
                  shown_detail=recon.shown_detail, errors=dict(errors or {})), status


@bp.post("/estates/<int:estate_id>/reconciliation/<day_text>")
def run_reconciliation(estate_id: int, day_text: str):
    estate = db.session.get(Estate, estate_id) or abort(404)
    day = _day(day_text, estate)
    if day > recon.yesterday(estate):
        abort(400, gettext("a day is reconciled once it has ended"))
    run = enqueue(recon.JOB_KIND, estate.id, day.isoformat(), target=_target(estate, day), user_id=current_user.id,
                  queue="low")
    return job_panel(run)


@bp.post("/estates/<int:estate_id>/reconciliation/mpesa-statement")
def upload_mpesa_statement(estate_id: int):
    estate = db.session.get(Estate, estate_id) or abort(404)
    upload = request.files.get("statement")
    if upload is None or not upload.filename:
        return reconciliation(errors={"statement": gettext("Choose the M-PESA statement CSV file.")}, status=400)
    try:
        result = recon.upload_mpesa_statement(db.session, estate, upload.read(), user_id=current_user.id)
    except recon.StatementError as error:
        db.session.rollback()
        return reconciliation(errors=error.errors, status=400)
    read = gettext("M-PESA statement read: %(added)s new transactions, %(already)s already uploaded.",
                   added=result.added, already=result.already)
    if result.skipped:
        read += " " + gettext("%(count)s rows skipped (%(first)s).", count=len(result.skipped),
                              first="; ".join(result.skipped[:3]))
    flash(read + " " + gettext("Run the day's reconciliation again to match them."), "success")
    return redirect(url_for("staff.reconciliation", estate_id=estate.id, day=request.form.get("day") or None))
