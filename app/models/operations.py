"""Operational records: audit log, background job runs, notifications."""
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

JOB_STATUSES = ("queued", "running", "done", "failed")
NOTIFICATION_CHANNELS = ("in_app", "email", "sms")
NOTIFICATION_STATUSES = ("pending", "sent", "logged", "failed")  # logged: MAIL_URL unset, only written to the log


class AuditLog(Base):
    """Who changed what, when, from where, with old and new values (X2)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor: Mapped[str] = mapped_column(String(254))  # email, or "system:<job>"
    ip: Mapped[str | None] = mapped_column(String(45))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(64))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    old: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class JobRun(Base):
    """One background job's progress, read by the HTMX progress component."""

    __tablename__ = "job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(128), default="all")
    status: Mapped[str] = mapped_column(String(8), default="queued")
    done: Mapped[int] = mapped_column(default=0)
    total: Mapped[int | None]
    errors: Mapped[list[str]] = mapped_column(JSON, default=list)
    result: Mapped[str | None] = mapped_column(Text)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.finished else 0
        return min(100, round(100 * self.done / self.total))

    @property
    def elapsed_seconds(self) -> float | None:
        if not self.started_at:
            return None
        end = self.finished_at or utcnow()
        return (end - self.started_at).total_seconds()


class Notification(Base):
    """A message to a user on one channel; in-app rows are read in the portal (X4)."""

    __tablename__ = "notifications"
    # Two-way SMS (issue 23) counts the replies sent to one phone in the last hour.
    __table_args__ = (Index(None, "to_address", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    channel: Mapped[str] = mapped_column(String(8))
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str | None] = mapped_column(String(254))  # email or phone
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    # A file the email carries, made when it is delivered (app.notify.email.attachment_of):
    # {"kind": "statement", "unit_id": ..., "period": "YYYY-MM"} (issue 15: the move-out statement).
    attachment: Mapped[dict | None] = mapped_column(JSON)
