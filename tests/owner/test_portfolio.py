"""O1: the owner's portfolio KPIs, estate selector and unit table."""
from decimal import Decimal

from sqlalchemy import select

from app.auth.scope import unit_ids_query
from app.models import Unit, User
from app.reports.portfolio import portfolio_figures
from tests.helpers import table_with
from tests.web.test_pages import body


def test_kpis_equal_the_hand_computed_figures(app, landlord, committed):
    with committed() as s:
        owner = s.scalar(select(User).where(User.email == landlord.owner))
        figures = portfolio_figures(s, unit_ids_query(owner, ("owner",)))
    assert figures.units == 3
    assert figures.by_status == {"occupied": 1, "vacant": 1, "maintenance": 1}
    assert figures.vacancy_percent == Decimal("33.3")
    balances = {(q.utility, q.commodity): q.amount for q in figures.balances}
    # P1: 300 - 20 - 5.50 + 70 - 40 - 60 + 40 (reversal) = 284.50; P2: 80; P3: 0.
    assert balances[("electricity", "KES")] == Decimal("364.50")
    assert balances[("water", "KES")] == Decimal("50")
    assert {(q.utility, q.amount, q.commodity) for q in figures.consumption} == {
        ("electricity", Decimal("14.75"), "KWH"), ("water", Decimal("2"), "KL")}
    assert figures.solar_generated == Decimal("6")
    # This month: 20 + 5.50 charged, 40 of last month's charge reversed; 300 + 50 paid in.
    assert [(q.amount, q.commodity) for q in figures.billed] == [(Decimal("-14.50"), "KES")]
    assert [(q.amount, q.commodity) for q in figures.collected] == [(Decimal("350"), "KES")]


def test_portfolio_page_shows_the_kpis_and_only_the_owners_units(landlord, login):
    response = login(landlord.owner).get("/owner/")
    assert response.status_code == 200
    page = body(response)
    assert "<dt>Units</dt><dd>3</dd>" in page.replace(" ", "")
    assert "<dt>Vacancyrate</dt><dd>33.3%</dd>" in page.replace(" ", "")
    assert "KSh 364.50" in page and "14.750 kWh" in page and "KSh -14.50" in page and "KSh 350.00" in page
    units = table_with(response.get_data(as_text=True), "Tenant")
    assert [row[0] for row in units.texts()] == ["P1", "P2", "P3"]
    assert "P4" not in page and "Baobab Court" not in page


def test_estate_selector_narrows_and_refuses_other_owners_estates(landlord, login):
    client = login(landlord.owner)
    page = body(client.get(f"/owner/?estate={landlord.estate}"))
    assert "in Protea Park" in page and "<dt>Units</dt><dd>3</dd>" in page.replace(" ", "")
    for path in ("/owner/", "/owner/reconciliation", "/owner/usage", "/owner/vacancy", "/owner/units/export"):
        assert client.get(f"{path}?estate={landlord.other_estate}").status_code == 404, path
        assert client.get(f"{path}?estate=987654").status_code == 404, path
        assert client.get(f"{path}?estate=abc").status_code == 400, path


def test_an_owner_of_the_other_estate_sees_only_it(landlord, login):
    client = login(landlord.other_owner)
    page = body(client.get("/owner/"))
    assert "Baobab Court" in page and "KSh 777.00" in page
    assert "Protea Park" not in page and "P1" not in page
    assert client.get(f"/owner/?estate={landlord.estate}").status_code == 404
    assert client.get(f"/owner/units/{landlord.units['P1']}").status_code == 404


def test_the_unit_table_is_paged_and_the_export_has_every_unit(landlord, login, committed):
    from app.reports import portfolio

    with committed() as s:
        owner = s.scalar(select(User).where(User.email == landlord.owner))
        units, pages = portfolio.units_page(s, unit_ids_query(owner, ("owner",)), 2, per_page=2)
        assert [u.number for u in units] == ["P3"] and pages == 2
    client = login(landlord.owner)
    assert client.get("/owner/?page=0").status_code == 400
    csv = client.get("/owner/units/export?format=csv").get_data(as_text=True)
    assert all(n in csv for n in ("P1", "P2", "P3")) and "P4" not in csv
    csv = client.get(f"/owner/units/export?format=csv&estate={landlord.estate}").get_data(as_text=True)
    assert "P1" in csv and "P4" not in csv


def test_staff_see_every_unit_on_the_portfolio(landlord, login, committed):
    with committed() as s:
        from tests.helpers import make_login
        staff = make_login(s, "staff").email
        total = len(s.scalars(select(Unit.id)).all())
    page = body(login(staff).get("/owner/"))
    assert f"<dt>Units</dt><dd>{total}</dd>" in page.replace(" ", "")
