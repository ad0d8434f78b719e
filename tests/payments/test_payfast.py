"""PayFast ITN (P1, C4): a genuine ITN credits once; anything tampered credits nothing."""
from __future__ import annotations

import threading
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, AuditLog, LedgerTransaction, User
from app.models.payments import Payment
from app.payments import payfast
from tests.payments.conftest import PASSPHRASE

ITN_URL = "/webhooks/payfast/itn"


def start_payment(app, kit, amount="150.00") -> dict[str, str]:
    """A pending checkout for the kit's unit, as the portal would start it."""
    with app.app_context():
        from app.models import Unit
        settings = payfast.PayfastSettings.from_config(app.config)
        user = db.session.scalar(select(User).where(User.email == kit.tenant_email))
        _, fields = payfast.start_checkout(
            db.session, settings, unit=db.session.get(Unit, kit.unit_id), utility="electricity",
            amount=amount, user=user, return_url="http://x/r", cancel_url="http://x/c",
            notify_url="http://x/n")
        db.session.remove()
    return fields


def balance(app, account_id: int) -> Decimal:
    with app.app_context():
        value = db.session.scalar(select(Account.balance).where(Account.id == account_id))
        db.session.remove()
        return value


def count_topups(app) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count()).select_from(LedgerTransaction)
                                  .where(LedgerTransaction.idempotency_key.like("payfast:%")))
        db.session.remove()
        return value


