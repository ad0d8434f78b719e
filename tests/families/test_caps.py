"""F3 top-up caps: a started checkout reserves its amount; concurrent checkouts never pass a cap;
the refusal says how much is left."""
from __future__ import annotations

import threading
from decimal import Decimal

from sqlalchemy import func, select

from app.extensions import db
from app.families.limits import CapReached, start_family_checkout
from app.models import Unit, User
from app.models.families import WalletGrant
from app.models.payments import Payment
from app.payments import payfast
from tests.helpers import csrf_from


def set_caps(committed, grant_id: int, daily: str | None, monthly: str | None = None) -> None:
    with committed() as s:
        grant = s.get(WalletGrant, grant_id)
        grant.topup_daily_cap = Decimal(daily) if daily else None
        grant.topup_monthly_cap = Decimal(monthly) if monthly else None


def checkout(app, email: str, unit_id: int, amount: str) -> str:
    with app.app_context():
        try:
            user = db.session.scalar(select(User).where(User.email == email))
            start_family_checkout(db.session, payfast.PayfastSettings.from_config(app.config),
                                  unit=db.session.get(Unit, unit_id), utility="electricity", amount=amount,
                                  user=user, return_url="http://x/r", cancel_url="http://x/c",
                                  notify_url="http://x/n")
            return "started"
        except CapReached as error:
            db.session.rollback()
            return error.errors["amount"]
        finally:
            db.session.remove()


def test_eight_concurrent_checkouts_never_pass_the_cap(app, family, committed):
    set_caps(committed, family.grants["topup"], "500")
    barrier = threading.Barrier(8)
    answers: list[str] = []

    def run():
        barrier.wait()
        answers.append(checkout(app, family.emails["topup"], family.unit_a, "150"))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count("started") == 3  # 3 x 150 = 450; a fourth would make 600
    refused = [a for a in answers if a != "started"]
    assert len(refused) == 5 and all("R 50.00 more today" in a for a in refused)
    with committed() as s:
        total = s.scalar(select(func.sum(Payment.amount)).where(Payment.status == "pending"))
    assert total == Decimal("450")


def test_expired_and_cancelled_checkouts_stop_reserving(app, family, committed):
    set_caps(committed, family.grants["topup"], None, "300")
    assert checkout(app, family.emails["topup"], family.unit_a, "300") == "started"
    assert "reached your top-up limit" in checkout(app, family.emails["topup"], family.unit_a, "10")
    with committed() as s:
        payment = s.scalar(select(Payment))
        payment.status = "cancelled"
    assert checkout(app, family.emails["topup"], family.unit_a, "300") == "started"
    with committed() as s:  # an unpaid checkout older than the expiry stops counting
        payment = s.scalar(select(Payment).where(Payment.status == "pending"))
        payment.created_at = payment.created_at - __import__("datetime").timedelta(hours=3)
    assert checkout(app, family.emails["topup"], family.unit_a, "300") == "started"


def test_a_person_is_refused_above_the_cap_in_the_browser_with_what_is_left(app, family, login, committed):
    set_caps(committed, family.grants["topup"], "200", "1000")
    client = login(family.emails["topup"])
    form = client.get(f"/family/topup?unit_id={family.unit_a}").get_data(as_text=True)
    assert "you can add R 200.00 more today and R 1 000.00 more this month" in form.replace("\u202f", " ").replace("\xa0", " ")
    token = csrf_from(form)
    ok = client.post("/family/topup", data={"unit_id": family.unit_a, "utility": "electricity", "amount": "120",
                                            "csrf_token": token})
    assert ok.status_code == 200 and "Pay R 120.00 now" in ok.get_data(as_text=True)
    refused = client.post("/family/topup", data={"unit_id": family.unit_a, "utility": "electricity",
                                                 "amount": "100", "csrf_token": token})
    assert refused.status_code == 400
    assert "you can add R 80.00 more today" in refused.get_data(as_text=True)
    with committed() as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == 1
