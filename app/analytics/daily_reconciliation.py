"""Daily automated reconciliation (U6): each estate's local day checked every morning.

Checks, each pass or fail with the failing items named (kind + id, so the page links them):
- readings: every accepted unit-meter reading with consumption has its billing transaction
  (`reading:<serial>:<UTC time>`); a reading with zero or no consumption (a meter's first)
  is a documented zero; no billing transaction of the day lacks its reading;
- payments: every payment credited in the day has its gateway record (PayFast: the ITN with
  the same pf_payment_id and amount; M-PESA: the relayed SMS confirmation with the same
  amount; EFT: the bank reference) and its ledger top-up of the same amount; gateway records
  of the day that were never credited are listed;
- mpesa: when staff uploaded the M-PESA statement for the day, each statement transaction
  against a credited M-PESA payment of the same amount, and each credited one against the
  statement (skipped, and said so, without a statement);
- koios (SparkMeter estates): our credit pushes against the payments Koios lists, both ways:
  every payment credited in the day on a SparkMeter unit was pushed and Koios lists it once,
  for the same amount (a reversed one also reversed there); every Koios payment of the day
  carrying our external id mirrors a payment we credited, for the same amount. Payments
  made at SparkMeter itself are counted, not failed (we never push those);
- bulk: each utility's bulk meters against its unit meters within the estate's loss threshold;
- ledger: the day's transactions re-hashed, linked to their predecessors, each summing to zero.

Each check reads its day with a few set-based queries (no per-item queries), so an estate of
thousands of meters reconciles in seconds (bench/reconcile.py). Results are stored per
(estate, day, check), replaced when the day is run again.

Summaries, item labels and details are kept as English text (as they always were: the emails and
old readers) and as their parts (`app.i18n.messages`), so a page shows them in its reader's
language (`shown_summary`, `shown_label`, `shown_detail`); rows stored before issue 23 have only
the English.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import and_, delete, func, select
from sqlalchemy.orm import Session, aliased

from app.i18n.label_texts import N_
from app.i18n.messages import code, english, english_all, message, money as money_part, number
from app.jobs import job
from app.ledger import GENESIS_HASH, transaction_hash
from app.models import Estate, LedgerTransaction, Meter, Posting, Reading, RoleGrant, User, utcnow
from app.models.corrections import Correction
from app.models.payments import Payment, SmsMessage
from app.models.sources import KoiosPayment
from app.models.settlement import MpesaStatementLine, ReconciliationResult
from app.money import MoneyError, quantize, to_decimal
from app.sql_arrays import driver_rows

JOB_KIND = "daily_reconciliation"
BILL_KINDS = ("consumption", "solar_export")
# The demo seed bills each meter once per local day (`demo:consumption:<serial>:<YYYY-MM-DD>`)
# instead of per reading: such a day bill covers the meter's readings of that day.
DAY_BILL_PREFIX = "demo:consumption:"
MAX_ITEMS = 500  # a broken day lists this many items per check (the count says how many in all)
PAYFAST_TOLERANCE = Decimal("0.01")


def day_bounds(estate: Estate, day: date) -> tuple[datetime, datetime]:
    """The UTC instants where the estate's local day starts and the next one starts."""
    start = datetime(day.year, day.month, day.day, tzinfo=estate.tz)
    following = start.date() + timedelta(days=1)
    end = datetime(following.year, following.month, following.day, tzinfo=estate.tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def yesterday(estate: Estate, now: datetime | None = None) -> date:
    """The estate's local day before today."""
    return (now or utcnow()).astimezone(estate.tz).date() - timedelta(days=1)


class Check:
    """One check's outcome while it is built; `note` and `extra` are message parts (or None)."""

    def __init__(self, name: str):
        self.name, self.checked, self.items, self.note, self.extra = name, 0, [], None, None

    def fail(self, kind: str, ref, label, detail) -> None:
        """A failing item; `label` and `detail` are plain text or message parts (a list: joined by "; ")."""
        item = {"kind": kind, "ref": ref, "label": _english(label), "detail": _english(detail)}
        if not isinstance(label, str):
            item["label_msg"] = label
        if not isinstance(detail, str):
            item["detail_msg"] = detail if isinstance(detail, list) else [detail]
        self.items.append(item)

    def summary_parts(self) -> list[dict]:
        if self.note:
            return [self.note]
        if not self.items:
            main = message(N_("%(num)s checked, all matched"), num=self.checked)
        else:
            main = message(N_("%(count)s of %(checked)s do not match"), count=len(self.items), checked=self.checked)
        return [main, *([self.extra] if self.extra else [])]

    def summary(self) -> str:
        return english_all(self.summary_parts())


def _english(text) -> str:
    if isinstance(text, str):
        return text
    return "; ".join(english(part) for part in text) if isinstance(text, list) else english(text)


def shown_summary(result: ReconciliationResult) -> str:
    """A stored check's summary in the reader's language (the English text for an old row)."""
    from app.i18n import current_language
    from app.i18n.messages import render_all

    parts = result.summary_parts
    return render_all(parts) if parts and current_language() != "en" else result.summary


def shown_label(item: dict) -> str:
    return _shown(item, "label")


def shown_detail(item: dict) -> str:
    return _shown(item, "detail")


def _shown(item: dict, key: str) -> str:
    from app.i18n import current_language
    from app.i18n.messages import is_message, render

    parts = item.get(f"{key}_msg")
    if not parts or current_language() == "en":
        return item.get(key, "")
    parts = parts if isinstance(parts, list) else [parts]
    return "; ".join(render(p) for p in parts if is_message(p))


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _rows(session: Session, statement) -> list:
    """Run a read on the session's connection without the ORM's row processing (thousands of rows)."""
    return session.connection().execute(statement).all()


def reading_key(serial: str, taken_at: datetime) -> str:
    return f"reading:{serial}:{_utc(taken_at).isoformat()}"


def check_readings(session: Session, estate: Estate, start: datetime, end: datetime) -> Check:
    check = Check("readings")
    rows = driver_rows(session,
        select(Meter.id, Meter.serial, Reading.id, Reading.taken_at, Reading.consumption)
        .join(Reading, Reading.meter_id == Meter.id)
        .where(Meter.estate_id == estate.id, Meter.role == "unit", Meter.unit_id.is_not(None),
               Meter.protocol != "sparkmeter",  # billed at SparkMeter, not here
               Reading.taken_at >= start, Reading.taken_at < end))
    bills = dict(_rows(session,
        select(LedgerTransaction.idempotency_key, LedgerTransaction.id).where(
            LedgerTransaction.estate_id == estate.id, LedgerTransaction.kind.in_(BILL_KINDS),
            LedgerTransaction.occurred_at >= start, LedgerTransaction.occurred_at < end)))
    day_billed = {key[len(DAY_BILL_PREFIX):] for key in bills if key.startswith(DAY_BILL_PREFIX)}
    # A day bill names the meter by serial: after a replacement the demo's bills of those days
    # stay under the replaced meter's serial, and they cover the new meter's readings.
    replaced = dict(_rows(session, select(Meter.replaced_by_meter_id, Meter.serial).where(
        Meter.estate_id == estate.id, Meter.replaced_by_meter_id.is_not(None)))) if day_billed else {}
    all_readings = set()
    for meter_id, serial, reading_id, taken_at, consumption in rows:
        key = reading_key(serial, taken_at)
        all_readings.add(key)
        if consumption is None or consumption == 0:
            continue  # a meter's first reading, or nothing used: a documented zero
        check.checked += 1
        day = _utc(taken_at).astimezone(estate.tz).date().isoformat()
        if (key not in bills and f"{serial}:{day}" not in day_billed
                and f"{replaced.get(meter_id)}:{day}" not in day_billed):
            check.fail("meter", meter_id, message(N_("Reading on meter %(serial)s"), serial=serial),
                       message(N_("%(when)s UTC, %(used)s used, has no bill"), when=f"{_utc(taken_at):%Y-%m-%d %H:%M}",
                               used=number(consumption)))
    for key, transaction_id in bills.items():
        if key.startswith("reading:") and key not in all_readings:
            check.checked += 1
            check.fail("transaction", transaction_id, message(N_("Bill #%(id)s"), id=transaction_id),
                       message(N_("%(key)s has no reading"), key=key))
    return check


def _sms_amount(content: str) -> Decimal | None:
    from app.payments.mpesa_sms import NotAPayment, parse_confirmation

    try:
        return parse_confirmation(content).amount
    except (NotAPayment, MoneyError, ValueError):
        return None


def check_payments(session: Session, estate: Estate, start: datetime, end: datetime) -> Check:
    from app.payments.credit import PROVIDER_LABELS

    check = Check("payments")
    payments = session.scalars(select(Payment).where(
        Payment.estate_id == estate.id, Payment.credited_at >= start, Payment.credited_at < end,
        Payment.status.in_(("credited", "reversed")))).all()
    ids = [p.id for p in payments]
    sms_by_payment = {}
    if ids:
        for payment_id, content in session.execute(select(SmsMessage.payment_id, SmsMessage.content).where(
                SmsMessage.payment_id.in_(ids), SmsMessage.outcome == "payment")):
            sms_by_payment[payment_id] = content
    keys = [p.idempotency_key for p in payments]
    # What each top-up took out of its provider's clearing account (its one negative leg there).
    ledger: dict[str, Decimal] = {}
    if keys:
        rows = session.execute(
            select(LedgerTransaction.idempotency_key, func.sum(Posting.amount))
            .join(Posting, Posting.transaction_id == LedgerTransaction.id)
            .where(LedgerTransaction.estate_id == estate.id, LedgerTransaction.idempotency_key.in_(keys),
                   Posting.amount < 0, Posting.commodity == estate.currency)
            .group_by(LedgerTransaction.idempotency_key))
        ledger = {key: -Decimal(total) for key, total in rows}
    for p in payments:
        check.checked += 1
        name = f"{PROVIDER_LABELS.get(p.provider, p.provider)} {p.provider_ref}"
        amount = quantize(p.amount, estate.currency)
        problem = None
        if p.provider == "payfast":
            raw = p.raw or {}
            gross = raw.get("amount_gross")
            try:
                gross_value = to_decimal(gross) if gross not in (None, "") else None
            except MoneyError:
                gross_value = None
            if not raw or raw.get("pf_payment_id") != p.provider_ref:
                problem = message(N_("no ITN from PayFast for this payment"))
            elif gross_value is None or abs(gross_value - amount) > PAYFAST_TOLERANCE:
                problem = message(N_("PayFast says %(gross)s, credited %(amount)s"), gross=repr(gross),
                                  amount=money_part(amount, estate.currency))
        elif p.provider == "mpesa":
            content = sms_by_payment.get(p.id)
            if content is None:
                problem = message(N_("no M-PESA confirmation SMS for this payment"))
            else:
                said = _sms_amount(content)
                if said is None or quantize(said, estate.currency) != amount:
                    problem = message(N_("the SMS says %(said)s, credited %(amount)s"), said=str(said),
                                      amount=money_part(amount, estate.currency))
        elif p.provider == "eft" and not p.provider_ref:
            problem = message(N_("no bank reference"))
        if problem is None:
            posted = ledger.get(p.idempotency_key)
            if posted is None:
                problem = message(N_("no top-up in the ledger"))
            elif posted != amount:
                problem = message(N_("the ledger took %(posted)s, the payment is %(amount)s"),
                                  posted=money_part(posted, estate.currency), amount=money_part(amount, estate.currency))
        if problem:
            check.fail("payment", p.id, name, problem)
    # Gateway records of the day with no credit.
    for sms_id, payment_id, status, ref in session.execute(
            select(SmsMessage.id, Payment.id, Payment.status, Payment.provider_ref)
            .join(Payment, Payment.id == SmsMessage.payment_id)
            .where(SmsMessage.outcome == "payment", SmsMessage.received_at >= start, SmsMessage.received_at < end,
                   Payment.estate_id == estate.id, Payment.status.not_in(("credited", "reversed")))):
        check.checked += 1
        check.fail("payment", payment_id, f"M-PESA {ref}",
                   message(N_("confirmation SMS #%(sms)s was never credited (%(status)s)"), sms=sms_id,
                           status=code("payment_status", status, raw_english=True)))
    for payment in session.scalars(select(Payment).where(
            Payment.estate_id == estate.id, Payment.provider == "payfast", Payment.created_at >= start,
            Payment.created_at < end, Payment.status.not_in(("credited", "reversed")))):
        if (payment.raw or {}).get("payment_status") == "COMPLETE":
            check.checked += 1
            check.fail("payment", payment.id, f"PayFast {payment.provider_ref}",
                       message(N_("PayFast reported it COMPLETE but it was never credited (%(status)s)"),
                               status=code("payment_status", payment.status, raw_english=True)))
    return check


def check_mpesa_statement(session: Session, estate: Estate, start: datetime, end: datetime) -> Check:
    check = Check("mpesa")
    lines = session.execute(select(MpesaStatementLine.receipt, MpesaStatementLine.amount).where(
        MpesaStatementLine.estate_id == estate.id, MpesaStatementLine.completed_at >= start,
        MpesaStatementLine.completed_at < end)).all()
    if not lines:
        check.note = message(N_("no M-PESA statement uploaded for this day"))
        return check
    statement = {receipt.upper(): quantize(amount, estate.currency) for receipt, amount in lines}
    credited = {ref.upper(): (pid, quantize(amount, estate.currency)) for pid, ref, amount in session.execute(
        select(Payment.id, Payment.provider_ref, Payment.amount).where(
            Payment.estate_id == estate.id, Payment.provider == "mpesa", Payment.status == "credited",
            Payment.paid_at >= start, Payment.paid_at < end))}
    for receipt, amount in sorted(statement.items()):
        check.checked += 1
        found = credited.get(receipt)
        if found is None:
            check.fail("statement", receipt, f"M-PESA {receipt}", message(N_("on the statement, never credited")))
        elif found[1] != amount:
            check.fail("payment", found[0], f"M-PESA {receipt}",
                       message(N_("statement %(statement)s, credited %(credited)s"),
                               statement=money_part(amount, estate.currency), credited=money_part(found[1], estate.currency)))
    for receipt, (pid, _) in sorted(credited.items()):
        if receipt not in statement:
            check.checked += 1
            check.fail("payment", pid, f"M-PESA {receipt}", message(N_("credited, not on the statement")))
    return check


def check_vendor_pushes(session: Session, estate: Estate, start: datetime, end: datetime) -> Check:
    """Our credit pushes (payments/vendor_credit.py) against Koios' payments (sources/koios_payments.py)."""
    from app.payments.credit import PROVIDER_LABELS
    from app.sources.koios_payments import OWN_PREFIX

    check = Check("koios")
    vendor_units = set(session.scalars(select(Meter.unit_id).where(
        Meter.estate_id == estate.id, Meter.protocol == "sparkmeter", Meter.unit_id.is_not(None)).distinct()))
    listed = _rows(session, select(
        KoiosPayment.id, KoiosPayment.koios_id, KoiosPayment.origin, KoiosPayment.payment_id,
        KoiosPayment.amount, KoiosPayment.external_id, KoiosPayment.customer_code).where(
        KoiosPayment.estate_id == estate.id, KoiosPayment.paid_at >= start, KoiosPayment.paid_at < end))
    if not vendor_units and not listed:
        check.note = message(N_("no SparkMeter meters in this estate"))
        return check
    ours = _rows(session, select(
        Payment.id, Payment.provider, Payment.provider_ref, Payment.amount, Payment.status,
        Payment.vendor_push_status, Payment.vendor_push_result).where(
        Payment.estate_id == estate.id, Payment.credited_at >= start, Payment.credited_at < end,
        Payment.status.in_(("credited", "reversed")), Payment.unit_id.in_(vendor_units or {0})))
    our_ids = {row[0] for row in ours}
    # Koios' side of our pushes, whatever day Koios dated them (a push just before midnight).
    mirrors: dict[int, list] = defaultdict(list)
    for row in _rows(session, select(KoiosPayment.koios_id, KoiosPayment.payment_id, KoiosPayment.amount)
                     .where(KoiosPayment.payment_id.in_(our_ids or {0}))):
        mirrors[row[1]].append(row)
    reversals = {payment_id: status for payment_id, status in _rows(session, select(
        Correction.payment_id, Correction.vendor_status).where(Correction.payment_id.in_(
            {row[0] for row in ours if row[4] == "reversed"} or {0})))}
    money = lambda amount: money_part(quantize(amount, estate.currency), estate.currency)  # noqa: E731
    for payment_id, provider, ref, amount, status, push, push_result in ours:
        check.checked += 1
        name = f"{PROVIDER_LABELS.get(provider, provider)} {ref}"
        found = mirrors.get(payment_id, [])
        if len(found) > 1:
            check.fail("payment", payment_id, name,
                       message(N_("Koios lists it %(times)s times (%(ids)s): credited twice at SparkMeter"),
                               times=len(found), ids=", ".join(sorted(k for k, _, _ in found))))
        elif not found and status == "reversed" and reversals.get(payment_id) == "none":
            continue  # reversed here before SparkMeter ever had it: nothing there to match
        elif not found:
            if push == "pushed":
                problem = message(N_("pushed to SparkMeter, but Koios lists no payment with its external id"))
            elif push == "failed":
                problem = message(N_("the push to SparkMeter failed: %(reason)s"),
                                  reason=push_result or message(N_("no reason given")))
            elif push == "queued":
                problem = message(N_("the push to SparkMeter is still queued"))
            else:
                problem = message(N_("never pushed to SparkMeter"))
            check.fail("payment", payment_id, name,
                       message(N_("%(problem)s (%(ref)s)"), problem=problem, ref=f"{OWN_PREFIX}{payment_id}"))
        elif quantize(found[0][2], estate.currency) != quantize(amount, estate.currency):
            check.fail("payment", payment_id, name,
                       message(N_("Koios %(koios)s has %(listed)s, credited %(credited)s"), koios=found[0][0],
                               listed=money(found[0][2]), credited=money(amount)))
        elif push != "pushed":
            recorded = {"failed": N_("Koios %(koios)s lists it, but our push is recorded as failed"),
                        "queued": N_("Koios %(koios)s lists it, but our push is recorded as still queued")}
            check.fail("payment", payment_id, name, message(
                recorded.get(push, N_("Koios %(koios)s lists it, but our push is recorded as never sent")),
                koios=found[0][0]))
        elif status == "reversed" and reversals.get(payment_id) not in ("reversed", "none"):
            there = reversals.get(payment_id)
            check.fail("payment", payment_id, name, message(
                N_("reversed here, the reversal at SparkMeter is not recorded") if not there else
                N_("reversed here, the reversal at SparkMeter is %(status)s"),
                **({"status": code("vendor_reversal", there, raw_english=True)} if there else {})))
    # Koios payments of the day: ours must mirror a payment we credited; the vendor's own are counted.
    others = {row[3] for row in listed if row[3] is not None and row[3] not in our_ids}
    elsewhere = {row[0]: row[1:] for row in _rows(session, select(
        Payment.id, Payment.status, Payment.amount).where(Payment.id.in_(others or {0})))}
    at_vendor = 0
    for _, koios_id, origin, payment_id, amount, external_id, customer in listed:
        if payment_id in our_ids:
            continue  # checked with its push above
        label = f"Koios {koios_id}"  # a name and a reference: the same in every language
        if payment_id is not None:
            check.checked += 1
            status, credited = elsewhere.get(payment_id, (None, None))
            if status not in ("credited", "reversed"):
                check.fail("payment", payment_id, label, message(
                    N_("Koios has our push of payment #%(id)s, which is %(status)s here"), id=payment_id,
                    status=code("payment_status", status, raw_english=True)) if status else message(
                    N_("Koios has our push of payment #%(id)s, which is missing here"), id=payment_id))
            elif quantize(credited, estate.currency) != quantize(amount, estate.currency):
                check.fail("payment", payment_id, label, message(N_("Koios has %(listed)s, credited %(credited)s"),
                                                                 listed=money(amount), credited=money(credited)))
        elif (external_id or "").startswith(OWN_PREFIX):
            check.checked += 1
            check.fail("koios", koios_id, label, message(
                N_("Koios lists %(amount)s under our external id %(external)s (customer %(customer)s), "
                   "but we never pushed it"), amount=money(amount), external=external_id,
                customer=customer or message(N_("missing"))))
        else:
            at_vendor += 1
    if at_vendor:
        check.extra = message(N_("; %(num)s paid at SparkMeter itself (recorded, not ours to push)"), num=at_vendor)
    if not check.checked and not at_vendor:
        check.note = message(N_("no pushes or Koios payments this day"))
    return check


def check_bulk(session: Session, estate: Estate, start: datetime, end: datetime) -> Check:
    from app.reports.summaries import loss_threshold

    check = Check("bulk")
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for utility, role, total in session.execute(
            select(Meter.utility, Meter.role, func.coalesce(func.sum(Reading.consumption), 0))
            .join(Reading, and_(Reading.meter_id == Meter.id, Reading.taken_at >= start, Reading.taken_at < end))
            .where(Meter.estate_id == estate.id, Meter.role.in_(("unit", "bulk")))
            .group_by(Meter.utility, Meter.role)):
        totals[utility][role] += Decimal(total)
    threshold = loss_threshold(session, estate.id)
    for utility in sorted(totals):
        if "bulk" not in totals[utility]:
            continue
        check.checked += 1
        bulk, units = totals[utility]["bulk"], totals[utility]["unit"]
        if bulk <= 0:
            if units > 0:
                check.fail("utility", utility, message("%(utility)s", utility=code("utility", utility)),
                           message(N_("the bulk meter recorded nothing while unit meters used %(used)s"),
                                   used=number(units)))
            continue
        loss = (100 * (bulk - units) / bulk).quantize(Decimal("0.1"))
        if loss > threshold or loss < -threshold:
            check.fail("utility", utility, message("%(utility)s", utility=code("utility", utility)),
                       message(N_("bulk %(bulk)s, units %(units)s: loss %(loss)s %% (threshold %(threshold)s %%)"),
                               bulk=number(bulk), units=number(units), loss=str(loss), threshold=str(threshold)))
    if not check.checked:
        check.note = message(N_("no bulk meter to compare"))
    return check


def check_ledger(session: Session, estate: Estate, start: datetime, end: datetime) -> Check:
    check = Check("ledger")
    previous = aliased(LedgerTransaction)
    # The day's transactions are those that occurred in it (a late reading's bill included).
    in_day = and_(LedgerTransaction.estate_id == estate.id,
                  LedgerTransaction.occurred_at >= start, LedgerTransaction.occurred_at < end)
    # Two reads of plain driver rows (about 100,000 transactions and twice as many postings
    # for an estate of 2,000 meters), both in chain order so legs group without a look-up.
    txns = driver_rows(session,
        select(LedgerTransaction.id, LedgerTransaction.seq, LedgerTransaction.idempotency_key,
               LedgerTransaction.kind, LedgerTransaction.occurred_at, LedgerTransaction.period,
               LedgerTransaction.memo, LedgerTransaction.reverses_id, LedgerTransaction.prev_hash,
               LedgerTransaction.hash, previous.hash.label("previous_hash"))
        .outerjoin(previous, and_(previous.estate_id == LedgerTransaction.estate_id,
                                  previous.seq == LedgerTransaction.seq - 1))
        .where(in_day).order_by(LedgerTransaction.seq))
    if not txns:
        check.note = message(N_("no transactions this day"))
        return check
    legs: dict[int, list] = defaultdict(list)
    for transaction_id, account_id, amount, commodity in driver_rows(session,
            select(Posting.transaction_id, Posting.account_id, Posting.amount, Posting.commodity)
            .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
            .where(in_day)):
        legs[transaction_id].append((account_id, amount, commodity))
    estate_id, no_legs = estate.id, []
    for (transaction_id, seq, key, kind, occurred_at, period, memo, reverses_id, prev_hash, digest,
         previous_hash) in txns:
        check.checked += 1
        problems = []
        expected_prev = GENESIS_HASH if seq == 1 else previous_hash
        if expected_prev is None:
            problems.append(message(N_("the transaction before it (seq %(seq)s) is missing"), seq=seq - 1))
        elif prev_hash != expected_prev:
            problems.append(message(N_("does not link to the transaction before it")))
        its_legs = legs.get(transaction_id, no_legs)
        if not _sums_to_zero(its_legs):
            problems.append(message(N_("its postings do not sum to zero")))
        if digest != transaction_hash(
                prev_hash, estate_id=estate_id, seq=seq, idempotency_key=key, kind=kind,
                occurred_at=occurred_at, period=period, memo=memo, reverses_id=reverses_id,
                legs=its_legs):
            problems.append(message(N_("its content no longer matches its hash (changed after posting)")))
        if problems:
            check.fail("transaction", transaction_id,
                       message(N_("Transaction #%(id)s (seq %(seq)s)"), id=transaction_id, seq=seq), problems)
    return check


def _sums_to_zero(legs: list) -> bool:
    """Two or more legs that sum to zero per commodity (legs are never zero themselves)."""
    if len(legs) == 2:  # nearly every transaction: one commodity, two opposite amounts
        (_, first, commodity), (_, second, other) = legs
        return commodity == other and first + second == 0
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for _, amount, commodity in legs:
        sums[commodity] += amount
    return len(legs) > 2 and all(total == 0 for total in sums.values())


CHECKS = (("readings", check_readings), ("payments", check_payments), ("mpesa", check_mpesa_statement),
          ("koios", check_vendor_pushes), ("bulk", check_bulk), ("ledger", check_ledger))
class _LabelsOf(dict):
    """`labels[name]` of a label kind in the current language (a page's, or an email's force_locale)."""

    def __init__(self, kind: str):
        from app.labels import LABELS

        super().__init__(LABELS[kind])
        self.kind = kind

    def __getitem__(self, name: str) -> str:
        from flask_babel import gettext

        from app.labels import label

        return gettext(label(self.kind, name))

    def get(self, name, default=None):
        return self[name] if name in self.keys() else default


# The check names, in the reader's language wherever they are shown (texts: app/labels.py "reconciliation_check").
CHECK_LABELS = _LabelsOf("reconciliation_check")


def reconcile_estate(session: Session, estate: Estate, day: date, *, notify_people: bool = False) -> list[ReconciliationResult]:
    """Run every check of an estate's local day, replacing that day's stored results; commits."""
    start, end = day_bounds(estate, day)
    checks = [fn(session, estate, start, end) for _, fn in CHECKS]
    session.execute(delete(ReconciliationResult).where(ReconciliationResult.estate_id == estate.id,
                                                       ReconciliationResult.day == day))
    results = []
    for check in checks:
        row = ReconciliationResult(estate_id=estate.id, day=day, check=check.name, ok=not check.items,
                                   checked=check.checked, summary=check.summary()[:300],
                                   summary_parts=check.summary_parts(), items=check.items[:MAX_ITEMS])
        session.add(row)
        results.append(row)
    session.flush()
    if notify_people:
        _send_reports(session, estate, day, results)
    session.commit()
    return results


def _send_reports(session: Session, estate: Estate, day: date, results: list[ReconciliationResult]) -> None:
    """The daily report to the estate's administrators; staff hear of it only when a check failed."""
    from flask import url_for

    from app.notify import notify

    failed = [r for r in results if not r.ok]
    try:
        link = url_for("staff.reconciliation", estate_id=estate.id, day=day.isoformat(), _external=True)
    except RuntimeError:
        link = f"/staff/reconciliation?estate_id={estate.id}&day={day.isoformat()}"
    context = {"estate": estate, "day": day, "results": results, "failed": failed, "labels": CHECK_LABELS,
               "link": link, "shown_summary": shown_summary, "shown_label": shown_label, "shown_detail": shown_detail}
    admins = session.scalars(select(User).join(RoleGrant, RoleGrant.user_id == User.id).where(
        RoleGrant.role == "agent", RoleGrant.estate_id == estate.id).distinct()).all()
    staff = session.scalars(select(User).join(RoleGrant, RoleGrant.user_id == User.id).where(
        RoleGrant.role == "staff").distinct()).all() if failed else []
    for user in {u.id: u for u in [*admins, *staff]}.values():
        notify(session, "daily_reconciliation", context, user=user)


def latest_days(session: Session, estate_id: int, limit: int = 31) -> list[tuple[date, int]]:
    """The estate's reconciled days, newest first, each with how many checks failed."""
    failing: dict[date, int] = {}
    for day, ok in session.execute(
            select(ReconciliationResult.day, ReconciliationResult.ok)
            .where(ReconciliationResult.estate_id == estate_id)
            .order_by(ReconciliationResult.day.desc()).limit(limit * len(CHECKS))):
        failing[day] = failing.get(day, 0) + (0 if ok else 1)
    return list(failing.items())[:limit]


def results_of(session: Session, estate_id: int, day: date) -> list[ReconciliationResult]:
    order = {name: n for n, (name, _) in enumerate(CHECKS)}
    rows = session.scalars(select(ReconciliationResult).where(ReconciliationResult.estate_id == estate_id,
                                                              ReconciliationResult.day == day)).all()
    return sorted(rows, key=lambda r: order.get(r.check, 99))


@job(JOB_KIND)
def daily_reconciliation_job(session: Session, progress, estate_id: int | None = None,
                             day_text: str | None = None) -> str:
    """Reconcile yesterday (or a given day) for one estate or all, emailing the reports; safe to re-run."""
    query = select(Estate).order_by(Estate.id)
    if estate_id is not None:
        query = query.where(Estate.id == estate_id)
    estates = session.scalars(query).all()
    progress.set_total(len(estates))
    lines = []
    for estate in estates:
        day = date.fromisoformat(day_text) if day_text else yesterday(estate)
        try:
            results = reconcile_estate(session, estate, day, notify_people=True)
        except Exception as error:  # one estate's failure never stops the others
            session.rollback()
            progress.error(f"{estate.code}: {type(error).__name__}: {error}")
            continue
        failing = [r.check for r in results if not r.ok]
        lines.append(f"{estate.code} {day}: " + (f"failing {', '.join(failing)}" if failing else "all checks passed"))
        progress.step()
    return "\n".join(lines)


# --- M-PESA statement upload ---------------------------------------------------------------

MPESA_COLUMNS = {"receipt": ("receipt no.", "receipt no", "receipt", "transaction id"),
                 "completed": ("completion time", "completed", "date"),
                 "paid_in": ("paid in", "amount"),
                 "details": ("details", "description")}
MAX_STATEMENT_BYTES = 5_000_000


class StatementError(ValueError):
    """The uploaded M-PESA statement cannot be read; `errors` is keyed by field."""

    def __init__(self, message: str):
        super().__init__(message)
        self.errors = {"statement": message}


@dataclass
class StatementUpload:
    added: int
    already: int
    skipped: list[str]  # "row N: why" for rows that are not money paid in


def upload_mpesa_statement(session: Session, estate: Estate, data: bytes, *, user_id: int | None = None) -> StatementUpload:
    """Store an M-PESA statement export's paid-in transactions (receipt, time, amount); commits.

    Columns are found by their headings (Receipt No., Completion Time, Paid In, Details), times are
    the estate's local time; a receipt uploaded before is left as it was.
    """
    import csv
    import io

    from flask_babel import gettext

    from app import audit

    if len(data) > MAX_STATEMENT_BYTES:
        raise StatementError(gettext("The file is larger than 5 MB; export one month at a time."))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StatementError(gettext("The file is not UTF-8 text: export the statement as CSV.")) from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise StatementError(gettext("The file is empty."))
    names = [h.strip().lower() for h in header]
    where = {}
    for field_name, options in MPESA_COLUMNS.items():
        where[field_name] = next((names.index(o) for o in options if o in names), None)
    missing = [f for f in ("receipt", "completed", "paid_in") if where[f] is None]
    if missing:
        raise StatementError(gettext("The statement needs the columns Receipt No., Completion Time and Paid In "
                                     "(missing: %(missing)s).", missing=", ".join(missing)))
    existing = set(session.scalars(select(MpesaStatementLine.receipt).where(MpesaStatementLine.estate_id == estate.id)))
    added, already, skipped = 0, 0, []
    for number, row in enumerate(reader, start=2):
        cell = lambda f: row[where[f]].strip() if where[f] is not None and where[f] < len(row) else ""  # noqa: E731
        receipt = cell("receipt").upper()
        if not receipt:
            continue
        try:
            amount = to_decimal(cell("paid_in")) if cell("paid_in") else None
        except MoneyError:
            amount = None
        if amount is None or amount <= 0:
            skipped.append(gettext("row %(row)s: %(receipt)s is not money paid in", row=number, receipt=receipt))
            continue
        try:
            completed = datetime.fromisoformat(cell("completed").replace("/", "-"))
        except ValueError:
            skipped.append(gettext("row %(row)s: %(receipt)s has no readable completion time", row=number,
                                   receipt=receipt))
            continue
        if completed.tzinfo is None:
            completed = completed.replace(tzinfo=estate.tz)
        if receipt in existing:
            already += 1
            continue
        existing.add(receipt)
        session.add(MpesaStatementLine(estate_id=estate.id, receipt=receipt[:32], completed_at=completed.astimezone(UTC),
                                       amount=amount, details=cell("details")[:300], uploaded_by_user_id=user_id))
        added += 1
    audit.record(session, "reconciliation.mpesa_statement", f"estate:{estate.id}", estate_id=estate.id,
                 new={"added": added, "already": already, "skipped": len(skipped)})
    session.commit()
    return StatementUpload(added, already, skipped)
