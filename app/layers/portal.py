"""Pages every signed-in user shares: job progress and in-app notifications."""
from flask import Blueprint, abort
from flask_login import current_user, login_required
from sqlalchemy import select

from app.extensions import db
from app.htmx import render
from app.models import JobRun, Notification, utcnow

bp = Blueprint("portal", __name__)


@bp.get("/jobs/<int:run_id>")
@login_required
def job_progress(run_id: int):
    run = db.session.get(JobRun, run_id)
    if run is None or not (current_user.is_staff or run.created_by_user_id == current_user.id):
        abort(404)
    return render("_job_progress.html", run=run)


@bp.get("/notifications")
@login_required
def notifications():
    rows = db.session.scalars(
        select(Notification).where(Notification.user_id == current_user.id,
                                   Notification.channel == "in_app")
        .order_by(Notification.id.desc()).limit(50)).all()
    for row in rows:
        row.read_at = row.read_at or utcnow()
    db.session.commit()
    return render("notifications.html", rows=rows)
