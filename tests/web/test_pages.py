"""What each layer's pages show, staff operations (feature flags, ledger check), /healthz."""
from __future__ import annotations

import html
import re
import socket
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from app.models import AuditLog, Estate, JobRun, Reading, Tenancy, utcnow
from app.metering.rollups import rebuild
from app.money import format_amount
from tests import factories
from tests.helpers import csrf_from, make_login, table_with, redis_test_url


def body(response) -> str:
    """The response as text, HTML entities decoded, whitespace runs collapsed, and the
    random CSRF tokens blanked (so "7B" or "777.77" cannot match inside one)."""
    page = re.sub(r'(value="|X-CSRFToken": ")[\w.-]{40,}"', r'\1TOKEN"', response.get_data(as_text=True))
    return re.sub(r"[ \t\n]+", " ", html.unescape(page))


@dataclass
class Portfolio:
    estate_id: int
    estate_name: str
    unit_id: int
    unit_number: str
    vacant_number: str
    other_estate_name: str
    emails: dict[str, str]


@pytest.fixture
def portfolio(committed) -> Portfolio:
    """Estate "Jacaranda Heights": unit 7A rented by Thandi Nkosi with money in her wallet,
    unit 7B vacant; one login per layer (scoped to the estate or to unit 7A); and a second
    estate nobody here may see."""
    with committed() as s:
        estate = factories.make_estate(s, name="Jacaranda Heights")
        unit = factories.make_unit(s, estate, number="7A")
        kit = factories.EstateKit(estate, unit, factories.make_wallet(s, unit),
                                  factories.make_system_accounts(s, estate))
        vacant = factories.make_unit(s, kit.estate, number="7B", occupancy_status="vacant")
        factories.make_wallet(s, vacant)
        clearing = kit.accounts.clearing
        factories.make_topup(s, kit.pocket("electricity"), "100.00", clearing=clearing,
                             memo="PayFast top-up 1001", occurred_at=utcnow() - timedelta(hours=3))
        factories.make_topup(s, kit.pocket("water"), "1234.50", clearing=clearing,
                             memo="M-PESA QH47XYZ", occurred_at=utcnow() - timedelta(hours=2))
        factories.make_topup(s, kit.pocket("hot_water"), "-12.25", clearing=clearing, kind="adjustment",
                             memo="Hot water standing charge", occurred_at=utcnow() - timedelta(hours=1))
        tenant = make_login(s, "tenant", unit=unit, full_name="Thandi Nkosi")
        s.add(Tenancy(unit_id=unit.id, person_id=tenant.person_id, move_in=date.today() - timedelta(days=40)))
        emails = {"tenant": tenant.email}
        for role in ("owner", "family"):
            emails[role] = make_login(s, role, unit=unit).email
        for role in ("body_corporate", "agent", "utility"):
            emails[role] = make_login(s, role, estate=kit.estate).email
        emails["staff"] = make_login(s, "staff").email
        # Meters: the unit's electricity meter read 5 minutes ago, a bulk meter on the estate.
        meter = factories.make_meter(s, unit, serial="000023022673")
        meter.last_reading_at, meter.last_register = utcnow() - timedelta(minutes=5), Decimal("1523.4")
        bulk = factories.make_meter(s, estate=kit.estate, role="bulk", serial="BULK-1")
        bulk.last_reading_at = utcnow() - timedelta(days=3)
        for when, m, consumption in ((1, meter, "100"), (1, bulk, "120"), (2, meter, "0")):
            s.add(Reading(meter_id=m.id, taken_at=utcnow() - timedelta(days=when, minutes=m.id),
                          register=Decimal("1000"), consumption=Decimal(consumption)))
        s.flush()
        rebuild(s, [meter.id, bulk.id])  # the day roll-ups the utility page sums, as ingest keeps them
        other = factories.make_estate_with_wallet(s, name="Secret Gardens")
        factories.make_topup(s, other.pocket(), "777.77", clearing=other.accounts.clearing)
        return Portfolio(kit.estate.id, kit.estate.name, unit.id, unit.number, vacant.number,
                         other.estate.name, emails)


NARROW_NBSP = "\u202f"


