"""Page speed: tenant dashboard, tenant charts and owner portfolio from roll-ups vs computing from raw readings.

Run from the repository root:  .venv/bin/python bench/pages.py [--requests 200] [--years 5] [--units 500] [--sequential] [--as-of YYYY-MM-DDTHH:MM] [--keep] [--reuse]
Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_pages on
127.0.0.1), migrates it and seeds one ZAR estate:
- the busy unit: `--years` of half-hourly readings on 4 meters (electricity, water, hot water,
  solar), its consumption billed through post_many per reading (half-hourly, as ingest does)
  or per day with --daily-postings, and a monthly top-up per utility; a tenant login on it;
- `--units` - 1 more units with the same 4 meters, this month's half-hourly readings, daily
  consumption postings this month and a top-up per utility; an owner login granted all
  `--units` units one by one; and 100 units of another owner in the same estate;
- roll-ups rebuilt from the readings (app.metering.rollups.rebuild) and the ledger's pocket
  postings folded into their monthly roll-ups (app.ledger.pocket_flows.fold).
It then times, in process (Flask test client, wall time around each request), `--requests`
requests each of GET /tenant/units/<id>, /tenant/units/<id>/usage?utility=electricity&grain=
daily|weekly|monthly and /owner/, and as many of each page's baseline, alternating (or
--sequential). A baseline is the SAME request, rendered the same way, with the roll-up reads the
view makes (app.reports.usage meter_figures, day_totals, month_totals; app.analytics.portfolio
month_consumption, pocket_flows) swapped for straightforward versions summing raw readings (and
raw postings) over the same periods. Before timing a page it makes one request each way and checks
that every swapped read returned the same values and that the two pages rendered identically.
It prints p50/p95 per page and baseline, the ratios, whether the goals (page p95 <= 50 ms,
>= 10x the baseline's p95) are met and the load average; it exits 1 if a baseline disagreed with
the roll-ups, drops the database (also on error) and never asserts times.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402
from sqlalchemy import make_url, text  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_pages"
TZ_NAME = "Africa/Johannesburg"
TZ = ZoneInfo(TZ_NAME)
UTILITIES = ("electricity", "water", "hot_water", "solar")
BILLED = ("electricity", "water", "hot_water")
RATES = {"electricity": Decimal("2.85"), "water": Decimal("32.50"), "hot_water": Decimal("95.00"),
         "solar": Decimal("1.95")}
GOAL_P95_MS = 50
GOAL_RATIO = 10
SLOT = timedelta(minutes=30)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page (and per baseline)")
    parser.add_argument("--years", type=int, default=5, help="years of half-hourly readings on the busy unit")
    parser.add_argument("--units", type=int, default=500, help="units the owner owns (the busy unit is one)")
    parser.add_argument("--daily-postings", action="store_true",
                        help="bill the busy unit once a day instead of per half-hourly reading (faster set-up)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (for profiling)")
    parser.add_argument("--sequential", action="store_true",
                        help="time all of a page's requests, then all of its baseline's (default: alternate)")
    parser.add_argument("--as-of", metavar="YYYY-MM-DDTHH:MM",
                        help="run with the clock at this local time (e.g. late in last month, so the month holds "
                             "weeks of data for the baselines to read); default: now")
    parser.add_argument("--reuse", action="store_true",
                        help="time against a database kept by an earlier --keep run (no set-up; kept again)")
    return parser.parse_args()


def use_per_slot(utility: str, moment: datetime, rng: random.Random) -> int:
    """A half hour's consumption in thousandths of a kWh or kL, shaped by the local hour."""
    hour = moment.astimezone(TZ).hour
    if utility == "solar":
        return int(max(0.0, 1 - abs(hour - 12.5) / 6) * rng.randint(150, 450))
    base = {"electricity": 180, "water": 6, "hot_water": 3}[utility]
    peak = 3 if hour in (6, 7, 18, 19, 20) else (1 if 8 <= hour <= 22 else 0.4)
    return int(base * peak * rng.uniform(0.6, 1.4))


def slots(first: datetime, last: datetime):
    moment = first
    while moment <= last:
        yield moment
        moment += SLOT


