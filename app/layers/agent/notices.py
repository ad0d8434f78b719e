"""Notice pages (issue 15, item 7): write an outage or maintenance notice, see whom it reaches, send it.

The form previews the reach (people, by SMS, by email) as the block and channels change (htmx)
and again on "Preview"; "Send" records and sends it (app/estates/notices.py). Sent notices are
listed under the form, each with its page (and the job's progress when it runs as a job).
"""
from flask import abort, make_response, request, url_for
from jinja2_fragments.flask import render_block
from flask_login import current_user
from sqlalchemy import select

from app.auth.scope import estate_or_404
from app.estates import notices
from app.estates.notices import NoticeError
from app.extensions import db
from app.htmx import redirect, render
from app.layers.agent import bp
from app.models import JobRun
from app.models.notices import NOTICE_CHANNELS, NOTICE_KINDS

ROLES = ("agent",)
FIELDS = ("kind", "block", "subject", "message", "starts_at", "ends_at")


def _form_of(values) -> dict:
    form = {name: str(values.get(name) or "")[:2000] for name in FIELDS}
    form["channels"] = [c for c in values.getlist("channels") if c in NOTICE_CHANNELS] if hasattr(values, "getlist") \
        else list(NOTICE_CHANNELS)
    return form


def _page(estate, form, *, errors=None, preview=None, status=200):
    if preview is None:
        preview = notices.reach(db.session, estate, form.get("block", "")[:notices.MAX_BLOCK],
                                tuple(form.get("channels") or ()))
    response = render("agent/notices.html", estate=estate, form=form, errors=errors or {},
                      preview=preview, kinds=NOTICE_KINDS, channels=NOTICE_CHANNELS,
                      sent=notices.notices_of(db.session, estate), inline_people=notices.INLINE_PEOPLE)
    response.status_code = status
    return response


@bp.route("/estates/<int:estate_id>/notices", methods=["GET", "POST"])
def notices_page(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    if request.method == "GET":
        return _page(estate, {"kind": "outage", "block": (request.args.get("block") or "")[:32],
                              "channels": list(NOTICE_CHANNELS)})
    form = _form_of(request.form)
    if request.form.get("action") != "send":
        try:  # Preview: the figures, and the form's problems if any
            notices.check_notice(estate, form)
            errors = {}
        except NoticeError as error:
            errors = error.errors
        return _page(estate, form, errors=errors)
    try:
        notice, _run = notices.send_notice(db.session, estate, form, user_id=current_user.id)
    except NoticeError as error:
        db.session.rollback()
        return _page(estate, form, errors=error.errors, status=400)
    return redirect(url_for("agent.notice", estate_id=estate.id, notice_id=notice.id))


@bp.post("/estates/<int:estate_id>/notices/reach")
def notice_reach(estate_id: int):
    """The reach panel alone, for htmx as the block or channels change."""
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    form = _form_of(request.form)
    body = render_block("agent/notices.html", "notice_reach", estate=estate, form=form,
                        preview=notices.reach(db.session, estate, form["block"][:notices.MAX_BLOCK],
                                              tuple(form["channels"])), inline_people=notices.INLINE_PEOPLE)
    return make_response(body)


@bp.get("/estates/<int:estate_id>/notices/<int:notice_id>")
def notice(estate_id: int, notice_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    found = notices.notice_of(db.session, estate, notice_id)
    if found is None:
        abort(404)
    run = db.session.scalar(select(JobRun).where(JobRun.kind == notices.JOB, JobRun.target == f"notice:{found.id}")
                            .order_by(JobRun.id.desc()).limit(1))
    return render("agent/notice.html", estate=estate, notice=found, run=run)