def test_money_format_used_on_pages():
    assert format_amount(Decimal("100"), "ZAR") == "R 100.00"
    assert format_amount(Decimal("1234.5"), "ZAR") == f"R 1{NARROW_NBSP}234.50"
    assert format_amount(Decimal("-12.25"), "ZAR") == "R -12.25"


def test_tenant_sees_balances_supply_and_last_reading(portfolio, login):
    page = body(login(portfolio.emails["tenant"]).get("/tenant/"))
    assert "My unit" in page and "Unit 7A" in page and "Jacaranda Heights" in page
    pockets = dict(re.findall(r'pocket-name">([^<]+)</span> <span class="pocket-balance">([^<]+)<', page))
    # Pockets with money show, metered or not; the empty solar pocket no meter uses does not.
    assert pockets == {"Electricity": "R 100.00", "Water": f"R 1{NARROW_NBSP}234.50",
                       "Hot water": "R -12.25"}
    assert re.search(r'class="pocket negative"> <span class="pocket-name">Hot water', page), \
        "a negative pocket is marked"
    assert "Supply on" in page
    assert "Last reading 5 min ago" in page
    assert "Secret Gardens" not in page and "777.77" not in page


def test_tenant_cards_refresh_as_a_fragment_for_htmx(portfolio, login):
    client = login(portfolio.emails["tenant"])
    response = client.get("/tenant/", headers={"HX-Request": "true"})
    text_ = response.get_data(as_text=True)
    assert "<html" not in text_ and text_.lstrip().startswith('<div id="tenant-cards"')
    assert "R 100.00" in text_
    assert "HX-Request" in response.headers.get("Vary", "")
    boosted = client.get("/tenant/", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True), "a boosted request gets the whole page"


def test_tenant_sees_supply_off_when_the_relay_is_open(portfolio, login, committed):
    from app.models import Meter

    with committed() as s:
        s.scalar(select(Meter).where(Meter.serial == "23022673")).relay_state = "off"
    page = body(login(portfolio.emails["tenant"]).get("/tenant/"))
    assert "Supply off" in page and "Supply on" not in page


def test_unit_page_lists_recent_transactions_newest_first(portfolio, login):
    response = login(portfolio.emails["tenant"]).get(f"/tenant/units/{portfolio.unit_id}")
    page = body(response)
    assert "Unit 7A" in page and "Recent activity" in page
    activity = table_with(response.get_data(as_text=True), "Amount")
    assert [row[1:] for row in activity.texts()] == [
        ["Hot water standing charge", "Hot water", "R -12.25"],
        ["M-PESA QH47XYZ", "Water", f"R 1{NARROW_NBSP}234.50"],
        ["PayFast top-up 1001", "Electricity", "R 100.00"],
    ]
    assert [("negative" in row[3].classes, "positive" in row[3].classes) for row in activity.rows] == \
        [(True, False), (False, True), (False, True)], "charges and credits are told apart"
    meters = table_with(response.get_data(as_text=True), "Meter")
    assert meters.texts()[0][:2] == ["23022673", "Electricity"], "the meter's canonical serial"
    assert "online" in meters.texts()[0][-1]


def test_unit_page_without_activity_says_so(portfolio, login, committed):
    from app.models import Unit

    with committed() as s:
        vacant_id = s.scalar(select(Unit.id).where(Unit.number == portfolio.vacant_number))
    page = body(login(portfolio.emails["staff"]).get(f"/tenant/units/{vacant_id}"))
    assert "Unit 7B" in page
    assert "No transactions yet." in page and "No meters." in page
    assert "R 100.00" not in page


def test_owner_sees_their_units_with_tenant_and_balances(portfolio, login):
    response = login(portfolio.emails["owner"]).get("/owner/")
    page = body(response)
    assert "My properties" in page
    units = table_with(response.get_data(as_text=True), "Tenant")
    assert len(units.rows) == 1, "the owner owns only 7A"
    row = dict(zip(units.headers, units.texts()[0]))
    assert (row["Unit"], row["Estate"], row["Status"], row["Tenant"]) == \
        ("7A", "Jacaranda Heights", "Occupied", "Thandi Nkosi")
    assert "Electricity R 100.00" in row["Balances"]
    assert f'href="/owner/units/{portfolio.unit_id}"' in page
    assert "<dt>Units</dt><dd>1</dd>" in page.replace(" ", "")


