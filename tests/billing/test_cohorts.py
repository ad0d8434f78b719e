"""Debt cohorts (A5): fiscal-year labels, ranking by owed or usage, idempotent monthly snapshots, an
external billing database read in batches of 100, the cohort page (scope, chart, exports) and the CLI."""
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import make_url

from app.billing.cohorts import (CohortError, fiscal_year_of, fiscal_year_start, parse_fiscal_year, parse_month,
                                 set_external_source, snapshot_month, take_cohort)
from app.models import Account, User
from app.models.cohorts import CohortMember, CohortSnapshot, DebtCohort
from app.settings import put_setting
from tests.factories import make_estate, make_system_accounts, make_topup, make_unit, make_user, make_wallet
from tests.helpers import sign_in

NOW = datetime(2026, 6, 15, 10, tzinfo=UTC)  # FY2027 of a March start; its cohort day is 31 March 2026
BEFORE = datetime(2026, 3, 10, 10, tzinfo=UTC)  # before the cohort day
APRIL = datetime(2026, 4, 12, 10, tzinfo=UTC)


@pytest.mark.parametrize(("start_month", "day", "label"), [
    (9, date(2026, 8, 31), 2026), (9, date(2026, 9, 1), 2027), (9, date(2027, 8, 31), 2027),
    (10, date(2026, 9, 30), 2026), (10, date(2026, 10, 1), 2027), (10, date(2027, 9, 30), 2027),
    (12, date(2026, 11, 30), 2026), (12, date(2026, 12, 1), 2027), (12, date(2027, 11, 30), 2027),
    (1, date(2026, 12, 31), 2026), (1, date(2027, 1, 1), 2027), (1, date(2027, 12, 31), 2027),
])
def test_fiscal_year_is_named_after_the_year_it_ends(start_month, day, label):
    assert fiscal_year_of(day, start_month) == label
    start = fiscal_year_start(label, start_month)
    assert start.month == start_month and fiscal_year_of(start, start_month) == label
    assert start <= day


def _debtors(session, owed_used: dict[str, tuple[str, str]]):
    """An estate with one unit per entry: (what it owes, what it was billed in the year) before the cohort day."""
    estate = make_estate(session, fiscal_year_start_month=3)
    system = make_system_accounts(session, estate)
    units = {}
    for number, (owed, used) in owed_used.items():
        unit = make_unit(session, estate, number=number)
        unit.account_number = f"ACC-{number}"
        wallet = make_wallet(session, unit)
        pocket = session.scalar(select(Account).where(Account.wallet_id == wallet.id,
                                                      Account.utility == "electricity"))
        paid = Decimal(used) - Decimal(owed)
        if paid:
            make_topup(session, pocket, paid, clearing=system.clearing, occurred_at=BEFORE)
        make_topup(session, system.revenue["electricity"], used, clearing=pocket, kind="consumption",
                   occurred_at=BEFORE)
        units[number] = (unit, pocket)
    session.commit()
    return estate, system, units


def _members(session, estate) -> list[str]:
    from app.models import Unit

    return list(session.scalars(select(Unit.number).join(CohortMember, CohortMember.unit_id == Unit.id)
                                .where(CohortMember.estate_id == estate.id).order_by(CohortMember.rank)))


def test_cohort_ranks_debtors_by_owed_or_by_usage_and_a_retake_keeps_it(session):
    estate, _, _ = _debtors(session, {"A": ("300", "300"), "B": ("100", "600"), "C": ("50", "400"),
                                      "D": ("0", "900")})  # D used most but owes nothing: not a debtor
    put_setting(session, "cohort_size", 2, estate.id)
    report = take_cohort(session, estate, now=NOW)
    assert (report.cohort.fiscal_year, report.cohort.taken_on, report.added) == (2027, date(2026, 3, 31), 2)
    assert _members(session, estate) == ["A", "B"]
    again = take_cohort(session, estate, 2027, now=NOW)
    assert (again.added, again.removed, again.unchanged) == (0, 0, 2)
    put_setting(session, "cohort_rank", "usage", estate.id)
    by_usage = take_cohort(session, estate, 2027, now=NOW)
    assert _members(session, estate) == ["B", "C"] and by_usage.removed == 1
    assert session.scalar(select(func.count()).select_from(DebtCohort)) == 1
    [member] = session.scalars(select(CohortMember).where(CohortMember.rank == 1)).all()
    assert (member.owed, member.usage) == (Decimal("100.00"), Decimal("600.00"))


