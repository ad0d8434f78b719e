"""The integration API's later endpoints (issue 21 item 3): transactions, readings, bulk imports,
wallet groups with a group top-up, debt cohorts — each scoped (another estate's id is a 404 or an
empty page), permission-checked and paged by cursor."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.integration import keys
from app.models import Unit, utcnow
from app.models.cohorts import CohortMember, CohortSnapshot, DebtCohort
from app.models.families import WalletGrant, WalletGroup, WalletGroupMember
from app.models.payments import Payment
from tests import factories
from tests.helpers import statuses_at_once


@dataclass
class World:
    kit1: object
    kit2: object
    meter1: object
    meter2: object
    all_key: str      # every estate, every permission
    mine: str         # estate 1 only: read, topups:write, manage
    theirs: str       # estate 2 only: every permission
    reader: str       # estate 1 only: read
    gateway: str      # estate 1 only: readings:write (no read)


def _issue(session, name, permissions, estate=None) -> str:
    return keys.issue_key(session, name, permissions=permissions, estate=estate, rate_limit_per_hour=100_000).key


@pytest.fixture
def world(session) -> World:
    kit1 = factories.make_estate_with_wallet(session)
    kit2 = factories.make_estate_with_wallet(session)
    meter1 = factories.make_meter(session, kit1.unit)
    meter2 = factories.make_meter(session, kit2.unit)
    for amount in ("10.00", "20.00", "30.00"):
        factories.make_topup(session, kit1.pocket(), amount)
    factories.make_topup(session, kit2.pocket(), "99.00")
    session.commit()
    everything = ",".join(keys.API_PERMISSIONS)
    return World(kit1, kit2, meter1, meter2, _issue(session, "all", everything),
                 _issue(session, "mine", "read,topups:write,manage", kit1.estate),
                 _issue(session, "theirs", everything, kit2.estate),
                 _issue(session, "reader", "read", kit1.estate),
                 _issue(session, "gateway", "readings:write", kit1.estate))


def get(client, url, key):
    return client.get(url, headers={"X-API-Key": key})


def pages(client, url, key) -> list[list[dict]]:
    """Every page of a list, following next_cursor."""
    found, cursor = [], None
    while True:
        response = get(client, url + (f"&cursor={cursor}" if cursor else ""), key)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        found.append(body["data"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


# --- Transactions -------------------------------------------------------------------------

def test_transactions_are_scoped_filtered_and_paged(client, world):
    mine = pages(client, "/api/v1/transactions?limit=2", world.mine)
    assert [len(p) for p in mine] == [2, 1]
    rows = [t for page in mine for t in page]
    assert {t["estate_id"] for t in rows} == {world.kit1.estate.id}
    assert [t["id"] for t in rows] == sorted(t["id"] for t in rows)
    legs = rows[0]["postings"]
    assert sum(Decimal(p["amount"]) for p in legs) == 0
    pocket = next(p for p in legs if p["account_kind"] == "pocket")
    assert (pocket["unit_id"], pocket["utility"], pocket["amount"]) == (world.kit1.unit.id, "electricity", "10.00")
    # Another estate's unit filters to nothing; a staff key sees it.
    other = f"/api/v1/transactions?unit_id={world.kit2.unit.id}"
    assert get(client, other, world.mine).get_json()["data"] == []
    assert len(get(client, other, world.all_key).get_json()["data"]) == 1
    assert get(client, f"/api/v1/transactions?kind=consumption&estate_id={world.kit1.estate.id}",
               world.mine).get_json()["data"] == []
    future = (utcnow() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert len(get(client, f"/api/v1/transactions?to={future}&unit_id={world.kit1.unit.id}&utility=electricity",
                   world.reader).get_json()["data"]) == 3
    assert get(client, f"/api/v1/transactions?from={future}", world.reader).get_json()["data"] == []


def test_transactions_refuse_bad_filters_no_key_and_no_read_permission(client, world):
    assert get(client, "/api/v1/transactions?from=yesterday", world.mine).status_code == 400
    assert get(client, "/api/v1/transactions?period=2026-13", world.mine).status_code == 400
    assert get(client, "/api/v1/transactions?utility=water", world.mine).status_code == 400
    assert get(client, "/api/v1/transactions?cursor=bm9wZQ", world.mine).status_code == 400
    assert client.get("/api/v1/transactions").status_code == 401
    refused = get(client, "/api/v1/transactions", world.gateway)
    assert refused.status_code == 403 and refused.mimetype == "application/problem+json"


# --- Readings -----------------------------------------------------------------------------

def test_readings_are_listed_by_time_within_the_keys_scope(client, world):
    start = (utcnow() - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    readings = [{"meter": m.serial, "time": (start + timedelta(minutes=30 * i)).isoformat(), "energy": f"{100 + i} kWh"}
                for i in range(3) for m in (world.meter1, world.meter2)]
    posted = client.post("/api/v1/readings", json={"readings": readings}, headers={"X-API-Key": world.all_key})
    assert posted.get_json()["accepted"] == 6
    mine = pages(client, "/api/v1/readings?limit=2", world.reader)
    assert [len(p) for p in mine] == [2, 1]
    rows = [r for page in mine for r in page]
    assert {r["serial"] for r in rows} == {world.meter1.serial}
    assert [r["register"] for r in rows] == ["100.000000", "101.000000", "102.000000"]
    assert [r["taken_at"] for r in rows] == sorted(r["taken_at"] for r in rows)
    # Another estate's meter reads like an unknown one: nothing.
    assert get(client, f"/api/v1/readings?serial={world.meter2.serial}", world.reader).get_json()["data"] == []
    theirs = get(client, f"/api/v1/readings?serial={world.meter2.serial}&from={(start + timedelta(minutes=30)).isoformat().replace('+00:00', 'Z')}",
                 world.all_key).get_json()["data"]
    assert [r["register"] for r in theirs] == ["101.000000", "102.000000"]
    assert get(client, "/api/v1/readings", world.gateway).status_code == 403
    assert get(client, "/api/v1/readings?serial=%00", world.reader).status_code == 400


# --- Bulk imports -------------------------------------------------------------------------

UNITS_CSV = b"unit,floor_area_m2,status\nB1,50,vacant\nB2,abc,vacant\nB3,,\n"


def _stage(client, key, estate_id, data=UNITS_CSV, kind="units"):
    return client.post(f"/api/v1/imports/{kind}?estate_id={estate_id}&file_name=units.csv", data=data,
                       content_type="text/csv", headers={"X-API-Key": key})


def test_an_import_is_staged_previewed_then_committed_once(session, client, world):
    estate = world.kit1.estate.id
    staged = _stage(client, world.mine, estate)
    assert staged.status_code == 201, staged.get_data(as_text=True)
    preview = staged.get_json()
    assert (preview["status"], preview["to_create"], preview["rejected"]) == ("staged", 2, 1)
    assert [r["row"] for r in preview["refused_rows"]] == [3]
    assert session.scalar(select(func.count(Unit.id)).where(Unit.estate_id == estate, Unit.number.like("B%"))) == 0
    again = _stage(client, world.mine, estate).get_json()
    assert (again["id"], again["repeated"]) == (preview["id"], True)
    status = get(client, f"/api/v1/imports/units/{preview['id']}", world.mine).get_json()
    assert status["status"] == "staged"
    url = f"/api/v1/imports/units/{preview['id']}/commit"
    committed = client.post(url, headers={"X-API-Key": world.mine})
    assert committed.status_code == 200 and committed.get_json()["status"] == "committed"
    assert committed.get_json()["committed_at"] is not None
    assert client.post(url, headers={"X-API-Key": world.mine}).get_json() == committed.get_json()
    numbers = session.scalars(select(Unit.number).where(Unit.estate_id == estate, Unit.number.like("B%"))).all()
    assert sorted(numbers) == ["B1", "B3"]


def test_imports_are_scoped_and_need_manage(client, world):
    estate = world.kit1.estate.id
    assert _stage(client, world.theirs, estate).status_code == 404  # another estate's id
    assert _stage(client, world.reader, estate).status_code == 403
    assert _stage(client, world.mine, estate, kind="planets").status_code == 404
    missing = _stage(client, world.mine, estate, data=b"name\nx\n")
    assert missing.status_code == 422 and "unit" in missing.get_json()["errors"]["file"]
    staged = _stage(client, world.mine, estate).get_json()
    assert get(client, f"/api/v1/imports/units/{staged['id']}", world.theirs).status_code == 404
    assert get(client, f"/api/v1/imports/meters/{staged['id']}", world.mine).status_code == 404
    assert get(client, f"/api/v1/imports/un%00its/{staged['id']}", world.mine).status_code == 404  # fuzz: was a 500
    assert client.post(f"/api/v1/imports/units/{staged['id']}/commit",
                       headers={"X-API-Key": world.theirs}).status_code == 404
    wrong_type = client.post(f"/api/v1/imports/units?estate_id={estate}", json={"unit": "B9"},
                             headers={"X-API-Key": world.mine})
    assert wrong_type.status_code == 415


# --- Wallet groups ------------------------------------------------------------------------

@pytest.fixture
def group(session, world):
    """A family member's group of two flats of estate 1, both with electricity meters."""
    second = factories.make_unit(session, world.kit1.estate)
    factories.make_wallet(session, second)
    factories.make_meter(session, second)
    owner = factories.make_user(session)
    for unit in (world.kit1.unit, second):
        session.add(WalletGrant(unit_id=unit.id, user_id=owner.id, level="manage"))
    row = WalletGroup(name="The children's flats", owner_user_id=owner.id)
    row.members = [WalletGroupMember(unit_id=world.kit1.unit.id), WalletGroupMember(unit_id=second.id)]
    session.add(row)
    session.commit()
    return row, second


