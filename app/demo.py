"""Demo data for `flask seed-demo`: three estates with units, people, meters, readings, money, logins.

Owns only the demo picture. Sunbird Estate (ZA) sells rand into currency wallets; Maseru
Heights (LS) sells kWh and kL into units wallets. Residents top up a few times a month,
just ahead of the consumption that is billed once a day; a handful stopped paying, so
their electricity is cut (relay off) and their wallets are negative. Thaba-Putsoa
Mini-grid (LS) is a small solar mini-grid on SparkMeter: its meters carry the serials the
Koios emulator serves (`make run`), so the staff Sources imports bill its readings and
match its vendor payments to units.

Money moves through `app.ledger.post_many` like everywhere else. Readings are inserted
with SQLAlchemy Core executemany because half a million ORM objects would take minutes.
Quantities are kept as integer milli-units (Wh, litres) so sums are exact; floats appear
only in the random consumption profile, before rounding to a whole Wh or litre. Everything
comes from one `random.Random(2026)`, so a run is reproducible for a given "now".
"""
from __future__ import annotations

import math
import random
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_CEILING, Decimal
from time import perf_counter
from zoneinfo import ZoneInfo

import click
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.audit import Actor, record
from app.settings import put_setting
from app.ledger import Entry, post_many
from app.ledger.accounts import open_wallet, system_account
from app.models import (
    Account, Estate, Meter, OccupancyChange, Person, Reading, RoleGrant, Tenancy, Unit,
    UnitOwnership, User, canonical_serial, utcnow,
)
from app.models.metering import TariffVersion
from app.money import UTILITY_UNITS, format_amount, minor_units, quantize

SEED = 2026
SLOT = timedelta(minutes=30)
READING_CHUNK = 10_000  # rows per executemany: large enough to amortise, small enough for memory
LEDGER_BATCH = 2_000
ACTOR = Actor("system:seed-demo")
LOGIN_DOMAIN = "demo.meterwise.local"
CHANNEL_LABELS = {"payfast": "PayFast", "eft": "EFT", "mpesa": "M-Pesa"}
UNIT_LABELS = {"KWH": "kWh", "KL": "kL"}


class DemoAlreadySeeded(click.ClickException):
    """The demo estates exist already; seeding twice would collide on their codes."""


# --- the plan --------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitPlan:
    number: str
    utilities: tuple[str, ...]  # unit meters, besides any bulk meter
    story: str = "occupied"  # occupied | moved_in | moved_out | vacant | maintenance
    days_ago: int = 0  # when the story's latest change happened
    arrears: bool = False  # stopped paying: wallet runs dry, electricity is cut
    tenant: str | None = None  # a fixed tenant name (the demo logins' household)
    careful: bool = False  # tops up well ahead, so the wallet always looks healthy


@dataclass(frozen=True)
class ClassPlan:
    """A tariff class (C5): its own flat prices and the units on it; `default` names the default class."""

    code: str
    name: str
    tariffs: dict[str, Decimal] = field(default_factory=dict)  # empty: the estate's own prices
    units: tuple[str, ...] = ()
    default: bool = False


@dataclass(frozen=True)
class EstatePlan:
    code: str
    name: str
    country: str
    currency: str
    timezone: str
    fiscal_year_start_month: int
    wallet_denomination: str
    minimum_activation_amount: Decimal
    handover: date
    tariffs: dict[str, Decimal]  # currency per kWh or kL
    channels: tuple[str, ...]  # payment clearing accounts, the first is the usual one
    topup_step: Decimal  # top-ups are whole multiples of this
    area_range: tuple[int, int]
    size_divisor: float  # floor area of a household of average consumption
    first_names: tuple[str, ...]
    surnames: tuple[str, ...]
    phone_prefixes: tuple[str, ...]
    phone_digits: int
    units: tuple[UnitPlan, ...]
    # A SparkMeter estate: unit number -> the serial Koios knows its electricity meter by.
    # Its readings come from the daily Koios import, so the seeded history stops where
    # yesterday's import begins (see `_clock_for`), and the meters report hourly like Koios.
    sparkmeter_serials: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)  # estate settings (app.settings)
    bulk_meters: bool = True  # a check meter per supplied utility
    owner_occupied: bool = False  # households own their homes (no investors)
    tariff_classes: tuple[ClassPlan, ...] = ()  # none: one default class, created on demand

    def prices_of(self, number: str) -> dict[str, Decimal]:
        """The flat prices a unit pays: its tariff class's, else the estate's."""
        for plan in self.tariff_classes:
            if number in plan.units and plan.tariffs:
                return plan.tariffs
        return self.tariffs


def _sunbird_units() -> tuple[UnitPlan, ...]:
    """Blocks A-C of eight; A and B share a heat-pump hot-water plant, C01-C03 have solar."""
    special = {
        "A03": {"tenant": "Lindiwe Mahlangu", "careful": True},
        "A07": {"story": "moved_out", "days_ago": 48},
        "B03": {"story": "moved_in", "days_ago": 33},
        "B05": {"story": "maintenance", "days_ago": 25},
        "B06": {"arrears": True},
        "C04": {"story": "vacant"},
        "C07": {"arrears": True},
        "C08": {"story": "vacant"},
    }
    units = []
    for block in "ABC":
        for n in range(1, 9):
            number = f"{block}{n:02d}"
            utilities = ("electricity", "water")
            if block in "AB":
                utilities += ("hot_water",)
            if block == "C" and n <= 3:
                utilities += ("solar",)
            units.append(UnitPlan(number, utilities, **special.get(number, {})))
    return tuple(units)


def _maseru_units() -> tuple[UnitPlan, ...]:
    """Two floors of eight flats; 101 and 102 buy from the rooftop solar plant."""
    special = {
        "106": {"story": "moved_out", "days_ago": 61},
        "108": {"arrears": True},
        "203": {"story": "moved_in", "days_ago": 21},
        "204": {"tenant": "Sibusiso Mahlangu"},
        "205": {"arrears": True},
        "207": {"story": "vacant"},
    }
    units = []
    for floor in (1, 2):
        for n in range(1, 9):
            number = f"{floor}{n:02d}"
            utilities = ("electricity", "water") + (("solar",) if number in ("101", "102") else ())
            units.append(UnitPlan(number, utilities, **special.get(number, {})))
    return tuple(units)


def _minigrid_units() -> tuple[UnitPlan, ...]:
    """Five connections in each of two villages, one Koios site each; households top up ahead."""
    special = {"HN02": {"tenant": "Palesa Mokoteli"}}
    return tuple(UnitPlan(f"{village}{n:02d}", ("electricity",), careful=True,
                          **special.get(f"{village}{n:02d}", {}))
                 for village in ("HN", "HM") for n in range(1, 6))


# The Koios emulator's default organisation (tests/emulators/koios.py `build()`): site n has
# meters SMnn0001-SMnn0005 and customers C-<serial>; Ha Nkoe is site 1, Ha Mosa site 2.
MINIGRID_SERIALS = {f"{village}{n:02d}": f"SM{site:02d}{n:04d}"
                    for site, village in ((1, "HN"), (2, "HM")) for n in range(1, 6)}

SA_FIRST = ("Sipho", "Ayanda", "Naledi", "Bongani", "Zanele", "Kagiso", "Themba", "Nomvula",
            "Pieter", "Johan", "Annelize", "Ruan", "Priya", "Yusuf", "Fatima", "Chantal", "Mandla",
            "Nokuthula", "Siyabonga", "Karabo", "Refilwe", "Jacques", "Elmarie", "Devan", "Aisha",
            "Lwazi", "Busisiwe", "Hendrik", "Tshepiso", "Khanyisile")
SA_SURNAMES = ("Dlamini", "Nkosi", "Khumalo", "Ndlovu", "Mthembu", "van der Merwe", "Botha",
               "Pretorius", "Naidoo", "Pillay", "Adams", "Molefe", "Zulu", "Sithole", "Nel",
               "Jacobs", "Maseko", "Mabaso", "Govender", "Hendricks", "Radebe", "Shabalala",
               "Petersen", "Mokwena", "du Plessis")
LS_FIRST = ("Lerato", "Thabo", "Palesa", "Tšepo", "Mpho", "Nthabiseng", "Lineo", "Relebohile",
            "Teboho", "Limpho", "Motlatsi", "Puleng", "Rethabile", "Tumelo", "Lebohang",
            "'Mathabo", "Mosa", "Keketso", "Khotso", "Bokang")
LS_SURNAMES = ("Mokhethi", "Mohapi", "Letsie", "Ntsekhe", "Ramakoae", "Mofokeng", "Makara",
               "Sekhesa", "Thamae", "Mokoteli", "Ramoholi", "Phafoli", "Lerotholi", "Nkuebe",
               "Sello", "Tau", "Mphutlane", "Khoabane", "Molapo", "Matete")

