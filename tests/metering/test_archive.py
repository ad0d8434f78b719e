"""Readings by month (M8): partitions, archive to Parquet with a manifest, restore exactly."""
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings, strategies as st
from sqlalchemy import func, select, text

from app.ledger.verify import verify_ledger
from app.metering import archive
from app.metering.ingest import ingest
from app.models import LedgerTransaction, Reading
from app.models.metering import ConsumptionRollup, DeadLetter, MeterAlert, ReadingArchive
from app.reports.history import explain_transaction
from tests.factories import make_user
from tests.helpers import csrf_from, sign_in
from tests.metering.conftest import direct

NOW = datetime.now(UTC)
THIS_MONTH = NOW.date().replace(day=1)
OLD = archive.next_month(THIS_MONTH, -2)  # the month archived
LAST = archive.next_month(THIS_MONTH, -1)


def moment(month, day: int, hour: int = 12) -> datetime:
    return datetime(month.year, month.month, day, hour, tzinfo=UTC)


def month_hash(session, month) -> str:
    start, end = archive.month_bounds(month)
    return session.scalar(text(
        "SELECT md5(string_agg(concat_ws(',', id, meter_id, taken_at, register, consumption, received_at, uplink_id),"
        " ';' ORDER BY id)) FROM readings WHERE taken_at >= :start AND taken_at < :end"), {"start": start, "end": end})


def rollups(session) -> list[tuple]:
    return session.execute(select(ConsumptionRollup.meter_id, ConsumptionRollup.grain, ConsumptionRollup.period_start,
                                  ConsumptionRollup.consumption, ConsumptionRollup.readings).order_by(ConsumptionRollup.id)).all()


@pytest.fixture
def history(session, metered, app, tmp_path, monkeypatch):
    """Readings over two past months and this one, ingested (and billed) as they arrived."""
    monkeypatch.setitem(app.config, "READINGS_ARCHIVE_DIR", str(tmp_path / "archive"))
    serial = metered.meter.serial
    stamps = [moment(OLD, 3), moment(OLD, 3, 18), moment(OLD, 20), moment(LAST, 5), moment(LAST, 25)]
    for number, stamp in enumerate(stamps):
        report = ingest(session, [direct(serial, stamp, str(100 + 2 * number))], now=stamp + timedelta(minutes=5))
        assert report.accepted == 1
    session.commit()
    archive.ensure_partitions_ahead(session)
    session.commit()
    return metered


def test_archive_then_restore_brings_the_month_back_exactly(session, history, app, cli_runner, tmp_path):
    assert {OLD, LAST, THIS_MONTH} <= set(archive.partitions(session))
    before, kept_rollups = month_hash(session, OLD), rollups(session)
    charge = session.scalar(select(LedgerTransaction).where(LedgerTransaction.kind == "consumption")
                            .order_by(LedgerTransaction.occurred_at))

    result = cli_runner.invoke(args=["readings", "archive", "--before", f"{LAST:%Y-%m}"])
    assert result.exit_code == 0, result.output
    assert f"{OLD:%Y-%m}: 3 readings" in result.output
    folder = tmp_path / "archive"
    manifest = json.loads((folder / f"readings-{OLD:%Y-%m}.json").read_text())
    assert manifest["rows"] == 3 and manifest["sha256"] == archive.sha256_of(folder / manifest["file"])
    assert manifest["meters"][str(history.meter.id)]["register_sum"] == "306.000000"
    assert OLD not in archive.partitions(session) and month_hash(session, OLD) is None
    assert session.scalar(select(func.count()).select_from(Reading)) == 2
    assert rollups(session) == kept_rollups, "roll-ups stay when readings go"

    explained = explain_transaction(session, history.unit, charge.id)
    assert f"readings-{OLD:%Y-%m}.parquet" in explained.note
    late = ingest(session, [direct(history.meter.serial, moment(OLD, 10), "101")], now=NOW)
    assert late.accepted == 0 and "archived" in late.dead_letters[0]
    session.rollback()
    with pytest.raises(ValueError, match="archived"):
        from app.metering.rollups import rebuild
        rebuild(session)

    result = cli_runner.invoke(args=["readings", "restore", "--month", f"{OLD:%Y-%m}"])
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert month_hash(session, OLD) == before and OLD in archive.partitions(session)
    assert rollups(session) == kept_rollups
    assert verify_ledger(session).ok
    again = cli_runner.invoke(args=["readings", "restore", "--month", f"{OLD:%Y-%m}"])
    assert again.exit_code == 1 and "nothing to restore" in again.output
    current = cli_runner.invoke(args=["readings", "archive", "--before", f"{archive.next_month(THIS_MONTH):%Y-%m}"])
    assert current.exit_code == 1 and "not over yet" in current.output


