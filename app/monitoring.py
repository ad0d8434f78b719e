"""Monitoring: RQ queue depths, MQTT ingest lag and the Prometheus metrics behind `GET /metrics`.

Every figure is read at scrape time from Redis and the database, never from counters kept in
one process's memory: the web process that answers `/metrics` is not the worker that ingests
or runs jobs, and several of each may run. Counters are totals kept in the database (readings
each ingest worker processed, dead letters, job runs), so Prometheus' `rate()` gives the rate.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

METRICS_SETTING = "metrics_enabled"  # global setting; METRICS_ENABLED in the config also switches it on


@dataclass
class QueueStats:
    name: str
    depth: int
    oldest_age_seconds: float | None  # the oldest job still waiting (None: the queue is empty)


def queue_stats(redis_url: str, queues: tuple[str, ...], now: datetime | None = None) -> list[QueueStats]:
    """Depth and oldest waiting job's age of each RQ queue (raises when Redis does not answer)."""
    from redis import Redis
    from rq import Queue
    from rq.job import Job

    now = now or datetime.now(UTC)
    connection = Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    stats = []
    for name in queues:
        queue = Queue(name, connection=connection)
        depth = queue.count
        oldest = None
        if depth:
            first = queue.get_job_ids(0, 1)
            job = Job.fetch(first[0], connection=connection) if first else None
            if job is not None and job.enqueued_at is not None:
                enqueued = job.enqueued_at if job.enqueued_at.tzinfo else job.enqueued_at.replace(tzinfo=UTC)
                oldest = round(max(0.0, (now - enqueued).total_seconds()), 1)
        stats.append(QueueStats(name, depth, oldest))
    return stats


@dataclass
class IngestLag:
    backlog: int  # messages the live workers received and have not yet put in a batch
    lag_seconds: float | None  # since the last batch of a worker with a backlog (0: none waiting)


def ingest_lag(session: Session, stale_after: timedelta, now: datetime | None = None) -> IngestLag:
    """How far the live MQTT ingest workers are behind, from their heartbeats."""
    from app.models.ingest import IngestHeartbeat

    now = now or datetime.now(UTC)
    rows = session.scalars(select(IngestHeartbeat).where(IngestHeartbeat.beat_at >= now - stale_after,
                                                         IngestHeartbeat.stopped_at.is_(None))).all()
    if not rows:
        return IngestLag(0, None)
    waiting = [row for row in rows if row.backlog > 0]
    if not waiting:
        return IngestLag(0, 0.0)
    # A worker with a backlog has been behind at least since its last batch (or its start).
    since = min(row.last_batch_at or row.started_at for row in waiting)
    return IngestLag(sum(row.backlog for row in waiting), round(max(0.0, (now - since).total_seconds()), 1))


def metrics_enabled(session: Session, config) -> bool:
    """Whether `/metrics` answers: the config switch or the global setting."""
    from app.settings import get_setting

    return bool(config.get("METRICS_ENABLED")) or bool(get_setting(session, METRICS_SETTING, default=False))


def set_metrics_enabled(session: Session, on: bool) -> None:
    """Switch `/metrics` on or off (audited); commits once."""
    from app.settings import put_setting

    put_setting(session, METRICS_SETTING, bool(on))
    session.commit()


