"""The integration API's request and response models (declared once: parsed, dumped, documented)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from app.api.declare import described
from app.i18n import LANGUAGES

Utility = Literal["electricity", "water", "hot_water", "solar"]
Language = Literal[tuple(LANGUAGES)]  # X8: the app's languages (en, fr, st)
Period = Literal["last_30_minutes", "today", "this_week", "this_month", "last_month"]


@dataclass(frozen=True)
class Problem:
    """An error (RFC 9457 problem details)."""

    type: str
    title: str
    status: int
    detail: str
    errors: dict[str, str] | None = described("Per-field problems of a refused body", default=None)


@dataclass(frozen=True)
class EstateOut:
    """An estate: a development or mini-grid with its own currency and timezone."""

    id: int
    code: str
    name: str
    country: str
    currency: str
    timezone: str
    wallet_denomination: Literal["currency", "units"]


@dataclass(frozen=True)
class EstateList:
    """Estates in the key's scope."""

    data: list[EstateOut]
    next_cursor: str | None = described("Pass as `cursor` for the next page; null on the last", default=None)


@dataclass(frozen=True)
class UnitOut:
    """A unit (flat, house, room) of an estate."""

    id: int
    estate_id: int
    number: str
    account_number: str | None
    occupancy_status: str


@dataclass(frozen=True)
class UnitList:
    """A page of units."""

    data: list[UnitOut]
    next_cursor: str | None = described("Pass as `cursor` for the next page; null on the last", default=None)


@dataclass(frozen=True)
class MeterOut:
    """A meter and what it last reported."""

    id: int
    serial: str
    estate_id: int
    unit_id: int | None
    utility: str
    protocol: str
    relay_state: str
    last_reading_at: datetime | None
    last_register: Decimal | None
    online: bool


@dataclass(frozen=True)
class MeterList:
    """A page of meters."""

    data: list[MeterOut]
    next_cursor: str | None = described("Pass as `cursor` for the next page; null on the last", default=None)


@dataclass(frozen=True)
class PocketOut:
    """One pocket of a wallet: its utility and balance (money, or kWh/kL in units mode)."""

    utility: str
    balance: Decimal
    commodity: str = described("Currency code, or KWH / KL for an estate selling units")


@dataclass(frozen=True)
class WalletOut:
    """A unit's wallet with a balance per utility pocket."""

    unit_id: int
    estate_id: int
    pockets: list[PocketOut]


@dataclass(frozen=True)
class WalletList:
    """A page of wallets."""

    data: list[WalletOut]
    next_cursor: str | None = described("Pass as `cursor` for the next page; null on the last", default=None)


@dataclass(frozen=True)
class ConsumptionOut:
    """A meter's first and last reading inside a named period and the consumption between."""

    serial: str
    period: Period
    start: datetime
    end: datetime
    first_reading_at: datetime | None
    first_register: Decimal | None
    last_reading_at: datetime | None
    last_register: Decimal | None
    consumption: Decimal | None


@dataclass(frozen=True)
class TopupIn:
    """A top-up from an external vendor or USSD app, credited to a unit's pocket."""

    unit_id: int = described("The unit whose wallet is credited", minimum=1)
    amount: Decimal = described('The amount paid, in the estate\'s currency, as a string ("150.00")')
    utility: Utility | None = described("The pocket; default the unit's first metered utility", default=None)
    reference: str | None = described("The vendor's own transaction reference", default=None, maxLength=100)
    payer_phone: str | None = described("Phone the receipt SMS goes to", default=None, maxLength=32)


@dataclass(frozen=True)
class TopupOut:
    """A credited top-up and the pocket's new balance."""

    payment_id: int
    transaction_id: int | None
    unit_id: int
    utility: str
    amount: Decimal
    currency: str
    balance: Decimal
    status: str


@dataclass(frozen=True)
class BillOut:
    """A meter's bill for last month (in the estate's timezone): readings, consumption, amount billed."""

    serial: str
    period: str = described("The month billed, YYYY-MM")
    start: datetime = described("The month's first moment (UTC)")
    end: datetime = described("The next month's first moment (UTC)")
    start_reading_at: datetime | None = described("The month's first reading")
    start_register: Decimal | None = described("The register at the first reading")
    end_reading_at: datetime | None = described("The month's last reading")
    end_register: Decimal | None = described("The register at the last reading")
    consumption: Decimal | None = described("The register's rise (kWh, kL)")
    amount_billed: Decimal = described("Consumption charges posted to the pocket for readings in the month")
    commodity: str = described("The amount's currency, or KWH / KL for an estate selling units")


@dataclass(frozen=True)
class MaintenanceOut:
    """Whether maintenance mode holds reading ingest (readings wait in the broker meanwhile)."""

    maintenance: bool


@dataclass(frozen=True)
class MaintenanceIn:
    """Switch maintenance mode on or off."""

    maintenance: bool


