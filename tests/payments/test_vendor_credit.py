"""Credit push to SparkMeter (P5): forwarded once per payment, idempotent by external id,
a 2xx with an empty body looked up, refusals shown to staff. Koios is a small local fake."""
from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from werkzeug.wrappers import Request, Response

from app.extensions import db
from app.jobs import REGISTRY
from app.models import Tenancy
from app.models.payments import Payment
from app.payments.vendor_credit import push_payment
from tests import factories
from tests.emulators import serving
from tests.payments.test_sms_gateway import relay
from tests.payments.test_mpesa_parse import DOCUMENTED


class FakeKoios:
    """POST/GET /api/v1/payments with switchable misbehaviour."""

    def __init__(self):
        self.payments: dict[str, dict] = {}
        self.creates = 0
        self.empty_body = False
        self.refuse: str | None = None

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.headers.get("X-API-KEY") != "k" or request.headers.get("X-API-SECRET") != "s":
            response = Response(json.dumps({"errors": [{"title": "bad key"}]}), 401)
        elif request.method == "POST":
            response = self.create(request.get_json())
        else:
            found = self.payments.get(request.args.get("external_id", ""))
            response = (Response(json.dumps({"data": found}), 200, mimetype="application/json")
                        if found else Response(json.dumps({"errors": [{"title": "not found"}]}), 404))
        return response(environ, start_response)

    def create(self, body: dict) -> Response:
        if self.refuse:
            return Response(json.dumps({"errors": [{"title": self.refuse}]}), 422, mimetype="application/json")
        self.creates += 1
        row = {"id": f"kp-{self.creates}", **body}
        self.payments[body["external_id"]] = row
        if self.empty_body:
            return Response("", 201)
        return Response(json.dumps({"data": row}), 201, mimetype="application/json")


@pytest.fixture
def koios(app, monkeypatch):
    fake = FakeKoios()
    with serving(fake) as base:
        monkeypatch.setitem(app.config, "KOIOS_URL", base)
        monkeypatch.setitem(app.config, "KOIOS_API_KEY", "k")
        monkeypatch.setitem(app.config, "KOIOS_API_SECRET", "s")
        yield fake


@pytest.fixture
def sparkmeter_unit(committed):
    """A unit metered by SparkMeter whose tenant pays from +266 5775 5403."""
    with committed() as s:
        made = factories.make_estate_with_wallet(s, currency="LSL")
        factories.make_meter(s, made.unit, protocol="sparkmeter")
        person = factories.make_user(s, "tenant", unit=made.unit, phone="26657755403", password=None).person
        s.add(Tenancy(unit_id=made.unit.id, person_id=person.id, move_in=date(2024, 1, 1)))
        return made.unit.number


