"""Move-in and move-out (A3): readings through ingest, pockets from zero, refund or debt, one transaction."""
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.estates import access, tenancies
from app.estates.tenancies import MoveError
from app.ledger.accounts import open_wallet, owner_pocket
from app.metering.ingest import ingest
from app.models import Account, ArrearsRecord, Notification, Person, Posting, Tenancy, User, utcnow
from app.models.metering import TariffVersion
from app.models.moves import Refund
from app.models.payments import Payment
from app.payments.credit import credit_payment
from tests import factories

RATE, STANDING = Decimal("2.00"), Decimal("10.00")


@pytest.fixture
def flat(session):
    """Estate A (flat R2/kWh, R10 standing) with a unit, its meter read at 100 kWh; an agent; estate B."""
    estate = factories.make_estate(session, country="ZA")
    other = factories.make_estate(session, country="ZA")
    unit = factories.make_unit(session, estate, occupancy_status="vacant")
    unit_b = factories.make_unit(session, other, occupancy_status="vacant")
    meter = factories.make_meter(session, unit, utility="electricity")
    session.add(TariffVersion(estate_id=estate.id, utility="electricity", effective_from=date(2020, 1, 1),
                              kind="flat", rates={"rate": str(RATE)}, standing_charge=STANDING))
    agent = factories.make_user(session, "agent", estate=estate)
    open_wallet(session, unit)
    session.commit()
    t0 = utcnow().replace(second=0, microsecond=0) - timedelta(hours=3)
    ingest(session, [tenancies.manual_message(meter, Decimal("100"), t0 - timedelta(hours=1))], now=t0)
    session.commit()
    return estate, unit, meter, agent, unit_b, t0


def pocket_of(session, unit):
    pocket = open_wallet(session, unit, ("electricity",)).pocket("electricity")
    session.refresh(pocket)
    return pocket


def top_up(session, unit, amount, ref):
    payment = Payment(provider="eft", provider_ref=ref, unit_id=unit.id, utility="electricity",
                      amount=Decimal(amount), status="to_confirm")
    session.add(payment)
    session.flush()
    credit_payment(session, payment)
    session.commit()


def today(estate, moment):
    return moment.astimezone(estate.tz).date()


NEW = {"full_name": "Thabo Mokoena", "email": "thabo@example.com", "phone": ""}


def standing_days(day_in, day_out):
    """The month's standing charge for days day_in..day_out of one month, as the moves split it."""
    import calendar

    days = calendar.monthrange(day_out.year, day_out.month)[1]
    part = lambda k: (STANDING * k / days).quantize(Decimal("0.01"))  # noqa: E731
    return part(day_out.day) - part(day_in.day - 1)


def test_move_in_then_out_reconciles_to_the_cent(session, flat):
    estate, unit, meter, agent, _ub, t0 = flat
    moved = tenancies.move_in(session, agent, unit, NEW, today(estate, t0), {"electricity": Decimal("105")}, now=t0)
    pocket = pocket_of(session, unit)
    # The vacant 5 kWh are the owner's; the month's standing charge is split by days: the new
    # tenant pays from the move-in day to the month's end.
    import calendar
    day_in = today(estate, t0)
    month_end = day_in.replace(day=calendar.monthrange(day_in.year, day_in.month)[1])
    assert pocket.balance == -standing_days(day_in, month_end)
    owner = owner_pocket(session, unit, "electricity")
    session.refresh(owner)
    assert owner.balance == -(5 * RATE + STANDING) + standing_days(day_in, month_end)
    session.refresh(unit)
    assert unit.occupancy_status == "occupied" and moved.invite_email == "thabo@example.com"
    assert session.scalar(select(func.count()).select_from(Notification).where(Notification.template == "invite")) == 1
    top_up(session, unit, "200.00", "T1")
    top_up(session, unit, "50.00", "T2")
    ingest(session, [tenancies.manual_message(meter, Decimal("130"), t0 + timedelta(minutes=30))],
           now=t0 + timedelta(hours=1))
    session.commit()
    tenancy = session.get(Tenancy, moved.tenancy_id)
    out_at = t0 + timedelta(hours=1)
    preview = tenancies.move_out(session, agent, tenancy, today(estate, out_at), {"electricity": Decimal("150")},
                                 dry_run=True, now=out_at)
    share = standing_days(day_in, today(estate, out_at))  # the standing charge of the days rented
    assert [(p.action, p.amount) for p in preview.pockets] == [("refund", Decimal("160.00") - share)]
    assert session.scalar(select(func.count()).select_from(Refund)) == 0  # the preview wrote nothing
    tenancy = session.get(Tenancy, moved.tenancy_id)
    assert tenancy.move_out is None
    done = tenancies.move_out(session, agent, tenancy, today(estate, out_at), {"electricity": Decimal("150")},
                              now=out_at)
    # refund = top-ups − consumption (45 kWh at R2) − standing charges (the days rented of the month's)
    assert done.refund_total == Decimal("250.00") - 45 * RATE - share == preview.refund_total
    [refund] = session.scalars(select(Refund)).all()
    assert (refund.amount, refund.status) == (Decimal("160.00") - share, "owed")
    session.refresh(owner)  # the owner bears the standing charge of the month's other days
    assert owner.balance == -(5 * RATE + STANDING) + share
    assert pocket_of(session, unit).balance == 0
    session.refresh(unit)
    login = session.scalar(select(User).where(User.email == "thabo@example.com"))
    assert unit.occupancy_status == "vacant" and not login.active and done.login_deactivated
    assert session.get(Tenancy, moved.tenancy_id).move_out == today(estate, out_at)
    assert session.scalar(select(Notification.subject).where(Notification.template == "move_out_statement"))
    tenancies.mark_refund_paid(session, agent, refund, "EFT 991")
    payable = session.scalar(select(Account).where(Account.code == "refunds_payable:move_out"))
    assert (refund.status, payable.balance) == ("paid", 0)


