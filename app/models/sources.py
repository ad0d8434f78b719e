"""Local copies of external sources: UISP CRM clients, services, invoices and payments.

Rows are keyed by the source's id (`uisp_id`) and upserted by the refresh job; a row that
disappears at the source gets `removed_at` set and is never deleted. `changed_at` moves
only when a refresh really changed the row, so a second identical refresh writes nothing.

How UISP clients relate to estates: a client attribute with key `estate` whose value is an
estate's code links the client to that estate (`estate_id`); without it, or with an unknown
code, the client belongs to no estate and is only visible in the "all" views.
"""
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, utcnow

SERVICE_STATUSES = {0: "prepared", 1: "active", 2: "ended", 3: "suspended", 4: "prepared, blocked",
                    5: "obsolete", 6: "deferred", 7: "quoted", 8: "inactive"}
SERVICE_SUSPENDED = 3


class UispClient(Base):
    """A UISP CRM client, with the payment-pattern analysis of its invoices and payments."""

    __tablename__ = "uisp_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    uisp_id: Mapped[int] = mapped_column(unique=True)
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    user_ident: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    is_active: Mapped[bool]
    is_archived: Mapped[bool]
    is_vip: Mapped[bool]
    grace_payment_day: Mapped[int | None]  # day of month until which a late payer is spared
    account_balance: Mapped[Decimal]
    account_outstanding: Mapped[Decimal]
    currency: Mapped[str | None] = mapped_column(String(3))  # of its invoices and payments
    has_suspended_service: Mapped[bool]
    # Payment pattern (computed at refresh from the client's invoices and payments).
    on_time_count: Mapped[int]
    late_count: Mapped[int]
    missed_count: Mapped[int]
    average_days_late: Mapped[Decimal | None]
    average_payment: Mapped[Decimal | None]
    last_payment_at: Mapped[datetime | None]
    risky: Mapped[bool]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]

    services: Mapped[list["UispService"]] = relationship(
        primaryjoin="UispClient.uisp_id == foreign(UispService.client_uisp_id)",
        order_by="UispService.uisp_id", viewonly=True)
    invoices: Mapped[list["UispInvoice"]] = relationship(
        primaryjoin="UispClient.uisp_id == foreign(UispInvoice.client_uisp_id)",
        order_by="UispInvoice.created_at.desc()", viewonly=True)
    payments: Mapped[list["UispPayment"]] = relationship(
        primaryjoin="UispClient.uisp_id == foreign(UispPayment.client_uisp_id)",
        order_by="UispPayment.created_at.desc()", viewonly=True)


class UispService(Base):
    """A client's service (plan) and its status: active, suspended, ..."""

    __tablename__ = "uisp_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    uisp_id: Mapped[int] = mapped_column(unique=True)
    client_uisp_id: Mapped[int] = mapped_column(ForeignKey("uisp_clients.uisp_id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[int]
    price: Mapped[Decimal]
    active_from: Mapped[date | None]
    active_to: Mapped[date | None]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]

    @property
    def status_label(self) -> str:
        return SERVICE_STATUSES.get(self.status, str(self.status))


class UispInvoice(Base):
    """An invoice; `paid` comes from what is still owed (amountToPay), never from status."""

    __tablename__ = "uisp_invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    uisp_id: Mapped[int] = mapped_column(unique=True)
    client_uisp_id: Mapped[int] = mapped_column(ForeignKey("uisp_clients.uisp_id"), index=True)
    number: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    due_date: Mapped[date | None]
    total: Mapped[Decimal]
    amount_paid: Mapped[Decimal]
    amount_to_pay: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[int]
    paid: Mapped[bool]
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]


class UispPayment(Base):
    """A payment received in UISP, with the invoices it covers."""

    __tablename__ = "uisp_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    uisp_id: Mapped[int] = mapped_column(unique=True)
    client_uisp_id: Mapped[int] = mapped_column(ForeignKey("uisp_clients.uisp_id"), index=True)
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime]
    method: Mapped[str | None] = mapped_column(String(64))
    provider_payment_id: Mapped[str | None] = mapped_column(String(128))
    covers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None]


class ThunderCloudHeartbeat(Base):
    """One heartbeat row of a ThunderCloud export: a meter's account credit at a moment."""

    __tablename__ = "thundercloud_heartbeats"

    id: Mapped[int] = mapped_column(primary_key=True)
    heartbeat_id: Mapped[str] = mapped_column(String(64), unique=True)
    meter_serial: Mapped[str] = mapped_column(String(64), index=True)
    customer_code: Mapped[str | None] = mapped_column(String(64))
    taken_at: Mapped[datetime]
    credit_balance: Mapped[Decimal]
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class ThunderCloudPayment(Base):
    """A payment seen as a positive jump in account credit between consecutive heartbeats, and its unit."""

    __tablename__ = "thundercloud_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    heartbeat_id: Mapped[str] = mapped_column(String(64), unique=True)  # the heartbeat after the jump
    previous_heartbeat_id: Mapped[str] = mapped_column(String(64))
    meter_serial: Mapped[str] = mapped_column(String(64), index=True)
    customer_code: Mapped[str | None] = mapped_column(String(64))
    detected_at: Mapped[datetime]
    amount: Mapped[Decimal]
    kwh: Mapped[Decimal]
    # The unit whose SparkMeter meter has this serial; NULL until one does (matched every import).
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)


class ThunderCloudExport(Base):
    """One export file imported (fetched over HTTP or found in the export folder): the fetch cache.

    `name` is "<site>/<YYYY-MM-DD>" for a fetched file (a day is fetched once) and
    "folder:<file name>" for a dropped file (imported again only when its content changes).
    """

    __tablename__ = "thundercloud_exports"
    __table_args__ = (UniqueConstraint("name", "sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    origin: Mapped[str] = mapped_column(String(8))  # "http" or "folder"
    site: Mapped[str | None] = mapped_column(String(64))
    day: Mapped[date | None]
    file_format: Mapped[str] = mapped_column(String(8))  # "csv" or "parquet"
    size_bytes: Mapped[int]
    rows: Mapped[int]
    new_heartbeats: Mapped[int]
    new_payments: Mapped[int]
    refused: Mapped[int]
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


KOIOS_PAYMENT_ORIGINS = ("vendor", "meterwise")  # paid at SparkMeter, or our own credit push


class KoiosPayment(Base):
    """A payment listed by Koios, recorded (never credited: see app/sources/koios_payments.py)."""

    __tablename__ = "koios_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    koios_id: Mapped[str] = mapped_column(String(64), unique=True)
    origin: Mapped[str] = mapped_column(String(10))
    customer_code: Mapped[str | None] = mapped_column(String(64), index=True)
    amount: Mapped[Decimal]
    currency: Mapped[str | None] = mapped_column(String(3))
    paid_at: Mapped[datetime]
    memo: Mapped[str | None] = mapped_column(String(300))
    external_id: Mapped[str | None] = mapped_column(String(128))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"))  # our push it mirrors
    estate_id: Mapped[int | None] = mapped_column(ForeignKey("estates.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    meter_serial: Mapped[str | None] = mapped_column(String(64))
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    matched_at: Mapped[datetime | None]
