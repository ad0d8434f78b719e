"""ThunderCloud exports: heartbeats stored once, payments found as credit jumps across files."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.jobs import enqueue
from app.models import JobRun
from app.models.sources import ThunderCloudHeartbeat, ThunderCloudPayment
from app.sources.thundercloud import import_heartbeats
from tests.emulators.thundercloud import TOPUP, day_number, heartbeat_csv

DAY = date(2026, 2, 28)  # day 789: divisible by 1 and 3, not by 2: meters 1 and 3 top up
RULES = {"threshold": Decimal("0.50"), "rate": Decimal("2.50")}


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_top_ups_become_payments_with_kwh_and_a_reimport_adds_nothing(session):
    assert day_number(DAY) % 3 == 0 and day_number(DAY) % 2 == 1
    report = import_heartbeats(session, heartbeat_csv("S1", DAY), **RULES)
    assert (report.rows, report.new_heartbeats, report.new_payments) == (18, 18, 2)
    payments = session.scalars(select(ThunderCloudPayment).order_by(ThunderCloudPayment.meter_serial)).all()
    assert [p.meter_serial for p in payments] == ["TCS10001", "TCS10003"]
    assert all(p.amount == TOPUP - Decimal("1.25") for p in payments)  # the jump nets one slot's use
    assert payments[0].kwh == ((TOPUP - Decimal("1.25")) / Decimal("2.50")).quantize(Decimal("0.001"))
    again = import_heartbeats(session, heartbeat_csv("S1", DAY), **RULES)
    assert (again.new_heartbeats, again.new_payments) == (0, 0)
    assert count(session, ThunderCloudHeartbeat) == 18 and count(session, ThunderCloudPayment) == 2


def test_consecutive_days_join_without_false_payments(session):
    days = [DAY + timedelta(days=n) for n in range(6)]
    for day in days:
        import_heartbeats(session, heartbeat_csv("S1", day), **RULES)
    expected = sum(1 for day in days for n in range(3) if day_number(day) % (n + 1) == 0)
    assert count(session, ThunderCloudPayment) == expected


def test_files_imported_out_of_order_find_the_same_payments(session):
    days = [DAY + timedelta(days=n) for n in range(4)]
    for day in reversed(days):
        import_heartbeats(session, heartbeat_csv("S1", day), **RULES)
    expected = sum(1 for day in days for n in range(3) if day_number(day) % (n + 1) == 0)
    assert count(session, ThunderCloudPayment) == expected


def test_a_jump_below_the_threshold_is_not_a_payment(session):
    text = ("heartbeat_id,meter_serial,customer_code,timestamp,credit_balance\n"
            "a,TC1,C1,2026-03-02T00:00:00+00:00,10.00\n"
            "b,TC1,C1,2026-03-02T04:00:00+00:00,10.40\n"
            "c,TC1,C1,2026-03-02T08:00:00+00:00,30.40\n")
    report = import_heartbeats(session, text, **RULES)
    assert report.new_payments == 1
    assert session.scalar(select(ThunderCloudPayment.amount)) == Decimal("20.00")


def test_bad_rows_are_refused_by_line_and_good_rows_kept(session):
    text = ("heartbeat_id,meter_serial,customer_code,timestamp,credit_balance\n"
            "a,TC1,C1,2026-03-02T00:00:00+00:00,10.00\n"
            "b,TC1,C1,yesterday,12.00\n"
            "c,TC1,C1,2026-03-02T08:00:00+00:00,lots\n"
            ",TC1,C1,2026-03-02T09:00:00+00:00,1\n")
    report = import_heartbeats(session, text, **RULES)
    assert report.new_heartbeats == 1
    assert [e.split(":")[0] for e in report.errors] == ["line 3", "line 4", "line 5"]


def test_a_file_without_the_columns_is_refused_whole(session):
    report = import_heartbeats(session, "id,serial\n1,2\n", **RULES)
    assert report.errors and report.errors[0].startswith("header: missing heartbeat_id")
    assert count(session, ThunderCloudHeartbeat) == 0


def test_import_job_reads_every_csv_of_the_export_directory(session, tmp_path):
    for n in range(2):
        (tmp_path / f"S1-{n}.csv").write_text(heartbeat_csv("S1", DAY + timedelta(days=n)))
    run = enqueue("thundercloud_import", str(tmp_path))
    run = session.get(JobRun, run.id, populate_existing=True)
    assert run.status == "done" and (run.done, run.total) == (2, 2)
    assert "36 new heartbeats" in run.result