def test_family_sees_the_total_over_their_wallets(portfolio, login):
    page = body(login(portfolio.emails["family"]).get("/family/"))
    assert "All wallets together" in page
    assert f"R 1{NARROW_NBSP}234.50" in page and "R 100.00" in page


def test_family_totals_name_the_utility_unit_and_estates_they_add_up(committed, login):
    with committed() as s:
        maseru = factories.make_estate_with_wallet(s, name="Maseru Heights", currency="LSL",
                                                   denomination="units")
        sunbird = factories.make_estate_with_wallet(s, name="Sunbird Estate")
        jacaranda = factories.make_estate_with_wallet(s, name="Jacaranda Heights")
        factories.make_topup(s, maseru.pocket("electricity"), "40.5",
                             clearing=maseru.accounts.units_issued["electricity"])
        factories.make_topup(s, sunbird.pocket("electricity"), "100.00", clearing=sunbird.accounts.clearing)
        factories.make_topup(s, jacaranda.pocket("electricity"), "20.00", clearing=jacaranda.accounts.clearing)
        email = make_login(s, "family", unit=maseru.unit,
                           grants=[("family", sunbird.unit), ("family", jacaranda.unit)]).email
    page = body(login(email).get("/family/"))
    together = page[page.index("All wallets together"):page.index("</section>", page.index("All wallets"))]
    assert "Electricity · kWh · Maseru Heights <small class=\"muted\">1 wallet</small>" in together
    assert "40.500 kWh" in together
    # Two rand estates add up into one total that names both; kWh never joins a rand total.
    assert "Electricity · ZAR · " in together and "R 120.00" in together
    line = together[together.index("Electricity · ZAR"):]
    assert {"Sunbird Estate", "Jacaranda Heights"} <= set(re.split(r", | <", line.split(" · ")[2]))
    assert "2 wallets" in line


@pytest.mark.parametrize("role,path", [("agent", "/agent/"), ("body_corporate", "/body-corporate/"),
                                       ("staff", "/staff/")])
def test_estate_figures_are_counted_from_the_data(portfolio, login, role, path):
    page = body(login(portfolio.emails[role]).get(path)).replace(" <small>", "<small>")
    assert "Jacaranda Heights" in page
    assert "<dt>Units occupied</dt><dd>1 / 2<small>(50 %)</small>" in page
    assert "<dt>Meters online</dt><dd>1 / 2<small>(50 %)</small>" in page
    # 7B's pockets are all zero (in credit); 7A has hot water below zero.
    assert "<dt>Wallets in credit</dt><dd>1 / 2<small>(50 %)</small>" in page
    assert "<dt>Electricity wallets</dt><dd>R 100.00</dd>" in page
    if role == "staff":
        assert "Secret Gardens" in page, "staff see every estate"
    else:
        assert "Secret Gardens" not in page


def test_agent_estate_page_lists_every_unit(portfolio, login):
    response = login(portfolio.emails["agent"]).get(f"/agent/estates/{portfolio.estate_id}")
    units = table_with(response.get_data(as_text=True), "Tenant")
    rows = {row[0]: row[1:3] for row in units.texts()}
    assert rows == {"7A": ["Occupied", "Thandi Nkosi"], "7B": ["Vacant", "—"]}


def test_utility_sees_bulk_against_unit_meters(portfolio, login):
    response = login(portfolio.emails["utility"]).get("/utility/")
    table = table_with(response.get_data(as_text=True), "Loss %")
    (row,) = [r for r in table.rows if r[0].text == "Electricity"]
    assert [cell.text for cell in row[1:]] == ["120.0 kWh", "100.0 kWh", "20.0 kWh", "16.7"]
    assert "negative" in row[-1].classes, "a loss above 15 % is highlighted"


