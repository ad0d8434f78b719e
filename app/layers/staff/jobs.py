"""Staff Jobs screen (S3, S4): every scheduled job with its schedule, last and next run, failures
with their traceback, a retry button, the running ones' progress, and each kind's history."""
from flask import abort, current_app, flash, url_for
from flask_babel import gettext

from app.extensions import db
from app.htmx import redirect, refuse, render
from app.job_schedule import (
    JobScheduleError, by_kind, duration_seconds, kind_history, retry_job, schedule_rows)
from app.i18n.stored import render_stored
from app.jobs import REGISTRY
from app.labels import label
from app.layers.staff import bp


@bp.get("/jobs")
def jobs():
    from app.monitoring import metrics_enabled

    rows, others = schedule_rows(db.session, current_app.config)
    return render("staff/jobs/index.html", rows=rows, others=others, duration=duration_seconds,
                  metrics_on=metrics_enabled(db.session, current_app.config),
                  metrics_by_config=bool(current_app.config.get("METRICS_ENABLED")))


@bp.get("/jobs/<job_kind>")
def job_history(job_kind: str):
    if job_kind not in REGISTRY:
        abort(404)
    return render("staff/jobs/history.html", kind=job_kind, entry=by_kind(current_app.config, job_kind),
                  runs=kind_history(db.session, job_kind), duration=duration_seconds)


@bp.post("/jobs/<job_kind>/retry")
def retry(job_kind: str):
    if job_kind not in REGISTRY:
        abort(404)
    try:
        result = retry_job(db.session, current_app.config, job_kind)
    except JobScheduleError as error:
        db.session.rollback()
        return refuse(jobs, render_stored(str(error)))
    flash(gettext("%(job)s: %(outcome)s.", job=gettext(label('job', job_kind)), outcome=render_stored(result.message)), "success")
    return redirect(url_for("staff.job_history", job_kind=job_kind))


@bp.post("/jobs/metrics")
def switch_metrics():
    from flask import request

    from app.monitoring import set_metrics_enabled

    wanted = request.form.get("on") == "1"
    set_metrics_enabled(db.session, wanted)
    flash(gettext("/metrics now answers Prometheus.") if wanted else gettext("/metrics is off: it answers 404."), "success")
    return redirect(url_for("staff.jobs"))
