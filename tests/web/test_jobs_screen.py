"""Staff → Jobs (S3, S4): one schedule list for rq cron and the screen, last/next run, failures with
their traceback and RQ's retries with backoff, an audited retry button, history per kind, and a
restart that registers each scheduled job once."""
import importlib
import re
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from app import jobs
from app.job_schedule import cron_in_words, schedule, start_scheduled, uisp_refresh_cron
from app.models import AuditLog, JobRun
from tests.factories import make_user
from tests.helpers import csrf_from, sign_in, redis_test_url

REDIS_URL = redis_test_url(9)  # this suite's own database (test_jobs_notify uses 15)
pytestmark = pytest.mark.usefixtures("_fresh_rate_limits")


@pytest.fixture
def staff_client(session, app):
    staff = make_user(session, "staff")
    session.commit()
    client = app.test_client()
    assert sign_in(client, staff.email).status_code == 302
    return client


@pytest.fixture
def redis_queue(app, monkeypatch):
    from redis import Redis

    connection = Redis.from_url(REDIS_URL)
    connection.flushdb()
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_URL)
    yield connection
    connection.flushdb()


def work_queue(connection) -> None:
    from rq import SimpleWorker

    SimpleWorker(list(jobs.QUEUES), connection=connection).work(burst=True)


def rows_of(html: str, table_id: str) -> list[str]:
    table = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in ("<tr" + part for part in table.split("<tr")[2:])]


def test_the_screen_lists_every_scheduled_job_with_its_schedule_and_next_run(session, staff_client):
    started = datetime.now(UTC) - timedelta(minutes=5)
    session.add(JobRun(kind="pocket_flows", status="done", started_at=started,
                       finished_at=started + timedelta(seconds=2.5), result="folded 4 postings"))
    session.commit()
    page = staff_client.get("/staff/jobs").get_data(as_text=True)
    rows = rows_of(page, "jobs-scheduled")
    assert len(rows) == len(schedule()) and {"relay_holds", "budget_alerts", "uisp_refresh"} <= {e.name for e in schedule()}
    assert any(r.startswith("Refresh from UISP") and "Every 6 hours at :40" in r for r in rows)
    flows = next(r for r in rows if r.startswith("Pocket roll-ups"))
    assert "Every 10 minutes" in flows and "2.5 s" in flows and "Finished" in flows and "Folded 4 postings" in flows
    assert "never" in next(r for r in rows if r.startswith("Budget alerts"))
    assert "Ledger verification" in page  # an on-demand kind, listed below the schedule
    assert 'href="/staff/jobs"' in page  # the staff nav links here


def test_next_run_and_schedule_in_words():
    assert [cron_in_words(c) for c in ("*/30 * * * *", "7 * * * *", "15 3 * * *", "40 */6 * * *",
                                       "5 * 1 * *", "0 0 * * 1")] == [
        "Every 30 minutes", "Hourly at :07", "Daily at 03:15 UTC", "Every 6 hours at :40 (from 00:40 UTC)",
        "Hourly at :05 on day 1 of each month (UTC)", "cron 0 0 * * 1 (UTC)"]
    entry = next(e for e in schedule() if e.name == "ledger_anchors")
    assert entry.next_run(datetime(2026, 12, 2, 3, 16, tzinfo=UTC)) == datetime(2026, 12, 3, 3, 15, tzinfo=UTC)


def test_uisp_refresh_interval_is_configurable(app, monkeypatch):
    assert uisp_refresh_cron(6) == "40 */6 * * *" and uisp_refresh_cron(24) == "40 3 * * *"
    for bad in (0, 25, -1, True):
        with pytest.raises(ValueError):
            uisp_refresh_cron(bad)
    monkeypatch.setitem(app.config, "UISP_REFRESH_HOURS", 2)
    from app.job_schedule import by_name
    assert by_name(app.config, "uisp_refresh").cron == "40 */2 * * *"


def _load_cron_module():
    sys.modules.pop("workers.cron", None)
    return importlib.import_module("workers.cron")


def test_a_restart_registers_each_scheduled_job_once(redis_queue):
    from rq import cron
    from rq.cron import CronScheduler

    cron._job_data_registry.clear()
    module = _load_cron_module()
    importlib.reload(module)  # the file loaded twice (a worker importing it, a reload)
    names = [data["name"] for data in cron._job_data_registry]
    assert names == [entry.name for entry in schedule()], "each job registered once"
    cron._job_data_registry.clear()
    for _restart in range(2):  # the cron process started, killed, started again
        scheduler = CronScheduler(connection=redis_queue)
        scheduler.load_config_from_file("workers/cron.py")
        scheduler.register_birth()
        assert [job.name for job in scheduler.get_jobs()] == [entry.name for entry in schedule()]
        assert {job.func_name for job in scheduler.get_jobs()} == {"app.job_schedule.start_scheduled"}
    assert len(schedule()) == len({entry.name for entry in schedule()}) == len({e.kind for e in schedule()})


