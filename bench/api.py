"""Integration API (A7): authenticated balance reads and idempotent top-ups through the whole stack.

Run from the repository root:  .venv/bin/python bench/api.py [--reads 2000] [--topups 500]

Creates its own PostgreSQL database (BENCH_DATABASE_URL, default meterwise_bench_api on
127.0.0.1), migrates it, and counts rate limits on Redis (BENCH_REDIS_URL, default
redis://127.0.0.1:6379/15; its keys are flushed first) as in production. Through the Flask test
client (routing, before/after-request hooks, the view, JSON), it measures:

(a) baseline: `GET /units/{id}/wallet`'s view (the same scoped query and JSON) on a bench-only
    route that skips the key lookup and the rate limiter (the key is handed to it);
(b) `GET /api/v1/units/{id}/wallet` with `X-API-Key`: one indexed key lookup, one Redis
    round trip for the hourly counter, the RateLimit headers;
(c) `POST /api/v1/topups`, each with its own Idempotency-Key (claim row, credit_payment(),
    ledger post, stored response; the receipt job is queued on the same Redis, no worker runs
    it, as in production where a worker would), then (d) the same requests replayed.

(a) and (b) alternate in blocks so load on the machine falls on both alike. With
`--processes N` (N > 1) the top-ups are split in two halves: the first is posted by this one
process, as always, and reported as (c); the second by N forked processes at once, each with
its own database connection and test client (as N server workers would be), reported as (c2)
with the wall time from the first to the last of them; both halves are checked alike. It prints p50/p95
per request and requests/s, the added cost of (b) over (a) at p50 against the goal (≤ 2 ms),
the top-up rate against the goal (≥ 100/s), and checks that every top-up was credited once and
every replay answered with `Idempotent-Replayed: true` (exit 1 if not). The database is dropped
afterwards, also on error.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import event, func, make_url, select  # noqa: E402

from bench.database import drop_database, recreate_database  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_bench_api"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
BLOCK = 200  # requests per block when (a) and (b) alternate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000, help="balance reads each for (a) and (b)")
    parser.add_argument("--topups", type=int, default=500, help="top-ups, then as many replays")
    parser.add_argument("--units", type=int, default=200, help="units (reads and top-ups spread over them)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="print the N costliest functions (cProfile, cumulative) of the top-ups")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="also post the second half of the top-ups from N forked processes at once "
                             "(the first half stays single-process, reported beside it)")
    args = parser.parse_args()
    url = make_url(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    recreate_database(url)
    try:
        return run(url.render_as_string(hide_password=False), os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
                   args.reads, args.topups, args.units, args.profile, args.processes)
    finally:
        drop_database(url)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] * 1000


def run(database_url: str, redis_url: str, reads: int, topups: int, units: int, profile: int = 0,
        processes: int = 1) -> int:
    from flask import request
    from flask_migrate import upgrade
    from redis import Redis

    from app import create_app
    from app.api import v1
    from app.config import Config
    from app.extensions import db
    from app.integration import keys
    from app.models.payments import Payment
    from tests import factories

    Redis.from_url(redis_url).flushdb()

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = database_url
        SQLALCHEMY_ENGINE_OPTIONS = {}
        SECRET_KEY = "bench"
        API_RATELIMIT_STORAGE_URI = redis_url
        RATELIMIT_STORAGE_URI = redis_url
        REDIS_URL = redis_url  # receipts and webhooks queue for a worker (none runs), as in production

    app = create_app(BenchConfig)
    with app.app_context():
        upgrade()
        kit = factories.make_estate_with_wallet(db.session)
        unit_ids = [kit.unit.id]
        for _ in range(units - 1):
            unit = factories.make_unit(db.session, kit.estate)
            factories.make_wallet(db.session, unit)
            unit_ids.append(unit.id)
        db.session.commit()
        new = keys.issue_key(db.session, "bench", permissions="read,topups:write", estate=kit.estate,
                             rate_limit_per_hour=1_000_000)
        plain, handed = new.key, SimpleNamespace(id=new.row.id, estate_id=kit.estate.id, created_by_user_id=None)
        db.session.remove()

    def unprotected(unit_id: int):
        """The wallet read with the key handed over: no lookup, no counter (the baseline)."""
        request.environ["meterwise.api_key"] = handed
        return v1.get_wallet(unit_id)

    app.add_url_rule("/bench/wallet/<int:unit_id>", "bench_wallet", unprotected)
    client = app.test_client()
    headers = {"X-API-Key": plain}

    def timed(path: str, extra: dict) -> float:
        started = time.perf_counter()
        response = client.get(path, headers=extra)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, (path, response.status_code, response.get_data(as_text=True)[:200])
        return elapsed

    for unit_id in unit_ids[:20]:  # warm-up: plans, imports, the Redis connection
        timed(f"/bench/wallet/{unit_id}", {})
        timed(f"/api/v1/units/{unit_id}/wallet", headers)
    baseline: list[float] = []
    keyed: list[float] = []
    done = 0
    while done < reads:
        block = min(BLOCK, reads - done)
        baseline += [timed(f"/bench/wallet/{unit_ids[(done + i) % units]}", {}) for i in range(block)]
        keyed += [timed(f"/api/v1/units/{unit_ids[(done + i) % units]}/wallet", headers) for i in range(block)]
        done += block
    checked = client.get(f"/api/v1/units/{unit_ids[0]}/wallet", headers=headers)
    assert checked.headers.get("RateLimit", "").startswith('"hourly"'), "the rate limiter did not run"

    bodies = [(str(uuid.uuid4()), {"unit_id": unit_ids[i % units], "amount": "10.00", "utility": "electricity",
                                   "reference": f"bench-{i}"}) for i in range(topups)]
    codes, replayed = [], []
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile(time.process_time)  # CPU, not waits on the database
        profiler.enable()
    topup_times, replay_times = [], []
    with app.app_context():
        counted = {"statements": 0, "commits": 0}
        event.listen(db.engine, "before_cursor_execute", lambda *_: counted.__setitem__(
            "statements", counted["statements"] + 1))
        event.listen(db.engine, "commit", lambda *_: counted.__setitem__("commits", counted["commits"] + 1))
    single = bodies if processes <= 1 else bodies[:len(bodies) // 2]
    cpu_started = time.process_time()
    started = time.perf_counter()
    for idem, body in single:
        one = time.perf_counter()
        codes.append(client.post("/api/v1/topups", json=body, headers={**headers, "Idempotency-Key": idem}).status_code)
        topup_times.append(time.perf_counter() - one)
    topup_seconds = time.perf_counter() - started
    topup_cpu = time.process_time() - cpu_started
    per_topup = dict(counted)
    if profiler is not None:
        import pstats
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(profile)
    parallel = None
    if processes > 1:
        with app.app_context():
            db.session.remove()
            parallel = _post_in_processes(app, db, bodies[len(single):], headers, processes, counted)
        codes += parallel["codes"]
    started = time.perf_counter()
    for idem, body in bodies:
        one = time.perf_counter()
        response = client.post("/api/v1/topups", json=body, headers={**headers, "Idempotency-Key": idem})
        replay_times.append(time.perf_counter() - one)
        replayed.append((response.status_code, response.headers.get("Idempotent-Replayed")))
    replay_seconds = time.perf_counter() - started

    with app.app_context():
        credited = db.session.scalar(select(func.count()).select_from(Payment).where(
            Payment.provider == "api", Payment.status == "credited"))
        db.session.remove()
        db.engine.dispose()

    base50, base95 = percentiles(baseline)
    key50, key95 = percentiles(keyed)
    added = key50 - base50
    topup_rate = len(single) / topup_seconds
    print(f"(a) wallet read, no key lookup or rate limit (baseline): p50 {base50:6.2f} ms  p95 {base95:6.2f} ms  "
          f"{len(baseline) / sum(baseline):7.1f} req/s  (n={len(baseline)})")
    print(f"(b) wallet read with X-API-Key + Redis rate limit:       p50 {key50:6.2f} ms  p95 {key95:6.2f} ms  "
          f"{len(keyed) / sum(keyed):7.1f} req/s  ratio p50 b/a {key50 / base50:.2f}x")
    print(f"    auth + rate limiting add {added:.2f} ms at p50: goal ≤ 2 ms {'MET' if added <= 2 else 'NOT MET'}")
    top50, top95 = percentiles(topup_times)
    rep50, rep95 = percentiles(replay_times)
    print(f"(c) idempotent top-ups credited:                     p50 {top50:6.2f} ms  p95 {top95:6.2f} ms  "
          f"{topup_rate:7.1f} req/s  (n={len(single)}): goal ≥ 100/s {'MET' if topup_rate >= 100 else 'NOT MET'}")
    print(f"    per top-up: {per_topup['statements'] / len(single):.1f} SQL statements, "
          f"{per_topup['commits'] / len(single):.1f} commits, {topup_cpu / len(single) * 1000:.2f} ms of this "
          f"process's CPU (load-independent-ish)")
    if parallel is not None:
        n = len(bodies) - len(single)
        par50, par95 = percentiles(parallel["times"])
        rate = n / parallel["seconds"]
        print(f"(c2) the same from {processes} processes at once:          p50 {par50:6.2f} ms  p95 {par95:6.2f} ms  "
              f"{rate:7.1f} req/s  (n={n}): goal ≥ 100/s {'MET' if rate >= 100 else 'NOT MET'} "
              f"(single process above: {topup_rate:.1f}/s)")
        print(f"    per top-up: {parallel['statements'] / n:.1f} SQL statements, {parallel['commits'] / n:.1f} commits, "
              f"{parallel['cpu'] / n * 1000:.2f} ms of CPU summed over the processes")
    print(f"(d) replays answered from the stored response:       p50 {rep50:6.2f} ms  p95 {rep95:6.2f} ms  "
          f"{topups / replay_seconds:7.1f} req/s  ratio d/c {topup_seconds / replay_seconds:.1f}x")
    ok = (set(codes) == {201} and credited == topups
          and all(code == 201 and flag == "true" for code, flag in replayed))
    print(f"payments credited {credited} of {topups}, every replay flagged: {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


def _post_in_processes(app, db, bodies: list, headers: dict, processes: int, counted: dict) -> dict:
    """Post `bodies` from `processes` forked children at once (each its own connection and test
    client, as server workers); return their codes, per-request times, the wall time from the
    common start to the last one done, and their summed statements, commits and CPU."""
    import json as json_module

    shares = [bodies[i::processes] for i in range(processes)]
    go_read, go_write = os.pipe()
    children = []
    for share in shares:
        result_read, result_write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a fresh pool (the parent's connections stay the parent's)
            os.close(result_read)
            os.close(go_write)
            code = 1
            try:
                with app.app_context():
                    db.engine.dispose(close=False)
                    db.session.execute(select(1))  # connect now, not in the timed part
                    db.session.remove()
                client = app.test_client()
                counted["statements"] = counted["commits"] = 0
                os.read(go_read, 1)  # wait for the common start
                cpu = time.process_time()
                out = {"codes": [], "times": []}
                for idem, body in share:
                    one = time.perf_counter()
                    out["codes"].append(client.post("/api/v1/topups", json=body,
                                                    headers={**headers, "Idempotency-Key": idem}).status_code)
                    out["times"].append(time.perf_counter() - one)
                out.update(cpu=time.process_time() - cpu, done=time.perf_counter(), **counted)
                with os.fdopen(result_write, "w") as pipe:
                    pipe.write(json_module.dumps(out))
                code = 0
            finally:
                os._exit(code)
        os.close(result_write)
        children.append((pid, result_read))
    os.close(go_read)
    time.sleep(0.5)  # every child is forked and connected before the start
    started = time.perf_counter()
    os.write(go_write, b"x" * processes)
    os.close(go_write)
    merged = {"codes": [], "times": [], "cpu": 0.0, "statements": 0, "commits": 0, "done": started}
    for pid, result_read in children:
        with os.fdopen(result_read) as pipe:
            text = pipe.read()
        os.waitpid(pid, 0)
        if not text:
            raise RuntimeError(f"a top-up process ({pid}) failed")
        out = json_module.loads(text)
        merged["codes"] += out["codes"]
        merged["times"] += out["times"]
        merged["done"] = max(merged["done"], out["done"])  # perf_counter is the same clock across fork
        for name in ("cpu", "statements", "commits"):
            merged[name] += out[name]
    merged["seconds"] = merged["done"] - started
    return merged


if __name__ == "__main__":
    sys.exit(main())
