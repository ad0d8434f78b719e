"""Settlement (U3) and the daily reconciliation (U6): parties, their rules, monthly runs, payouts,
and each estate's daily check results.

A party is a ledger account of kind "party" (what the estate owes it); a rule set is one
effective-dated, ordered list of rules for an estate and utility (editing saves a new set, so
a past run always points at the rules it used); a run is immutable once posted and corrected
only by reversing it and running again with the next run number.
"""
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow
from app.models.ledger import Account

PARTY_ROLES = ("operator", "body_corporate", "utility", "landlord", "other")
RULE_METHODS = ("percentage", "fixed", "remainder")
RUN_STATUSES = ("posted", "reversed")
RECONCILIATION_CHECKS = ("readings", "payments", "mpesa", "koios", "bulk", "ledger")
_TXN_ID = BigInteger().with_variant(Integer, "sqlite")


class SettlementParty(Base):
    """Someone an estate's revenue is shared with; `account` holds what the estate owes them."""

    __tablename__ = "settlement_parties"
    __table_args__ = (UniqueConstraint("estate_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))  # PARTY_ROLES
    contact_email: Mapped[str | None] = mapped_column(String(254))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    account: Mapped[Account] = relationship()


class SettlementRuleSet(Base):
    """An estate's ordered settlement rules for one utility from a month on (the latest set wins)."""

    __tablename__ = "settlement_rule_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    utility: Mapped[str] = mapped_column(String(16))
    effective_from: Mapped[str] = mapped_column(String(7))  # YYYY-MM, the first month it settles
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    rules: Mapped[list["SettlementRule"]] = relationship(order_by="SettlementRule.position",
                                                         cascade="all, delete-orphan")


class SettlementRule(Base):
    __tablename__ = "settlement_rules"
    __table_args__ = (UniqueConstraint("rule_set_id", "position"), UniqueConstraint("rule_set_id", "party_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_set_id: Mapped[int] = mapped_column(ForeignKey("settlement_rule_sets.id"), index=True)
    position: Mapped[int]
    party_id: Mapped[int] = mapped_column(ForeignKey("settlement_parties.id"))
    method: Mapped[str] = mapped_column(String(12))  # RULE_METHODS
    value: Mapped[Decimal | None]  # percent (0-100] or an amount a month; None for the remainder

    party: Mapped[SettlementParty] = relationship()


class SettlementRun(Base):
    """One posted split of an estate's revenue for a utility and month."""

    __tablename__ = "settlement_runs"
    __table_args__ = (UniqueConstraint("estate_id", "utility", "period", "run_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    utility: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(7))
    run_number: Mapped[int]
    rule_set_id: Mapped[int] = mapped_column(ForeignKey("settlement_rule_sets.id"))
    basis: Mapped[str] = mapped_column(String(8))  # "billed" or "sold" (units-wallet estates)
    revenue: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(10), default="posted")  # RUN_STATUSES
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reversed_at: Mapped[datetime | None]
    reversed_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reversal_reason: Mapped[str | None] = mapped_column(String(300))

    lines: Mapped[list["SettlementLine"]] = relationship(order_by="SettlementLine.position",
                                                         back_populates="run")


class SettlementLine(Base):
    """One party's share of a run, and its payout once staff have paid it."""

    __tablename__ = "settlement_lines"
    __table_args__ = (UniqueConstraint("run_id", "party_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("settlement_runs.id"), index=True)
    position: Mapped[int]
    party_id: Mapped[int] = mapped_column(ForeignKey("settlement_parties.id"), index=True)
    method: Mapped[str] = mapped_column(String(12))
    value: Mapped[Decimal | None]
    amount: Mapped[Decimal]
    transaction_id: Mapped[int | None] = mapped_column(_TXN_ID, ForeignKey("ledger_transactions.id"))
    reversal_transaction_id: Mapped[int | None] = mapped_column(_TXN_ID, ForeignKey("ledger_transactions.id"))
    paid_at: Mapped[datetime | None]
    paid_reference: Mapped[str | None] = mapped_column(String(100))
    paid_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    payout_transaction_id: Mapped[int | None] = mapped_column(_TXN_ID, ForeignKey("ledger_transactions.id"))
    # The party's statement of this run, emailed once (app.billing.settlement.send_party_statements).
    statement_sent_at: Mapped[datetime | None]
    statement_sent_to: Mapped[str | None] = mapped_column(String(254))
    statement_outcome: Mapped[str | None] = mapped_column(String(8))  # sent | logged (no MAIL_URL)

    run: Mapped[SettlementRun] = relationship(back_populates="lines")
    party: Mapped[SettlementParty] = relationship()


class ReconciliationResult(Base):
    """One check of one estate's local day: pass or fail, with the failing items (U6)."""

    __tablename__ = "reconciliation_results"
    __table_args__ = (UniqueConstraint("estate_id", "day", "check"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    day: Mapped[date]
    check: Mapped[str] = mapped_column(String(12))  # RECONCILIATION_CHECKS
    ok: Mapped[bool]
    checked: Mapped[int] = mapped_column(default=0)  # how many items were compared
    summary: Mapped[str] = mapped_column(String(300), default="")
    # the summary as message parts (app/i18n/messages.py), shown in the reader's language; None before issue 23
    summary_parts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    # [{"label": ..., "detail": ..., "kind": "reading|payment|sms|transaction|...", "ref": id}]
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class MpesaStatementLine(Base):
    """A transaction from an M-PESA statement export staff uploaded: the provider's own record."""

    __tablename__ = "mpesa_statement_lines"
    __table_args__ = (UniqueConstraint("estate_id", "receipt"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    receipt: Mapped[str] = mapped_column(String(32))  # M-PESA transaction id
    completed_at: Mapped[datetime]
    amount: Mapped[Decimal]
    details: Mapped[str] = mapped_column(String(300), default="")
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
    uploaded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
