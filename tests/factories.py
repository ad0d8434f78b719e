"""Test data: small functions that add rows to a session and flush (they never commit).

Every factory takes the session first and returns the ORM object(s) it made; anything
not passed gets a unique, readable default (codes and serials come from one counter, so
many estates can live in one test or one hypothesis run). The caller commits when the
test needs committed data (ledger triggers fire at COMMIT; web requests read committed
rows).

    estate = make_estate(session)                       # ZAR, currency-denominated
    kit = make_estate_with_wallet(session)              # estate, unit, wallet, system accounts
    make_topup(session, kit.wallet.pocket("electricity"), "150.00", clearing=kit.accounts.clearing)
    user = make_user(session, "tenant", unit=kit.unit)  # password: DEFAULT_PASSWORD
    session.commit()
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from app.ledger import Entry, Posted, post
from app.ledger.accounts import open_wallet, system_account
from app.models import Account, Estate, FinancialPeriod, Meter, Person, RoleGrant, Unit, User, Wallet
from app.models.meter import UTILITIES, canonical_serial
from app.money import UTILITY_UNITS

DEFAULT_PASSWORD = "correct horse battery staple"

# Sensible country and timezone per currency, so an XOF estate is not in Johannesburg.
_COUNTRY = {"ZAR": ("ZA", "Africa/Johannesburg"), "LSL": ("LS", "Africa/Maseru"),
            "XOF": ("SN", "Africa/Dakar"), "KES": ("KE", "Africa/Nairobi"),
            "NAD": ("NA", "Africa/Windhoek"), "BWP": ("BW", "Africa/Gaborone")}

_sequence = itertools.count(1)


def unique(prefix: str) -> str:
    """Return `prefix` with a number no other factory call in this process returned."""
    return f"{prefix}{next(_sequence)}"


def make_estate(
    session: Session,
    *,
    currency: str = "ZAR",
    denomination: str = "currency",
    code: str | None = None,
    name: str | None = None,
    country: str | None = None,
    timezone: str | None = None,
    features: dict | None = None,
    minimum_activation_amount: Decimal | str = "0",
    fiscal_year_start_month: int = 3,
) -> Estate:
    """Add an estate; `denomination="units"` makes pockets hold kWh/kL instead of money."""
    from app.money import minor_units

    default_country, default_tz = _COUNTRY.get(currency, ("ZA", "Africa/Johannesburg"))
    code = code or unique("EST")
    estate = Estate(
        code=code, name=name or f"Estate {code}", country=country or default_country,
        currency=currency, currency_minor_units=minor_units(currency),
        timezone=timezone or default_tz, fiscal_year_start_month=fiscal_year_start_month,
        wallet_denomination=denomination,
        minimum_activation_amount=Decimal(minimum_activation_amount),
        features=dict(features or {}),
    )
    session.add(estate)
    session.flush()
    return estate


def make_unit(session: Session, estate: Estate, *, number: str | None = None,
              occupancy_status: str = "occupied", floor_area_m2: Decimal | str | None = None) -> Unit:
    """Add a unit to an estate."""
    unit = Unit(estate_id=estate.id, number=number or unique("U"),
                occupancy_status=occupancy_status,
                floor_area_m2=Decimal(floor_area_m2) if floor_area_m2 is not None else None)
    session.add(unit)
    session.flush()
    return unit


def make_wallet(session: Session, unit: Unit, utilities: tuple[str, ...] = UTILITIES) -> Wallet:
    """Open the unit's wallet with one pocket per utility (the app's own open_wallet)."""
    return open_wallet(session, unit, utilities)


@dataclass
class SystemAccounts:
    """An estate's non-wallet accounts, as the ledger tests and payment code use them."""

    clearing: Account                      # money received, not yet in a wallet
    suspense: Account                      # unmatched payments
    revenue: dict[str, Account] = field(default_factory=dict)       # per utility, currency
    units_issued: dict[str, Account] = field(default_factory=dict)  # units mode, per utility


