"""Wallets, accounts and the append-only double-entry ledger (rules in app/ledger/__init__.py)."""
from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

ACCOUNT_KINDS = (
    "pocket",        # a wallet pocket: one per utility per unit (C1)
    "clearing",      # money received from a payment provider, not yet in a wallet
    "revenue",       # consumption billed, per utility
    "units_issued",  # units mode: the counterpart of kWh/kL sold into pockets
    "levy",          # body corporate levies
    "party",         # settlement parties (operator, utility, ...)
    "suspense",      # unmatched money waiting for staff
    "opening_balance",  # the counterpart of balances brought over from a previous system (imports)
    "arrears",       # one per arrears record: the debt a person owes outside a pocket (app.billing.arrears)
    "owner_pocket",  # a unit owner's pocket: levies, consumption while the unit is vacant (accounts.owner_pocket)
    "refunds_payable",  # credit refunded at move-out, until staff pay it out
    "bad_debt",      # debts written off
    "float",         # money an agent or other payer puts up for bulk top-ups
)


class Wallet(Base):
    """A unit's wallet; its pockets are Accounts of kind 'pocket'."""

    __tablename__ = "wallets"

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    pockets: Mapped[list["Account"]] = relationship(
        back_populates="wallet", order_by="Account.utility"
    )

    def pocket(self, utility: str) -> "Account":
        for account in self.pockets:
            if account.utility == utility:
                return account
        raise KeyError(f"wallet {self.id} has no {utility} pocket")


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("estate_id", "code"),
        UniqueConstraint("wallet_id", "utility"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), index=True)
    code: Mapped[str] = mapped_column(String(64))  # e.g. "pocket:A12:electricity"
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    commodity: Mapped[str] = mapped_column(String(3))  # currency code, or KWH / KL in units mode
    utility: Mapped[str | None] = mapped_column(String(16))
    wallet_id: Mapped[int | None] = mapped_column(ForeignKey("wallets.id"))
    # Cached sum of this account's postings; only app.ledger writes it.
    balance: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    # Wallet pockets: when the balance last went below zero (ledger order); null while it is
    # zero or above. Kept by app.ledger with the balance, checked by `ledger verify`.
    in_debt_since: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    wallet: Mapped[Wallet | None] = relationship(back_populates="pockets")

    def __repr__(self) -> str:
        return f"<Account {self.code} {self.balance} {self.commodity}>"


class LedgerChain(Base):
    """Head of an estate's hash chain; locked while a transaction is appended."""

    __tablename__ = "ledger_chains"

    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class LedgerTransaction(Base):
    __tablename__ = "ledger_transactions"
    __table_args__ = (UniqueConstraint("estate_id", "seq"), Index("ix_ledger_transactions_occurred_at", "occurred_at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    estate_id: Mapped[int] = mapped_column(ForeignKey("estates.id"))
    seq: Mapped[int] = mapped_column(BigInteger)  # position in the estate's chain
    kind: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM in the estate's timezone
    memo: Mapped[str] = mapped_column(String(500), default="")
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_transactions.id"))
    created_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    postings: Mapped[list["Posting"]] = relationship(
        back_populates="transaction", order_by="Posting.id"
    )


class Posting(Base):
    __tablename__ = "postings"
    __table_args__ = (Index("ix_postings_account_id_transaction_id", "account_id", "transaction_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("ledger_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[Decimal]  # positive increases the account's balance
    commodity: Mapped[str] = mapped_column(String(3))  # copied from the account; sums to zero per commodity

    transaction: Mapped[LedgerTransaction] = relationship(back_populates="postings")
    account: Mapped[Account] = relationship()