def test_a_cohort_is_not_taken_before_its_day(session):
    estate, _, _ = _debtors(session, {"A": ("300", "310")})
    with pytest.raises(CohortError, match="taken on 2026-03-31"):
        take_cohort(session, estate, now=datetime(2026, 3, 20, tzinfo=UTC))
    with pytest.raises(CohortError, match="FY2028"):
        take_cohort(session, estate, 2028, now=NOW)


def test_the_same_snapshot_twice_changes_nothing_and_a_later_payment_updates_one_row(session):
    estate, system, units = _debtors(session, {"A": ("300", "310"), "B": ("100", "600")})
    take_cohort(session, estate, now=NOW)
    _, pocket_a = units["A"]
    make_topup(session, pocket_a, "120", clearing=system.clearing, occurred_at=APRIL)
    make_topup(session, system.revenue["electricity"], "20", clearing=pocket_a, kind="consumption", occurred_at=APRIL)
    session.commit()
    first = snapshot_month(session, estate, "2026-04", now=NOW)
    rows = {s.unit_id: (s.balance, s.debt, s.consumption, s.payments, s.taken_at)
            for s in session.scalars(select(CohortSnapshot))}
    second = snapshot_month(session, estate, "2026-04", now=datetime(2026, 6, 16, tzinfo=UTC))
    assert (first.inserted, first.updated, first.unchanged) == (2, 0, 0)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2)
    session.expire_all()
    assert {s.unit_id: (s.balance, s.debt, s.consumption, s.payments, s.taken_at)
            for s in session.scalars(select(CohortSnapshot))} == rows
    unit_a = units["A"][0]
    assert rows[unit_a.id][:4] == (Decimal("-200"), Decimal("200"), Decimal("20"), Decimal("120"))
    # A payment posted late, dated in April: the rerun updates A's row only.
    make_topup(session, pocket_a, "50", clearing=system.clearing, occurred_at=datetime(2026, 4, 30, 20, tzinfo=UTC))
    session.commit()
    third = snapshot_month(session, estate, "2026-04", now=NOW)
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 1)
    assert session.scalar(select(func.count()).select_from(CohortSnapshot)) == 2


def test_snapshot_needs_the_cohort_and_a_started_month(session):
    estate, _, _ = _debtors(session, {"A": ("300", "310")})
    with pytest.raises(CohortError, match="no FY2027 cohort"):
        snapshot_month(session, estate, "2026-04", now=NOW)
    take_cohort(session, estate, now=NOW)
    with pytest.raises(CohortError, match="not started"):
        snapshot_month(session, estate, "2026-07", now=NOW)
    with pytest.raises(CohortError, match="YYYY-MM"):
        snapshot_month(session, estate, "April", now=NOW)


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=12))
def test_month_and_fiscal_year_parsing_refuses_cleanly(typed):
    for parse in (parse_month, parse_fiscal_year):
        try:
            parse(typed)
        except CohortError:
            pass


# --- the external billing database ----------------------------------------------------------

