"""Report subscriptions (issue 22 item 8, Quantify 1.7): a report emailed weekly or monthly."""
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, utcnow

SUBSCRIPTION_FREQUENCIES = ("weekly", "monthly")
SUBSCRIPTION_FORMATS = ("csv", "pdf")
DELIVERY_STATUSES = ("sent", "logged", "failed")  # logged: MAIL_URL unset, written to the log


class ReportSubscription(Base):
    """One user's standing order for one exportable report (its endpoint and query args)."""

    __tablename__ = "report_subscriptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    endpoint: Mapped[str] = mapped_column(String(128))
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    title: Mapped[str] = mapped_column(String(200))
    # the title as message parts (app/i18n/messages.py), shown in the reader's language; None before issue 23
    title_parts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    frequency: Mapped[str] = mapped_column(String(8))
    file_format: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    last_sent_at: Mapped[datetime | None]

    @property
    def active(self) -> bool:
        return self.cancelled_at is None and self.disabled_at is None


class ReportDelivery(Base):
    """A subscription's email for one period ("2026-W49", "2026-12"): at most one per period."""

    __tablename__ = "report_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("report_subscriptions.id"), index=True)
    period: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(default=0)
    to_address: Mapped[str | None] = mapped_column(String(254))
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
