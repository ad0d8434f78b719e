"""SparkMeter imports on the staff Sources page (start, join, refuse) and in the cron schedule."""
from __future__ import annotations

import runpy
from datetime import date, timedelta
from pathlib import Path

import pytest
from rq import cron as rq_cron
from sqlalchemy import func, select

from app.jobs import REGISTRY
from app.models import Estate, JobRun, Meter
from tests import factories
from tests.emulators import serving
from tests.emulators.koios import build, create_app
from tests.helpers import csrf_from, table_with

CRON_FILE = Path(__file__).resolve().parents[2] / "workers" / "cron.py"


@pytest.fixture
def koios_config(app, monkeypatch):
    """Serve a Koios emulator with vendor payments and point the app at it; yields the emulator."""
    emulator = build(1, 2, payments=4, unknown_payments=1, malformed_payments=1)
    with serving(create_app(emulator)) as base:
        monkeypatch.setitem(app.config, "KOIOS_URL", base)
        yield emulator


def htmx(client) -> dict:
    token = csrf_from(client.get("/staff/sources").get_data(as_text=True))
    return {"HX-Request": "true", "X-CSRFToken": token}


def runs(committed, kind: str) -> list[tuple[int, str]]:
    """(id, status) of every run of `kind`."""
    with committed() as s:
        return [tuple(r) for r in s.execute(select(JobRun.id, JobRun.status).where(JobRun.kind == kind)
                                            .order_by(JobRun.id))]


def test_payments_button_runs_the_import_and_the_page_lists_them(world, login, committed, koios_config):
    with committed() as s:
        unit = factories.make_unit(s, s.get(Estate, world.estate1), number="SM-1")
        factories.make_meter(s, unit, serial="SM010001", protocol="sparkmeter")
    staff = login(world.emails["staff"])
    page = staff.get("/staff/sources").get_data(as_text=True)
    for label in ("Import readings", "Import payments", "Import exports"):
        assert label in page
    html = staff.post("/staff/sources/koios/payments", headers=htmx(staff)).get_data(as_text=True)
    assert 'class="job-progress"' in html and "6 / 6" in html
    assert "6 listed, 2 imported, 0 already known, 0 matched now, 3 unmatched, 1 malformed" in html
    assert "unmatched: kv-2 (customer C-SM010002), kv-4 (customer C-SM010002), kv-5 (customer C-NOBODY4)" in html
    page = staff.get("/staff/sources").get_data(as_text=True)
    table = table_with(page, "Koios id")
    assert sorted(row[1].text for row in table.rows) == ["kv-1", "kv-2", "kv-3", "kv-4", "kv-5"]
    assert {row[3].text for row in table.rows} == {"SM-1", "unmatched"} and "3 unmatched" in page
    assert "2 imported" in page  # the last run's result stays on the page


def test_a_second_press_joins_the_running_import(world, login, committed, koios_config):
    with committed() as s:
        s.add(JobRun(kind="koios_payments_import", target="koios:payments", status="running"))
    staff = login(world.emails["staff"])
    page = staff.get("/staff/sources").get_data(as_text=True)
    running_id = runs(committed, "koios_payments_import")[0][0]
    assert f'id="job-{running_id}"' in page  # the page shows the run in progress
    html = staff.post("/staff/sources/koios/payments", headers=htmx(staff)).get_data(as_text=True)
    assert f'id="job-{running_id}"' in html and "· Running" in html
    assert len(runs(committed, "koios_payments_import")) == 1
    day = (date.today() - timedelta(days=1)).isoformat()
    with committed() as s:
        s.add(JobRun(kind="koios_import", target=f"koios:readings:{day}", status="queued"))
    staff.post("/staff/sources/koios/import", data={"day": day}, headers=htmx(staff))
    assert len(runs(committed, "koios_import")) == 1


def test_without_htmx_a_press_returns_to_the_card(world, login, committed, koios_config):
    staff = login(world.emails["staff"])
    token = csrf_from(staff.get("/staff/sources").get_data(as_text=True))
    response = staff.post("/staff/sources/koios/payments", data={"csrf_token": token})
    assert response.status_code == 302 and response.location.endswith("/staff/sources#koios-payments")
    assert runs(committed, "koios_payments_import")[0][1] == "done"


def test_bad_presses_are_refused_with_a_reason_and_start_nothing(world, login, committed):
    staff = login(world.emails["staff"])
    headers = htmx(staff)
    for day, reason in (("soon", "is not a date"), (date.today().isoformat(), "has ended"),
                        ("2999-01-01", "has ended")):
        response = staff.post("/staff/sources/koios/import", data={"day": day}, headers=headers)
        assert response.status_code == 400 and reason in response.get_data(as_text=True)
    no_token = staff.post("/staff/sources/koios/payments", headers={"HX-Request": "true"})
    assert no_token.status_code == 400
    tenant = login(world.emails["tenant"])
    assert tenant.post("/staff/sources/koios/payments", headers=htmx_from(tenant)).status_code == 404
    with committed() as s:
        assert s.scalar(select(func.count()).select_from(JobRun)) == 0


def htmx_from(client) -> dict:
    token = csrf_from(client.get("/notifications").get_data(as_text=True))
    return {"HX-Request": "true", "X-CSRFToken": token}


def test_cron_entries_start_the_registered_sparkmeter_jobs(app, session, koios_config, monkeypatch, tmp_path):
    monkeypatch.setitem(app.config, "THUNDERCLOUD_EXPORT_DIR", str(tmp_path))
    rq_cron._job_data_registry.clear()
    try:
        runpy.run_path(str(CRON_FILE))
        entries = {entry["name"]: entry for entry in rq_cron._job_data_registry}
    finally:
        rq_cron._job_data_registry.clear()
    expected = {"koios_readings": ("koios_import", "30 1 * * *"),
                "koios_payments": ("koios_payments_import", "20 * * * *"),
                "thundercloud_exports": ("thundercloud_import", "45 1 * * *")}
    for name, (kind, schedule) in expected.items():
        entry = entries[name]
        assert entry["cron"] == schedule and kind in REGISTRY
        message = entry["func"](*entry["args"])
        run = session.scalar(select(JobRun).where(JobRun.kind == kind))
        assert message.endswith(f"run {run.id}") and run.status == "done", (name, run.errors)
    readings = session.scalar(select(JobRun).where(JobRun.kind == "koios_import"))
    assert readings.target == f"koios:readings:{date.today() - timedelta(days=1)}"
    assert session.scalar(select(func.count()).select_from(Meter)) == 0
