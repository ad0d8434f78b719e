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
    assert reasons[3] == "suspicious: +26650001111 paid into 4 units in 30 days"


def test_gzip_bomb_is_refused_with_400_and_nothing_read(client):
    """A gzip body that inflates past the limit is refused before it is parsed."""
    import gzip

    bomb = gzip.compress(b" " * (3 * 1024 * 1024))
    response = client.post(URL, data=bomb, headers={
        **auth(), "Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.get_json() == {"error": True, "message": "the body is too large"}


# --- only M-PESA's sender ids may credit (issue 11, item 1) --------------------------------

SPOOF = ("5L956Z39DJ Confirmed. on 9/12/18 at 8:59 AM M500.00 received from 27820000001 - "
         "Mallory X 27820000001.New M-Pesa balance is M900.00 Reference: {ref}.")


def relay_from(client, sender, *messages):
    body = {"messages": [{"id": mid, "from": sender, "content": text, "sms_sent": 1544338740000}
                         for mid, text in messages]}
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def test_a_look_alike_from_an_ordinary_phone_is_flagged_audited_and_never_credited(
        app, kit, client, login):
    from app.models import AuditLog
    answer = relay_from(client, "+27820000001", ("spoof-1", SPOOF.format(ref=kit.unit_number)))
    assert answer["messages"] == []  # no receipt either
    assert balance(app, kit.pocket_id) == 0
    assert mpesa_postings(app) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0
        row = db.session.scalar(select(SmsMessage))
        assert row.outcome == "suspicious"
        assert row.reason == ("suspicious: sent by +27820000001, not by an M-PESA sender id "
                              "(M-PESA, MPESA); not credited")
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "sms.suspicious"))
        assert (audit.entity_type, audit.entity_id) == ("SmsMessage", str(row.id))
        assert audit.new["from"] == "+27820000001" and audit.new["amount"] == "500.00"
        db.session.remove()
    page = login(kit.staff_email).get("/staff/payments").get_data(as_text=True)
    assert 'id="suspicious-sms"' in page
    assert "+27820000001" in page and "not by an M-PESA sender id" in page


@pytest.mark.parametrize("sender", ["MPESA", "M-PESA", "mpesa", " M-Pesa "])
def test_the_provider_sender_ids_credit_in_any_case(app, kit, client, sender):
    relay_from(client, sender, ("sms-1", DOCUMENTED))
    assert balance(app, kit.pocket_id) == Decimal("1.00")


def test_mpesa_senders_setting_replaces_the_default(app, kit, client, monkeypatch):
    monkeypatch.setitem(app.config, "MPESA_SENDERS", "VodaMPESA, MPESA-LS")
    relay_from(client, "MPESA", ("sms-1", DOCUMENTED))
    assert balance(app, kit.pocket_id) == 0
    relay_from(client, "mpesa-ls", ("sms-2", DOCUMENTED))
    assert balance(app, kit.pocket_id) == Decimal("1.00")


def test_an_estate_setting_narrows_the_senders_for_its_units(app, kit, client, committed):
    from app.settings import put_setting
    from app.models import AuditLog
    with committed() as s:
        put_setting(s, "mpesa_senders", "M-PESA", estate_id=kit.estate_id)
        put_setting(s, "mpesa_senders", "MPESA, SOMEONE", estate_id=None)  # can only narrow
    relay_from(client, "MPESA", ("sms-1", DOCUMENTED))
    assert balance(app, kit.pocket_id) == 0
    relay_from(client, "SOMEONE", ("sms-2", DOCUMENTED))  # in no configured list
    assert balance(app, kit.pocket_id) == 0
    with app.app_context():
        outcomes = db.session.execute(select(SmsMessage.gateway_id, SmsMessage.outcome)
                                      .order_by(SmsMessage.id)).all()
        assert outcomes == [("sms-1", "suspicious"), ("sms-2", "suspicious")]
        audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "sms.suspicious"))
        assert audit.estate_id == kit.estate_id
        db.session.remove()
    relay_from(client, "M-PESA", ("sms-3", DOCUMENTED))
    assert balance(app, kit.pocket_id) == Decimal("1.00")


# --- phones matched as whole E.164 numbers (issue 11, item 14) -----------------------------

def test_lesotho_and_benin_local_numbers_with_the_same_digits_never_cross_match(app, kit, client,
                                                                               committed):
    """Kit's Lesotho tenant is +266 5775 5403; a Benin tenant has the same 8 local digits."""
    from datetime import date

    from app.models import Person, Tenancy
    from app.payments.mpesa_sms import match_unit
    from tests import factories
    with committed() as s:
        benin = factories.make_estate_with_wallet(s, currency="XOF", country="BJ")
        person = Person(full_name="Koffi Adjovi", phone="57 75 54 03")  # written locally in Benin
        s.add(person)
        s.flush()
        s.add(Tenancy(unit_id=benin.unit.id, person_id=person.id, move_in=date(2024, 1, 1)))
        benin_unit = benin.unit.id
    with app.app_context():
        def unit_for(phone, currency=None):
            unit, _ = match_unit(db.session, None, phone, currency=currency)
            return unit.id if unit else None
        assert unit_for("26657755403") == kit.unit_id         # as M-PESA writes the payer
        assert unit_for("+229 01 57 75 54 03") == benin_unit
        assert unit_for("22957755403") == benin_unit          # Benin's old 8-digit form
        assert unit_for("57755403", "LSL") == kit.unit_id     # local: read where the money is
        assert unit_for("57755403", "XOF") == benin_unit
        assert unit_for("57755403") is None                   # local, no currency: ambiguous
        assert unit_for("26657755404") is None and unit_for("2665775540") is None
        db.session.remove()
    relay(client, ("sms-1", DOCUMENTED))
    assert balance(app, kit.pocket_id) == Decimal("1.00")
    with app.app_context():
        assert db.session.scalar(select(Payment.payer_phone)) == "+26657755403"
        db.session.remove()


def test_a_longer_number_ending_in_the_tenants_digits_is_not_the_tenant(app, kit, client):
    # The old rule compared only the last 8 digits: +27 61 5775 5403 "was" +266 5775 5403.
    stranger = DOCUMENTED.replace("26657755403", "27657755403")
    relay(client, ("sms-1", stranger))
    assert balance(app, kit.pocket_id) == 0
    with app.app_context():
        payment = db.session.scalar(select(Payment))
        assert (payment.status, payment.payer_phone) == ("unmatched", "+27657755403")
        db.session.remove()
