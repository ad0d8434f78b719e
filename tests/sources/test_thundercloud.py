"""ThunderCloud exports: heartbeats stored once, payments found as credit jumps across files."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import func, select

from app.jobs import enqueue
from app.models import JobRun, canonical_serial
from app.models.sources import ThunderCloudHeartbeat, ThunderCloudPayment
from app.sources.thundercloud import import_heartbeats, recent_thundercloud_payments
from tests import factories
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
    assert [p.meter_serial for p in payments] == ["SM010001", "SM010003"]  # demo TPM site 1's serials
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


# --- matching payments to units by meter serial ----------------------------------------


def units_with_meters(session, serials, protocol="sparkmeter"):
    """A unit with a meter of `protocol` per serial; returns serial -> unit."""
    kit = factories.make_estate_with_wallet(session, currency="LSL")
    units = {}
    for number, serial in enumerate(serials, start=1):
        unit = factories.make_unit(session, kit.estate, number=f"HN{number:02d}")
        factories.make_meter(session, unit, serial=serial, protocol=protocol)
        units[canonical_serial(serial)] = unit
    session.commit()
    return units


def unit_ids(session) -> dict[str, int | None]:
    return dict(session.execute(select(ThunderCloudPayment.meter_serial, ThunderCloudPayment.unit_id)
                                .order_by(ThunderCloudPayment.id)).all())


def test_payments_are_matched_to_the_unit_of_their_sparkmeter_meter(session):
    units = units_with_meters(session, ["0SM010001", "SM010003"])  # stored canonical, either way
    report = import_heartbeats(session, heartbeat_csv("S1", DAY), **RULES)
    assert (report.new_payments, report.matched, report.unmatched) == (2, 2, 0)
    assert unit_ids(session) == {"SM010001": units["SM010001"].id, "SM010003": units["SM010003"].id}
    assert "2 payments detected, 2 matched to units, 0 unmatched" in report.summary()
    again = import_heartbeats(session, heartbeat_csv("S1", DAY), **RULES)
    assert (again.new_payments, again.matched, again.unmatched) == (0, 0, 0)
    assert unit_ids(session) == {"SM010001": units["SM010001"].id, "SM010003": units["SM010003"].id}
    shown = {payment.meter_serial: (unit.number, estate.currency)
             for payment, unit, estate in recent_thundercloud_payments(session)}
    assert shown == {"SM010001": ("HN01", "LSL"), "SM010003": ("HN02", "LSL")}


def test_an_unmatched_payment_is_matched_on_a_later_run(session):
    units = units_with_meters(session, ["SM010001"])
    first = import_heartbeats(session, heartbeat_csv("S1", DAY), **RULES)
    assert (first.new_payments, first.matched, first.unmatched) == (2, 1, 1)
    assert unit_ids(session) == {"SM010001": units["SM010001"].id, "SM010003": None}
    assert [unit for _, unit, _ in recent_thundercloud_payments(session)].count(None) == 1
    unit = factories.make_unit(session, units["SM010001"].estate, number="HN03")
    factories.make_meter(session, unit, serial="SM010003", protocol="sparkmeter")
    session.commit()
    later = import_heartbeats(session, heartbeat_csv("S1", DAY), **RULES)  # nothing new in the file
    assert (later.new_payments, later.matched, later.unmatched) == (0, 1, 0)
    assert unit_ids(session) == {"SM010001": units["SM010001"].id, "SM010003": unit.id}


def test_only_sparkmeter_meters_on_a_unit_match(session):
    units_with_meters(session, ["SM010001"], protocol="mqtt_direct")  # same serial, another protocol
    kit = factories.make_estate_with_wallet(session)
    factories.make_meter(session, estate=kit.estate, serial="SM010003", protocol="sparkmeter", role="bulk")
    session.commit()
    report = import_heartbeats(session, heartbeat_csv("S1", DAY), **RULES)
    assert (report.matched, report.unmatched) == (0, 2)
    assert set(unit_ids(session).values()) == {None}


def test_the_job_matches_waiting_payments_even_when_every_file_is_known(session, tmp_path):
    (tmp_path / "S1.csv").write_text(heartbeat_csv("S1", DAY))
    first = session.get(JobRun, enqueue("thundercloud_import", str(tmp_path)).id, populate_existing=True)
    assert "2 payments detected, 0 matched to units, 2 unmatched" in first.result
    units = units_with_meters(session, ["SM010001", "SM010003"])
    again = session.get(JobRun, enqueue("thundercloud_import", str(tmp_path)).id, populate_existing=True)
    assert "0 files imported, 1 already imported" in again.result
    assert "0 payments detected, 2 matched to units, 0 unmatched" in again.result
    session.expire_all()
    assert unit_ids(session) == {s: units[s].id for s in ("SM010001", "SM010003")}


def test_the_sources_page_shows_each_payments_unit_or_unmatched(world, committed, login):
    from tests.helpers import table_with

    with committed() as s:
        units = units_with_meters(s, ["SM010001"])
        estate_code = units["SM010001"].estate.code
        import_heartbeats(s, heartbeat_csv("S1", DAY), **RULES)
    page = login(world.emails["staff"]).get("/staff/sources").get_data(as_text=True)
    rows = {row[1].text: row[3].text for row in table_with(page, "Detected").rows}
    assert rows == {"SM010001": f"{estate_code} HN01", "SM010003": "unmatched"}
    assert "1 unmatched" in page
