"""Demo data for the integration API (A7): one API key and one webhook subscription with a log.

The demo key is fixed (its plain text is printed with the demo logins, like their passwords),
so `make run` users can call the API straight away; it is a `mw_test_` key over the Sunbird
estate with read and top-up permissions. The subscription points at a loopback receiver
(nothing listens there unless you start one: new events are retried, then given up) and
carries a short past delivery log: one delivered first time, one delivered after a 503.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from app import audit
from app.integration import keys
from app.models import Estate, utcnow
from app.models.api import ApiKey, WebhookAttempt, WebhookDelivery, WebhookEndpoint

DEMO_PUBLIC_ID = "d3m0a7ee"
DEMO_KEY = f"mw_test_{DEMO_PUBLIC_ID}_demo-integration-key-not-secret-2026"
DEMO_WEBHOOK_URL = "http://127.0.0.1:8787/meterwise-hooks"
DEMO_WEBHOOK_SECRET = "whsec_ZGVtby13ZWJob29rLXNlY3JldC1ub3Qtc2VjcmV0IQ=="


def demo_key_line() -> tuple[str, str, str]:
    """The demo key as a line of the demo logins table (role, where it goes, the key)."""
    return ("api key (SUN)", "X-API-Key header", DEMO_KEY)


def seed_integration(session: Session, estate: Estate) -> list[tuple[str, str, str]]:
    """Add the demo key and webhook subscription on `estate`; the caller commits."""
    now = utcnow()
    row = ApiKey(name="Demo USSD vendor", key_hash=keys.digest(DEMO_KEY), prefix=f"mw_test_{DEMO_PUBLIC_ID}",
                 public_id=DEMO_PUBLIC_ID, permissions="read topups:write", estate_id=estate.id,
                 last_used_at=now - timedelta(hours=3))
    session.add(row)
    endpoint = WebhookEndpoint(url=DEMO_WEBHOOK_URL, secret=DEMO_WEBHOOK_SECRET, estate_id=estate.id,
                               events="wallet.topup wallet.low_balance meter.offline",
                               description="Demo receiver on this machine (start one to see deliveries)")
    session.add(endpoint)
    session.flush()
    audit.record(session, "api_key.create", row, estate_id=estate.id,
                 new={"name": row.name, "prefix": row.prefix, "permissions": row.permissions, "demo": True})
    audit.record(session, "webhook.add", endpoint, estate_id=estate.id,
                 new={"url": endpoint.url, "events": endpoint.events, "demo": True})
    for index, (event, data, codes) in enumerate((
            ("wallet.topup", {"estate_id": estate.id, "amount": "150.00", "currency": estate.currency,
                              "utility": "electricity", "provider": "api"}, [204]),
            ("wallet.low_balance", {"estate_id": estate.id, "utility": "electricity", "level": "low",
                                    "balance": "18.40", "threshold": "50.00", "commodity": estate.currency},
             [503, 204]))):
        sent = now - timedelta(hours=2 - index)
        delivery = WebhookDelivery(endpoint_id=endpoint.id, message_id=f"msg_demo{index + 1}", event_type=event,
                                   payload={"type": event, "timestamp": sent.isoformat(), "data": data},
                                   status="delivered", attempt_count=len(codes), last_status_code=codes[-1],
                                   created_at=sent, delivered_at=sent + timedelta(seconds=5 * (len(codes) - 1)))
        session.add(delivery)
        session.flush()
        for attempt, code in enumerate(codes):
            session.add(WebhookAttempt(delivery_id=delivery.id, status_code=code, duration_ms=40 + 30 * attempt,
                                       attempted_at=sent + timedelta(seconds=5 * attempt),
                                       error=None))
    return [demo_key_line()]
