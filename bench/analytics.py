"""Utility analytics: the daily loss + anomaly job from roll-ups vs from raw readings, and the utility pages.

Run from the repository root:  .venv/bin/python bench/analytics.py [--units 500] [--days 365] [--requests 100]
Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_analytics on
127.0.0.1; dropped afterwards, also on error), migrates it and seeds one ZAR estate with `--units`
units, each with an electricity meter, and one bulk electricity meter; `--days` of half-hourly
readings on every meter (500 units x 365 days: about 8.8 M readings) loaded with COPY, not through
ingest; the roll-ups rebuilt from them (app.metering.rollups.rebuild) and clustered by meter (the COPY
wrote the readings meter by meter, the rebuild writes roll-ups in hash order); a utility login.

It times, in the same run:
- (a) the daily jobs as cron runs them: `run_losses` (the last 3 days of bulk vs units, alerts)
  and `score_estate` (yesterday's anomaly score for every unit meter), reading roll-ups: the days'
  bulk and unit sums in one SQL statement over the day roll-ups, the anomaly inputs (30-day mean and
  deviation, the day's use, zero-use run, negative hours) in one over the day and hour roll-ups;
- (b) the same two calls reading raw readings instead: app.analytics.losses.ROLLUP_SOURCE, the
  relation both jobs' statements read the roll-ups from, swapped for the same rows summed from
  readings, so the same statements compute the same figures over the same windows from readings:
  the baseline. The stored
  figures of (a) and (b) must be identical (exit 1 otherwise);
  `--repeat` runs of each, alternating (each run after the other kind's, which pushed part of its
  pages out of the buffer cache), then `--repeat` of each in a block after a warm-up run; medians;
  the rewritten score and loss rows are vacuumed between runs, untimed (the job runs once a day and
  autovacuum clears them in between; here the same day is rewritten dozens of times a minute);
- (c) a whole-period loss backfill (`compute_days` over every day) from roll-ups;
- every utility page of the estate (overview, losses by day and by month, revenue assurance,
  finance, demand, consumption profiles over 30 and 90 days, carbon, shared solar) `--requests`
  times each through the Flask test client, p50/p95. The seed adds emission factors (one changing
  mid-year), a Solar tariff and a shared solar meter with a year of day and month roll-ups, so the
  carbon and solar pages have their real work to do.
It prints the figures, the ratio (b)/(a), whether the goals (job <= 10 s, pages p95 <= 100 ms,
>= 10x the raw scan) are met and the load average; it never asserts times.
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.database import bench_config, drop_database, recreate_database  # noqa: E402
from sqlalchemy import make_url, text  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_analytics"
TZ_NAME = "Africa/Johannesburg"
SLOT = timedelta(minutes=30)
GOAL_JOB_S, GOAL_P95_MS, GOAL_RATIO = 10, 100, 10
PASSWORD = "bench-password"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=500)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--pages", default="",
                        help="comma-separated page names to time (default all): " + ", ".join(PAGES))
    parser.add_argument("--repeat", type=int, default=5, help="runs of the job each way (medians reported)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards (for --reuse)")
    parser.add_argument("--reuse", action="store_true",
                        help="time against the database a --keep run left (no seeding; the clock stays now)")
    return parser.parse_args()


# Page name -> path under /utility/estates/<id>.
PAGES = {"overview": "", "losses": "/losses", "losses_month": "/losses?grain=month", "revenue": "/revenue",
         "finance": "/finance", "demand": "/demand", "profiles": "/profiles", "profiles_90": "/profiles?days=90",
         "carbon": "/carbon", "solar": "/solar"}


def seed(session, args, now: datetime) -> dict:
    """The estate, meters, readings (COPY), roll-ups, a tariff and a utility login."""
    from datetime import date

    from werkzeug.security import generate_password_hash

    from app.ledger.accounts import open_wallet
    from app.metering import rollups
    from app.models import Estate, Meter, Person, RoleGrant, TariffVersion, Unit, User

    rng = random.Random(19)
    estate = Estate(code="UBENCH", name="Utility Bench", country="ZA", currency="ZAR", timezone=TZ_NAME)
    session.add(estate)
    session.flush()
    session.add(TariffVersion(estate_id=estate.id, utility="electricity", kind="flat", effective_from=date(2000, 1, 1),
                              rates={"rate": "2.85"}))
    created = now - timedelta(days=args.days + 5)
    meters = []
    for n in range(args.units):
        unit = Unit(estate_id=estate.id, number=f"U{n:04d}", occupancy_status="occupied")
        session.add(unit)
        session.flush()
        open_wallet(session, unit, ("electricity",))
        meter = Meter(estate_id=estate.id, unit_id=unit.id, serial=f"UB{n:06d}", utility="electricity", role="unit",
                      interval_minutes=30, created_at=created)
        session.add(meter)
        meters.append(meter)
    bulk = Meter(estate_id=estate.id, serial="UBULK", utility="electricity", role="bulk", interval_minutes=30,
                 created_at=created)
    session.add(bulk)
    person = Person(full_name="Bench Utility", email="utility@bench.local")
    user = User(email="utility@bench.local", person=person, password_hash=generate_password_hash(PASSWORD))
    user.grants.append(RoleGrant(role="utility", estate_id=estate.id))
    session.add(user)
    session.flush()
    end = now.replace(minute=0, second=0, microsecond=0)
    slots = args.days * 48
    first = end - slots * SLOT
    profile = [0.02 + 0.05 * (6 <= (h // 2) % 24 <= 8) + 0.08 * (17 <= (h // 2) % 24 <= 21) for h in range(48)]
    loss = 1.1  # the bulk meter measures 10 % more than the units together

    def series():
        bulk_slots = [0.0] * slots
        for meter in meters:
            scale = rng.uniform(0.5, 2.0)
            register = 1000.0
            for i in range(slots):
                used = round(scale * profile[i % 48] * rng.uniform(0.6, 1.4), 3)
                register += used
                bulk_slots[i] += used
                yield meter.id, first + (i + 1) * SLOT, round(register, 3), used
        register = 100000.0
        for i, used in enumerate(bulk_slots):
            used = round(used * loss, 3)
            register += used
            yield bulk.id, first + (i + 1) * SLOT, round(register, 3), used

    connection = session.connection().connection.driver_connection
    count = 0
    with connection.cursor() as cursor, cursor.copy(
            "COPY readings (meter_id, taken_at, register, consumption, received_at) FROM STDIN") as copy:
        for meter_id, taken_at, register, consumption in series():
            copy.write_row((meter_id, taken_at, register, consumption, taken_at))
            count += 1
    started = time.perf_counter()
    rollups.rebuild(session)
    rebuild_s = time.perf_counter() - started
    _seed_carbon_and_solar(session, estate, meters[0].unit_id, now, args.days)
    return {"estate": estate.id, "readings": count, "rebuild_s": rebuild_s}


def _seed_carbon_and_solar(session, estate, unit_id, now, days) -> None:
    """Emission factors (electricity changes half-way), a Solar tariff, a solar meter's roll-ups."""
    from datetime import date

    from app.models import ConsumptionRollup, Meter, TariffVersion
    from app.models.utility import EmissionFactor

    today = now.astimezone(estate.tz).date()
    session.add_all([
        EmissionFactor(country="ZA", utility="electricity", effective_from=date(2000, 1, 1), kg_per_unit=Decimal("0.95")),
        EmissionFactor(country="ZA", utility="electricity", effective_from=today - timedelta(days=days // 2),
                       kg_per_unit=Decimal("0.90")),
        TariffVersion(estate_id=estate.id, utility="solar", kind="flat", effective_from=date(2000, 1, 1),
                      rates={"rate": "1.60"})])
    solar = Meter(estate_id=estate.id, unit_id=unit_id, serial="USOLAR", utility="solar", role="solar",
                  interval_minutes=30)
    session.add(solar)
    session.flush()
    months: dict = {}
    for back in range(days):
        day = today - timedelta(days=back + 1)
        start = datetime(day.year, day.month, day.day, tzinfo=estate.tz)
        session.add(ConsumptionRollup(meter_id=solar.id, grain="day", period_start=start.astimezone(UTC),
                                      consumption=Decimal("180"), readings=48))
        key = start.replace(day=1).astimezone(UTC)
        months[key] = months.get(key, Decimal(0)) + Decimal("180")
    session.add_all([ConsumptionRollup(meter_id=solar.id, grain="month", period_start=key, consumption=total,
                                       readings=1) for key, total in months.items()])


# The daily jobs' relation (app.analytics.losses.ROLLUP_SOURCE) from raw readings: the same columns over
# the same window, one row per meter and local hour/day (the roll-ups' boundary rule: a reading at the
# hour's or day's end belongs to it).
RAW_SOURCE = ("SELECT meter_id, date_trunc('{grain}', taken_at - interval '1 microsecond', :zone) AS period_start,"
              " sum(coalesce(consumption, 0)) AS consumption, count(*) AS readings FROM readings"
              " WHERE meter_id = ANY({ids}) AND taken_at > :{start} AND taken_at <= :{end}"
              " GROUP BY meter_id, period_start")


def daily_job(session, estate_id, now):
    from app.analytics.losses import run_losses
    from app.analytics.revenue_assurance import score_estate
    from app.models import Estate

    estate = session.get(Estate, estate_id)
    started = time.perf_counter()
    run_losses(session, estate, now=now)
    losses_s = time.perf_counter() - started
    rows = score_estate(session, estate, now.astimezone(estate.tz).date() - timedelta(days=1))
    session.commit()
    return losses_s, time.perf_counter() - started - losses_s, len(rows)


def stored(session, estate_id):
    from sqlalchemy import select

    from app.models.utility import LossDay, MeterAnomaly
    losses = [(r.day, r.bulk, r.units, r.complete, r.loss_percent) for r in session.scalars(
        select(LossDay).where(LossDay.estate_id == estate_id).order_by(LossDay.day))]
    scores = [(r.meter_id, r.day, r.score, r.consumption) for r in session.scalars(  # several days on --reuse
        select(MeterAnomaly).where(MeterAnomaly.estate_id == estate_id).order_by(MeterAnomaly.meter_id,
                                                                                MeterAnomaly.day))]
    return losses, scores


def select_estate():
    from sqlalchemy import select

    from app.models import Estate
    return select(Estate.id).where(Estate.code == "UBENCH")


def percentile(values, share):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    args = parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    if url.get_backend_name() != "postgresql":
        print("bench/analytics.py needs PostgreSQL (BENCH_DATABASE_URL)", file=sys.stderr)
        return 2
    from flask_migrate import upgrade

    from app import create_app
    from app.analytics import losses

    print(f"database: {url.render_as_string(hide_password=True)}  "
          f"({'reused' if args.reuse else 'created for this run'}, {'kept' if args.keep else 'dropped after'})")
    if not args.reuse:
        recreate_database(url)
    status = 0
    try:
        app = create_app(bench_config(url))
        with app.app_context():
            from app.extensions import db
            from app.models import utcnow

            logging.disable(logging.INFO)
            upgrade()
            now = utcnow()
            if args.reuse:
                estate_id = db.session.scalar(select_estate())
                last = db.session.scalar(text("SELECT max(taken_at) FROM readings"))
                now = max(now, last)
            else:
                started = time.perf_counter()
                ids = seed(db.session, args, now)
                db.session.commit()
                # The COPY wrote the readings meter by meter, so a meter's readings lie together; the
                # rebuild's GROUP BY writes the roll-ups in hash order, a meter's hours scattered over
                # thousands of pages. Ordered the way the readings are, neither side reads a layout the
                # other does not (ingest in production writes both in time order).
                started_cluster = time.perf_counter()
                db.session.execute(text("CLUSTER consumption_rollups USING uq_consumption_rollups_meter_id_grain_period_start"))
                cluster_s = time.perf_counter() - started_cluster
                db.session.execute(text("ANALYZE"))
                db.session.commit()
                print(f"setup: {args.units} units + 1 bulk meter, {args.days} days half-hourly, "
                      f"{ids['readings']:,} readings (COPY), roll-ups rebuilt in {ids['rebuild_s']:.1f}s "
                      f"and clustered by meter in {cluster_s:.1f}s; "
                      f"total {time.perf_counter() - started:.1f}s")
                estate_id = ids["estate"]
            from app.analytics import revenue_assurance

            original_source = losses.ROLLUP_SOURCE
            original_inputs, original_figures = revenue_assurance.anomaly_inputs, losses.loss_figures
            runs = {"rollups": [], "raw": []}  # per run: (losses s, scores s, meters, reading s)
            results = {}

            def timed(read, spent):
                def wrapper(*args, **kwargs):
                    started = time.perf_counter()
                    try:
                        return read(*args, **kwargs)
                    finally:
                        spent[0] += time.perf_counter() - started
                return wrapper

            def run_once(name, into):
                nonlocal status
                spent = [0.0]
                losses.loss_figures = timed(original_figures, spent)
                revenue_assurance.anomaly_inputs = timed(original_inputs, spent)
                losses.ROLLUP_SOURCE = original_source if name == "rollups" else RAW_SOURCE
                try:
                    run = daily_job(db.session, estate_id, now)
                finally:
                    losses.ROLLUP_SOURCE = original_source
                    revenue_assurance.anomaly_inputs, losses.loss_figures = original_inputs, original_figures
                into[name].append((*run, spent[0]))
                result = stored(db.session, estate_id)
                if results.setdefault(name, result) != result:
                    print(f"{name}: the stored figures changed between runs")
                    status = 1
                # The job runs once a day, and autovacuum clears the rows it overwrote in between; here
                # the same day is rewritten dozens of times in a minute, and without this each run
                # would step over all the earlier runs' dead rows (500 a run): a cost of the bench alone,
                # which would weigh on both kinds alike. Not timed.
                db.session.commit()
                with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.execute(text("VACUUM meter_anomalies, loss_days"))

            # Alternating (each run follows the other kind's, which pushed part of its pages out of
            # the buffer cache), then each kind in a block after one unrecorded warm-up run.
            for _ in range(args.repeat):
                for name in ("rollups", "raw"):
                    run_once(name, runs)
            blocked = {"rollups": [], "raw": []}
            for name in ("rollups", "raw"):
                run_once(name, {"rollups": [], "raw": []})
                for _ in range(args.repeat):
                    run_once(name, blocked)
            same = results["rollups"] == results["raw"]

            def median(values):
                return statistics.median(values)

            def report(title, runs, paired):
                job = [median(r[i] for r in runs["rollups"]) for i in (0, 1, 3)]
                raw = [median(r[i] for r in runs["raw"]) for i in (0, 1, 3)]
                totals = {name: [r[0] + r[1] for r in runs[name]] for name in runs}
                job_s, raw_s = median(totals["rollups"]), median(totals["raw"])
                ratio = median([b / a for a, b in zip(totals["rollups"], totals["raw"])]) if paired else raw_s / job_s
                print(f"{title}: {args.repeat} runs of each, medians")
                print(f"  (a) daily job from roll-ups: losses {job[0] * 1000:.0f} ms + anomaly scores of "
                      f"{runs['rollups'][0][2]} meters {job[1] * 1000:.0f} ms = {job_s:.3f}s  "
                      f"(runs: {', '.join(f'{t:.3f}' for t in totals['rollups'])})")
                print(f"  (b) same from raw readings:  losses {raw[0] * 1000:.0f} ms + anomaly scores "
                      f"{raw[1] * 1000:.0f} ms = {raw_s:.3f}s  (runs: {', '.join(f'{t:.3f}' for t in totals['raw'])})")
                print(f"  ratio raw / roll-ups: {ratio:.1f}x ({'median of the pairs' if paired else 'of the medians'}); "
                      f"of which reading the inputs: roll-ups {job[2] * 1000:.0f} ms, raw {raw[2] * 1000:.0f} ms = "
                      f"{raw[2] / job[2]:.1f}x (the rest, scoring and storing, is the same work in both)")
                return job_s, ratio, raw[2] / job[2]

            job_s, job_ratio, read_ratio = report("alternating", runs, True)
            blocked_s, blocked_ratio, blocked_read = report("each warm, in a block", blocked, False)
            print(f"stored figures identical from roll-ups and from raw readings: {same}")
            if not same:
                status = 1
            from app.analytics.losses import compute_days
            from app.models import Estate
            estate = db.session.get(Estate, estate_id)
            today = now.astimezone(estate.tz).date()
            started = time.perf_counter()
            days = compute_days(db.session, estate, today - timedelta(days=args.days - 1), today - timedelta(days=1))
            db.session.commit()
            print(f"(c) loss backfill of {len(days)} days from roll-ups: {time.perf_counter() - started:.2f}s")
            db.session.remove()
        client = app.test_client()
        import re
        page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        if client.post("/login", data={"email": "utility@bench.local", "password": PASSWORD,
                                       "csrf_token": token}).status_code != 302:
            raise SystemExit("could not sign in")
        worst = 0.0
        base = f"/utility/estates/{estate_id}"
        wanted = [name.strip() for name in args.pages.split(",") if name.strip()] or list(PAGES)
        for path in (base + PAGES[name] for name in wanted):
            times = []
            for _ in range(args.requests):
                started = time.perf_counter()
                response = client.get(path)
                times.append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: {response.status_code}")
            p95 = percentile(times, 0.95)
            worst = max(worst, p95)
            print(f"page {path}: p50 {percentile(times, 0.5):.1f} ms, p95 {p95:.1f} ms")
        print(f"goals: job <= {GOAL_JOB_S}s: {'met' if job_s <= GOAL_JOB_S else 'NOT met'}; "
              f"pages p95 <= {GOAL_P95_MS} ms: {'met' if worst <= GOAL_P95_MS else 'NOT met'}; "
              f">= {GOAL_RATIO}x the raw scan: whole job {'met' if job_ratio >= GOAL_RATIO else 'NOT met'} alternating, "
              f"{'met' if blocked_ratio >= GOAL_RATIO else 'NOT met'} warm; reads "
              f"{'met' if read_ratio >= GOAL_RATIO else 'NOT met'} alternating, "
              f"{'met' if blocked_read >= GOAL_RATIO else 'NOT met'} warm")
        print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    finally:
        if not args.keep:
            drop_database(url)
    return status


if __name__ == "__main__":
    sys.exit(main())
