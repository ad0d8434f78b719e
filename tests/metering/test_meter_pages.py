"""Staff meter detail (M6 periods, alerts, commands, dead letters), the open-alert list with its
audited acknowledge, and API key management on a page and on the command line (M4)."""
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.metering.ingest import ingest
from app.models import AuditLog
from app.models.metering import IngestApiKey, MeterAlert, RelayCommand
from tests.factories import make_user
from tests.metering.conftest import at, direct
from tests.helpers import csrf_from, sign_in

pytestmark = pytest.mark.usefixtures("fresh_rate_limits")


def test_meter_detail_shows_periods_alerts_commands_and_dead_letters(session, metered, staff_client):
    ingest(session, [direct("23022673", at(90), "100"), direct("23022673", at(60), "101.5"),
                     direct("23022673", at(30), "90")])  # the last one went backwards: dead letter + tamper
    session.add(RelayCommand(command_id="c1", meter_id=metered.meter.id, state="off",
                             topic="meters/23022673/commands", reason="balance -1 at or below zero"))
    session.commit()
    listing = staff_client.get("/staff/metering").get_data(as_text=True)
    assert f'href="/staff/meters/{metered.meter.id}"' in listing
    page = staff_client.get(f"/staff/meters/{metered.meter.id}").get_data(as_text=True)
    for text in ("Last 30 minutes", "Today", "This week", "This month", "Last month",
                 "101.500", "register went backwards", "balance -1 at or below zero", "tamper"):
        assert text in page, text
    assert staff_client.get("/staff/meters/987654").status_code == 404


def test_staff_acknowledge_an_alert_with_csrf_and_it_is_audited(session, metered, staff_client):
    session.add(MeterAlert(meter_id=metered.meter.id, kind="spike", detail="12 per hour is above 3"))
    session.commit()
    alert_id = session.scalar(select(MeterAlert.id))
    page = staff_client.get("/staff/metering/alerts").get_data(as_text=True)
    assert "12 per hour is above 3" in page
    url = f"/staff/metering/alerts/{alert_id}/acknowledge"
    assert staff_client.post(url).status_code == 400  # no CSRF token
    assert staff_client.post(url, data={"csrf_token": csrf_from(page)}).status_code == 302
    session.expire_all()
    assert session.get(MeterAlert, alert_id).acknowledged_at is not None
    assert session.scalar(select(AuditLog.action).where(AuditLog.action == "meter_alert.acknowledge"))
    assert "12 per hour" not in staff_client.get("/staff/metering/alerts").get_data(as_text=True)
    again = staff_client.post(url, data={"csrf_token": csrf_from(page)})
    assert again.status_code == 400
    missing = staff_client.post("/staff/metering/alerts/987654/acknowledge", data={"csrf_token": csrf_from(page)})
    assert missing.status_code == 404


def test_staff_switch_a_meter_to_its_own_timestamps_and_ingest_follows(session, metered, staff_client):
    from app.models import Meter

    metered.meter.interval_minutes = 30
    session.commit()
    off_boundary = [direct("23022673", at(60) + timedelta(seconds=53), "100"),
                    direct("23022673", at(30) + timedelta(seconds=51), "101")]
    page = staff_client.get(f"/staff/meters/{metered.meter.id}").get_data(as_text=True)
    assert "On the interval's boundaries" in page
    url = f"/staff/meters/{metered.meter.id}/boundaries"
    assert staff_client.post(url, data={"on": "0"}).status_code == 400  # no CSRF token
    assert ingest(session, off_boundary).accepted == 0  # a PowerCMS-style meter keeps the rule
    session.rollback()
    assert staff_client.post(url, data={"on": "0", "csrf_token": csrf_from(page)}).status_code == 302
    session.expire_all()
    assert session.get(Meter, metered.meter.id).reports_on_boundaries is False
    assert session.scalar(select(AuditLog.action).where(AuditLog.action == "meter.reports_on_boundaries"))
    assert "At the meter's own time" in staff_client.get(f"/staff/meters/{metered.meter.id}").get_data(as_text=True)
    report = ingest(session, off_boundary)
    assert (report.accepted, report.dead_letters) == (2, [])


