"""Shared solar (Quantify 11.2) on hand-worked months: equal, floor-area and custom shares capped
at each unit's use, priced at the solar rate and posted as a credit against the grid charge; a
re-run posts nothing, a reversal lets the month run again; shares always add up exactly."""
from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.billing.levies import allocate
from app.billing.shared_solar import SolarError, plan_allocation, reverse_allocation, run_allocation, save_scheme, share_capped
from app.ledger.accounts import system_account
from app.models import Account, ConsumptionRollup, Estate, LedgerTransaction, Unit
from app.models.metering import TariffVersion
from app.models.utility import SolarAllocation
from app.reports.history import explain_transaction
from tests import factories
from tests.helpers import csrf_from, make_login

NOW = datetime(2026, 6, 10, 9, 0, tzinfo=UTC)
MAY = "2026-05"


def _month(s, meter, kwh, estate):
    start = datetime(2026, 5, 1, tzinfo=estate.tz).astimezone(UTC)
    s.add(ConsumptionRollup(meter_id=meter.id, grain="month", period_start=start, consumption=Decimal(kwh), readings=1))


@pytest.fixture
def site(committed):
    with committed() as s:
        estate = factories.make_estate(s, name="Sun Court", timezone="Africa/Johannesburg")
        for utility, rate in (("electricity", "2.50"), ("solar", "1.50")):
            s.add(TariffVersion(estate_id=estate.id, utility=utility, kind="flat", rates={"rate": rate},
                                effective_from=datetime(2026, 1, 1).date()))
        common = factories.make_unit(s, estate, number="COMMON")
        _month(s, factories.make_meter(s, common, utility="solar", role="solar"), 100, estate)
        units = {}
        for number, used, area in (("A", 50, "60"), ("B", 10, "30"), ("C", 80, "10"), ("D", 0, "20")):
            unit = factories.make_unit(s, estate, number=number, floor_area_m2=area)
            factories.make_wallet(s, unit)
            _month(s, factories.make_meter(s, unit), used, estate)
            units[number] = unit.id
        other = factories.make_estate(s)
        return {"estate": estate.id, "other": other.id, **units,
                "staff": make_login(s, "staff").email, "utility": make_login(s, "utility", estate=estate).email}


def _rows(report):
    return [(r.unit_number, r.kwh, r.solar_amount, r.grid_credit, r.net, r.status) for r in report.rows]


def test_equal_shares_are_capped_at_use_and_priced_at_the_solar_rate(committed, site):
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        report = run_allocation(s, estate, MAY, now=NOW)
    # 100 kWh over A, B, C (D used nothing): B is capped at its 10 kWh, A and C share the other 90.
    assert _rows(report) == [
        ("A", Decimal("45.000"), Decimal("67.50"), Decimal("112.50"), Decimal("45.00"), "posted"),
        ("B", Decimal("10.000"), Decimal("15.00"), Decimal("25.00"), Decimal("10.00"), "posted"),
        ("C", Decimal("45.000"), Decimal("67.50"), Decimal("112.50"), Decimal("45.00"), "posted"),
        ("D", Decimal("0.000"), Decimal("0"), Decimal("0"), Decimal("0"), "left out"),
    ]
    assert (report.generation, report.surplus, report.solar_value) == (Decimal("100.000"), Decimal("0.000"), Decimal("150.00"))
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        keys = sorted(s.scalars(select(LedgerTransaction.idempotency_key).where(LedgerTransaction.kind == "solar_allocation")))
        assert keys == [f"solar:{estate.id}:{MAY}:1:{site[n]}" for n in "ABC"]
        grid = system_account(s, estate, "revenue", "electricity", utility="electricity")
        solar = system_account(s, estate, "revenue", "solar", utility="solar")
        assert (grid.balance, solar.balance) == (Decimal("-250.00"), Decimal("150.00"))
        a_pocket = s.scalar(select(Account).where(Account.utility == "electricity", Account.wallet.has(unit_id=site["A"])))
        assert a_pocket.balance == Decimal("45.00")
        # The unit's explanation shows its share.
        tx = s.scalar(select(SolarAllocation.transaction_id).where(SolarAllocation.unit_id == site["A"]))
        note = explain_transaction(s, s.get(Unit, site["A"]), tx).note
        assert note.startswith("Shared solar 2026-05: 45.000 kWh of 100.000 kWh (an equal share; used 50.000 kWh) "
                               "at R 1.50/kWh = R 67.50, grid charge given back R 112.50.")
        assert "shared among 3 units" in note
    # A second run posts nothing; after a reversal the month runs again under run 2.
    with committed() as s:
        again = run_allocation(s, s.get(Estate, site["estate"]), MAY, now=NOW)
        assert {r.status for r in again.rows} == {"already"}
    with committed() as s:
        assert reverse_allocation(s, s.get(Estate, site["estate"]), MAY) == 3
    with committed() as s:
        assert run_allocation(s, s.get(Estate, site["estate"]), MAY, now=NOW).run == 2
        grid = system_account(s, s.get(Estate, site["estate"]), "revenue", "electricity", utility="electricity")
        assert grid.balance == Decimal("-250.00")  # run 1 reversed, run 2 posted


