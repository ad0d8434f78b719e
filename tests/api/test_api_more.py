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
