"""Historical backfill (issue 22 item 4): a range of days as one job, stopped in the middle and resumed.

Against the Koios and ThunderCloud emulators; the job runs inline (no REDIS_URL), so "Stop" is
pressed from inside the day importer, as a staff member's click between two days would land.
"""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import JobRun, Meter, Reading, Setting
from app.models.backfills import SourceBackfill
from app.models.metering import DeadLetter
from app.models.sources import ThunderCloudExport, ThunderCloudHeartbeat, ThunderCloudPayment
from app.settings import put_setting
from app.sources import backfill as backfills
from app.sources.backfill import BackfillError, parse_request, request_stop, resume_backfill, start_backfill
from tests import factories
from tests.emulators import serving
from tests.emulators.koios import build
from tests.helpers import csrf_from, make_login

TODAY = datetime.now(UTC).date()
FIRST, LAST = TODAY - timedelta(days=4), TODAY - timedelta(days=1)  # four whole days


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


@pytest.fixture
def koios_estate(app, session, serve_koios, monkeypatch):
    """An estate with the emulator's 2 sites x 3 meters as SparkMeter meters; the app pointed at Koios."""
    emulator = build(2, 3)
    emulator.api_key, emulator.api_secret = "key", "secret"
    api = serve_koios(emulator)
    for key, value in {"KOIOS_URL": api.base_url, "KOIOS_API_KEY": "key", "KOIOS_API_SECRET": "secret",
                       "KOIOS_ORGANIZATION": "org-emulated", "KOIOS_TIMEOUT": 2}.items():
        monkeypatch.setitem(app.config, key, value)
    kit = factories.make_estate_with_wallet(session, currency="LSL")
    for site in (1, 2):
        for meter in (1, 2, 3):
            factories.make_meter(session, estate=kit.estate, unit=None, role="bulk",
                                 serial=f"SM{site:02d}{meter:04d}", protocol="sparkmeter")
    other = factories.make_estate_with_wallet(session, currency="LSL")  # its meter is not the estate's
    factories.make_meter(session, estate=other.estate, unit=None, role="bulk", serial="SM01009999",
                         protocol="sparkmeter")
    session.commit()
    return kit.estate, emulator


def stop_after(days: int, importer_name: str):
    """Press Stop (in its own transaction) while the job imports its `days`-th day; returns
    (days seen, the patch to undo)."""
    patch = pytest.MonkeyPatch()
    original = getattr(backfills, importer_name)
    seen = []

    def wrapped(session, *args):
        import_day = original(session, *args)

        def day(when: date):
            seen.append(when)
            if len(seen) == days:
                with Session(db.engine) as other:
                    row = other.scalars(select(SourceBackfill).order_by(SourceBackfill.id.desc())).first()
                    request_stop(other, row)
            return import_day(when)
        return day
    patch.setattr(backfills, importer_name, wrapped)
    return seen, patch


def test_koios_backfill_stops_after_the_day_in_hand_and_resumes_without_duplicates(session, koios_estate):
    estate, emulator = koios_estate
    seen, patch = stop_after(2, "_koios_days")
    row = start_backfill(session, "koios", estate, FIRST, LAST)
    assert (row.status, row.last_completed_day, row.days_done) == ("stopped", FIRST + timedelta(days=1), 2)
    assert count(session, Reading) == 2 * 6 * 24 and seen == [FIRST, FIRST + timedelta(days=1)]
    assert row.resumable and row.next_day == FIRST + timedelta(days=2)
    run = session.get(JobRun, row.job_run_id)
    assert run.status == "done" and (run.done, run.total) == (2, 4) and run.result.startswith("stopped: 2 of 4 days")

    patch.undo()
    row = resume_backfill(session, row)
    assert (row.status, row.last_completed_day, row.days_done) == ("done", LAST, 4)
    assert count(session, Reading) == 4 * 6 * 24
    assert (row.accepted, row.duplicates, row.skipped) == (4 * 6 * 24, 0, 0)
    pairs = session.execute(select(Reading.meter_id, Reading.taken_at)).all()
    assert len(set(pairs)) == len(pairs) and count(session, DeadLetter) == 0
    # Registers continue across days: the last one is the sum of every interval's kWh.
    serial = "SM010002"  # meter index 1: 0.2 kWh an hour
    last = session.scalar(select(Reading.register).join(Meter, Meter.id == Reading.meter_id).where(Meter.serial == serial)
                          .order_by(Reading.taken_at.desc()).limit(1))
    assert last == Decimal("0.2") * 24 * 4
    # The nightly import's freshness watermark is neither read nor moved.
    assert count(session, Setting) == 0 or not session.scalar(
        select(func.count()).select_from(Setting).where(Setting.key.like("koios.synced.%")))