def test_floor_area_and_custom_tables(committed, site):
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        save_scheme(s, estate, {"method": "floor_area"})
        # Weights 60/30/10: A and B pass their use (50, 10) and are capped; C takes the other 40.
        report = plan_allocation(s, estate, MAY, now=NOW)
        assert [(r.unit_number, r.kwh) for r in report.rows if r.kwh] == [
            ("A", Decimal("50.000")), ("B", Decimal("10.000")), ("C", Decimal("40.000"))]
        with pytest.raises(SolarError) as refused:
            save_scheme(s, estate, {"method": "custom", "custom_weights": "A,1\nZZ,2\nB,-1\nC,x"})
        s.rollback()
        assert "no unit 'ZZ'" in refused.value.errors["custom_weights"]
        save_scheme(s, s.get(Estate, site["estate"]), {"method": "custom", "custom_weights": "unit,weight\nA,1\nC,3"})
        report = plan_allocation(s, s.get(Estate, site["estate"]), MAY, now=NOW)
        assert [(r.unit_number, r.kwh, r.reason) for r in report.rows] == [
            ("A", Decimal("25.000"), ""), ("B", Decimal("0"), "not in the custom table"),
            ("C", Decimal("75.000"), ""), ("D", Decimal("0"), "no electricity use this month")]


def test_months_that_cannot_be_allocated_are_refused(committed, site):
    with committed() as s:
        estate = s.get(Estate, site["estate"])
        with pytest.raises(SolarError):
            plan_allocation(s, estate, "2026-06", now=NOW)  # not ended
        with pytest.raises(SolarError):
            plan_allocation(s, estate, "May", now=NOW)
        assert plan_allocation(s, estate, "2026-04", now=NOW).problems  # no generation in April


def test_the_page_shows_the_report_and_only_staff_post(committed, site, login):
    client = login(site["utility"])
    url = f"/utility/estates/{site['estate']}/solar"
    page = client.get(url + f"?month={MAY}")
    assert page.status_code == 200 and b"Allocation for 2026-05" in page.data
    assert b"Post the allocation" not in page.data  # utility users see the report; staff post it
    csv = client.get(url + f"?month={MAY}&format=csv").get_data(as_text=True)
    assert "45.000" in csv and "Grid charge given back" in csv
    token = csrf_from(client.get(f"/utility/estates/{site['estate']}/losses").get_data(as_text=True))
    assert client.post(url + "/run", data={"csrf_token": token, "month": MAY}).status_code == 404
    assert client.get(f"/utility/estates/{site['other']}/solar").status_code == 404
    staff = login(site["staff"])
    page = staff.get(url)
    token = csrf_from(page.get_data(as_text=True))
    assert staff.post(url + "/scheme", data={"csrf_token": token, "method": "bogus"}).status_code == 400
    assert staff.get(url + "?month=1999-01").status_code == 400


