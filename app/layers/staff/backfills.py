"""Staff page for historical backfills: start one (source, estate, days), watch it, stop and resume it."""
from flask import abort, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.htmx import is_partial, redirect, render
from app.layers.staff import bp
from app.models import Estate
from app.models.backfills import BACKFILL_SOURCES, SourceBackfill
from app.sources.backfill import (
    MAX_RANGE_DAYS, BackfillError, can_resume, latest_run, parse_request, recent_backfills, request_stop,
    resume_backfill, start_backfill, summary as backfill_summary)


def _page(errors: dict | None = None, form: dict | None = None, status: int = 200):
    rows = recent_backfills(db.session)
    runs = {b.id: latest_run(db.session, b) for b, _ in rows}
    resumable = {b.id for b, _ in rows if can_resume(db.session, b)}
    estates = db.session.scalars(select(Estate).order_by(Estate.name)).all()
    return render("staff/backfills.html", "backfills", rows=rows, runs=runs, resumable=resumable, estates=estates,
                  sources=BACKFILL_SOURCES, errors=errors or {}, form=form or {},
                  max_days=MAX_RANGE_DAYS, backfill_summary=backfill_summary), status


@bp.get("/backfills")
def backfills():
    return _page()


@bp.post("/backfills")
def start_backfill_view():
    form = {name: request.form.get(name, "") for name in ("source", "estate", "first_day", "last_day")}
    try:
        source, estate_id, first_day, last_day = parse_request(
            form["source"], form["estate"], form["first_day"], form["last_day"])
        estate = db.session.get(Estate, estate_id)
        if estate is None:
            raise BackfillError({"estate": "Choose an estate."})
        start_backfill(db.session, source, estate, first_day, last_day, user_id=current_user.id)
    except BackfillError as error:
        db.session.rollback()
        return _page(error.errors, form, 400)
    return redirect(url_for("staff.backfills"))


def _backfill_or_404(backfill_id: int) -> SourceBackfill:
    return db.session.get(SourceBackfill, backfill_id) or abort(404)


@bp.post("/backfills/<int:backfill_id>/stop")
def stop_backfill(backfill_id: int):
    return _act(backfill_id, lambda b: request_stop(db.session, b))


@bp.post("/backfills/<int:backfill_id>/resume")
def resume_backfill_view(backfill_id: int):
    return _act(backfill_id, lambda b: resume_backfill(db.session, b, user_id=current_user.id))


def _act(backfill_id: int, action):
    backfill = _backfill_or_404(backfill_id)
    try:
        action(backfill)
    except BackfillError as error:
        db.session.rollback()
        return _page({"status": error.errors["status"]}, status=400)
    if is_partial():
        return _page()
    return redirect(url_for("staff.backfills"))
