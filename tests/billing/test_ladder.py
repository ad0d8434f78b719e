"""The escalation ladder (A4): each step once per episode, paused by a kept plan, undone when cleared."""
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.billing.ladder import agree_plan, instalments_due, run_ladder, update_task
from app.models import AuditLog, Notification, Person, Tenancy
from app.models.debt import ArrearsEpisode, ArrearsTask, PaymentPlan
from app.models.metering import RelayHold, TariffVersion
from app.models.payments import Payment
from app.payments.credit import credit_payment
from app.settings import put_setting
from tests.factories import make_estate_with_wallet, make_meter, make_topup, make_user, unique

DAY0 = date(2026, 3, 1)


def moment(estate, day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=estate.tz).astimezone(UTC)


def indebted_unit(session):
    """A credit-controlled unit whose electricity pocket went to -R40 on DAY0, with a tenant login."""
    kit = make_estate_with_wallet(session, features={"credit_control": True})
    session.add(TariffVersion(estate_id=kit.estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": "2.00"}))
    meter = make_meter(session, kit.unit)
    meter.relay_state = "off"  # cut at zero by credit control already
    tenant = make_user(session, "tenant", unit=kit.unit)
    session.add(Tenancy(unit_id=kit.unit.id, person_id=tenant.person_id, move_in=date(2020, 1, 1)))
    make_topup(session, kit.accounts.revenue["electricity"], "40", clearing=kit.pocket(),
               occurred_at=moment(kit.estate, DAY0, 9))
    session.commit()
    return kit, meter, tenant


def run(session, kit, day: date, hour: int = 12):
    report = run_ladder(session, kit.estate, today=day, now=moment(kit.estate, day, hour))
    session.commit()
    return report.applied


def test_each_step_fires_once_per_episode_twice_a_day_or_after_missed_days(session):
    kit, meter, tenant = indebted_unit(session)
    number = kit.unit.number
    assert run(session, kit, DAY0, 6) == [(number, "0:warn")]
    assert run(session, kit, DAY0, 18) == []  # the same day again: nothing twice
    assert run(session, kit, DAY0 + timedelta(days=29)) == []
    assert run(session, kit, DAY0 + timedelta(days=30)) == [(number, "30:restrict")]
    # the job missed days 31-64: on day 65 it catches up with the suspension, once
    assert run(session, kit, DAY0 + timedelta(days=65)) == [(number, "60:suspend")]
    assert run(session, kit, DAY0 + timedelta(days=65), 20) == []
    assert run(session, kit, DAY0 + timedelta(days=91)) == [(number, "90:escalate")]
    assert run(session, kit, DAY0 + timedelta(days=92)) == []
    [hold] = session.scalars(select(RelayHold).where(RelayHold.meter_id == meter.id)).all()
    assert hold.kind == "arrears" and hold.released_at is None
    [task] = session.scalars(select(ArrearsTask)).all()
    assert number in task.title and task.status == "open"
    notices = session.scalars(select(Notification.subject).where(
        Notification.user_id == tenant.id, Notification.channel == "in_app").order_by(Notification.id)).all()
    assert len(notices) == 3 and "suspended" in notices[2]  # warn, restrict, suspend; escalation is the agent's
    steps = session.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == "arrears.step"))
    assert steps == 4
    update_task(session, task, "take", user_id=tenant.id)
    update_task(session, task, "close", user_id=tenant.id, note="plan agreed")
    assert task.status == "closed" and task.close_note == "plan agreed"


def test_a_topup_that_leaves_debt_keeps_the_hold_and_clearing_restores_supply(session):
    kit, meter, _ = indebted_unit(session)
    put_setting(session, "arrears_ladder", ["0:suspend"], kit.estate.id)
    session.commit()
    run(session, kit, DAY0)
    assert meter.relay_state == "off"
    part = Payment(provider="eft", provider_ref=unique("EFT"), unit_id=kit.unit.id, utility="electricity",
                   amount=Decimal("30"), status="pending", paid_at=datetime.now(UTC))
    session.add(part)
    credit_payment(session, part)
    session.commit()
    assert meter.relay_state == "off"  # still R10 owed: the hold stays
    rest = Payment(provider="eft", provider_ref=unique("EFT"), unit_id=kit.unit.id, utility="electricity",
                   amount=Decimal("50"), status="pending", paid_at=datetime.now(UTC))
    session.add(rest)
    credit_payment(session, rest)
    session.commit()
    assert meter.relay_state == "on"  # cleared at once: the episode ends, the hold is released
    episode = session.scalar(select(ArrearsEpisode))
    assert episode.closed_at is not None
    # in debt again later: a new episode, and the ladder starts again from its first step
    make_topup(session, kit.accounts.revenue["electricity"], "60", clearing=kit.pocket(),
               occurred_at=moment(kit.estate, DAY0 + timedelta(days=40)))
    session.commit()
    assert run(session, kit, DAY0 + timedelta(days=41)) == [(kit.unit.number, "0:suspend")]
    assert session.scalar(select(func.count()).select_from(ArrearsEpisode)) == 2


