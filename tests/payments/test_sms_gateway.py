"""SMS gateway webhook (P2): Basic Auth, crediting M-PESA payments once, the unmatched queue,
receipts handed back to the gateway and marked sent on its status updates."""
from __future__ import annotations

import base64
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, LedgerTransaction, Notification, Unit
from app.models.payments import Payment, SmsMessage
from app.payments.mpesa_sms import assign_payment
from tests.payments.test_mpesa_parse import DOCUMENTED

URL = "/webhooks/sms"
PASSWORD = "gateway-secret"


@pytest.fixture(autouse=True)
def gateway_credentials(app, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_GATEWAY_USER", "gateway")
    monkeypatch.setitem(app.config, "SMS_GATEWAY_PASSWORD", PASSWORD)


def auth(user="gateway", password=PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def relay(client, *messages, updates=()):
    body = {"messages": [{"id": mid, "from": "MPESA", "content": text, "sms_sent": 1544338740000,
                          "sms_received": 1544338741000} for mid, text in messages],
            "updates": list(updates)}
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def balance(app, account_id: int) -> Decimal:
    with app.app_context():
        value = db.session.scalar(select(Account.balance).where(Account.id == account_id))
        db.session.remove()
        return value


def mpesa_postings(app) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(LedgerTransaction)
                                  .where(LedgerTransaction.idempotency_key.like("mpesa:%")))
        db.session.remove()
        return value


@pytest.mark.parametrize("headers", [{}, auth(password="wrong"), auth(user="other")],
                         ids=["missing", "wrong-password", "wrong-user"])
def test_gateway_without_valid_basic_auth_gets_401(client, headers):
    assert client.get(URL, headers=headers).status_code == 401
    assert client.post(URL, json={"messages": []}, headers=headers).status_code == 401


def test_gateway_is_refused_when_no_password_is_configured(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_GATEWAY_PASSWORD", "")
    assert client.get(URL, headers=auth(password="")).status_code == 401


def test_gateway_handshake(client):
    response = client.get(URL, headers=auth())
    assert response.get_json() == {"medic-gateway": True}


def test_documented_confirmation_credits_the_tenant_by_phone_and_sends_a_receipt(app, kit, client):
    # Reference 315103084 names no unit; the payer's phone is the tenant's (+266 5775 5403).
    answer = relay(client, ("sms-1", DOCUMENTED))
    assert balance(app, kit.pocket_id) == Decimal("1.00")
    receipts = answer["messages"]
    assert len(receipts) == 1
    assert receipts[0]["to"] == "+26657755403"
    assert "M 1.00" in receipts[0]["content"] and "balance is now M 1.00" in receipts[0]["content"]

    # The gateway reports the receipt sent; the same SMS relayed again changes nothing.
    again = relay(client, ("sms-1", DOCUMENTED), updates=[{"id": receipts[0]["id"], "status": "SENT"}])
    assert again["messages"] == []
    with app.app_context():
        sms = db.session.scalar(select(Notification).where(Notification.channel == "sms"))
        assert sms.status == "sent"
        assert db.session.scalar(select(func.count()).select_from(SmsMessage)) == 1
        db.session.remove()
    assert mpesa_postings(app) == 1


def test_same_transaction_under_another_message_id_is_a_duplicate(app, kit, client):
    relay(client, ("sms-1", DOCUMENTED))
    relay(client, ("sms-2", DOCUMENTED.replace("M1.00", "M9.00")))
    assert balance(app, kit.pocket_id) == Decimal("1.00")
    with app.app_context():
        second = db.session.scalar(select(SmsMessage).where(SmsMessage.gateway_id == "sms-2"))
        assert second.outcome == "duplicate" and "suspicious" in second.reason
        db.session.remove()


def test_reference_naming_the_unit_wins_over_the_phone(app, kit, client):
    text = DOCUMENTED.replace("26657755403", "26650009999").replace("315103084", kit.unit_number)
    relay(client, ("sms-1", text))
    assert balance(app, kit.pocket_id) == Decimal("1.00")


def test_garbage_is_ignored_with_a_logged_reason(app, kit, client, caplog):
    caplog.set_level("INFO", logger="app.payments.mpesa_sms")
    relay(client, ("sms-9", "Your bundle expires tomorrow. Dial *123#"))
    assert "not an incoming payment confirmation" in caplog.text
    with app.app_context():
        row = db.session.scalar(select(SmsMessage))
        assert (row.outcome, row.reason) == ("ignored", "not an incoming payment confirmation")
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
        db.session.remove()


def test_malformed_body_is_a_400_with_an_error(client):
    response = client.post(URL, data="not json", headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"] is True


def test_unmatched_payment_waits_then_assigning_credits_once(app, kit, client):
    stranger = DOCUMENTED.replace("26657755403", "26650009999").replace("315103084", "NOSUCH")
    relay(client, ("sms-1", stranger))
    assert balance(app, kit.pocket_id) == 0
    with app.app_context():
        payment = db.session.scalar(select(Payment))
        assert payment.status == "unmatched" and payment.unit_id is None
        unit = db.session.get(Unit, kit.unit_id)
        assert assign_payment(db.session, payment, unit, "electricity", None) is True
        assert assign_payment(db.session, payment, unit, "electricity", None) is False
        db.session.remove()
    assert balance(app, kit.pocket_id) == Decimal("1.00")
    assert mpesa_postings(app) == 1


def test_gzip_body_is_read_and_failed_receipts_record_why(app, kit, client):
    import gzip
    import json
    body = {"messages": [{"id": "gz-1", "from": "MPESA", "content": DOCUMENTED}], "updates": []}
    response = client.post(URL, data=gzip.compress(json.dumps(body).encode()), headers={
        **auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 200
    (receipt,) = response.get_json()["messages"]
    relay(client, updates=[{"id": receipt["id"], "status": "FAILED", "reason": "no signal"}])
    with app.app_context():
        sms = db.session.scalar(select(Notification).where(Notification.channel == "sms"))
        assert (sms.status, sms.error) == ("failed", "no signal")
        db.session.remove()
    assert balance(app, kit.pocket_id) == Decimal("1.00")


def test_payment_restores_supply_under_credit_control(app, kit, client, committed):
    from app.models import Estate, Meter
    from app.models.metering import RelayCommand
    with committed() as s:
        estate = s.get(Estate, kit.estate_id)
        estate.features = {"credit_control": True}
        estate.minimum_activation_amount = Decimal("1.00")
        meter = s.scalar(select(Meter).where(Meter.unit_id == kit.unit_id))  # the kit's own meter
        meter.relay_state = "off"
    relay(client, ("sms-1", DOCUMENTED))
    with app.app_context():
        command = db.session.scalar(select(RelayCommand))
        assert command is not None and command.state == "on"
        assert db.session.scalar(select(Meter.relay_state)) == "on"
        db.session.remove()


def test_one_phone_paying_into_many_units_is_flagged(app, kit, client, committed):
    from tests import factories
    with committed() as s:
        numbers = [factories.make_unit(s, s.get(Unit, kit.unit_id).estate).number for _ in range(4)]
    for index, number in enumerate(numbers):
        text = (DOCUMENTED.replace("5L956Z39DJ", f"5L956Z39D{index}")
                .replace("26657755403", "26650001111").replace("315103084", number))
        relay(client, (f"sms-{index}", text))
    with app.app_context():
        reasons = db.session.scalars(select(Payment.status_reason).order_by(Payment.id)).all()
        statuses = set(db.session.scalars(select(Payment.status)))
        db.session.remove()
    assert statuses == {"credited"}  # flagged for staff, still credited
    assert reasons[:3] == [None, None, None]
    assert reasons[3] == "suspicious: 26650001111 paid into 4 units in 30 days"


def test_gzip_bomb_is_refused_with_400_and_nothing_read(client):
    """A gzip body that inflates past the limit is refused before it is parsed."""
    import gzip

    bomb = gzip.compress(b" " * (3 * 1024 * 1024))
    response = client.post(URL, data=bomb, headers={
        **auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.get_json() == {"error": True, "message": "the body is too large"}
