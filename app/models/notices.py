"""Outage and maintenance notices an agent sends to the tenants of an estate or a block (issue 15, item 7)."""
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

NOTICE_KINDS = ("outage", "maintenance")
NOTICE_CHANNELS = ("sms", "email")
NOTICE_STATUSES = ("sending", "sent")


class Notice(Base):
    """One notice: what it says, whom it reached (counted when sent), and how far sending got."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    block: Mapped[str] = mapped_column(String(32), default="")  # a unit-number prefix; "" for the whole estate
    kind: Mapped[str] = mapped_column(String(16))  # NOTICE_KINDS
    subject: Mapped[str] = mapped_column(String(120))
    message: Mapped[str] = mapped_column(Text)
    starts_at: Mapped[datetime | None]
    ends_at: Mapped[datetime | None]
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: list(NOTICE_CHANNELS))
    people: Mapped[int] = mapped_column(default=0)  # recipients when it was sent
    by_sms: Mapped[int] = mapped_column(default=0)
    by_email: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)  # recipients handled so far (a retried job resumes here)
    status: Mapped[str] = mapped_column(String(8), default="sending")  # NOTICE_STATUSES
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
