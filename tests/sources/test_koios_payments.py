"""Koios payments import: recorded against units once, unmatched and malformed rows reported."""
from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.settings import put_setting
from app.jobs import enqueue
from app.models import JobRun, LedgerTransaction
from app.models.payments import Payment
from app.models.sources import KoiosPayment
from app.sources.koios_payments import import_koios_payments
from app.sources.sparkmeter import KoiosError
from tests import factories
from tests.emulators.koios import build


@pytest.fixture
def koios(serve_koios):
    """`koios(**settings)` serves a Koios emulator holding vendor payments; returns (emulator, API)."""
    def start(payments=12, unknown=2, malformed=4, **settings):
        emulator = build(2, 3, payments=payments, unknown_payments=unknown, malformed_payments=malformed)
        emulator.api_key, emulator.api_secret = "key", "secret"
        for name, value in settings.items():
            setattr(emulator, name, value)
        return emulator, serve_koios(emulator)
    return start


@pytest.fixture
def site_one(session):
    """Units with SparkMeter meters for the first emulated site's three customers (SM010001-3)."""
    kit = factories.make_estate_with_wallet(session, currency="LSL")
    units = {}
    for meter in range(1, 4):
        unit = factories.make_unit(session, kit.estate, number=f"A{meter}")
        factories.make_meter(session, unit, serial=f"SM01{meter:04d}", protocol="sparkmeter")
        units[f"C-SM01{meter:04d}"] = unit
    session.commit()
    return kit, units


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


# 12 vendor payments cycle over 6 customers: indexes 0-2 (site one) are ours, so payments
# 0,1,2,6,7,8 match; 3,4,5,9,10,11 (site two, no local meters) and 2 unknown codes do not;
# 4 rows are malformed (comma decimal, no id, unreadable time, negative amount).
def test_exact_counts_through_a_5xx_and_a_timeout_and_nothing_reaches_the_ledger(session, koios, site_one):
    emulator, api = koios(payment_faults=["503", "timeout"], stall_seconds=3)
    transactions = count(session, LedgerTransaction)
    report = import_koios_payments(session, api)
    assert emulator.listing_calls == 3  # the 503 and the timed-out request were retried
    assert (report.listed, report.imported, report.already_known, report.matched_later) == (18, 6, 0, 0)
    assert len(report.unmatched) == 8 and "kv-13 (customer C-NOBODY12)" in report.unmatched
    assert [m.split(":")[0] for m in report.malformed] == ["kv-bad-1", "row 16", "kv-bad-3", "kv-bad-4"]
    assert "not a decimal" in report.malformed[0] and "not positive" in report.malformed[3]
    assert count(session, KoiosPayment) == 14
    matched = session.scalars(select(KoiosPayment).where(KoiosPayment.unit_id.is_not(None))).all()
    _, units = site_one
    assert {(p.koios_id, p.unit_id) for p in matched} == {
        (f"kv-{n + 1}", units[f"C-SM01{n % 6 + 1:04d}"].id) for n in (0, 1, 2, 6, 7, 8)}
    assert session.scalar(select(KoiosPayment.amount).where(KoiosPayment.koios_id == "kv-2")) == Decimal("15")
    assert count(session, LedgerTransaction) == transactions  # recorded, never credited


def test_a_second_run_imports_nothing_and_still_reports_the_unmatched(session, koios, site_one):
    emulator, api = koios()
    import_koios_payments(session, api)
    again = import_koios_payments(session, api)
    assert (again.listed, again.imported, again.already_known) == (18, 0, 6)
    assert len(again.unmatched) == 8 and len(again.malformed) == 4
    assert count(session, KoiosPayment) == 14


def test_a_meter_added_later_picks_up_its_waiting_payments(session, koios, site_one):
    emulator, api = koios()
    import_koios_payments(session, api)
    kit, _ = site_one
    unit = factories.make_unit(session, kit.estate, number="B1")
    factories.make_meter(session, unit, serial="SM020001", protocol="sparkmeter")
    session.commit()
    later = import_koios_payments(session, api)
    assert (later.imported, later.matched_later, len(later.unmatched)) == (0, 2, 6)
    assert {p.koios_id for p in session.scalars(select(KoiosPayment).where(KoiosPayment.unit_id == unit.id))} \
        == {"kv-4", "kv-10"}


def test_our_own_credit_push_is_known_not_imported(session, koios, site_one):
    emulator, api = koios(payments=0, unknown=0, malformed=0)
    kit, units = site_one
    unit = units["C-SM010001"]
    ours = Payment(provider="eft", provider_ref="B-1", amount=Decimal("25"), status="credited",
                   unit_id=unit.id, estate_id=kit.estate.id)
    session.add(ours)
    session.commit()
    api.http.post(api.base_url + "/api/v1/payments", json={
        "customer_code": "C-SM010001", "amount": "25.00", "memo": "push", "external_id": f"meterwise:{ours.id}"})
    report = import_koios_payments(session, api)
    assert (report.listed, report.imported, report.already_known) == (1, 0, 1)
    row = session.scalar(select(KoiosPayment))
    assert (row.origin, row.payment_id, row.unit_id) == ("meterwise", ours.id, unit.id)


def test_codes_the_listing_does_not_know_match_by_the_estate_pattern(session, koios, site_one):
    emulator, api = koios(payments=0, unknown=0, malformed=0)
    kit, _ = site_one
    unit = factories.make_unit(session, kit.estate, number="Z9")
    factories.make_meter(session, unit, serial="LOCAL77", protocol="sparkmeter")
    put_setting(session, "sparkmeter_customer_code", "K-{unit}", kit.estate.id)
    session.commit()
    emulator.vendor_payments.append({"id": "kv-x", "customer_code": "K-Z9", "amount": "30.00",
                                     "created": "2026-11-01T10:00:00Z"})
    report = import_koios_payments(session, api)
    assert report.imported == 1
    assert session.scalar(select(KoiosPayment.unit_id).where(KoiosPayment.koios_id == "kv-x")) == unit.id


def test_koios_down_for_good_writes_nothing(session, koios, site_one):
    emulator, api = koios(payment_faults=["503"] * 10)
    with pytest.raises(KoiosError, match="payments: HTTP 503"):
        import_koios_payments(session, api)
    assert count(session, KoiosPayment) == 0


def test_the_job_reports_unmatched_and_malformed_rows_on_its_run(app, session, koios, site_one, monkeypatch):
    emulator, api = koios()
    for key, value in {"KOIOS_URL": api.base_url, "KOIOS_API_KEY": "key", "KOIOS_API_SECRET": "secret"}.items():
        monkeypatch.setitem(app.config, key, value)
    run = enqueue("koios_payments_import", target="koios:payments")
    run = session.get(JobRun, run.id, populate_existing=True)
    assert run.status == "done" and (run.done, run.total) == (18, 18)
    assert run.result == ("Koios payments: 18 listed, 6 imported, 0 already known, 0 matched now, "
                          "8 unmatched, 4 malformed")
    assert sum(e.startswith("Koios payment ") for e in run.errors) == 4
    assert [e for e in run.errors if e.startswith("unmatched: ")] == [
        "unmatched: kv-4 (customer C-SM020001), kv-5 (customer C-SM020002), kv-6 (customer C-SM020003), "
        "kv-10 (customer C-SM020001), kv-11 (customer C-SM020002) and 3 more"]