def copy_readings(session, rows) -> int:
    """COPY (meter id, taken_at, register, consumption) rows into readings; returns how many."""
    connection = session.connection().connection.driver_connection
    count = 0
    with connection.cursor() as cursor, cursor.copy(
            "COPY readings (meter_id, taken_at, register, consumption, received_at) FROM STDIN") as copy:
        for meter_id, taken_at, register, consumption in rows:
            copy.write_row((meter_id, taken_at, register, consumption, taken_at))
            count += 1
    return count


def seed(session, args, now: datetime) -> dict:
    """Build the estate, logins, readings, roll-ups and ledger; return the ids the run needs."""
    from sqlalchemy import select

    from app.ledger import Entry, post_many
    from app.ledger.accounts import open_wallet, system_account
    from app.metering import rollups
    from app.models import Estate, Meter, Person, RoleGrant, TariffVersion, Unit, User

    rng = random.Random(5)
    estate = Estate(code="BENCH", name="Bench Estate", country="ZA", currency="ZAR", timezone=TZ_NAME)
    session.add(estate)
    session.flush()
    start_day = (now - timedelta(days=365 * args.years)).astimezone(TZ).date()
    for utility in UTILITIES:
        session.add(TariffVersion(estate_id=estate.id, utility=utility, kind="flat", effective_from=start_day,
                                  rates={"rate": str(RATES[utility])}))
    clearing = system_account(session, estate, "clearing", "payments")
    revenue = {u: system_account(session, estate, "revenue", u, utility=u) for u in BILLED}
    owned = [Unit(estate_id=estate.id, number=f"O{i:04d}", occupancy_status=rng.choice(
        ("occupied",) * 8 + ("vacant", "maintenance"))) for i in range(args.units)]
    others = [Unit(estate_id=estate.id, number=f"X{i:04d}", occupancy_status="occupied") for i in range(100)]
    session.add_all(owned + others)
    session.flush()
    pockets: dict[tuple[int, str], int] = {}
    meters: dict[tuple[int, str], int] = {}
    for unit in owned + others:
        for pocket in open_wallet(session, unit, UTILITIES).pockets:
            pockets[(unit.id, pocket.utility)] = pocket.id
    meter_rows = [Meter(estate_id=estate.id, unit_id=unit.id, serial=f"{unit.number}-{utility}", utility=utility,
                        role="solar" if utility == "solar" else "unit", relay_state="on",
                        last_reading_at=now, interval_minutes=30)
                  for unit in owned for utility in UTILITIES]
    session.add_all(meter_rows)
    session.flush()
    for meter in meter_rows:
        meters[(meter.unit_id, meter.utility)] = meter.id

    def login(email: str, role: str, units: list[Unit]) -> User:
        user = User(email=email, person=Person(full_name=email.split("@")[0].title(), email=email))
        user.set_password("bench-password")
        session.add(user)
        session.flush()
        session.add_all([RoleGrant(user_id=user.id, role=role, unit_id=u.id) for u in units])
        return user

    busy = owned[0]
    tenant = login("tenant@bench.local", "tenant", [busy])
    owner = login("owner@bench.local", "owner", owned)
    login("neighbour@bench.local", "owner", others)
    session.flush()

    # Readings: the busy unit's years, every other owned unit's current month.
    started = time.perf_counter()
    month_start = datetime(now.astimezone(TZ).year, now.astimezone(TZ).month, 1, tzinfo=TZ).astimezone(UTC)
    last = now.replace(minute=now.minute - now.minute % 30, second=0, microsecond=0)
    first_busy = datetime.combine(start_day, datetime.min.time(), TZ).astimezone(UTC)
    busy_use: dict[str, list[tuple[datetime, int]]] = {}

    def series():
        for utility in UTILITIES:
            register = 0
            uses = []
            for moment in slots(first_busy, last):
                use = use_per_slot(utility, moment, rng)
                register += use
                uses.append((moment, use))
                yield meters[(busy.id, utility)], moment, Decimal(register) / 1000, Decimal(use) / 1000
            busy_use[utility] = uses
        for unit in owned[1:]:
            for utility in UTILITIES:
                register = 0
                for moment in slots(month_start + SLOT, last):
                    use = use_per_slot(utility, moment, rng)
                    register += use
                    yield meters[(unit.id, utility)], moment, Decimal(register) / 1000, Decimal(use) / 1000

    readings = copy_readings(session, series())
    print(f"  readings: {readings:,} copied in {time.perf_counter() - started:.1f}s")
    try:  # M8: readings partitioned by month; the history goes into its months as the daily job does it
        from app.metering.archive import ensure_partitions_ahead
    except ImportError:  # a checkout from before partitioning, measured for comparison
        pass
    else:
        started = time.perf_counter()
        ensure_partitions_ahead(session, now.date())
        session.commit()
        print(f"  partitions: history moved into its months in {time.perf_counter() - started:.1f}s")
    started = time.perf_counter()
    count = rollups.rebuild(session)
    print(f"  roll-ups: {count:,} rebuilt from the readings in {time.perf_counter() - started:.1f}s")

    # Ledger: the busy unit billed per reading (or per day), monthly top-ups; the rest daily this month.
    started = time.perf_counter()
    entries: list[Entry] = []
    posted = 0

    def flush_entries(force: bool = False) -> None:
        nonlocal entries, posted
        if entries and (force or len(entries) >= 2000):
            post_many(session, entries)
            posted += len(entries)
            entries = []

    for utility in BILLED:
        pocket = pockets[(busy.id, utility)]
        per_day: dict[date, int] = {}
        for moment, use in busy_use[utility]:
            if args.daily_postings:
                day = moment.astimezone(TZ).date()
                per_day[day] = per_day.get(day, 0) + use
                continue
            amount = (RATES[utility] * use / 1000).quantize(Decimal("0.01"))
            if amount:
                entries.append(Entry(estate.id, "consumption", f"reading:{busy.number}-{utility}:{moment.isoformat()}",
                                     [(pocket, -amount), (revenue[utility].id, amount)], occurred_at=moment))
                flush_entries()
        for day, use in per_day.items():
            amount = (RATES[utility] * use / 1000).quantize(Decimal("0.01"))
            moment = datetime.combine(day, datetime.min.time(), TZ).astimezone(UTC) + timedelta(hours=23, minutes=59)
            entries.append(Entry(estate.id, "consumption", f"daily:{busy.number}-{utility}:{day}",
                                 [(pocket, -amount), (revenue[utility].id, amount)], occurred_at=min(moment, now)))
            flush_entries()
        month = first_busy
        while month < now:
            entries.append(Entry(estate.id, "topup", f"topup:{busy.number}-{utility}:{month.astimezone(TZ):%Y-%m}",
                                 [(clearing.id, Decimal("-900")), (pocket, Decimal("900"))],
                                 occurred_at=month + timedelta(days=1)))
            flush_entries()
            local = month.astimezone(TZ)
            month = datetime(local.year + (local.month == 12), local.month % 12 + 1, 1, tzinfo=TZ).astimezone(UTC)
    today = now.astimezone(TZ).date()
    days_this_month = [today.replace(day=d) for d in range(1, today.day + 1)]
    for unit in owned[1:] + others:
        for utility in BILLED:
            pocket = pockets[(unit.id, utility)]
            entries.append(Entry(estate.id, "topup", f"topup:{unit.number}-{utility}:{today:%Y-%m}",
                                 [(clearing.id, Decimal("-400")), (pocket, Decimal("400"))],
                                 occurred_at=month_start + timedelta(hours=9)))
            for day in days_this_month:
                amount = Decimal(rng.randint(300, 2500)) / 100
                moment = min(datetime.combine(day, datetime.min.time(), TZ).astimezone(UTC) + timedelta(hours=23), now)
                entries.append(Entry(estate.id, "consumption", f"daily:{unit.number}-{utility}:{day}",
                                     [(pocket, -amount), (revenue[utility].id, amount)], occurred_at=moment))
            flush_entries()
    flush_entries(force=True)
    print(f"  ledger: {posted:,} transactions posted in {time.perf_counter() - started:.1f}s")
    # The owner pages roll pocket postings up lazily (app.ledger.pocket_flows); the first
    # read after this much history would fold all of it, so fold now and say what it cost.
    from app.ledger.pocket_flows import fold

    session.execute(text("ANALYZE"))  # bulk-loaded tables: plan the fold with real row counts
    started = time.perf_counter()
    fold(session, [estate.id])
    print(f"  pocket roll-ups: the ledger folded in {time.perf_counter() - started:.1f}s")
    busy_meters = {u: meters[(busy.id, u)] for u in UTILITIES}
    owner_meters = [m for (unit_id, _), m in meters.items()]
    return {"busy": busy.id, "tenant": tenant.id, "owner": owner.id, "busy_meters": busy_meters,
            "owner_meters": owner_meters, "estate": estate.id,
            "transactions": session.scalar(select(text("count(*)")).select_from(text("ledger_transactions")))}