def make_system_accounts(session: Session, estate: Estate, *, clearing_key: str = "payments") -> SystemAccounts:
    """Add (or find) the estate's clearing, suspense, revenue and units-issued accounts."""
    accounts = SystemAccounts(
        clearing=system_account(session, estate, "clearing", clearing_key),
        suspense=system_account(session, estate, "suspense", "unmatched"),
    )
    for utility in UTILITIES:
        accounts.revenue[utility] = system_account(session, estate, "revenue", utility,
                                                   utility=utility)
        if estate.wallet_denomination == "units":
            accounts.units_issued[utility] = system_account(
                session, estate, "units_issued", utility, utility=utility,
                commodity=UTILITY_UNITS[utility],
            )
    return accounts


@dataclass
class EstateKit:
    """An estate with one unit, its wallet and the system accounts."""

    estate: Estate
    unit: Unit
    wallet: Wallet
    accounts: SystemAccounts

    def pocket(self, utility: str = "electricity") -> Account:
        return self.wallet.pocket(utility)


def make_estate_with_wallet(session: Session, **estate_options) -> EstateKit:
    """Add an estate (options as make_estate), one unit, its wallet and system accounts."""
    estate = make_estate(session, **estate_options)
    unit = make_unit(session, estate)
    wallet = make_wallet(session, unit)
    return EstateKit(estate, unit, wallet, make_system_accounts(session, estate))


def make_period(session: Session, estate: Estate, period: str, status: str = "open") -> FinancialPeriod:
    """Add an estate's financial period ('YYYY-MM') as open, closed or locked."""
    row = FinancialPeriod(estate_id=estate.id, period=period, status=status)
    session.add(row)
    session.flush()
    return row


def make_topup(
    session: Session,
    pocket: Account,
    amount: Decimal | str,
    *,
    clearing: Account | None = None,
    key: str | None = None,
    kind: str = "topup",
    occurred_at: datetime | None = None,
    memo: str = "",
) -> Posted:
    """Post money from the clearing account into a pocket through the real ledger."""
    if clearing is None:
        estate = session.get(Estate, pocket.estate_id)
        clearing = system_account(session, estate, "clearing", "payments")
    return post(session, Entry(
        estate_id=pocket.estate_id, kind=kind, idempotency_key=key or unique("test:topup:"),
        legs=[(pocket.id, Decimal(amount)), (clearing.id, -Decimal(amount))],
        occurred_at=occurred_at, memo=memo,
    ))


def make_user(
    session: Session,
    role: str | None = None,
    *,
    estate: Estate | None = None,
    unit: Unit | None = None,
    email: str | None = None,
    password: str | None = DEFAULT_PASSWORD,
    full_name: str | None = None,
    phone: str | None = None,
    active: bool = True,
    grants: list[tuple[str, Estate | Unit | None]] = (),
) -> User:
    """Add a login with a person and role grants.

    `role` with `estate` or `unit` makes one grant (staff takes neither); `grants` adds
    more as (role, Estate | Unit | None). `password=None` leaves an invited, unset login.
    """
    email = email or f"{unique(role or 'user')}@example.test"
    person = Person(full_name=full_name or email.split("@")[0].title(), email=email, phone=phone)
    user = User(email=email, active=active, person=person)
    if password is not None:
        user.set_password(password)
    wanted = list(grants)
    if role is not None:
        wanted.insert(0, (role, unit if unit is not None else estate))
    for grant_role, scope in wanted:
        user.grants.append(RoleGrant(
            role=grant_role,
            estate_id=scope.id if isinstance(scope, Estate) else None,
            unit_id=scope.id if isinstance(scope, Unit) else None,
        ))
    session.add(user)
    session.flush()
    return user


def make_meter(
    session: Session,
    unit: Unit | None = None,
    *,
    estate: Estate | None = None,
    utility: str = "electricity",
    serial: str | None = None,
    role: str = "unit",
    protocol: str = "mqtt_direct",
    dev_eui: str | None = None,
    interval_minutes: int | None = None,
) -> Meter:
    """Add a meter on a unit (or, for bulk meters, on an estate with unit=None)."""
    if unit is None and estate is None:
        raise ValueError("a meter needs a unit or an estate")
    meter = Meter(
        estate_id=unit.estate_id if unit is not None else estate.id,
        unit_id=unit.id if unit is not None else None,
        serial=canonical_serial(serial or str(10_000_000 + next(_sequence))),
        utility=utility, role=role, protocol=protocol, dev_eui=dev_eui,
        interval_minutes=interval_minutes,
    )
    session.add(meter)
    session.flush()
    return meter