def test_a_kept_plan_pauses_the_ladder_and_a_missed_instalment_resumes_it(session):
    kit, meter, tenant = indebted_unit(session)
    run(session, kit, DAY0)
    agree_plan(session, kit.unit, {"instalment": "10", "frequency": "weekly",
                                   "starts_on": (DAY0 + timedelta(days=20)).isoformat()})
    plan = session.scalar(select(PaymentPlan))
    assert instalments_due(plan, DAY0 + timedelta(days=20)) == 0
    assert instalments_due(plan, DAY0 + timedelta(days=21)) == 1
    assert instalments_due(plan, DAY0 + timedelta(days=28)) == 2
    assert run(session, kit, DAY0 + timedelta(days=30)) == [(kit.unit.number, "30:restrict")]  # one due, unpaid
    make_topup(session, kit.accounts.revenue["electricity"], "100", clearing=kit.pocket(),
               occurred_at=moment(kit.estate, DAY0 + timedelta(days=31)))  # R140 owed
    paid = Payment(provider="eft", provider_ref=unique("EFT"), unit_id=kit.unit.id, utility="electricity",
                   amount=Decimal("60"), status="pending", paid_at=datetime.now(UTC))
    session.add(paid)
    credit_payment(session, paid)
    paid.credited_at = moment(kit.estate, DAY0 + timedelta(days=33))
    session.commit()  # R80 still owed
    # six weekly instalments fell due before day 61 and R60 was paid: paused (the episode goes on)
    assert run(session, kit, DAY0 + timedelta(days=61)) == []
    # two more fell due by day 70 and nothing came: the ladder resumes where the days have got to
    assert run(session, kit, DAY0 + timedelta(days=70)) == [(kit.unit.number, "60:suspend")]


def test_plan_form_refuses_bad_values(session):
    import pytest

    from app.billing.ladder import LadderError

    kit = make_estate_with_wallet(session, currency="XOF")
    with pytest.raises(LadderError) as refused:
        agree_plan(session, kit.unit, {"instalment": "10.5", "frequency": "daily", "starts_on": "soon"})
    assert set(refused.value.errors) == {"instalment", "frequency", "starts_on"}
    assert session.scalar(select(func.count()).select_from(PaymentPlan)) == 0


def test_a_run_reads_whom_to_tell_once_for_all_its_debtors(session):
    from sqlalchemy import event

    from tests.factories import make_unit, make_wallet

    kit, _, tenant = indebted_unit(session)
    others = []
    for n in range(3):
        unit = make_unit(session, kit.estate)
        wallet = make_wallet(session, unit)
        person = Person(full_name=f"Debtor {n}", email=unique("debtor") + "@example.org")
        session.add(person)
        session.flush()
        session.add(Tenancy(unit_id=unit.id, person_id=person.id, move_in=date(2020, 1, 1)))
        make_topup(session, kit.accounts.revenue["electricity"], "10", clearing=wallet.pocket("electricity"),
                   occurred_at=moment(kit.estate, DAY0, 10))
        others.append(person)
    session.commit()
    statements = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(type(session.get_bind()), "before_cursor_execute", seen)
    try:
        applied = run(session, kit, DAY0 + timedelta(days=31))
    finally:
        event.remove(type(session.get_bind()), "before_cursor_execute", seen)
    assert len(applied) == 8  # warn and restrict for each of the four units
    # the aging's tenant names and whom to tell: two reads for the run, not one or two per unit
    assert len([s for s in statements if "FROM tenancies" in s]) == 2
    told = session.scalars(select(Notification.person_id).where(Notification.template == "arrears_notice")).all()
    assert {p.id for p in others} | {tenant.person_id} == set(told)
