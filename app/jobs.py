"""Background jobs: `enqueue()` runs a registered job on RQ (REDIS_URL) or inline without it.

A job is a plain function `fn(session, progress, *args)` registered with `@job("kind")`.
It gets its own session and commits its own work; `progress` writes the JobRun row in
separate short transactions so the HTMX progress component sees it move. RQ re-runs jobs
whose worker died, so every job body must be idempotent.
"""
import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session, scoped_session

from app.extensions import db
from app.models import JobRun, utcnow

log = logging.getLogger(__name__)
JobFunction = Callable[..., str | None]
REGISTRY: dict[str, JobFunction] = {}
QUEUES = ("high", "default", "low")
RETRY_INTERVALS = [10, 60, 300]
TRACEBACK_CHARS = 20_000  # a failed run keeps the end of its traceback for the Jobs screen


def job(kind: str) -> Callable[[JobFunction], JobFunction]:
    """Register a function as the job of this kind."""
    def register(fn: JobFunction) -> JobFunction:
        REGISTRY[kind] = fn
        return fn
    return register


class Progress:
    """Reports a job's done/total and per-item errors; writes at most twice a second."""

    def __init__(self, run_id: int | None):
        self.run_id = run_id
        self.done = 0
        self.total: int | None = None
        self.errors: list[str] = []
        self._written = 0.0

    def set_total(self, total: int) -> None:
        self.total = total
        self._write(force=True)

    def step(self, count: int = 1) -> None:
        self.done += count
        self._write()

    def error(self, message: str) -> None:
        self.errors.append(message)
        log.warning("job %s: %s", self.run_id, message)
        self._write()

    def _write(self, force: bool = False, **fields: Any) -> None:
        if self.run_id is None or (not force and time.monotonic() - self._written < 0.5):
            return
        with Session(db.engine) as session:
            run = session.get(JobRun, self.run_id)
            run.done, run.total, run.errors = self.done, self.total, list(self.errors)
            for name, value in fields.items():
                setattr(run, name, value)
            session.commit()
        self._written = time.monotonic()


_QUEUES: dict[tuple[str, str], Any] = {}  # (Redis URL, queue name) -> rq.Queue


def _queue(redis_url: str, name: str):
    """The RQ queue on `redis_url`, made once: its client's connection pool is reused by every
    enqueue (a new client per job opened a new connection each time: 3 ms a top-up)."""
    found = _QUEUES.get((redis_url, name))
    if found is None:
        from redis import Redis
        from rq import Queue

        found = _QUEUES[(redis_url, name)] = Queue(name, connection=Redis.from_url(redis_url))
    return found


def enqueue(kind: str, *args: Any, target: str = "all", user_id: int | None = None,
            track: bool = True, queue: str = "default") -> JobRun | None:
    """Start job `kind`; a tracked job already queued or running for the same target is joined."""
    if kind not in REGISTRY:
        raise KeyError(f"no job registered as {kind!r}")
    run_id = None
    if track:
        with Session(db.engine) as session:
            running = session.scalar(
                select(JobRun).where(JobRun.kind == kind, JobRun.target == target,
                                     JobRun.status.in_(("queued", "running")))
                .order_by(JobRun.id.desc())
            )
            if running is not None:
                return running
            run = JobRun(kind=kind, target=target, created_by_user_id=user_id)
            session.add(run)
            session.commit()
            run_id = run.id
    redis_url = current_app.config.get("REDIS_URL")
    if redis_url:
        from rq import Retry

        _queue(redis_url, queue).enqueue(
            run_job, kind, run_id, *args,
            job_id=f"run-{run_id}" if run_id else None,
            retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
        )
    else:
        run_job(kind, run_id, *args)
    if run_id is None:
        return None
    return db.session.get(JobRun, run_id, populate_existing=True)


def enqueue_after_commit(session: Session, kind: str, *args: Any, **options: Any) -> None:
    """Enqueue once `session` commits, so the worker sees the rows the job reads."""
    if isinstance(session, scoped_session):
        session = session()  # db.session: its current Session
    # Remember the (sub)transaction the job was asked for in: rolling back a savepoint
    # drops only the jobs asked for inside it (a bulk import's good rows keep theirs).
    transaction = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault("jobs_after_commit", []).append((transaction, kind, args, options))


@event.listens_for(Session, "after_commit")
def _enqueue_pending(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: nothing is committed yet, the jobs wait
    for _transaction, kind, args, options in session.info.pop("jobs_after_commit", []):
        enqueue(kind, *args, **options)


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction) -> None:
    pending = session.info.get("jobs_after_commit")
    if pending:
        session.info["jobs_after_commit"] = [
            item for item in pending if not _inside(item[0], previous_transaction)]


def _inside(transaction, rolled_back) -> bool:
    """Whether `transaction` is `rolled_back` or nested in it (None: asked before any began)."""
    if transaction is None:
        return rolled_back.parent is None
    while transaction is not None:
        if transaction is rolled_back:
            return True
        transaction = transaction.parent
    return False


def run_job(kind: str, run_id: int | None, *args: Any) -> str | None:
    """Run one job with its own session, recording status, timings and failure."""
    from app.audit import Actor, acting_as

    progress = Progress(run_id)
    progress._write(force=True, status="running", started_at=utcnow())
    try:
        with acting_as(Actor(f"system:{kind}")), Session(db.engine) as session:
            result = REGISTRY[kind](session, progress, *args)
    except Exception as error:
        log.exception("job %s (%s) failed", kind, run_id)
        progress.errors.append(f"{type(error).__name__}: {error}")
        progress._write(force=True, status="failed", finished_at=utcnow(),
                        result=traceback.format_exc()[-TRACEBACK_CHARS:])
        raise_in_worker = bool(current_app.config.get("REDIS_URL"))
        if raise_in_worker:
            raise  # RQ records it and retries with backoff
        return None
    progress._write(force=True, status="done", finished_at=utcnow(), result=result)
    return result
