"""The integration API (issue 21): keys, scope, permissions, reads, idempotent top-ups, rate limits."""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.integration import keys
from app.models import AuditLog, LedgerTransaction
from app.models.api import ApiKey
from app.models.payments import Payment
from tests import factories
from tests.helpers import statuses_at_once


@dataclass
class Api:
    estate1: int
    estate2: int
    unit1: int
    unit2: int
    serial1: str
    serial2: str
    all_key: str      # every estate, every permission
    estate1_key: str  # estate 1 only, read + topups:write
    read_key: str     # estate 1 only, read
    agent_key: str    # an agent's key on estate 1


def _issue(session, name, permissions, estate=None, issuer=None, **options) -> str:
    return keys.issue_key(session, name, permissions=permissions, estate=estate, issuer=issuer, **options).key


@pytest.fixture
def api(session) -> Api:
    kit1 = factories.make_estate_with_wallet(session)
    kit2 = factories.make_estate_with_wallet(session)
    meter1 = factories.make_meter(session, kit1.unit)
    meter2 = factories.make_meter(session, kit2.unit)
    factories.make_topup(session, kit1.pocket(), "40.00")
    agent = factories.make_user(session, "agent", estate=kit1.estate)
    session.commit()
    everything = ",".join(keys.API_PERMISSIONS)
    return Api(kit1.estate.id, kit2.estate.id, kit1.unit.id, kit2.unit.id, meter1.serial, meter2.serial,
               _issue(session, "all", everything),
               _issue(session, "estate 1", "read,topups:write", kit1.estate),
               _issue(session, "reader", "read", kit1.estate),
               _issue(session, "agent's", "read,topups:write", kit1.estate, agent))


def problem_of(response) -> dict:
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)[:300]
    body = response.get_json(force=True)
    assert body["status"] == response.status_code and body["title"] and body["detail"]
    return body


def get(client, path, key, **headers):
    return client.get(path, headers={"X-API-Key": key, **headers} if key else headers)


# --- Keys ---------------------------------------------------------------------------------

def test_a_key_is_shown_once_stored_hashed_with_prefix_and_public_id(session):
    new = keys.issue_key(session, "USSD app", permissions="read, topups:write", mode="live")
    assert new.key.startswith(f"mw_live_{new.row.public_id}_") and len(new.key) > 50
    row = session.get(ApiKey, new.row.id)
    assert row.key_hash == keys.digest(new.key) and new.key not in (row.prefix + row.key_hash)
    assert row.permissions == "read topups:write" and row.estate_id is None
    assert keys.issue_key(session, "t", permissions="read", mode="test").key.startswith("mw_test_")
    with pytest.raises(keys.ApiKeyError, match="Unknown permission"):
        keys.issue_key(session, "bad", permissions="read,delete")
    with pytest.raises(keys.ApiKeyError, match="name"):
        keys.issue_key(session, "  ", permissions="read")


def test_an_agent_may_key_only_an_estate_of_their_own(session):
    mine, other = factories.make_estate(session), factories.make_estate(session)
    agent = factories.make_user(session, "agent", estate=mine)
    session.commit()
    with pytest.raises(keys.ApiKeyError) as refused:
        keys.issue_key(session, "x", permissions="read", estate=other, issuer=agent)
    assert refused.value.errors == {"estate_id": "Choose one of your estates."}
    with pytest.raises(keys.ApiKeyError, match="Choose the estate"):
        keys.issue_key(session, "x", permissions="read", estate=None, issuer=agent)
    assert keys.issue_key(session, "x", permissions="read", estate=mine, issuer=agent).row.estate_id == mine.id


def test_legacy_ingest_keys_are_readings_keys_over_every_estate(session, client, api):
    legacy = keys.issue_key(session, "gateway", permissions="readings:write", legacy=True).key
    assert legacy.startswith("mwk_")
    assert get(client, "/api/v1/estates", legacy).status_code == 403  # readings only
    response = client.post("/api/v1/readings", json={"readings": []}, headers={"Authorization": f"Bearer {legacy}"})
    assert response.status_code == 400  # authenticated (an empty batch), not 401
    assert client.post("/api/v1/readings", json={}, headers={"X-API-Key": api.read_key}).status_code == 403


def test_revoked_unknown_and_missing_keys_are_401(session, client, api):
    row = session.scalar(select(ApiKey).where(ApiKey.name == "reader"))
    assert get(client, "/api/v1/estates", api.read_key).status_code == 200
    keys.revoke_key(session, row)
    for key in (api.read_key, "mw_live_nope", None, "x" * 500):
        response = get(client, "/api/v1/estates", key)
        assert response.status_code == 401 and problem_of(response)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/api/v1/estates", headers={"Authorization": f"Bearer {api.all_key}"}).status_code == 200
    actions = set(session.scalars(select(AuditLog.action).where(AuditLog.action.like("api_key.%"))))
    assert actions == {"api_key.create", "api_key.revoke"}


