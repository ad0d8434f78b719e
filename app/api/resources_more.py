"""Models of the integration API's later endpoints (app/api/v1_more.py): transactions, readings,
bulk imports, wallet groups and debt cohorts (declared once: parsed, dumped, documented)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from app.api.declare import described
from app.api.resources import Utility

NEXT = "Pass as `cursor` for the next page; null on the last"


# --- Ledger transactions ------------------------------------------------------------------

@dataclass(frozen=True)
class PostingOut:
    """One leg of a transaction: the account it moved and by how much (positive: the balance grew)."""

    account_id: int
    account_code: str
    account_kind: str = described("pocket, clearing, revenue, arrears, ...")
    utility: str | None = described("The pocket's utility; null for accounts of no utility")
    unit_id: int | None = described("The unit whose wallet holds the account; null for estate accounts")
    amount: Decimal = described("Signed amount in the account's commodity")
    commodity: str = described("Currency code, or KWH / KL for a units pocket")


@dataclass(frozen=True)
class TransactionOut:
    """A balanced ledger transaction with its postings."""

    id: int
    estate_id: int
    kind: str = described("topup, consumption, standing_charge, arrears_payment, refund, reversal, ...")
    occurred_at: datetime = described("When it happened")
    recorded_at: datetime = described("When the ledger recorded it")
    period: str = described("The financial period (YYYY-MM in the estate's timezone)")
    memo: str = described("What it was, in words")
    reverses_id: int | None = described("The transaction this one reverses")
    postings: list[PostingOut] = described("Its legs; they sum to zero per commodity")


@dataclass(frozen=True)
class TransactionList:
    """A page of ledger transactions, oldest first."""

    data: list[TransactionOut]
    next_cursor: str | None = described(NEXT, default=None)


# --- Readings -----------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadingOut:
    """A meter's register value at a moment, and the consumption since the reading before."""

    id: int
    serial: str
    meter_id: int
    estate_id: int
    unit_id: int | None
    utility: str
    taken_at: datetime
    register: Decimal
    consumption: Decimal | None = described("Since the previous reading, in the utility's unit")
    received_at: datetime = described("When ingest stored it")


@dataclass(frozen=True)
class ReadingList:
    """A page of readings, oldest first."""

    data: list[ReadingOut]
    next_cursor: str | None = described(NEXT, default=None)


# --- Bulk imports -------------------------------------------------------------------------

@dataclass(frozen=True)
class ImportRowOut:
    """A row of a staged file that was refused, with every reason."""

    row: int = described("As a spreadsheet numbers it: the header is row 1")
    errors: list[str]


@dataclass(frozen=True)
class ImportOut:
    """A staged (or committed) import: its counts, status and the refused rows."""

    id: int
    estate_id: int
    kind: str
    file_name: str
    status: Literal["staging", "staged", "committing", "committed", "failed"] = described(
        "staging/committing: a job is at work on a large file (poll this import); staged: the preview")
    repeated: bool = described("These exact bytes were imported before: this is that earlier import")
    total_rows: int
    to_create: int
    to_update: int
    unchanged: int
    rejected: int
    ignored_columns: list[str]
    refused_rows: list[ImportRowOut] = described("The rejected rows (at most 200), in row order")
    message: str | None = described("Why a whole file failed, or a commit did")
    created_at: datetime
    committed_at: datetime | None


# --- Wallet groups ------------------------------------------------------------------------

@dataclass(frozen=True)
class GroupPocketOut:
    """One pocket of a member's wallet."""

    utility: str
    balance: Decimal
    commodity: str


@dataclass(frozen=True)
class GroupMemberOut:
    """A wallet in a group, with its balances."""

    unit_id: int
    estate_id: int
    unit_number: str
    currency: str
    pockets: list[GroupPocketOut]


@dataclass(frozen=True)
class GroupOut:
    """A person's group of wallets (family wallets), topped up together."""

    id: int
    name: str
    created_at: datetime
    member_count: int


