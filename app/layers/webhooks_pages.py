"""Webhook pages for staff (every estate) and agents (their estates): subscribe, log, replay.

One set of views registered on both layer blueprints; a subscription or delivery outside the
user's reach is a 404. The signing secret is shown once, when the subscription is made.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import redirect, render
from app.models.api import WEBHOOK_EVENTS, WebhookDelivery
from app.notify import webhooks_out
from app.routing import INTEGER_MAX, whole_number


def _list_page(layer: str, *, new=None, errors=None, form=None, status: int = 200):
    response = render("api/webhooks.html", layer=layer, endpoints=webhooks_out.endpoints_for(db.session, current_user),
                      estates=visible_estates(db.session, current_user, ("agent",)), events=WEBHOOK_EVENTS,
                      labels=webhooks_out.EVENT_LABELS, new=new, errors=errors or {}, form=form or {},
                      can_all=current_user.is_staff)
    return (response, status) if status != 200 else response


def _endpoint_or_404(endpoint_id: int):
    endpoint = webhooks_out.endpoint_for(db.session, current_user, endpoint_id) if endpoint_id <= INTEGER_MAX else None
    if endpoint is None:
        abort(404)
    return endpoint


def register(bp: Blueprint, layer: str, list_rule: str) -> None:
    """Add the subscription list, add, log, enable/disable and replay views to a layer blueprint."""

    def webhook_list():
        return _list_page(layer)

    def add_webhook():
        form = request.form
        try:
            estate = None
            if form.get("estate_id"):
                estate_id = whole_number(form["estate_id"], 1)
                if estate_id is None:
                    raise webhooks_out.WebhookError(gettext("Choose an estate from the list."), "estate_id")
                estate = estate_or_404(db.session, current_user, estate_id, ("agent",))
            new = webhooks_out.add_endpoint(db.session, url=form.get("url", ""), events=form.getlist("events"),
                                            estate=estate, issuer=current_user,
                                            description=form.get("description", ""))
        except webhooks_out.WebhookError as error:
            db.session.rollback()
            return _list_page(layer, errors=error.errors, form=form, status=400)
        response = _list_page(layer, new=new)  # rendered, never redirected: the secret stays out of URLs
        response.headers["Cache-Control"] = "no-store"
        return response

    def webhook_log(endpoint_id: int):
        endpoint = _endpoint_or_404(endpoint_id)
        return render("api/webhook_log.html", layer=layer, endpoint=endpoint,
                      deliveries=webhooks_out.recent_deliveries(db.session, endpoint))

    def toggle_webhook(endpoint_id: int):
        endpoint = _endpoint_or_404(endpoint_id)
        if endpoint.disabled_at is None:
            webhooks_out.switch_off_endpoint(db.session, endpoint, f"disabled by {current_user.email}")
            flash(gettext("Webhook disabled: nothing more is sent to it."), "success")
        else:
            webhooks_out.enable_endpoint(db.session, endpoint)
            flash(gettext("Webhook enabled again: new events are sent to it."), "success")
        return redirect(url_for(f"{layer}.webhook_log", endpoint_id=endpoint.id))

    def replay_delivery(endpoint_id: int, delivery_id: int):
        endpoint = _endpoint_or_404(endpoint_id)
        delivery = db.session.get(WebhookDelivery, delivery_id) if delivery_id <= INTEGER_MAX else None
        if delivery is None or delivery.endpoint_id != endpoint.id:
            abort(404)
        if endpoint.disabled_at is not None:
            flash(gettext("Enable the webhook before sending anything again."), "error")
            return redirect(url_for(f"{layer}.webhook_log", endpoint_id=endpoint.id))
        webhooks_out.replay(db.session, delivery)
        flash(gettext("%(event)s %(id)s sent again.", event=delivery.event_type, id=delivery.message_id), "success")
        return redirect(url_for(f"{layer}.webhook_log", endpoint_id=endpoint.id))

    bp.add_url_rule(list_rule, "webhook_list", webhook_list, methods=["GET"])
    bp.add_url_rule(list_rule, "add_webhook", add_webhook, methods=["POST"])
    bp.add_url_rule(f"{list_rule}/<int:endpoint_id>", "webhook_log", webhook_log, methods=["GET"])
    bp.add_url_rule(f"{list_rule}/<int:endpoint_id>/toggle", "toggle_webhook", toggle_webhook, methods=["POST"])
    bp.add_url_rule(f"{list_rule}/<int:endpoint_id>/deliveries/<int:delivery_id>/replay", "replay_delivery",
                    replay_delivery, methods=["POST"])