# --- Scope x permission -------------------------------------------------------------------

SCOPE_MATRIX = [
    ("all_key", "estate1", 200), ("all_key", "estate2", 200),
    ("estate1_key", "estate1", 200), ("estate1_key", "estate2", 404),
    ("read_key", "estate1", 200), ("read_key", "estate2", 404),
    ("agent_key", "estate1", 200), ("agent_key", "estate2", 404),
]


def test_scope_matrix_another_estates_ids_are_404(client, api):
    for key_name, estate, expected in SCOPE_MATRIX:  # one world for the whole matrix: tests stay fast
        _check_scope(client, api, getattr(api, key_name), estate, expected)


def _check_scope(client, api, key, estate, expected):
    number = "1" if estate == "estate1" else "2"
    ids = {"estate": getattr(api, f"estate{number}"), "unit": getattr(api, f"unit{number}"),
           "serial": getattr(api, f"serial{number}")}
    for path in (f"/api/v1/estates/{ids['estate']}", f"/api/v1/units/{ids['unit']}",
                 f"/api/v1/units/{ids['unit']}/wallet", f"/api/v1/meters/{ids['serial']}",
                 f"/api/v1/meters/{ids['serial']}/consumption?period=today"):
        response = get(client, path, key)
        assert response.status_code == expected, (path, response.get_data(as_text=True))
        if expected == 404:
            problem_of(response)
    listed = get(client, "/api/v1/units", key).get_json()["data"]
    assert (ids["unit"] in {u["id"] for u in listed}) == (expected == 200)


def test_an_agents_key_stops_when_the_agent_loses_the_estate(session, client, api):
    from app.models import RoleGrant
    assert get(client, f"/api/v1/units/{api.unit1}", api.agent_key).status_code == 200
    session.execute(RoleGrant.__table__.delete().where(RoleGrant.role == "agent"))
    session.commit()
    assert get(client, f"/api/v1/units/{api.unit1}", api.agent_key).status_code == 404
    assert get(client, "/api/v1/estates", api.agent_key).get_json()["data"] == []


def test_permission_matrix(client, api):
    for key_name, read, topup in [("all_key", 200, 201), ("estate1_key", 200, 201), ("read_key", 200, 403)]:
        key = getattr(api, key_name)
        assert get(client, "/api/v1/wallets", key).status_code == read
        response = client.post("/api/v1/topups", json={"unit_id": api.unit1, "amount": "10.00"},
                               headers={"X-API-Key": key, "Idempotency-Key": f"perm-{key_name}"})
        assert response.status_code == topup, (key_name, response.get_data(as_text=True))


def test_wallet_reads_show_balances_and_pages_follow_the_cursor(session, client, api):
    wallet = get(client, f"/api/v1/units/{api.unit1}/wallet", api.read_key).get_json()
    pockets = {p["utility"]: p for p in wallet["pockets"]}
    assert pockets["electricity"] == {"utility": "electricity", "balance": "40.00", "commodity": "ZAR"}
    for _ in range(3):
        factories.make_unit(session, session.get(factories.Estate, api.estate1))
    session.commit()
    seen, cursor = [], None
    while True:
        page = get(client, f"/api/v1/units?limit=2{'&cursor=' + cursor if cursor else ''}", api.read_key).get_json()
        seen += [u["id"] for u in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and seen == sorted(seen) and api.unit2 not in seen
    assert problem_of(get(client, "/api/v1/units?cursor=garbage!", api.read_key))["status"] == 400


# --- Top-ups ------------------------------------------------------------------------------

def _topup(client, key, idem, body):
    return client.post("/api/v1/topups", data=json.dumps(body), content_type="application/json",
                       headers={"X-API-Key": key, "Idempotency-Key": idem})


def test_a_topup_credits_once_and_a_replay_returns_the_same_body(session, client, api):
    body = {"unit_id": api.unit1, "amount": "25.50", "utility": "electricity", "reference": "USSD-1"}
    first = _topup(client, api.estate1_key, "order-1", body)
    assert first.status_code == 201, first.get_data(as_text=True)
    assert first.get_json()["balance"] == "65.50" and first.get_json()["status"] == "credited"
    again = _topup(client, api.estate1_key, "order-1", body)
    assert again.status_code == 201 and again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = _topup(client, api.estate1_key, "order-1", {**body, "amount": "99.00"})
    assert changed.status_code == 422 and "different request body" in problem_of(changed)["detail"]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Payment).where(Payment.provider == "api")) == 1
    assert session.scalar(select(func.count()).select_from(LedgerTransaction).where(
        LedgerTransaction.kind == "topup", LedgerTransaction.memo.like("API top-up%"))) == 1
    # Another key may use the same Idempotency-Key for its own top-up.
    assert _topup(client, api.all_key, "order-1", body).get_json()["balance"] == "91.00"


