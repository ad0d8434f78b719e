"""Write-offs and the arrears pages (A4): staff write off with approval above the threshold; agents
and staff see debts by age, export them, set credit limits and agree plans from the browser."""
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.billing.arrears import open_arrears
from app.billing.write_offs import WriteOffError, decide_write_off, request_write_off
from app.ledger.accounts import system_account
from app.models import Account, LedgerTransaction, Person
from app.models.debt import PaymentPlan, PocketCreditLimit, WriteOff
from app.settings import put_setting
from tests.factories import make_estate_with_wallet, make_topup, make_user
from tests.helpers import csrf_from, sign_in


@pytest.fixture
def debt(session):
    """A unit with an R300 migrated arrears record and its electricity pocket at -R20."""
    kit = make_estate_with_wallet(session)
    person = Person(full_name="Nomsa Debtor")
    session.add(person)
    session.flush()
    record = open_arrears(session, estate=kit.estate, person=person, amount=Decimal("300"), reason="migrated",
                          source="migration", source_ref="m1", unit=kit.unit,
                          against=system_account(session, kit.estate, "opening_balance", "migration"),
                          occurred_at=datetime(2026, 1, 5, tzinfo=UTC))
    make_topup(session, kit.accounts.revenue["electricity"], "20", clearing=kit.pocket())
    put_setting(session, "write_off_approval_threshold", "100", kit.estate.id)
    staff = make_user(session, "staff")
    other = make_user(session, "staff")
    agent = make_user(session, "agent", estate=kit.estate)
    session.commit()
    return kit, record, staff, other, agent


def test_small_write_offs_post_at_once_large_ones_wait_for_a_second_staff_member(session, debt):
    kit, record, staff, other, _ = debt
    small = request_write_off(session, kit.estate, f"pocket:{kit.pocket().id}", "20", "meter fault period",
                              user_id=staff.id)
    assert small.status == "posted" and session.get(Account, kit.pocket().id).balance == 0
    large = request_write_off(session, kit.estate, f"record:{record.id}", "300", "tenant deceased, no estate",
                              user_id=staff.id)
    assert large.status == "pending" and record.outstanding == Decimal("300")
    with pytest.raises(WriteOffError, match="another staff member"):
        decide_write_off(session, large, True, user_id=staff.id)
    session.rollback()
    decide_write_off(session, session.get(WriteOff, large.id), True, user_id=other.id)
    session.expire_all()
    record = session.get(type(record), record.id)
    assert record.status == "written_off" and record.outstanding == 0
    bad_debt = session.scalar(select(Account).where(Account.kind == "bad_debt"))
    assert bad_debt.balance == Decimal("-320")
    assert session.scalar(select(func.count()).select_from(LedgerTransaction)
                          .where(LedgerTransaction.kind == "write_off")) == 2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["", "record:", "record:x", "pocket:99999", "levy:1", "record:1"]),
       amount=st.text(max_size=12), reason=st.text(max_size=8))
def test_bad_write_off_input_is_refused_per_field_and_writes_nothing(session, debt, target, amount, reason):
    kit, record, staff, *_ = debt
    target = target.replace("record:1", f"record:{record.id}")
    try:
        request_write_off(session, kit.estate, target, amount, reason, user_id=staff.id)
    except WriteOffError as error:
        assert set(error.errors) <= {"target", "amount", "reason"}
        session.rollback()
        assert session.scalar(select(func.count()).select_from(WriteOff)) == 0
    else:  # only a valid target, amount and reason get through
        assert target == f"record:{record.id}" and len(reason.strip()) >= 5
        session.rollback()


def _in_days(days: int) -> str:
    from datetime import date, timedelta

    return (date.today() + timedelta(days=days)).isoformat()


def _login(app, user):
    from app.extensions import limiter

    from flask import g

    limiter.reset()
    g.pop("csrf_token", None)  # the test's app context outlives requests: forget the last client's token
    client = app.test_client()
    answer = sign_in(client, user.email)
    import re
    assert answer.status_code == 302, re.sub(r"<[^>]+>", " ", answer.get_data(as_text=True).split("<main")[-1])[:600]
    return client


