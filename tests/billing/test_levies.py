"""Levies (B3): exact splits, which months a levy is charged in, the run, arrears and payments."""
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.billing.levies import (LevyError, LevyRunRefused, allocate, build_definition, charged_in,
                                owed_by_unit, record_levy_payment, run_levies, save_definition)
from app.ledger.accounts import owner_pocket
from app.models import LedgerTransaction, Person, UnitOwnership
from app.models.arrears import ArrearsRecord
from app.models.levies import LevyCharge, LevyDefinition
from tests.factories import make_estate, make_period, make_unit

MONTH = "2026-01"


def test_an_equal_split_of_r1000_over_three_units_is_stated_and_repeatable():
    shares = allocate(Decimal("1000.00"), [("A", 1), ("B", 1), ("C", 1)], "ZAR")
    assert shares == [("A", Decimal("333.34"), True), ("B", Decimal("333.33"), False),
                      ("C", Decimal("333.33"), False)]
    assert allocate(Decimal("1000.00"), [("A", 1), ("B", 1), ("C", 1)], "ZAR") == shares


@settings(max_examples=30, deadline=None)
@given(currency=st.sampled_from(["ZAR", "XOF"]),
       cents=st.integers(min_value=1, max_value=10**9),
       areas=st.lists(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5000"), places=2),
                      min_size=1, max_size=40))
def test_floor_area_shares_always_add_up_to_the_levy(currency, cents, areas):
    total = Decimal(cents) / (100 if currency == "ZAR" else 1)
    shares = allocate(total, list(enumerate(areas)), currency)
    assert sum(share for _, share, _ in shares) == total
    assert all(share >= 0 and share == share.quantize(Decimal(1) if currency == "XOF" else Decimal("0.01"))
               for _, share, _ in shares)
    assert sum(extra for *_, extra in shares) < len(areas)


def _definition(**fields):
    values = {"amount": Decimal("100"), "frequency": "monthly", "charge_month": None, "allocation": "equal",
              "effective_from": "2026-01", "effective_to": None}
    values.update(fields)
    return LevyDefinition(name="x", estate_id=0, **values)


def test_a_quarterly_levy_is_charged_only_in_its_months_and_an_ended_one_stops():
    quarterly = _definition(frequency="quarterly", charge_month=3)
    assert [m for m in range(1, 13) if charged_in(quarterly, f"2026-{m:02d}")] == [3, 6, 9, 12]
    annual = _definition(frequency="annual", charge_month=7)
    assert [m for m in range(1, 13) if charged_in(annual, f"2026-{m:02d}")] == [7]
    ending = _definition(effective_to="2026-06")
    assert [m for m in range(1, 13) if charged_in(ending, f"2026-{m:02d}")] == [1, 2, 3, 4, 5, 6]
    assert not charged_in(ending, "2025-12")


@pytest.fixture
def scheme(session):
    estate = make_estate(session, code="LEVY")
    units = [make_unit(session, estate, number=f"A{i}", floor_area_m2=area)
             for i, area in enumerate(["50", "75", "125"], start=1)]
    owners = []
    for unit in units:
        person = Person(full_name=f"Owner {unit.number}")
        session.add(person)
        session.flush()
        session.add(UnitOwnership(unit_id=unit.id, person_id=person.id, since=date(2020, 1, 1)))
        owners.append(person)
    session.flush()
    return estate, units, owners


def _save(session, estate, **form):
    values = {"name": "Admin levy", "amount": "1000.00", "frequency": "monthly", "allocation": "floor_area",
              "effective_from": "2025-11", "units": "all"}
    values.update(form)
    return save_definition(session, estate, values)


def test_the_form_lists_every_problem_and_saves_nothing(session, scheme):
    estate, units, _ = scheme
    with pytest.raises(LevyError) as refused:
        build_definition(session, estate, {"name": "", "amount": "12.345", "frequency": "weekly",
                                           "allocation": "equal", "effective_from": "2026-13"})
    assert set(refused.value.errors) == {"name", "amount", "frequency", "effective_from"}
    units[0].floor_area_m2 = None
    with pytest.raises(LevyError, match="A1"):
        build_definition(session, estate, {"name": "Area", "amount": "10", "frequency": "monthly",
                                           "allocation": "floor_area", "effective_from": "2026-01"})
    assert session.scalar(select(func.count(LevyDefinition.id))) == 0


def test_a_run_posts_each_share_once_and_a_rerun_posts_nothing(session, scheme):
    estate, units, _ = scheme
    _save(session, estate)
    _save(session, estate, name="Reserve fund", amount="300.00", frequency="quarterly", charge_month="1",
          allocation="equal")
    report = run_levies(session, estate, MONTH)
    assert (report.charged, report.total) == (6, Decimal("1300.00"))
    shares = dict(session.execute(select(LevyCharge.unit_id, func.sum(LevyCharge.amount))
                                  .group_by(LevyCharge.unit_id)).all())
    assert [shares[u.id] for u in units] == [Decimal("300.00"), Decimal("400.00"), Decimal("600.00")]
    assert [owner_pocket(session, u, "levy").balance for u in units] == [Decimal("-300.00"), Decimal("-400.00"),
                                                                          Decimal("-600.00")]
    count = session.scalar(select(func.count(LedgerTransaction.id)))
    again = run_levies(session, estate, MONTH)
    assert (again.charged, again.already) == (0, 6)
    assert session.scalar(select(func.count(LedgerTransaction.id))) == count
    assert run_levies(session, estate, "2026-02").by_definition == {"Admin levy": (3, Decimal("1000.00"))}


