"""Report subscriptions for every signed-in user: subscribe from a report's export links, list, cancel."""
from flask import Blueprint, abort, current_app, request, url_for
from flask_login import current_user, login_required
from werkzeug.routing import BuildError

from app.extensions import db
from app.htmx import redirect, render
from app.models import utcnow
from app.models.subscriptions import SUBSCRIPTION_FORMATS, SUBSCRIPTION_FREQUENCIES, ReportSubscription
from app.reports.subscriptions import (
    REPORTS, ReportNotVisible, SubscriptionError, cancel, last_deliveries, next_send, report_args, shown_title,
    subscribe, subscriptions_of)

bp = Blueprint("subscriptions", __name__, url_prefix="/subscriptions")


@bp.app_template_global()
def subscribe_url(endpoint: str, query: dict | None = None) -> str | None:
    """The "Subscribe" link of a report's export links (None where there is nothing to subscribe to)."""
    if endpoint not in REPORTS or not current_user.is_authenticated:
        return None
    args = {f"arg.{key}": value for key, value in (query or {}).items()
            if value is not None and key not in ("format", "part")}
    return url_for("subscriptions.new_subscription", report=endpoint, **args)


@bp.get("")
@login_required
def my_subscriptions():
    rows = subscriptions_of(db.session, current_user.id)
    now = utcnow()
    return render("subscriptions/index.html", rows=rows, pages={s.id: _page_url(s) for s in rows},
                  next_sends={s.id: next_send(db.session, s, now) for s in rows}, titles={s.id: shown_title(s) for s in rows},
                  deliveries=last_deliveries(db.session, [s.id for s in rows]))


def _page_url(subscription: ReportSubscription) -> str | None:
    """The report's page (the export's own page), when its address still builds."""
    try:
        return url_for(subscription.endpoint, **subscription.args)
    except BuildError:
        return None


def _form(endpoint: str, args: dict, errors: dict | None = None, choice: dict | None = None, status: int = 200):
    if endpoint not in REPORTS:
        abort(404)
    return render("subscriptions/new.html", endpoint=endpoint, args=args, report_label=REPORTS[endpoint],
                  frequencies=SUBSCRIPTION_FREQUENCIES, formats=SUBSCRIPTION_FORMATS,
                  errors=errors or {}, choice=choice or {}), status


@bp.get("/new")
@login_required
def new_subscription():
    endpoint = request.args.get("report", "")
    if not endpoint:  # opened bare: say where subscriptions start
        return render("subscriptions/new.html", endpoint=None)
    try:
        args = report_args(request.args)
    except SubscriptionError:
        abort(404)
    return _form(endpoint, args)


@bp.post("")
@login_required
def create_subscription():
    endpoint = request.form.get("report", "")
    choice = {"frequency": request.form.get("frequency", ""), "file_format": request.form.get("file_format", "")}
    try:
        args = report_args(request.form)
        subscribe(db.session, current_app._get_current_object(), current_user._get_current_object(), endpoint,
                  args, choice["frequency"], choice["file_format"])
    except ReportNotVisible:
        db.session.rollback()
        abort(404)  # as another's object is
    except SubscriptionError as error:
        db.session.rollback()
        return _form(endpoint, report_args_or_empty(request.form), error.errors, choice, 400)
    return redirect(url_for("subscriptions.my_subscriptions"))


def report_args_or_empty(form) -> dict:
    try:
        return report_args(form)
    except SubscriptionError:
        return {}


@bp.post("/<int:subscription_id>/cancel")
@login_required
def cancel_subscription(subscription_id: int):
    subscription = db.session.get(ReportSubscription, subscription_id)
    if subscription is None or subscription.user_id != current_user.id:
        abort(404)
    cancel(db.session, subscription)
    return redirect(url_for("subscriptions.my_subscriptions"))