# --- baselines: the same pages, their roll-up reads computed from raw readings ------------------
# Each baseline is the same request, rendered the same way, with the read functions the views
# call for consumption (and, on /owner/, billed and collected) swapped for straightforward
# versions that sum raw Reading rows (and raw postings) over the same periods: the way a page
# would be written without roll-ups, using the readings' (meter_id, taken_at) index. Balances
# and recent activity are read the same way in both (cached balances, the ledger).

# A reading covers the time up to its timestamp: one stamped exactly on a boundary belongs to
# the period before it (as in app.metering.rollups), hence the microsecond.
RAW_PERIODS = text(
    "SELECT date_trunc(:grain, (taken_at - interval '1 microsecond') AT TIME ZONE :tz) AS period,"
    " sum(consumption) FROM readings WHERE meter_id = ANY(:meters) AND taken_at > :since AND taken_at <= :until"
    " GROUP BY 1")
RAW_PER_METER = text(
    "SELECT meter_id, sum(consumption) FROM readings"
    " WHERE meter_id = ANY(:meters) AND taken_at > :since AND taken_at <= :until GROUP BY 1")
RAW_PER_METER_DAY = text(
    "SELECT meter_id, date_trunc('day', (taken_at - interval '1 microsecond') AT TIME ZONE :tz), sum(consumption)"
    " FROM readings WHERE meter_id = ANY(:meters) AND taken_at > :since GROUP BY 1, 2")
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def raw_periods(session, grain: str, meter_ids, first: date, end: date, tz) -> dict:
    """Consumption per local day or month in [first, end) summed from raw readings."""
    from collections import defaultdict

    from app.reports.usage import local_midnight as midnight

    totals = defaultdict(Decimal)
    if not meter_ids:
        return totals
    for period, total in session.execute(RAW_PERIODS, {
            "grain": grain, "tz": tz.key, "meters": list(meter_ids),
            "since": midnight(first, tz), "until": midnight(end, tz)}):
        totals[period.date()] += Decimal(total or 0)
    return totals