def resign(fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Fields re-signed with the shared passphrase (what a forger who knew it could do)."""
    body = [(k, v) for k, v in fields if k != "signature"]
    return body + [("signature", payfast.sign(payfast.param_string(body), PASSPHRASE))]


def post_itn(client, fields: list[tuple[str, str]]):
    """POST the ITN form-encoded in the given field order, as PayFast does."""
    return client.post(ITN_URL, data=urlencode(fields),
                       content_type="application/x-www-form-urlencoded")


def replace(fields, name, value):
    return [(k, value if k == name else v) for k, v in fields]


def test_checkout_signs_every_documented_field_in_payfast_order():
    # Given in scrambled order; PayFast's documented order decides the parameter string.
    fields = {"cycles": "0", "subscription_notify_buyer": "true", "frequency": "3",
              "recurring_amount": "100.00", "billing_date": "2026-12-01", "subscription_type": "1",
              "payment_method": "cc", "currency": "ZAR", "item_name": "Levy", "amount": "100.00",
              "m_payment_id": "abc", "notify_method": "POST", "merchant_key": "46f0cd694581a",
              "merchant_id": "10000100", "subscription_notify_email": "true",
              "subscription_notify_webhook": "true"}
    expected = payfast.sign(
        "merchant_id=10000100&merchant_key=46f0cd694581a&notify_method=POST&m_payment_id=abc"
        "&amount=100.00&item_name=Levy&currency=ZAR&payment_method=cc&subscription_type=1"
        "&billing_date=2026-12-01&recurring_amount=100.00&frequency=3&cycles=0"
        "&subscription_notify_email=true&subscription_notify_webhook=true"
        "&subscription_notify_buyer=true", "pass phrase")
    assert payfast.checkout_signature(fields, "pass phrase") == expected


def test_checkout_refuses_a_field_it_cannot_sign():
    with pytest.raises(payfast.UnknownCheckoutField, match="recurring_amout"):
        payfast.checkout_signature({"merchant_id": "1", "amount": "5.00", "recurring_amout": "5"}, "p")


def test_the_gateway_accepts_a_subscription_checkout_the_app_signed(payfast_gateway):
    import requests

    fields = {"merchant_id": "10000100", "merchant_key": "46f0cd694581a",
              "return_url": "http://x/r", "notify_url": "http://x/n", "notify_method": "POST",
              "m_payment_id": "abc", "amount": "100.00", "item_name": "Levy", "currency": "ZAR",
              "subscription_type": "1", "billing_date": "2026-12-01", "recurring_amount": "100.00",
              "frequency": "3", "cycles": "0", "subscription_notify_email": "true"}
    fields["signature"] = payfast.checkout_signature(fields, PASSPHRASE)
    answer = requests.post(f"{payfast_gateway.base_url}/eng/process", data=fields, timeout=5)
    assert answer.status_code == 200, answer.text


def test_checkout_signature_uses_payfast_field_order():
    fields = {"merchant_id": "10000100", "merchant_key": "46f0cd694581a", "amount": "100.00",
              "item_name": "Test", "m_payment_id": "abc", "email_address": ""}
    # PayFast's order: merchant_id, merchant_key, ..., m_payment_id, amount, item_name; empty skipped.
    expected = payfast.sign("merchant_id=10000100&merchant_key=46f0cd694581a&m_payment_id=abc"
                            "&amount=100.00&item_name=Test", "pass phrase")
    assert payfast.checkout_signature(fields, "pass phrase") == expected
    assert payfast.checkout_signature(fields, "other") != expected


def test_valid_itn_credits_the_pocket(app, kit, payfast_gateway, client):
    checkout = start_payment(app, kit)
    itn = payfast_gateway.state.make_itn(checkout)
    response = post_itn(client, itn)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert balance(app, kit.pocket_id) == Decimal("150.00")
    with app.app_context():
        payment = db.session.scalar(select(Payment))
        assert payment.status == "credited"
        assert payment.provider_ref == dict(itn)["pf_payment_id"]
        txn = db.session.get(LedgerTransaction, payment.transaction_id)
        assert txn.idempotency_key == f"payfast:{payment.provider_ref}"
        db.session.remove()


def test_replayed_itn_credits_once(app, kit, payfast_gateway, client):
    itn = payfast_gateway.state.make_itn(start_payment(app, kit, "75.50"))
    answers = [post_itn(client, itn).status_code for _ in range(5)]
    assert answers == [200] * 5
    assert balance(app, kit.pocket_id) == Decimal("75.50")
    assert count_topups(app) == 1


def test_tampered_amount_is_refused_and_logged(app, kit, payfast_gateway, client, caplog):
    itn = payfast_gateway.state.make_itn(start_payment(app, kit, "100.00"))
    forged = replace(itn, "amount_gross", "1000.00")
    assert post_itn(client, forged).status_code == 400  # signature no longer matches
    resigned = resign(forged)
    assert post_itn(client, resigned).status_code == 400  # signed, but not the amount asked
    assert "does not match" in caplog.text
    assert balance(app, kit.pocket_id) == 0
    assert count_topups(app) == 0
    with app.app_context():
        reasons = [row.new["reason"] for row in db.session.scalars(
            select(AuditLog).where(AuditLog.action == "payment.itn_refused"))]
        db.session.remove()
    assert reasons == ["signature does not match", "amount_gross 1000.00 does not match 100.00"]


def test_amount_within_a_cent_is_accepted(app, kit, payfast_gateway, client):
    checkout = start_payment(app, kit, "100.00")
    itn = resign(replace(payfast_gateway.state.make_itn(checkout), "amount_gross", "99.99"))
    payfast_gateway.state.vouched.add(payfast.param_string(itn))
    assert post_itn(client, itn).status_code == 200
    assert balance(app, kit.pocket_id) == Decimal("100.00")  # the pending amount is what is credited


def test_tampered_signature_is_refused(app, kit, payfast_gateway, client):
    itn = payfast_gateway.state.make_itn(start_payment(app, kit))
    forged = replace(itn, "signature", "0" * 32)
    assert post_itn(client, forged).status_code == 400
    assert balance(app, kit.pocket_id) == 0


def test_itn_from_an_unknown_host_is_refused(app, kit, payfast_gateway, new_client):
    itn = payfast_gateway.state.make_itn(start_payment(app, kit))
    stranger = new_client("203.0.113.9")
    assert post_itn(stranger, itn).status_code == 403
    assert balance(app, kit.pocket_id) == 0


def test_itn_the_gateway_does_not_confirm_is_refused(app, kit, payfast_gateway, client):
    # Correctly signed (the passphrase leaked) but never sent by PayFast: validate says INVALID.
    itn = payfast_gateway.state.make_itn(start_payment(app, kit))
    payfast_gateway.state.vouched.clear()
    assert post_itn(client, itn).status_code == 400
    assert balance(app, kit.pocket_id) == 0


def test_cancelled_payment_is_recorded_and_not_credited(app, kit, payfast_gateway, client):
    itn = payfast_gateway.state.make_itn(start_payment(app, kit), status="CANCELLED")
    assert post_itn(client, itn).status_code == 200
    assert balance(app, kit.pocket_id) == 0
    with app.app_context():
        assert db.session.scalar(select(Payment.status)) == "cancelled"
        db.session.remove()


def test_padded_values_are_verified_exactly_as_posted(app, kit, payfast_gateway, client):
    # PayFast signs what it posts, spaces included: trimming before checking refuses it.
    checkout = {**start_payment(app, kit, "60.00"), "item_name": "  padded item  ",
                "name_first": "Thabo ", "name_last": " Mokoena"}
    itn = payfast_gateway.state.make_itn(checkout)
    response = post_itn(client, itn)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert balance(app, kit.pocket_id) == Decimal("60.00")
    with app.app_context():
        assert db.session.scalar(select(Payment.payer_name)) == "Thabo Mokoena"
        db.session.remove()


def test_a_field_repeated_after_the_signature_is_refused(app, kit, payfast_gateway, client):
    # The signature covers both copies, but dict() would act on the second: never genuine.
    itn = payfast_gateway.state.make_itn(start_payment(app, kit, "60.00"))
    forged = itn + [("m_payment_id", "someone-else")]
    response = post_itn(client, forged)
    assert response.status_code == 400
    assert "posted more than once" in response.get_data(as_text=True)
    assert balance(app, kit.pocket_id) == 0


def test_unknown_payment_id_is_refused(app, kit, payfast_gateway, client):
    start_payment(app, kit)
    itn = payfast_gateway.state.make_itn({"m_payment_id": "not-ours", "amount": "150.00"})
    assert post_itn(client, itn).status_code == 400
    assert count_topups(app) == 0


@pytest.mark.slow
def test_concurrent_duplicate_itns_credit_once(app, kit, payfast_gateway):
    itn = payfast_gateway.state.make_itn(start_payment(app, kit, "200.00"))
    barrier = threading.Barrier(8)
    answers: list[int] = []

    def deliver():
        client = app.test_client()
        barrier.wait()
        answers.append(post_itn(client, itn).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200] * 8
    assert balance(app, kit.pocket_id) == Decimal("200.00")
    assert count_topups(app) == 1