ESTATES = (
    EstatePlan(
        code="SUN", name="Sunbird Estate", country="ZA", currency="ZAR",
        timezone="Africa/Johannesburg", fiscal_year_start_month=3, wallet_denomination="currency",
        minimum_activation_amount=Decimal("20"), handover=date(2018, 2, 1),
        tariffs={"electricity": Decimal("2.85"), "water": Decimal("38.50"),
                 "hot_water": Decimal("95.00"), "solar": Decimal("1.95")},
        # M-Pesa closed in South Africa in 2016: rand wallets are paid by card or EFT.
        channels=("payfast", "eft"), topup_step=Decimal("50"), area_range=(68, 142),
        size_divisor=100.0, first_names=SA_FIRST, surnames=SA_SURNAMES,
        phone_prefixes=("+2782", "+2783", "+2772", "+2771", "+2760", "+2784"), phone_digits=7,
        units=_sunbird_units(),
    ),
    EstatePlan(
        code="MAS", name="Maseru Heights", country="LS", currency="LSL",
        timezone="Africa/Maseru", fiscal_year_start_month=4, wallet_denomination="units",
        minimum_activation_amount=Decimal("0"), handover=date(2020, 8, 1),
        tariffs={"electricity": Decimal("2.10"), "water": Decimal("16.80"),
                 "solar": Decimal("1.60")},
        channels=("mpesa", "eft"), topup_step=Decimal("50"), area_range=(38, 86),
        size_divisor=110.0, first_names=LS_FIRST, surnames=LS_SURNAMES,
        phone_prefixes=("+2665", "+2666"), phone_digits=7,
        units=_maseru_units(),
    ),
    EstatePlan(
        code="TPM", name="Thaba-Putsoa Mini-grid", country="LS", currency="LSL",
        timezone="Africa/Maseru", fiscal_year_start_month=4, wallet_denomination="currency",
        minimum_activation_amount=Decimal("0"), handover=date(2023, 5, 1),
        # SparkMeter keeps credit in money: wallets in maloti, like the vendor's accounts.
        tariffs={"electricity": Decimal("5.60")},
        channels=("mpesa",), topup_step=Decimal("10"), area_range=(22, 64),
        size_divisor=100.0, first_names=LS_FIRST, surnames=LS_SURNAMES,
        phone_prefixes=("+2665", "+2666"), phone_digits=7,
        units=_minigrid_units(), sparkmeter_serials=MINIGRID_SERIALS,
        # C-{serial}: the credit push to Koios; S1, S2: the ThunderCloud emulator's sites (backfills)
        settings={"sparkmeter_customer_code": "C-{serial}", "thundercloud_sites": ["S1", "S2"]},
        bulk_meters=False, owner_occupied=True,
        # 1PWR-style price lists: households and small businesses (the shop, the mill) pay apart.
        tariff_classes=(ClassPlan("residential", "Residential", default=True),
                        ClassPlan("pme", "PME (small business)", {"electricity": Decimal("7.20")},
                                  units=("HN05", "HM05"))),
    ),
)

# The people behind the demo logins; tenant and family are one household across two estates.
LOGIN_PEOPLE = {
    "staff": ("Nomsa Sithole", "+27115550142"),
    "tenant": ("Lindiwe Mahlangu", None),  # the tenant of SUN A03, created with the tenancy
    "owner": ("Thandiwe Mokoena", "+27825550188"),
    "family": ("Grace Mahlangu", "+27735550121"),
    "body_corporate": ("Marius Coetzee", "+27835550176"),
    "agent": ("Kefilwe Modise", "+27725550163"),
    "utility": ("Mpho Lebona", "+26622315500"),
    "minigrid_tenant": ("Palesa Mokoteli", None),  # the household of TPM HN02 (SparkMeter)
}
# Tenant logins: the person arrives with the tenancy of this (estate, unit).
TENANT_LOGINS = {"tenant": ("SUN", "A03"), "minigrid_tenant": ("TPM", "HN02")}
OWNER_UNITS = {"SUN": ("A05", "A06", "B02", "C04"), "MAS": ("103", "104"), "TPM": ()}
FAMILY_UNITS = {"SUN": ("A03",), "MAS": ("204",)}


# --- time ------------------------------------------------------------------------------


@dataclass
class Clock:
    """The half-hour slots readings are taken at, and how each falls in an estate's day."""

    now: datetime
    slots: list[datetime]
    received: list[datetime]

    @classmethod
    def ending_now(cls, days: int) -> Clock:
        """Slots for `days` days, the last one the current :00 or :30 in UTC."""
        now = utcnow()
        now = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)
        return cls.ending_at(now, days)

    @classmethod
    def ending_at(cls, now: datetime, days: int) -> Clock:
        """Slots for `days` days, the last one at `now` (a :00 or :30 in UTC)."""
        count = days * 48
        slots = [now - SLOT * (count - 1 - i) for i in range(count)]
        # Gateways deliver a few seconds late; one shared offset keeps this cheap.
        return cls(now, slots, [slot + timedelta(seconds=7) for slot in slots])