def test_a_month_moved_in_many_pieces_comes_back_whole(session, history, monkeypatch):
    """The pipelined COPY both ways (a piece per row here) loses and reorders nothing."""
    monkeypatch.setattr(archive, "CSV_CHUNK_ROWS", 1)
    monkeypatch.setattr(archive, "CSV_THREADS", 1)
    monkeypatch.setattr(archive, "CSV_PIECE_ROWS", 1)
    before = month_hash(session, OLD)
    [result] = archive.archive_before(session, LAST)
    assert result.rows == 3 and month_hash(session, OLD) is None
    archive.restore_month(session, OLD)
    session.commit()
    assert month_hash(session, OLD) == before


def test_a_damaged_archive_is_refused_and_the_month_stays_archived(session, history):
    [result] = archive.archive_before(session, LAST)
    path = tmp = result.path
    data = bytearray(open(tmp, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))
    with pytest.raises(archive.ArchiveRefused, match="checksum"):
        archive.restore_month(session, OLD)
    session.rollback()
    assert session.scalar(select(ReadingArchive.restored_at)) is None
    assert month_hash(session, OLD) is None


def test_open_dead_letters_and_unpriced_consumption_hold_the_month_back(session, history, app):
    ingest(session, [direct("99999999", moment(OLD, 9), "5")], now=moment(OLD, 9, 13))
    session.add(MeterAlert(meter_id=history.meter.id, kind="no_tariff", detail="2 kWh not billed: no tariff",
                           raised_at=moment(OLD, 15)))
    session.commit()
    with pytest.raises(archive.ArchiveRefused) as refused:
        archive.archive_before(session, LAST)
    assert any("unknown meter 99999999" in line and "replay or dismiss" in line for line in refused.value.details)
    assert any("no tariff" in line for line in refused.value.details)
    assert OLD in archive.partitions(session), "nothing was archived"

    staff = make_user(session, "staff")
    session.execute(MeterAlert.__table__.update().values(acknowledged_at=NOW))
    session.commit()
    client = app.test_client()
    sign_in(client, staff.email)
    page = client.get("/staff/metering/dead-letters").get_data(as_text=True)
    letter = session.scalar(select(DeadLetter))
    response = client.post("/staff/metering/dead-letters/dismiss",
                           data={"dead_letter_id": letter.id, "csrf_token": csrf_from(page)})
    assert response.status_code == 302
    assert client.post("/staff/metering/dead-letters/dismiss", data={"dead_letter_id": letter.id}).status_code == 400
    assert client.post("/staff/metering/dead-letters/dismiss",
                       data={"dead_letter_id": 999999, "csrf_token": csrf_from(page)}).status_code == 404
    session.expire_all()
    assert session.get(DeadLetter, letter.id).dismissed_at is not None
    assert "Dismissed" in client.get("/staff/metering/dead-letters").get_data(as_text=True)
    assert [r.month for r in archive.archive_before(session, LAST)] == [OLD]


def test_late_history_caught_by_the_default_partition_moves_into_its_month(session, metered):
    old = archive.next_month(THIS_MONTH, -6)
    ingest(session, [direct(metered.meter.serial, moment(old, 2), "50")], now=moment(old, 2, 13))
    session.commit()
    archive.ensure_partitions_ahead(session)
    session.commit()
    assert session.scalar(text("SELECT count(*) FROM readings_default")) == 0
    assert session.scalar(text(f"SELECT count(*) FROM {archive.partition_name(old)}")) == 1


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=12))
def test_a_month_is_parsed_or_refused_with_a_message(value):
    try:
        month = archive.parse_month(value)
    except archive.ArchiveRefused as error:
        assert "YYYY-MM" in str(error)
    else:
        assert month.day == 1 and f"{month:%Y-%m}" == value.strip()


def test_the_commands_refuse_bad_months_clearly(cli_runner, session):
    bad = cli_runner.invoke(args=["readings", "archive", "--before", "March"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output
    missing = cli_runner.invoke(args=["readings", "restore", "--month", "2020-01"])
    assert missing.exit_code == 1 and "never archived" in missing.output
