"""API top-ups in one transaction (issue 21, speed): the Idempotency-Key claim commits with the
credit and the stored response, a crash takes the claim along, refusals are still stored, a
running claim is a 409 without waiting, and the receipt comes from the job after the commit."""
from __future__ import annotations

from datetime import date, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.integration import idempotency
from app.integration import keys
from app.models import Notification, Person, Tenancy, utcnow
from app.models.api import IdempotentRequest
from app.models.payments import Payment
from tests import factories


@pytest.fixture
def kit(session):
    made = factories.make_estate_with_wallet(session)
    session.commit()
    new = keys.issue_key(session, "vendor", permissions="read,topups:write", estate=made.estate)
    return SimpleNamespace(estate=made.estate, unit=made.unit, key=new.key, key_id=new.row.id)


def _post(client, kit, idem, body):
    return client.post("/api/v1/topups", json=body, headers={"X-API-Key": kit.key, "Idempotency-Key": idem})


def _count(engine, model, *where) -> int:
    with Session(engine) as fresh:
        return fresh.scalar(select(func.count()).select_from(model).where(*where))


def test_a_refused_topup_is_stored_and_replayed(kit, client, engine):
    body = {"unit_id": kit.unit.id, "amount": "999999"}  # above the payment ceiling
    first = _post(client, kit, "too-much", body)
    assert first.status_code == 422 and "amount" in first.get_json()["errors"]
    again = _post(client, kit, "too-much", body)
    assert again.status_code == 422 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == first.get_data()
    assert _count(engine, Payment) == 0
    assert _count(engine, IdempotentRequest, IdempotentRequest.response_status == 422) == 1


def test_a_crash_mid_credit_rolls_the_claim_back_with_the_credit(kit, client, engine, monkeypatch, app):
    from app.integration import topups

    def broken(*args, **kwargs):
        raise RuntimeError("the disk fell off")

    monkeypatch.setattr(topups, "credit_payment_to_pocket", broken)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    body = {"unit_id": kit.unit.id, "amount": "12.00"}
    assert _post(client, kit, "crash", body).status_code == 500
    assert _count(engine, IdempotentRequest) == 0 and _count(engine, Payment) == 0
    monkeypatch.undo()
    retried = _post(client, kit, "crash", body)
    assert retried.status_code == 201 and retried.get_json()["balance"] == "12.00"
    assert _count(engine, Payment, Payment.status == "credited") == 1


def test_a_running_claim_is_a_409_at_once_then_the_key_is_free(kit, client, engine):
    body = {"unit_id": kit.unit.id, "amount": "7.00"}
    raw = client.application.json.dumps(body).encode()
    with Session(engine) as other:  # another request holds the key, not committed yet
        fingerprint = idempotency.request_fingerprint("POST", "/api/v1/topups", raw)
        assert idempotency.claim(other, kit.key_id, "held", fingerprint).row_id is not None
        held = _post(client, kit, "held", body)
        assert held.status_code == 409 and "still being processed" in held.get_json()["detail"]
        other.rollback()  # it crashed: the claim went with it
    assert _post(client, kit, "held", body).status_code == 201


def test_a_claim_past_its_24_hours_is_taken_over(kit, client, engine, session):
    session.add(IdempotentRequest(api_key_id=kit.key_id, idempotency_key="old", request_hash="another body",
                                  response_status=201, response_body="{}",
                                  created_at=utcnow() - timedelta(hours=25)))
    session.commit()
    made = _post(client, kit, "old", {"unit_id": kit.unit.id, "amount": "3.00"})
    assert made.status_code == 201 and made.get_json()["balance"] == "3.00"
    assert _post(client, kit, "old", {"unit_id": kit.unit.id, "amount": "3.00"}).get_data() == made.get_data()


def test_the_receipt_is_sent_by_the_job_after_the_commit(kit, client, session):
    tenant = Person(full_name="Lerato", email="lerato@example.test", estate_id=kit.estate.id)
    session.add(tenant)
    session.flush()
    session.add(Tenancy(unit_id=kit.unit.id, person_id=tenant.id, move_in=date(2024, 1, 1)))
    session.commit()
    assert _post(client, kit, "receipt", {"unit_id": kit.unit.id, "amount": "20.00"}).status_code == 201
    session.expire_all()
    receipts = session.scalars(select(Notification).where(Notification.template == "payment_receipt")).all()
    assert [(r.to_address, r.channel) for r in receipts] == [("lerato@example.test", "email")]