@dataclass
class LocalDays:
    """An estate's view of the slots: local half-hour of day, weekend, and day boundaries."""

    tz: ZoneInfo
    slot_of_day: list[int]
    weekend: list[bool]
    day_of_slot: list[int]
    days: list[tuple[date, int, int]]  # (local date, first slot, end slot) in order

    @classmethod
    def build(cls, clock: Clock, timezone: str) -> LocalDays:
        """Group slots by the local date their half hour starts in."""
        tz = ZoneInfo(timezone)
        slot_of_day, weekend, day_of_slot, days = [], [], [], []
        for index, taken_at in enumerate(clock.slots):
            start = (taken_at - SLOT).astimezone(tz)
            slot_of_day.append(start.hour * 2 + start.minute // 30)
            weekend.append(start.weekday() >= 5)
            if not days or days[-1][0] != start.date():
                if days:
                    days[-1] = (days[-1][0], days[-1][1], index)
                days.append((start.date(), index, index))
            day_of_slot.append(len(days) - 1)
        days[-1] = (days[-1][0], days[-1][1], len(clock.slots))
        return cls(tz, slot_of_day, weekend, day_of_slot, days)

    def moment(self, day: date, hour: float) -> datetime:
        """A local wall-clock time on `day`, in UTC."""
        local = datetime.combine(day, time(0), self.tz) + timedelta(hours=hour)
        return local.astimezone(UTC)


# --- people ----------------------------------------------------------------------------


class NameBook:
    """Hands out distinct, plausible names, phones and (reserved-domain) emails per country."""

    def __init__(self, rng: random.Random, plan: EstatePlan, taken: set[str]) -> None:
        self.rng, self.plan, self.taken = rng, plan, taken

    def person(self, session: Session, full_name: str | None = None) -> Person:
        """Create a Person with a new name (or the given one)."""
        name = full_name or self._fresh_name()
        self.taken.add(name)
        person = Person(full_name=name, email=_email_for(name), phone=self._phone())
        session.add(person)
        return person

    def _fresh_name(self) -> str:
        while True:
            name = f"{self.rng.choice(self.plan.first_names)} {self.rng.choice(self.plan.surnames)}"
            if name not in self.taken:
                return name

    def _phone(self) -> str:
        digits = "".join(str(self.rng.randrange(10)) for _ in range(self.plan.phone_digits))
        return self.rng.choice(self.plan.phone_prefixes) + digits


def _email_for(name: str) -> str:
    """example.com is reserved: a demo can never email a real person."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = ".".join(part for part in ascii_name.lower().replace("'", "").split())
    return f"{slug}@example.com"


# --- seeding ---------------------------------------------------------------------------


def seed(session: Session, days: int = 90) -> list[tuple[str, str, str]]:
    """Create the demo estates and one login per layer; return (role, email, password)."""
    if days < 1:
        raise ValueError("days must be at least 1")
    codes = [plan.code for plan in ESTATES]
    if session.scalar(select(Estate.code).where(Estate.code.in_(codes))):
        raise DemoAlreadySeeded(f"estates {', '.join(codes)} exist already; seed an empty database")
    started = perf_counter()
    rng = random.Random(SEED)
    clock = Clock.ending_now(days)
    taken: set[str] = set()
    people = _login_people(session)
    taken.update(person.full_name for person in people.values())
    taken.update(name for name, _ in LOGIN_PEOPLE.values())  # tenants arrive later, by name
    ids: set[str] = set()  # meter serials and DevEUIs handed out, both unique in the database
    seeded = {plan.code: _seed_estate(session, plan, _clock_for(plan, clock, days), rng, people,
                                      taken, ids) for plan in ESTATES}
    _place_units(session, seeded)
    logins = _create_logins(session, people, seeded)
    _create_registered_people(session, seeded)
    from app.families.demo import seed_family_demo  # issue 17: family wallets
    seed_family_demo(session, seeded)
    _seed_corrections(session, seeded)
    # Readings went in directly (not through ingest), so the roll-ups charts read are built here.
    from app.metering.rollups import rebuild
    rebuild(session)
    _replaced_meter(session, ids)
    _seed_operations(session, clock.now, seeded)
    from app.i18n.demo import seed_languages; logins += seed_languages(session, seeded)  # noqa: E702  (issue 23)
    from app.analytics.utility_demo import seed_utility_figures  # utility layer (issue 19)
    seed_utility_figures(session)
    _seed_finance_payments(session, seeded["MAS"], clock)  # issue 19: the utility login's Finance figures
    from app.billing.ladder import seed_demo_arrears; seed_demo_arrears(session, seeded["SUN"].estate, seeded["SUN"].tenants)  # noqa: E702,E501 (issue 16)
    from app.integration.demo import seed_integration; logins += seed_integration(session, seeded["SUN"].estate)  # noqa: E702 (issue 21)
    session.commit()
    _seed_imports(session, seeded["SUN"])
    __import__("app.billing.levies", fromlist=["seed_demo_levies"]).seed_demo_levies(session, seeded["SUN"].estate)  # issue 18
    _seed_gateway_payments(session, seeded)  # issue 20: before the seed reconciles its last three days
    session.commit()
    from app.billing.settlement_demo import seed as seed_settlement; seed_settlement(session, seeded)  # noqa: E702 (issue 20)
    from app.estates.agent_demo import seed_agent_demo; seed_agent_demo(session, seeded["SUN"].estate, _login_email("agent"))  # noqa: E702,E501 (issue 15)
    # issue 16: the ladder runs once every demo debt is in (levy arrears too), so no debtor shows "no step yet"
    from app.billing.ladder import run_ladder; run_ladder(session, seeded["SUN"].estate)  # noqa: E702
    from app.billing.cohorts import seed_demo_cohort; seed_demo_cohort(session, seeded["SUN"].estate)  # noqa: E702 (issue 16, A5)
    from app.sources.backfill import seed_demo_backfills; seed_demo_backfills(session, seeded["TPM"].estate, clock.now.date())  # noqa: E702,E501 (issue 22)
    from app.reports.subscriptions import seed_demo_subscriptions; seed_demo_subscriptions(session, clock.now)  # noqa: E702 (issue 22)
    # The history went in before its months had partitions: give each month its own (M8).
    from app.metering.archive import ensure_partitions_ahead
    ensure_partitions_ahead(session, clock.now.date())
    session.commit()
    click.echo(f"Demo seeded in {perf_counter() - started:.1f} s")
    return logins


# A few addresses, and the mini-grid's connections on the map (around Thaba-Putsoa, Lesotho).
DEMO_ADDRESSES = {
    "SUN": {"A01": "Block A, 14 Protea Road, Sunbird Estate, Midrand, 1685",
            "A03": "Block A, 14 Protea Road, Sunbird Estate, Midrand, 1685",
            "C01": "Block C, 16 Protea Road, Sunbird Estate, Midrand, 1685"},
    "MAS": {"101": "Flat 101, Maseru Heights, Kingsway, Maseru 100",
            "204": "Flat 204, Maseru Heights, Kingsway, Maseru 100"},
}
MINIGRID_VILLAGES = {"HN": ("Ha Nkoe", Decimal("-29.512400"), Decimal("27.903100")),
                     "HM": ("Ha Mosa", Decimal("-29.498700"), Decimal("27.941800"))}


def _place_units(session: Session, seeded: dict[str, SeededEstate]) -> None:
    """Every demo unit gets its account number from the estate's pattern; a few an address and GPS."""
    from app.estates.account_numbers import assign_account_numbers

    for code, estate_seed in seeded.items():
        for number, address in DEMO_ADDRESSES.get(code, {}).items():
            estate_seed.units[number].address = address
        if code == "TPM":
            for number, unit in estate_seed.units.items():
                village, latitude, longitude = MINIGRID_VILLAGES[number[:2]]
                step = Decimal("0.000650") * int(number[2:])  # houses a short walk apart
                unit.address = f"House {int(number[2:])}, {village}, Thaba-Putsoa"
                unit.latitude, unit.longitude = latitude + step, longitude - step / 2
        units = sorted(estate_seed.units.values(), key=lambda unit: (len(unit.number), unit.number))
        assign_account_numbers(session, estate_seed.estate, units)


def _seed_operations(session: Session, now: datetime, seeded: dict) -> None:
    """A few past job runs (one failed, with its traceback) for Staff → Jobs, and one Modbus
    meter whose poller reported a timeout, for its meter page; the caller commits."""
    from app.models import JobRun
    from app.models.ingest import ModbusDeviceStatus

    runs = [("pocket_flows", "done", 12, 0.4, "folded 84 postings"),
            ("budget_alerts", "done", 35, 1.2, "3 alerts sent"),
            ("meter_watch", "done", 50, 2.1, "no frozen registers"),
            ("tariff_schedule", "failed", 65, 0.3, None)]
    for kind, status, minutes_ago, seconds, result in runs:
        started = now - timedelta(minutes=minutes_ago)
        failed = status == "failed"
        session.add(JobRun(
            kind=kind, status=status, done=1, total=1, created_at=started, started_at=started,
            finished_at=started + timedelta(seconds=seconds),
            errors=["OperationalError: could not connect to server: Connection refused"] if failed else [],
            result=("Traceback (most recent call last):\n  File \"app/jobs.py\", line 150, in run_job\n"
                    "    result = REGISTRY[kind](session, progress, *args)\n"
                    "sqlalchemy.exc.OperationalError: could not connect to server: Connection refused")
            if failed else result))
    meter = session.scalar(select(Meter).where(Meter.estate_id == next(iter(seeded.values())).estate.id,
                                               Meter.role == "bulk", Meter.utility == "electricity")
                           .order_by(Meter.id).limit(1))  # the substation's check meter, also wired to RS485
    if meter is not None:
        session.add(ModbusDeviceStatus(
            meter_serial=meter.serial, address="tcp 192.0.2.10:502 unit 1", state="timeout",
            last_poll_at=now - timedelta(seconds=20), last_ok_at=now - timedelta(minutes=7),
            last_error="no answer within 2.0 s", failing_since=now - timedelta(minutes=6), failures=24))


def _clock_for(plan: EstatePlan, clock: Clock, days: int) -> Clock:
    """The demo's clock; a SparkMeter estate's history ends where yesterday's Koios import begins.

    The import (app/sources/sparkmeter.py) brings one UTC day of hourly rows, registers
    accumulated from the last stored one, so history ending at yesterday 00:00 UTC is
    continued, never contradicted (a seeded later reading would turn them into dead letters).
    """
    if not plan.sparkmeter_serials:
        return clock
    midnight = clock.now.replace(hour=0, minute=0)  # UTC
    return Clock.ending_at(midnight - timedelta(days=1), days)


@dataclass
class SeededEstate:
    estate: Estate
    units: dict[str, Unit]
    tenants: dict[str, Person] = field(default_factory=dict)  # current tenant per unit number


def _seed_estate(session: Session, plan: EstatePlan, clock: Clock, rng: random.Random,
                 people: dict[str, Person], taken: set[str], ids: set[str]) -> SeededEstate:
    """Create one estate with everything in it, and print what it took."""
    started = perf_counter()
    local = LocalDays.build(clock, plan.timezone)
    names = NameBook(rng, plan, taken)
    estate = _create_estate(session, plan)
    for key, value in plan.settings.items():
        put_setting(session, key, value, estate.id)
    seeded = SeededEstate(estate, _create_units(session, estate, plan, rng))
    _create_tariff_classes(session, estate, plan, seeded.units)
    statuses = _create_occupancy(session, plan, seeded, clock, local, names, rng)
    _create_ownerships(session, plan, seeded, names, people["owner"], rng)
    meters = _create_meters(session, estate, plan, seeded.units, rng, ids)
    series = _consumption(plan, seeded.units, meters, statuses, local, rng)
    entries, cut = _money(session, plan, seeded, meters, series, clock, local, rng)
    _add_bulk_series(plan, meters, series, rng)
    readings = _insert_readings(session, meters, series, clock, rng)
    _set_relays(meters, cut)
    transactions = _post_in_order(session, entries)
    record(session, "demo.seeded", estate, estate_id=estate.id, actor=ACTOR, new={
        "units": len(seeded.units), "meters": len(meters), "readings": readings,
        "transactions": transactions, "days": len(clock.slots) // 48})
    session.flush()
    click.echo(f"{plan.code}: {len(seeded.units)} units, {len(meters)} meters, "
               f"{readings:,} readings, {transactions:,} ledger transactions "
               f"in {perf_counter() - started:.1f} s")
    return seeded


def _create_estate(session: Session, plan: EstatePlan) -> Estate:
    """The estate row, with credit control on so cut-off relays make sense."""
    estate = Estate(
        code=plan.code, name=plan.name, country=plan.country, currency=plan.currency,
        currency_minor_units=minor_units(plan.currency), timezone=plan.timezone,
        fiscal_year_start_month=plan.fiscal_year_start_month,
        wallet_denomination=plan.wallet_denomination,
        minimum_activation_amount=plan.minimum_activation_amount,
        features={"credit_control": True, "statements": True, "levies_auto_deduct": False},
        created_at=datetime.combine(plan.handover, time(8), UTC),
    )
    session.add(estate)
    session.flush()
    # Flat tariffs at the demo's prices, so live readings and M-PESA units purchases price.
    for utility, rate in plan.tariffs.items():
        session.add(TariffVersion(estate_id=estate.id, utility=utility, kind="flat",
                                  effective_from=plan.handover, rates={"rate": str(rate)}))
    return estate


def _create_units(session: Session, estate: Estate, plan: EstatePlan,
                  rng: random.Random) -> dict[str, Unit]:
    """Units with floor areas; occupancy status is set from the story afterwards."""
    low, high = plan.area_range
    units = {}
    for unit_plan in plan.units:
        unit = Unit(estate=estate, number=unit_plan.number,
                    floor_area_m2=Decimal(rng.randrange(low, high + 1)),
                    occupancy_status="vacant", created_at=estate.created_at)
        session.add(unit)
        units[unit_plan.number] = unit
    session.flush()
    return units


def _create_tariff_classes(session: Session, estate: Estate, plan: EstatePlan, units: dict[str, Unit]) -> None:
    """The plan's tariff classes, their flat versions from handover, and the units on them."""
    from app.models.tariff import TariffClass

    for class_plan in plan.tariff_classes:
        created = TariffClass(estate_id=estate.id, code=class_plan.code, name=class_plan.name,
                              is_default=class_plan.default, created_at=estate.created_at)
        session.add(created)
        session.flush()
        for number in class_plan.units:
            units[number].tariff_class_id = None if class_plan.default else created.id
        for utility, rate in ({} if class_plan.default else class_plan.tariffs).items():
            session.add(TariffVersion(estate_id=estate.id, utility=utility, kind="flat", tariff_class_id=created.id,
                                      effective_from=plan.handover, rates={"rate": str(rate)}))
    session.flush()


def _create_occupancy(session: Session, plan: EstatePlan, seeded: SeededEstate, clock: Clock,
                      local: LocalDays, names: NameBook,
                      rng: random.Random) -> dict[str, list[str]]:
    """Tenancies and occupancy history per unit; return each unit's status per slot."""
    today = clock.now.astimezone(local.tz).date()
    statuses = {}
    for unit_plan in plan.units:
        unit = seeded.units[unit_plan.number]
        changes, stays = _story(unit_plan, today, rng)
        changes.insert(0, (plan.handover, "vacant"))
        for day, status in changes:
            session.add(OccupancyChange(unit_id=unit.id, status=status,
                                        changed_at=local.moment(day, 10)))
        unit.occupancy_status = changes[-1][1]
        for move_in, move_out in stays:
            current = move_out is None
            tenant = names.person(session, unit_plan.tenant if current else None)
            session.add(Tenancy(unit_id=unit.id, person=tenant, move_in=move_in, move_out=move_out))
            if current:
                seeded.tenants[unit_plan.number] = tenant
        statuses[unit_plan.number] = _status_per_slot(changes, clock, local)
    session.flush()
    return statuses


def _story(unit_plan: UnitPlan, today: date,
           rng: random.Random) -> tuple[list[tuple[date, str]], list[tuple[date, date | None]]]:
    """Status changes and tenancies (move in, move out) that tell the unit's story."""
    def ago(days: int) -> date:
        return today - timedelta(days=days)

    n = unit_plan.days_ago
    if unit_plan.story == "moved_in":
        before = (ago(rng.randint(500, 1100)), ago(n + rng.randint(25, 70)))
        stays = [before, (ago(n), None)]
        return [(before[0], "occupied"), (before[1], "vacant"), (ago(n), "occupied")], stays
    if unit_plan.story == "moved_out":
        stay = (ago(rng.randint(300, 1000)), ago(n))
        return [(stay[0], "occupied"), (stay[1], "vacant")], [stay]
    if unit_plan.story == "vacant":
        stay = (ago(rng.randint(700, 1200)), ago(rng.randint(160, 260)))
        return [(stay[0], "occupied"), (stay[1], "vacant")], [stay]
    if unit_plan.story == "maintenance":
        stay = (ago(rng.randint(400, 900)), ago(n + rng.randint(30, 50)))
        changes = [(stay[0], "occupied"), (stay[1], "vacant"), (ago(n), "maintenance")]
        return changes, [stay]
    move_in = ago(rng.randint(150, 1400))
    return [(move_in, "occupied")], [(move_in, None)]


def _status_per_slot(changes: list[tuple[date, str]], clock: Clock, local: LocalDays) -> list[str]:
    """The occupancy status in force at the start of each slot's half hour."""
    moments = [local.moment(day, 10) for day, _ in changes]
    return [changes[max(0, bisect_right(moments, taken_at - SLOT) - 1)][1]
            for taken_at in clock.slots]


def _create_ownerships(session: Session, plan: EstatePlan, seeded: SeededEstate, names: NameBook,
                       owner_login: Person, rng: random.Random) -> None:
    """Every unit has an owner: the owner login for some, a small pool of investors for the rest."""
    pool = [] if plan.owner_occupied else [names.person(session) for _ in range(len(plan.units) // 3)]
    co_owned = rng.choice([u.number for u in plan.units if u.number not in OWNER_UNITS[plan.code]])
    for unit_plan in plan.units:
        unit = seeded.units[unit_plan.number]
        since = plan.handover + timedelta(days=rng.choice((0, 0, rng.randint(200, 1500))))
        if plan.owner_occupied and unit_plan.number in seeded.tenants:
            owners = [seeded.tenants[unit_plan.number]]
        elif unit_plan.number in OWNER_UNITS[plan.code]:
            owners = [owner_login]
        elif unit_plan.number == co_owned:
            owners = rng.sample(pool, 2)
        else:
            owners = [rng.choice(pool)]
        share = quantize(Decimal(100) / len(owners), "ZAR")
        for owner in owners:
            session.add(UnitOwnership(unit_id=unit.id, person=owner, share_percent=share,
                                      since=since))
    session.flush()


# --- meters and readings ---------------------------------------------------------------

METER_PROTOCOLS = {  # (estate, utility) -> protocol; LoRaWAN where there is no cellular module
    ("SUN", "electricity"): "mqtt_direct", ("SUN", "water"): "chirpstack",
    ("SUN", "hot_water"): "chirpstack", ("SUN", "solar"): "mqtt_direct",
    ("MAS", "electricity"): "chirpstack", ("MAS", "water"): "chirpstack",
    ("MAS", "solar"): "mqtt_direct", ("TPM", "electricity"): "sparkmeter",
}
START_REGISTER = {  # plausible register at the first reading, in whole kWh or kL
    "electricity": (800, 42_000), "water": (40, 1_900), "hot_water": (10, 420),
    "solar": (150, 9_000),
}


@dataclass
class DemoMeter:
    meter: Meter
    unit_number: str | None  # None for bulk meters

    @property
    def utility(self) -> str:
        return self.meter.utility


def _create_meters(session: Session, estate: Estate, plan: EstatePlan, units: dict[str, Unit],
                   rng: random.Random, ids: set[str]) -> list[DemoMeter]:
    """A meter per unit utility, then a bulk meter per supplied utility (solar is made on site)."""
    made = []
    for unit_plan in plan.units:
        for utility in unit_plan.utilities:
            meter = _meter(estate, units[unit_plan.number], utility, plan, rng, ids)
            made.append(DemoMeter(meter, unit_plan.number))
    supplied = sorted({m.utility for m in made if m.utility != "solar"}) if plan.bulk_meters else []
    for utility in supplied:
        made.append(DemoMeter(_meter(estate, None, utility, plan, rng, ids), None))
    session.add_all(m.meter for m in made)
    session.flush()
    return made


def _meter(estate: Estate, unit: Unit | None, utility: str, plan: EstatePlan,
           rng: random.Random, ids: set[str]) -> Meter:
    """One meter with a fresh serial; LoRaWAN meters get a DevEUI."""
    protocol = METER_PROTOCOLS[(plan.code, utility)]
    if unit is None and utility == "electricity":
        protocol = "mqtt_direct"  # the bulk check meter sits in the substation with a modem
    dev_eui = None
    interval = 30
    if protocol == "sparkmeter":  # the serial Koios reports; Koios rows are hourly
        raw, interval = plan.sparkmeter_serials[unit.number], 60
        ids.add(raw)
    elif protocol == "chirpstack":
        # LoRaWAN water meters report zero-padded ids ('000041273605'); we keep the canonical form.
        raw = _fresh(ids, lambda: f"{rng.randrange(41_000_000, 49_999_999):012d}")
        dev_eui = _fresh(ids, lambda: f"a81758ff{rng.getrandbits(32):08x}")
    else:
        raw = _fresh(ids, lambda: str(rng.randrange(141_000_000_000, 149_999_999_999)))
    role = "bulk" if unit is None else ("solar" if utility == "solar" else "unit")
    return Meter(
        estate_id=estate.id, unit_id=unit.id if unit else None, serial=canonical_serial(raw),
        utility=utility, role=role, protocol=protocol, dev_eui=dev_eui, interval_minutes=interval,
        created_at=datetime.combine(plan.handover, time(8), UTC),
    )


def _fresh(used: set[str], make: Callable[[], str]) -> str:
    """Draw identifiers until one is new."""
    while (value := make()) in used:
        pass
    used.add(value)
    return value


def _bump(hour: float, centre: float, width: float) -> float:
    """A smooth peak in a daily profile."""
    return math.exp(-0.5 * ((hour - centre) / width) ** 2)


def _occupied_shape(utility: str, shift: float, weekend: bool) -> list[float]:
    """Expected Wh or litres per half hour of an occupied home, by local half-hour slot."""
    late = 1.0 if weekend else 0.0  # people sleep in at weekends
    shape = []
    for slot in range(48):
        h = slot / 2 + 0.25
        daytime = 8 <= h < 17
        if utility == "electricity":  # kW: standby, breakfast, cooking and geysers at night
            rate = (0.16 + 1.1 * _bump(h, 6.6 + shift + late, 0.8)
                    + 1.4 * _bump(h, 19.0 + shift, 1.5) + (0.6 if weekend else 0.25) * daytime)
            shape.append(rate * 500)  # kW for half an hour, in Wh
        elif utility == "water":  # litres per hour: showers, laundry, cooking; cisterns at night
            rate = (2.0 + 55 * _bump(h, 6.8 + shift + late, 0.9) + 35 * _bump(h, 19.5 + shift, 1.6)
                    + (10 if weekend else 5) * daytime)
            shape.append(rate / 2)
        elif utility == "hot_water":
            rate = 0.3 + 22 * _bump(h, 6.7 + shift + late, 0.7) + 14 * _bump(h, 20.0 + shift, 1.2)
            shape.append(rate / 2)
        else:  # solar delivered to the unit: daylight only
            sun = math.sin(math.pi * (h - 6) / 12) if 6 < h < 18 else 0.0
            shape.append(1300 * sun ** 1.5 / 2)
    return shape


@dataclass
class Household:
    """What makes one unit's profile its own."""

    scale: float
    shift: float
    daily: list[float]  # per local day: out for the weekend, visitors, cold snaps


def _consumption(plan: EstatePlan, units: dict[str, Unit], meters: list[DemoMeter],
                 statuses: dict[str, list[str]], local: LocalDays,
                 rng: random.Random) -> dict[int, list[int]]:
    """Milli-units (Wh or litres) per slot for every unit meter, keyed by meter id."""
    cloud = [rng.uniform(0.85, 1.0) if rng.random() < 0.7 else rng.uniform(0.2, 0.6)
             for _ in local.days]  # spring thunderstorms on the Highveld
    households = {
        number: Household(float(unit.floor_area_m2) / plan.size_divisor * rng.uniform(0.75, 1.25),
                          rng.uniform(-0.75, 0.75), [rng.uniform(0.8, 1.2) for _ in local.days])
        for number, unit in units.items()
    }
    series = {}
    for demo in meters:
        if demo.unit_number is None:
            continue
        house = households[demo.unit_number]
        shapes = (_occupied_shape(demo.utility, house.shift, False),
                  _occupied_shape(demo.utility, house.shift, True))
        series[demo.meter.id] = _meter_series(demo.utility, house, shapes,
                                              statuses[demo.unit_number], cloud, local, rng)
    return series


def _meter_series(utility: str, house: Household, shapes: tuple[list[float], list[float]],
                  statuses: list[str], cloud: list[float], local: LocalDays,
                  rng: random.Random) -> list[int]:
    """One unit meter's consumption per slot, following the unit's occupancy."""
    values = []
    rand = rng.random
    spiky = utility in ("water", "hot_water")
    for index, status in enumerate(statuses):
        slot, day = local.slot_of_day[index], local.day_of_slot[index]
        if status == "occupied":
            expected = shapes[local.weekend[index]][slot] * house.scale * house.daily[day]
            if utility == "solar":
                expected *= cloud[day]
            # Water flows in bursts (mean factor 1, often zero); power hums along.
            noise = max(0.0, rand() - 0.3) / 0.245 if spiky else 0.7 + 0.6 * rand()
            values.append(round(expected * noise))
        else:
            values.append(_empty_unit(utility, status, slot, local.weekend[index], rand))
    return values


def _empty_unit(utility: str, status: str, slot: int, weekend: bool,
                rand: Callable[[], float]) -> int:
    """Near zero for a vacant unit; contractors by day in a unit under maintenance."""
    working = status == "maintenance" and not weekend and 16 <= slot < 32
    if utility == "electricity":
        return round((350 if working else 35) * (0.8 + 0.4 * rand()))
    if utility == "water":
        if working:
            return round(12 * rand())
        return round(2 + 6 * rand()) if rand() < 0.01 else 0  # a cistern that runs now and then
    return 0


def _add_bulk_series(plan: EstatePlan, meters: list[DemoMeter], series: dict[int, list[int]],
                     rng: random.Random) -> None:
    """Bulk meters read the sum of their unit meters plus 5-12 % losses (leaks, cable, theft)."""
    for demo in meters:
        if demo.unit_number is not None:
            continue
        members = [series[m.meter.id] for m in meters
                   if m.meter.role == "unit" and m.utility == demo.utility]
        loss = rng.uniform(0.065, 0.105)
        series[demo.meter.id] = [round(sum(column) * (1 + loss + rng.uniform(-0.015, 0.015)))
                                 for column in zip(*members, strict=True)]


def _milli(value: int) -> Decimal:
    """Integer Wh or litres as kWh or kL with three decimals, exactly."""
    return Decimal(value).scaleb(-3)


def _insert_readings(session: Session, meters: list[DemoMeter], series: dict[int, list[int]],
                     clock: Clock, rng: random.Random) -> int:
    """Insert every meter's readings in chunks; set each meter's last reading. Return the count."""
    table = Reading.__table__
    chunk: list[dict] = []
    count = 0
    for demo in meters:
        low, high = START_REGISTER[demo.utility]
        if demo.meter.protocol == "sparkmeter":
            low, high = 300, 2_500  # a village connection of a few years, a few kWh a day
        if demo.unit_number is None:
            low, high = low * 40, high * 40  # bulk meters have run for years at estate scale
        start = rng.randrange(low, high) * 1000
        hourly = demo.meter.interval_minutes == 60
        for row in _reading_rows(demo.meter.id, start, series[demo.meter.id], clock, hourly):
            chunk.append(row)
            if len(chunk) >= READING_CHUNK:
                session.execute(insert(table), chunk)
                count += len(chunk)
                chunk = []
        demo.meter.last_reading_at = clock.slots[-1]
        demo.meter.last_register = _milli(start + sum(series[demo.meter.id]))
    if chunk:
        session.execute(insert(table), chunk)
        count += len(chunk)
    return count


def _reading_rows(meter_id: int, register: int, values: list[int], clock: Clock,
                  hourly: bool = False) -> Iterator[dict]:
    """Rows for Core executemany: a rising register and the consumption since the last one."""
    since = 0  # consumed since the last row written (an hourly meter skips the :30 slots)
    for taken_at, received_at, value in zip(clock.slots, clock.received, values, strict=True):
        register += value
        since += value
        if hourly and taken_at.minute:
            continue
        yield {"meter_id": meter_id, "taken_at": taken_at, "register": _milli(register),
               "consumption": _milli(since), "received_at": received_at}
        since = 0


def _set_relays(meters: list[DemoMeter], cut: set[int]) -> None:
    """Unit meters are on unless credit control cut them; bulk meters have no relay."""
    for demo in meters:
        if demo.unit_number is not None:
            demo.meter.relay_state = "off" if demo.meter.id in cut else "on"


# --- money -----------------------------------------------------------------------------


@dataclass
class Books:
    """An estate's system accounts, opened through the ledger's own helpers."""

    clearing: dict[str, Account]
    revenue: dict[str, Account]
    units_issued: dict[str, Account]

    @classmethod
    def open(cls, session: Session, estate: Estate, plan: EstatePlan) -> Books:
        """Clearing per payment channel; revenue (and units issued, in units mode) per utility."""
        clearing = {channel: system_account(session, estate, "clearing", channel,
                                            name=f"{CHANNEL_LABELS[channel]} clearing")
                    for channel in plan.channels}
        revenue = {utility: system_account(session, estate, "revenue", utility, utility=utility,
                                           name=f"{_label(utility).capitalize()} revenue")
                   for utility in plan.tariffs}
        issued = {}
        if plan.wallet_denomination == "units":
            issued = {utility: system_account(
                session, estate, "units_issued", utility, utility=utility,
                commodity=UTILITY_UNITS[utility],
                name=f"{_label(utility).capitalize()} units issued") for utility in plan.tariffs}
        return cls(clearing, revenue, issued)


def _label(utility: str) -> str:
    return utility.replace("_", " ")


@dataclass
class WalletReplay:
    """One unit's pockets while its days are replayed: balances and the bills ahead."""

    plan: EstatePlan
    unit: Unit
    unit_plan: UnitPlan
    pockets: dict[str, Account]
    meters: dict[str, Meter]  # unit meter per utility
    daily: dict[str, list[int]]  # milli-units per local day, as first generated
    balance: dict[str, Decimal] = field(default_factory=dict)
    topups: int = 0
    ahead: tuple[int, int] = (2, 4)  # tops up when fewer days than this are covered
    horizon: tuple[int, int] = (9, 16)  # and buys this many days' worth
    _recent: dict[str, Decimal] = field(default_factory=dict, repr=False)

    @property
    def units_mode(self) -> bool:
        return self.plan.wallet_denomination == "units"

    @property
    def prices(self) -> dict[str, Decimal]:
        """The unit's flat prices (its tariff class's)."""
        return self.plan.prices_of(self.unit.number)

    def charge(self, utility: str, milli: int) -> Decimal:
        """What a day's quantity takes from the pocket, in the pocket's commodity."""
        quantity = _milli(milli)
        if self.units_mode:
            return quantity
        return quantize(quantity * self.prices[utility], self.plan.currency)

    def value(self, utility: str, amount: Decimal) -> Decimal:
        """A pocket amount in currency, for planning a top-up."""
        return amount * self.prices[utility] if self.units_mode else amount

    def need(self, utility: str, day: int, days: int) -> Decimal:
        """Currency needed to cover the bills of `days` days from `day` on."""
        upcoming = self.daily[utility][day:day + days]
        known = sum((self.value(utility, self.charge(utility, m)) for m in upcoming), Decimal(0))
        # Past the end of the demo the household expects its recent average, so wallets
        # look as well funded today as on any other day.
        return known + (days - len(upcoming)) * self.recent(utility)

    def recent(self, utility: str) -> Decimal:
        """Average daily bill, in currency, over the last two weeks of the demo."""
        if utility not in self._recent:
            last = self.daily[utility][-14:]
            total = sum((self.value(utility, self.charge(utility, m)) for m in last), Decimal(0))
            self._recent[utility] = total / len(last)
        return self._recent[utility]


def _money(session: Session, plan: EstatePlan, seeded: SeededEstate, meters: list[DemoMeter],
           series: dict[int, list[int]], clock: Clock, local: LocalDays,
           rng: random.Random) -> tuple[list[Entry], set[int]]:
    """Open wallets and replay every unit's days; return ledger entries and cut meter ids."""
    books = Books.open(session, seeded.estate, plan)
    entries: list[Entry] = []
    cut: set[int] = set()
    by_unit: dict[str, dict[str, Meter]] = {}
    for demo in meters:
        if demo.unit_number is not None:
            by_unit.setdefault(demo.unit_number, {})[demo.utility] = demo.meter
    for unit_plan in plan.units:
        unit = seeded.units[unit_plan.number]
        unit_meters = by_unit[unit_plan.number]
        wallet_row = open_wallet(session, unit, tuple(unit_meters))
        daily = {utility: [sum(series[m.id][start:end]) for _, start, end in local.days]
                 for utility, m in unit_meters.items()}
        wallet = WalletReplay(plan, unit, unit_plan, {p.utility: p for p in wallet_row.pockets},
                              unit_meters, daily, {utility: Decimal(0) for utility in unit_meters})
        if unit_plan.careful:
            wallet.ahead, wallet.horizon = (5, 8), (18, 28)
        elif rng.random() < 0.3:  # some households buy a fortnight or more at a time
            wallet.ahead, wallet.horizon = (3, 6), (14, 21)
        entries += _replay(wallet, books, series, clock, local, rng, cut)
    return entries, cut


def _replay(wallet: WalletReplay, books: Books, series: dict[int, list[int]], clock: Clock,
            local: LocalDays, rng: random.Random, cut: set[int]) -> list[Entry]:
    """Day by day: top up when the next days' bills would not be covered, then bill the day."""
    entries = []
    # Defaulters last paid four to five weeks ago; with a short window they never paid.
    stop = len(local.days) - rng.randint(26, 34) if wallet.unit_plan.arrears else len(local.days)
    channel = wallet.plan.channels[0] if rng.random() < 0.7 else wallet.plan.channels[-1]
    for day_index, (day, start, end) in enumerate(local.days):
        if day_index < stop and _short(wallet, day_index, rng.randint(*wallet.ahead)):
            usual = channel if rng.random() < 0.85 else rng.choice(wallet.plan.channels)
            entries.append(_topup(wallet, books, day_index, day, usual, clock, local, rng))
        billed_at = min(local.moment(day, 24) - timedelta(seconds=1), clock.now)
        for utility, meter in wallet.meters.items():
            milli = sum(series[meter.id][start:end])
            if milli and wallet.charge(utility, milli):
                entries.append(
                    _consumption_entry(wallet, books, utility, meter, day, milli, billed_at))
        electricity = wallet.meters.get("electricity")
        if (wallet.unit_plan.arrears and electricity is not None and electricity.id not in cut
                and wallet.balance["electricity"] <= 0):
            # Credit control opens the relay: no more electricity flows after today.
            cut.add(electricity.id)
            values = series[electricity.id]
            values[end:] = [0] * (len(values) - end)
    return entries


def _short(wallet: WalletReplay, day: int, days: int) -> bool:
    """Whether any pocket would not cover the next `days` days of bills."""
    return any(wallet.value(u, wallet.balance[u]) < wallet.need(u, day, days)
               for u in wallet.pockets)


def _topup(wallet: WalletReplay, books: Books, day_index: int, day: date, channel: str,
           clock: Clock, local: LocalDays, rng: random.Random) -> Entry:
    """A payment sized to cover one to two weeks ahead, split over the pockets by need."""
    plan = wallet.plan
    horizon = rng.randint(*wallet.horizon)
    margin = Decimal("1.02")  # room for rounding kWh and kL purchases down
    shares = {}
    for utility in wallet.pockets:
        have = wallet.value(utility, wallet.balance[utility])
        short = wallet.need(utility, day_index, horizon) * margin - have
        if short > 0:
            # At least one rand or loti: a leaking cistern's cents would buy zero kL.
            shares[utility] = max(Decimal(1), quantize(short, plan.currency))
    wanted = sum(shares.values(), Decimal(0))
    steps = (wanted / plan.topup_step).to_integral_value(rounding=ROUND_CEILING)
    total = max(plan.topup_step * 2, steps * plan.topup_step)
    shares = _split(total, shares or {next(iter(wallet.pockets)): Decimal(1)}, plan.currency)
    wallet.topups += 1
    paid_at = local.moment(day, rng.uniform(6.5, 21.0))
    paid_at = max(clock.slots[0] - SLOT, min(paid_at, clock.now - timedelta(minutes=2)))
    legs: list[tuple[int, Decimal]] = [(books.clearing[channel].id, -total)]
    parts = []
    for utility, amount in shares.items():
        pocket_legs, bought = _topup_legs(wallet, books, utility, amount)
        legs += pocket_legs
        parts.append(f"{_label(utility)} {bought}")
    return Entry(
        estate_id=wallet.unit.estate_id, kind="topup",
        idempotency_key=f"demo:topup:{plan.code}-{wallet.unit.number}:{wallet.topups}",
        legs=legs, occurred_at=paid_at,
        memo=f"{CHANNEL_LABELS[channel]} top-up {format_amount(total, plan.currency)}: "
             + ", ".join(parts),
    )


def _split(total: Decimal, wanted: dict[str, Decimal], currency: str) -> dict[str, Decimal]:
    """Share a rounded-up payment over the pockets in proportion to what each needed."""
    need = sum(wanted.values(), Decimal(0))
    shares, left = {}, total
    for index, (utility, amount) in enumerate(wanted.items()):
        last = index == len(wanted) - 1
        shares[utility] = left if last else quantize(total * amount / need, currency)
        left -= shares[utility]
    return shares


def _topup_legs(wallet: WalletReplay, books: Books, utility: str,
                amount: Decimal) -> tuple[list[tuple[int, Decimal]], str]:
    """Legs crediting one pocket, and what was bought ('R 420.00' or '47.619 kWh at M 2.10/kWh').

    Currency mode credits money. Units mode sells kWh or kL at today's tariff: the money is
    revenue now, and the units leave the estate's units-issued account for the pocket.
    """
    pocket, price = wallet.pockets[utility], wallet.prices[utility]
    if not wallet.units_mode:
        wallet.balance[utility] += amount
        return [(pocket.id, amount)], format_amount(amount, wallet.plan.currency)
    quantity = quantize(amount / price, pocket.commodity)
    wallet.balance[utility] += quantity
    legs = [(books.revenue[utility].id, amount), (books.units_issued[utility].id, -quantity),
            (pocket.id, quantity)]
    rate = f"{format_amount(price, wallet.plan.currency)}/{UNIT_LABELS[pocket.commodity]}"
    return legs, f"{format_amount(quantity, pocket.commodity)} at {rate}"


def _consumption_entry(wallet: WalletReplay, books: Books, utility: str, meter: Meter, day: date,
                       milli: int, billed_at: datetime) -> Entry:
    """A day's consumption on one meter taken from its pocket."""
    plan = wallet.plan
    charge = wallet.charge(utility, milli)
    wallet.balance[utility] -= charge
    unit = UTILITY_UNITS[utility]
    quantity = format_amount(_milli(milli), unit)
    counterpart = books.units_issued[utility] if wallet.units_mode else books.revenue[utility]
    price = format_amount(wallet.prices[utility], plan.currency)
    memo = f"{_label(utility).capitalize()} {quantity} on {day:%d %b %Y}"
    if not wallet.units_mode:
        memo += f" at {price}/{UNIT_LABELS[unit]}"
    return Entry(
        estate_id=wallet.unit.estate_id, kind="consumption",
        idempotency_key=f"demo:consumption:{meter.serial}:{day.isoformat()}",
        legs=[(wallet.pockets[utility].id, -charge), (counterpart.id, charge)],
        occurred_at=billed_at, memo=memo,
    )


def _post_in_order(session: Session, entries: Sequence[Entry]) -> int:
    """Post an estate's entries in time order (its hash chain reads as history), in batches."""
    ordered = sorted(entries, key=lambda e: (e.occurred_at, e.idempotency_key))
    for start in range(0, len(ordered), LEDGER_BATCH):
        post_many(session, ordered[start:start + LEDGER_BATCH])
    return len(ordered)


# --- logins ----------------------------------------------------------------------------


def _login_people(session: Session) -> dict[str, Person]:
    """People behind the logins, except tenants, who arrive with their tenancies."""
    people = {}
    for role, (name, phone) in LOGIN_PEOPLE.items():
        if role in TENANT_LOGINS:
            continue
        people[role] = Person(full_name=name, email=_login_email(role), phone=phone)
        session.add(people[role])
    session.flush()
    return people


def _login_email(role: str) -> str:
    return f"{role.replace('_', '-')}@{LOGIN_DOMAIN}"


def _login_password(role: str) -> str:
    return f"{role.replace('_', '-')}-demo-2026"


def demo_logins() -> list[tuple[str, str, str]]:
    """The (role, email, password) of every demo login, as `seed()` creates them."""
    from app.i18n.demo import language_logins  # languages (issue 23)
    from app.integration.demo import demo_key_line  # the integration API's demo key (issue 21)
    return [(role, _login_email(role), _login_password(role)) for role in LOGIN_PEOPLE] + language_logins() + [
        demo_key_line()]


def _create_logins(session: Session, people: dict[str, Person],
                   seeded: dict[str, SeededEstate]) -> list[tuple[str, str, str]]:
    """One user per layer with role grants scoped as the layer expects."""
    sun, mas = seeded["SUN"], seeded["MAS"]
    people = dict(people)
    unit_grants = {"owner": _units(seeded, OWNER_UNITS), "family": _units(seeded, FAMILY_UNITS)}
    for role, (code, number) in TENANT_LOGINS.items():
        people[role] = seeded[code].tenants[number]
        people[role].email = _login_email(role)
        unit_grants[role] = [seeded[code].units[number]]
    estate_grants = {"body_corporate": [sun.estate], "agent": [sun.estate, mas.estate],
                     "utility": [mas.estate]}
    logins = []
    for role in LOGIN_PEOPLE:
        password = _login_password(role)
        user = User(email=_login_email(role), person=people[role])
        user.set_password(password)
        session.add(user)
        if role == "staff":
            session.add(RoleGrant(user=user, role="staff"))
        for unit in unit_grants.get(role, []):
            session.add(RoleGrant(user=user, role="tenant" if role in TENANT_LOGINS else role,
                                  unit_id=unit.id))
        for estate in estate_grants.get(role, []):
            session.add(RoleGrant(user=user, role=role, estate_id=estate.id))
        logins.append((role, user.email, password))
    session.flush()
    return logins


# People registered by an estate's administration (admin People page): no role yet, and one
# invited login that has not chosen a password.
REGISTERED_PEOPLE = (
    ("SUN", "Thandeka Mokoena", None, "+27821234501"),
    ("SUN", "Pieter van Wyk", "pieter.vanwyk@example.test", None),
    ("SUN", "Naledi Khumalo", "naledi.khumalo@example.test", "+27831234502"),
    ("MAS", "Lerato Mohapi", None, "+26658001234"),
)
INVITED_PERSON = ("SUN", "Ayanda Dlamini", "ayanda.dlamini@example.test", "+27841234503")


def _create_registered_people(session: Session, seeded: dict[str, SeededEstate]) -> None:
    for code, name, email, phone in REGISTERED_PEOPLE:
        session.add(Person(full_name=name, email=email, phone=phone, estate_id=seeded[code].estate.id))
    code, name, email, phone = INVITED_PERSON
    estate = seeded[code].estate
    person = Person(full_name=name, email=email, phone=phone, estate_id=estate.id)
    user = User(email=email, person=person, password_hash=None)
    unit = next(iter(seeded[code].units.values()))
    session.add_all([person, user, RoleGrant(user=user, role="family", unit_id=unit.id)])
    session.flush()
    record(session, "user.invited", user, estate_id=estate.id, actor=ACTOR, new={"email": email})
    # The demo tenant's budget alerts, so My account shows how they reach them.
    from app.models import BudgetAlertSetting

    code, number = TENANT_LOGINS["tenant"]
    tenant = session.scalar(select(User).where(User.email == _login_email("tenant")))
    session.add(BudgetAlertSetting(user_id=tenant.id, unit_id=seeded[code].units[number].id,
                                   thresholds={"electricity": "50.00"}, frequency="daily",
                                   channels=["in_app", "email"]))
def _seed_corrections(session: Session, seeded: dict[str, SeededEstate]) -> None:
    """Staff corrections (issue 14 item 7): a reversed deposit with its reason, a reassignment
    waiting for the demo staff login's approval (asked by a second staff member), case notes."""
    from app.models import CaseNote, Payment
    from app.payments.corrections import record_correction
    from app.payments.credit import credit_payment

    sun = seeded["SUN"]
    staff = session.scalar(select(User).where(User.email == _login_email("staff")))
    second = User(email="operations@demo.meterwise.local",
                  person=Person(full_name="Naledi Operations", email="operations@demo.meterwise.local"))
    session.add_all([second, RoleGrant(user=second, role="staff")])
    session.flush()
    now = datetime.now(UTC)

    def deposit(ref: str, unit: Unit, amount: str, days_ago: int) -> Payment:
        payment = Payment(provider="eft", provider_ref=ref, reference=f"SUN-{unit.number}", unit_id=unit.id,
                          estate_id=unit.estate_id, utility="electricity", amount=Decimal(amount),
                          currency="ZAR", status="to_confirm", payer_name="Demo deposit",
                          paid_at=now - timedelta(days=days_ago))
        session.add(payment)
        session.flush()
        credit_payment(session, payment, user_id=staff.id)
        return payment

    twice = deposit("FNB-DEMO-0412", sun.units["A04"], "150.00", 3)
    record_correction(session, twice.transaction_id, user_id=staff.id,
                      reason="The bank statement and the deposit slip both recorded this deposit: posted twice.")
    wrong = deposit("FNB-DEMO-0477", sun.units["B01"], "2500.00", 2)
    record_correction(session, wrong.transaction_id, user_id=second.id, target_unit_id=sun.units["B03"].id,
                      target_utility="electricity",
                      reason="The tenant of B03 quoted B01 as the reference; the lease and the payer's name say B03.")
    agent = session.scalar(select(User).where(User.email == _login_email("agent")))
    tenant = session.scalar(select(User).where(User.email == _login_email("tenant")))
    session.add_all([
        CaseNote(estate_id=sun.estate.id, unit_id=sun.units["A03"].id, author_user_id=agent.id,
                 created_at=now - timedelta(days=5),
                 body="Geyser element replaced by the landlord's plumber; hot water use should drop from next week."),
        CaseNote(estate_id=sun.estate.id, unit_id=sun.units["A03"].id, author_user_id=staff.id,
                 created_at=now - timedelta(days=1),
                 body="Tenant phoned about the water charge: explained the inclining blocks; no dispute raised."),
        CaseNote(estate_id=sun.estate.id, person_id=tenant.person_id, author_user_id=agent.id,
                 created_at=now - timedelta(days=2),
                 body="Prefers SMS to email for notices. Works night shifts: call after 14:00."),
    ])
    session.flush()


def _seed_finance_payments(session: Session, mas: SeededEstate, clock: Clock) -> None:
    """Bank deposits for Maseru Heights' tenants (issue 19), credited like any EFT, so the utility
    login's Finance page has payments to count: most tenants pay about once a month, some skip a
    month, and one newcomer pays first only in the last month (the cumulative accounts grow)."""
    from app.models import Payment
    from app.payments.credit import credit_payment

    rng = random.Random(SEED + 19)
    numbers = sorted(mas.tenants)
    now = clock.now
    for index, number in enumerate(numbers):
        unit = mas.units[number]
        for months_ago in (3, 2, 1, 0):
            if (index == len(numbers) - 1 and months_ago) or rng.random() < 0.2:
                continue  # the newcomer, and a month skipped
            paid_at = now - timedelta(days=30 * months_ago + rng.randint(1, 20), hours=rng.randint(0, 9))
            if paid_at < clock.slots[0]:
                continue
            ref = f"NED-DEMO-MAS-{number}-{months_ago}"
            payment = Payment(provider="eft", provider_ref=ref, reference=f"MAS-{number}", unit_id=unit.id,
                              estate_id=unit.estate_id, utility="electricity",
                              amount=Decimal(rng.choice(("100", "150", "200", "250", "300", "400"))),
                              currency="LSL", status="to_confirm", payer_name=mas.tenants[number].full_name,
                              paid_at=paid_at, credited_at=paid_at)  # banked the day it was paid
            session.add(payment)
            session.flush()
            credit_payment(session, payment)
    session.flush()


def _units(seeded: dict[str, SeededEstate], numbers: dict[str, tuple[str, ...]]) -> list[Unit]:
    """Units named by estate code and number."""
    return [seeded[code].units[number] for code, wanted in numbers.items() for number in wanted]


REPLACED_METER = ("SUN", "A04", "electricity", 5)  # estate, unit, utility, days ago


def _replaced_meter(session: Session, ids: set[str]) -> None:
    """SUN A04's electricity meter was replaced a few days ago (the meters admin shows a swap).

    The readings after the swap are moved to the new meter, counted from its opening
    register of 0, as if it had been fitted then (the demo's readings never went through
    ingest; its daily bills stay keyed by the old serial). The old meter keeps its history
    and is detached, as `app.estates.meters.replace_meter` leaves it.
    """
    from sqlalchemy import update

    from app.metering import rollups

    code, number, utility, days_ago = REPLACED_METER
    old = session.scalar(select(Meter).join(Unit, Unit.id == Meter.unit_id).join(Estate, Estate.id == Unit.estate_id)
                         .where(Estate.code == code, Unit.number == number, Meter.utility == utility))
    if old is None or old.last_reading_at is None:
        return
    swap = session.scalar(select(Reading).where(
        Reading.meter_id == old.id, Reading.taken_at <= old.last_reading_at - timedelta(days=days_ago))
        .order_by(Reading.taken_at.desc()).limit(1))
    if swap is None:
        return
    new = Meter(estate_id=old.estate_id, unit_id=old.unit_id, utility=old.utility, role=old.role,
                protocol=old.protocol, interval_minutes=old.interval_minutes, created_at=swap.taken_at,
                serial=canonical_serial(_fresh(ids, lambda c=iter(range(150_000_000_000, 10**12)): str(next(c)))))
    session.add(new)
    session.flush()
    opening = Decimal(0)
    session.execute(update(Reading).where(Reading.meter_id == old.id, Reading.taken_at > swap.taken_at)
                    .values(meter_id=new.id, register=Reading.register - swap.register + opening))
    session.add(Reading(meter_id=new.id, taken_at=swap.taken_at, register=opening, consumption=None))
    latest = session.scalars(select(Reading).where(Reading.meter_id == new.id)
                             .order_by(Reading.taken_at.desc()).limit(1)).first()
    new.last_reading_at, new.last_register, new.relay_state = latest.taken_at, latest.register, old.relay_state
    old.last_reading_at, old.last_register = swap.taken_at, swap.register
    old.detached_at, old.replaced_by_meter_id = swap.taken_at, new.id
    session.flush()
    rollups.rebuild(session, [old.id, new.id])
    record(session, "meter.replace", old, estate_id=old.estate_id, actor=ACTOR,
           old={"detached_at": None, "replaced_by_meter_id": None},
           new={"detached_at": swap.taken_at, "replaced_by": new.serial, "closing_register": swap.register,
                "opening_register": opening})
def _seed_imports(session: Session, sun: SeededEstate) -> None:
    """Administration → Imports: one committed people import and one staged meters preview with rejects."""
    from app.estates.imports import import_file
    from app.models import User

    agent = session.scalar(select(User.id).where(User.email == _login_email("agent")))
    estate = sun.estate
    units = sorted(sun.units)
    people = ("email,full_name,phone\n"
              "zoe.dupont@example.com,Zoë Dupont,082 555 0199\n"
              "ngugi@example.com,Ngũgĩ wa Thiong'o,+254 712 555 010\n"
              ",日本 花子,083 555 0123\n").encode("utf-8")
    import_file(session, estate, "persons", "new-residents.csv", people, dry_run=False, user_id=agent)
    meters = ("unit;serial;utility;role;protocol;dev_eui;interval_minutes;register_digits;bidirectional\n"
              f"{units[0]};00770001;water;unit;mqtt_direct;;30;6;no\n"
              f"{units[1]};770002;electricity;;;;30;;\n"
              f"{units[1]};0770002;electricity;;;;30;;\n"
              "Z99;770003;electricity;;;;;;\n"
              f"{units[2]};770004;gas;;;;;;\n"
              f"=HYPERLINK(\"http://example.com\");770005;water;;;;;;\n").encode("cp1252")
    import_file(session, estate, "meters", "meter-register.csv", meters, dry_run=True, user_id=agent)


# Issue 20: payments with their gateway records in the reconciled days (days before today).
DEMO_GATEWAY_PAYMENTS = {
    "SUN": (("A01", "payfast", "250.00", 2), ("A02", "eft", "400.00", 2), ("B02", "payfast", "150.00", 1),
            ("C02", "eft", "300.00", 1), ("A05", "payfast", "200.00", 0)),
    "TPM": (("HN01", "mpesa", "40.00", 2), ("HN03", "mpesa", "60.00", 1), ("HM02", "mpesa", "30.00", 1),
            ("HM04", "mpesa", "50.00", 0)),
}
DEMO_VENDOR_PAYMENTS = (("HN04", "35.00", 2), ("HM01", "20.00", 1), ("HM03", "45.00", 0))  # paid at SparkMeter


def _seed_gateway_payments(session: Session, seeded: dict[str, SeededEstate]) -> None:
    """Payments the daily reconciliation can match (issue 20): credited through credit_payment,
    each with its gateway record (PayFast's ITN fields, the bank reference, the M-PESA SMS).

    The mini-grid's payments are pushed to SparkMeter as the credit push would (no job runs in the
    seed: the queued push is dropped, the push recorded as done) and Koios lists each under our
    external id, as the Koios payments import stores it; Koios also lists a few payments made at
    SparkMeter itself. Dated in the three days the seed reconciles; the caller reconciles them.
    """
    from app.analytics.daily_reconciliation import day_bounds, yesterday
    from app.models.payments import Payment, SmsMessage
    from app.models.sources import KoiosPayment
    from app.payments.credit import credit_payment

    for code, rows in DEMO_GATEWAY_PAYMENTS.items():
        estate_seed = seeded.get(code)
        if estate_seed is None:
            continue
        estate = estate_seed.estate
        last = yesterday(estate)
        for n, (number, provider, amount, back) in enumerate(rows, start=1):
            unit = estate_seed.units[number]
            start, _ = day_bounds(estate, last - timedelta(days=back))
            paid_at = start + timedelta(hours=9 + 2 * n, minutes=7 * n)
            ref = {"payfast": f"{2401500 + n}", "eft": f"FNB-DEMO-{code}-{n:03d}",
                   "mpesa": f"SDM{n}K4R7{code}"}[provider]
            payment = Payment(provider=provider, provider_ref=ref, reference=f"{code}-{number}", unit_id=unit.id,
                              estate_id=estate.id, utility="electricity", amount=Decimal(amount),
                              currency=estate.currency, status="to_confirm", payer_name="Demo payer",
                              paid_at=paid_at, credited_at=paid_at + timedelta(seconds=40))
            if provider == "payfast":
                payment.checkout_id = f"mw-demo-{code.lower()}-{n}"
                payment.raw = {"m_payment_id": payment.checkout_id, "pf_payment_id": ref,
                               "payment_status": "COMPLETE", "amount_gross": amount,
                               "amount_fee": str(quantize(Decimal(amount) * Decimal("0.035"), "ZAR")),
                               "item_name": f"Electricity {number}"}
            session.add(payment)
            session.flush()
            if provider == "mpesa":
                local = paid_at.astimezone(estate.tz)
                session.add(SmsMessage(
                    gateway_id=f"demo-sms-{code}-{n}", from_number="MPESA", outcome="payment",
                    payment_id=payment.id, sent_at=paid_at, received_at=paid_at + timedelta(seconds=20),
                    content=(f"{ref} Confirmed. on {local:%-d/%-m/%y} at {local:%-I:%M %p} M{amount} received "
                             f"from 26657755{400 + n} - Demo Payer 26657755{400 + n}.New M-Pesa balance is "
                             f"M{Decimal(amount) + 300}.00 Reference: {code}-{number}.")))
            credit_payment(session, payment)
            pending = session.info.get("jobs_after_commit", [])
            if payment.vendor_push_status == "queued":  # the seed pushes nothing: as if the job had
                session.info["jobs_after_commit"] = [j for j in pending if j[1] != "vendor_credit_push"]
                serial = session.scalar(select(Meter.serial).where(Meter.unit_id == unit.id,
                                                                   Meter.protocol == "sparkmeter"))
                payment.vendor_push_status = "pushed"
                payment.vendor_push_result = f"Koios payment demo-kp-{payment.id} for customer C-{serial}"
                session.add(KoiosPayment(
                    koios_id=f"demo-kp-{payment.id}", origin="meterwise", customer_code=f"C-{serial}",
                    amount=Decimal(amount), currency=estate.currency, paid_at=paid_at + timedelta(minutes=1),
                    memo=f"Meterwise {provider} {ref}", external_id=f"meterwise:{payment.id}",
                    payment_id=payment.id, estate_id=estate.id, unit_id=unit.id, meter_serial=serial,
                    matched_at=paid_at + timedelta(hours=1)))
    minigrid = seeded.get("TPM")
    if minigrid is not None:
        last = yesterday(minigrid.estate)
        for n, (number, amount, back) in enumerate(DEMO_VENDOR_PAYMENTS, start=1):
            unit = minigrid.units[number]
            start, _ = day_bounds(minigrid.estate, last - timedelta(days=back))
            serial = session.scalar(select(Meter.serial).where(Meter.unit_id == unit.id,
                                                               Meter.protocol == "sparkmeter"))
            session.add(KoiosPayment(
                koios_id=f"demo-kv-{n}", origin="vendor", customer_code=f"C-{serial}", amount=Decimal(amount),
                currency=minigrid.estate.currency, paid_at=start + timedelta(hours=14, minutes=5 * n),
                memo="Cash agent, Thaba-Putsoa", estate_id=minigrid.estate.id, unit_id=unit.id,
                meter_serial=serial, matched_at=start + timedelta(hours=15)))
    session.flush()
