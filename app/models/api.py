"""Integration API tables (A7): keys, stored idempotent responses, webhook endpoints and deliveries."""
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

API_PERMISSIONS = ("read", "readings:write", "topups:write", "manage", "webhooks:manage")
WEBHOOK_EVENTS = ("wallet.topup", "wallet.low_balance", "meter.reading", "meter.offline", "tenant.onboarded")
DELIVERY_STATUSES = ("pending", "delivered", "failed", "abandoned")


class ApiKey(Base):
    """One key for the JSON API; only the SHA-256 of the whole key is stored.

    New keys read `mw_live_<public_id>_<secret>` (or `mw_test_…`); keys issued before the
    integration API (`mwk_…`, held by gateways in the field) were migrated here as
    `readings:write` keys over all estates and keep working. `estate_id` None: every estate
    (staff and CLI keys only); an agent's key names one of the agent's estates.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(24), default="")  # shown to tell keys apart
    public_id: Mapped[str | None] = mapped_column(String(16), unique=True)
    permissions: Mapped[str] = mapped_column(String(200), default="readings:write")  # space-separated
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rate_limit_per_hour: Mapped[int | None]  # None: the API's default
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    estate: Mapped["Estate | None"] = relationship()  # noqa: F821

    @property
    def permission_set(self) -> frozenset[str]:
        return frozenset((self.permissions or "").split())


class IdempotentRequest(Base):
    """The first response to a money-moving POST under one key's Idempotency-Key (kept 24 h)."""

    __tablename__ = "api_idempotent_requests"
    __table_args__ = (UniqueConstraint("api_key_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # method, path and body
    response_status: Mapped[int | None]  # None while the first request is still running
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class WebhookEndpoint(Base):
    """A subscriber's URL for chosen events in one estate (None: all, staff only); `whsec_` secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret: Mapped[str] = mapped_column(String(100))  # whsec_<base64>: needed to sign, so kept
    events: Mapped[str] = mapped_column(String(300))  # space-separated event types
    description: Mapped[str] = mapped_column(String(200), default="")
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))

    estate: Mapped["Estate | None"] = relationship()  # noqa: F821

    @property
    def event_set(self) -> frozenset[str]:
        return frozenset((self.events or "").split())


class WebhookDelivery(Base):
    """One event for one endpoint: tried until delivered, abandoned after about a day."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("endpoint_id", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(64))  # webhook-id: the same on every retry
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempt_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)
    last_status_code: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]

    endpoint: Mapped[WebhookEndpoint] = relationship()
    attempts: Mapped[list["WebhookAttempt"]] = relationship(
        back_populates="delivery", order_by="WebhookAttempt.id")


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery: when, the status code (None: no answer) and why."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(300))
    duration_ms: Mapped[int | None]

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempts")
