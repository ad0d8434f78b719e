"""MQTT ingest worker (`make ingest`, M1): broker -> `app.metering.ingest.ingest()` in batches.

QoS 1 on a persistent session (clean session off, fixed client id), manual acknowledgement:
a batch is acknowledged only after its transaction commits, so a crash re-delivers and the
pipeline's idempotency makes the replay harmless. Relay commands are published from the
outbox after commit. In maintenance mode (M7) the worker disconnects and keeps its session:
messages wait in the broker until it resumes.

Settings come from app/config.py: DATABASE_URL, MQTT_URL (empty: mqtt://127.0.0.1:1883),
MQTT_CLIENT_ID, MQTT_SHARED=1 (join the `$share/<MQTT_SHARE_GROUP>/...` subscription, for
WORKERS>1), MQTT_TOPIC_PREFIX (tests isolate themselves with it), INGEST_BATCH_SIZE,
INGEST_BATCH_WAIT_MS, INGEST_HEARTBEAT_SECONDS (how often the worker writes its heartbeat,
which /healthz reads: client id, backlog, last batch), INGEST_LANES.

Lanes (INGEST_LANES > 1): messages are split by meter (a hash of the topic's serial or
DevEUI) into lanes, each batching and committing on its own thread and database session.
Lanes never share a meter, so their row locks do not collide; while one lane waits for
PostgreSQL another runs Python, which a single loop cannot do. The ledger's per-estate
chain lock still orders their postings, exactly as between separate worker processes.

A failing batch (issue 11): a database connection error (the server restarted, the backend
was terminated, a deadlock) is the database's fault, not the messages': the worker reconnects
and runs the same batch again, acknowledging nothing meanwhile. Any other failure is some
message's own content: the batch is halved, and halved again, until the message that fails on
its own is alone; it is dead-lettered and the rest commit (about 2·log2(N) batch attempts for
one bad message in N, where retrying one by one took N). A dead letter always fits
(`dead_letter_row`); should even its insert fail, the message goes to the spool file
(INGEST_SPOOL_PATH, one JSON line with the payload in base64) and is acknowledged, so that one
message never holds the broker's in-flight window.
"""
from __future__ import annotations

import base64
import gc
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from app import create_app  # noqa: E402
from app.extensions import db  # noqa: E402
from app.metering import credit_control  # noqa: E402
from app.metering.ingest import Message, dead_letter_row, ingest, ingest_paused, record_heartbeat  # noqa: E402
from app.models import canonical_serial, utcnow  # noqa: E402
from app.models.metering import DeadLetter  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError  # noqa: E402

log = logging.getLogger("meterwise.ingest")

READING_TOPICS = ("application/+/device/+/event/up", "meters/+/readings", "nbiot/+/up")
ACK_TOPIC = "meters/+/acks"
# A batch that keeps failing with a "connection" error while the database answers a ping is
# failing on its content after all (a statement timeout, say): after this many tries, bisect.
TRANSIENT_RETRIES = 3


def is_connection_error(error: BaseException) -> bool:
    """Whether the database, not the batch, failed: a lost or refused connection, a terminated
    backend (AdminShutdown), a deadlock or serialization failure (psycopg's OperationalError)."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError)


@dataclass(frozen=True)
class Settings:
    """How the worker connects, batches and reports; read from the app's configuration."""

    url: str
    client_id: str
    shared: bool
    share_group: str
    prefix: str
    batch_size: int
    batch_wait: float
    heartbeat: float = 5.0
    lanes: int = 1
    spool_path: str = "instance/ingest-spool.jsonl"

    @classmethod
    def from_config(cls, config) -> Settings:
        """Take the worker's settings from app/config.py (its environment variables)."""
        return cls(
            url=config.get("MQTT_URL") or "mqtt://127.0.0.1:1883",
            client_id=config["MQTT_CLIENT_ID"],
            shared=bool(config["MQTT_SHARED"]),
            share_group=config["MQTT_SHARE_GROUP"],
            prefix=config["MQTT_TOPIC_PREFIX"],
            batch_size=max(int(config["INGEST_BATCH_SIZE"]), 1),
            batch_wait=int(config["INGEST_BATCH_WAIT_MS"]) / 1000,
            heartbeat=float(config["INGEST_HEARTBEAT_SECONDS"]),
            lanes=max(int(config["INGEST_LANES"]), 1),
            spool_path=config["INGEST_SPOOL_PATH"],
        )

    def subscriptions(self) -> list[str]:
        topics = [self.prefix + t for t in (*READING_TOPICS, ACK_TOPIC)]
        return [f"$share/{self.share_group}/{t}" if self.shared else t for t in topics]