@pytest.fixture
def external_db(app):
    """A second PostgreSQL database standing in for the external billing system, dropped afterwards."""
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "postgresql":
        pytest.skip("needs PostgreSQL")
    name = f"{url.database}_ext"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    external = url.set(database=name)
    try:
        yield external.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_an_external_cohort_of_250_reads_in_3_batched_queries(session, external_db):
    estate = make_estate(session, fiscal_year_start_month=3)
    for n in range(250):
        unit = make_unit(session, estate, number=f"U{n:03d}")
        unit.account_number = f"X{n:04d}"
    session.commit()
    engine = create_engine(external_db)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE bills (account text, month date, balance numeric, debt numeric, "
                                "consumption numeric, payments numeric)"))
        for month in (date(2026, 3, 1), date(2026, 4, 1)):
            connection.execute(text("INSERT INTO bills SELECT 'X' || lpad(n::text, 4, '0'), :month, -n - 1, n + 1, 2 * n, "
                                    "CASE WHEN :month > date '2026-03-01' THEN 1 ELSE 0 END "
                                    "FROM generate_series(0, 249) n"), {"month": month})
    engine.dispose()
    query = ("SELECT account, balance, debt, consumption, payments FROM bills "
             "WHERE month = :month AND account IN :accounts")
    with pytest.raises(CohortError, match="accounts"):
        set_external_source(session, estate, external_db, "SELECT * FROM bills")
    set_external_source(session, estate, external_db, query)
    put_setting(session, "cohort_size", 250, estate.id)
    session.commit()
    executed = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if conn.engine.url.database.endswith("_ext"):
            executed.append(statement)

    event.listen(type(session.get_bind()), "before_cursor_execute", count)
    try:
        report = take_cohort(session, estate, now=NOW)
        assert len([s for s in executed if "FROM bills" in s]) == 3
        executed.clear()
        snap = snapshot_month(session, estate, "2026-04", now=NOW)
        assert len([s for s in executed if "FROM bills" in s]) == 3
    finally:
        event.remove(type(session.get_bind()), "before_cursor_execute", count)
    assert report.cohort.source == "external" and report.members == 250
    assert _members(session, estate)[:3] == ["U249", "U248", "U247"]
    assert (snap.inserted, snap.unchanged) == (250, 0)
    assert session.scalar(select(func.sum(CohortSnapshot.payments))) == Decimal("250")
    assert session.scalar(select(func.sum(CohortSnapshot.debt))) == Decimal(250 * 251 // 2)


def test_an_unreachable_external_database_is_a_clear_error(session):
    estate, _, _ = _debtors(session, {"A": ("300", "310")})
    set_external_source(session, estate, "postgresql+psycopg://nobody@127.0.0.1:1/none",
                        "SELECT account, balance, debt, consumption, payments FROM b WHERE account IN :accounts")
    with pytest.raises(CohortError, match="refused"):
        take_cohort(session, estate, now=NOW)


# --- the page, its scope and the CLI ----------------------------------------------------------

def _login(app, user):
    from flask import g

    from app.extensions import limiter

    limiter.reset()
    g.pop("csrf_token", None)
    client = app.test_client()
    assert sign_in(client, user.email).status_code == 302
    return client


def test_the_cohort_page_shows_progress_with_exports_and_is_404_to_another_estates_agent(app, session):
    estate, system, units = _debtors(session, {"A": ("300", "310"), "B": ("100", "600")})
    take_cohort(session, estate, now=NOW)
    make_topup(session, units["A"][1], "150", clearing=system.clearing, occurred_at=APRIL)
    session.commit()
    snapshot_month(session, estate, "2026-04", now=NOW)
    agent = make_user(session, "agent", estate=estate)
    other = make_user(session, "agent", estate=make_estate(session))
    session.commit()
    client = _login(app, agent)
    page = client.get(f"/admin/estates/{estate.id}/cohorts").get_data(as_text=True)
    assert "FY2027" in page and 'data-chart="chart-cohort"' in page and "Apr 2026" in page
    assert "37.5 %" in page  # 150 collected of the 400 owed when taken
    csv = client.get(f"/admin/estates/{estate.id}/cohorts?fy=2027&format=csv&table=months").get_data(as_text=True)
    assert "2026-04" in csv and "150.00" in csv
    members = client.get(f"/admin/estates/{estate.id}/cohorts?fy=FY2027&format=csv&table=members").get_data(as_text=True)
    assert "ACC-A" in members.splitlines()[1]
    assert client.get(f"/admin/estates/{estate.id}/cohorts?format=pdf").data[:4] == b"%PDF"
    assert client.get(f"/admin/estates/{estate.id}/cohorts?fy=2031").status_code == 404
    assert client.get(f"/admin/estates/{estate.id}/cohorts?fy=soon").status_code == 400
    outsider = _login(app, other)
    assert outsider.get(f"/admin/estates/{estate.id}/cohorts").status_code == 404
    assert outsider.get(f"/admin/estates/{estate.id}/cohorts?format=csv").status_code == 404


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=20), st.sampled_from(["", "csv", "pdf", "xls"]), st.sampled_from(["", "members", "x"]))
def test_the_cohort_page_never_fails_on_odd_parameters(app, session, fy, fmt, table):
    from app.extensions import limiter

    staff = session.scalar(select(User).where(User.email == "cohort-fuzz@example.org"))
    if staff is None:
        staff = make_user(session, "staff", email="cohort-fuzz@example.org")
        session.commit()
    estate = session.scalar(select(DebtCohort.estate_id)) or make_estate(session).id
    session.commit()
    limiter.reset()
    client = _login(app, staff)
    answer = client.get(f"/admin/estates/{estate}/cohorts", query_string={"fy": fy, "format": fmt, "table": table})
    assert answer.status_code in (200, 400, 404)


