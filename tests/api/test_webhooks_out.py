"""Outgoing webhooks (issue 21): signed per Standard Webhooks, retried, 410 disables, pages and CLI."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from sqlalchemy import select

from app.models import utcnow
from app.models.api import WebhookDelivery, WebhookEndpoint
from app.notify import webhooks_out
from tests import factories
from tests.helpers import csrf_from, sign_in


def verify_standard_webhook(secret: str, headers, body: bytes, tolerance: int = 300) -> dict:
    """An independent reading of the Standard Webhooks 1.0 verifier (what `standardwebhooks` checks)."""
    import time
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(int(time.time()) - int(timestamp)) < tolerance, "timestamp outside tolerance"
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    offered = [part.split(",", 1)[1].encode() for part in headers["webhook-signature"].split()
               if part.startswith("v1,")]
    assert any(hmac.compare_digest(expected, sig) for sig in offered), "signature does not verify"
    return json.loads(body)


class Receiver:
    """A local HTTP receiver answering a scripted list of status codes (then 204)."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.answers.pop(0) if receiver.answers else 204
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "120")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(answers=()):
        made.append(Receiver(answers))
        return made[-1]
    yield make
    for one in made:
        one.close()


def test_a_topup_is_delivered_signed_and_verifies(session, receiver):
    kit = factories.make_estate_with_wallet(session)
    other = factories.make_estate(session)
    session.commit()
    listening = receiver()
    hook = webhooks_out.add_endpoint(session, url=listening.url, events="wallet.topup", estate=kit.estate, issuer=None)
    elsewhere = webhooks_out.add_endpoint(session, url=listening.url, events="wallet.topup", estate=other, issuer=None)
    assert hook.secret.startswith("whsec_")
    from app.models.payments import Payment
    from app.payments.credit import credit_payment
    payment = Payment(provider="eft", provider_ref="BANK-1", amount="120.00", status="to_confirm",
                      unit_id=kit.unit.id, estate_id=kit.estate.id, currency="ZAR", paid_at=utcnow())
    session.add(payment)
    session.flush()
    credit_payment(session, payment)
    session.commit()  # delivery runs after commit (inline jobs in tests)
    assert len(listening.received) == 1  # the other estate's subscription heard nothing
    headers, body = listening.received[0]
    event = verify_standard_webhook(hook.secret, headers, body)
    assert event["type"] == "wallet.topup" and event["data"]["amount"] == "120.00"
    assert event["data"]["unit_id"] == kit.unit.id and set(event) == {"type", "timestamp", "data"}
    with pytest.raises(AssertionError, match="signature"):
        verify_standard_webhook(elsewhere.secret, headers, body)
    with pytest.raises(AssertionError, match="signature"):
        verify_standard_webhook(hook.secret, headers, body.replace(b"120.00", b"999.00"))
    delivery = session.scalar(select(WebhookDelivery))
    session.refresh(delivery)
    assert delivery.status == "delivered" and delivery.message_id == headers["webhook-id"]


def test_three_failures_then_success_is_delivered_once_with_four_attempts(session, receiver):
    estate = factories.make_estate(session)
    session.commit()
    listening = receiver([500, 429, 503])
    hook = webhooks_out.add_endpoint(session, url=listening.url, events="meter.reading", estate=estate, issuer=None)
    webhooks_out.emit(session, "meter.reading", estate.id, {"serial": "123"})
    session.commit()  # first attempt: 500
    moment = utcnow()
    for _ in range(6):
        moment += timedelta(hours=11)
        webhooks_out.deliver_due(session, now=moment)
    delivery = session.scalar(select(WebhookDelivery))
    session.refresh(delivery)
    assert delivery.status == "delivered"
    assert [a.status_code for a in delivery.attempts] == [500, 429, 503, 204]
    assert len(listening.received) == 4 and len({h["webhook-id"] for h, _ in listening.received}) == 1
    for headers, body in listening.received:
        verify_standard_webhook(hook.secret, headers, body, tolerance=10 ** 6)


def test_retry_waits_follow_the_schedule_and_retry_after(session):
    import random
    rng = random.Random(1)
    assert 4 <= webhooks_out.next_delay(1, rng=rng) <= 6
    assert webhooks_out.next_delay(2, retry_after=3600, rng=rng) == 3600  # Retry-After longer than the schedule
    total = sum(webhooks_out.RETRY_SCHEDULE)
    assert 20 * 3600 < total < 30 * 3600  # about a day
    assert webhooks_out.next_delay(len(webhooks_out.RETRY_SCHEDULE) + 1) is None


