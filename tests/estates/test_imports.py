"""Bulk imports (A1): per-row outcomes, file formats, staging before commit, once-only effects, CLI, jobs."""
from __future__ import annotations

import io
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.estates.import_files import UnreadableFile, read_table
from app.estates.imports import (
    INLINE_ROWS, MissingColumns, NotCommittable, UnreadableImport, commit_import, import_file, start_commit,
    start_import,
)
from app.models import AuditLog, ImportBatch, LedgerTransaction, Meter, Person, Unit
from tests import factories


@pytest.fixture
def estates(session):
    """Estate A (ZA) with units A1 and A2, meters 700 (on A1), 701 (on A2, half-hourly) and 702 (on A2), people;
    estate B with unit B1 and meter 900100."""
    a = factories.make_estate(session, name="Acacia")
    b = factories.make_estate(session, name="Baobab")
    a1 = factories.make_unit(session, a, number="A1")
    a2 = factories.make_unit(session, a, number="A2")
    b1 = factories.make_unit(session, b, number="B1")
    factories.make_meter(session, a1, serial="700", utility="electricity")
    factories.make_meter(session, a2, serial="701", utility="electricity", interval_minutes=30)
    factories.make_meter(session, a2, serial="702", utility="electricity")
    factories.make_meter(session, b1, serial="900100", utility="electricity")
    session.add_all([
        Person(full_name="Existing Person", email="existing@example.com", estate_id=a.id),
        Person(full_name="Old Name", email="renamed@example.com", estate_id=a.id),
        Person(full_name="Phone Owner", phone="+27821234567", estate_id=a.id),
        Person(full_name="Other Estate", email="b@example.com", estate_id=b.id),
    ])
    session.commit()
    return a, b


def outcomes(session, batch: ImportBatch) -> list[tuple[int, str]]:
    from app.models import ImportRow

    return list(session.execute(select(ImportRow.row_number, ImportRow.action)
                                .where(ImportRow.batch_id == batch.id).order_by(ImportRow.row_number)).all())


PERSONS = "\n".join([
    "email,full_name,phone,notes",
    "thandi@example.com,Thandi Mokoena,082 555 0101,ok",  # 2 create (phone read in ZA)
    "zoe@example.com,Zoë Dupont,,",                        # 3 create
    ",Ngũgĩ wa Thiong'o,+254 712 345 678,",                # 4 create (phone only, international)
    ",日本 太郎,083 111 2222,",                             # 5 create
    "not-an-email,Bad Email,,",                            # 6 malformed email
    "dup@example.com,First,,",                             # 7 duplicate key
    "DUP@example.com,Second,,",                            # 8 duplicate key (emails match in any case)
    '"=HYPERLINK(""http://x"")",Formula,,',                # 9 formula injection
    "evil@example.com,@SUM(1+1),,",                        # 10 formula injection
    "existing@example.com,Existing Person,,",              # 11 unchanged
    "renamed@example.com,New Name,,",                      # 12 update
    "other@example.com,Someone,+27 82 123 4567,",          # 13 the phone is another person's: ambiguous
    ",No Contact,,",                                       # 14 neither email nor phone
    "b@example.com,Other Estate,,",                        # 15 create: estate B's people are not matched
])