def raw_day_totals(session, meter_ids, first, end, tz):
    """app.reports.usage.day_totals from raw readings."""
    return raw_periods(session, "day", meter_ids, first, end, tz)


def raw_month_totals(session, meter_ids, first, end, tz):
    """app.reports.usage.month_totals from raw readings."""
    return raw_periods(session, "month", meter_ids, first, end, tz)


def raw_meter_figures(session, meter_ids, tz, first, month_start, recent_since):
    """app.reports.usage.meter_figures from raw readings: recent use, per day since `first`, this month."""
    from collections import defaultdict

    from app.periods import add_months
    from app.reports.usage import local_midnight as midnight

    recent, per_meter_day, month_total = defaultdict(Decimal), defaultdict(lambda: defaultdict(Decimal)), \
        defaultdict(Decimal)
    if not meter_ids:
        return recent, per_meter_day, month_total
    meters = list(meter_ids)
    for meter_id, total in session.execute(RAW_PER_METER, {"meters": meters, "since": recent_since,
                                                           "until": FAR_FUTURE}):
        recent[meter_id] += Decimal(total or 0)
    for meter_id, day, total in session.execute(RAW_PER_METER_DAY, {"meters": meters, "tz": tz.key,
                                                                    "since": midnight(first, tz)}):
        per_meter_day[meter_id][day.date()] += Decimal(total or 0)
    for meter_id, total in session.execute(RAW_PER_METER, {
            "meters": meters, "since": midnight(month_start, tz), "until": midnight(add_months(month_start, 1), tz)}):
        month_total[meter_id] += Decimal(total or 0)
    return recent, per_meter_day, month_total


