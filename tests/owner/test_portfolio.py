"""O1: the owner portfolio page: KPIs, estate selector and unit table."""
from sqlalchemy import select

from app.auth.scope import unit_ids_query
from app.models import Unit, User
from tests.helpers import table_with
from tests.web.test_pages import body


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
        assert client.get(f"{path}?estate=²").status_code == 400, path


def test_an_owner_of_the_other_estate_sees_only_it(landlord, login):
    client = login(landlord.other_owner)
    page = body(client.get("/owner/"))
    assert "Baobab Court" in page and "KSh 777.00" in page
    assert "Protea Park" not in page and "P1" not in page
    assert client.get(f"/owner/?estate={landlord.estate}").status_code == 404
    assert client.get(f"/owner/units/{landlord.units['P1']}").status_code == 404


def test_the_unit_table_is_paged_and_the_export_has_every_unit(landlord, login, committed):
    from app.analytics import portfolio

    with committed() as s:
        owner = s.scalar(select(User).where(User.email == landlord.owner))
        units, pages = portfolio.units_page(s, unit_ids_query(owner, ("owner",)), 2, per_page=2)
        assert [u.number for u in units] == ["P3"] and pages == 2
    client = login(landlord.owner)
    assert client.get("/owner/?page=0").status_code == 400
    assert client.get("/owner/?page=²").status_code == 400  # a digit to str.isdigit(), not to int()
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