def test_the_allocation_table_is_paged_with_totals_chart_and_csv_over_every_unit(site, login, monkeypatch):
    import json
    import re

    from app.layers.utility import solar as solar_page
    from tests.helpers import table_with

    monkeypatch.setattr(solar_page, "UNITS_PER_PAGE", 3)
    client = login(site["utility"])
    url = f"/utility/estates/{site['estate']}/solar?month={MAY}"
    first = client.get(url).get_data(as_text=True)
    assert [r[0] for r in table_with(first, "Solar share").texts()] == ["A", "B", "C"]
    assert "Units 1 to 3 of 4" in first and 'rel="next"' in first and "#alloc-heading" in first
    assert "100.0 kWh" in first  # shared: over every unit, not the page's
    chart = json.loads(re.search(r'id="chart-solar">(.*?)</script>', first, re.S).group(1))
    assert chart["labels"] == ["A", "B", "C"]  # D used nothing: never in the chart
    second = client.get(url + "&page=2").get_data(as_text=True)
    assert [r[0] for r in table_with(second, "Solar share").texts()] == ["D"] and "100.0 kWh" in second
    assert client.get(url + "&page=-1").status_code == 400
    csv = client.get(url + "&page=2&format=csv").get_data(as_text=True).splitlines()
    assert [line.split(",")[0] for line in csv[1:]] == ["A", "B", "C", "D"]


@settings(max_examples=60, deadline=None)
@given(total=st.decimals(min_value=0, max_value=100000, places=3),
       parts=st.lists(st.tuples(st.integers(min_value=0, max_value=1000), st.decimals(min_value=0, max_value=5000, places=3)),
                      min_size=1, max_size=12),
       rate=st.decimals(min_value="0.01", max_value=500, places=2), currency=st.sampled_from(["ZAR", "XOF", "KES"]))
def test_shares_add_up_exactly_and_never_pass_a_units_use(total, parts, rate, currency):
    weights = [(i, Decimal(w)) for i, (w, _) in enumerate(parts)]
    caps = {i: c for i, (_, c) in enumerate(parts)}
    shares, surplus = share_capped(total, weights, caps)
    assert sum(shares.values()) + surplus == total
    assert all(Decimal(0) <= shares[i] <= caps[i] for i in caps)
    assert surplus >= 0
    given_out = [(k, v) for k, v in shares.items() if v > 0]
    if given_out:
        from app.money import quantize
        value = quantize(sum(shares.values()) * rate, currency)
        assert sum(a for _, a, _ in allocate(value, given_out, currency)) == value


@settings(max_examples=25, deadline=None)
@given(method=st.sampled_from(["equal", "floor_area", "custom", "", "bogus"]),
       table=st.text(alphabet="ABCD,;.\t\n-0123456789xe", max_size=40))
def test_any_scheme_form_is_saved_or_refused_with_field_messages(app, method, table):
    from app.extensions import db
    with app.app_context():
        estate = factories.make_estate(db.session)
        for number in "ABC":
            factories.make_unit(db.session, estate, number=number)
        db.session.commit()
        try:
            scheme = save_scheme(db.session, estate, {"method": method, "custom_weights": table})
        except SolarError as error:
            db.session.rollback()
            assert set(error.errors) <= {"method", "custom_weights"} and all(error.errors.values())
        else:
            assert scheme.method == method
            if method == "custom":
                assert scheme.custom_weights and all(Decimal(w) > 0 for w in scheme.custom_weights.values())