@dataclass(frozen=True)
class DebtOut:
    """One debt: a pocket below zero or an open arrears record, with its age."""

    estate_id: int
    unit_id: int | None
    kind: Literal["pocket", "record"]
    utility: str | None
    source: str = described("pocket, or the record's source (move_out, levy, migration, manual)")
    owed: Decimal = described("Money owed, in the estate's currency")
    currency: str = described("The estate's currency")
    since: str = described("Local date the debt began, YYYY-MM-DD")
    days: int = described("Days in debt")
    bucket: str = described("Aging bucket: current, 30, 60, 90, 120")
    record_id: int | None = described("The arrears record, for kind record", default=None)


@dataclass(frozen=True)
class DebtList:
    """A page of debts, oldest first."""

    data: list[DebtOut]
    next_cursor: str | None = described("Pass as `cursor` for the next page; null on the last", default=None)


@dataclass(frozen=True)
class NewMeterIn:
    """The meter registered with a new unit."""

    serial: str = described("The meter's serial (leading zeros are ignored)", maxLength=64)
    utility: Utility = described("What it measures")
    protocol: str | None = described("How it reports (default mqtt_direct)", default=None, maxLength=32)
    interval_minutes: int | None = described("Minutes between readings", default=None, minimum=1, maximum=1440)
    dev_eui: str | None = described("LoRaWAN DevEUI (ChirpStack meters)", default=None, maxLength=32)


@dataclass(frozen=True)
class UnitIn:
    """A unit to register in an estate, optionally with its meter."""

    estate_id: int = described("The estate", minimum=1)
    number: str = described("The unit number, unique in the estate", maxLength=32)
    occupancy_status: Literal["occupied", "vacant", "maintenance"] | None = described(
        "Starting occupancy (default vacant)", default=None)
    floor_area_m2: Decimal | None = described("Floor area in m²", default=None)
    address: str | None = described("Postal address", default=None, maxLength=500)
    meter: NewMeterIn | None = described("The unit's meter, registered with it", default=None)


@dataclass(frozen=True)
class UnitCreatedOut:
    """A unit just registered, and its meter if one was sent."""

    unit: UnitOut
    meter: MeterOut | None


@dataclass(frozen=True)
class PersonIn:
    """The tenant moving in (a new person; matched to an existing one by the estate-admin rules)."""

    full_name: str = described("Full name", maxLength=200)
    email: str | None = described("Email: the tenant gets an invite to the portal", default=None, maxLength=254)
    phone: str | None = described("Phone (E.164 or local): an SMS with the account number", default=None,
                                  maxLength=32)
    language: Language | None = described(
        "The tenant's language for pages, emails and SMS (en, fr, st); absent: the estate's default", default=None)


@dataclass(frozen=True)
class MoveInIn:
    """A move-in: who, from which local date, and the opening register per utility."""

    person: PersonIn
    move_in: str = described("Local date, YYYY-MM-DD", pattern=r"^\d{4}-\d{2}-\d{2}$")
    openings: dict[str, str] | None = described("Opening register per utility (kWh, kL), as a decimal string",
                                                default=None)


@dataclass(frozen=True)
class MoveInOut:
    """A tenant moved in."""

    unit_id: int
    tenancy_id: int
    person_id: int
    readings: int = described("Opening readings taken")


@dataclass(frozen=True)
class MoveOutIn:
    """A move-out: the local date and the closing register per utility."""

    move_out: str = described("Local date, YYYY-MM-DD", pattern=r"^\d{4}-\d{2}-\d{2}$")
    closings: dict[str, str] | None = described("Closing register per utility (kWh, kL), as a decimal string",
                                                default=None)


@dataclass(frozen=True)
class MoveOutOut:
    """A tenant moved out: what was refunded and what is carried as a debt."""

    unit_id: int
    tenancy_id: int
    refunded: Decimal
    debt: Decimal
    currency: str


@dataclass(frozen=True)
class BulkRowIn:
    """One wallet of a bulk top-up."""

    unit_id: int = described("The unit", minimum=1)
    amount: Decimal = described('The amount, as a string ("150.00")')
    utility: Utility = described("The pocket", default="electricity")


@dataclass(frozen=True)
class BulkTopupIn:
    """Many wallets of one estate credited at once, from the estate's agent float."""

    estate_id: int = described("The estate", minimum=1)
    rows: list[BulkRowIn] = described("The wallets (at most 20,000)")
    description: str | None = described("What the batch is for", default=None, maxLength=200)


@dataclass(frozen=True)
class BulkSkippedOut:
    """A row left out of the batch, and why."""

    unit: str
    utility: str
    amount: str
    reason: str


@dataclass(frozen=True)
class BulkTopupOut:
    """A bulk top-up batch: credited now (up to 100 wallets) or by a job (larger batches)."""

    batch_id: int
    status: str = described("planned, running or done")
    count: int = described("Wallets in the batch")
    credited: int = described("Wallets credited so far")
    total: Decimal = described("The batch's total")
    currency: str = described("The estate's currency")
    skipped: list[BulkSkippedOut] = described("Rows left out, with the reason")
