"""Staff pages for UISP: refresh button with progress, joining, suspensions, customer detail."""
from __future__ import annotations

from sqlalchemy import func, select

from app.models import Estate, JobRun
from tests.helpers import csrf_from, table_with


def press(client, headers=True, **form):
    """Press a refresh button (as htmx does when `headers`); returns the response."""
    page = client.get("/staff/sources")
    token = csrf_from(page.get_data(as_text=True))
    extra = {"HX-Request": "true", "X-CSRFToken": token} if headers else {}
    data = form if headers else {**form, "csrf_token": token}
    return client.post("/staff/sources/uisp/refresh", data=data, headers=extra)


def test_refresh_button_runs_the_job_and_shows_the_result(world, login, uisp_config, committed):
    uisp_config(size=12, malformed_client_ids={5})
    staff = login(world.emails["staff"])
    response = press(staff, scope="all")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'class="job-progress"' in html
    assert "11 of 12 clients refreshed, 1 failed" in html and "client 5:" in html
    assert "12 / 12" in html


def test_suspensions_list_suspended_services_with_grace_and_risk(world, login, uisp_config):
    emulator = uisp_config(size=40)
    staff = login(world.emails["staff"])
    press(staff, scope="all")
    page = staff.get("/staff/sources/suspensions").get_data(as_text=True)
    table = table_with(page, "Grace date")
    suspended = [s for s in emulator.data.services.values() if s["status"] == 3]
    assert len(table.rows) == len(suspended) > 0
    names = {emulator.data.clients[s["clientId"]]["firstName"] for s in suspended}
    assert {row[0].text.split(" ")[0] for row in table.rows} <= names
    assert any(row[5].text.startswith("Risky") for row in table.rows)


def test_customer_page_shows_services_invoices_and_payments(world, login, uisp_config):
    emulator = uisp_config(size=5)
    staff = login(world.emails["staff"])
    press(staff, scope="client", client_id="3")
    page = staff.get("/staff/sources/customers/3").get_data(as_text=True)
    invoices = [i for i in emulator.data.invoices.values() if i["clientId"] == 3]
    assert len(table_with(page, "To pay").rows) == len(invoices)
    assert len(table_with(page, "Covers").rows) == len(
        [p for p in emulator.data.payments.values() if p["clientId"] == 3])
    assert "Refresh this customer from UISP" in page
    assert staff.get("/staff/sources/customers/4").status_code == 404  # not copied yet


def test_a_second_press_joins_the_running_refresh(world, login, committed, uisp_config):
    uisp_config(size=3)
    with committed() as s:
        s.add(JobRun(kind="uisp_refresh", target="uisp:all", status="running"))
    staff = login(world.emails["staff"])
    html = press(staff, scope="all").get_data(as_text=True)
    assert 'id="job-1"' in html and "· Running" in html
    with committed() as s:
        assert s.scalar(select(func.count()).select_from(JobRun)) == 1
    assert 'id="job-1"' in staff.get("/staff/sources").get_data(as_text=True)  # shown on the page


def test_refresh_of_an_estate_and_bad_targets(world, login, committed, uisp_config):
    uisp_config(size=6)
    staff = login(world.emails["staff"])
    with committed() as s:
        s.get(Estate, world.estate1).code = "ACACIA"
    html = press(staff, scope="estate", estate_id=str(world.estate1)).get_data(as_text=True)
    assert "3 of 3 clients refreshed" in html
    assert press(staff, scope="estate", estate_id="98765").status_code == 404
    assert press(staff, scope="planet").status_code == 400
    assert press(staff, scope="client").status_code == 400


def test_refresh_without_htmx_redirects_back(world, login, uisp_config):
    uisp_config(size=2)
    staff = login(world.emails["staff"])
    response = press(staff, headers=False, scope="all", next="/staff/sources/suspensions")
    assert response.status_code == 302 and response.location.endswith("/staff/sources/suspensions")


def test_refresh_needs_a_csrf_token(world, login):
    staff = login(world.emails["staff"])
    response = staff.post("/staff/sources/uisp/refresh", data={"scope": "all"})
    assert response.status_code == 400


def test_only_staff_reach_the_sources_pages(world, login, committed):
    for role in ("tenant", "agent", "owner", "utility"):
        client = login(world.emails[role])
        token = csrf_from(client.get("/notifications").get_data(as_text=True))
        for url in ("/staff/sources", "/staff/sources/suspensions", "/staff/sources/customers",
                    "/staff/sources/customers/1"):
            assert client.get(url).status_code == 404, (role, url)
        for url in ("/staff/sources/uisp/refresh", "/staff/sources/koios/import",
                    "/staff/sources/thundercloud/import"):
            response = client.post(url, data={"scope": "all"}, headers={"X-CSRFToken": token})
            assert response.status_code == 404, (role, url)
    with committed() as s:
        assert s.scalar(select(func.count()).select_from(JobRun)) == 0


def test_login_never_starts_a_refresh_and_a_stale_copy_offers_one(world, login, committed, uisp_config):
    uisp_config(size=2)
    staff = login(world.emails["staff"])
    with committed() as s:
        assert s.scalar(select(func.count()).select_from(JobRun)) == 0
    assert "never been refreshed" in staff.get("/staff/sources").get_data(as_text=True)
    press(staff, scope="all")
    page = staff.get("/staff/sources/suspensions").get_data(as_text=True)
    assert "stale-banner" not in page and "Last full refresh just now" in page


def test_customer_search_finds_by_name_and_id(world, login, uisp_config):
    emulator = uisp_config(size=8)
    staff = login(world.emails["staff"])
    press(staff, scope="all")
    name = emulator.data.clients[6]["lastName"]
    page = staff.get(f"/staff/sources/customers?q={name}", headers={"HX-Request": "true"})
    rows = table_with(page.get_data(as_text=True), "Pattern").rows
    expected = [c for c in emulator.data.clients.values() if c["lastName"] == name]
    assert len(rows) == len(expected)
    by_id = table_with(staff.get("/staff/sources/customers?q=6").get_data(as_text=True), "Pattern").rows
    assert any(row[1].text == "C00006" for row in by_id)


def test_refresh_never_redirects_off_site(world, login, uisp_config):
    uisp_config(size=1)
    staff = login(world.emails["staff"])
    response = press(staff, headers=False, scope="all", next="//evil.example/x")
    assert response.status_code == 302 and response.location.endswith("/staff/sources")


def test_sparkmeter_import_buttons_run_their_jobs(world, login, app, monkeypatch, tmp_path):
    from tests.emulators.koios import build, create_app
    from tests.emulators.thundercloud import heartbeat_csv
    from tests.emulators import serving
    from datetime import date

    (tmp_path / "site.csv").write_text(heartbeat_csv("S1", date(2026, 2, 28)))
    monkeypatch.setitem(app.config, "THUNDERCLOUD_EXPORT_DIR", str(tmp_path))
    staff = login(world.emails["staff"])
    token = csrf_from(staff.get("/staff/sources").get_data(as_text=True))
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    html = staff.post("/staff/sources/thundercloud/import", headers=headers).get_data(as_text=True)
    assert "18 new heartbeats, 2 payments detected" in html
    with serving(create_app(build(1, 2))) as base:
        monkeypatch.setitem(app.config, "KOIOS_URL", base)
        html = staff.post("/staff/sources/koios/import", headers=headers).get_data(as_text=True)
    assert "1 sites" in html and "2 unknown meters" in html  # no local meters for them
    assert staff.post("/staff/sources/koios/import", data={"day": "soon"}, headers=headers).status_code == 400