def test_cli_init_and_snapshot(app, session, cli_runner, monkeypatch):
    import app.billing.cohorts as cohorts_module

    estate, _, _ = _debtors(session, {"A": ("300", "310")})
    monkeypatch.setattr(cohorts_module, "utcnow", lambda: NOW)
    done = cli_runner.invoke(args=["cohorts", "init", "--estate", estate.code, "--fiscal-year", "FY2027"])
    assert done.exit_code == 0, done.output
    assert "FY2027: 1 members" in done.output
    shot = cli_runner.invoke(args=["cohorts", "snapshot", "--estate", estate.code, "--month", "2026-04"])
    assert shot.exit_code == 0 and "1 new" in shot.output
    again = cli_runner.invoke(args=["cohorts", "snapshot", "--estate", estate.code, "--month", "2026-04"])
    assert "0 new, 0 updated, 1 unchanged" in again.output
    bad = cli_runner.invoke(args=["cohorts", "snapshot", "--estate", estate.code, "--month", "13/2026"])
    assert bad.exit_code != 0 and "YYYY-MM" in bad.output and "Traceback" not in bad.output
    assert cli_runner.invoke(args=["cohorts", "init", "--estate", "NOPE"]).exit_code != 0


def test_the_external_sources_password_is_never_audited(session):
    from app.models.operations import AuditLog

    estate = make_estate(session)
    session.commit()
    set_external_source(session, estate, "oracle+oracledb://billing:s3cret@db.example.org:1521/?service_name=BILL",
                        "SELECT account, balance, debt, consumption, payments FROM b WHERE account IN :accounts")
    rows = session.scalars(select(AuditLog)).all()
    assert rows and all("s3cret" not in str((row.old, row.new)) for row in rows)
    with pytest.raises(CohortError, match="SQLAlchemy URL"):
        set_external_source(session, estate, "not a url", "SELECT 1 WHERE account IN :accounts")


def test_an_env_url_keeps_only_the_variables_name(session, external_db, monkeypatch, cli_runner):
    from app.models import Setting
    from app.models.operations import AuditLog

    estate = make_estate(session, fiscal_year_start_month=3)
    for n in range(3):
        make_unit(session, estate, number=f"E{n}")
    session.commit()
    engine = create_engine(external_db)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE b AS SELECT 'E' || n AS account, -n - 1 AS balance, n + 1 AS debt, "
                                "0 AS consumption, 0 AS payments FROM generate_series(0, 2) n"))
    engine.dispose()
    query = "SELECT account, balance, debt, consumption, payments FROM b WHERE account IN :accounts"
    with pytest.raises(CohortError, match="environment variable"):
        set_external_source(session, estate, "env:not a name", query)
    result = cli_runner.invoke(args=["cohorts", "source", "--estate", estate.code, "--url", "env:MW_TEST_BILLING_URL",
                                     "--query", query])
    assert result.exit_code == 0 and "MW_TEST_BILLING_URL is not set" in result.output
    stored = session.scalar(select(Setting.value).where(Setting.key == "cohort_source", Setting.estate_id == estate.id))
    assert stored["url"] == "env:MW_TEST_BILLING_URL"
    with pytest.raises(CohortError, match="MW_TEST_BILLING_URL, which is not set"):
        take_cohort(session, estate, now=NOW)
    session.rollback()
    monkeypatch.setenv("MW_TEST_BILLING_URL", external_db)
    report = take_cohort(session, estate, now=NOW)
    assert report.cohort.source == "external" and _members(session, estate) == ["E2", "E1", "E0"]
    audits = session.scalars(select(AuditLog).where(AuditLog.action == "cohort.source")).all()
    assert audits and all("env:MW_TEST_BILLING_URL" in str(row.new) for row in audits)
