"""Ingest worker heartbeats (issue 3): each MQTT ingest worker says every few seconds that it lives."""
from datetime import datetime

from sqlalchemy import BigInteger, String
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
