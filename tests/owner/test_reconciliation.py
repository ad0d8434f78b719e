"""O2: the owner reconciliation page: highlighted shortfalls, totals, export and bad input."""
from tests.owner.conftest import period
from tests.helpers import tables_of
from tests.web.test_pages import body


def test_the_page_highlights_shortfalls_and_totals(landlord, login):
    response = login(landlord.owner).get("/owner/reconciliation?months=3")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    electricity = tables_of(html)[0]  # utilities in the usual order: electricity first
    rows = {row[0].text.split()[0]: row for row in electricity.rows}
    shortfall = rows[period(-1)][3]
    assert shortfall.text == "KSh -30.00" and "negative" in shortfall.classes
    assert "positive" in rows[period(-2)][3].classes
    assert rows["Total"][1].text == "KSh 85.50" and rows["Total"][3].text == "KSh 364.50"
    assert html.count('class="flagged"') == 1 and "check" in body(response)
    assert "KSh 999.00" not in html and "KSh 111.00" not in html


def test_export_and_bad_input(landlord, login):
    client = login(landlord.owner)
    csv = client.get("/owner/reconciliation?months=3&format=csv").get_data(as_text=True)
    assert f"{period(-1)},Electricity,100.00,KES,70.00,KES,-30.00,KES,yes" in csv
    assert "Total,Electricity,85.50,KES,450.00,KES,364.50,KES,\r\n" in csv
    assert client.get("/owner/reconciliation?months=3&format=pdf").mimetype == "application/pdf"
    for bad in ("months=0", "months=37", "months=x", "format=xls"):
        assert client.get(f"/owner/reconciliation?{bad}").status_code == 400, bad