def test_utility_marks_loss_above_the_estates_own_threshold(portfolio, login, committed):
    from app.settings import put_setting

    with committed() as s:
        put_setting(s, "loss_threshold_percent", "20", portfolio.estate_id)
    page = login(portfolio.emails["utility"]).get("/utility/").get_data(as_text=True)
    (row,) = [r for r in table_with(page, "Loss %").rows if r[0].text == "Electricity"]
    assert row[-1].text == "16.7" and "negative" not in row[-1].classes, "16.7 % is under this estate's 20 %"
    assert "Loss above 20 % is marked." in page


def test_staff_page_lists_every_estate_with_feature_flags(portfolio, login):
    page = body(login(portfolio.emails["staff"]).get("/staff/"))
    assert "Jacaranda Heights" in page and "Secret Gardens" in page
    assert page.count("Credit control") == 2 and "Turn on" in page


# --- staff operations -------------------------------------------------------------------

def test_feature_toggle_is_audited_with_old_and_new_values_actor_and_ip(portfolio, new_client,
                                                                       committed):
    from tests.helpers import sign_in

    client = new_client("10.20.30.40")
    assert sign_in(client, portfolio.emails["staff"]).status_code == 302
    token = csrf_from(client.get("/staff/").get_data(as_text=True))
    url = f"/staff/estates/{portfolio.estate_id}/features/credit_control"
    response = client.post(url, data={"enabled": "1", "csrf_token": token}, follow_redirects=True)
    page = body(response)
    assert "Credit control is on for Jacaranda Heights." in page
    with committed() as s:
        estate = s.get(Estate, portfolio.estate_id)
        assert estate.feature_enabled("credit_control")
        rows = s.scalars(select(AuditLog).where(AuditLog.action == "estate.feature")).all()
        assert len(rows) == 1
        row = rows[0]
        assert (row.old, row.new) == ({"credit_control": False}, {"credit_control": True})
        assert row.actor == portfolio.emails["staff"] and row.ip == "10.20.30.40"
        assert row.actor_user_id is not None
        assert (row.entity_type, row.entity_id, row.estate_id) == ("Estate", str(estate.id), estate.id)
    # The staff page shows the change in its audit table, with who and from where.
    audit = table_with(response.get_data(as_text=True), "Change")
    (row,) = [r for r in audit.texts() if r[2].startswith("estate.feature")]
    assert row[1] == f"{portfolio.emails['staff']} 10.20.30.40"
    assert row[3] == "credit_control: False → True"
    # Setting the same value again changes nothing and writes no audit row.
    client.post(url, data={"enabled": "1", "csrf_token": token})
    with committed() as s:
        assert len(s.scalars(select(AuditLog).where(AuditLog.action == "estate.feature")).all()) == 1


def test_unknown_feature_flag_is_404(portfolio, login):
    client = login(portfolio.emails["staff"])
    token = csrf_from(client.get("/staff/").get_data(as_text=True))
    url = f"/staff/estates/{portfolio.estate_id}/features/free_electricity"
    assert client.post(url, data={"enabled": "1", "csrf_token": token}).status_code == 404


def test_every_live_flag_is_shown_and_switchable(portfolio, login):
    client = login(portfolio.emails["staff"])
    page = body(client.get("/staff/"))
    assert "Credit control" in page and "Statements" in page
    assert "Levies auto-deduct" in page  # live since the levy run reads it (issue 18)
    token = csrf_from(client.get("/staff/").get_data(as_text=True))
    url = f"/staff/estates/{portfolio.estate_id}/features/levies_auto_deduct"
    assert client.post(url, data={"enabled": "1", "csrf_token": token}).status_code in (200, 302)


def test_live_feature_list_is_exactly_the_flags_the_code_reads():
    import pathlib
    import re

    from app.models import FEATURE_DEFAULTS, LIVE_FEATURES

    read = set()
    for path in pathlib.Path("app").rglob("*.py"):
        read |= set(re.findall(r"feature_enabled\(\"(\w+)\"\)", path.read_text()))
    assert read == set(LIVE_FEATURES) and read <= set(FEATURE_DEFAULTS)


def htmx_post(client, url: str, page: str = "/staff/ledger"):
    token = csrf_from(client.get(page).get_data(as_text=True))
    return client.post(url, headers={"HX-Request": "true", "X-CSRFToken": token})