def test_rerunning_a_koios_range_stores_nothing_twice(session, koios_estate):
    estate, _ = koios_estate
    first = start_backfill(session, "koios", estate, FIRST, LAST)
    assert first.accepted == 4 * 6 * 24
    again = start_backfill(session, "koios", estate, FIRST, LAST)
    assert again.status == "done" and (again.accepted, again.duplicates, again.skipped) == (0, 4 * 6 * 24, 0)
    assert count(session, Reading) == 4 * 6 * 24 and count(session, DeadLetter) == 0


def test_days_before_a_meters_first_reading_are_stored_as_history_and_bill_nothing(session, koios_estate):
    """1PWR's case: years of vendor data before go-live must not charge wallets again."""
    from app.ledger.verify import verify_ledger
    from app.models import LedgerTransaction
    from app.models.metering import ConsumptionRollup

    estate, _ = koios_estate
    start_backfill(session, "koios", estate, LAST, LAST)  # go-live: the meters' first stored day
    posted = count(session, LedgerTransaction)
    newest = dict(session.execute(select(Meter.serial, Meter.last_reading_at)).all())
    earlier = start_backfill(session, "koios", estate, FIRST, LAST)
    assert earlier.status == "done"
    assert (earlier.accepted, earlier.history, earlier.duplicates, earlier.skipped) == (
        3 * 6 * 24, 3 * 6 * 24, 6 * 24, 0)
    assert "history, not billed" in earlier.summary
    assert count(session, Reading) == 4 * 6 * 24 and count(session, DeadLetter) == 0
    assert count(session, LedgerTransaction) == posted and verify_ledger(session).ok
    assert dict(session.execute(select(Meter.serial, Meter.last_reading_at)).all()) == newest
    days = session.scalars(select(ConsumptionRollup.period_start).where(ConsumptionRollup.grain == "day")
                           .distinct()).all()
    assert len(days) >= 4, "the history's days are in the roll-ups"
    again = start_backfill(session, "koios", estate, FIRST, LAST)
    assert (again.accepted, again.duplicates) == (0, 4 * 6 * 24) and count(session, Reading) == 4 * 6 * 24


def test_an_unfinished_backfill_of_the_same_source_and_estate_refuses_a_second(session, koios_estate):
    estate, _ = koios_estate
    row = SourceBackfill(source="koios", estate_id=estate.id, first_day=FIRST, last_day=LAST, status="running")
    session.add(row)
    session.commit()
    with pytest.raises(BackfillError, match=f"#{row.id}"):
        start_backfill(session, "koios", estate, FIRST, LAST)
    session.add(JobRun(kind="source_backfill", target=f"backfill:{row.id}", status="running"))
    session.commit()
    with pytest.raises(BackfillError):
        resume_backfill(session, row)  # running: nothing to resume


def test_a_backfill_whose_job_is_gone_can_be_resumed(session, koios_estate):
    """Stop pressed while queued, then the worker died before it began: the row must not wait forever."""
    estate, _ = koios_estate
    row = SourceBackfill(source="koios", estate_id=estate.id, first_day=FIRST, last_day=LAST, status="stopping")
    session.add(row)
    session.add(JobRun(kind="source_backfill", target="backfill:0", status="failed"))
    session.commit()
    row = resume_backfill(session, row)
    assert row.status == "done" and count(session, Reading) == 4 * 6 * 24