def test_persons_file_reports_every_row_and_commits_only_the_good_ones(session, estates):
    a, _ = estates
    report = import_file(session, a, "persons", "people.csv", PERSONS.encode("utf-8"))
    batch = report.batch
    assert outcomes(session, batch) == [
        (2, "create"), (3, "create"), (4, "create"), (5, "create"), (6, "reject"), (7, "reject"),
        (8, "reject"), (9, "reject"), (10, "reject"), (11, "unchanged"), (12, "update"), (13, "reject"),
        (14, "reject"), (15, "create")]
    assert batch.ignored_columns == ["notes"]
    messages = dict(report.rejected)
    assert messages[6] == ['row 6, column email: expected an email address like thandi@example.com, found "not-an-email"']
    assert "found \"dup@example.com\" also on row 8" in messages[7][0]
    assert messages[9][0].startswith("row 9, column email: expected a value that does not start with = + - @")
    assert messages[10][0].startswith("row 10, column full_name: expected a value that does not start with")
    assert "Phone Owner's" in messages[13][0]
    assert messages[14] == ["row 14, column email: expected an email or a phone (one of them is required), found nothing"]
    # Staged only: nothing live changed.
    assert session.scalar(select(func.count(Person.id))) == 4

    commit_import(session, batch)
    names = set(session.scalars(select(Person.full_name).where(Person.estate_id == a.id)))
    assert {"Thandi Mokoena", "Zoë Dupont", "Ngũgĩ wa Thiong'o", "日本 太郎", "New Name", "Other Estate"} <= names
    assert "Formula" not in names and "First" not in names
    phones = dict(session.execute(select(Person.full_name, Person.phone)).all())
    assert phones["Thandi Mokoena"] == "+27825550101" and phones["Ngũgĩ wa Thiong'o"] == "+254712345678"
    assert batch.status == "committed" and batch.counts == {"create": 5, "update": 1, "unchanged": 1, "reject": 7}
    assert session.scalar(select(func.count(AuditLog.id)).where(AuditLog.action == "person.create")) == 5
    assert session.scalar(select(AuditLog.new).where(AuditLog.action == "import.commit"))["created"] == 5


METERS = "\n".join([
    "unit,serial,utility,role,protocol,dev_eui,interval_minutes,register_digits,bidirectional",
    "A1,000501,electricity,,,,30,6,no",                           # 2 create (serial 501)
    "A2,502,water,,,,,,",                                          # 3 duplicate of row 4 (zero-padded)
    "A2,0502,water,,,,,,",                                         # 4 duplicate of row 3
    "A1,503,Hot water,unit,chirpstack,A8-17-58-FF-FE-00-00-01,,,yes",  # 5 create (label, DevEUI)
    "B1,504,electricity,,,,,,",                                    # 6 estate B's unit
    "A1,900100,electricity,,,,,,",                                 # 7 estate B's meter
    "A1,505,gas,,,,,,",                                            # 8 malformed utility
    "A1,506,electricity,,,,abc,,",                                 # 9 malformed interval
    "=1+2,507,electricity,,,,,,",                                  # 10 formula injection
    "A1,00000700,electricity,,,,,,",                               # 11 unchanged (the same meter 700)
    "A2,701,electricity,,,,15,,",                                  # 12 update (interval 30 -> 15)
    "日本,508,electricity,,,,,,",                                   # 13 no such unit (kept exactly)
    "A1,702,electricity,,,,,,",                                    # 14 meter 702 is on A2: a move is refused
])


def test_meters_file_reports_every_row_and_commits_only_the_good_ones(session, estates):
    a, b = estates
    report = import_file(session, a, "meters", "meters.csv", METERS.encode("utf-8"))
    assert outcomes(session, report.batch) == [
        (2, "create"), (3, "reject"), (4, "reject"), (5, "create"), (6, "reject"), (7, "reject"),
        (8, "reject"), (9, "reject"), (10, "reject"), (11, "unchanged"), (12, "update"), (13, "reject"),
        (14, "reject")]
    messages = dict(report.rejected)
    assert 'found "502" also on row 4' in messages[3][0]
    assert messages[6] == [f'row 6, column unit: expected a unit of {a.name}, found "B1", which is not one of its '
                           "units (import the units first)"]
    assert "a meter of another estate" in messages[7][0]
    assert messages[8] == ['row 8, column utility: expected one of electricity, water, hot_water, solar, found "gas"']
    assert messages[9][0].startswith('row 9, column interval_minutes: expected whole minutes')
    assert '"日本"' in messages[13][0]
    assert "moving a meter is a replacement" in messages[14][0]

    commit_import(session, report.batch)
    meters = {m.serial: m for m in session.scalars(select(Meter).where(Meter.estate_id == a.id))}
    assert set(meters) == {"501", "503", "700", "701", "702"}
    assert meters["501"].interval_minutes == 30 and meters["501"].register_digits == 6
    assert meters["503"].utility == "hot_water" and meters["503"].dev_eui == "a81758fffe000001"
    assert meters["503"].bidirectional and not meters["503"].reports_on_boundaries
    assert meters["701"].interval_minutes == 15
    assert session.scalar(select(Meter.estate_id).where(Meter.serial == "900100")) == b.id


