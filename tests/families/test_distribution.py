"""F1 one top-up distributed over a group: the arithmetic (hypothesis, ZAR/LSL/XOF), the preview's
left-out members, the caps checked when the checkout starts (also under concurrency), and the ITN
that credits one balanced transaction per estate, all tied to the one payment."""
from __future__ import annotations

import threading
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.families import FamilyError
from app.families.distribution import plan_legs, start_distribution_checkout
from app.families.groups import SplitError
from app.models import Account, AuditLog, LedgerTransaction, Posting, User, Wallet
from app.models.families import WalletDistribution, WalletDistributionLeg, WalletGrant, WalletGroup, WalletGroupMember
from app.models.payments import Payment
from app.money import minor_units
from app.payments import payfast
from tests import factories
from tests.helpers import csrf_from, make_login
from tests.payments.conftest import payfast_gateway  # noqa: F401

CURRENCIES = ("ZAR", "LSL", "XOF")


# --- the arithmetic -----------------------------------------------------------------------

def money(currency: str, low: int, high: int):
    return st.integers(low, high).map(lambda n: Decimal(n).scaleb(-minor_units(currency)))


@st.composite
def distribution_case(draw):
    currency = draw(st.sampled_from(CURRENCIES))
    n = draw(st.integers(1, 9))
    rule = draw(st.sampled_from(("equal", "fixed", "target")))
    balances = draw(st.lists(money(currency, -50_000, 200_000), min_size=n, max_size=n))
    fixed = draw(st.lists(money(currency, 0, 100_000), min_size=n, max_size=n))
    target = draw(money(currency, 0, 300_000))
    amount = draw(st.none() | money(currency, 1, 2_000_000))
    return currency, rule, balances, fixed, target, amount, draw(st.integers(0, n - 1))


@settings(max_examples=60, deadline=None)
@given(distribution_case())
def test_legs_add_up_to_the_payment_none_negative_and_a_target_is_never_passed(case):
    currency, rule, balances, fixed, target, amount, remainder_to = case
    step = Decimal(1).scaleb(-minor_units(currency))
    if rule == "equal" and amount is None:
        amount = step * 7
    try:
        legs = plan_legs(rule, currency, amount=amount, balances=balances, fixed=fixed, target=target,
                         remainder_to=remainder_to)
    except SplitError as error:  # refused with a message next to a field, never a wrong split
        assert set(error.errors) <= {"amount", "target", "fixed", "members"}
        if rule == "fixed" and amount is None:
            assert sum(fixed) == 0
        return
    assert len(legs) == len(balances)
    assert all(leg >= 0 and leg == leg.quantize(step) for leg in legs)
    if rule == "fixed":
        assert legs == [f.quantize(step) for f in fixed]
    elif amount is not None:
        assert sum(legs) == amount  # exactly the payment, in minor units
    if rule == "target":
        for balance, leg in zip(balances, legs, strict=True):
            assert leg == 0 or balance + leg <= target  # never past the target
        if amount is None:  # no amount: exactly what is missing
            assert sum(legs) == sum(max(target - b, 0) for b in balances)
    if rule == "equal":
        others = [leg for i, leg in enumerate(legs) if i != remainder_to]
        assert all(legs[remainder_to] - leg < step * len(legs) for leg in others)


def test_the_stated_member_gets_the_remainder_cent_and_xof_has_no_cents():
    assert plan_legs("equal", "ZAR", amount=Decimal("100.01"), balances=[0, 0, 0], remainder_to=2) == [
        Decimal("33.33"), Decimal("33.33"), Decimal("33.35")]
    assert plan_legs("equal", "XOF", amount=Decimal("1000"), balances=[0, 0, 0], remainder_to=0) == [
        Decimal("334"), Decimal("333"), Decimal("333")]
    with pytest.raises(SplitError):
        plan_legs("equal", "XOF", amount=Decimal("10.5"), balances=[0, 0])


def test_the_target_rule_refuses_an_amount_that_would_overshoot():
    assert plan_legs("target", "ZAR", amount=None, balances=[Decimal("40"), Decimal("250")],
                     target=Decimal("200")) == [Decimal("160.00"), Decimal("0.00")]
    with pytest.raises(SplitError, match="R 160.00"):
        plan_legs("target", "ZAR", amount=Decimal("161"), balances=[Decimal("40"), Decimal("250")],
                  target=Decimal("200"))
    legs = plan_legs("target", "ZAR", amount=Decimal("100.01"), balances=[Decimal("0"), Decimal("100")],
                     target=Decimal("200"), remainder_to=1)
    assert sum(legs) == Decimal("100.01") and legs[1] <= Decimal("100")


# --- the world: a parent with three wallets in two ZAR estates and one in LSL ---------------

