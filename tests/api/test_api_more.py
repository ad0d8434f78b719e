"""The integration API, second part (issue 21): readings under the key's limit and scope, the
endpoints added after the first cut, webhook events beyond wallet.topup, the idempotency purge."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app.integration import keys
from app.models import Reading, utcnow
from app.models.metering import DeadLetter
from tests import factories


def _issue(session, name, permissions, estate=None, issuer=None, **options) -> str:
    return keys.issue_key(session, name, permissions=permissions, estate=estate, issuer=issuer, **options).key


def _reading(serial: str, minutes_ago: int, register: str) -> dict:
    at = (utcnow() - timedelta(minutes=minutes_ago)).replace(second=0, microsecond=0)
    return {"meter": serial, "time": at.isoformat(), "energy": f"{register} kWh"}


def _post_readings(client, key, readings):
    return client.post("/api/v1/readings", json={"readings": readings}, headers={"X-API-Key": key})


# --- Readings: rate limit and scope -------------------------------------------------------

def test_readings_count_against_the_keys_hourly_limit(session, client):
    kit = factories.make_estate_with_wallet(session)
    meter = factories.make_meter(session, kit.unit)
    session.commit()
    key = _issue(session, "gateway", "readings:write", rate_limit_per_hour=2)
    answers = [_post_readings(client, key, [_reading(meter.serial, 90 - 30 * i, str(100 + i))]) for i in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert answers[0].headers["RateLimit-Policy"] == '"hourly";q=2;w=3600'
    assert int(answers[2].headers["Retry-After"]) > 0
    assert answers[2].mimetype == "application/problem+json"
    assert session.scalar(select(func.count(Reading.id)).where(Reading.meter_id == meter.id)) == 2


def test_a_legacy_gateway_key_is_counted_at_a_gateways_scale(session, client):
    kit = factories.make_estate_with_wallet(session)
    meter = factories.make_meter(session, kit.unit)
    session.commit()
    legacy = keys.issue_key(session, "gateway", permissions="readings:write", legacy=True).key
    answer = _post_readings(client, legacy, [_reading(meter.serial, 30, "100")])
    assert answer.status_code == 200
    assert answer.headers["RateLimit-Policy"] == f'"hourly";q={keys.GATEWAY_RATE_LIMIT_PER_HOUR};w=3600'


def test_an_estate_key_may_post_only_its_estates_meters(session, client):
    mine = factories.make_estate_with_wallet(session)
    theirs = factories.make_estate_with_wallet(session)
    my_meter = factories.make_meter(session, mine.unit)
    their_meter = factories.make_meter(session, theirs.unit)
    session.commit()
    key = _issue(session, "estate gateway", "readings:write", mine.estate)
    response = _post_readings(client, key, [_reading(my_meter.serial, 30, "100"),
                                            _reading(their_meter.serial, 30, "100"),
                                            _reading("99999999", 30, "100")])
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    # Another estate's meter reads exactly like an unknown one: its existence is not revealed.
    assert body["accepted"] == 1
    assert body["refused"] == [f"unknown meter {their_meter.serial}", "unknown meter 99999999"]
    assert session.scalar(select(func.count(Reading.id)).where(Reading.meter_id == their_meter.id)) == 0
    # ...and it is not kept as a dead letter a replay could push past the key's scope.
    assert set(session.scalars(select(DeadLetter.meter_serial))) == {"99999999"}
    everywhere = _issue(session, "all estates", "readings:write")
    assert _post_readings(client, everywhere, [_reading(their_meter.serial, 30, "100")]).get_json()["accepted"] == 1


def test_an_agents_readings_key_stops_at_the_agents_estates(session, client):
    kit = factories.make_estate_with_wallet(session)
    meter = factories.make_meter(session, kit.unit)
    agent = factories.make_user(session, "agent", estate=kit.estate)
    session.commit()
    key = _issue(session, "agent's gateway", "readings:write", kit.estate, agent)
    assert _post_readings(client, key, [_reading(meter.serial, 60, "100")]).get_json()["accepted"] == 1
    from app.models import RoleGrant
    for grant in session.scalars(select(RoleGrant).where(RoleGrant.user_id == agent.id)):
        session.delete(grant)
    session.commit()
    refused = _post_readings(client, key, [_reading(meter.serial, 30, "101")]).get_json()
    assert refused["accepted"] == 0 and refused["refused"] == [f"unknown meter {meter.serial}"]


def test_a_key_without_readings_write_is_403_and_no_key_401(session, client):
    reader = _issue(session, "reader", "read")
    assert _post_readings(client, reader, []).status_code == 403
    missing = client.post("/api/v1/readings", json={"readings": []})
    assert missing.status_code == 401 and missing.mimetype == "application/problem+json"


# --- Endpoints: bills, consumption alias, arrears, maintenance, units ---------------------

def _metered(session):
    from datetime import date

    from app.models import TariffVersion

    kit = factories.make_estate_with_wallet(session)
    session.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "2.00"}))
    meter = factories.make_meter(session, kit.unit, serial="000023022673")
    factories.make_topup(session, kit.pocket("electricity"), "100.00", clearing=kit.accounts.clearing)
    session.commit()
    return kit, meter


def _direct(serial, moment, register):
    import json

    from app.metering.ingest import Message
    body = {"meter": serial, "time": moment.isoformat(), "energy": f"{register} kWh"}
    return Message(f"meters/{serial}/readings", json.dumps(body).encode())


def test_last_months_bill_gives_readings_consumption_and_amount(session, client):
    from app.metering.ingest import ingest
    from app.metering.queries import period_bounds

    kit, meter = _metered(session)
    start, end = period_bounds("last_month", utcnow(), kit.estate.tz)
    first, last = start + timedelta(days=1), start + timedelta(days=2)
    ingest(session, [_direct(meter.serial, first, "100"), _direct(meter.serial, last, "104.5"),
                     _direct(meter.serial, end + timedelta(hours=1), "110")])
    session.commit()
    key = _issue(session, "reader", "read", kit.estate)
    body = client.get(f"/api/v1/meters/{meter.serial}/bills/last-month", headers={"X-API-Key": key}).get_json()
    assert body["period"] == start.astimezone(kit.estate.tz).strftime("%Y-%m")
    from decimal import Decimal
    assert [Decimal(body[f]) for f in ("start_register", "end_register", "consumption")] == [100, Decimal("104.5"),
                                                                                              Decimal("4.5")]
    assert body["amount_billed"] == "9.00" and body["commodity"] == kit.estate.currency  # 4.5 kWh at 2.00
    other = factories.make_estate_with_wallet(session)
    session.commit()
    outsider = _issue(session, "outsider", "read", other.estate)
    assert client.get(f"/api/v1/meters/{meter.serial}/bills/last-month",
                      headers={"X-API-Key": outsider}).status_code == 404


def test_consumption_takes_powercms_period_names(session, client):
    kit, meter = _metered(session)
    key = _issue(session, "reader", "read", kit.estate)
    response = client.get(f"/api/v1/meters/{meter.serial}/consumption?period=last_30min", headers={"X-API-Key": key})
    assert response.status_code == 200 and response.get_json()["period"] == "last_30_minutes"
    assert client.get(f"/api/v1/meters/{meter.serial}/consumption?period=yesterday",
                      headers={"X-API-Key": key}).status_code == 400


def test_arrears_list_debts_in_scope_oldest_first(session, client):
    from app.ledger import Entry, post

    kit = factories.make_estate_with_wallet(session)
    other = factories.make_estate_with_wallet(session)
    for estate_kit in (kit, other):
        pocket = estate_kit.pocket("electricity")
        post(session, Entry(estate_id=estate_kit.estate.id, kind="consumption", idempotency_key=f"t:{pocket.id}",
                            legs=[(pocket.id, -25), (estate_kit.accounts.revenue["electricity"].id, 25)],
                            occurred_at=utcnow() - timedelta(days=40)))
    session.commit()
    key = _issue(session, "reader", "read", kit.estate)
    body = client.get("/api/v1/arrears", headers={"X-API-Key": key}).get_json()
    assert [(d["unit_id"], d["owed"], d["kind"], d["bucket"]) for d in body["data"]] == [
        (kit.unit.id, "25.00", "pocket", "30")]
    everything = _issue(session, "all", "read")
    page = client.get("/api/v1/arrears?limit=1", headers={"X-API-Key": everything}).get_json()
    assert len(page["data"]) == 1 and page["next_cursor"]
    rest = client.get(f"/api/v1/arrears?limit=1&cursor={page['next_cursor']}", headers={"X-API-Key": everything})
    assert len(rest.get_json()["data"]) == 1 and rest.get_json()["next_cursor"] is None
    assert client.get(f"/api/v1/arrears?estate_id={other.estate.id}", headers={"X-API-Key": key}).get_json()["data"] == []


def test_maintenance_is_for_staff_keys_and_audited(session, client):
    from app.metering.ingest import ingest_paused
    from app.models import AuditLog

    kit = factories.make_estate_with_wallet(session)
    agent = factories.make_user(session, "agent", estate=kit.estate)
    session.commit()
    staff = _issue(session, "ops", "read,manage")
    estate_key = _issue(session, "estate", "read,manage", kit.estate)
    agents = _issue(session, "agent's", "read,manage", kit.estate, agent)
    assert client.get("/api/v1/maintenance", headers={"X-API-Key": staff}).get_json() == {"maintenance": False}
    for key in (estate_key, agents):
        assert client.get("/api/v1/maintenance", headers={"X-API-Key": key}).status_code == 404
        assert client.post("/api/v1/maintenance", json={"maintenance": True},
                           headers={"X-API-Key": key}).status_code == 404
    reader = _issue(session, "reader", "read")
    assert client.post("/api/v1/maintenance", json={"maintenance": True},
                       headers={"X-API-Key": reader}).status_code == 403
    assert client.post("/api/v1/maintenance", json={"maintenance": "yes"},
                       headers={"X-API-Key": staff}).status_code == 422
    on = client.post("/api/v1/maintenance", json={"maintenance": True}, headers={"X-API-Key": staff})
    assert on.status_code == 200 and on.get_json() == {"maintenance": True}
    session.expire_all()
    assert ingest_paused(session)
    row = session.scalar(select(AuditLog).where(AuditLog.action == "maintenance.switch"))
    assert row.actor.startswith("api:mw_live_") and row.new["maintenance"] is True


def test_registering_a_unit_with_its_meter(session, client):
    from app.models import Meter, Unit

    kit = factories.make_estate_with_wallet(session)
    other = factories.make_estate_with_wallet(session)
    session.commit()
    key = _issue(session, "onboarding", "read,manage", kit.estate)
    made = client.post("/api/v1/units", headers={"X-API-Key": key}, json={
        "estate_id": kit.estate.id, "number": "B-12", "meter": {"serial": "0077001", "utility": "electricity",
                                                                "interval_minutes": 30}})
    assert made.status_code == 201, made.get_data(as_text=True)
    body = made.get_json()
    assert body["unit"]["number"] == "B-12" and body["unit"]["occupancy_status"] == "vacant"
    assert body["meter"]["serial"] == "77001" and body["meter"]["unit_id"] == body["unit"]["id"]
    # The same number again, or a serial already registered: 422 with the field, nothing written.
    again = client.post("/api/v1/units", headers={"X-API-Key": key}, json={"estate_id": kit.estate.id, "number": "b-12"})
    assert again.status_code == 422 and "number" in again.get_json()["errors"]
    taken = client.post("/api/v1/units", headers={"X-API-Key": key}, json={
        "estate_id": kit.estate.id, "number": "B-13", "meter": {"serial": "77001", "utility": "electricity"}})
    assert taken.status_code == 422 and "meter.serial" in taken.get_json()["errors"]
    session.expire_all()
    assert session.scalar(select(func.count(Unit.id)).where(Unit.number == "B-13")) == 0
    assert session.scalar(select(func.count(Meter.id)).where(Meter.serial == "77001")) == 1
    # Another estate is 404; a key without manage is 403.
    assert client.post("/api/v1/units", headers={"X-API-Key": key},
                       json={"estate_id": other.estate.id, "number": "X1"}).status_code == 404
    reader = _issue(session, "reader", "read", kit.estate)
    assert client.post("/api/v1/units", headers={"X-API-Key": reader},
                       json={"estate_id": kit.estate.id, "number": "X1"}).status_code == 403


# --- Webhook events -----------------------------------------------------------------------

def _subscribe(session, estate, events: str):
    from app.notify import webhooks_out
    return webhooks_out.add_endpoint(session, url="http://127.0.0.1:9/hook", events=events, estate=estate,
                                     issuer=None).row


def _deliveries(session, event_type):
    from app.models.api import WebhookDelivery
    session.expire_all()
    return list(session.scalars(select(WebhookDelivery).where(WebhookDelivery.event_type == event_type)
                                .order_by(WebhookDelivery.id)))


def test_meter_reading_events_only_where_subscribed_and_the_lookup_is_cached(app, session, engine):
    from sqlalchemy import event

    from app.metering.ingest import ingest

    kit, meter = _metered(session)
    quiet = factories.make_estate_with_wallet(session)
    quiet_meter = factories.make_meter(session, quiet.unit)
    session.commit()
    _subscribe(session, kit.estate, "meter.reading")
    lookups = []

    def count(conn, cursor, statement, *args):
        if "webhook_endpoints" in statement:
            lookups.append(statement)
    event.listen(engine, "before_cursor_execute", count)
    try:
        at = (utcnow() - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
        ingest(session, [_direct(meter.serial, at, "100"), _direct(meter.serial, at + timedelta(minutes=30), "101"),
                         _direct(quiet_meter.serial, at, "5")])
        session.commit()
        first = len(lookups)
        for step in range(3):  # more batches in the quiet estate: no subscription query at all
            ingest(session, [_direct(quiet_meter.serial, at + timedelta(minutes=30 * (step + 1)), str(6 + step))])
            session.commit()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    sent = _deliveries(session, "meter.reading")
    assert [(d.payload["data"]["serial"], d.payload["data"]["register"]) for d in sent] == [
        (meter.serial, "100"), (meter.serial, "101")]
    assert sent[0].payload["type"] == "meter.reading" and sent[1].payload["data"]["consumption"] == "1"
    assert first >= 1 and lookups[first:] == []  # the cached lookup answered the quiet estate's batches


def test_low_balance_alert_is_a_wallet_low_balance_event(session):
    from app.models import Unit, User
    from app.notify.budget_alerts import check_budget_alerts, save_settings

    kit = factories.make_estate_with_wallet(session)
    factories.make_meter(session, kit.unit)
    factories.make_topup(session, kit.pocket("electricity"), "40.00", clearing=kit.accounts.clearing)
    tenant = factories.make_user(session, "tenant", unit=kit.unit)
    session.commit()
    save_settings(session, session.get(User, tenant.id), session.get(Unit, kit.unit.id),
                  thresholds={"electricity": "50"}, frequency="daily", channels=["in_app"], high_usage=False)
    _subscribe(session, kit.estate, "wallet.low_balance")
    check_budget_alerts(session)
    sent = _deliveries(session, "wallet.low_balance")
    assert len(sent) == 1
    data = sent[0].payload["data"]
    assert (data["unit_id"], data["utility"], data["level"], data["threshold"]) == (kit.unit.id, "electricity",
                                                                                    "low", "50.00")
    assert data["balance"].startswith("40")


def test_meters_gone_offline_are_announced_once(session):
    from app.integration import events

    kit = factories.make_estate_with_wallet(session)
    meter = factories.make_meter(session, kit.unit)
    silent_since = utcnow() - timedelta(hours=3)
    meter.last_reading_at = silent_since  # offline after 2 h: since an hour ago
    recent = factories.make_meter(session, kit.unit, utility="water")
    recent.last_reading_at = utcnow() - timedelta(minutes=10)
    session.commit()
    _subscribe(session, kit.estate, "meter.offline")
    now = utcnow()
    assert events.announce_offline_meters(session, now - timedelta(hours=2), now) == 1
    session.commit()
    assert events.announce_offline_meters(session, now, now + timedelta(minutes=5)) == 0  # the next window
    sent = _deliveries(session, "meter.offline")
    assert [d.payload["data"]["serial"] for d in sent] == [meter.serial]
    assert sent[0].payload["data"]["offline_since"].startswith((silent_since + timedelta(hours=2)).isoformat()[:16])


def test_the_offline_job_windows_from_its_previous_run(session):
    from app.integration.events import OFFLINE_JOB, offline_meters_job
    from app.models import JobRun

    kit = factories.make_estate_with_wallet(session)
    meter = factories.make_meter(session, kit.unit)
    meter.last_reading_at = utcnow() - timedelta(hours=2, minutes=30)
    session.commit()
    _subscribe(session, kit.estate, "meter.offline")
    assert offline_meters_job(session, None) == "1 meter.offline event queued"
    session.add(JobRun(kind=OFFLINE_JOB, status="done", started_at=utcnow()))
    session.commit()
    assert offline_meters_job(session, None) == "0 meter.offline events queued"


def test_move_in_is_a_tenant_onboarded_event(session):
    from datetime import date

    from app.estates import tenancies

    kit = factories.make_estate_with_wallet(session)
    agent = factories.make_user(session, "agent", estate=kit.estate)
    session.commit()
    _subscribe(session, kit.estate, "tenant.onboarded")
    day = utcnow().astimezone(kit.estate.tz).date()
    moved = tenancies.move_in(session, agent, kit.unit, {"full_name": "Thabo Mokoena", "email": "thabo@example.com",
                                                        "phone": ""}, day, {})
    sent = _deliveries(session, "tenant.onboarded")
    assert len(sent) == 1 and sent[0].payload["data"]["tenancy_id"] == moved.tenancy_id
    assert sent[0].payload["data"]["move_in"] == day.isoformat() and isinstance(day, date)


def test_the_idempotency_purge_job_forgets_day_old_responses(session):
    from app.integration.idempotency import purge_job
    from app.models.api import ApiKey, IdempotentRequest

    _issue(session, "k", "topups:write")
    key_id = session.scalar(select(ApiKey.id))
    session.add_all([IdempotentRequest(api_key_id=key_id, idempotency_key="old", request_hash="x", response_status=201,
                                       created_at=utcnow() - timedelta(hours=25)),
                     IdempotentRequest(api_key_id=key_id, idempotency_key="new", request_hash="x", response_status=201)])
    session.commit()
    assert purge_job(session, None) == "1 stored response forgotten"
    session.expire_all()
    assert list(session.scalars(select(IdempotentRequest.idempotency_key))) == ["new"]


# --- Move-in and move-out -----------------------------------------------------------------

def test_move_in_and_out_through_the_api_as_the_keys_issuer(session, client):
    from datetime import date

    from app.models import Tenancy
    from app.models.moves import Refund

    kit, meter = _metered(session)
    agent = factories.make_user(session, "agent", estate=kit.estate)
    other = factories.make_estate_with_wallet(session)
    session.commit()
    key = _issue(session, "agent's CRM", "read,manage", kit.estate, agent)
    day = utcnow().astimezone(kit.estate.tz).date().isoformat()
    yesterday = (utcnow().astimezone(kit.estate.tz).date() - timedelta(days=1)).isoformat()
    body = {"person": {"full_name": "Thabo Mokoena", "email": "thabo@example.com"}, "move_in": yesterday,
            "openings": {"electricity": "1000"}}
    gone = factories.make_user(session, "agent", estate=kit.estate)
    gone_key = _issue(session, "left", "read,manage", kit.estate, gone)
    gone.active = False
    session.commit()
    refused = client.post(f"/api/v1/units/{kit.unit.id}/move-in", json=body, headers={"X-API-Key": gone_key})
    assert refused.status_code == 422 and "key" in refused.get_json()["errors"]  # its issuer is no longer active
    assert client.post(f"/api/v1/units/{other.unit.id}/move-in", json=body,
                       headers={"X-API-Key": key}).status_code == 404
    bad = client.post(f"/api/v1/units/{kit.unit.id}/move-in", headers={"X-API-Key": key},
                      json={**body, "openings": {"electricity": "-3"}})
    assert bad.status_code == 422 and "openings.electricity" in bad.get_json()["errors"]
    moved = client.post(f"/api/v1/units/{kit.unit.id}/move-in", json=body, headers={"X-API-Key": key})
    assert moved.status_code == 201, moved.get_data(as_text=True)
    tenancy_id = moved.get_json()["tenancy_id"]
    assert moved.get_json()["readings"] == 1
    again = client.post(f"/api/v1/units/{kit.unit.id}/move-in", json=body, headers={"X-API-Key": key})
    assert again.status_code == 422 and "person_id" in again.get_json()["errors"]
    out = client.post(f"/api/v1/units/{kit.unit.id}/move-out", headers={"X-API-Key": key},
                      json={"move_out": day, "closings": {"electricity": "1010"}})
    assert out.status_code == 200, out.get_data(as_text=True)
    result = out.get_json()
    # The R100 of the vacant unit went to the owner at move-in; 10 kWh at R2.00 is carried as a debt.
    assert (result["tenancy_id"], result["refunded"], result["debt"]) == (tenancy_id, "0.00", "20.00")
    session.expire_all()
    assert session.get(Tenancy, tenancy_id).move_out == date.fromisoformat(day)
    assert list(session.scalars(select(Refund).where(Refund.tenancy_id == tenancy_id))) == []
    nobody = client.post(f"/api/v1/units/{kit.unit.id}/move-out", headers={"X-API-Key": key},
                         json={"move_out": day})
    assert nobody.status_code == 422 and "unit_id" in nobody.get_json()["errors"]


# --- Bulk top-up --------------------------------------------------------------------------

def test_bulk_topup_credits_each_wallet_once_even_after_the_stored_response_expires(session, client):
    from app.models.api import IdempotentRequest
    from app.models.payments import Payment

    kit = factories.make_estate_with_wallet(session)
    factories.make_meter(session, kit.unit)
    second = factories.make_unit(session, kit.estate)
    factories.make_wallet(session, second)
    factories.make_meter(session, second)
    other = factories.make_estate_with_wallet(session)
    session.commit()
    key = _issue(session, "vendor", "read,topups:write", kit.estate)
    body = {"estate_id": kit.estate.id, "rows": [{"unit_id": kit.unit.id, "amount": "50.00"},
                                                 {"unit_id": second.id, "amount": "25"},
                                                 {"unit_id": other.unit.id, "amount": "10"}]}
    headers = {"X-API-Key": key, "Idempotency-Key": "batch-1"}
    first = client.post("/api/v1/wallets/bulk-topup", json=body, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    made = first.get_json()
    assert (made["count"], made["credited"], made["status"], made["total"]) == (2, 2, "done", "75.00")
    assert len(made["skipped"]) == 1 and made["skipped"][0]["unit"] == f"#{other.unit.id}"
    replay = client.post("/api/v1/wallets/bulk-topup", json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_json() == made
    session.query(IdempotentRequest).delete()
    session.commit()
    later = client.post("/api/v1/wallets/bulk-topup", json=body, headers=headers)
    assert later.status_code == 201 and later.get_json()["batch_id"] == made["batch_id"]
    session.expire_all()
    assert session.scalar(select(func.count(Payment.id)).where(Payment.provider == "agent")) == 2
    assert client.post("/api/v1/wallets/bulk-topup", json={**body, "estate_id": other.estate.id},
                       headers={"X-API-Key": key, "Idempotency-Key": "b2"}).status_code == 404
    none = client.post("/api/v1/wallets/bulk-topup", json={"estate_id": kit.estate.id, "rows": []},
                       headers={"X-API-Key": key, "Idempotency-Key": "b3"})
    assert none.status_code == 422 and "units" in none.get_json()["errors"]