@pytest.fixture
def staff_client(site, login):
    return login(site["staff"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=st.dictionaries(st.sampled_from(["month", "days", "utility", "table", "format", "page"]),
                             st.text(alphabet="0123456789-abcdefghpsvwx_", max_size=10), max_size=3))
def test_the_new_pages_answer_any_query_without_a_server_error(site, staff_client, query):
    client = staff_client
    for page in ("profiles", "carbon", "solar"):
        response = client.get(f"/utility/estates/{site['estate']}/{page}", query_string=query)
        assert response.status_code in (200, 400), (page, query, response.status_code)


def test_a_closed_month_is_refused_with_a_message_and_nothing_posted(committed, site):
    with committed() as s:
        factories.make_period(s, s.get(Estate, site["estate"]), MAY, status="closed")
    with committed() as s:
        with pytest.raises(SolarError) as refused:
            run_allocation(s, s.get(Estate, site["estate"]), MAY, now=NOW)
        assert "is closed" in refused.value.errors["period"]
    with committed() as s:
        assert s.scalar(select(SolarAllocation.id)) is None


def _solar_keys(s):
    return sorted(s.scalars(select(LedgerTransaction.idempotency_key)
                            .where(LedgerTransaction.kind == "solar_allocation")))


def test_the_command_allocates_a_month_once_and_prints_refusals(committed, site, cli_runner):
    with committed() as s:
        code, other = s.get(Estate, site["estate"]).code, s.get(Estate, site["other"]).code
    dry = cli_runner.invoke(args=["solar", "allocate", "--estate", code, "--month", MAY, "--dry-run"])
    assert dry.exit_code == 0 and "would post" in dry.output
    with committed() as s:
        assert _solar_keys(s) == []
    done = cli_runner.invoke(args=["solar", "allocate", "--estate", code, "--month", MAY])
    assert done.exit_code == 0, done.output
    assert "100.000 kWh of 100.000 kWh to 3 units, posted" in done.output and "D: no share" in done.output
    again = cli_runner.invoke(args=["solar", "allocate", "--estate", code, "--month", MAY])
    assert again.exit_code == 0 and "already allocated to 3 units; nothing posted" in again.output
    with committed() as s:
        assert len(_solar_keys(s)) == 3  # the re-run posted nothing
    future = cli_runner.invoke(args=["solar", "allocate", "--estate", code, "--month", "2099-01"])
    assert future.exit_code == 1 and "Only a month that has ended can be allocated" in future.output
    assert cli_runner.invoke(args=["solar", "allocate", "--estate", code, "--month", "13/2026"]).exit_code == 1
    nothing = cli_runner.invoke(args=["solar", "allocate", "--estate", other, "--month", MAY])
    assert nothing.exit_code == 1 and "nothing allocated" in nothing.output and "generated nothing" in nothing.output
    assert cli_runner.invoke(args=["solar", "allocate", "--estate", "NOPE", "--month", MAY]).exit_code != 0


def test_the_monthly_run_allocates_every_estate_with_a_scheme_once(committed, site):
    from app.billing.shared_solar import JOB_KIND, schedule_solar_allocations
    from app.job_schedule import schedule
    from app.jobs import REGISTRY
    from app.models import JobRun

    entry = next(e for e in schedule() if e.name == "solar_allocations")
    assert (entry.cron, entry.kind, entry.in_words) == ("15 0 2 * *", JOB_KIND, "Monthly on day 2 at 00:15 UTC")
    assert JOB_KIND in REGISTRY
    with committed() as s:
        assert schedule_solar_allocations(s, now=NOW) == []  # no estate has shared solar configured yet
        estate = s.get(Estate, site["estate"])
        save_scheme(s, estate, {"method": "equal"})
        code = estate.code
    with committed() as s:
        assert schedule_solar_allocations(s, now=NOW) == [f"{code}:{MAY}"]
        assert len(_solar_keys(s)) == 3
        run = s.scalar(select(JobRun).where(JobRun.kind == JOB_KIND))
        assert run.status == "done" and "posted" in run.result and run.target == f"{code}:{MAY}"
    with committed() as s:  # the cron firing again (or next hour) posts nothing new
        schedule_solar_allocations(s, now=NOW)
        assert len(_solar_keys(s)) == 3
        latest = s.scalars(select(JobRun).where(JobRun.kind == JOB_KIND).order_by(JobRun.id.desc())).first()
        assert "already allocated" in latest.result


def test_the_settlement_run_settles_solar_revenue_by_its_own_rules_and_electricity_net_of_the_credit(committed, site):
    """Settlement is per utility and revenue account: May's grid bills of 350.00 (A 125, B 25, C 200)
    less the 250.00 grid charge given back settle 100.00 by the electricity rules; the 150.00 solar
    charge in the solar revenue account settles by the solar rules, and both accounts end at zero."""
    from app.billing import settlement

    with committed() as s:
        estate = s.get(Estate, site["estate"])
        run_allocation(s, estate, MAY, now=NOW)
        grid = _bill_may(s, estate, site)
        supplier = settlement.add_party(s, estate, name="Grid supplier", role="utility")
        owner = settlement.add_party(s, estate, name="Solar owner", role="operator")
        settlement.save_rules(s, estate, "electricity", MAY, [settlement.RuleInput(supplier.id, "remainder")])
        settlement.save_rules(s, estate, "solar", MAY, [settlement.RuleInput(owner.id, "remainder")])
        report = settlement.run_settlement(s, estate, MAY, now=NOW)
        assert [(o.utility, o.status, o.revenue) for o in report.outcomes] == [
            ("electricity", "posted", Decimal("100.00")), ("solar", "posted", Decimal("150.00"))]
        s.expire_all()
        solar = system_account(s, estate, "revenue", "solar", utility="solar")
        assert (grid.balance, solar.balance) == (Decimal("0.00"), Decimal("0.00"))
        assert (s.get(Account, supplier.account_id).balance, s.get(Account, owner.account_id).balance) == (
            Decimal("100.00"), Decimal("150.00"))


def _bill_may(s, estate, site):
    """May's grid bills of 350.00 (A 125, B 25, C 200), each topped up first; the grid revenue account."""
    from datetime import timedelta

    from app.ledger import Entry, post

    start = datetime(2026, 5, 1, tzinfo=estate.tz)
    clearing = system_account(s, estate, "clearing", "payments")
    grid = system_account(s, estate, "revenue", "electricity", utility="electricity")
    for number, billed in (("A", "125.00"), ("B", "25.00"), ("C", "200.00")):
        pocket = s.scalar(select(Account).where(Account.utility == "electricity",
                                                Account.wallet.has(unit_id=site[number])))
        post(s, Entry(estate_id=estate.id, kind="topup", idempotency_key=f"test:topup:{number}",
                      legs=[(pocket.id, Decimal(billed)), (clearing.id, -Decimal(billed))], occurred_at=start))
        post(s, Entry(estate_id=estate.id, kind="consumption", idempotency_key=f"reading:test:{number}",
                      legs=[(pocket.id, -Decimal(billed)), (grid.id, Decimal(billed))],
                      occurred_at=start + timedelta(days=3)))
    s.commit()
    return grid


def test_settlement_allocates_the_months_solar_first_and_names_solar_revenue_without_rules(committed, site):
    """The settlement run does not wait on the job order: with a scheme saved and May not yet allocated,
    it allocates first, so electricity settles net (100.00, not 350.00); the solar charge with no Solar
    rules is reported as refused with its amount, not passed over."""
    from app.billing import settlement
    from app.models.utility import SolarScheme

    with committed() as s:
        estate = s.get(Estate, site["estate"])
        s.add(SolarScheme(estate_id=estate.id, method="equal"))
        _bill_may(s, estate, site)
        supplier = settlement.add_party(s, estate, name="Grid supplier", role="utility")
        settlement.save_rules(s, estate, "electricity", MAY, [settlement.RuleInput(supplier.id, "remainder")])
        report = settlement.run_settlement(s, estate, MAY, now=NOW)
        assert [(o.utility, o.status, o.revenue) for o in report.outcomes] == [
            ("electricity", "posted", Decimal("100.00")), ("solar", "refused", Decimal("150.00"))]
        assert "no settlement rules" in report.outcomes[1].message
        assert s.scalar(select(func.count()).select_from(SolarAllocation).where(
            SolarAllocation.estate_id == estate.id, SolarAllocation.status == "posted")) == 3
        again = settlement.run_settlement(s, estate, MAY, now=NOW)  # a rerun allocates and settles nothing more
        assert [o.status for o in again.outcomes] == ["already_posted", "refused"]


def test_the_statement_run_allocates_the_months_solar_before_it_issues(app, committed, site):
    """Statements go out on the 1st, the monthly solar run on the 2nd: with a scheme saved, the
    statement run allocates the month first, so each statement carries its solar credit."""
    from app.extensions import db
    from app.models import Statement
    from app.models.utility import SolarScheme
    from app.statements.runs import start_run

    with committed() as s:
        s.add(SolarScheme(estate_id=site["estate"], method="equal"))
    with app.app_context():
        start_run(db.session.get(Estate, site["estate"]), MAY)
        db.session.remove()
    with committed() as s:
        allocations = s.scalars(select(SolarAllocation).where(SolarAllocation.estate_id == site["estate"],
                                                              SolarAllocation.status == "posted")).all()
        assert sorted(a.unit_id for a in allocations) == sorted(site[n] for n in "ABC")
        statement = s.scalar(select(Statement).where(Statement.unit_id == site["A"], Statement.period == MAY))
        assert statement is not None
        credit = next(a for a in allocations if a.unit_id == site["A"])
        electricity = next(p for p in statement.figures["pockets"] if p["utility"] == "electricity")
        assert Decimal(electricity["adjustments"]) == credit.grid_credit - credit.solar_amount == Decimal("45.00")