class IngestWorker:
    """Receives on paho's network thread; batches, commits and acknowledges on the main thread."""

    def __init__(self, app, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.inboxes: list[queue.Queue[mqtt.MQTTMessage]] = [queue.Queue() for _ in range(settings.lanes)]
        self.counting = threading.Lock()
        self.running = True
        self.paused = False
        self.connected = False
        self.started_at = utcnow()
        self.last_batch_at, self.last_batch_size, self.processed = None, 0, 0
        self.last_batch_seconds: float | None = None
        self.client = self._client()

    def _client(self) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.settings.client_id,
                             clean_session=False, protocol=mqtt.MQTTv311, manual_ack=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)  # exponential backoff
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = lambda _client, _userdata, message: self.inboxes[self._lane(message.topic)].put(message)
        return client

    def _on_connect(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        self.connected = True
        client.subscribe([(topic, 1) for topic in self.settings.subscriptions()])
        log.info("connected as %s; subscribed to %s", self.settings.client_id, self.settings.subscriptions())

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.connected = False
        if self.running and not self.paused:
            log.warning("MQTT disconnected (%s); reconnecting with backoff", reason_code)

    def connect(self) -> None:
        """Connect in the background; paho retries with backoff until the broker answers."""
        parts = urlparse(self.settings.url)
        if parts.username:
            self.client.username_pw_set(parts.username, parts.password)
        self.client.connect_async(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
        self.client.loop_start()

    def _lane(self, topic: str) -> int:
        """The lane of a message: one per meter, so that lanes never lock the same meter."""
        if len(self.inboxes) == 1:
            return 0
        parts = topic[len(self.settings.prefix):].split("/")
        key = canonical_serial(parts[1]) if parts[0] == "meters" and len(parts) > 1 else \
            (parts[3].lower() if len(parts) > 3 else topic)
        return zlib.crc32(key.encode()) % len(self.inboxes)

    def run(self) -> None:
        """Work until stopped: batches (on lane threads when several), outbox, maintenance checks."""
        self.connect()
        lanes = [threading.Thread(target=self._lane_loop, args=(index,), name=f"lane-{index}", daemon=True)
                 for index in range(len(self.inboxes))] if len(self.inboxes) > 1 else []
        for lane in lanes:
            lane.start()
        next_check = next_beat = 0.0
        with self.app.app_context():
            while self.running:
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + 1.0
                    self._housekeeping()
                if now >= next_beat:
                    next_beat = now + self.settings.heartbeat
                    self._heartbeat()
                if self.paused or lanes:
                    time.sleep(0.5 if self.paused else 0.2)
                    continue
                self._work(0)
            for lane in lanes:
                lane.join(30)
            self._heartbeat(stopped=True)
        self.client.disconnect()
        self.client.loop_stop()

    def _lane_loop(self, index: int) -> None:
        """One lane's thread: its own app context, so its own database session."""
        with self.app.app_context():
            while self.running:
                if self.paused:
                    time.sleep(0.5)
                    continue
                self._work(index)
            db.session.remove()

    def _work(self, index: int) -> None:
        """Take one batch from a lane's inbox and process it."""
        batch = self._next_batch(self.inboxes[index])
        if batch:
            started = time.monotonic()
            self._process(batch)
            with self.counting:
                self.last_batch_seconds = time.monotonic() - started
                self.last_batch_at, self.last_batch_size = utcnow(), len(batch)
                self.processed += len(batch)

    def stop(self, *_args) -> None:
        self.running = False

    def _next_batch(self, inbox: queue.Queue) -> list[mqtt.MQTTMessage]:
        try:
            batch = [inbox.get(timeout=0.5)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.settings.batch_wait
        while len(batch) < self.settings.batch_size:
            left = deadline - time.monotonic()
            try:
                batch.append(inbox.get(timeout=max(left, 0)) if left > 0 else inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _process(self, batch: list[mqtt.MQTTMessage]) -> None:
        """One transaction per batch; acknowledge only after commit; isolate what fails on its own."""
        if self._settle(batch):
            self._publish_commands()

    def _settle(self, messages: list[mqtt.MQTTMessage]) -> bool:
        """Commit `messages` and acknowledge them, or halve them until the failing one is alone
        and dead-letter it. Return whether anything committed (False also when stopping)."""
        error = self._attempt(messages)
        if error is None:
            for message in messages:
                self.client.ack(message.mid, message.qos)
            return True
        if error is _STOPPING:
            return False  # unacknowledged: the broker sends them again
        if len(messages) == 1:
            self._dead_letter(messages[0], error)
            return False
        log.warning("batch of %d failed (%s); halving it to find the message", len(messages), error)
        middle = len(messages) // 2
        left = self._settle(messages[:middle])
        return self._settle(messages[middle:]) or left

    def _attempt(self, messages: list[mqtt.MQTTMessage]):
        """Run and commit one batch: None when it committed, else the error it failed with on its
        own. Connection errors are waited out and the batch run again."""
        transient = 0
        while True:
            try:
                self._ingest(messages)
                db.session.commit()
                return None
            except Exception as error:
                self._rollback()
                if not is_connection_error(error):
                    return error
                transient += 1
                log.warning("database connection failed during a batch of %d (%s); retrying it",
                            len(messages), error.__class__.__name__)
                if not self._wait_for_database():
                    return _STOPPING
                if transient > TRANSIENT_RETRIES:
                    return error  # the database answers, yet this batch keeps failing: its content

    def _rollback(self) -> None:
        try:
            db.session.rollback()
        except Exception:  # the connection is gone; the pool hands out a fresh one next time
            db.session.remove()

    def _wait_for_database(self) -> bool:
        """Back off until the database answers (False when the worker is stopping meanwhile)."""
        delay = 0.2
        while self.running:
            time.sleep(delay)
            try:
                db.session.execute(text("SELECT 1"))
                db.session.rollback()
                return True
            except Exception as error:
                self._rollback()
                log.warning("database still unavailable (%s); next try in %.1f s", error.__class__.__name__, delay)
                delay = min(delay * 2, 30)
        return False

    def _heartbeat(self, stopped: bool = False) -> None:
        """Tell /healthz this worker lives: its backlog and last batch (never fatal)."""
        try:
            record_heartbeat(db.session, self.settings.client_id, started_at=self.started_at,
                             connected=self.connected and not self.paused, paused=self.paused,
                             backlog=sum(inbox.qsize() for inbox in self.inboxes), last_batch_at=self.last_batch_at,
                             last_batch_size=self.last_batch_size, readings=self.processed, stopped=stopped,
                             last_batch_seconds=self.last_batch_seconds)
        except Exception:
            db.session.rollback()
            log.exception("could not write the heartbeat")

    def _dead_letter(self, message: mqtt.MQTTMessage, error: Exception) -> None:
        """Keep a message the pipeline failed on (a locked period, a bug) for staff to replay, and
        acknowledge it; when even the dead letter cannot be written, spool it to a file first."""
        log.error("message on %s failed on its own (%s); dead-lettered", message.topic, error)
        row = dead_letter_row(message.topic, message.payload, f"pipeline error: {error}", None, utcnow())
        for _ in range(TRANSIENT_RETRIES + 1):
            try:
                db.session.add(DeadLetter(**row))
                db.session.commit()
                break
            except Exception as failure:
                self._rollback()
                if is_connection_error(failure):
                    if self._wait_for_database():
                        continue
                    return  # stopping: unacknowledged, the broker sends it again
                log.exception("could not dead-letter the message on %s; spooling it", message.topic)
                self._spool(message, row["reason"])
                break
        self.client.ack(message.mid, message.qos)

    def _spool(self, message: mqtt.MQTTMessage, reason: str) -> None:
        """Append the message to the local spool file (the last resort; never raises)."""
        line = json.dumps({"at": utcnow().isoformat(), "topic": message.topic, "reason": reason,
                           "payload_base64": base64.b64encode(message.payload).decode()})
        try:
            path = Path(self.settings.spool_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as spool:
                spool.write(line + "\n")
        except OSError:
            log.exception("could not spool either; the message was: %s", line)

    def _ingest(self, batch: list[mqtt.MQTTMessage]) -> None:
        prefix = self.settings.prefix
        readings, now = [], utcnow()
        for message in batch:
            topic = message.topic[len(prefix):] if prefix and message.topic.startswith(prefix) else message.topic
            if topic.startswith("meters/") and topic.endswith("/acks"):
                credit_control.record_ack(db.session, message.payload)
            else:
                readings.append(Message(topic, message.payload, now))
        if readings:
            ingest(db.session, readings, now=now)

    def _publish_commands(self) -> None:
        """Send relay commands committed in the outbox (after commit, never inside it)."""
        def publish(topic: str, payload: str) -> bool:
            info = self.client.publish(self.settings.prefix + topic, payload, qos=1)
            return info.rc == mqtt.MQTT_ERR_SUCCESS

        try:
            if credit_control.publish_pending(db.session, publish):
                db.session.commit()
            else:
                db.session.rollback()
        except Exception:
            db.session.rollback()
            log.exception("publishing relay commands failed; they stay pending")

    def _housekeeping(self) -> None:
        """Follow maintenance mode, publish the outbox, flag meters that never acknowledged."""
        try:
            paused = ingest_paused(db.session)
            credit_control.flag_silent_meters(db.session)
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("housekeeping failed")
            return
        if paused and not self.paused:
            log.info("maintenance mode: disconnecting; messages wait in the broker")
            self.paused = True
            self.client.disconnect()
            self.client.loop_stop()
            self.inboxes = [queue.Queue() for _ in self.inboxes]  # unacknowledged: the broker sends them again
        elif not paused and self.paused:
            log.info("maintenance over: resuming")
            self.paused = False
            self.client = self._client()
            self.connect()
        if not self.paused:
            self._publish_commands()


_STOPPING = object()  # _attempt's answer when the worker stops while waiting for the database


def main() -> None:
    """Build the app once and run one worker until SIGTERM/SIGINT."""
    app = create_app()
    # Long-lived objects (app, metadata, mappers) leave the collector's view, and collections
    # run less often: a batch allocates many short-lived objects and full passes cost ~20% of it.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    worker = IngestWorker(app, Settings.from_config(app.config))
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()


if __name__ == "__main__":
    main()
