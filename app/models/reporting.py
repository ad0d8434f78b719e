"""Ledger roll-ups for owner reports (O1, O2): pocket postings summed per account, month and kind."""
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base


class PocketFlowTotal(Base):
    """The sum of a pocket's postings in one financial period (YYYY-MM) per transaction kind.

    A reversal is counted under the kind of the transaction it reverses. Filled by
    app.ledger.pocket_flows.fold(), which only ever adds transactions it has not seen.
    """

    __tablename__ = "pocket_flow_totals"
    __table_args__ = (UniqueConstraint("account_id", "period", "kind"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    period: Mapped[str] = mapped_column(String(7))
    kind: Mapped[str] = mapped_column(String(32))
    amount: Mapped[Decimal] = mapped_column(default=Decimal("0"))


class PocketFlowWatermark(Base):
    """The last ledger sequence number of an estate's chain folded into pocket_flow_totals."""

    __tablename__ = "pocket_flow_watermarks"

    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
