"""Ingest worker heartbeats (issue 3): each MQTT ingest worker says every few seconds that it lives."""
from datetime import datetime

from sqlalchemy import BigInteger, Float, String
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow


class IngestHeartbeat(Base):
    """The latest heartbeat of one worker, by MQTT client id (a restarted worker reuses its row)."""

    __tablename__ = "ingest_heartbeats"

    client_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    pid: Mapped[int] = mapped_column(default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None]  # set on a clean shutdown
    connected: Mapped[bool] = mapped_column(default=False)
    paused: Mapped[bool] = mapped_column(default=False)  # maintenance mode (M7)
    backlog: Mapped[int] = mapped_column(default=0)  # messages received and not yet in a batch
    last_batch_at: Mapped[datetime | None]
    last_batch_size: Mapped[int] = mapped_column(default=0)
    readings: Mapped[int] = mapped_column(BigInteger, default=0)  # messages processed since the worker started
    last_batch_seconds: Mapped[float | None] = mapped_column(Float)  # how long the last batch took (/metrics)


class ModbusDeviceStatus(Base):
    """What the Modbus poller last saw of one wired meter (M9): its last good poll and its trouble.

    One row per meter serial, written by workers/modbus_poller.py after every poll, read by the
    staff meter page: a timeout, garbage in the registers or a device that disappeared shows
    there with the time it started and how many polls in a row failed.
    """

    __tablename__ = "modbus_device_status"

    meter_serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(255), default="")  # host:port or serial port, device id
    state: Mapped[str] = mapped_column(String(16), default="ok")  # ok, timeout, garbage, unreachable
    last_poll_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_ok_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    failing_since: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(default=0)  # polls in a row that failed
