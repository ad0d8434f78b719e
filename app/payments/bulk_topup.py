"""Agents' bulk top-up (A2, P4): many wallets credited in one action, each once.

`plan_bulk_topup()` turns a filter (block or prefix, occupancy, balance below X, supply off)
or a CSV (`unit,utility,amount`) into a `BulkTopup` the agent confirms, listing the rows left
out and why. `run_bulk_topup()` credits each chunk of rows through `credit_payments()` (one
ledger transaction per wallet, posted together; credit control once per chunk; receipts by a
job after the commit; arrears recovery, webhook and vendor push per wallet) with the payment
`agent:bulk:<batch>:<unit>:<utility>`, so a second run of the same batch, or eight at once,
credits each wallet once. A row the acting person's own top-up cap on that wallet refuses
(`check_topup_cap()`, issue 17) is skipped with the cap's message. The funding side is the
estate's agent float (`clearing:agent`), so the ledger shows who paid. Batches over INLINE_ROWS run as a job with progress.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.i18n.stored import N_, fill, render_stored
from app.jobs import Progress, job
from app.ledger.accounts import metered_utilities, system_account
from app.models import Estate, Unit, utcnow
from app.models.meter import UTILITIES
from app.models.moves import BulkTopup
from app.models.payments import Payment
from app.money import MoneyError, format_amount, parse_amount, quantize
from app.payments import PaymentError

PROVIDER = "agent"
INLINE_ROWS = 100  # larger batches run as a job with the progress component
CHUNK = 250  # wallets per database transaction while running
MAX_ROWS = 20_000
MAX_CSV_BYTES = 2_000_000
JOB = "bulk_topup"


class BulkTopupError(ValueError):
    """A bulk top-up the rules refuse; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass
class UnitFilter:
    prefix: str = ""  # a block or a unit-number prefix ("B", "Block C-")
    status: str = ""  # occupancy; "" for any
    below: Decimal | None = None  # the utility's pocket balance below this
    supply_off: bool = False


def float_account(session: Session, estate: Estate):
    """The estate's agent float: the funding side of every bulk top-up (opened on first use)."""
    return system_account(session, estate, "clearing", PROVIDER, name="Agent float (bulk top-ups)")


def matching_units(session: Session, estate: Estate, utility: str, wanted: UnitFilter) -> list[Unit]:
    """The estate's units that pass the filter, by number."""
    from app.reports.summaries import unit_cards

    units = session.scalars(select(Unit).where(Unit.estate_id == estate.id).order_by(Unit.number)).all()
    prefix = wanted.prefix.strip().lower()
    units = [u for u in units if (not prefix or u.number.lower().startswith(prefix))
             and (not wanted.status or u.occupancy_status == wanted.status)]
    if wanted.below is None and not wanted.supply_off:
        return units
    kept = []
    for card in unit_cards(session, units):
        pocket = next((p for p in card.pockets if p.utility == utility), None)
        if wanted.below is not None and (pocket is None or pocket.balance >= wanted.below):
            continue
        if wanted.supply_off and card.supply_on:
            continue
        kept.append(card.unit)
    return kept


def _amount(session: Session, estate: Estate, text: str) -> Decimal:
    from app.payments.credit import check_amount

    value = quantize(parse_amount(text, estate.currency), estate.currency)
    return check_amount(session, value, estate)