def test_webhook_payment_is_pushed_once_by_a_job(app, koios, sparkmeter_unit, client, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_GATEWAY_PASSWORD", "gateway-secret")
    monkeypatch.setitem(app.config, "SMS_GATEWAY_USER", "gateway")
    relay(client, ("sms-1", DOCUMENTED))
    assert koios.creates == 1
    (pushed,) = koios.payments.values()
    assert (pushed["customer_code"], pushed["amount"]) == (sparkmeter_unit, "1.00")
    with app.app_context():
        payment = db.session.scalar(select(Payment))
        assert pushed["external_id"] == f"meterwise:{payment.id}"
        assert payment.vendor_push_status == "pushed"
        # The job running again (a worker died after pushing) looks up and sends nothing.
        payment.vendor_push_status = "queued"
        REGISTRY["vendor_credit_push"](db.session, None, payment.id)
        db.session.remove()
    assert koios.creates == 1


def test_empty_2xx_is_confirmed_by_lookup(app, koios, sparkmeter_unit):
    koios.empty_body = True
    with app.app_context():
        payment = _credited_payment(sparkmeter_unit)
        result = push_payment(db.session, payment)
        assert result.ok and "kp-1" in result.message
        db.session.remove()


def test_refusal_is_recorded_and_shown(app, koios, sparkmeter_unit):
    koios.refuse = "customer not found"
    with app.app_context():
        payment = _credited_payment(sparkmeter_unit)
        result = push_payment(db.session, payment)
        assert not result.ok and "customer not found" in result.message
        assert payment.vendor_push_status == "failed"
        db.session.remove()


def _credited_payment(unit_number: str) -> Payment:
    from app.models import Unit
    from app.payments.credit import credit_payment
    unit = db.session.scalar(select(Unit).where(Unit.number == unit_number))
    payment = Payment(provider="eft", provider_ref=f"B-{unit_number}", amount=Decimal("25"),
                      status="to_confirm", unit_id=unit.id, estate_id=unit.estate_id, utility="electricity")
    db.session.add(payment)
    credit_payment(db.session, payment)
    db.session.commit()
    return payment


def test_push_against_the_shared_koios_emulator(app, committed, monkeypatch):
    from app.settings import put_setting
    from tests.emulators.koios import build, create_app
    emulator = build(sites=1, meters_per_site=2)
    emulator.api_key, emulator.api_secret = "k", "s"
    serial = emulator.meters[emulator.sites[0]][0]
    with committed() as s:
        made = factories.make_estate_with_wallet(s, currency="LSL")
        factories.make_meter(s, made.unit, protocol="sparkmeter", serial=serial)
        put_setting(s, "sparkmeter_customer_code", "C-{serial}", made.estate.id)
        number = made.unit.number
    with serving(create_app(emulator)) as base:
        monkeypatch.setitem(app.config, "KOIOS_URL", base)
        monkeypatch.setitem(app.config, "KOIOS_API_KEY", "k")
        monkeypatch.setitem(app.config, "KOIOS_API_SECRET", "s")
        with app.app_context():
            payment = _credited_payment(number)
            first = push_payment(db.session, payment)
            again = push_payment(db.session, payment)
            db.session.remove()
    assert first.ok and again.ok, (first, again)
    (pushed,) = emulator.payments.values()
    assert (pushed["customer_code"], pushed["amount"]) == (f"C-{serial}", "25.00")


def test_payfast_topup_on_a_sparkmeter_unit_is_pushed_to_koios(app, kit, committed, payfast_gateway,
                                                                client, monkeypatch):
    """Every credited payment goes through the same push, whatever its provider (here PayFast)."""
    from app.settings import put_setting
    from app.models import Unit
    from tests.emulators.koios import build, create_app
    from tests.payments.test_payfast import post_itn, start_payment
    emulator = build(sites=1, meters_per_site=1)
    emulator.api_key, emulator.api_secret = "k", "s"
    serial = emulator.meters[emulator.sites[0]][0]
    with committed() as s:
        factories.make_meter(s, s.get(Unit, kit.unit_id), protocol="sparkmeter", serial=serial)
        put_setting(s, "sparkmeter_customer_code", "C-{serial}", kit.estate_id)
    with serving(create_app(emulator)) as base:
        monkeypatch.setitem(app.config, "KOIOS_URL", base)
        monkeypatch.setitem(app.config, "KOIOS_API_KEY", "k")
        monkeypatch.setitem(app.config, "KOIOS_API_SECRET", "s")
        itn = payfast_gateway.state.make_itn(start_payment(app, kit, amount="120.00"))
        assert post_itn(client, itn).status_code == 200
        assert post_itn(client, itn).status_code == 200  # a duplicate ITN pushes nothing more
    (pushed,) = emulator.payments.values()
    assert (pushed["customer_code"], pushed["amount"]) == (f"C-{serial}", "120.00")
    with app.app_context():
        payment = db.session.scalar(select(Payment).where(Payment.provider == "payfast"))
        assert (payment.status, payment.vendor_push_status) == ("credited", "pushed")
        assert pushed["external_id"] == f"meterwise:{payment.id}"
        db.session.remove()


def test_staff_confirmed_eft_is_pushed_by_the_same_queue(app, koios, sparkmeter_unit):
    from app.payments.eft import confirm_payments, record_deposit
    with app.app_context():
        payment = record_deposit(db.session, bank_ref="EFT-SM", amount="40", reference=sparkmeter_unit,
                                 paid_on="2026-11-20", user_id=None)
        assert confirm_payments(db.session, [payment.id], user_id=None) == [(payment.id, "credited")]
        db.session.refresh(payment)
        assert payment.vendor_push_status == "pushed"
        db.session.remove()
    assert koios.creates == 1