def test_wallet_groups_are_listed_with_balances_within_scope(client, world, group):
    row, second = group
    listed = get(client, "/api/v1/wallet-groups", world.reader).get_json()["data"]
    assert [(g["id"], g["member_count"]) for g in listed] == [(row.id, 2)]
    assert get(client, "/api/v1/wallet-groups", world.theirs).get_json()["data"] == []
    detail = get(client, f"/api/v1/wallet-groups/{row.id}", world.reader).get_json()
    balances = {m["unit_id"]: {p["utility"]: p["balance"] for p in m["pockets"]} for m in detail["members"]}
    assert balances[world.kit1.unit.id]["electricity"] == "60.00"
    assert balances[second.id]["electricity"] == "0.00"
    assert get(client, f"/api/v1/wallet-groups/{row.id}", world.theirs).status_code == 404
    assert get(client, f"/api/v1/wallet-groups/{row.id}", world.gateway).status_code == 403


def test_a_group_top_up_is_shared_credited_and_replayed_once(session, client, world, group):
    row, second = group
    url = f"/api/v1/wallet-groups/{row.id}/topups"
    headers = {"X-API-Key": world.mine, "Idempotency-Key": "shop-7-0001"}
    first = client.post(url, json={"amount": "100.01", "rule": "equal", "reference": "till 7"}, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    body = first.get_json()
    assert (body["status"], body["amount"], body["currency"]) == ("credited", "100.01", "ZAR")
    assert {leg["unit_id"]: (leg["amount"], leg["balance"]) for leg in body["legs"]} == {
        world.kit1.unit.id: ("50.01", "110.01"), second.id: ("50.00", "50.00")}
    replay = client.post(url, json={"amount": "100.01", "rule": "equal", "reference": "till 7"}, headers=headers)
    assert replay.get_json() == body and replay.headers["Idempotent-Replayed"] == "true"
    other = client.post(url, json={"amount": "10.00"}, headers=headers)
    assert other.status_code == 422
    assert session.scalar(select(func.count(Payment.id)).where(Payment.provider == "api")) == 1
    fixed = client.post(url, json={"rule": "fixed", "fixed": [{"unit_id": second.id, "amount": "25.00"}]},
                        headers={"X-API-Key": world.mine, "Idempotency-Key": "shop-7-0002"}).get_json()
    assert [(leg["unit_id"], leg["amount"]) for leg in fixed["legs"]] == [(second.id, "25.00")]


def test_eight_concurrent_group_top_ups_with_one_key_post_once(app, engine, world, group):
    url, key = f"/api/v1/wallet-groups/{group[0].id}/topups", world.mine  # read before the threads start
    statuses = statuses_at_once(app, 8, lambda own: own.post(
        url, json={"amount": "20.00"}, headers={"X-API-Key": key, "Idempotency-Key": "same"}))
    assert set(statuses) <= {201, 409} and 201 in statuses, statuses
    with Session(engine) as fresh:
        assert fresh.scalar(select(func.count()).select_from(Payment).where(Payment.provider == "api")) == 1


def test_a_group_top_up_is_scoped_needs_topups_write_and_refuses_what_cannot_be_shared(client, world, group):
    row, _ = group
    url = f"/api/v1/wallet-groups/{row.id}/topups"
    body = {"amount": "50.00"}
    assert client.post(url, json=body, headers={"X-API-Key": world.theirs, "Idempotency-Key": "a"}).status_code == 404
    assert client.post(url, json=body, headers={"X-API-Key": world.reader, "Idempotency-Key": "b"}).status_code == 403
    assert client.post(url, json=body, headers={"X-API-Key": world.mine}).status_code == 400  # no Idempotency-Key
    refused = client.post(url, json={"rule": "equal"}, headers={"X-API-Key": world.mine, "Idempotency-Key": "c"})
    assert refused.status_code == 422 and "amount" in refused.get_json()["errors"]
    stranger = client.post(url, json={"rule": "fixed", "fixed": [{"unit_id": world.kit2.unit.id, "amount": "5"}]},
                           headers={"X-API-Key": world.mine, "Idempotency-Key": "d"})
    assert stranger.status_code == 422 and "fixed[0].unit_id" in stranger.get_json()["errors"]


def _cap(session, group, unit, daily: str) -> None:
    grant = session.scalar(select(WalletGrant).where(WalletGrant.unit_id == unit.id,
                                                     WalletGrant.user_id == group[0].owner_user_id))
    grant.topup_daily_cap = Decimal(daily)
    session.commit()


def _api_payments(session) -> int:
    session.expire_all()
    return session.scalar(select(func.count(Payment.id)).where(Payment.provider == "api"))


def test_a_group_top_up_above_the_owners_cap_is_refused_and_replays_the_refusal(session, client, world, group):
    row, second = group
    _cap(session, group, second, "30.00")
    url, headers = f"/api/v1/wallet-groups/{row.id}/topups", {"X-API-Key": world.mine, "Idempotency-Key": "cap-1"}
    refused = client.post(url, json={"amount": "100.00"}, headers=headers)
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    body = refused.get_json()
    assert body["detail"].startswith("above the top-up cap") and list(body["errors"]) == [f"leg_{second.id}"]
    assert "30.00" in body["errors"][f"leg_{second.id}"]
    assert _api_payments(session) == 0
    replay = client.post(url, json={"amount": "100.00"}, headers=headers)
    assert (replay.status_code, replay.get_json()) == (422, body) and replay.headers["Idempotent-Replayed"] == "true"
    assert _api_payments(session) == 0


def test_a_group_top_up_within_the_cap_is_credited_once_and_counts_towards_it(session, client, world, group):
    row, second = group
    _cap(session, group, second, "30.00")
    url = f"/api/v1/wallet-groups/{row.id}/topups"
    for _ in range(2):  # the second is a replay
        done = client.post(url, json={"amount": "40.00"}, headers={"X-API-Key": world.mine, "Idempotency-Key": "w-1"})
        assert done.status_code == 201, done.get_data(as_text=True)
    assert {leg["unit_id"]: leg["amount"] for leg in done.get_json()["legs"]} == {
        world.kit1.unit.id: "20.00", second.id: "20.00"}
    assert _api_payments(session) == 1
    again = client.post(url, json={"amount": "40.00"}, headers={"X-API-Key": world.mine, "Idempotency-Key": "w-2"})
    assert again.status_code == 422 and f"leg_{second.id}" in again.get_json()["errors"]  # 20 + 20 > 30
    assert _api_payments(session) == 1


@pytest.fixture
def xof_group(session):
    """Three flats of an XOF estate (no minor unit) in one owner's group, and a key for the estate."""
    kit = factories.make_estate_with_wallet(session, currency="XOF")
    units = [kit.unit] + [factories.make_unit(session, kit.estate) for _ in range(2)]
    owner = factories.make_user(session)
    for unit in units:
        if unit is not kit.unit:
            factories.make_wallet(session, unit)
        factories.make_meter(session, unit)
        session.add(WalletGrant(unit_id=unit.id, user_id=owner.id, level="manage"))
    row = WalletGroup(name="Dakar flats", owner_user_id=owner.id)
    row.members = [WalletGroupMember(unit_id=unit.id) for unit in units]
    session.add(row)
    session.commit()
    return row, units, _issue(session, "xof", "read,topups:write", kit.estate)


def test_an_xof_group_top_up_splits_exactly_in_whole_francs(session, client, xof_group):
    row, units, key = xof_group
    url = f"/api/v1/wallet-groups/{row.id}/topups"
    done = client.post(url, json={"amount": "1000", "remainder_unit_id": units[1].id},
                       headers={"X-API-Key": key, "Idempotency-Key": "x-1"})
    assert done.status_code == 201, done.get_data(as_text=True)
    body = done.get_json()
    assert (body["amount"], body["currency"]) == ("1000", "XOF")
    assert [(leg["unit_id"], leg["amount"], leg["balance"]) for leg in body["legs"]] == [
        (units[0].id, "333", "333"), (units[1].id, "334", "334"), (units[2].id, "333", "333")]
    assert _api_payments(session) == 1


def test_an_xof_group_top_up_with_decimals_is_a_422_naming_the_field(session, client, xof_group):
    row, units, key = xof_group
    url = f"/api/v1/wallet-groups/{row.id}/topups"
    for number, (body, field) in enumerate([({"amount": "1000.5"}, "amount"),
                                            ({"rule": "fixed", "fixed": [{"unit_id": units[2].id, "amount": "10.25"}]},
                                             "fixed[0].amount")]):
        refused = client.post(url, json=body, headers={"X-API-Key": key, "Idempotency-Key": f"d-{number}"})
        assert refused.status_code == 422, refused.get_data(as_text=True)
        assert refused.get_json()["errors"] == {field: f"XOF amounts have no decimals ({body.get('amount') or '10.25'}"
                                                       " was sent)"}
    other = client.post(url, json={"amount": "1000", "currency": "ZAR"}, headers={"X-API-Key": key,
                                                                                  "Idempotency-Key": "d-9"})
    assert other.status_code == 422 and "pay in XOF" in other.get_json()["errors"]["currency"]
    assert _api_payments(session) == 0


# --- Debt cohorts -------------------------------------------------------------------------

def test_cohorts_and_their_members_with_monthly_snapshots(session, client, world):
    estate = world.kit1.estate
    cohort = DebtCohort(estate_id=estate.id, fiscal_year=2027, taken_on=date(2026, 3, 31), ranked_by="owed",
                        size=200, source="ledger")
    session.add(cohort)
    session.flush()
    units = [world.kit1.unit] + [factories.make_unit(session, estate) for _ in range(2)]
    for rank, unit in enumerate(units, start=1):
        session.add(CohortMember(cohort_id=cohort.id, fiscal_year=2027, estate_id=estate.id, unit_id=unit.id,
                                 rank=rank, owed=Decimal(300 - 100 * rank), usage=Decimal("12.5")))
        for month in (date(2026, 3, 1), date(2026, 4, 1)):
            session.add(CohortSnapshot(cohort_id=cohort.id, month=month, estate_id=estate.id, unit_id=unit.id,
                                       balance=Decimal(-50), debt=Decimal(50), consumption=Decimal(20),
                                       payments=Decimal(10)))
    session.commit()
    listed = get(client, f"/api/v1/cohorts?estate_id={estate.id}&fiscal_year=2027", world.reader).get_json()["data"]
    assert [(c["id"], c["members"], c["currency"]) for c in listed] == [(cohort.id, 3, "ZAR")]
    assert get(client, "/api/v1/cohorts?fiscal_year=2026", world.reader).get_json()["data"] == []
    assert get(client, "/api/v1/cohorts", world.theirs).get_json()["data"] == []
    members = pages(client, f"/api/v1/cohorts/{cohort.id}/members?limit=2", world.reader)
    assert [[m["rank"] for m in page] for page in members] == [[1, 2], [3]]
    first = members[0][0]
    assert (first["unit_id"], first["owed"], first["usage"]) == (world.kit1.unit.id, "200.00", "12.50")
    assert [(s["month"], s["debt"]) for s in first["snapshots"]] == [("2026-03", "50.00"), ("2026-04", "50.00")]
    assert get(client, f"/api/v1/cohorts/{cohort.id}/members", world.theirs).status_code == 404
    assert get(client, f"/api/v1/cohorts/{cohort.id}/members", world.gateway).status_code == 403