def test_api_key_is_shown_once_listed_by_prefix_and_revoked_to_401(session, metered, staff_client, client):
    page = staff_client.get("/staff/metering/api-keys").get_data(as_text=True)
    empty = staff_client.post("/staff/metering/api-keys", data={"name": " ", "csrf_token": csrf_from(page)})
    assert empty.status_code == 400 and "Give the key a name" in empty.get_data(as_text=True)
    created = staff_client.post("/staff/metering/api-keys", data={"name": "Block C gateway",
                                                                  "permissions": "readings:write",
                                                                  "csrf_token": csrf_from(page)})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    key = re.search(r'<code class="secret">(mw_live_[^<]+)</code>', created.get_data(as_text=True)).group(1)
    listing = staff_client.get("/staff/metering/api-keys").get_data(as_text=True)
    assert key not in listing and key[:12] in listing and "never" in listing
    body = {"meter": "23022673", "time": at(30).isoformat(), "energy": "100 kWh"}
    assert client.post("/api/v1/readings", json=body, headers={"X-API-Key": key}).status_code == 200
    session.expire_all()
    row = session.scalar(select(IngestApiKey))
    assert row.last_used_at is not None
    revoke = f"/staff/metering/api-keys/{row.id}/revoke"
    assert staff_client.post(revoke, data={"csrf_token": csrf_from(listing)}).status_code == 302
    assert client.post("/api/v1/readings", json=body, headers={"X-API-Key": key}).status_code == 401
    assert staff_client.post(revoke, data={"csrf_token": csrf_from(listing)}).status_code == 400
    actions = set(session.scalars(select(AuditLog.action).where(AuditLog.action.like("api_key.%"))))
    assert actions == {"api_key.create", "api_key.revoke"}


def test_api_key_cli_create_list_revoke(session, metered, cli_runner, client):
    created = cli_runner.invoke(args=["api-key", "create", "meter gateway 7"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    assert key.startswith("mw_live_")  # new keys get the new prefix (issue 21); old mwk_ keys still work
    listed = cli_runner.invoke(args=["api-key", "list"])
    assert "meter gateway 7" in listed.output and key[:12] in listed.output and key not in listed.output
    key_id = session.scalar(select(IngestApiKey.id))
    assert cli_runner.invoke(args=["api-key", "revoke", str(key_id)]).exit_code == 0
    again = cli_runner.invoke(args=["api-key", "revoke", str(key_id)])
    assert again.exit_code != 0 and "already revoked" in again.output
    body = {"meter": "23022673", "time": at(30).isoformat(), "energy": "100 kWh"}
    assert client.post("/api/v1/readings", json=body, headers={"X-API-Key": key}).status_code == 401
    assert cli_runner.invoke(args=["api-key", "create", ""]).exit_code != 0


STAFF_GETS = ["/staff/metering/alerts", "/staff/metering/api-keys", "/staff/tariffs", "/staff/tariffs/new"]


@pytest.mark.parametrize("role", ["tenant", "owner", "family", "agent", "body_corporate", "utility", None])
def test_non_staff_get_404_on_the_new_metering_pages(session, metered, app, role):
    scope = {"unit": metered.unit} if role in ("tenant", "owner", "family") else {"estate": metered.estate}
    user = make_user(session, role, **(scope if role else {}))
    session.add(MeterAlert(meter_id=metered.meter.id, kind="gap", detail="silence"))
    session.add(IngestApiKey(name="k", key_hash="x" * 64, prefix="mwk_x"))
    session.commit()
    client = app.test_client()
    sign_in(client, user.email)
    alert_id, key_id = session.scalar(select(MeterAlert.id)), session.scalar(select(IngestApiKey.id))
    for url in [*STAFF_GETS, f"/staff/meters/{metered.meter.id}"]:
        assert client.get(url).status_code == 404, url
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    for url in (f"/staff/metering/alerts/{alert_id}/acknowledge", "/staff/metering/api-keys",
                f"/staff/metering/api-keys/{key_id}/revoke", f"/staff/meters/{metered.meter.id}/boundaries"):
        assert client.post(url, data={"name": "x", "csrf_token": token}).status_code == 404, url
    session.expire_all()
    assert session.get(MeterAlert, alert_id).acknowledged_at is None
    assert session.get(IngestApiKey, key_id).revoked_at is None