@pytest.fixture
def parent(committed):
    with committed() as s:
        north = factories.make_estate_with_wallet(s, name="North Flats")
        south = factories.make_estate_with_wallet(s, name="South Flats")
        lesotho = factories.make_estate_with_wallet(s, name="Maseru Rooms", currency="LSL", country="LS")
        second = factories.make_unit(s, north.estate)
        factories.make_wallet(s, second)
        units = [north.unit, second, south.unit, lesotho.unit]
        for unit in units[:3]:
            factories.make_meter(s, unit)
        user = make_login(s, full_name="Parent Person", phone=None)
        grants = {}
        for unit in units:
            grant = WalletGrant(unit_id=unit.id, user_id=user.id, level="topup", alert_channels=["in_app"])
            s.add(grant)
            s.flush()
            grants[unit.id] = grant.id
        group = WalletGroup(name="The kids", owner_user_id=user.id)
        group.members = [WalletGroupMember(unit_id=u.id, label="") for u in units]
        s.add(group)
        s.flush()
        return {"email": user.email, "group": group.id, "units": [u.id for u in units], "grants": grants,
                "estates": [north.estate.id, south.estate.id]}


def set_cap(committed, grant_id: int, daily: str | None) -> None:
    with committed() as s:
        s.get(WalletGrant, grant_id).topup_daily_cap = Decimal(daily) if daily else None


def start(app, parent, form: dict) -> tuple[str, dict | None]:
    with app.app_context():
        try:
            user = db.session.scalar(select(User).where(User.email == parent["email"]))
            group = db.session.get(WalletGroup, parent["group"])
            _, fields, _shown = start_distribution_checkout(
                db.session, payfast.PayfastSettings.from_config(app.config), group, user, form,
                return_url="http://x/r", cancel_url="http://x/c", notify_url="http://x/n")
            return "started", fields
        except FamilyError as error:
            db.session.rollback()
            return " ".join(error.errors.values()), None
        finally:
            db.session.remove()