def raw_month_consumption(session, unit_ids, timezones, now):
    """portfolio.month_consumption from raw readings: this month's use per utility and role."""
    from sqlalchemy import and_, func, or_, select

    from app.periods import month_start
    from app.models import Estate, Meter, Reading

    return session.execute(
        select(Meter.utility, Meter.role, func.coalesce(func.sum(Reading.consumption), 0))
        .join(Reading, Reading.meter_id == Meter.id).join(Estate, Estate.id == Meter.estate_id)
        .where(Meter.unit_id.in_(unit_ids), Meter.role.in_(("unit", "solar")),
               or_(*[and_(Estate.timezone == tz, Reading.taken_at > month_start(now, tz)) for tz in timezones]))
        .group_by(Meter.utility, Meter.role)).all()


def raw_pocket_flows(session, unit_ids, period_filter, estate_ids=None):
    """reconciliation.pocket_flows from raw postings: this month's billed and collected per pocket."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import aliased

    from app.analytics.reconciliation import BILLED_KINDS, COLLECTED_KINDS
    from app.models import Account, LedgerTransaction, Posting, Wallet

    period = utcnow_local_period()
    original = aliased(LedgerTransaction)
    kind = func.coalesce(original.kind, LedgerTransaction.kind)
    rows = session.execute(
        select(LedgerTransaction.period, Account.utility, Account.commodity, kind, func.sum(Posting.amount))
        .select_from(Posting).join(Account, Account.id == Posting.account_id)
        .join(Wallet, Wallet.id == Account.wallet_id)
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .outerjoin(original, original.id == LedgerTransaction.reverses_id)
        .where(Wallet.unit_id.in_(unit_ids), Account.kind == "pocket", LedgerTransaction.period == period,
               kind.in_(BILLED_KINDS + COLLECTED_KINDS))
        .group_by(LedgerTransaction.period, Account.utility, Account.commodity, kind))
    return [(p, u, c, "billed" if k in BILLED_KINDS else "collected",
             -Decimal(t) if k in BILLED_KINDS else Decimal(t)) for p, u, c, k, t in rows]


def utcnow_local_period() -> str:
    from app.models import utcnow

    return utcnow().astimezone(TZ).strftime("%Y-%m")


# (module, function name, raw replacement): every roll-up read the measured pages make.
RAW_READS = [
    ("app.reports.usage", "meter_figures", raw_meter_figures),
    ("app.reports.usage", "day_totals", raw_day_totals),
    ("app.reports.usage", "month_totals", raw_month_totals),
    ("app.analytics.portfolio", "month_consumption", raw_month_consumption),
    ("app.analytics.portfolio", "pocket_flows", raw_pocket_flows),
]


class raw_reads:  # noqa: N801  (used as `with raw_reads():`)
    """Within the block the pages read raw readings and raw postings instead of roll-ups."""

    def __enter__(self):
        import importlib

        self.saved = []
        for module_name, name, raw in RAW_READS:
            module = importlib.import_module(module_name)
            self.saved.append((module, name, getattr(module, name)))
            setattr(module, name, raw)

    def __exit__(self, *exc):
        for module, name, function in self.saved:
            setattr(module, name, function)


class recorded_reads:  # noqa: N801
    """Within the block every roll-up read (or its raw replacement) records what it returned."""

    def __init__(self):
        self.results: list[tuple[str, object]] = []

    def __enter__(self):
        import importlib

        self.saved = []
        for module_name, name, _ in RAW_READS:
            module = importlib.import_module(module_name)
            function = getattr(module, name)
            self.saved.append((module, name, function))
            setattr(module, name, self._recording(name, function))
        return self

    def _recording(self, name, function):
        def call(*args, **kwargs):
            result = function(*args, **kwargs)
            self.results.append((name, comparable(result)))
            return result
        return call

    def __exit__(self, *exc):
        for module, name, function in self.saved:
            setattr(module, name, function)


def comparable(value):
    """A read's result in a form that compares by value: plain dicts, rows as sorted tuples, exact Decimals."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, Decimal):
        return value.normalize() if value else Decimal(0)
    if isinstance(value, list):
        return sorted((comparable(tuple(row)) for row in value), key=repr)
    if isinstance(value, tuple):
        return tuple(comparable(item) for item in value)
    return value


