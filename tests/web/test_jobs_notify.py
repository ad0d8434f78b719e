"""Background jobs (inline and on RQ) and notifications (in-app, email over SMTP)."""
from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy import select

from app import jobs
from app.jobs import enqueue, enqueue_after_commit
from app.models import JobRun, Notification, Person
from app.notify import notify
from tests import factories
from tests.helpers import make_login, redis_test_url

REDIS_TEST_URL = redis_test_url(15)


@pytest.fixture
def register():
    """`register(kind, fn)` adds a throwaway job for one test."""
    added = []

    def add(kind, fn):
        assert kind not in jobs.REGISTRY
        jobs.job(kind)(fn)
        added.append(kind)
        return fn
    yield add
    for kind in added:
        jobs.REGISTRY.pop(kind, None)


@pytest.fixture
def calls(register):
    """A job `test_count` that records its arguments and reports progress over 3 items."""
    seen = []

    def count(session, progress, *args):
        seen.append(args)
        progress.set_total(3)
        for _ in range(3):
            progress.step()
        return f"counted 3 for {args}"
    register("test_count", count)
    return seen


def fresh(session, run: JobRun) -> JobRun:
    return session.get(JobRun, run.id, populate_existing=True)


# --- inline jobs ----------------------------------------------------------------------

def test_inline_job_is_recorded_done_with_its_result(session, calls):
    run = enqueue("test_count", "estate-7", target="estate:7", user_id=None)
    assert calls == [("estate-7",)]
    run = fresh(session, run)
    assert (run.status, run.result, run.done, run.total, run.percent) == \
        ("done", "counted 3 for ('estate-7',)", 3, 3, 100)
    assert run.started_at is not None and run.finished_at >= run.started_at
    assert run.errors == []


def test_failing_job_is_recorded_failed_with_its_error(session, register):
    def explode(session, progress):
        progress.set_total(2)
        progress.step()
        raise ValueError("meter 42 sent garbage")
    register("test_explode", explode)
    run = fresh(session, enqueue("test_explode"))
    assert run.status == "failed"
    assert run.errors == ["ValueError: meter 42 sent garbage"]
    assert "ValueError" in run.result and run.finished_at is not None
    assert run.done == 1 and run.total == 2, "progress made before the failure is kept"


def test_unknown_job_kind_is_refused_before_anything_is_recorded(session):
    with pytest.raises(KeyError):
        enqueue("no_such_job")
    assert session.scalar(select(JobRun)) is None


def test_enqueue_joins_a_job_already_running_for_the_same_target(session, calls):
    running = JobRun(kind="test_count", target="estate:1", status="running")
    session.add(running)
    session.commit()
    joined = enqueue("test_count", target="estate:1")
    assert joined.id == running.id and calls == [], "the running job is joined, not started twice"
    other = enqueue("test_count", target="estate:2")
    assert other.id != running.id and fresh(session, other).status == "done"
    assert calls == [()]
    fresh(session, running).status = "done"
    session.commit()
    again = enqueue("test_count", target="estate:1")
    assert again.id not in (running.id, other.id), "a finished job is not joined"
    assert len(calls) == 2


def test_untracked_job_writes_no_job_row(session, calls):
    assert enqueue("test_count", track=False) is None
    assert calls == [()]
    assert session.scalar(select(JobRun)) is None


# --- RQ -------------------------------------------------------------------------------

@pytest.fixture
def redis_queue(app, monkeypatch):
    """Jobs go to RQ on Redis db 15 (emptied before and after)."""
    from redis import Redis

    connection = Redis.from_url(REDIS_TEST_URL)
    connection.flushdb()
    monkeypatch.setitem(app.config, "REDIS_URL", REDIS_TEST_URL)
    yield connection
    connection.flushdb()


def work_queue(connection) -> None:
    from rq import SimpleWorker

    SimpleWorker(list(jobs.QUEUES), connection=connection).work(burst=True)


def test_with_redis_the_job_is_queued_then_run_by_a_worker(session, calls, redis_queue):
    from rq import Queue

    run = enqueue("test_count", "estate-3", target="estate:3")
    assert fresh(session, run).status == "queued" and calls == []
    assert Queue("default", connection=redis_queue).job_ids == [f"run-{run.id}"]
    joined = enqueue("test_count", "estate-3", target="estate:3")
    assert joined.id == run.id
    assert Queue("default", connection=redis_queue).count == 1, "joining does not queue twice"
    work_queue(redis_queue)
    assert calls == [("estate-3",)]
    run = fresh(session, run)
    assert (run.status, run.result, run.done, run.total) == ("done", "counted 3 for ('estate-3',)", 3, 3)


def test_with_redis_a_failing_job_is_visible_and_retried_later(session, register, redis_queue):
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    def explode(session, progress):
        raise RuntimeError("UISP answered 502")
    register("test_explode_rq", explode)
    run = enqueue("test_explode_rq")
    work_queue(redis_queue)
    run = fresh(session, run)
    assert run.status == "failed" and run.errors == ["RuntimeError: UISP answered 502"]
    rq_job = Job.fetch(f"run-{run.id}", connection=redis_queue)
    assert rq_job.retries_left == len(jobs.RETRY_INTERVALS) - 1
    assert f"run-{run.id}" in ScheduledJobRegistry("default", connection=redis_queue).get_job_ids(), \
        "the failure is scheduled for a retry with backoff"