class DatabaseCollector:
    """A prometheus-client collector that reads the figures from the database and Redis."""

    def __init__(self, session: Session, config, now: datetime | None = None):
        self.session, self.config, self.now = session, config, now or datetime.now(UTC)

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        from app.models import JobRun
        from app.models.ingest import IngestHeartbeat, ModbusDeviceStatus
        from app.models.metering import DeadLetter

        session, now = self.session, self.now
        stale_after = timedelta(seconds=3 * self.config.get("INGEST_HEARTBEAT_SECONDS", 5))
        live = session.scalars(select(IngestHeartbeat).where(IngestHeartbeat.stopped_at.is_(None))
                               .order_by(IngestHeartbeat.client_id)).all()

        readings = CounterMetricFamily("meterwise_ingest_messages", "Messages an MQTT ingest worker processed "
                                       "since it started (rate() is the ingest rate)", labels=["worker"])
        batch = GaugeMetricFamily("meterwise_ingest_last_batch_seconds", "How long the worker's last batch "
                                  "took, decode to commit", labels=["worker"])
        size = GaugeMetricFamily("meterwise_ingest_last_batch_size", "Messages in the worker's last batch",
                                 labels=["worker"])
        backlog = GaugeMetricFamily("meterwise_ingest_backlog", "Messages received and not yet in a batch",
                                    labels=["worker"])
        up = GaugeMetricFamily("meterwise_ingest_worker_up", "1 when the worker's heartbeat is fresh",
                               labels=["worker"])
        for row in live:
            fresh = row.beat_at >= now - stale_after
            readings.add_metric([row.client_id], row.readings)
            size.add_metric([row.client_id], row.last_batch_size)
            backlog.add_metric([row.client_id], row.backlog)
            up.add_metric([row.client_id], 1 if fresh else 0)
            if row.last_batch_seconds is not None:
                batch.add_metric([row.client_id], row.last_batch_seconds)
        yield from (readings, batch, size, backlog, up)
        lag = ingest_lag(session, stale_after, now)
        if lag.lag_seconds is not None:
            yield GaugeMetricFamily("meterwise_ingest_lag_seconds", "How long live ingest workers have had "
                                    "messages waiting", value=lag.lag_seconds)

        dead_total, dead_open = session.execute(select(
            func.count(DeadLetter.id), func.count(DeadLetter.id).filter(DeadLetter.replayed_at.is_(None)))).one()
        yield CounterMetricFamily("meterwise_dead_letters", "Messages refused into the dead letters", value=dead_total)
        yield GaugeMetricFamily("meterwise_dead_letters_open", "Dead letters not yet replayed", value=dead_open)

        runs = CounterMetricFamily("meterwise_job_runs", "Tracked job runs by kind and outcome",
                                   labels=["kind", "status"])
        failures = CounterMetricFamily("meterwise_job_failures", "Tracked job runs that failed", labels=["kind"])
        for kind, status, count in session.execute(select(JobRun.kind, JobRun.status, func.count())
                                                   .group_by(JobRun.kind, JobRun.status).order_by(JobRun.kind)):
            runs.add_metric([kind, status], count)
            if status == "failed":
                failures.add_metric([kind], count)
        yield runs
        yield failures
        durations = SummaryMetricFamily("meterwise_job_duration_seconds", "Time finished job runs took",
                                        labels=["kind"])
        rows = session.execute(select(JobRun.kind, JobRun.started_at, JobRun.finished_at).where(
            JobRun.started_at.is_not(None), JobRun.finished_at.is_not(None))).all()
        totals: dict[str, list[float]] = {}
        for kind, started, finished in rows:
            totals.setdefault(kind, []).append(max(0.0, (finished - started).total_seconds()))
        for kind in sorted(totals):
            durations.add_metric([kind], count_value=len(totals[kind]), sum_value=sum(totals[kind]))
        yield durations

        devices = GaugeMetricFamily("meterwise_modbus_device_up", "1 when the device's last Modbus poll "
                                    "succeeded", labels=["meter"])
        for row in session.scalars(select(ModbusDeviceStatus).order_by(ModbusDeviceStatus.meter_serial)):
            devices.add_metric([row.meter_serial], 1 if row.state == "ok" else 0)
        yield devices

        redis_url = self.config.get("REDIS_URL")
        if redis_url:
            from app.jobs import QUEUES

            depth = GaugeMetricFamily("meterwise_rq_queue_depth", "Jobs waiting in the RQ queue", labels=["queue"])
            oldest = GaugeMetricFamily("meterwise_rq_oldest_job_age_seconds", "Age of the oldest waiting job",
                                       labels=["queue"])
            try:
                for stat in queue_stats(redis_url, QUEUES, now):
                    depth.add_metric([stat.name], stat.depth)
                    oldest.add_metric([stat.name], stat.oldest_age_seconds or 0)
            except Exception:  # Redis down: /healthz says so; the other figures still count
                pass
            else:
                yield depth
                yield oldest


def render_metrics(session: Session, config, now: datetime | None = None) -> bytes:
    """The Prometheus text exposition of every figure above."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(session, config, now))
    return generate_latest(registry)