def test_a_koios_failure_keeps_the_days_done_and_resume_finishes(session, koios_estate):
    estate, emulator = koios_estate
    emulator.max_page_ok = 5  # too slow even at 10 rows a page: KoiosError on the first day
    row = start_backfill(session, "koios", estate, FIRST, LAST)
    assert row.status == "failed" and row.last_completed_day is None and "even at 10" in row.error
    emulator.max_page_ok = 200
    row = resume_backfill(session, row)
    assert row.status == "done" and count(session, Reading) == 4 * 6 * 24


@pytest.fixture
def thundercloud_app(app, monkeypatch):
    from tests.emulators.thundercloud import ThunderCloudEmulator, create_app

    emulator = ThunderCloudEmulator(token="tc-token")
    context = serving(create_app(emulator))
    base = context.__enter__()
    for key, value in {"THUNDERCLOUD_URL": base, "THUNDERCLOUD_TOKEN": "tc-token", "THUNDERCLOUD_SITES": "S1,S2",
                       "THUNDERCLOUD_BACKOFF": 0.01, "THUNDERCLOUD_TIMEOUT": 2}.items():
        monkeypatch.setitem(app.config, key, value)
    yield emulator
    context.__exit__(None, None, None)


def test_thundercloud_backfill_stops_resumes_and_reruns_idempotently(session, thundercloud_app):
    kit = factories.make_estate_with_wallet(session, currency="LSL")
    put_setting(session, "thundercloud_sites", ["S1", "S2"], kit.estate.id)
    session.commit()
    _, patch = stop_after(1, "_thundercloud_days")
    row = start_backfill(session, "thundercloud", kit.estate, FIRST, LAST)
    assert (row.status, row.days_done) == ("stopped", 1)
    assert count(session, ThunderCloudHeartbeat) == 2 * 3 * 6  # 2 sites x 3 meters x 6 heartbeats
    patch.undo()
    row = resume_backfill(session, row)
    assert (row.status, row.days_done, row.accepted) == ("done", 4, 4 * 2 * 3 * 6)
    beats, payments = count(session, ThunderCloudHeartbeat), count(session, ThunderCloudPayment)
    served = len(thundercloud_app.served)
    again = start_backfill(session, "thundercloud", kit.estate, FIRST, LAST)
    assert (again.accepted, again.duplicates) == (0, 4 * 2)  # every site-day imported before
    assert (count(session, ThunderCloudHeartbeat), count(session, ThunderCloudPayment)) == (beats, payments)
    assert len(thundercloud_app.served) == served  # nothing fetched again


def test_a_thundercloud_backfill_fetches_only_the_estates_sites(session, thundercloud_app):
    kit = factories.make_estate_with_wallet(session, currency="LSL")
    session.commit()
    with pytest.raises(BackfillError) as refused:
        start_backfill(session, "thundercloud", kit.estate, LAST, LAST)
    assert "no ThunderCloud sites" in refused.value.errors["estate"]
    put_setting(session, "thundercloud_sites", ["S2"], kit.estate.id)
    session.commit()
    row = start_backfill(session, "thundercloud", kit.estate, FIRST, LAST)
    assert (row.status, row.accepted) == ("done", 4 * 3 * 6)  # S2's 3 meters x 6 heartbeats a day
    names = session.scalars(select(ThunderCloudExport.name)).all()
    assert names and all(name.startswith("S2/") for name in names)


def test_the_estate_form_keeps_thundercloud_sites(app_ctx):
    from app.estates.settings_catalog import spec_for

    assert spec_for("thundercloud_sites").parse("S1, s-2 ,S1") == ["S1", "s-2"]


@pytest.mark.parametrize("source,first,last,field,message", [
    ("koios", LAST, TODAY, "last_day", "yesterday or earlier"),
    ("koios", LAST, LAST + timedelta(days=30), "last_day", "yesterday or earlier"),
    ("koios", LAST, FIRST, "first_day", "must not be after"),
    ("thundercloud", LAST - timedelta(days=400), LAST, "first_day", "At most 366 days"),
    ("koios", "2026-02-30", LAST, "first_day", "YYYY-MM-DD"),
    ("sap", FIRST, LAST, "source", "Koios or ThunderCloud"),
])
def test_requests_are_checked_field_by_field(app_ctx, source, first, last, field, message):
    with pytest.raises(BackfillError) as refused:
        parse_request(source, 1, str(first), str(last))
    assert message in refused.value.errors[field]