def test_ledger_verify_through_rq_reports_ledger_ok(session, redis_queue):
    kit = factories.make_estate_with_wallet(session)
    factories.make_topup(session, kit.pocket(), "50.00", clearing=kit.accounts.clearing)
    session.commit()
    run = enqueue("ledger_verify")
    work_queue(redis_queue)
    run = fresh(session, run)
    assert run.status == "done" and run.result.endswith("LEDGER OK")
    assert "1 transactions, chain intact" in run.result


# --- after-commit enqueueing ------------------------------------------------------------

@pytest.fixture
def marks(register):
    """A job `test_mark` that records which person it found (it runs after commit)."""
    seen = []

    def mark(session, progress, person_id):
        person = session.get(Person, person_id)
        seen.append(person.full_name if person else None)
    register("test_mark", mark)
    return seen


def test_enqueue_after_commit_runs_only_once_committed(session, marks):
    person = Person(full_name="Committed Carla")
    session.add(person)
    session.flush()
    enqueue_after_commit(session, "test_mark", person.id, track=False)
    assert marks == [], "nothing runs before the commit"
    session.commit()
    assert marks == ["Committed Carla"], "the job runs after commit and sees the committed row"
    session.add(Person(full_name="Other"))
    session.commit()
    assert marks == ["Committed Carla"], "a later commit does not run it again"


def test_enqueue_after_commit_is_dropped_on_rollback(session, marks):
    person = Person(full_name="Rolled Back Rob")
    session.add(person)
    session.flush()
    enqueue_after_commit(session, "test_mark", person.id, track=False)
    session.rollback()
    session.add(Person(full_name="Next"))
    session.commit()
    assert marks == []


def test_rolling_back_a_savepoint_keeps_jobs_of_the_outer_transaction(session, marks):
    """A bulk operation that rolls back one bad row (a savepoint) must not lose the
    notifications queued for the good rows before it."""
    good = Person(full_name="Good Row")
    session.add(good)
    session.flush()
    enqueue_after_commit(session, "test_mark", good.id, track=False)
    savepoint = session.begin_nested()
    bad = Person(full_name="Bad Row")
    session.add(bad)
    session.flush()
    enqueue_after_commit(session, "test_mark", bad.id, track=False)
    savepoint.rollback()
    session.commit()
    assert marks == ["Good Row"], "the good row's job runs; the rolled-back row's does not"


def test_jobs_asked_inside_a_released_savepoint_wait_for_the_outer_commit(session, marks):
    with session.begin_nested():
        person = Person(full_name="Saved Sam")
        session.add(person)
        session.flush()
        enqueue_after_commit(session, "test_mark", person.id, track=False)
    assert marks == [], "releasing a savepoint is not a commit"
    session.commit()
    assert marks == ["Saved Sam"]


# --- notifications ----------------------------------------------------------------------

class Inbox:
    """aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages = []
        self.received = threading.Event()

    async def handle_DATA(self, server, smtp_session, envelope):
        from email import message_from_bytes, policy

        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        self.received.set()
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    """An SMTP server on 127.0.0.1 in this process; `.start()` and `.stop()` it at will."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.inbox = inbox
    controller.url = f"smtp://127.0.0.1:{controller.port}"
    yield controller
    try:
        controller.stop()
    except AssertionError:
        pass  # never started, or already stopped


INVITE = {"name": "Thandi Nkosi", "inviter": "Acacia Agents", "estate": "Acacia Gardens",
          "link": "http://127.0.0.1:5000/invite/abc", "days": 7}


@pytest.fixture
def recipient(committed):
    with committed() as s:
        estate = factories.make_estate(s)
        user = make_login(s, "tenant", unit=factories.make_unit(s, estate), full_name="Thandi Nkosi",
                          email="thandi@example.test")
        return user.email


def send(committed, email: str, channels=("in_app", "email")) -> list[int]:
    from app.models import User

    with committed() as s:
        user = s.scalar(select(User).where(User.email == email))
        rows = notify(s, "invite", INVITE, user=user, channels=channels)
        return [row.id for row in rows]


def rows_of(committed) -> list[dict]:
    with committed() as s:
        query = select(Notification).order_by(Notification.id)
        return [{c: getattr(n, c) for c in ("channel", "status", "attempts", "error", "to_address",
                                            "subject", "body", "sent_at", "read_at")}
                for n in s.scalars(query)]


def test_in_app_notification_shows_in_the_inbox_of_its_user_only(app, committed, recipient, login, world):
    send(committed, recipient, channels=("in_app",))
    page = login(recipient).get("/notifications").get_data(as_text=True)
    assert "You are invited to Meterwise" in page
    assert "Acacia Agents has given you access to Meterwise for Acacia Gardens." in page
    assert rows_of(committed)[0]["read_at"] is not None, "opening the inbox marks it read"
    other = login(world.emails["tenant"]).get("/notifications").get_data(as_text=True)
    assert "You are invited" not in other and "No messages." in other


