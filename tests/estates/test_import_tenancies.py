"""Bulk onboarding by CSV (A3): the `tenancies` import kind does what the move-in page does, row by row."""
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.estates.imports import ImportRefused, import_file
from app.estates.tenancies import manual_message
from app.ledger.accounts import open_wallet
from app.metering.ingest import ingest
from app.models import ImportRow, Meter, Notification, Tenancy, Unit, utcnow
from tests import factories


def test_good_rows_move_tenants_in_bad_ones_are_rejected_and_a_second_import_changes_nothing(session, cli_runner):
    estate = factories.make_estate(session, country="ZA", code="ONB")
    units = {n: factories.make_unit(session, estate, number=n, occupancy_status="vacant") for n in ("A1", "A2", "A3")}
    meter = factories.make_meter(session, units["A1"], utility="electricity")
    other = factories.make_meter(session, units["A3"], utility="electricity")
    for unit in units.values():
        open_wallet(session, unit)
    session.commit()
    ingest(session, [manual_message(m, Decimal("500"), utcnow() - timedelta(hours=1)) for m in (meter, other)])
    session.commit()
    since = (date.today() - timedelta(days=400)).isoformat()
    data = ("unit,email,full_name,phone,move_in,opening_electricity\n"
            f"A1,ana@example.com,Ana Molefe,,{since},510\n"
            f"A2,,Pule Khoza,082 555 0101,{since},\n"
            f"A3,bad@example.com,Bad Reading,,{since},7\n"
            f"Z9,zed@example.com,Nobody,,{since},\n"
            "Z8,x@example.com,No Date,,someday,\n").encode()
    report = import_file(session, estate, "tenancies", "move-ins.csv", data, dry_run=False)
    rows = session.execute(select(ImportRow.row_number, ImportRow.action).where(
        ImportRow.batch_id == report.batch.id).order_by(ImportRow.row_number)).all()
    assert [tuple(r) for r in rows] == [(2, "create"), (3, "create"), (4, "reject"), (5, "reject"), (6, "reject")]
    errors = dict(session.execute(select(ImportRow.row_number, ImportRow.errors).where(
        ImportRow.batch_id == report.batch.id)).all())
    assert "went backwards" in " ".join(errors[4])  # refused by ingest at commit, alone
    session.expire_all()
    assert [u.occupancy_status for u in session.scalars(select(Unit).order_by(Unit.number))] == [
        "occupied", "occupied", "vacant"]
    assert session.get(Meter, meter.id).last_register == Decimal("510")
    assert session.scalar(select(func.count()).select_from(Notification).where(Notification.template == "invite")) == 1
    assert session.scalar(select(Notification.channel).where(Notification.template == "move_in_welcome")) == "sms"
    again = import_file(session, estate, "tenancies", "again.csv", data.replace(b"510", b"511"), dry_run=True)
    assert (again.batch.to_create, again.batch.unchanged) == (1, 2)  # A3 is still vacant: it may be tried again
    assert session.scalar(select(func.count()).select_from(Tenancy)) == 2


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12),
                      min_size=6, max_size=6))
def test_any_row_is_previewed_as_a_create_or_a_reasoned_reject(session, cells):
    estate = factories.make_estate(session, country="ZA")
    factories.make_unit(session, estate, number="A1", occupancy_status="vacant")
    session.commit()
    line = ",".join('"' + c.replace('"', '""') + '"' for c in cells)
    try:
        report = import_file(session, estate, "tenancies", "fuzz.csv",
                             ("unit,email,full_name,phone,move_in,opening_water\n" + line + "\n").encode(), dry_run=True)
    except ImportRefused:
        session.rollback()
        return  # the whole file refused with its reason (the mechanism's own check)
    for action, errs in session.execute(select(ImportRow.action, ImportRow.errors).where(
            ImportRow.batch_id == report.batch.id)):
        assert action in ("create", "reject", "unchanged") and (action != "reject" or errs)