def test_debt_at_move_out_becomes_an_arrears_record(session, flat):
    estate, unit, meter, agent, _ub, t0 = flat
    moved = tenancies.move_in(session, agent, unit, NEW, today(estate, t0), {"electricity": Decimal("100")}, now=t0)
    top_up(session, unit, "20.00", "D1")
    out_at = t0 + timedelta(hours=1)
    done = tenancies.move_out(session, agent, session.get(Tenancy, moved.tenancy_id), today(estate, out_at),
                              {"electricity": Decimal("125")}, now=out_at)
    owed = Decimal("30.00") + standing_days(today(estate, t0), today(estate, out_at))
    assert [(p.action, p.amount) for p in done.pockets] == [("debt", owed)]
    [record] = session.scalars(select(ArrearsRecord)).all()
    assert (record.source, record.person_id, record.outstanding, record.utility) == (
        "move_out", moved.person_id, owed, "electricity")
    assert pocket_of(session, unit).balance == 0 and session.scalar(select(func.count()).select_from(Refund)) == 0


def test_a_register_below_the_last_reading_is_refused_and_writes_nothing(session, flat):
    estate, unit, _meter, agent, _ub, t0 = flat
    people_before = session.scalar(select(func.count()).select_from(Person))
    with pytest.raises(MoveError) as refused:
        tenancies.move_in(session, agent, unit, NEW, today(estate, t0), {"electricity": Decimal("90")}, now=t0)
    session.rollback()
    assert "went backwards from 100 to 90" in refused.value.errors["opening_electricity"]
    assert session.scalar(select(func.count()).select_from(Tenancy)) == 0
    assert session.scalar(select(func.count()).select_from(Person)) == people_before
    assert session.scalar(select(func.count()).select_from(Posting).join(Account).where(
        Account.kind == "owner_pocket")) == 0
    session.refresh(unit)
    assert unit.occupancy_status == "vacant"


def test_an_agent_of_estate_a_cannot_move_anyone_in_or_out_of_estate_b(session, flat):
    estate, unit, _m, agent, unit_b, t0 = flat
    with pytest.raises(access.AccessError):
        tenancies.move_in(session, agent, unit_b, NEW, today(estate, t0), {}, now=t0)
    session.rollback()
    person = factories.make_user(session, "tenant", unit=unit_b).person
    tenancy = Tenancy(unit_id=unit_b.id, person_id=person.id, move_in=date.today() - timedelta(days=3))
    session.add(tenancy)
    session.commit()
    with pytest.raises(access.AccessError):
        tenancies.move_out(session, agent, tenancy, date.today(), {})
    session.rollback()
    assert session.get(Tenancy, tenancy.id).move_out is None


def test_the_admin_add_tenant_path_marks_the_unit_occupied_and_ending_it_vacant(session, flat):
    _e, unit, _m, agent, _ub, _t0 = flat
    tenancy, _ = access.add_tenant(session, agent, unit, NEW, date.today())
    session.refresh(unit)
    assert unit.occupancy_status == "occupied"
    access.end_tenancy(session, agent, tenancy, date.today())
    session.refresh(unit)
    assert unit.occupancy_status == "vacant"


def test_a_phone_only_tenant_gets_an_sms_with_the_account_number(session, flat):
    estate, unit, _m, agent, _ub, t0 = flat
    moved = tenancies.move_in(session, agent, unit, {"full_name": "Palesa", "email": "", "phone": "082 123 4567"},
                              today(estate, t0), {}, now=t0)
    sms = session.scalar(select(Notification).where(Notification.template == "move_in_welcome"))
    assert moved.sms_to == "+27821234567" and sms.channel == "sms" and (unit.account_number or unit.number) in sms.body


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=30))
def test_any_typed_register_is_a_number_or_a_field_message(text):
    errors = {}
    value = tenancies.parse_register(text, "opening_water", errors)
    assert (value is None) or (value >= 0 and not errors)
    assert set(errors) <= {"opening_water"}


def test_the_move_out_email_carries_the_final_statement_pdf(session, flat, monkeypatch):
    from app.notify import email as email_module

    sent = []
    monkeypatch.setattr(email_module, "send_email", lambda message: sent.append(message) or "logged")
    estate, unit, meter, agent, _ub, t0 = flat
    moved = tenancies.move_in(session, agent, unit, NEW, today(estate, t0), {"electricity": Decimal("100")}, now=t0)
    top_up(session, unit, "80.00", "S1")
    out_at = t0 + timedelta(hours=1)
    tenancies.move_out(session, agent, session.get(Tenancy, moved.tenancy_id), today(estate, out_at),
                       {"electricity": Decimal("110")}, now=out_at)
    [final] = [m for m in sent if "final statement" in m["Subject"]]
    [pdf] = list(final.iter_attachments())
    month = f"{today(estate, out_at):%Y-%m}"
    assert pdf.get_content_type() == "application/pdf" and pdf.get_filename().endswith(f"{month}-provisional.pdf")
    assert pdf.get_content().startswith(b"%PDF") and "attached as a PDF" in final.get_body(("plain",)).get_content()
