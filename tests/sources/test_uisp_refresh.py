"""UISP refresh against the emulator: counts, faults, no partial rows, idempotence, removals."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from app.jobs import enqueue
from app.models import JobRun
from app.models.sources import UispClient, UispInvoice, UispPayment, UispService
from app.sources.uisp import UispError, analyse_payments, refresh_uisp
from tests import factories

MODELS = (UispClient, UispService, UispInvoice, UispPayment)


def count(session, model, **where) -> int:
    query = select(func.count()).select_from(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return session.scalar(query)


def snapshot(session) -> dict:
    session.expire_all()
    return {model.__tablename__: sorted(
        (row.uisp_id, row.changed_at, row.removed_at) for row in session.scalars(select(model)))
        for model in MODELS}


def rows_of(emulator, kind: str, client_ids) -> list[dict]:
    return [r for r in getattr(emulator.data, kind).values() if r["clientId"] in client_ids]


def test_refresh_with_injected_faults_counts_exactly_and_writes_no_partial_rows(session, uisp):
    emulator, api = uisp(size=30, error_every=5, malformed_client_ids={4, 11})
    report = refresh_uisp(session, api)
    assert (report.clients, report.refreshed, report.failed) == (30, 28, 2)
    assert sorted(e.split(":")[0] for e in report.errors) == ["client 11", "client 4"]
    assert "amountToPay" in report.errors[0]
    good = set(range(1, 31)) - {4, 11}
    assert count(session, UispClient) == 28
    assert set(session.scalars(select(UispClient.uisp_id))) == good
    for model, kind in ((UispService, "services"), (UispInvoice, "invoices"), (UispPayment, "payments")):
        stored = set(session.scalars(select(model.uisp_id)))
        assert stored == {r["id"] for r in rows_of(emulator, kind, good)}, kind
        assert not session.scalar(select(func.count()).select_from(model)
                                  .where(model.client_uisp_id.in_([4, 11])))
    assert emulator.calls > api.requests_made  # the 503s were retried


def test_second_refresh_changes_nothing(session, uisp):
    emulator, api = uisp(size=20)
    first = refresh_uisp(session, api)
    assert first.written > 20 and first.failed == 0
    before = snapshot(session)
    second = refresh_uisp(session, api)
    assert (second.written, second.removed, second.refreshed) == (0, 0, 20)
    assert snapshot(session) == before


def test_timeouts_are_retried_and_the_refresh_completes(session, uisp):
    emulator, api = uisp(size=12, page_size=5, timeout=0.3, timeout_every=3, stall_seconds=1.0)
    report = refresh_uisp(session, api)
    assert (report.refreshed, report.failed) == (12, 0)
    assert count(session, UispClient) == 12


def test_uisp_down_fails_the_refresh_and_writes_nothing(session, uisp):
    emulator, api = uisp(size=5, error_every=1)
    with pytest.raises(UispError, match="503"):
        refresh_uisp(session, api)
    session.rollback()
    assert count(session, UispClient) == 0


def test_wrong_app_key_is_an_error_not_an_empty_copy(session, uisp):
    emulator, api = uisp(size=5)
    emulator.app_key = "another"
    with pytest.raises(UispError, match="401"):
        refresh_uisp(session, api)


@pytest.mark.parametrize("size", [21, 22])
def test_paging_reads_every_row_and_lists_in_bulk(session, uisp, size):
    emulator, api = uisp(size=size, page_size=7)
    report = refresh_uisp(session, api)
    assert count(session, UispClient) == size
    assert count(session, UispInvoice) == len(emulator.data.invoices)
    pages = sum(len(getattr(emulator.data, kind)) // 7 + 1
                for kind in ("clients", "services", "invoices", "payments"))
    assert report.requests == pages
    assert report.requests < 5 * size / 2  # the per-customer way takes 5 calls per customer


def test_rows_removed_at_the_source_are_marked_not_deleted_and_come_back(session, uisp):
    emulator, api = uisp(size=10)
    refresh_uisp(session, api)
    gone_client = emulator.data.clients.pop(5)
    gone_invoice_id = next(i for i, r in emulator.data.invoices.items() if r["clientId"] == 6)
    gone_invoice = emulator.data.invoices.pop(gone_invoice_id)
    rows_of_5 = sum(len(rows_of(emulator, kind, {5})) for kind in ("services", "invoices", "payments"))
    report = refresh_uisp(session, api)
    assert report.removed == 1 + rows_of_5 + 1  # the client with its rows, and one invoice
    session.expire_all()
    assert session.scalar(select(UispClient).where(UispClient.uisp_id == 5)).removed_at is not None
    assert count(session, UispInvoice, client_uisp_id=5, removed_at=None) == 0
    assert session.scalar(select(UispInvoice).where(UispInvoice.uisp_id == gone_invoice_id)).removed_at
    assert count(session, UispClient) == 10 and count(session, UispClient, removed_at=None) == 9
    emulator.data.clients[5] = gone_client
    emulator.data.invoices[gone_invoice_id] = gone_invoice
    back = refresh_uisp(session, api)
    assert report.written == 1  # client 6: its payment pattern lost an invoice
    assert back.written == report.removed + 1  # every row back, and client 6's pattern
    session.expire_all()
    assert not session.scalars(select(UispInvoice).where(UispInvoice.removed_at.is_not(None))).all()
    assert not session.scalars(select(UispClient).where(UispClient.removed_at.is_not(None))).all()


def test_a_failing_client_keeps_its_previous_rows(session, uisp):
    emulator, api = uisp(size=6)
    refresh_uisp(session, api)
    invoices_of_3 = count(session, UispInvoice, client_uisp_id=3)
    emulator.malformed_client_ids = {3}
    report = refresh_uisp(session, api)
    assert (report.refreshed, report.failed, report.removed) == (5, 1, 0)
    assert count(session, UispInvoice, client_uisp_id=3, removed_at=None) == invoices_of_3


def test_paid_is_decided_by_amount_to_pay_not_status(session, uisp):
    emulator, api = uisp(size=3)
    first, second = [r for r in emulator.data.invoices.values() if r["clientId"] == 1][:2]
    first.update(status=3, amountToPay=100.0)  # says paid, still owes
    second.update(status=1, amountToPay=0)       # says unpaid, owes nothing
    refresh_uisp(session, api)
    paid = dict(session.execute(select(UispInvoice.uisp_id, UispInvoice.paid)).all())
    assert paid[first["id"]] is False and paid[second["id"]] is True


def test_clients_link_to_estates_by_the_estate_attribute(session, uisp):
    acacia = factories.make_estate(session, code="ACACIA")
    session.commit()
    emulator, api = uisp(size=6)
    emulator.data.clients[3]["attributes"] = []
    refresh_uisp(session, api)
    linked = dict(session.execute(select(UispClient.uisp_id, UispClient.estate_id)).all())
    assert linked == {1: None, 2: acacia.id, 3: None, 4: acacia.id, 5: None, 6: acacia.id}


def test_vip_grace_day_and_suspended_services_are_copied(session, uisp):
    emulator, api = uisp(size=30)
    refresh_uisp(session, api)
    client = session.scalar(select(UispClient).where(UispClient.uisp_id == 30))
    assert client.is_vip and client.grace_payment_day == 3
    suspended = {r["id"] for r in emulator.data.services.values() if r["status"] == 3}
    assert suspended and set(session.scalars(select(UispService.uisp_id)
                                             .where(UispService.status == 3))) == suspended


def test_refresh_of_one_estate_touches_only_its_clients(session, uisp):
    acacia = factories.make_estate(session, code="ACACIA")
    session.commit()
    emulator, api = uisp(size=10)
    report = refresh_uisp(session, api, f"estate:{acacia.id}")
    assert report.refreshed == 5
    assert set(session.scalars(select(UispClient.uisp_id))) == {2, 4, 6, 8, 10}
    assert set(session.scalars(select(UispInvoice.client_uisp_id))) == {2, 4, 6, 8, 10}


def test_refresh_of_one_customer_uses_four_calls_and_marks_a_deleted_one(session, uisp):
    emulator, api = uisp(size=10)
    report = refresh_uisp(session, api, "client:7")
    assert (report.refreshed, report.requests) == (1, 4)
    assert set(session.scalars(select(UispClient.uisp_id))) == {7}
    del emulator.data.clients[7]
    gone = refresh_uisp(session, api, "client:7")
    assert gone.removed >= 1
    session.expire_all()
    assert session.scalar(select(UispClient.removed_at).where(UispClient.uisp_id == 7)) is not None


def test_refresh_job_reports_progress_and_result(session, uisp, app, monkeypatch):
    emulator, api = uisp(size=8, malformed_client_ids={2})
    monkeypatch.setitem(app.config, "UISP_URL", api.base_url)
    monkeypatch.setitem(app.config, "UISP_BACKOFF", 0.01)
    run = enqueue("uisp_refresh", "all", target="uisp:all")
    run = session.get(JobRun, run.id, populate_existing=True)
    assert run.status == "done" and (run.done, run.total) == (8, 8)
    assert "7 of 8 clients refreshed, 1 failed" in run.result
    assert run.errors and run.errors[0].startswith("client 2:")


# --- payment-pattern analysis ----------------------------------------------------------

TODAY = date(2026, 6, 30)


def invoice(uisp_id: int, due: date, paid: bool, status: int = 3, total: str = "100") -> dict:
    return {"uisp_id": uisp_id, "due_date": due, "paid": paid, "status": status,
            "total": Decimal(total)}


def payment(invoice_id: int, on: date, amount: str = "100") -> dict:
    return {"amount": Decimal(amount), "created_at": datetime(on.year, on.month, on.day, 9, tzinfo=UTC),
            "covers": [{"invoice_id": invoice_id, "amount": amount}]}


def test_analysis_counts_on_time_late_and_missed():
    due = date(2026, 5, 1)
    pattern = analyse_payments(
        [invoice(1, due, True), invoice(2, due, True), invoice(3, due, False, status=1),
         invoice(4, date(2026, 7, 15), False, status=1),  # not yet due: not missed
         invoice(5, due, False, status=4)],               # void: ignored
        [payment(1, due - timedelta(days=2), "80"), payment(2, due + timedelta(days=10), "120")],
        TODAY)
    assert (pattern.on_time, pattern.late, pattern.missed) == (1, 1, 1)
    assert pattern.average_days_late == Decimal("10.0")
    assert pattern.average_payment == Decimal("100.00")
    assert pattern.last_payment_at.date() == due + timedelta(days=10)
    assert not pattern.risky


@pytest.mark.parametrize("missed,late,days,risky", [
    (2, 0, 0, True), (1, 0, 0, False), (0, 3, 5, True), (0, 2, 5, False),
    (0, 1, 31, True), (0, 1, 30, False)])
def test_risky_thresholds(missed, late, days, risky):
    invoices, payments = [], []
    for n in range(missed):
        invoices.append(invoice(100 + n, date(2026, 1, 1), False, status=1))
    for n in range(late):
        due = date(2026, 2, 1)
        invoices.append(invoice(200 + n, due, True))
        payments.append(payment(200 + n, due + timedelta(days=days)))
    assert analyse_payments(invoices, payments, TODAY).risky is risky


def test_a_client_moved_to_another_estate_is_not_marked_removed(session, uisp):
    acacia = factories.make_estate(session, code="ACACIA")
    session.commit()
    emulator, api = uisp(size=4)
    refresh_uisp(session, api, f"estate:{acacia.id}")
    emulator.data.clients[2]["attributes"] = [{"key": "estate", "value": "BAOBAB"}]
    report = refresh_uisp(session, api, f"estate:{acacia.id}")
    assert report.removed == 0
    session.expire_all()
    assert session.scalar(select(UispClient.removed_at).where(UispClient.uisp_id == 2)) is None