def page_figures(body: str) -> str:
    """A rendered page with what changes from request to request taken out: the CSRF token and the
    clock ("Updated 14:05", "Since 13:00", a meter's "4 min ago"), so two requests compare by figures."""
    import re

    body = re.sub(r'(csrf_token" value=|X-CSRFToken": )"[^"]*"', r"\1-", body)
    body = re.sub(r"\b(just now|\d+ (min|h|days) ago)\b", "-", body)
    return re.sub(r"(Updated|Since) \d\d:\d\d", r"\1 -", body)


def first_difference(one: str, other: str) -> str:
    """The first differing line of two pages, each way, for the report."""
    for left, right in zip(one.splitlines(), other.splitlines()):
        if left != right:
            return f"roll-ups: {left.strip()[:200]!r}; raw: {right.strip()[:200]!r}"
    return "one page is longer"


# --- timing -----------------------------------------------------------------------------------

def timed_pair(call, baseline, n: int, alternate: bool = True) -> tuple[list[float], list[float]]:
    """Milliseconds of `n` calls of each after a few warm-ups: alternating (both see the same
    machine load), or all of `call` then all of `baseline`."""
    times: tuple[list[float], list[float]] = ([], [])

    def run(side: int, function) -> None:
        started = time.perf_counter()
        function()
        times[side].append((time.perf_counter() - started) * 1000)

    for _ in range(5):
        call()
        baseline()
    if alternate:
        for _ in range(n):
            run(0, call)
            run(1, baseline)
    else:
        for side, function in enumerate((call, baseline)):
            for _ in range(n):
                run(side, function)
    return times


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def set_clock(moment: datetime) -> None:
    """Stop the portal's clock at `moment`: every loaded module's `utcnow` (app.models.base's, imported by
    name) answers it, so "this month" on the pages and in the set-up is `moment`'s month."""
    from app.models import base

    original = base.utcnow
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith(("app", "bench")) and getattr(module, "utcnow", None) is original:
            module.utcnow = lambda: moment


def signed_in(app, email: str):
    """A test client signed in through the real login form."""
    import re

    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": email, "password": "bench-password", "csrf_token": token})
    if response.status_code != 302:
        raise SystemExit(f"could not sign in as {email}: {response.status_code}")
    return client


