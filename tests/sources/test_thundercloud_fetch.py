"""ThunderCloud exports over HTTP (CSV and Parquet), the fetch cache, faults and the export folder."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select

from app.jobs import enqueue
from app.models import JobRun
from app.models.sources import ThunderCloudExport, ThunderCloudHeartbeat, ThunderCloudPayment
from app.sources.thundercloud import ThunderCloudApi, export_format, fetch_exports, import_folder
from tests.emulators import serving
from tests.emulators.thundercloud import (
    ThunderCloudEmulator, create_app, day_number, heartbeat_csv, heartbeat_parquet)

DAY = date(2026, 2, 28)  # day 789: meters 1 and 3 top up
DAYS = [DAY, DAY + timedelta(days=1)]
RULES = {"threshold": Decimal("0.50"), "rate": Decimal("2.50")}


@pytest.fixture
def thundercloud():
    """`thundercloud(**settings)` serves a ThunderCloud emulator; returns (emulator, API client)."""
    contexts = []

    def start(token="tc-token", client_token=None, **settings):
        emulator = ThunderCloudEmulator(token=token, **settings)
        context = serving(create_app(emulator))
        base = context.__enter__()
        contexts.append(context)
        api = ThunderCloudApi(base, token if client_token is None else client_token, timeout=2,
                              retries=3, backoff=0.01)
        return emulator, api
    yield start
    for context in contexts:
        context.__exit__(None, None, None)


def count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def expected_payments(days, meters=3) -> int:
    return sum(1 for day in days for n in range(meters) if day_number(day) % (n + 1) == 0)


def snapshot(session) -> tuple:
    """Everything an import stored, in a comparable form."""
    beats = session.execute(select(
        ThunderCloudHeartbeat.heartbeat_id, ThunderCloudHeartbeat.meter_serial, ThunderCloudHeartbeat.customer_code,
        ThunderCloudHeartbeat.taken_at, ThunderCloudHeartbeat.credit_balance)
        .order_by(ThunderCloudHeartbeat.heartbeat_id)).all()
    payments = session.execute(select(
        ThunderCloudPayment.heartbeat_id, ThunderCloudPayment.amount, ThunderCloudPayment.kwh)
        .order_by(ThunderCloudPayment.heartbeat_id)).all()
    return [tuple(b) for b in beats], [tuple(p) for p in payments]


def test_csv_and_parquet_exports_give_identical_results(session, thundercloud):
    results = {}
    for file_format in ("csv", "parquet"):
        emulator, api = thundercloud(file_format=file_format, malformed_rows=1)
        report = fetch_exports(session, api, ["S1", "S2"], DAYS, **RULES)
        formats = set(session.scalars(select(ThunderCloudExport.file_format)))
        results[file_format] = (report.summary(), sorted(e.split(" ", 1)[1] for e in report.errors),
                                snapshot(session), formats)
        for model in (ThunderCloudPayment, ThunderCloudHeartbeat, ThunderCloudExport):
            session.execute(delete(model))
        session.commit()
    csv_result, parquet_result = results["csv"], results["parquet"]
    assert csv_result[3] == {"csv"} and parquet_result[3] == {"parquet"}
    assert csv_result[:3] == parquet_result[:3]
    beats, payments = csv_result[2]
    assert len(beats) == 2 * 2 * 18 and len(payments) == 2 * expected_payments(DAYS)
    assert csv_result[1] == ["line 20: timestamp is missing"] * 4
    assert isinstance(beats[0][3], datetime) and beats[0][3].tzinfo is not None


def test_a_fetched_site_day_is_never_fetched_again(session, thundercloud):
    emulator, api = thundercloud()
    first = fetch_exports(session, api, ["S1"], DAYS, **RULES)
    assert (first.files, first.new_heartbeats, first.new_payments) == (2, 36, expected_payments(DAYS))
    again = fetch_exports(session, api, ["S1"], DAYS, **RULES)
    assert (again.files, again.cached, again.new_heartbeats) == (0, 2, 0)
    assert emulator.served == ["S1/2026-02-28", "S1/2026-03-01"]
    assert count(session, ThunderCloudHeartbeat) == 36


def test_heartbeats_stay_idempotent_when_the_same_day_arrives_twice(session, thundercloud, tmp_path):
    emulator, api = thundercloud(file_format="parquet")
    fetch_exports(session, api, ["S1"], [DAY], **RULES)
    (tmp_path / "copy.csv").write_text(heartbeat_csv("S1", DAY))  # the same day, dropped by hand
    report = import_folder(session, tmp_path, **RULES)
    assert (report.files, report.rows, report.new_heartbeats, report.new_payments) == (1, 18, 0, 0)
    assert count(session, ThunderCloudPayment) == expected_payments([DAY])


def test_5xx_answers_are_retried_and_nothing_is_lost(session, thundercloud):
    emulator, api = thundercloud(error_every=2)
    report = fetch_exports(session, api, ["S1", "S2"], DAYS, **RULES)
    assert (report.files, report.failed, report.new_heartbeats) == (4, 0, 72)
    assert emulator.calls > 4


def test_timeouts_are_retried_and_nothing_is_lost(session, thundercloud):
    emulator, api = thundercloud(stall_every=2, stall_seconds=3)
    report = fetch_exports(session, api, ["S1", "S2"], DAYS, **RULES)
    assert (report.files, report.failed, report.new_heartbeats) == (4, 0, 72)


def test_a_refused_download_is_reported_and_fetched_on_the_next_run(session, thundercloud):
    emulator, api = thundercloud(client_token="wrong")
    refused = fetch_exports(session, api, ["S1"], DAYS, **RULES)
    assert (refused.files, refused.failed) == (0, 2) and "HTTP 401" in refused.fetch_errors[0]
    assert count(session, ThunderCloudExport) == 0
    api.http.headers["Authentication-Token"] = "tc-token"
    assert fetch_exports(session, api, ["S1"], DAYS, **RULES).files == 2


def test_an_unreachable_host_is_tried_once_and_the_rest_wait_for_the_next_run(session):
    api = ThunderCloudApi("http://127.0.0.1:9", "tc-token", timeout=2, retries=1, backoff=0.01)
    report = fetch_exports(session, api, ["S1", "S2"], DAYS, **RULES)
    assert (report.files, report.failed, len(report.fetch_errors)) == (0, 4, 1)
    assert "4 failed to download" in report.summary() and count(session, ThunderCloudExport) == 0


def test_a_day_not_produced_yet_is_not_ready_and_not_remembered(session, thundercloud):
    emulator, api = thundercloud(sites=("S1",))
    today = datetime.now(UTC).date()
    report = fetch_exports(session, api, ["S1", "S9"], [today - timedelta(days=1), today], **RULES)
    assert (report.files, report.not_ready, report.failed) == (1, 3, 0)
    assert count(session, ThunderCloudExport) == 1


def test_the_folder_reads_parquet_and_csv_and_skips_files_already_imported(session, tmp_path):
    (tmp_path / "a.parquet").write_bytes(heartbeat_parquet("S1", DAY))
    (tmp_path / "b.csv").write_text(heartbeat_csv("S1", DAY + timedelta(days=1)))
    (tmp_path / "notes.txt").write_text("not an export")
    first = import_folder(session, tmp_path, **RULES)
    assert (first.files, first.new_heartbeats, first.new_payments) == (2, 36, expected_payments(DAYS))
    again = import_folder(session, tmp_path, **RULES)
    assert (again.files, again.cached) == (0, 2)
    (tmp_path / "b.csv").write_text(heartbeat_csv("S1", DAY + timedelta(days=1), meters=4))
    changed = import_folder(session, tmp_path, **RULES)
    assert (changed.files, changed.cached, changed.new_heartbeats) == (1, 1, 6)


def test_a_broken_parquet_file_is_refused_with_a_reason(session, tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    report = import_folder(session, tmp_path, **RULES)
    assert report.new_heartbeats == 0 and "not a readable Parquet file" in report.errors[0]
    assert count(session, ThunderCloudHeartbeat) == 0


def test_format_is_picked_by_name_then_content_type_then_bytes():
    parquet = heartbeat_parquet("S1", DAY)
    assert export_format(b"x", "day.PARQUET") == "parquet"
    assert export_format(parquet, "day.csv") == "csv"  # the name wins
    assert export_format(b"a,b", "", "application/vnd.apache.parquet") == "parquet"
    assert export_format(parquet, "", "text/csv; charset=utf-8") == "csv"
    assert export_format(parquet) == "parquet" and export_format(b"heartbeat_id,x\n") == "csv"


def test_the_job_fetches_configured_sites_then_the_folder(app, session, thundercloud, tmp_path, monkeypatch):
    emulator, api = thundercloud(file_format="parquet")
    (tmp_path / "dropped.csv").write_text(heartbeat_csv("S3", DAY))
    for key, value in {"THUNDERCLOUD_URL": api.base_url, "THUNDERCLOUD_TOKEN": "tc-token",
                       "THUNDERCLOUD_SITES": "S1, S2", "THUNDERCLOUD_FETCH_DAYS": 2,
                       "THUNDERCLOUD_BACKOFF": 0.01, "THUNDERCLOUD_EXPORT_DIR": str(tmp_path)}.items():
        monkeypatch.setitem(app.config, key, value)
    run = enqueue("thundercloud_import", target="thundercloud:exports")
    run = session.get(JobRun, run.id, populate_existing=True)
    assert run.status == "done" and (run.done, run.total) == (5, 5)
    assert run.result.startswith("ThunderCloud: 5 files imported, 0 already imported, 0 not ready; 90 rows")
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert sorted(emulator.served) == sorted(f"S{s}/{d}" for s in (1, 2) for d in (yesterday - timedelta(days=1),
                                                                                   yesterday))
    again = session.get(JobRun, enqueue("thundercloud_import", target="thundercloud:exports").id,
                        populate_existing=True)
    assert "0 files imported, 5 already imported" in again.result and len(emulator.served) == 4
