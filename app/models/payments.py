"""Payments received from providers (PayFast, M-PESA by SMS, EFT) and the SMS messages relayed."""
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.estate import Estate, Unit

PROVIDERS = ("payfast", "mpesa", "eft", "api", "agent")  # api: issue 21; agent: bulk top-ups (issue 15)
PAYMENT_STATUSES = (
    "pending",      # PayFast checkout started, waiting for the ITN (shown "expired" when too old)
    "to_confirm",   # EFT row matched to a unit, waiting for staff to confirm
    "unmatched",    # money received, nobody identified: waits in the staff queue
    "credited",     # posted to a pocket through the ledger
    "failed",       # provider reported failure
    "cancelled",    # payer cancelled
    "reversed",     # its credit was reversed by staff (a correction; reassigned: see the new payment)
)
VENDOR_PUSH_STATUSES = ("queued", "pushed", "failed")


class Payment(Base):
    """One payment from one provider; credited to one pocket at most once (C4)."""

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("provider", "provider_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))
    # The provider's id for the money (pf_payment_id, M-PESA transaction id, bank reference);
    # with the provider it forms the ledger idempotency key. None until PayFast's ITN.
    provider_ref: Mapped[str | None] = mapped_column(String(64))
    checkout_id: Mapped[str | None] = mapped_column(String(32), unique=True)  # PayFast m_payment_id
    reference: Mapped[str | None] = mapped_column(String(100))  # what the payer typed
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    utility: Mapped[str | None] = mapped_column(String(16))
    amount: Mapped[Decimal]
    currency: Mapped[str | None] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), index=True)
    status_reason: Mapped[str | None] = mapped_column(String(300))
    payer_name: Mapped[str | None] = mapped_column(String(200))
    payer_phone: Mapped[str | None] = mapped_column(String(32))
    payer_email: Mapped[str | None] = mapped_column(String(254))
    paid_at: Mapped[datetime | None]
    transaction_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("ledger_transactions.id"))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A payment credited to the wrong unit is reversed and credited again as a new payment
    # (its own ledger key and Koios external id) that points back here.
    reassigned_from_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    vendor_push_status: Mapped[str | None] = mapped_column(String(8))
    vendor_push_result: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    credited_at: Mapped[datetime | None]

    estate: Mapped[Estate | None] = relationship()
    unit: Mapped[Unit | None] = relationship()

    @property
    def idempotency_key(self) -> str:
        return f"{self.provider}:{self.provider_ref}"

    # An unpaid checkout older than the expiry cutoff is "expired": derived when read, never
    # stored, so no job has to run and a late ITN still credits (the row stays "pending").
    def shown_status(self, expired_before: datetime) -> str:
        """The status a person sees: 'expired' for a checkout left unpaid past the cutoff."""
        if self.status == "pending" and self.created_at < expired_before:
            return "expired"
        return self.status

    @classmethod
    def expired(cls, expired_before: datetime):
        """SQL condition: an unpaid checkout started before the cutoff."""
        return (cls.status == "pending") & (cls.created_at < expired_before)

    @classmethod
    def not_expired(cls, expired_before: datetime):
        """SQL condition: anything but an expired checkout."""
        return (cls.status != "pending") | (cls.created_at >= expired_before)

    def __repr__(self) -> str:
        return f"<Payment {self.provider}:{self.provider_ref} {self.amount} {self.status}>"


class SmsMessage(Base):
    """An SMS relayed by the gateway; its gateway id makes a re-delivery a no-op."""

    __tablename__ = "sms_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(100), unique=True)
    from_number: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    outcome: Mapped[str] = mapped_column(String(16))  # payment, duplicate, ignored
    reason: Mapped[str | None] = mapped_column(String(300))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
