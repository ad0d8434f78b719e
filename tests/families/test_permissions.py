"""F2 permission matrix: each level × each action is allowed, 403 (wallet visible, level too low)
or 404 (wallet not visible); a revoked grant denies on the very next request."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditLog, Payment, User
from app.models.families import SpendLimit, WalletDistribution, WalletGrant, WalletGroup
from tests.helpers import csrf_from

ACTIONS = ("view balance", "view history", "top up", "distribute", "change limits", "grant", "revoke")
OK, NO, HIDDEN = "ok", 403, 404
MATRIX = {
    "view": (OK, OK, NO, NO, NO, NO, NO),
    "topup": (OK, NO, OK, OK, NO, NO, NO),  # paying a group top-up is paying: topup may distribute
    "manage": (OK, OK, OK, OK, OK, OK, OK),
    "staff": (OK, OK, OK, OK, OK, OK, OK),
    "stranger": (HIDDEN,) * 7,  # manages another wallet of the same estate
}


def attempt(client, family, action: str, target_grant: int):
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    headers = {"X-CSRFToken": token}
    unit = family.unit_a
    if action == "view balance":
        return client.get(f"/family/units/{unit}")
    if action == "view history":
        return client.get(f"/family/units/{unit}/history")
    if action == "top up":
        return client.post("/family/topup", data={"unit_id": unit, "utility": "electricity", "amount": "50"},
                           headers=headers)
    if action == "distribute":  # put the wallet in one's group, then pay a group top-up into it
        made = client.post("/family/groups", data={"name": "Kids", "unit_id": unit}, headers=headers)
        if made.status_code != 302:
            return made
        group_id = made.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
        return client.post(f"/family/groups/{group_id}/distribute", headers=headers, data={
            "currency": "ZAR", "utility": "electricity", "rule": "equal", "amount": "60"})
    if action == "change limits":
        return client.post(f"/family/units/{unit}/limits", data={"daily_electricity": "40"}, headers=headers)
    if action == "grant":
        return client.post(f"/family/units/{unit}/access", data={"email": "new.person@example.test",
                                                                 "level": "view"}, headers=headers)
    return client.post(f"/family/units/{unit}/access/{target_grant}/revoke", headers=headers)


def outcome(response) -> object:
    if response.status_code in (200, 302):
        return OK
    return response.status_code


@pytest.mark.parametrize("who", sorted(MATRIX))
def test_each_level_may_do_exactly_its_actions(app, family, login, committed, who):
    with committed() as s:
        target = User(email=f"target-{who}@example.test")
        s.add(target)
        s.flush()
        grant = WalletGrant(unit_id=family.unit_a, user_id=target.id, level="view", alert_channels=[])
        s.add(grant)
        s.flush()
        target_grant = grant.id
    client = login(family.emails[who])
    got = {action: outcome(attempt(client, family, action, target_grant)) for action in ACTIONS}
    assert got == dict(zip(ACTIONS, MATRIX[who], strict=True))
    with committed() as s:
        allowed = MATRIX[who]
        # Refused actions wrote nothing; allowed ones did, audited with the acting user.
        assert (s.scalar(select(Payment.id)) is not None) == (allowed[2] == OK)
        assert (s.scalar(select(WalletGroup.id)) is not None) == (allowed[3] == OK)
        assert (s.scalar(select(WalletDistribution.id)) is not None) == (allowed[3] == OK)
        assert (s.scalar(select(SpendLimit.id)) is not None) == (allowed[4] == OK)
        revoked = s.get(WalletGrant, target_grant).revoked_at is not None
        assert revoked == (allowed[6] == OK)
        if allowed[5] == OK:
            actor = s.scalar(select(User.id).where(User.email == family.emails[who]))
            actions = set(s.scalars(select(AuditLog.action).where(AuditLog.actor_user_id == actor)))
            assert {"wallet_grant.granted", "wallet_grant.revoked", "spend_limit.saved",
                    "wallet_group.created", "payment.checkout"} <= actions


def test_a_revoked_grant_denies_on_the_next_request(app, family, login, committed):
    viewer = login(family.emails["view"])
    assert viewer.get(f"/family/units/{family.unit_a}").status_code == 200
    manager = login(family.emails["manage"])
    token = csrf_from(manager.get("/notifications").get_data(as_text=True))
    response = manager.post(f"/family/units/{family.unit_a}/access/{family.grants['view']}/revoke",
                            headers={"X-CSRFToken": token})
    assert response.status_code == 302
    assert viewer.get(f"/family/units/{family.unit_a}").status_code == 404
    assert viewer.get("/family/").status_code == 404  # no wallet left: the family layer is gone too
    page = manager.get(f"/family/units/{family.unit_a}/access").get_data(as_text=True)
    assert "View Person no longer has access" in page
    assert f"/access/{family.grants['view']}/revoke" not in page and f"/access/{family.grants['topup']}/revoke" in page


def test_another_wallet_is_404_for_every_level(app, family, login):
    for who in ("view", "topup", "manage"):
        client = login(family.emails[who])
        for path in ("", "/history", "/access", "/limits"):
            assert client.get(f"/family/units/{family.unit_b}{path}").status_code == 404, (who, path)


def test_the_family_pages_say_what_each_person_may_do(app, family, login):
    page = login(family.emails["topup"]).get("/family/").get_data(as_text=True)
    assert "You may: see balances, top up" in page
    page = login(family.emails["view"]).get(f"/family/units/{family.unit_a}").get_data(as_text=True)
    assert "You may: see balances, see history" in page and "Top up</a>" not in page
    page = login(family.emails["manage"]).get(f"/family/units/{family.unit_a}/access").get_data(as_text=True)
    for name in ("View Person", "Topup Person", "Manage Person"):
        assert name in page