def test_email_notification_is_delivered_over_smtp(app, monkeypatch, committed, recipient, smtp_server):
    smtp_server.start()
    monkeypatch.setitem(app.config, "MAIL_URL", smtp_server.url)
    send(committed, recipient)
    assert smtp_server.inbox.received.wait(5), "no email arrived"
    (rcpt, message), = smtp_server.inbox.messages
    assert rcpt == ["thandi@example.test"]
    assert message["Subject"] == "You are invited to Meterwise"
    assert message["To"] == "thandi@example.test"
    assert "Meterwise" in message["From"]
    content = message.get_content()
    assert "Hello Thandi Nkosi," in content and "http://127.0.0.1:5000/invite/abc" in content
    assert "works for 7 days" in content
    email_row = [r for r in rows_of(committed) if r["channel"] == "email"][0]
    assert (email_row["status"], email_row["attempts"], email_row["error"]) == ("sent", 1, None)
    assert email_row["sent_at"] is not None


def test_email_is_not_sent_when_the_caller_rolls_back(app, monkeypatch, committed, recipient, smtp_server):
    from app.models import User

    smtp_server.start()
    monkeypatch.setitem(app.config, "MAIL_URL", smtp_server.url)
    with app.app_context():
        from app.extensions import db

        user = db.session.scalar(select(User).where(User.email == recipient))
        notify(db.session, "invite", INVITE, user=user)
        db.session.rollback()
        db.session.remove()
    assert not smtp_server.inbox.received.wait(0.5)
    assert rows_of(committed) == []


def test_email_with_smtp_down_stays_pending_then_is_delivered(app, monkeypatch, committed, recipient,
                                                             smtp_server):
    monkeypatch.setitem(app.config, "MAIL_URL", smtp_server.url)  # nothing listens yet
    send(committed, recipient)
    rows = {r["channel"]: r for r in rows_of(committed)}
    assert rows["in_app"]["status"] == "sent", "the in-app copy does not wait for email"
    email = rows["email"]
    assert (email["status"], email["attempts"]) == ("pending", 1)
    assert "ConnectionRefusedError" in email["error"]
    assert "http://127.0.0.1:5000/invite/abc" in email["body"], "the message itself is kept"
    # The server comes back; the retry delivers the same message.
    smtp_server.start()
    with committed() as s:
        email_id = s.scalar(select(Notification.id).where(Notification.channel == "email"))
    with app.app_context():
        enqueue("deliver_email", email_id, track=False)
    assert smtp_server.inbox.received.wait(5)
    assert smtp_server.inbox.messages[0][1]["Subject"] == "You are invited to Meterwise"
    email = [r for r in rows_of(committed) if r["channel"] == "email"][0]
    assert (email["status"], email["attempts"], email["error"]) == ("sent", 2, None)
    # Delivering again sends nothing twice.
    with app.app_context():
        enqueue("deliver_email", email_id, track=False)
    assert len(smtp_server.inbox.messages) == 1


def test_email_gives_up_after_the_last_attempt(app, monkeypatch, committed, recipient):
    from app.notify.email import MAX_EMAIL_ATTEMPTS

    monkeypatch.setitem(app.config, "MAIL_URL", f"smtp://127.0.0.1:{free_port()}")
    send(committed, recipient, channels=("email",))
    with committed() as s:
        email_id = s.scalar(select(Notification.id))
    with app.app_context():
        for _ in range(MAX_EMAIL_ATTEMPTS - 1):
            enqueue("deliver_email", email_id, track=False)
    email = rows_of(committed)[0]
    assert (email["status"], email["attempts"]) == ("failed", MAX_EMAIL_ATTEMPTS)
    assert email["error"]


def test_email_without_mail_url_is_recorded_as_written_to_the_log(app, monkeypatch, committed, recipient):
    monkeypatch.setitem(app.config, "MAIL_URL", "")
    send(committed, recipient)
    email_row = [r for r in rows_of(committed) if r["channel"] == "email"][0]
    assert (email_row["status"], email_row["sent_at"], email_row["error"]) == ("logged", None, None)


def test_a_finished_job_panel_tells_the_page_once_a_running_one_does_not(app, world, login, committed):
    import json

    with committed() as s:
        done = JobRun(kind="uisp_refresh", target="uisp:all", status="done", result="ok")
        running = JobRun(kind="uisp_refresh", target="uisp:all", status="running")
        s.add_all([done, running])
        s.flush()
        done_id, running_id = done.id, running.id
    staff = login(world.emails["staff"])
    polled = staff.get(f"/jobs/{done_id}", headers={"HX-Request": "true"})
    events = json.loads(polled.headers["HX-Trigger"])
    detail = {"id": done_id, "kind": "uisp_refresh", "job_target": "uisp:all", "status": "done"}
    assert events == {"job-finished": detail, "job-finished-uisp-refresh": detail}
    still = staff.get(f"/jobs/{running_id}", headers={"HX-Request": "true"})
    assert "HX-Trigger" not in still.headers and "hx-trigger=\"load delay:1s\"" in still.get_data(as_text=True)
