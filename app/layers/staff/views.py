"""Staff pages: estates, ledger verification (as a job), feature flags, jobs and audit."""
import json

from flask import abort, flash, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.extensions import db
from app.htmx import redirect, refuse, render
from app.jobs import enqueue
from app.labels import label
from app.layers.portal import job_panel
from app.layers.staff import bp
from app.models import LIVE_FEATURES, AuditLog, Estate, JobRun
from app.periods import parse_period
from app.estates.queries import recent_periods
from app.estates.status import EstateRuleError, set_estate_feature, set_period_status
from app.reports.summaries import estate_figures
from app.i18n.label_texts import N_
from app.layers.export import requested_format, respond
from app.reports.export import Column

PERIOD_COLUMNS = [Column(_l("Estate"), lambda r: r[0].name), Column(_l("Month"), lambda r: r[1]),
                  Column(_l("Status"), lambda r: label("period_status", r[2]))]
AUDIT_EXPORT_ROWS = 1000
AUDIT_COLUMNS = [
    Column(_l("When"), lambda e: e.at), Column(_l("Who"), lambda e: e.actor), Column(_l("IP"), lambda e: e.ip or ""),
    Column(_l("Action"), lambda e: e.action), Column(_l("Entity"), lambda e: e.entity_type), Column(_l("Id"), lambda e: e.entity_id or ""),
    Column(_l("Before"), lambda e: json.dumps(e.old, ensure_ascii=False) if e.old else ""),
    Column(_l("After"), lambda e: json.dumps(e.new, ensure_ascii=False) if e.new else ""),
]


@bp.get("/")
def index():
    if fmt := requested_format():
        events = db.session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(AUDIT_EXPORT_ROWS)).all()
        return respond(events, AUDIT_COLUMNS, "Audit log", fmt)
    estates = db.session.scalars(select(Estate).order_by(Estate.name)).all()
    jobs = db.session.scalars(select(JobRun).order_by(JobRun.id.desc()).limit(8)).all()
    events = db.session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(12)).all()
    part = "activity" if request.args.get("part") == "activity" else None  # refetched after a job
    return render("staff/index.html", part, figures=[] if part else [estate_figures(db.session, e) for e in estates],
                  jobs=jobs, events=events, features=LIVE_FEATURES)


@bp.get("/ledger")
def ledger():
    if fmt := requested_format():
        rows = [(e, period, status) for e in db.session.scalars(select(Estate).order_by(Estate.name))
                for period, status in recent_periods(db.session, e)]
        return respond(rows, PERIOD_COLUMNS, N_("Financial periods"), fmt)
    last = db.session.scalar(
        select(JobRun).where(JobRun.kind == "ledger_verify").order_by(JobRun.id.desc()))
    estates = db.session.scalars(select(Estate).order_by(Estate.name)).all()
    return render("staff/ledger.html", run=last,
                  periods=[(e, recent_periods(db.session, e)) for e in estates])


@bp.post("/estates/<int:estate_id>/periods/<period>")
def set_period(estate_id: int, period: str):
    estate = db.session.get(Estate, estate_id) or abort(404)
    parse_period(period)  # "2026-11\n" would pass the estates' own "$" pattern
    try:
        set_period_status(db.session, estate, period, request.form.get("status", ""))
    except EstateRuleError as error:
        db.session.rollback()
        return refuse(ledger, str(error))
    flash(gettext("%(estate)s %(period)s is now %(status)s.", estate=estate.name, period=period,
                  status=gettext(request.form['status'])), "success")
    return redirect(url_for("staff.ledger"))


@bp.post("/ledger/verify")
def verify_ledger():
    run = enqueue("ledger_verify", user_id=current_user.id)
    return job_panel(run)


@bp.post("/estates/<int:estate_id>/features/<name>")
def set_feature(estate_id: int, name: str):
    estate = db.session.get(Estate, estate_id) or abort(404)
    if name not in LIVE_FEATURES:  # unknown, or a flag no code reads yet
        abort(404)
    wanted = request.form.get("enabled") == "1"
    set_estate_feature(db.session, estate, name, wanted)
    flash(gettext("%(feature)s is on for %(estate)s.", feature=gettext(label('feature', name)), estate=estate.name) if wanted
          else gettext("%(feature)s is off for %(estate)s.", feature=gettext(label('feature', name)), estate=estate.name),
          "success")
    return redirect(url_for("staff.index"))
