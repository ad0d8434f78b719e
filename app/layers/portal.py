"""Pages every signed-in user shares: job progress and in-app notifications."""
import json

from flask import Blueprint, Response, abort
from flask_login import current_user, login_required

from app.extensions import db
from app.htmx import render
from app.models import JobRun
from app.notify import read_in_app

bp = Blueprint("portal", __name__)


@bp.get("/jobs/<int:run_id>")
@login_required
def job_progress(run_id: int):
    run = db.session.get(JobRun, run_id)
    if run is None or not (current_user.is_staff or run.created_by_user_id == current_user.id):
        abort(404)
    return job_panel(run)


def job_panel(run: JobRun) -> Response:
    """Render a job's progress panel; once it has finished, tell the page (HX-Trigger).

    A panel polls only while its job runs, and an inline job is finished when the
    starting POST answers, so the event fires once per run: the page's sections
    listen with ``hx-trigger="job-finished from:body"`` and fetch their own fragment.
    The kind also gets its own event (``job-finished-uisp-refresh``) for a section that
    cares about one job only, since filters in hx-trigger would need eval.
    """
    response = render("_job_progress.html", run=run)
    if run is not None and run.finished:
        # Not "target": htmx would read it as the selector of the element to fire on.
        detail = {"id": run.id, "kind": run.kind, "job_target": run.target, "status": run.status}
        response.headers["HX-Trigger"] = json.dumps({
            "job-finished": detail, f"job-finished-{run.kind.replace('_', '-')}": detail})
    return response


@bp.get("/notifications")
@login_required
def notifications():
    return render("notifications.html", rows=read_in_app(db.session, current_user.id))


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """My account: the signed-in person's email, phone and alert channels."""
    from flask import flash, request, url_for

    from app.htmx import redirect

    from app.auth.account import AccountError, alert_settings, save_account
    from app.models.budget_alerts import ALERT_CHANNELS

    user = current_user._get_current_object()
    errors: dict[str, str] = {}
    form = {"email": user.person.email if user.person and user.person.email else user.email,
            "phone": user.person.phone if user.person else "",
            "language": user.person.language if user.person else None}
    status = 200
    if request.method == "POST":
        form = {"email": request.form.get("email", "")[:400], "phone": request.form.get("phone", "")[:400],
                "language": request.form.get("language", "")[:16]}
        chosen = {}
        for key in request.form:
            prefix, _, number = key.partition("_")
            if prefix == "channels" and number.isascii() and number.isdigit() and len(number) < 10:
                chosen[int(number)] = request.form.getlist(key)
        try:
            changed = save_account(db.session, user, form, chosen)
        except AccountError as error:
            db.session.rollback()
            errors, status = error.errors, 400
        else:
            from flask_babel import gettext
            flash(gettext("Your account is saved.") if changed else gettext("Nothing changed."), "success")
            return redirect(url_for("portal.account"))
    settings = alert_settings(db.session, user)
    shown = {setting.id: (request.form.getlist(f"channels_{setting.id}") if status == 400
                          else list(setting.channels or [])) for setting, _unit in settings}
    response = render("account.html", "account_form", user=user, form=form, errors=errors,
                      settings=settings, shown=shown, channels=ALERT_CHANNELS)
    response.status_code = status
    return response
