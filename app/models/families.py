"""Family wallets (F1-F4): access grants on a wallet, wallet groups, spend limits, alerts sent."""
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.estate import Unit
from app.models.people import User

# What each level lets a person do on a wallet they do not own (F2). `view` and `topup`
# are not ordered: a caretaker may pay without seeing history; `manage` does everything.
GRANT_LEVELS = ("view", "topup", "manage")
LEVEL_ACTIONS = {
    "view": frozenset({"balance", "history"}),
    # `distribute` (a group top-up, and putting the wallet in one's group) is paying: `topup` may.
    "topup": frozenset({"balance", "topup", "distribute"}),
    "manage": frozenset({"balance", "history", "topup", "distribute", "limits", "grant", "revoke", "alerts"}),
}
FAMILY_ALERT_KINDS = ("low", "critical", "spend_warning", "spend_limit", "supply_off")


class WalletGrant(Base):
    """A person's access to one unit's wallet at one level; revoked grants stay as history."""

    __tablename__ = "wallet_grants"
    __table_args__ = (Index("uq_wallet_grants_active", "unit_id", "user_id", unique=True,
                            postgresql_where=text("revoked_at IS NULL"),
                            sqlite_where=text("revoked_at IS NULL")),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    level: Mapped[str] = mapped_column(String(8))
    # Per-person top-up caps (F3), in the estate's currency; None: no cap.
    topup_daily_cap: Mapped[Decimal | None]
    topup_monthly_cap: Mapped[Decimal | None]
    # Alerts about this wallet to this person (F4): only `manage` grants receive them.
    alerts_enabled: Mapped[bool] = mapped_column(default=True)
    # Low-balance level for this person's alerts, in each pocket's commodity; critical at a fifth.
    low_threshold: Mapped[Decimal | None]
    alert_channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["in_app", "email"])
    granted_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    revoked_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    unit: Mapped[Unit] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])

    @property
    def actions(self) -> frozenset[str]:
        return LEVEL_ACTIONS[self.level]


class WalletGroup(Base):
    """A person's group of wallets (F1): one overview and one distributed top-up."""

    __tablename__ = "wallet_groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    owner_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list["WalletGroupMember"]] = relationship(
        back_populates="group", cascade="all, delete-orphan", order_by="WalletGroupMember.id")


class WalletGroupMember(Base):
    __tablename__ = "wallet_group_members"
    __table_args__ = (UniqueConstraint("group_id", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("wallet_groups.id", ondelete="CASCADE"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    label: Mapped[str] = mapped_column(String(100), default="")

    group: Mapped[WalletGroup] = relationship(back_populates="members")
    unit: Mapped[Unit] = relationship()


class SpendLimit(Base):
    """Daily and monthly spend limits on one pocket (F3), in the pocket's commodity."""

    __tablename__ = "spend_limits"
    __table_args__ = (UniqueConstraint("unit_id", "utility"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    utility: Mapped[str] = mapped_column(String(16))
    daily: Mapped[Decimal | None]
    monthly: Mapped[Decimal | None]
    updated_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FamilyAlertSent(Base):
    """An alert about a shared wallet sent to one grant holder; `period_key` keys the no-repeat rule."""

    __tablename__ = "family_alerts_sent"
    __table_args__ = (UniqueConstraint("grant_id", "utility", "kind", "period_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    grant_id: Mapped[int] = mapped_column(ForeignKey("wallet_grants.id", ondelete="CASCADE"), index=True)
    utility: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    period_key: Mapped[str] = mapped_column(String(16))  # "2026-12-02" for a day, "2026-12" for a month
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


DISTRIBUTION_RULES = ("equal", "fixed", "target")


class WalletDistribution(Base):
    """One payment spread over a group's wallets (F1): its rule and, in `legs`, what each wallet gets.

    The payment (a PayFast checkout) carries the total and no unit; when it is credited each
    estate's legs post as one ledger transaction (`app.payments.credit.credit_distribution`).
    """

    __tablename__ = "wallet_distributions"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), unique=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("wallet_groups.id", ondelete="SET NULL"), index=True)
    rule: Mapped[str] = mapped_column(String(8))
    currency: Mapped[str] = mapped_column(String(3))
    utility: Mapped[str] = mapped_column(String(16))
    target: Mapped[Decimal | None]  # the target balance of the "target" rule
    remainder_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    legs: Mapped[list["WalletDistributionLeg"]] = relationship(
        back_populates="distribution", cascade="all, delete-orphan", order_by="WalletDistributionLeg.id")
    group: Mapped[WalletGroup | None] = relationship()
    payment: Mapped["Payment"] = relationship()  # noqa: F821  app.models.payments
    remainder_unit: Mapped[Unit | None] = relationship()


class WalletDistributionLeg(Base):
    """What one wallet gets of a distribution; `transaction_id` is its estate's posting once credited."""

    __tablename__ = "wallet_distribution_legs"
    __table_args__ = (UniqueConstraint("distribution_id", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    distribution_id: Mapped[int] = mapped_column(ForeignKey("wallet_distributions.id", ondelete="CASCADE"),
                                                 index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"))
    amount: Mapped[Decimal]
    transaction_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("ledger_transactions.id"))

    distribution: Mapped[WalletDistribution] = relationship(back_populates="legs")
    unit: Mapped[Unit] = relationship()