def test_the_same_file_twice_creates_nothing(session, estates):
    a, _ = estates
    data = b"unit,floor_area_m2,status\nC1,50,occupied\nC2,,\n"
    first = import_file(session, a, "units", "units.csv", data, dry_run=False)
    assert first.batch.counts["create"] == 2
    again = import_file(session, a, "units", "units-again.csv", data, dry_run=False)
    assert again.repeated and again.batch.id == first.batch.id
    assert session.scalar(select(func.count(ImportBatch.id))) == 1
    # Another file with the same rows: every row is unchanged.
    other = import_file(session, a, "units", "units.xlsx", xlsx([["unit", "floor_area_m2", "status"],
                                                               ["C1", 50, "Occupied"], ["C2", None, None]]),
                        dry_run=False)
    assert not other.repeated and other.batch.counts == {"create": 0, "update": 0, "unchanged": 2, "reject": 0}
    assert session.scalar(select(func.count(Unit.id)).where(Unit.estate_id == a.id)) == 4
    statuses = dict(session.execute(select(Unit.number, Unit.occupancy_status)).all())
    assert statuses["C1"] == "occupied" and statuses["C2"] == "vacant"
    numbers = session.scalars(select(Unit.account_number).where(Unit.number.in_(("C1", "C2")))).all()
    assert len(numbers) == 2 and all(numbers)  # imported units get account numbers like any other


def test_a_row_that_changed_since_the_preview_is_rejected_alone(session, estates):
    a, _ = estates
    report = import_file(session, a, "units", "u.csv", b"unit,status\nD1,occupied\nD2,vacant\n")
    factories.make_unit(session, a, number="D2", occupancy_status="maintenance")
    session.commit()
    commit_import(session, report.batch)
    assert outcomes(session, report.batch) == [(2, "create"), (3, "reject")]
    from app.estates.imports import report_for
    assert "changed since the preview" in report_for(session, report.batch).rejected[0][1][0]
    assert session.scalar(select(Unit.occupancy_status).where(Unit.number == "D2")) == "maintenance"
    with pytest.raises(NotCommittable):
        commit_import(session, report.batch)


def xlsx(rows) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    for row in rows:
        book.active.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("data", [
    "\ufeffunit,floor_area_m2,status\r\nMaison Zoë,12.5,vacant\r\n".encode("utf-8"),      # UTF-8 with BOM
    "unit,floor_area_m2,status\nMaison Zoë,12.5,vacant\n".encode("cp1252"),               # Windows-1252
    "unit;floor_area_m2;status\n\"Maison Zoë\";12,5;vacant\n".encode("utf-8"),            # semicolons, comma decimal
    "unit,floor_area_m2,status\nMaison Zoë,12.5,vacant\n,,\n,,\n\n".encode("utf-8"),      # Excel's trailing blank rows
    xlsx([["Unit", "Floor_Area_m2", "Status"], ["Maison Zoë", 12.5, "vacant"], [None, None, None]]),
], ids=["utf8-bom", "cp1252", "semicolon", "trailing-blank-rows", "xlsx"])
def test_accepted_formats_read_the_same_row(data):
    table = read_table(data, "units.file")
    assert table.rows == [(2, {"unit": "Maison Zoë", "floor_area_m2": table.rows[0][1]["floor_area_m2"],
                               "status": "vacant"})]
    assert table.rows[0][1]["floor_area_m2"] in ("12.5", "12,5")