def plan_bulk_topup(session: Session, estate: Estate, rows: Iterable[tuple[Unit | None, str, str, str]], *,
                    description: str = "", user_id: int | None = None) -> BulkTopup:
    """Check (unit, unit number as written, utility, amount text) rows into a batch to confirm; commits once.

    A row whose unit is unknown, has no meter of the utility, or whose amount is refused is
    left out with its reason; a unit and utility named twice is left out the second time.
    """
    planned, skipped, seen = [], [], set()
    metered: dict[int, tuple[str, ...]] = {}
    for unit, number, utility, amount_text in rows:
        shown = {"unit": number, "utility": utility, "amount": amount_text}
        if unit is None:
            skipped.append({**shown, "reason": fill(N_("not a unit of %(estate)s"), estate=estate.name)})
            continue
        if utility not in UTILITIES:
            skipped.append({**shown, "reason": fill(N_("utility must be one of %(choices)s"),
                                                    choices=", ".join(UTILITIES))})
            continue
        if unit.id not in metered:
            metered[unit.id] = metered_utilities(session, unit.id)
        if utility not in metered[unit.id]:
            skipped.append({**shown, "reason": fill(N_("unit %(unit)s has no %(utility)s meter"), unit=unit.number,
                                                    utility=utility.replace("_", " "))})
            continue
        try:
            amount = _amount(session, estate, amount_text)
        except (MoneyError, PaymentError) as error:
            skipped.append({**shown, "reason": str(error)})
            continue
        if (unit.id, utility) in seen:
            skipped.append({**shown, "reason": N_("this unit and utility are already in the batch")})
            continue
        seen.add((unit.id, utility))
        planned.append({"unit_id": unit.id, "unit": unit.number, "utility": utility, "amount": str(amount)})
    if len(planned) > MAX_ROWS:
        raise BulkTopupError({"units": gettext("A batch takes at most %(max)s wallets: split it.", max=f"{MAX_ROWS:,}")})
    if not planned:
        raise BulkTopupError({"units": gettext("No wallet to top up: %(reason)s",
                                               reason=render_stored(skipped[0]["reason"]) if skipped
                                               else gettext("no unit matches the filter."))})
    batch = BulkTopup(estate_id=estate.id, created_by_user_id=user_id, description=description[:300],
                      rows=planned, skipped=skipped, count=len(planned),
                      total=sum((Decimal(r["amount"]) for r in planned), Decimal("0")))
    session.add(batch)
    session.flush()
    audit.record(session, "bulk_topup.planned", batch, estate_id=estate.id,
                 new={"count": batch.count, "total": str(batch.total), "skipped": len(skipped)})
    session.commit()
    return batch


def rows_from_filter(session: Session, estate: Estate, utility: str, amount: str,
                     wanted: UnitFilter) -> list[tuple[Unit, str, str, str]]:
    """One row per matching unit, for the same utility and amount."""
    return [(unit, unit.number, utility, amount) for unit in matching_units(session, estate, utility, wanted)]


def rows_from_csv(session: Session, estate: Estate, data: bytes) -> list[tuple[Unit | None, str, str, str]]:
    """The rows of a `unit,utility,amount` CSV (utility may be a label such as "Hot water")."""
    if len(data) > MAX_CSV_BYTES:
        raise BulkTopupError({"file": gettext("The file is over 2 MB: split it.")})
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BulkTopupError({"file": gettext("Save the file as CSV (UTF-8).")}) from None
    try:
        return _csv_rows(session, estate, text)
    except csv.Error as error:
        raise BulkTopupError({"file": gettext("The file is not a CSV we can read (%(error)s).", error=error)}) from None


