"""Historical backfills of vendor imports (issue 22 item 4): one row per requested date range."""
from datetime import date, datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

BACKFILL_SOURCES = ("koios", "thundercloud")
# queued/running: a job has it; stopping: staff pressed Stop, the job stops after its current day.
BACKFILL_STATUSES = ("queued", "running", "stopping", "stopped", "done", "failed")


class SourceBackfill(Base):
    """A Koios or ThunderCloud import over a range of days, resumable from `last_completed_day`."""

    __tablename__ = "source_backfills"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    first_day: Mapped[date]
    last_day: Mapped[date]
    status: Mapped[str] = mapped_column(String(16), default="queued")
    last_completed_day: Mapped[date | None]  # the resume point: every day up to it is imported
    days_done: Mapped[int] = mapped_column(default=0)
    accepted: Mapped[int] = mapped_column(default=0)    # readings (Koios) or heartbeats (ThunderCloud) new
    duplicates: Mapped[int] = mapped_column(default=0)  # already stored: a re-run adds nothing
    skipped: Mapped[int] = mapped_column(default=0)     # Koios intervals inside stored history (see backfill.py)
    history: Mapped[int] = mapped_column(default=0, server_default="0")  # of `accepted`: stored as history, not billed
    summary: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    job_run_id: Mapped[int | None] = mapped_column(ForeignKey("job_runs.id"))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stop_requested_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    @property
    def total_days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def next_day(self) -> date | None:
        """The first day still to import (None when the range is complete)."""
        from datetime import timedelta

        start = self.last_completed_day + timedelta(days=1) if self.last_completed_day else self.first_day
        return start if start <= self.last_day else None

    @property
    def resumable(self) -> bool:
        return self.status in ("stopped", "failed") and self.next_day is not None