@pytest.mark.parametrize("data,name", [
    (b"%PDF-1.4\n\x00\x01binary", "statement.pdf"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "photo.png"),
    (b"PK\x03\x04not really a workbook", "units.xlsx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "old.xls"),
    (b"", "empty.csv"),
    (b"\n\n,,\n", "blank.csv"),
])
def test_unsupported_files_are_refused_with_one_message(session, estates, data, name):
    a, _ = estates
    with pytest.raises(UnreadableImport) as refused:
        import_file(session, a, "units", name, data)
    assert set(refused.value.errors) == {"file"}
    assert session.scalar(select(func.count(ImportBatch.id))) == 0


def test_missing_columns_are_refused_with_their_list(session, estates):
    a, _ = estates
    with pytest.raises(MissingColumns) as refused:
        import_file(session, a, "meters", "m.csv", b"unit,utility,colour\nA1,water,red\n")
    assert refused.value.missing == ["serial"]
    assert "no serial column" in refused.value.errors["file"]


def test_opening_balances_are_posted_once(session, estates):
    from app.models import Account, Wallet

    a, _ = estates
    data = b"unit,utility,amount\nA1,electricity,-75.50\nA2,water,120\nA2,electricity,0\nZZ,water,5\nA1,water,1.234\n"
    report = import_file(session, a, "opening_balances", "opening.csv", data, dry_run=False)
    assert outcomes(session, report.batch) == [(2, "create"), (3, "create"), (4, "unchanged"), (5, "reject"),
                                               (6, "reject")]
    assert "ZAR amounts have" not in dict(report.rejected)[6][0]  # the message names the cell, not a traceback
    balances = dict(session.execute(
        select(Unit.number + ":" + Account.utility, Account.balance).join(Wallet, Wallet.unit_id == Unit.id)
        .join(Account, Account.wallet_id == Wallet.id)).all())
    assert balances == {"A1:electricity": Decimal("-75.5"), "A2:water": Decimal("120")}
    keys = set(session.scalars(select(LedgerTransaction.idempotency_key)))
    assert len([k for k in keys if k.startswith("opening:")]) == 2
    # A second import (another file, same rows) posts nothing; a different amount is refused.
    again = import_file(session, a, "opening_balances", "opening2.csv",
                        b"unit,utility,amount\nA1,electricity,-75.50\nA2,water,99\n", dry_run=False)
    assert outcomes(session, again.batch) == [(2, "unchanged"), (3, "reject")]
    assert "posted once" in dict(again.rejected)[3][0]
    assert session.scalar(select(func.count(LedgerTransaction.id))) == 2


def test_cli_previews_with_exit_codes_and_commits(cli_runner, session, estates, tmp_path):
    a, _ = estates
    good = tmp_path / "units.csv"
    good.write_text("unit,floor_area_m2,status\nE1,40,occupied\n", encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text("unit,floor_area_m2,status\nE2,40,occupied\nE3,lots,occupied\n", encoding="utf-8")

    preview = cli_runner.invoke(args=["import", "units", str(bad), "--estate", a.code])
    assert preview.exit_code == 1, preview.output
    assert "1 to create, 0 to update, 0 unchanged, 1 rejected" in preview.output
    assert 'row 3, column floor_area_m2: expected a floor area in m² like 84.5 (at most 2 decimals), found "lots"' \
        in preview.output
    clean = cli_runner.invoke(args=["import", "units", str(good), "--estate", a.code])
    assert clean.exit_code == 0, clean.output
    session.expire_all()
    assert session.scalar(select(func.count(Unit.id)).where(Unit.number.in_(("E1", "E2")))) == 0

    applied = cli_runner.invoke(args=["import", "units", str(bad), "--estate", a.code, "--commit"])
    assert applied.exit_code == 1 and "1 created" in applied.output
    session.expire_all()
    assert session.scalar(select(func.count(Unit.id)).where(Unit.number == "E2")) == 1
    refused = cli_runner.invoke(args=["import", "units", str(tmp_path), "--estate", a.code])
    assert refused.exit_code != 0
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01\x02")
    assert cli_runner.invoke(args=["import", "units", str(junk), "--estate", a.code]).exit_code == 2
    assert cli_runner.invoke(args=["import", "tenants", str(good), "--estate", a.code]).exit_code == 2


def test_a_file_over_the_inline_limit_is_staged_and_committed_by_jobs(session, estates):
    from app.models import JobRun

    a, _ = estates
    lines = ["unit,floor_area_m2,status"] + [f"J{i},{i % 90 + 10},vacant" for i in range(INLINE_ROWS + 20)]
    lines.append("J3,1,vacant")  # a duplicate: rows 5 and the last are rejected
    report = start_import(session, a, "units", "big.csv", "\n".join(lines).encode(), user_id=None)
    assert report.run is not None and report.run.kind == "import_stage" and report.run.status == "done"
    session.expire_all()
    batch = session.get(ImportBatch, report.batch.id)
    assert batch.status == "staged" and batch.counts == {"create": INLINE_ROWS + 19, "update": 0, "unchanged": 0,
                                                         "reject": 2}
    committed = start_commit(session, batch)
    assert committed.run is not None and committed.run.kind == "import_commit" and committed.run.status == "done"
    session.expire_all()
    assert session.get(ImportBatch, batch.id).status == "committed"
    assert session.scalar(select(func.count(Unit.id)).where(Unit.number.like("J%"))) == INLINE_ROWS + 19
    assert session.scalar(select(func.count(JobRun.id))) == 2


def test_a_commit_job_that_fails_puts_the_batch_back_to_staged_with_the_reason(session, estates, monkeypatch):
    """A commit job that dies left the batch "committing" forever, with no way to try again."""
    from app.estates import imports

    a, _ = estates
    lines = ["unit,floor_area_m2,status"] + [f"K{i},{i % 90 + 10},vacant" for i in range(INLINE_ROWS + 5)]
    report = start_import(session, a, "units", "big.csv", "\n".join(lines).encode(), user_id=None)
    batch_id = report.batch.id
    real = imports.commit_import

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(imports, "commit_import", broken)
    failed = start_commit(session, session.get(ImportBatch, batch_id))
    assert failed.run.status == "failed"
    session.expire_all()
    batch = session.get(ImportBatch, batch_id)
    assert batch.status == "staged" and "The commit failed and nothing was applied" in batch.message
    assert session.scalar(select(func.count(Unit.id)).where(Unit.number.like("K%"))) == 0
    monkeypatch.setattr(imports, "commit_import", real)
    again = start_commit(session, batch)
    assert again.run.status == "done"
    session.expire_all()
    batch = session.get(ImportBatch, batch_id)
    assert batch.status == "committed" and batch.message is None
    assert session.scalar(select(func.count(Unit.id)).where(Unit.number.like("K%"))) == INLINE_ROWS + 5


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=400),
                 st.lists(st.lists(st.text(max_size=12), max_size=6), max_size=8).map(
                     lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8")),
                 st.text(max_size=300).map(lambda t: ("unit,status\n" + t).encode("utf-8", "surrogatepass"))))
def test_the_file_reader_only_ever_refuses(data):
    try:
        table = read_table(data, "fuzz.csv")
    except UnreadableFile as refusal:
        assert str(refusal)
        return
    assert all(isinstance(cell, str) for _, row in table.rows for cell in row.values())


def test_rows_the_ledger_refuses_at_commit_are_rejected_and_the_batch_still_completes(session, estates):
    from app.models import utcnow
    from app.periods import period_of

    a, _ = estates
    report = import_file(session, a, "opening_balances", "o.csv", b"unit,utility,amount\nA1,electricity,10\nA2,water,5\n")
    factories.make_period(session, a, period_of(utcnow(), a.timezone), "locked")
    session.commit()
    commit_import(session, report.batch)
    assert outcomes(session, report.batch) == [(2, "reject"), (3, "reject")]
    from app.estates.imports import report_for
    assert all("refused it at commit" in messages[0] for _, messages in report_for(session, report.batch).rejected)
    assert report.batch.status == "committed"
    assert session.scalar(select(func.count(LedgerTransaction.id))) == 0