def test_eight_concurrent_requests_with_one_key_post_once(app, engine, api):
    body = {"unit_id": api.unit1, "amount": "5.00"}
    statuses = statuses_at_once(app, 8, lambda own: _topup(own, api.estate1_key, "same-key", body))
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    with Session(engine) as fresh:
        assert fresh.scalar(select(func.count()).select_from(Payment).where(Payment.provider == "api")) == 1


BAD_BODIES = [
    ({"unit_id": 1, "amount": 10}, 201, None),
    ({"unit_id": 1, "amount": "-5"}, 422, "amount"),
    ({"unit_id": 1, "amount": "10.001"}, 422, "amount"),
    ({"unit_id": 1, "amount": 1.5}, 422, "amount"),
    ({"unit_id": 1, "amount": "999999999"}, 422, "amount"),
    ({"unit_id": "1", "amount": "10"}, 422, "unit_id"),
    ({"amount": "10"}, 422, "unit_id"),
    ({"unit_id": 1, "amount": "10", "utility": "gas"}, 422, "utility"),
    ({"unit_id": 1, "amount": "10", "extra": 1}, 422, "extra"),
    ({"unit_id": 2 ** 40, "amount": "10"}, 404, None),
    ([1, 2], 422, "body"),
]


def test_bad_topup_bodies_say_which_field(client, api):
    for body, status, field in BAD_BODIES:
        if isinstance(body, dict) and body.get("unit_id") == 1:
            body = {**body, "unit_id": api.unit1}
        response = _topup(client, api.estate1_key, f"bad-{json.dumps(body)}", body)
        assert response.status_code == status, (body, response.get_data(as_text=True))
        if field:
            assert field in problem_of(response)["errors"], body


def test_topups_need_an_idempotency_key_and_json(client, api):
    no_key = client.post("/api/v1/topups", json={"unit_id": api.unit1, "amount": "1"},
                         headers={"X-API-Key": api.estate1_key})
    assert no_key.status_code == 400 and "Idempotency-Key" in problem_of(no_key)["detail"]
    not_json = client.post("/api/v1/topups", data=b"\xff{", headers={"X-API-Key": api.estate1_key,
                                                                    "Idempotency-Key": "nj"})
    assert not_json.status_code == 400 and problem_of(not_json)
    other_estate = _topup(client, api.estate1_key, "other", {"unit_id": api.unit2, "amount": "1"})
    assert other_estate.status_code == 404


# --- Rate limits --------------------------------------------------------------------------

def test_over_the_limit_is_429_with_retry_after_and_draft_headers(session, client, api):
    key = _issue(session, "tight", "read", rate_limit_per_hour=3)
    answers = [get(client, "/api/v1/estates", key) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    assert answers[0].headers["RateLimit-Policy"] == '"hourly";q=3;w=3600'
    assert answers[1].headers["RateLimit"].startswith('"hourly";r=1;t=')
    over = answers[3]
    assert 0 < int(over.headers["Retry-After"]) <= 3600 and problem_of(over)["status"] == 429
    assert over.headers["RateLimit"].startswith('"hourly";r=0;')
    assert get(client, "/api/v1/estates", api.read_key).status_code == 200  # per key


def test_rate_limits_count_on_redis(app, session, api):
    from tests.helpers import redis_test_url
    from redis import Redis

    url = redis_test_url(11)
    Redis.from_url(url).flushdb()
    app.config["API_RATELIMIT_STORAGE_URI"] = url
    app.extensions.pop("api_rate_limiter", None)
    try:
        key = _issue(session, "redis", "read", rate_limit_per_hour=2)
        one, two = app.test_client(), app.test_client()
        codes = [get(c, "/api/v1/estates", key).status_code for c in (one, two, one)]
        assert codes == [200, 200, 429]
        assert any(b"api" in k for k in Redis.from_url(url).keys())
    finally:
        app.config.pop("API_RATELIMIT_STORAGE_URI")
        app.extensions.pop("api_rate_limiter", None)


# --- CLI ----------------------------------------------------------------------------------

def test_cli_creates_scoped_keys_and_plain_names_still_make_readings_keys(session, cli_runner, client, api):
    code = session.get(factories.Estate, api.estate1).code
    made = cli_runner.invoke(args=["api-key", "create", "USSD", "--estate", code, "--permissions", "read,topups:write"])
    assert made.exit_code == 0, made.output
    key = made.output.strip().splitlines()[-1]
    assert key.startswith("mw_live_")
    assert get(client, f"/api/v1/estates/{api.estate2}", key).status_code == 404
    assert get(client, f"/api/v1/estates/{api.estate1}", key).status_code == 200
    plain = cli_runner.invoke(args=["api-key", "create", "gateway 7"])
    assert plain.exit_code == 0
    session.expire_all()
    assert session.scalar(select(ApiKey.permissions).where(ApiKey.name == "gateway 7")) == "readings:write"
    refused = cli_runner.invoke(args=["api-key", "create", "x", "--permissions", "root"])
    assert refused.exit_code != 0 and "Unknown permission" in refused.output
