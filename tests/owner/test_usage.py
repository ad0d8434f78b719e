"""O3: the owner usage page: top consumers, per-unit table, charts, export and bad input."""
from tests.owner.conftest import period
from tests.helpers import table_with
from tests.web.test_pages import body


def test_usage_page_tables_and_scope(landlord, login):
    client = login(landlord.owner)
    response = client.get(f"/owner/usage?utility=electricity&month={period(0)}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    top = table_with(html, "#")
    assert [row[1] for row in top.texts()] == ["P1", "P2"]
    assert "28.9 %" in body(response) and "6.000 kWh" in html
    assert 'data-chart="chart-daily"' in html and 'data-chart="chart-solar"' in html
    per_unit = table_with(html, "Previous month")
    assert [row[0] for row in per_unit.texts()] == ["P1", "P2", "P3"]
    text = body(response)  # CSRF tokens blanked: a random token may contain "P4"
    assert "P4" not in text and "1\u202f000" not in text and "500.000" not in text
    csv = client.get(f"/owner/usage?utility=electricity&month={period(0)}&format=csv").get_data(as_text=True)
    assert "P1,Protea Park,occupied,10.5" in csv and "P4" not in csv
    for bad in ("utility=gas", "month=2026-13", "month=march"):
        assert client.get(f"/owner/usage?{bad}").status_code == 400, bad