def test_ledger_verify_button_runs_the_job_and_shows_ledger_ok(portfolio, login, committed):
    client = login(portfolio.emails["staff"])
    response = htmx_post(client, "/staff/ledger/verify")
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "<html" not in fragment and fragment.lstrip().startswith('<div id="job-')
    assert "LEDGER OK" in fragment and "Ledger verification</strong> · Finished" in fragment
    assert "hx-get" not in fragment, "a finished job stops polling"
    with committed() as s:
        run = s.scalar(select(JobRun).where(JobRun.kind == "ledger_verify"))
        assert run.status == "done" and "LEDGER OK" in run.result
    # The ledger page shows the last result on a plain visit.
    assert "LEDGER OK" in body(client.get("/staff/ledger"))


def test_ledger_verify_reports_a_tampered_balance(portfolio, login, committed):
    with committed() as s:
        s.execute(text("UPDATE accounts SET balance = balance + 50 WHERE code LIKE 'pocket:7A:electricity'"))
    client = login(portfolio.emails["staff"])
    fragment = htmx_post(client, "/staff/ledger/verify").get_data(as_text=True)
    assert "LEDGER BROKEN" in fragment and "LEDGER OK" not in fragment
    assert "pocket:7A:electricity" in fragment and "150.000000" in fragment


def test_ledger_verify_needs_the_csrf_header(portfolio, login):
    client = login(portfolio.emails["staff"])
    assert client.post("/staff/ledger/verify", headers={"HX-Request": "true"}).status_code == 400


# --- /healthz -------------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_db15(app, monkeypatch):
    from redis import Redis

    url = redis_test_url(15)
    monkeypatch.setitem(app.config, "REDIS_URL", url)
    yield url
    Redis.from_url(url).flushdb()


def test_healthz_reports_every_service_ok(app, new_client, monkeypatch, redis_db15):
    monkeypatch.setitem(app.config, "MQTT_URL", "mqtt://127.0.0.1:1883")
    response = new_client().get("/healthz")
    assert response.status_code == 200
    data = response.get_json()
    assert data["status"] == "ok"
    assert data["database"]["status"] == "ok" and data["database"]["dialect"] == "postgresql"
    assert data["redis"] == {"status": "ok"}
    assert data["mqtt"] == {"status": "ok"}
    assert data["worker"]["status"] in {"ok", "none_running"} and "count" in data["worker"]


def test_healthz_is_degraded_when_mqtt_is_down(app, new_client, monkeypatch, redis_db15):
    monkeypatch.setitem(app.config, "MQTT_URL", f"mqtt://127.0.0.1:{closed_port()}")
    response = new_client().get("/healthz")
    assert response.status_code == 503
    data = response.get_json()
    assert data["status"] == "degraded"
    assert data["mqtt"]["status"] == "error"
    assert data["database"]["status"] == "ok" and data["redis"]["status"] == "ok"


def test_healthz_is_degraded_when_redis_is_down(app, new_client, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", f"redis://127.0.0.1:{closed_port()}/0")
    monkeypatch.setitem(app.config, "MQTT_URL", "mqtt://127.0.0.1:1883")
    response = new_client().get("/healthz")
    assert response.status_code == 503
    data = response.get_json()
    assert data["status"] == "degraded" and data["redis"]["status"] == "error"
    assert data["worker"]["status"] == "unknown"


def test_healthz_without_redis_says_jobs_run_inline(app, new_client, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", "")
    monkeypatch.setitem(app.config, "MQTT_URL", "")
    data = new_client().get("/healthz").get_json()
    assert data["status"] == "ok"
    assert data["redis"]["status"] == "not_configured" and data["worker"]["status"] == "inline"
    assert data["mqtt"]["status"] == "not_configured"


def test_top_bar_offers_staff_a_uisp_refresh_and_nobody_else(world, login):
    """Staff see "Refresh from UISP" in the top bar on every page; a tenant never does."""
    staff = login(world.emails["staff"])
    for path in ("/staff/", "/staff/ledger"):
        page = body(staff.get(path))
        assert "Refresh from UISP" in page
        assert 'id="topbar-job"' in page
    tenant = login(world.emails["tenant"])
    assert "Refresh from UISP" not in body(tenant.get("/tenant/"))