def test_the_arrears_page_lists_debts_by_age_and_exports_them(app, session, debt):
    kit, record, staff, other, agent = debt
    client = _login(app, agent)
    page = client.get(f"/admin/estates/{kit.estate.id}/arrears").get_data(as_text=True)
    assert "Arrears record · migration" in page and "R 300.00" in page.replace("\xa0", " ")
    csv = client.get(f"/admin/estates/{kit.estate.id}/arrears?format=csv&bucket=120").get_data(as_text=True)
    assert csv.lstrip("\ufeff").splitlines()[0].startswith("Unit,Who,Debt,Owed") and "migration" in csv and "Electricity" not in csv
    assert client.get(f"/admin/estates/{kit.estate.id}/arrears?format=pdf").data[:4] == b"%PDF"
    # agents cannot write off (staff only)
    token = csrf_from(client.get(f"/admin/units/{kit.unit.id}/debt").get_data(as_text=True))
    refused = client.post(f"/admin/units/{kit.unit.id}/write-off", headers={"X-CSRFToken": token},
                          data={"target": f"record:{record.id}", "amount": "10", "reason": "agent tries"})
    assert refused.status_code == 404


def test_limits_and_plans_are_set_from_the_unit_debt_page_with_messages_for_bad_input(app, session, debt):
    kit, record, staff, other, agent = debt
    client = _login(app, agent)
    url = f"/admin/units/{kit.unit.id}/debt"
    token = csrf_from(client.get(url).get_data(as_text=True))
    field = f"limit_{kit.pocket().id}"
    bad = client.post(f"/admin/units/{kit.unit.id}/credit-limits", data={field: "-5"}, headers={"X-CSRFToken": token})
    assert bad.status_code == 400 and "cannot be negative" in bad.get_data(as_text=True)
    good = client.post(f"/admin/units/{kit.unit.id}/credit-limits", data={field: "75.50"},
                       headers={"X-CSRFToken": token})
    assert good.status_code == 302
    assert session.scalar(select(PocketCreditLimit.amount)) == Decimal("75.50")
    bad_plan = client.post(f"/admin/units/{kit.unit.id}/payment-plan", headers={"X-CSRFToken": token},
                           data={"instalment": "abc", "frequency": "monthly", "starts_on": "2026-13-01"})
    assert bad_plan.status_code == 400 and "is not an amount" in bad_plan.get_data(as_text=True)
    plan = client.post(f"/admin/units/{kit.unit.id}/payment-plan", headers={"X-CSRFToken": token},
                       data={"instalment": "150", "frequency": "monthly", "starts_on": _in_days(5)})
    assert plan.status_code == 302
    assert session.scalar(select(PaymentPlan.instalment).where(PaymentPlan.status == "active")) == Decimal("150")
    assert "0 instalments due so far" in client.get(url).get_data(as_text=True)  # starts in 5 days: kept
    staff_client = _login(app, staff)
    token = csrf_from(staff_client.get(url).get_data(as_text=True))
    asked = staff_client.post(f"/admin/units/{kit.unit.id}/write-off", headers={"X-CSRFToken": token},
                              data={"target": f"record:{record.id}", "amount": "250", "reason": "settled in court"})
    assert asked.status_code == 302
    pending = staff_client.get(f"/admin/estates/{kit.estate.id}/arrears").get_data(as_text=True)
    assert "waiting for approval" in pending and "another staff member approves" in pending


def test_the_tenant_dashboard_says_what_is_owed_and_since_when(app, session, debt):
    kit, record, *_ = debt
    from app.models import Tenancy
    from datetime import date

    tenant = make_user(session, "tenant", unit=kit.unit)
    session.add(Tenancy(unit_id=kit.unit.id, person_id=tenant.person_id, move_in=date(2020, 1, 1)))
    session.commit()
    page = _login(app, tenant).get("/tenant/").get_data(as_text=True).replace("\xa0", " ")
    assert f"Unit {kit.unit.number} owes" in page and "R 320.00" in page and "since 5 Jan 2026" in page