@dataclass(frozen=True)
class GroupList:
    """A page of wallet groups."""

    data: list[GroupOut]
    next_cursor: str | None = described(NEXT, default=None)


@dataclass(frozen=True)
class GroupDetailOut:
    """A wallet group with each member's wallet and balances."""

    id: int
    name: str
    created_at: datetime
    members: list[GroupMemberOut]


@dataclass(frozen=True)
class FixedLegIn:
    """One member's amount under the `fixed` rule."""

    unit_id: int = described("A member of the group", minimum=1)
    amount: Decimal


@dataclass(frozen=True)
class GroupTopupIn:
    """A top-up shared over a group's wallets by a rule, credited at once."""

    amount: Decimal | None = described("The total (required for `equal`; optional for `fixed` and `target`)",
                                       default=None)
    rule: Literal["equal", "fixed", "target"] = described("How to share it", default="equal")
    utility: Utility = described("The pocket to credit in each wallet", default="electricity")
    currency: str | None = described("The group's currency to pay in (default: the one most members use)",
                                     default=None, maxLength=3)
    fixed: list[FixedLegIn] | None = described("For `fixed`: each member's amount (others get none)", default=None)
    target: Decimal | None = described("For `target`: the balance each wallet should reach", default=None)
    remainder_unit_id: int | None = described("The member who gets what cannot be shared evenly (default: "
                                              "the first)", default=None, minimum=1)
    reference: str | None = described("Your reference for the payment", default=None, maxLength=100)


@dataclass(frozen=True)
class GroupLegOut:
    """What one wallet got of a group top-up."""

    unit_id: int
    estate_id: int
    amount: Decimal
    transaction_id: int | None
    balance: Decimal = described("The pocket's balance after the credit")


@dataclass(frozen=True)
class LeftOutOut:
    """A member that took no part, and why."""

    unit_id: int
    reason: str


@dataclass(frozen=True)
class GroupTopupOut:
    """A credited group top-up: one payment, one leg per wallet."""

    payment_id: int
    group_id: int
    status: str
    rule: str
    utility: str
    amount: Decimal
    currency: str
    legs: list[GroupLegOut]
    left_out: list[LeftOutOut]


# --- Debt cohorts -------------------------------------------------------------------------

@dataclass(frozen=True)
class CohortOut:
    """An estate's debt cohort for one fiscal year (labelled by the year it ends in)."""

    id: int
    estate_id: int
    fiscal_year: int
    taken_on: str = described("The local day the members were chosen as at (YYYY-MM-DD)")
    ranked_by: Literal["owed", "usage"]
    size: int = described("How many members were asked for")
    members: int = described("How many it has")
    source: str = described("ledger, or external (a billing database)")
    currency: str


@dataclass(frozen=True)
class CohortList:
    """A page of debt cohorts."""

    data: list[CohortOut]
    next_cursor: str | None = described(NEXT, default=None)


@dataclass(frozen=True)
class SnapshotOut:
    """A member's figures for one month (as at its end; now for the month under way)."""

    month: str = described("YYYY-MM")
    balance: Decimal = described("Net balance of the unit's pockets and arrears records (negative: owes)")
    debt: Decimal
    consumption: Decimal = described("Billed in the month (usage and standing charges)")
    payments: Decimal = described("Credited in the month")


@dataclass(frozen=True)
class CohortMemberOut:
    """A unit in a cohort: its rank, what it owed and used when taken, and its monthly snapshots."""

    unit_id: int
    unit_number: str
    rank: int
    owed: Decimal = described("Owed when the cohort was taken, in the cohort's currency")
    usage: Decimal = described("Billed the year before it was taken (usage and standing charges), in the "
                               "cohort's currency")
    snapshots: list[SnapshotOut]


@dataclass(frozen=True)
class CohortMemberList:
    """A page of a cohort's members, by rank."""

    cohort: CohortOut
    data: list[CohortMemberOut]
    next_cursor: str | None = described(NEXT, default=None)
