"""Budget alerts (T4): a tenant's alert settings per unit and the alerts already sent."""
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.i18n.label_texts import N_
from app.models.base import Base, utcnow

ALERT_FREQUENCIES = {"daily": "At most once a day", "weekly": "At most once a week"}
ALERT_CHANNELS = {"in_app": N_("In the app"), "email": N_("Email"), "sms": N_("SMS")}  # msgids, shown translated
BUDGET_ALERT_KINDS = ("low", "critical", "high_usage")


class BudgetAlertSetting(Base):
    """One user's alert settings for one unit: low-balance thresholds per pocket and how to be told.

    `thresholds` maps a utility to a decimal string in its pocket's commodity (currency, or
    kWh/kL in units mode); a pocket without a threshold gets no low or critical alert.
    """

    __tablename__ = "budget_alert_settings"
    __table_args__ = (UniqueConstraint("user_id", "unit_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    thresholds: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    frequency: Mapped[str] = mapped_column(String(8), default="daily")
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    high_usage: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BudgetAlertSent(Base):
    """An alert sent for a setting, pocket and kind; the frequency window is counted from these."""

    __tablename__ = "budget_alerts_sent"
    __table_args__ = (Index("ix_budget_alerts_sent_setting_id_utility_kind", "setting_id", "utility", "kind"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    setting_id: Mapped[int] = mapped_column(ForeignKey("budget_alert_settings.id", ondelete="CASCADE"))
    utility: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(12))
    detail: Mapped[str] = mapped_column(String(300), default="")
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