def test_a_410_disables_the_subscription(session, receiver):
    estate = factories.make_estate(session)
    session.commit()
    listening = receiver([410])
    hook = webhooks_out.add_endpoint(session, url=listening.url, events="meter.offline", estate=estate, issuer=None)
    webhooks_out.emit(session, "meter.offline", estate.id, {"serial": "1"})
    session.commit()
    session.refresh(hook.row)
    assert hook.row.disabled_at is not None and "410" in hook.row.disabled_reason
    assert webhooks_out.emit(session, "meter.offline", estate.id, {"serial": "1"}) == 0
    session.rollback()


def test_private_targets_are_refused_unless_allowed(app, session):
    app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = False
    try:
        for url in ("http://127.0.0.1:9/x", "http://10.0.0.5/x", "http://[::1]/x", "http://169.254.169.254/latest"):
            with pytest.raises(webhooks_out.WebhookError, match="private|address"):
                webhooks_out.add_endpoint(session, url=url, events="wallet.topup", estate=None, issuer=None)
    finally:
        app.config["WEBHOOKS_ALLOW_PRIVATE_TARGETS"] = True
    for url in ("ftp://example.com/x", "not a url", "https://user:pw@example.com/", "https://" + "a" * 600):
        with pytest.raises(webhooks_out.WebhookError):
            webhooks_out.add_endpoint(session, url=url, events="wallet.topup", estate=None, issuer=None)
    with pytest.raises(webhooks_out.WebhookError, match="Unknown event"):
        webhooks_out.add_endpoint(session, url="http://127.0.0.1/x", events="wallet.drained", estate=None, issuer=None)


def test_cli_adds_a_webhook_and_prints_the_secret_once(session, cli_runner):
    estate = factories.make_estate(session)
    session.commit()
    result = cli_runner.invoke(args=["webhook", "add", "--estate", estate.code, "--url", "http://127.0.0.1:9/h",
                                     "--events", "wallet.topup,meter.offline"])
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    row = session.scalar(select(WebhookEndpoint))
    assert secret == row.secret and row.events == "wallet.topup meter.offline" and row.estate_id == estate.id
    assert cli_runner.invoke(args=["webhook", "add", "--url", "x", "--events", "wallet.topup"]).exit_code != 0


def test_staff_pages_add_a_webhook_show_the_log_and_replay(session, client, receiver):
    staff = factories.make_user(session, "staff")
    estate = factories.make_estate(session)
    session.commit()
    sign_in(client, staff.email)
    listening = receiver()
    page = client.get("/staff/webhooks")
    assert page.status_code == 200
    bad = client.post("/staff/webhooks", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                               "url": "nope", "events": ["wallet.topup"]})
    assert bad.status_code == 400 and "full http" in bad.get_data(as_text=True)
    made = client.post("/staff/webhooks", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                "url": listening.url, "events": ["meter.offline"],
                                                "estate_id": str(estate.id)})
    assert made.status_code == 200 and "whsec_" in made.get_data(as_text=True)
    assert made.headers["Cache-Control"] == "no-store"
    row = session.scalar(select(WebhookEndpoint))
    webhooks_out.emit(session, "meter.offline", estate.id, {"serial": "9"})
    session.commit()
    log = client.get(f"/staff/webhooks/{row.id}")
    assert "HTTP 204" in log.get_data(as_text=True)
    delivery = session.scalar(select(WebhookDelivery))
    replayed = client.post(f"/staff/webhooks/{row.id}/deliveries/{delivery.id}/replay",
                           data={"csrf_token": csrf_from(log.get_data(as_text=True))})
    assert replayed.status_code == 302 and len(listening.received) == 2
    assert client.get(f"/staff/webhooks/{row.id + 99}").status_code == 404


def test_an_agent_sees_only_their_estates_webhooks(session, client):
    mine, other = factories.make_estate(session), factories.make_estate(session)
    agent = factories.make_user(session, "agent", estate=mine)
    session.commit()
    theirs = webhooks_out.add_endpoint(session, url="http://127.0.0.1:9/a", events="wallet.topup", estate=other,
                                       issuer=None)
    sign_in(client, agent.email)
    assert client.get(f"/agent/webhooks/{theirs.row.id}").status_code == 404
    page = client.get("/agent/webhooks")
    assert page.status_code == 200 and "127.0.0.1:9/a" not in page.get_data(as_text=True)
    refused = client.post("/agent/webhooks", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                   "url": "http://127.0.0.1:9/b", "events": ["wallet.topup"],
                                                   "estate_id": str(other.id)})
    assert refused.status_code == 404
