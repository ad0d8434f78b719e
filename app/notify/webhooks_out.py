"""Outgoing webhooks (A7) following Standard Webhooks 1.0.

A subscription (`WebhookEndpoint`) names a URL, the events it wants and its scope (one estate,
or every estate for staff). `emit()` writes one `WebhookDelivery` per subscribed endpoint in
the caller's transaction and queues its delivery after commit, so an event whose cause rolled
back is never sent. Each HTTP attempt is logged (`WebhookAttempt`).

Signing (https://www.standardwebhooks.com): headers `webhook-id` (the same on every retry),
`webhook-timestamp` (Unix seconds) and `webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">` keyed by the base64 part of the endpoint's `whsec_` secret; payload
`{type, timestamp, data}`. (The `standardwebhooks` package is approved but not installed
here; the scheme is a few lines of hmac, and the tests verify with an independent reading.)

Retries: 2xx is delivered; 410 Gone disables the endpoint; anything else (429, 5xx, other
codes, no answer within 15 s) is tried again on a schedule of about a day with ±10 % jitter,
never sooner than a `Retry-After` asks; then the delivery is abandoned. Targets on private,
loopback or link-local addresses are refused unless WEBHOOKS_ALLOW_PRIVATE_TARGETS is set.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import audit
from app.integration import events as integration_events
from app.jobs import enqueue_after_commit, job
from app.models import Estate, User, utcnow
from app.models.api import WEBHOOK_EVENTS, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from app.routing import whole_number

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 15
# Seconds after the previous attempt (Svix's schedule): about 27 hours in all.
RETRY_SCHEDULE = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
MAX_RETRY_AFTER = 24 * 3600
DELIVER_JOB = "webhook_deliver"
RETRY_JOB = "webhook_retries"
EVENT_LABELS = {
    "wallet.topup": "A wallet was topped up",
    "wallet.low_balance": "A wallet's balance fell below its alert threshold",
    "meter.reading": "A meter reading was accepted",
    "meter.offline": "A meter stopped reporting",
    "tenant.onboarded": "A tenant moved in",
}


class WebhookError(Exception):
    """The subscription cannot be made or changed as asked; `errors` is keyed by form field."""

    def __init__(self, message: str, field: str = "url"):
        super().__init__(message)
        self.errors = {field: message}


# --- Signing ------------------------------------------------------------------------------

def new_secret() -> str:
    """A fresh `whsec_` secret: 32 random bytes, base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` value of one message."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- Subscriptions ------------------------------------------------------------------------

def parse_events(value) -> list[str]:
    """Event types from a comma list or a sequence, in catalogue order; unknown ones refused."""
    items = value.replace(",", " ").split() if isinstance(value, str) else [str(v).strip() for v in value]
    unknown = sorted(set(items) - set(WEBHOOK_EVENTS))
    if unknown:
        raise WebhookError(f"Unknown event {', '.join(unknown)}: choose from {', '.join(WEBHOOK_EVENTS)}.", "events")
    if not items:
        raise WebhookError("Choose at least one event.", "events")
    return [e for e in WEBHOOK_EVENTS if e in items]


def check_target(url: str, *, allow_private: bool) -> str:
    """The URL if it is http(s) to a public address (or private ones are allowed), else WebhookError."""
    url = (url or "").strip()
    if len(url) > 500:
        raise WebhookError("A webhook URL has at most 500 characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookError("Enter a full URL, like https://example.com/hooks/meterwise.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError("Enter a full http:// or https:// URL, like https://example.com/hooks/meterwise.")
    if parts.username or parts.password:
        raise WebhookError("Leave credentials out of the URL: deliveries are signed instead.")
    if allow_private:
        return url
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port or 443, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        raise WebhookError(f"{parts.hostname} does not resolve to an address.") from None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not ip.is_global:
            raise WebhookError(f"{parts.hostname} is a private, loopback or reserved address ({ip}); "
                               "webhooks go to public addresses only.")
    return url


def _allow_private() -> bool:
    try:
        from flask import current_app
        return bool(current_app.config.get("WEBHOOKS_ALLOW_PRIVATE_TARGETS"))
    except RuntimeError:
        return False


@dataclass(frozen=True)
class NewEndpoint:
    row: WebhookEndpoint
    secret: str


def add_endpoint(session: Session, *, url: str, events, estate: Estate | None, issuer: User | None,
                 description: str = "") -> NewEndpoint:
    """Subscribe a URL to events in one estate (None: all, staff and CLI only); audit and commit."""
    from app.auth.scope import estate_ids_query

    chosen = parse_events(events)
    target = check_target(url, allow_private=_allow_private())
    if issuer is not None and not issuer.is_staff:
        if estate is None:
            raise WebhookError("Choose the estate whose events are sent.", "estate_id")
        if session.scalar(select(Estate.id).where(Estate.id == estate.id,
                                                  Estate.id.in_(estate_ids_query(issuer, ("agent",))))) is None:
            raise WebhookError("Choose one of your estates.", "estate_id")
    secret = new_secret()
    row = WebhookEndpoint(url=target, secret=secret, events=" ".join(chosen), estate_id=estate.id if estate else None,
                          description=(description or "").strip()[:200], created_by_user_id=issuer.id if issuer else None)
    session.add(row)
    session.flush()
    audit.record(session, "webhook.add", row, estate_id=row.estate_id,
                 new={"url": target, "events": row.events, "estate": estate.code if estate else "all"})
    session.commit()
    integration_events.forget()
    return NewEndpoint(row, secret)


def disable_endpoint(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to an endpoint; the caller commits."""
    if endpoint.disabled_at is None:
        endpoint.disabled_at, endpoint.disabled_reason = utcnow(), reason[:200]
        audit.record(session, "webhook.disable", endpoint, estate_id=endpoint.estate_id,
                     old={"disabled_at": None}, new={"reason": reason[:200]})


def switch_off_endpoint(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to an endpoint because someone asked to (the pages); audit and commit once."""
    disable_endpoint(session, endpoint, reason)
    session.commit()
    integration_events.forget()


def enable_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Send to a disabled endpoint again; audit and commit."""
    if endpoint.disabled_at is not None:
        audit.record(session, "webhook.enable", endpoint, estate_id=endpoint.estate_id,
                     old={"disabled_at": endpoint.disabled_at, "reason": endpoint.disabled_reason}, new={})
        endpoint.disabled_at = endpoint.disabled_reason = None
    session.commit()
    integration_events.forget()


def endpoints_for(session: Session, user: User | None) -> list[WebhookEndpoint]:
    """The subscriptions a user may see (staff: all; an agent: those of the agent's estates)."""
    from app.auth.scope import estate_ids_query

    query = select(WebhookEndpoint).order_by(WebhookEndpoint.disabled_at.is_not(None), WebhookEndpoint.id.desc())
    if user is not None and not user.is_staff:
        query = query.where(WebhookEndpoint.estate_id.in_(estate_ids_query(user, ("agent",))))
    return list(session.scalars(query))


def endpoint_for(session: Session, user: User, endpoint_id: int) -> WebhookEndpoint | None:
    """One subscription if the user may manage it, else None (the view answers 404)."""
    return next((e for e in endpoints_for(session, user) if e.id == endpoint_id), None)


def recent_deliveries(session: Session, endpoint: WebhookEndpoint, limit: int = 100) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
                                .order_by(WebhookDelivery.id.desc()).limit(limit)))


# --- Events -------------------------------------------------------------------------------

def may_listen(event_type: str, estate_id: int | None):
    """The SQL condition of a live endpoint that may take `event_type` for this estate: its event
    list contains the text (`subscribed()` then checks the exact event name)."""
    return (WebhookEndpoint.disabled_at.is_(None) & WebhookEndpoint.events.contains(event_type)
            & or_(WebhookEndpoint.estate_id.is_(None), WebhookEndpoint.estate_id == estate_id))


def subscribed(session: Session, event_type: str, estate_id: int | None) -> bool:
    """Whether any live endpoint takes `event_type` for this estate (a batch asks once before emitting)."""
    return any(event_type in endpoint.event_set for endpoint in session.scalars(select(WebhookEndpoint).where(
        may_listen(event_type, estate_id))))


def emit(session: Session, event_type: str, estate_id: int | None, data: dict, *, now: datetime | None = None) -> int:
    """Queue `event_type` for every live endpoint subscribed to it in this estate; the caller commits."""
    if event_type not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event_type!r}")
    now = now or utcnow()
    endpoints = session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.disabled_at.is_(None), WebhookEndpoint.events.contains(event_type),
        or_(WebhookEndpoint.estate_id.is_(None), WebhookEndpoint.estate_id == estate_id))).all()
    count = 0
    for endpoint in endpoints:
        if event_type not in endpoint.event_set:
            continue
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id, message_id="msg_" + secrets.token_urlsafe(18), event_type=event_type,
            payload={"type": event_type, "timestamp": now.isoformat(), "data": data},
            status="pending", next_attempt_at=now)
        session.add(delivery)
        session.flush()
        enqueue_after_commit(session, DELIVER_JOB, delivery.id, track=False, queue="default")
        count += 1
    return count


# --- Delivery -----------------------------------------------------------------------------

def _retry_after(value: str | None) -> int | None:
    if not value:
        return None
    seconds = whole_number(value, 0, 10**12)
    if seconds is not None:
        return min(seconds, MAX_RETRY_AFTER)
    from email.utils import parsedate_to_datetime
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, min(int(when.timestamp() - time.time()), MAX_RETRY_AFTER)) if when else None


def next_delay(attempts_made: int, retry_after: int | None = None, *, rng: random.Random | None = None) -> int | None:
    """Seconds before the next attempt after `attempts_made` failures; None when it is time to stop."""
    if attempts_made > len(RETRY_SCHEDULE):
        return None
    base = RETRY_SCHEDULE[attempts_made - 1]
    jittered = int(base * (rng or random).uniform(0.9, 1.1))
    return max(jittered, retry_after or 0)


def deliver(session: Session, delivery_id: int, *, now: datetime | None = None, post=None) -> str:
    """Make one attempt at a pending delivery due now; log it and schedule the next; commits."""
    import requests

    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.status != "pending":
        return "nothing to do"
    now = now or utcnow()
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
        session.rollback()
        return "not due"
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint.disabled_at is not None:
        delivery.status, delivery.next_attempt_at = "abandoned", None
        session.commit()
        return "endpoint disabled"
    body = json.dumps(delivery.payload, separators=(",", ":"))
    timestamp = int(now.timestamp())
    headers = {"content-type": "application/json", "user-agent": "Meterwise-Webhooks/1.0",
               "webhook-id": delivery.message_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(endpoint.secret, delivery.message_id, timestamp, body)}
    started = time.monotonic()
    status_code, error, retry_after = None, None, None
    try:
        if not _allow_private():
            check_target(endpoint.url, allow_private=False)  # DNS may have moved since it was added
        response = (post or requests.post)(endpoint.url, data=body.encode(), headers=headers,
                                           timeout=TIMEOUT_SECONDS, allow_redirects=False)
        status_code = response.status_code
        retry_after = _retry_after(response.headers.get("Retry-After"))
    except WebhookError as refused:
        error = str(refused)
    except requests.RequestException as failure:
        error = f"{type(failure).__name__}: {failure}"[:300]
    session.add(WebhookAttempt(delivery_id=delivery.id, attempted_at=now, status_code=status_code, error=error,
                               duration_ms=int((time.monotonic() - started) * 1000)))
    delivery.attempt_count += 1
    delivery.last_status_code = status_code
    if status_code is not None and 200 <= status_code < 300:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "delivered", now, None
        outcome = "delivered"
    elif status_code == 410:
        delivery.status, delivery.next_attempt_at = "failed", None
        disable_endpoint(session, endpoint, "the receiver answered 410 Gone")
        outcome = "endpoint gone: disabled"
    else:
        delay = next_delay(delivery.attempt_count, retry_after)
        if delay is None:
            delivery.status, delivery.next_attempt_at = "abandoned", None
            outcome = "abandoned after the last retry"
        else:
            delivery.next_attempt_at = now + timedelta(seconds=delay)
            outcome = f"retry in {delay} s"
    session.commit()
    return outcome


def deliver_due(session: Session, *, now: datetime | None = None, post=None, limit: int = 500) -> int:
    """Attempt every pending delivery whose time has come; return how many were attempted."""
    now = now or utcnow()
    due = list(session.scalars(select(WebhookDelivery.id).where(
        WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)))
    for delivery_id in due:
        deliver(session, delivery_id, now=now, post=post)
    return len(due)


def replay(session: Session, delivery: WebhookDelivery) -> None:
    """Send a delivery again now (same webhook-id, so receivers de-duplicate); audit and commit."""
    old = delivery.status
    delivery.status, delivery.next_attempt_at = "pending", utcnow()
    audit.record(session, "webhook.replay", delivery, old={"status": old}, new={"status": "pending"})
    enqueue_after_commit(session, DELIVER_JOB, delivery.id, track=False, queue="default")
    session.commit()


@job(DELIVER_JOB)
def deliver_job(session: Session, progress, delivery_id: int) -> str:
    """RQ job: one attempt of one delivery (idempotent: only a pending, due delivery is sent)."""
    return deliver(session, delivery_id)


@job(RETRY_JOB)
def retries_job(session: Session, progress) -> str:
    """Cron job: attempt the deliveries whose retry time has come."""
    return f"{deliver_due(session)} deliveries attempted"