def main() -> int:
    args = parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    if url.get_backend_name() != "postgresql":
        print("bench/pages.py needs PostgreSQL (BENCH_DATABASE_URL)", file=sys.stderr)
        return 2
    from flask_migrate import upgrade

    from app import create_app

    if args.reuse:
        args.keep = True
        print(f"database: {url.render_as_string(hide_password=True)}  (kept from an earlier --keep run)")
    else:
        print(f"database: {url.render_as_string(hide_password=True)}  (created for this run, dropped after)")
        recreate_database(url)
    try:
        app = create_app(bench_config(url))
        clock = datetime.fromisoformat(args.as_of).replace(tzinfo=TZ).astimezone(UTC) if args.as_of else None
        if clock is not None:
            set_clock(clock)
        with app.app_context():
            from app.extensions import db
            from app.models import utcnow

            logging.disable(logging.INFO)
            upgrade()
            if args.reuse:
                ids = {"busy": db.session.scalar(text(
                    "SELECT g.unit_id FROM role_grants g JOIN users u ON u.id = g.user_id"
                    " WHERE u.email = 'tenant@bench.local'"))}
            else:
                now = utcnow()
                started = time.perf_counter()
                ids = seed(db.session, args, now)
                db.session.commit()
                db.session.execute(text("ANALYZE"))
                db.session.commit()
                print(f"setup: {args.units} owned units (+100 of another owner), the busy unit with {args.years} "
                      f"years of half-hourly readings on 4 meters, {ids['transactions']:,} ledger transactions, "
                      f"in {time.perf_counter() - started:.1f}s")
            db.session.remove()

        from app.extensions import db

        busy = ids["busy"]
        clients = {role: signed_in(app, f"{role}@bench.local") for role in ("tenant", "owner")}

        def request(role, path, raw=False):
            """One request of the page, with its roll-up reads or (raw) their raw replacements."""
            if not raw:
                return clients[role].get(path)
            with raw_reads():
                return clients[role].get(path)

        pages = [
            ("tenant dashboard", "tenant", f"/tenant/units/{busy}"),
            *[(f"tenant chart {grain}", "tenant", f"/tenant/units/{busy}/usage?utility=electricity&grain={grain}")
              for grain in ("daily", "weekly", "monthly")],
            ("owner portfolio", "owner", "/owner/"),
        ]
        print(f"\nload average before timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        local_now = clock.astimezone(TZ) if clock is not None else datetime.now(TZ)
        # The owner baseline sums this month's raw readings and postings, so its cost (and the
        # ratio) grows with the days elapsed: on the 1st it has almost nothing to read.
        print(f"local time {local_now:%Y-%m-%d %H:%M}: day {local_now.day} of the month, "
              f"{(local_now - local_now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 3600:.0f} h "
              "of this month's data behind the owner baseline")
        print(f"\n{'page':<22} {'page p50':>9} {'p95':>8} {'baseline p50':>13} {'p95':>8} {'ratio p50':>10} "
              f"{'ratio p95':>10}  same figures  goals (p95 <= {GOAL_P95_MS} ms, >= {GOAL_RATIO}x the baseline's p95)")
        all_met, all_same = True, True
        for name, role, path in pages:
            # One request each way first: both must answer, read the same figures and render the same page.
            with recorded_reads() as rolled:
                page = request(role, path)
            with raw_reads(), recorded_reads() as raw:
                base = clients[role].get(path)
            if page.status_code != 200 or base.status_code != 200:
                print(f"{name:<22} {path} answered {page.status_code} / {base.status_code}: not measured")
                all_met = all_same = False
                continue
            reads_same = rolled.results == raw.results and bool(rolled.results)
            body_same = page_figures(page.get_data(as_text=True)) == page_figures(base.get_data(as_text=True))
            same = reads_same and body_same
            all_same &= same
            if not same:
                detail = [f"  {name}: reads {'same' if reads_same else 'DIFFER'}, page {'same' if body_same else 'DIFFERS'}"]
                if not body_same:
                    detail.append("    " + first_difference(page_figures(page.get_data(as_text=True)),
                                                            page_figures(base.get_data(as_text=True))))
                for (fn, got), (_, expected) in zip(rolled.results, raw.results):
                    if got != expected:
                        detail.append(f"    {fn}: roll-ups {str(got)[:300]}\n    {fn}: raw      {str(expected)[:300]}")
                print("\n".join(detail))
            page_times, base_times = timed_pair(lambda: request(role, path), lambda: request(role, path, raw=True),
                                                args.requests, alternate=not args.sequential)
            p50, p95 = percentile(page_times, .5), percentile(page_times, .95)
            b50, b95 = percentile(base_times, .5), percentile(base_times, .95)
            fast, ratio = p95 <= GOAL_P95_MS, b95 / p95 >= GOAL_RATIO
            all_met &= fast and ratio
            reads = ", ".join(sorted({fn for fn, _ in rolled.results}))
            print(f"{name:<22} {p50:>7.1f}ms {p95:>6.1f}ms {b50:>11.1f}ms {b95:>6.1f}ms {b50 / p50:>9.1f}x "
                  f"{b95 / p95:>9.1f}x  {'yes' if same else 'NO':<12}  {'p95 met' if fast else 'p95 NOT met'}, "
                  f"{'ratio met' if ratio else 'ratio NOT met'}   (swapped: {reads})")
        print(f"\nload average after timing: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        order = "one after the other" if args.sequential else "alternating"
        print(f"\n{args.requests} requests per page and as many of its baseline, {order}, in process "
              "(Flask test client), after 5 warm-ups each.\nbaseline: the same request, rendered the same way, with "
              "the roll-up reads it makes (listed) swapped for sums over raw readings (and raw postings on /owner/);"
              "\n'same figures': those reads returned equal values both ways and the pages rendered identically.")
        print("all goals met" if all_met else "some goals not met")
        if not all_same:
            print("the baseline and the roll-ups DISAGREE on some page: the comparison is not valid")
            return 1
        return 0
    finally:
        try:
            from app.extensions import db

            with app.app_context():
                db.session.remove()
                db.engine.dispose()
        except Exception:  # noqa: BLE001  (the app may not exist when set-up failed early)
            pass
        if not args.keep:
            drop_database(url)


if __name__ == "__main__":
    sys.exit(main())