def _csv_rows(session: Session, estate: Estate, text: str) -> list[tuple[Unit | None, str, str, str]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    reader.fieldnames = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    if not {"unit", "utility", "amount"} <= set(reader.fieldnames):
        raise BulkTopupError({"file": gettext("The file needs the columns unit, utility and amount.")})
    units = {u.number.lower(): u for u in session.scalars(select(Unit).where(Unit.estate_id == estate.id))}
    words = {w: code for code in UTILITIES for w in (code, code.replace("_", " "))}
    rows = []
    for raw in reader:
        cells = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
        if not any(cells.values()):
            continue
        number = cells.get("unit", "")[:32]
        utility = words.get(cells.get("utility", "").lower(), cells.get("utility", "")[:20])
        rows.append((units.get(number.lower()), number, utility, cells.get("amount", "")[:30]))
        if len(rows) > MAX_ROWS:
            raise BulkTopupError({"file": gettext("A batch takes at most %(max)s wallets: split the file.",
                                                  max=f"{MAX_ROWS:,}")})
    return rows


def batch_of(session: Session, estate: Estate, batch_id: int) -> BulkTopup | None:
    """The estate's batch, else None (the view answers 404)."""
    from app.routing import INTEGER_MAX

    if not 0 < batch_id <= INTEGER_MAX:
        return None
    return session.scalar(select(BulkTopup).where(BulkTopup.id == batch_id, BulkTopup.estate_id == estate.id))


def batches_of(session: Session, estate: Estate, limit: int = 20) -> list[BulkTopup]:
    """The estate's latest batches, newest first (the bulk top-up page lists them)."""
    return list(session.scalars(select(BulkTopup).where(BulkTopup.estate_id == estate.id)
                                .order_by(BulkTopup.id.desc()).limit(limit)))


def payment_ref(batch_id: int, unit_id: int, utility: str) -> str:
    """The payment's provider reference: its ledger key is `agent:` + this."""
    return f"bulk:{batch_id}:{unit_id}:{utility}"


def run_bulk_topup(session: Session, batch_id: int, *, user_id: int | None = None, now: datetime | None = None,
                   progress: Progress | None = None) -> BulkTopup:
    """Credit every row of the batch once, CHUNK wallets per transaction; commits per chunk.

    Runners of one batch take turns on the batch row's lock and skip what is credited, so a
    second submit, eight at once, or a job retried after a worker died credit nothing twice.
    """
    from app.models import User
    from app.payments.credit import credit_payments

    user = session.get(User, user_id) if user_id is not None else None
    batch = session.get(BulkTopup, batch_id)
    if batch is None:
        raise BulkTopupError({"batch": gettext("No such batch.")})
    rows = list(batch.rows)
    if progress:
        progress.set_total(len(rows))
    for start in range(0, len(rows), CHUNK):
        batch = _lock(session, batch_id)
        if batch.status == "done":
            session.rollback()
            break
        estate = session.get(Estate, batch.estate_id)
        results = list(batch.results or [None] * len(rows))
        part = rows[start:start + CHUNK]
        refs = [payment_ref(batch.id, r["unit_id"], r["utility"]) for r in part]
        existing = {p.provider_ref: p for p in session.scalars(select(Payment).where(
            Payment.provider == PROVIDER, Payment.provider_ref.in_(refs)))}
        float_account(session, estate)
        paid_at = now or utcnow()
        todo: list[tuple[int, Payment]] = []
        for offset, (row, ref) in enumerate(zip(part, refs, strict=True)):
            payment = existing.get(ref)
            if payment is not None and payment.status == "credited":
                continue  # credited by an earlier run: its result stands
            if payment is None:
                payment = Payment(provider=PROVIDER, provider_ref=ref, estate_id=estate.id, unit_id=row["unit_id"],
                                  utility=row["utility"], amount=Decimal(row["amount"]), currency=estate.currency,
                                  status="to_confirm", paid_at=paid_at, created_by_user_id=user_id,
                                  reference=f"Bulk top-up {batch.id}")
                session.add(payment)
            todo.append((start + offset, payment))
        session.flush()
        refused = _over_caps(session, estate, user, todo)
        for index, payment in todo:
            if index in refused:
                payment.status, payment.status_reason = "failed", refused[index][:300]
                results[index] = {**_shown(rows[index]), "outcome": "skipped", "reason": refused[index][:200]}
        todo = [(index, payment) for index, payment in todo if index not in refused]
        # One ledger transaction per wallet, posted together; no savepoint per wallet (hundreds
        # in one transaction slow PostgreSQL down): credit_payments refuses before it posts.
        outcomes = credit_payments(session, [payment for _, payment in todo], user_id=user_id)
        for (index, payment), outcome in zip(todo, outcomes, strict=True):
            if isinstance(outcome, PaymentError):
                payment.status, payment.status_reason = "failed", str(outcome)[:300]
                results[index] = {**_shown(rows[index]), "outcome": "skipped", "reason": str(outcome)[:200]}
            elif outcome:
                results[index] = {**_shown(rows[index]), "outcome": "credited", "reason": ""}
        batch.results = results
        batch.credited = sum(1 for r in results if r and r["outcome"] == "credited")
        batch.status = "running"
        if start + CHUNK >= len(rows):
            batch.status, batch.finished_at = "done", utcnow()
            audit.record(session, "bulk_topup.run", batch, estate_id=batch.estate_id,
                         new={"credited": batch.credited, "count": batch.count, "total": str(batch.total)})
        session.commit()
        if progress:
            progress.step(len(part))
    return session.get(BulkTopup, batch_id, populate_existing=True)


def _over_caps(session: Session, estate: Estate, user, todo: list[tuple[int, Payment]]) -> dict[int, str]:
    """The rows the acting person's own top-up caps refuse (F3, issue 17), by index, with the reason.

    Caps bind a wallet grant holder (a parent topping up a student, say); an agent with no
    grant on a unit has no cap there. `check_topup_cap()` locks each capped grant, and a unit
    named for two utilities counts the first row against the cap before the second.
    """
    from app.families.limits import CapReached, check_topup_cap
    from app.models.families import WalletGrant
    from app.payments.payfast import checkout_expiry_cutoff

    if user is None or not todo:
        return {}
    capped = set(session.scalars(select(WalletGrant.unit_id).where(
        WalletGrant.user_id == user.id, WalletGrant.revoked_at.is_(None),
        WalletGrant.unit_id.in_({p.unit_id for _, p in todo}),
        (WalletGrant.topup_daily_cap.is_not(None)) | (WalletGrant.topup_monthly_cap.is_not(None)))))
    if not capped:
        return {}
    refused: dict[int, str] = {}
    earlier: dict[int, Decimal] = {}  # this run's rows already let through, per unit
    expired_before = checkout_expiry_cutoff()
    for index, payment in todo:
        if payment.unit_id not in capped:
            continue
        amount = Decimal(payment.amount)
        try:
            # The payments of this chunk are flushed as "to_confirm": cap_room does not count them.
            check_topup_cap(session, user, payment.unit, amount + earlier.get(payment.unit_id, Decimal(0)),
                                   expired_before=expired_before)
        except CapReached as error:
            refused[index] = "; ".join(error.errors.values())
            continue
        earlier[payment.unit_id] = earlier.get(payment.unit_id, Decimal(0)) + amount
    return refused


def _lock(session: Session, batch_id: int) -> BulkTopup:
    return session.scalar(select(BulkTopup).where(BulkTopup.id == batch_id).with_for_update()
                          .execution_options(populate_existing=True))


def _shown(row: dict) -> dict:
    return {"unit": row["unit"], "utility": row["utility"], "amount": row["amount"]}


def start_bulk_topup(session: Session, batch: BulkTopup, *, user_id: int | None = None):
    """Run the confirmed batch now, or as a job with progress when it is large; returns the JobRun or None."""
    from app.jobs import enqueue

    if batch.status == "done":
        return None
    if batch.count <= INLINE_ROWS:
        run_bulk_topup(session, batch.id, user_id=user_id)
        return None
    return enqueue(JOB, batch.id, user_id, target=f"bulk_topup:{batch.id}", user_id=user_id)


@job(JOB)
def bulk_topup_job(session: Session, progress: Progress, batch_id: int, user_id: int | None = None) -> str:
    """Credit a confirmed batch (idempotent: credited rows are skipped on a retry)."""
    batch = run_bulk_topup(session, batch_id, user_id=user_id, progress=progress)
    estate = session.get(Estate, batch.estate_id)
    credited_total = sum((Decimal(r["amount"]) for r in batch.results or [] if r and r["outcome"] == "credited"),
                         Decimal("0"))
    return fill(N_("%(credited)s of %(count)s wallets credited, %(total)s"), credited=batch.credited,
                count=batch.count, total=format_amount(credited_total, estate.currency))
