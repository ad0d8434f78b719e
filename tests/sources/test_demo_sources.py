"""The demo against the default Koios emulator (what `make run` serves): readings bill, payments match."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from app.demo import seed
from app.models import Estate, LedgerTransaction, Meter, Reading, RoleGrant, Unit, User
from app.models.metering import DeadLetter, MeterAlert
from app.models.sources import KoiosPayment
from app.sources.koios_payments import import_koios_payments
from app.sources.sparkmeter import KoiosApi, import_koios_day
from tests.emulators import serving
from tests.emulators.koios import create_app


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def test_demo_minigrid_takes_the_default_koios_readings_and_payments(session):
    logins = {role: email for role, email, _ in seed(session, days=1)}
    # Pockets open on demand: no demo unit has a pocket for a utility it has no meter of.
    from app.models import Account, Wallet
    metered = select(Meter.id).where(Meter.unit_id == Wallet.unit_id, Meter.utility == Account.utility)
    assert session.scalars(select(Account.code).join(Wallet, Wallet.id == Account.wallet_id)
                           .where(~metered.exists())).all() == []
    emulator_app = create_app()  # the defaults `python -m tests.emulators` serves
    emulator = emulator_app.extensions["koios"]
    estate = session.scalar(select(Estate).where(Estate.code == "TPM"))
    meters = session.scalars(select(Meter).where(Meter.estate_id == estate.id)).all()
    served = {serial for site in emulator.sites for serial in emulator.meters[site]}
    assert {m.serial for m in meters} == served
    assert all(m.protocol == "sparkmeter" and m.unit_id and m.interval_minutes == 60 for m in meters)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    start_of_yesterday = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=UTC)
    # Seeded history stops where the import begins, so imported registers continue it.
    assert all(m.last_reading_at == start_of_yesterday for m in meters)
    ledger_before = count(session, LedgerTransaction)
    # The seed's reconciled days cover its gateway payments and, on the mini-grid, its pushes to Koios.
    from app.models.settlement import ReconciliationResult
    checks = {}
    for code, check, ok, checked in session.execute(
            select(Estate.code, ReconciliationResult.check, ReconciliationResult.ok, ReconciliationResult.checked)
            .join(Estate, Estate.id == ReconciliationResult.estate_id)
            .where(ReconciliationResult.check.in_(("payments", "koios")))):
        checks.setdefault((code, check), []).append((ok, checked))
    assert all(ok for rows in checks.values() for ok, _ in rows)
    assert sum(n for _, n in checks[("SUN", "payments")]) == 5 and sum(n for _, n in checks[("TPM", "koios")]) == 4

    with serving(emulator_app) as base:
        api = KoiosApi(base, "", "", "org-emulated", timeout=5, backoff=0.01)
        readings = import_koios_day(session, api, yesterday)
        payments = import_koios_payments(session, api)
        again = import_koios_day(session, api, yesterday)

    assert readings.unknown_meters == set() and readings.malformed == 0
    assert readings.accepted == readings.rows == 24 * len(served)
    assert count(session, DeadLetter) == 0
    assert count(session, MeterAlert, MeterAlert.meter_id.in_([m.id for m in meters])) == 0
    billed = count(session, LedgerTransaction, LedgerTransaction.kind == "consumption",
                   LedgerTransaction.idempotency_key.like("reading:SM%"))
    assert billed == 24 * len(served), "every imported hour is billed to the unit's wallet"
    assert again.skipped_fresh == len(emulator.sites) and again.accepted == 0
    for meter in meters:
        session.refresh(meter)
        assert meter.last_reading_at == start_of_yesterday + timedelta(days=1)
        first = session.scalars(select(Reading).where(Reading.meter_id == meter.id)
                                .order_by(Reading.taken_at)).first()
        assert first.register < meter.last_register

    # Every known default payment is matched to the unit holding that customer's meter; the
    # emulator's one unknown customer and one malformed row are its deliberate faults.
    known = [p for p in emulator.vendor_payments if str(p.get("customer_code", "")).startswith("C-SM")
             and not p["id"].startswith("kv-bad")]
    assert payments.imported == len(known) == 12
    assert payments.unmatched == ["kv-13 (customer C-NOBODY12)"] and len(payments.malformed) == 1
    rows = session.execute(select(KoiosPayment, Meter).join(
        Meter, Meter.unit_id == KoiosPayment.unit_id).where(KoiosPayment.customer_code.like("C-SM%"),
                                                            ~KoiosPayment.koios_id.like("demo-%"))).all()
    assert len(rows) == 12
    assert all(payment.customer_code == f"C-{meter.serial}" and payment.estate_id == estate.id
               for payment, meter in rows)
    assert count(session, LedgerTransaction) == ledger_before + billed, "payments are recorded, not credited"

    # The mini-grid household has its own tenant login.
    user = session.scalar(select(User).where(User.email == logins["minigrid_tenant"]))
    grant = session.scalar(select(RoleGrant).where(RoleGrant.user_id == user.id))
    assert grant.role == "tenant" and session.get(Unit, grant.unit_id).number == "HN02"
