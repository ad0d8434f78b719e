"""O4: the owner vacancy page: status now, change history, paging and scope."""
from app.estates.status import set_occupancy
from app.models import Unit
from tests.owner.conftest import at, period, set_history
from tests.helpers import table_with
from tests.web.test_pages import body


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