def test_the_cron_firing_twice_starts_one_run(app_ctx, session, redis_queue):
    from rq import Queue

    first, second = start_scheduled("budget_alerts"), start_scheduled("budget_alerts")
    assert first == second
    assert session.scalar(select(JobRun.id).where(JobRun.kind == "budget_alerts"))
    assert len(session.scalars(select(JobRun).where(JobRun.kind == "budget_alerts")).all()) == 1
    assert Queue("low", connection=redis_queue).count == 1


def test_a_job_that_raises_is_retried_with_backoff_and_shows_failed_with_its_traceback(
        session, staff_client, redis_queue, monkeypatch):
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    def explode(session, progress):
        raise RuntimeError("pocket flows exploded on purpose")
    monkeypatch.setitem(jobs.REGISTRY, "pocket_flows", explode)
    page = staff_client.get("/staff/jobs").get_data(as_text=True)
    answer = staff_client.post("/staff/jobs/pocket_flows/retry", data={"csrf_token": csrf_from(page)})
    assert answer.status_code == 302
    work_queue(redis_queue)
    run = session.scalar(select(JobRun).where(JobRun.kind == "pocket_flows"))
    session.refresh(run)
    assert run.status == "failed"
    rq_job = Job.fetch(f"run-{run.id}", connection=redis_queue)
    assert rq_job.retries_left == len(jobs.RETRY_INTERVALS) - 1
    assert rq_job.id in ScheduledJobRegistry("low", connection=redis_queue).get_job_ids(), "retried after a delay"
    flows = next(r for r in rows_of(staff_client.get("/staff/jobs").get_data(as_text=True), "jobs-scheduled")
                 if r.startswith("Pocket roll-ups"))
    assert "Failed" in flows and "RuntimeError: pocket flows exploded on purpose" in flows and "Retry now" in flows
    history = staff_client.get("/staff/jobs/pocket_flows").get_data(as_text=True)
    assert "Traceback (most recent call last)" in history and "in explode" in history


def test_retry_needs_csrf_is_audited_and_history_shows_the_run(session, staff_client):
    page = staff_client.get("/staff/jobs").get_data(as_text=True)
    assert staff_client.post("/staff/jobs/meter_watch/retry").status_code == 400  # no CSRF token
    answer = staff_client.post("/staff/jobs/meter_watch/retry", data={"csrf_token": csrf_from(page)})
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/staff/jobs/meter_watch")
    run = session.scalar(select(JobRun).where(JobRun.kind == "meter_watch"))
    assert run.status == "done"
    audit = session.scalar(select(AuditLog).where(AuditLog.action == "job.retry"))
    assert audit.entity_id == str(run.id) and audit.new["kind"] == "meter_watch" and audit.actor_user_id
    history = staff_client.get("/staff/jobs/meter_watch").get_data(as_text=True)
    assert rows_of(history, "job-runs")[0].startswith(f"{run.id} ")
    # A kind nobody schedules cannot be retried from here; an unknown kind is a 404.
    refused = staff_client.post("/staff/jobs/ledger_verify/retry", data={"csrf_token": csrf_from(page)})
    assert refused.status_code == 400 and "its own page" in refused.get_data(as_text=True)
    assert staff_client.post("/staff/jobs/nope/retry", data={"csrf_token": csrf_from(page)}).status_code == 404


def test_running_jobs_show_their_progress_panel(session, staff_client):
    session.add(JobRun(kind="uisp_refresh", target="uisp:all", status="running", done=3, total=10,
                       started_at=datetime.now(UTC)))
    session.commit()
    page = staff_client.get("/staff/jobs").get_data(as_text=True)
    assert 'id="jobs-running"' in page and "3 / 10" in page and 'hx-get="/jobs/1"' in page


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.text(min_size=1, max_size=80))
def test_any_job_kind_in_the_url_is_a_page_or_a_404(staff_client, kind):
    from urllib.parse import quote

    response = staff_client.get(f"/staff/jobs/{quote(kind, safe='')}")
    assert response.status_code in (200, 404, 308)
