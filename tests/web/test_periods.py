"""A malformed or impossible month on a statement or report URL is a 400 with the reason,
never a 500 (issue 11, item 10): every such view parses it with app.periods first."""
import pytest

from tests.helpers import csrf_from

BAD_PERIODS = ["9999-12", "2026-11%00", "2026-13", "1999-12", "2026-11%0A"]


def statement_urls(world) -> dict[str, list[str]]:
    """Role -> the GET URLs with a `{}` for the period."""
    unit, estate = world.unit_a, world.estate1
    return {
        "tenant": [f"/tenant/units/{unit}/statements/{{}}.pdf"],
        "owner": [f"/owner/units/{unit}/statements/{{}}.pdf"],
        "staff": [f"/staff/units/{unit}/statements/{{}}.pdf", "/staff/statements?period={}"],
        "body_corporate": [f"/body-corporate/estates/{estate}/audit/{{}}.pdf",
                           f"/body-corporate/estates/{estate}/audit/2026-01.pdf?to={{}}"],
    }


@pytest.mark.parametrize("role", ["tenant", "owner", "staff", "body_corporate"])
def test_a_bad_period_is_a_400_with_the_reason(world, login, role):
    client = login(world.emails[role])
    for template in statement_urls(world)[role]:
        for period in BAD_PERIODS:
            url = template.format(period)
            response = client.get(url)
            assert response.status_code == 400, f"{url} -> {response.status_code}"
            page = response.get_data(as_text=True)
            assert "YYYY-MM" in page or "outside the years" in page or "months run 01 to 12" in page, url


def test_running_statements_for_a_bad_period_is_refused(world, login):
    client = login(world.emails["staff"])
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    for period in BAD_PERIODS:
        url = f"/staff/estates/{world.estate1}/statements/{period}"
        response = client.post(url, headers={"X-CSRFToken": token})
        assert response.status_code == 400, f"{url} -> {response.status_code}"


def test_closing_a_bad_period_is_refused(world, login):
    client = login(world.emails["staff"])
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    for period in BAD_PERIODS:
        url = f"/staff/estates/{world.estate1}/periods/{period}"
        response = client.post(url, data={"status": "closed"}, headers={"X-CSRFToken": token})
        assert response.status_code == 400, f"{url} -> {response.status_code}"


def test_a_good_period_still_gives_the_pdf(world, login):
    response = login(world.emails["tenant"]).get(f"/tenant/units/{world.unit_a}/statements/2026-01.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