def test_an_old_thundercloud_range_within_the_limit_is_fine(app_ctx):
    assert parse_request("thundercloud", "3", str(LAST - timedelta(days=500)), str(LAST - timedelta(days=450)))[1] == 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(source=st.text(max_size=20), estate=st.one_of(st.none(), st.text(max_size=12), st.integers()),
       first=st.text(max_size=20), last=st.text(max_size=20))
def test_any_request_is_parsed_or_refused_by_field(app_ctx, source, estate, first, last):
    try:
        parse_request(source, estate, first, last)
    except BackfillError as error:
        assert error.errors and set(error.errors) <= {"source", "estate", "first_day", "last_day"}


def test_the_staff_page_starts_lists_stops_and_guards(app, committed, login, koios_estate):
    estate, _ = koios_estate
    with committed() as s:
        staff = make_login(s, "staff").email
    client = login(staff)
    page = client.get("/staff/backfills")
    assert page.status_code == 200 and "Start a backfill" in page.get_data(as_text=True)
    token = csrf_from(page.get_data(as_text=True))
    form = {"source": "koios", "estate": str(estate.id), "first_day": str(LAST), "last_day": str(LAST - timedelta(days=1))}
    assert client.post("/staff/backfills", data=form).status_code == 400  # no CSRF token
    refused = client.post("/staff/backfills", data={**form, "csrf_token": token})
    assert refused.status_code == 400 and "must not be after" in refused.get_data(as_text=True)
    done = client.post("/staff/backfills", data={**form, "last_day": str(LAST), "csrf_token": token})
    assert done.status_code == 302
    listing = client.get("/staff/backfills").get_data(as_text=True)
    assert "1 / 1" in listing and "144 new readings" in listing
    with committed() as s:
        row_id = s.scalar(select(SourceBackfill.id))
    stop = client.post(f"/staff/backfills/{row_id}/stop", data={"csrf_token": token})
    assert stop.status_code == 400 and "Only a queued or running backfill" in stop.get_data(as_text=True)
    assert client.post("/staff/backfills/999999/stop", data={"csrf_token": token}).status_code == 404
    assert client.post("/staff/backfills/999999/resume", data={"csrf_token": token}).status_code == 404


def test_the_cli_backfills_a_range_and_refuses_bad_input(app, session, koios_estate):
    estate, _ = koios_estate
    runner = app.test_cli_runner()
    done = runner.invoke(args=["sources", "backfill", "--estate", estate.code, "--source", "koios",
                               "--from", str(LAST), "--to", str(LAST)])
    assert done.exit_code == 0 and "done: 1 of 1 days" in done.output and "144 new readings" in done.output
    future = runner.invoke(args=["sources", "backfill", "--estate", estate.code, "--source", "koios",
                                 "--from", str(LAST), "--to", str(TODAY)])
    assert future.exit_code != 0 and "yesterday or earlier" in future.output
    unknown = runner.invoke(args=["sources", "backfill", "--estate", "NOPE", "--source", "koios",
                                  "--from", str(LAST), "--to", str(LAST)])
    assert unknown.exit_code != 0 and "no estate with code 'NOPE'" in unknown.output


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=st.fixed_dictionaries({"source": st.sampled_from(["koios", "thundercloud", "", "x" * 300]),
                                   "estate": st.one_of(st.just(""), st.text(max_size=12), st.integers().map(str)),
                                   "first_day": st.text(max_size=14), "last_day": st.text(max_size=14)}))
def test_the_start_form_answers_any_input_with_a_page_never_a_500(app, staff_form, form):
    client, token = staff_form
    response = client.post("/staff/backfills", data={**form, "csrf_token": token})
    assert response.status_code in (302, 400)


@pytest.fixture
def staff_form(app, committed, login):
    with committed() as s:
        email = make_login(s, "staff").email
    client = login(email)
    return client, csrf_from(client.get("/staff/backfills").get_data(as_text=True))
