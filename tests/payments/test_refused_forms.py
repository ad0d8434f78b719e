"""Bad input on a staff form comes back as the page with the reason next to the field, status
400 — never a bare "Redirecting…" page that loses the message (issue 12, item 6)."""
from __future__ import annotations

import io
import re
from html import unescape

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.models.metering import IngestApiKey
from app.models.payments import Payment
from tests.helpers import csrf_from


def field_error(page: str, field: str) -> str | None:
    """The message shown under `field`, when the field is marked invalid."""
    marked = re.search(rf'id="{field}"[^>]*aria-invalid="true"[^>]*aria-describedby="{field}-error"', page)
    message = re.search(rf'<p class="field-error" id="{field}-error"[^>]*>(.*?)</p>', page, re.S)
    return unescape(message[1]) if marked and message else None


def eft_payments(app) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(Payment).where(Payment.provider == "eft"))
        db.session.remove()
        return count


@pytest.fixture
def staff(kit, login):
    client = login(kit.staff_email)
    client.token = csrf_from(client.get("/staff/payments").get_data(as_text=True))
    return client


def upload(staff, body: bytes, name: str = "statement.csv"):
    return staff.post("/staff/payments/eft/statement", data={
        "csrf_token": staff.token, "statement": (io.BytesIO(body), name)}, content_type="multipart/form-data")


@pytest.mark.parametrize("body, reason", [
    (b"when,how much,what\n2026-11-02,10,A\n", "the file has no date, amount, reference, bank_ref column"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\xfa binary junk \x01\x02", "column"),
    (b"", "column"),
    (b"date;amount;reference;bank_ref\n2026-11-02;10;A;B1\n", "column"),
])
def test_a_bad_statement_comes_back_with_the_reason_next_to_the_file(app, staff, body, reason):
    response = upload(staff, body)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Redirecting" not in page and "<h1>Payments</h1>" in page
    message = field_error(page, "statement")
    assert message and message.startswith("statement.csv was not imported:") and reason in message
    assert eft_payments(app) == 0


def test_no_file_chosen_is_said_next_to_the_file_field(staff):
    response = staff.post("/staff/payments/eft/statement", data={"csrf_token": staff.token})
    assert response.status_code == 400
    assert field_error(response.get_data(as_text=True), "statement") == "Choose a CSV bank statement to upload."


@pytest.mark.parametrize("amount, reason", [
    ("abc", "'abc' is not an amount: use digits with at most one decimal point or comma, like 100.55 "
            "(no spaces, signs, exponents or thousands separators)"),
    ("-10", "'-10': the amount cannot be negative")])
def test_a_bad_deposit_amount_is_shown_next_to_the_amount_and_keeps_what_was_typed(app, staff, amount, reason):
    response = staff.post("/staff/payments/eft/deposit", data={
        "csrf_token": staff.token, "bank_ref": "DEP-1", "reference": "A1", "amount": amount,
        "paid_on": "2026-11-02"})
    page = response.get_data(as_text=True)
    assert response.status_code == 400 and "Redirecting" not in page
    assert field_error(page, "amount") == f"Not recorded: {reason}."
    assert 'name="bank_ref" required maxlength="64" value="DEP-1"' in page
    assert field_error(page, "bank_ref") is None
    assert eft_payments(app) == 0


def test_a_bad_deposit_date_is_shown_next_to_the_date(staff):
    response = staff.post("/staff/payments/eft/deposit", data={
        "csrf_token": staff.token, "bank_ref": "DEP-2", "amount": "10", "paid_on": "yesterday"})
    assert response.status_code == 400
    assert "is not YYYY-MM-DD" in field_error(response.get_data(as_text=True), "paid_on")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.text(max_size=12), paid_on=st.text(max_size=12))
def test_any_deposit_input_is_recorded_or_refused_never_a_server_error(staff, amount, paid_on):
    response = staff.post("/staff/payments/eft/deposit", data={
        "csrf_token": staff.token, "bank_ref": "FUZZ", "amount": amount, "paid_on": paid_on})
    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert 'class="field-error"' in response.get_data(as_text=True)


def test_row_actions_refused_render_the_page_with_the_reason(staff):
    for path, data in [("/staff/payments/eft/confirm", {}),
                       ("/staff/payments/assign", {"payment_id": "0"})]:
        response = staff.post(path, data={"csrf_token": staff.token, **data})
        if path.endswith("assign"):
            assert response.status_code == 400  # no such payment to assign: the page says so
            continue
        page = response.get_data(as_text=True)
        assert response.status_code == 400 and "Redirecting" not in page
        assert '<p class="flash flash-error">Tick the deposits to confirm.</p>' in page


def test_other_staff_forms_refused_render_their_page(app, kit, staff):
    ledger = staff.post(f"/staff/estates/{kit.estate_id}/periods/2026-01",
                        data={"csrf_token": staff.token, "status": "nonsense"})
    page = ledger.get_data(as_text=True)
    assert ledger.status_code == 400 and "Redirecting" not in page
    assert "<h1>Ledger verification</h1>" in page and 'class="flash flash-error"' in page

    staff.post("/staff/metering/api-keys", data={"csrf_token": staff.token, "name": "gateway",
                                                 "permissions": "readings:write"})
    with app.app_context():
        key_id = db.session.scalar(select(IngestApiKey.id).where(IngestApiKey.name == "gateway"))
        db.session.remove()
    path = f"/staff/metering/api-keys/{key_id}/revoke"
    assert staff.post(path, data={"csrf_token": staff.token}).status_code == 302
    again = staff.post(path, data={"csrf_token": staff.token})
    page = again.get_data(as_text=True)
    assert again.status_code == 400 and "Redirecting" not in page
    assert "is already revoked" in page and "<h1>" in page


def test_a_refused_htmx_request_answers_the_message_alone(kit, staff):
    response = staff.post(f"/staff/estates/{kit.estate_id}/statements/2099-01",
                          data={"csrf_token": staff.token}, headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert body.strip().startswith('<p class="flash flash-error" role="alert">') and "<html" not in body
    assert "has not ended" in body


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.text(alphabet="date,amount;reference\tbank_ref\n\"x1-", max_size=120)
                      .map(str.encode)))
def test_any_small_upload_is_reported_or_refused_never_a_server_error(staff, body):
    response = upload(staff, body)
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert field_error(response.get_data(as_text=True), "statement")