def test_the_preview_says_who_is_left_out_and_why(app, parent, login):
    client = login(parent["email"])
    page = client.get(f"/family/groups/{parent['group']}/distribute?amount=300.01&rule=equal"
                      f"&remainder_unit_id={parent['units'][1]}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Maseru Rooms" in text and "its estate uses LSL; this top-up is in ZAR" in text
    assert text.count("R 100.00") >= 2 and "R 100.01" in text and "R 300.01" in text
    # Another person's group is not found.
    other = login(factories_user(app))
    assert other.get(f"/family/groups/{parent['group']}/distribute").status_code == 404
    token = csrf_from(other.get("/notifications").get_data(as_text=True))
    for path in ("/distribute/preview", "/distribute"):
        assert other.post(f"/family/groups/{parent['group']}{path}", data={"amount": "10"},
                          headers={"X-CSRFToken": token}).status_code == 404


def factories_user(app) -> str:
    with app.app_context():
        user = make_login(db.session, full_name="Someone Else")
        db.session.commit()
        email = user.email
        db.session.remove()
    return email


def test_a_leg_above_the_cap_is_refused_with_what_is_left(app, parent, committed):
    set_cap(committed, parent["grants"][parent["units"][2]], "120")
    answer, _ = start(app, parent, {"rule": "equal", "amount": "450"})
    assert "above your top-up limit" in answer and "R 120.00 more today" in answer
    with committed() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 0


def test_eight_concurrent_distributions_never_pass_a_cap(app, parent, committed):
    set_cap(committed, parent["grants"][parent["units"][0]], "500")
    barrier = threading.Barrier(8)
    answers: list[str] = []

    def run():
        barrier.wait()
        answers.append(start(app, parent, {"rule": "equal", "amount": "450"})[0])  # 150 to each wallet

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count("started") == 3  # 3 x 150 = 450 on the capped wallet; a fourth makes 600
    assert all("R 50.00 more today" in a for a in answers if a != "started")
    with committed() as s:
        reserved = s.scalar(select(func.sum(WalletDistributionLeg.amount)).where(
            WalletDistributionLeg.unit_id == parent["units"][0]))
        assert reserved == Decimal("450")


def post_itn(client, fields):
    return client.post("/webhooks/payfast/itn", data=urlencode(fields), content_type="application/x-www-form-urlencoded")


def test_the_itn_posts_one_balanced_transaction_per_estate_tied_to_the_payment(
        app, parent, login, payfast_gateway, client, committed):  # noqa: F811
    web = login(parent["email"])
    token = csrf_from(web.get(f"/family/groups/{parent['group']}/distribute").get_data(as_text=True))
    response = web.post(f"/family/groups/{parent['group']}/distribute", data={
        "csrf_token": token, "currency": "ZAR", "utility": "electricity", "rule": "fixed",
        f"fixed_{parent['units'][0]}": "100", f"fixed_{parent['units'][1]}": "50.50",
        f"fixed_{parent['units'][2]}": "25"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page
    assert "R 175.50" in page and "payfast-checkout" in page
    fields = dict(__import__("re").findall(r'name="([^"]+)" value="([^"]*)"', page))
    itn = payfast_gateway.state.make_itn(fields)
    for _ in range(2):  # a replayed ITN credits nothing twice
        assert post_itn(client, itn).status_code == 200
    with committed() as s:
        payment = s.scalar(select(Payment))
        assert payment.status == "credited" and payment.amount == Decimal("175.50")
        legs = s.scalars(select(WalletDistributionLeg).order_by(WalletDistributionLeg.unit_id)).all()
        transactions = {leg.transaction_id for leg in legs}
        assert len(transactions) == 2 and payment.transaction_id in transactions  # two estates, two chains
        for txn_id in transactions:
            txn = s.get(LedgerTransaction, txn_id)
            assert txn.idempotency_key.startswith(f"payfast:{payment.provider_ref}:estate:")
            assert s.scalar(select(func.sum(Posting.amount)).where(Posting.transaction_id == txn_id)) == 0
        assert s.scalar(select(func.count()).select_from(LedgerTransaction).where(
            LedgerTransaction.idempotency_key.like("payfast:%"))) == 2
        pockets = {leg.unit_id: s.scalar(select(Account.balance).join(Wallet, Wallet.id == Account.wallet_id).where(
            Account.utility == "electricity", Wallet.unit_id == leg.unit_id)) for leg in legs}
        assert pockets == dict(zip(parent["units"][:3], (Decimal("100"), Decimal("50.50"), Decimal("25")),
                                   strict=True))
        assert s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "payment.credited")) == 1
        assert s.scalar(select(WalletDistribution.rule)) == "fixed"
    listing = web.get("/family/payments").get_data(as_text=True)
    assert "The kids" in listing and "R 175.50" in listing
    group_page = web.get(f"/family/groups/{parent['group']}").get_data(as_text=True)
    assert "Group top-ups" in group_page and "Received" in group_page


    # Staff correct it: a share cannot be reassigned (the payment's whole amount would be credited
    # again); each estate's share is reversed on its own, and the payment is reversed with the last.
    from app.payments.corrections import BadTarget, request_reversal
    with committed() as s:
        staff_id = factories.make_user(s, "staff").id
        payment_id, first_id = s.scalar(select(Payment.id)), s.scalar(select(Payment.transaction_id))
        first, other = sorted(transactions, key=lambda t: t != first_id)
    with app.app_context():
        with pytest.raises(BadTarget, match="group top-up"):
            request_reversal(db.session, other, "wrong flat", user_id=staff_id, target_unit_id=parent["units"][3])
        db.session.rollback()
        request_reversal(db.session, other, "paid twice", user_id=staff_id)
        assert db.session.get(Payment, payment_id).status == "credited"
        request_reversal(db.session, first, "paid twice", user_id=staff_id)
        assert db.session.get(Payment, payment_id).status == "reversed"
        db.session.remove()


_CLIENTS: dict = {}


@settings(max_examples=25, deadline=None, suppress_health_check=list(__import__("hypothesis").HealthCheck))
@given(form=st.fixed_dictionaries({}, optional={
    "currency": st.sampled_from(["ZAR", "LSL", "XOF", "", "zar", "\x00"]),
    "utility": st.sampled_from(["electricity", "water", "gas", ""]),
    "rule": st.sampled_from(["equal", "fixed", "target", "other", ""]),
    "amount": st.one_of(st.text(max_size=12), st.decimals(-1000, 10**9, places=3).map(str)),
    "target": st.one_of(st.text(max_size=12), st.decimals(-1000, 10**7, places=2).map(str)),
    "remainder_unit_id": st.one_of(st.text(max_size=6), st.integers(-5, 10**12).map(str)),
    "fixed_1": st.text(max_size=10), "fixed_2": st.decimals(0, 10**6, places=2).map(str)}))
def test_fuzzed_distribution_forms_are_refused_or_previewed_never_a_500(app, parent, login, form):
    if parent["email"] not in _CLIENTS:  # one login for all examples (the login rate limit)
        _CLIENTS.clear()
        _CLIENTS[parent["email"]] = login(parent["email"])
    client = _CLIENTS[parent["email"]]
    token = csrf_from(client.get(f"/family/groups/{parent['group']}/distribute").get_data(as_text=True))
    for path in ("/distribute/preview", "/distribute"):
        response = client.post(f"/family/groups/{parent['group']}{path}", data=form, headers={"X-CSRFToken": token})
        assert response.status_code in (200, 400), (path, form, response.status_code)
