"""O4: status now, change history, vacancy rate per local month with mid-month changes."""
from datetime import UTC, datetime
from decimal import Decimal

from app.auth.scope import unit_ids_query
from app.estates.status import set_occupancy
from app.models import Unit
from app.reports.vacancy import vacancy_by_month
from tests import factories
from tests.owner.conftest import NAIROBI, at, period, set_history
from tests.helpers import make_login, table_with
from tests.web.test_pages import body


def nairobi(*parts) -> datetime:
    return datetime(*parts, tzinfo=NAIROBI).astimezone(UTC)


def test_vacancy_rate_counts_unit_time_in_local_months(committed):
    """Nairobi is UTC+3: a change at 02:00 local on the 1st is 23:00 UTC the day before."""
    with committed() as s:
        estate = factories.make_estate(s, timezone="Africa/Nairobi", currency="KES")
        owner = make_login(s, "owner", estate=estate)
        moved = factories.make_unit(s, estate, occupancy_status="occupied")
        moved.created_at = nairobi(2025, 1, 1)
        set_history(s, moved.id, [(nairobi(2026, 8, 1), "occupied"), (nairobi(2026, 10, 1, 2), "vacant"),
                                  (nairobi(2026, 10, 16, 2), "occupied")])
        empty = factories.make_unit(s, estate, occupancy_status="vacant")
        empty.created_at = nairobi(2025, 1, 1)
        set_history(s, empty.id, [(nairobi(2026, 7, 1), "vacant")])
        steady = factories.make_unit(s, estate, occupancy_status="occupied")  # never changed
        steady.created_at = nairobi(2025, 1, 1)
        late = factories.make_unit(s, estate, occupancy_status="maintenance")  # status unknown before its change
        late.created_at = nairobi(2025, 1, 1)
        set_history(s, late.id, [(nairobi(2026, 10, 21), "maintenance")])
        s.flush()
        months = {m.period: m for m in vacancy_by_month(s, unit_ids_query(owner, ("owner",)), "2026-11", 4,
                                                        now=nairobi(2026, 11, 11))}
    september, october, november = months["2026-09"], months["2026-10"], months["2026-11"]
    # September: moved and steady occupied, empty vacant; late unknown. Nothing of October's
    # change leaks into September (it would be an hour if months were UTC).
    assert september.unit_days == Decimal("90.0")
    assert september.percent("vacant") == Decimal("33.3")
    # October: moved vacant 15 of 31 days, empty 31 vacant, steady 31 occupied, late 11 days maintenance.
    assert october.unit_days == Decimal("104.0")
    assert october.vacancy_percent == Decimal("44.2")  # (15 + 31) / 104
    assert october.percent("maintenance") == Decimal("10.6")  # 11 / 104
    # November counts up to now (10 days per unit).
    assert november.unit_days == Decimal("40.0") and november.vacancy_percent == Decimal("25.0")
    assert months["2026-08"].vacancy_percent == Decimal("33.3")  # August: 31 vacant of 93


def test_vacancy_page_status_history_and_scope(landlord, login, committed):
    with committed() as s:
        unit = s.get(Unit, landlord.units["P2"])
        unit.created_at = at(-3, 1)
        set_history(s, unit.id, [(at(-2, 1, 0), "occupied")])
        set_occupancy(s, unit, "occupied")
        set_occupancy(s, unit, "vacant")
        neighbour = s.get(Unit, landlord.units["P4"])
        set_occupancy(s, neighbour, "vacant")
    client = login(landlord.owner)
    response = client.get("/owner/vacancy")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    statuses = table_with(html, "Since")
    assert [row[0] for row in statuses.texts()] == ["P1", "P2", "P3"]
    history = table_with(html, "New status")
    assert [row[1:] for row in history.texts()] == [["P2", "Protea Park", "Vacant"], ["P2", "Protea Park", "Occupied"],
                                                     ["P2", "Protea Park", "Occupied"]]
    rate = table_with(html, "Days")
    assert [row[0] for row in rate.texts()][-1] == period(0) and len(rate.rows) == 12
    assert "P4" not in body(response)
    csv = client.get("/owner/vacancy?format=csv").get_data(as_text=True)
    assert period(-1) in csv and "Vacant %" in csv
    assert client.get("/owner/vacancy?page=0").status_code == 400


def test_history_is_paged(landlord, login, committed):
    with committed() as s:
        unit = s.get(Unit, landlord.units["P1"])
        for i in range(30):
            set_occupancy(s, unit, "vacant" if i % 2 == 0 else "occupied")
            s.flush()
    client = login(landlord.owner)
    first = table_with(client.get("/owner/vacancy").get_data(as_text=True), "New status")
    second = table_with(client.get("/owner/vacancy?page=2").get_data(as_text=True), "New status")
    assert len(first.rows) == 25 and len(second.rows) == 5
    assert "Page 2 of 2" in client.get("/owner/vacancy?page=2").get_data(as_text=True)
    assert len(table_with(client.get("/owner/vacancy?page=9").get_data(as_text=True), "New status").rows) == 5