def test_invoices_unpaid_at_the_next_run_become_arrears_and_a_payment_clears_them(session, scheme):
    estate, units, owners = scheme
    _save(session, estate, allocation="equal", amount="90.00")
    run_levies(session, estate, "2025-12")
    owed = owed_by_unit(session, estate)
    assert [(r.invoiced, r.arrears) for r in owed] == [(Decimal("30.00"), Decimal("0.00"))] * 3
    record_levy_payment(session, units[0], "30.00", "EFT-1")  # unit A1 pays its invoice
    report = run_levies(session, estate, MONTH)
    assert report.arrears_opened == 2 and report.arrears_amount == Decimal("60.00")
    records = session.scalars(select(ArrearsRecord).order_by(ArrearsRecord.id)).all()
    assert [(r.person_id, r.outstanding) for r in records] == [(owners[1].id, Decimal("30.00")),
                                                              (owners[2].id, Decimal("30.00"))]
    assert run_levies(session, estate, MONTH).arrears_opened == 0  # re-run: nothing twice
    record_levy_payment(session, units[1], "60.00", "EFT-2")  # arrears first, then this month's invoice
    row = owed_by_unit(session, estate, [units[1].id])[0]
    assert (row.invoiced, row.arrears) == (Decimal("0.00"), Decimal("0.00"))
    session.refresh(records[0])
    assert records[0].status == "paid"
    with pytest.raises(LevyError, match="recorded already"):
        record_levy_payment(session, units[1], "60.00", "EFT-2")


def test_auto_deduct_takes_the_levy_from_the_prepaid_pocket_and_a_shortfall_is_arrears(session, scheme):
    estate, units, _ = scheme
    estate.features = {"levies_auto_deduct": True}
    _save(session, estate, allocation="equal", amount="90.00")
    record_levy_payment(session, units[0], "100.00", "PRE-1")
    record_levy_payment(session, units[1], "10.00", "PRE-2")
    report = run_levies(session, estate, MONTH)
    assert (report.arrears_opened, report.arrears_amount) == (2, Decimal("50.00"))
    assert [(r.prepaid, r.invoiced, r.arrears) for r in owed_by_unit(session, estate)] == [
        (Decimal("70.00"), Decimal("0.00"), Decimal("0.00")),
        (Decimal("0.00"), Decimal("0.00"), Decimal("20.00")),
        (Decimal("0.00"), Decimal("0.00"), Decimal("30.00"))]


def test_a_locked_month_is_refused_with_the_reason(session, scheme):
    estate, _, _ = scheme
    _save(session, estate)
    make_period(session, estate, MONTH, "locked")
    session.commit()
    with pytest.raises(LevyRunRefused, match="locked"):
        run_levies(session, estate, MONTH)
    with pytest.raises(LevyRunRefused, match="not begun"):
        run_levies(session, estate, "2099-01")
    assert session.scalar(select(func.count(LevyCharge.id))) == 0


def test_the_cli_runs_a_month_and_refuses_an_unknown_estate(session, scheme, cli_runner):
    estate, _, _ = scheme
    _save(session, estate)
    session.commit()
    result = cli_runner.invoke(args=["levies", "run", "--estate", "LEVY", "--month", MONTH])
    assert result.exit_code == 0 and "charged 3 unit levies" in result.output
    result = cli_runner.invoke(args=["levies", "run", "--estate", "LEVY", "--month", MONTH])
    assert "charged 0 unit levies" in result.output and "3 already charged" in result.output
    assert cli_runner.invoke(args=["levies", "run", "--estate", "NOPE", "--month", MONTH]).exit_code != 0


def test_statements_and_the_agm_report_show_levies_and_levy_arrears(session, scheme):
    from io import BytesIO

    from pypdf import PdfReader

    from app.statements.audit_report import build_audit_report, render_audit_report
    from app.statements.figures import statement_for
    from app.statements.pdf import render_statement

    estate, units, _ = scheme
    _save(session, estate, allocation="equal", amount="90.00")
    run_levies(session, estate, "2025-12")
    record_levy_payment(session, units[0], "30.00", "EFT-S1", paid_at=None)
    run_levies(session, estate, MONTH)
    data = statement_for(session, units[1], MONTH)
    levy = data.levy
    assert (levy.opening, levy.charged, levy.other, levy.closing, levy.arrears) == (
        Decimal("-30.00"), Decimal("-30.00"), Decimal("30.00"), Decimal("-30.00"), Decimal("30.00"))
    assert data.figures()["levy"]["arrears"] == "30.00"
    text = "".join(page.extract_text() for page in PdfReader(BytesIO(render_statement(data))).pages)
    assert "Levies (owner)" in text and "Admin levy 2026-01: unit A2" in text
    report = build_audit_report(session, estate, "2025-12", MONTH)
    assert [(m.period, m.billed, m.arrears) for m in report.levies] == [
        ("2025-12", Decimal("90.00"), Decimal("0.00")), (MONTH, Decimal("90.00"), Decimal("60.00"))]
    text = "".join(p.extract_text() for p in PdfReader(BytesIO(render_audit_report(session, report))).pages)
    assert "Levies" in text and "Levy arrears at month end" in text
