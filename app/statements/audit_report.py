"""The body corporate's audit-ready report for an AGM (B4): figures and PDF for a run of months.

Owns what the report says: the months and their lock status (C8), a summary per kind of
transaction, every transaction in the range, each account's balance change, variances
(bulk meters against the sum of unit meters) and the ledger verification result
(app.ledger.verify). Months are the ledger's own `period` values, so the report agrees
with the monthly statements to the cent.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from io import BytesIO

from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer
from flask_babel import gettext
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from app.settings import get_setting
from app.labels import label
from app.ledger.anchors import Anchor, anchor_line, chain_head
from app.ledger.verify import summarise, verify_ledger
from app.models import Account, Estate, FinancialPeriod, LedgerTransaction, Meter, Posting, Reading, utcnow
from app.money import quantize
from app.periods import next_period
from app.reports.pdf import (
    BODY, H2, SMALL, brand, data_table, page_band, pdf_amount, pdf_text, report_document,
)
from app.reports.summaries import BulkComparison
from app.statements.figures import DEFAULT_BRAND_COLOUR, StatementPeriodError, month_bounds

MAX_MONTHS = 24


@dataclass
class KindSummary:
    kind: str
    count: int
    moved: dict[str, Decimal]  # commodity -> sum of the positive legs


@dataclass
class BalanceChange:
    code: str
    name: str
    kind: str
    commodity: str
    opening: Decimal
    movement: Decimal

    @property
    def closing(self) -> Decimal:
        return self.opening + self.movement


# Bulk supply against unit meters, as on the utility page.
Variance = BulkComparison


@dataclass
class TransactionLine:
    seq: int
    occurred_at: datetime
    kind: str
    memo: str
    moved: dict[str, Decimal]
    hash: str


@dataclass
class AuditReport:
    estate: Estate
    first: str
    last: str
    start: datetime
    end: datetime
    months: list[tuple[str, str]] = field(default_factory=list)  # (period, status)
    kinds: list[KindSummary] = field(default_factory=list)
    transactions: list[TransactionLine] = field(default_factory=list)
    balances: list[BalanceChange] = field(default_factory=list)
    variances: list[Variance] = field(default_factory=list)
    verified_ok: bool = False
    verification: str = ""
    chain_head: Anchor | None = None  # printed as the ledger anchor
    levies: list = field(default_factory=list)  # app.billing.scheme.SchemeMonth per month (B3)

    @property
    def all_locked(self) -> bool:
        return all(status == "locked" for _, status in self.months)


def build_audit_report(session: Session, estate: Estate, first: str, last: str | None = None) -> AuditReport:
    """Collect the audit report's figures for the months `first`..`last` (inclusive)."""
    last = last or first
    start, _ = month_bounds(first, estate.timezone)
    _, end = month_bounds(last, estate.timezone)
    if last < first:
        raise StatementPeriodError(gettext("The last month comes before the first."))
    if start > utcnow():
        raise StatementPeriodError(gettext("%(month)s has not begun.", month=first))
    months = [first]
    while months[-1] < last:
        months.append(next_period(months[-1]))
        if len(months) > MAX_MONTHS:
            raise StatementPeriodError(gettext("An audit report covers at most %(max)s months.", max=MAX_MONTHS))
    report = AuditReport(estate, first, last, start, end)
    stored = dict(session.execute(select(FinancialPeriod.period, FinancialPeriod.status).where(
        FinancialPeriod.estate_id == estate.id, FinancialPeriod.period.in_(months))).all())
    report.months = [(m, stored.get(m, "open")) for m in months]
    in_range = and_(LedgerTransaction.estate_id == estate.id, LedgerTransaction.period >= first,
                    LedgerTransaction.period <= last)
    _add_transactions(session, report, in_range)
    _add_balances(session, report, first, last)
    _add_variances(session, report)
    from app.billing.scheme import levy_months
    report.levies = levy_months(session, estate, months)
    verification = verify_ledger(session, estate.id)
    report.verified_ok, report.verification = verification.ok, summarise(verification)
    report.chain_head = chain_head(session, estate.id)
    return report


def _add_transactions(session: Session, report: AuditReport, in_range) -> None:
    rows = session.execute(
        select(LedgerTransaction.id, LedgerTransaction.seq, LedgerTransaction.occurred_at,
               LedgerTransaction.kind, LedgerTransaction.memo, LedgerTransaction.hash,
               Posting.commodity, Posting.amount)
        .join(Posting, Posting.transaction_id == LedgerTransaction.id)
        .where(in_range, Posting.amount > 0)
        .order_by(LedgerTransaction.seq, Posting.id))
    lines: dict[int, TransactionLine] = {}
    for transaction_id, seq, occurred_at, kind, memo, digest, commodity, amount in rows:
        line = lines.get(transaction_id)
        if line is None:
            line = lines[transaction_id] = TransactionLine(seq, occurred_at, kind, memo, {}, digest)
        line.moved[commodity] = line.moved.get(commodity, Decimal(0)) + Decimal(amount)
    report.transactions = list(lines.values())
    kinds: dict[str, KindSummary] = {}
    for line in report.transactions:
        summary = kinds.setdefault(line.kind, KindSummary(line.kind, 0, defaultdict(Decimal)))
        summary.count += 1
        for commodity, amount in line.moved.items():
            summary.moved[commodity] += amount
    report.kinds = sorted(kinds.values(), key=lambda k: k.kind)


def _add_balances(session: Session, report: AuditReport, first: str, last: str) -> None:
    """Opening (before the first month) and movement (within the range) of every account."""
    before = LedgerTransaction.period < first
    rows = session.execute(
        select(Account.code, Account.name, Account.kind, Account.commodity, before.label("before"),
               func.sum(Posting.amount))
        .join(Posting, Posting.account_id == Account.id)
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .where(Account.estate_id == report.estate.id, LedgerTransaction.period <= last)
        .group_by(Account.code, Account.name, Account.kind, Account.commodity, before))
    changes: dict[str, BalanceChange] = {}
    for code, name, kind, commodity, earlier, total in rows:
        change = changes.setdefault(code, BalanceChange(code, name, kind, commodity, Decimal(0), Decimal(0)))
        if earlier:
            change.opening += quantize(Decimal(total), commodity)
        else:
            change.movement += quantize(Decimal(total), commodity)
    report.balances = sorted(changes.values(), key=lambda c: (c.kind != "pocket", c.kind, c.code))


def _add_variances(session: Session, report: AuditReport) -> None:
    rows = session.execute(
        select(Meter.utility, Meter.role, func.sum(Reading.consumption))
        .join(Reading, Reading.meter_id == Meter.id)
        .where(Meter.estate_id == report.estate.id, Meter.role.in_(("unit", "bulk")),
               Reading.taken_at > report.start, Reading.taken_at <= report.end)
        .group_by(Meter.utility, Meter.role))
    totals: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for utility, role, total in rows:
        totals[utility][role] += Decimal(total or 0)
    report.variances = [Variance(u, quantize(totals[u]["bulk"], "KWH"), quantize(totals[u]["unit"], "KWH"))
                        for u in sorted(totals) if "bulk" in totals[u]]


# --- PDF -----------------------------------------------------------------------------------


def render_audit_report(session: Session, report: AuditReport) -> bytes:
    """The AGM report as a PDF in the estate's currency and timezone."""
    estate = report.estate
    tz = estate.tz
    colour = brand(get_setting(session, "brand_colour", estate.id, DEFAULT_BRAND_COLOUR))
    buffer = BytesIO()
    span = report.first if report.first == report.last else f"{report.first} to {report.last}"
    doc = report_document(buffer, f"{estate.name} audit report {span}")
    title = f"{estate.name} - Audit report"
    subtitle = f"{span} · {estate.currency} · times in {estate.timezone}"
    footer = f"Generated {utcnow().astimezone(tz):%d %b %Y %H:%M} · Meterwise ledger"
    anchor = anchor_line(report.chain_head)

    def furniture(canvas, d):
        page_band(canvas, d, colour, title, subtitle, footer, anchor)

    story = [Paragraph("Ledger verification", H2),
             Paragraph(("<b>Verified: the hash chain is intact and every cached balance equals its "
                        "postings.</b>") if report.verified_ok else
                       "<b>VERIFICATION FAILED: see the details below.</b>", BODY)]
    story += [Paragraph(pdf_text(line).replace("&", "&amp;").replace("<", "&lt;"), SMALL)
              for line in report.verification.splitlines()]
    if report.chain_head is not None:
        story.append(Paragraph(
            f"Chain head when this report was made: <font face='Courier'>{report.chain_head}</font>. "
            "Keep this page: <font face='Courier'>flask ledger verify --anchor</font> followed by it "
            "proves later that no transaction up to it was removed or rewritten.", SMALL))
    story += [Paragraph("Months and period locking", H2),
              data_table(["Month", "Status"], report.months, widths=[40 * mm, 40 * mm])]
    if not report.all_locked:
        story.append(Paragraph("Months that are not locked can still change; lock them on the "
                               "staff ledger page before the AGM.", SMALL))
    story += [Paragraph("Summary by kind of transaction", H2),
              data_table(["Kind", "Transactions", "Value moved"],
                         [[label("transaction", k.kind), str(k.count), _moved(k.moved)] for k in report.kinds] or [["-", "0", "-"]],
                         widths=[60 * mm, 30 * mm, 90 * mm], numeric=(1, 2))]
    story += [Paragraph("Balance changes", H2), data_table(
        ["Account", "Opening", "Movement", "Closing"],
        [[b.name, pdf_amount(b.opening, b.commodity), pdf_amount(b.movement, b.commodity),
          pdf_amount(b.closing, b.commodity)] for b in report.balances] or [["-", "-", "-", "-"]],
        widths=[66 * mm, 38 * mm, 38 * mm, 38 * mm], numeric=(1, 2, 3))]
    if any(m.billed or m.collected or m.arrears for m in report.levies):
        currency = report.estate.currency
        story += [Paragraph("Levies", H2), data_table(
            ["Month", "Billed", "Collected", "Levy arrears at month end"],
            [[m.period, pdf_amount(m.billed, currency), pdf_amount(m.collected, currency),
              pdf_amount(m.arrears, currency)] for m in report.levies],
            widths=[40 * mm, 46 * mm, 46 * mm, 48 * mm], numeric=(1, 2, 3))]
    story += [Paragraph("Variances: bulk supply against unit meters", H2)]
    if report.variances:
        story.append(data_table(
            ["Utility", "Bulk", "Units", "Loss", "Loss %"],
            [[v.utility.replace("_", " "), str(v.bulk), str(v.units), str(v.loss),
              "-" if v.loss_percent is None else f"{v.loss_percent} %"] for v in report.variances],
            widths=[40 * mm, 35 * mm, 35 * mm, 35 * mm, 35 * mm], numeric=(1, 2, 3, 4)))
    else:
        story.append(Paragraph("No bulk meters with readings in this period.", BODY))
    story += [Spacer(1, 4 * mm), Paragraph(f"All transactions ({len(report.transactions)})", H2)]
    story.append(data_table(
        ["Seq", "When", "Kind", "Memo", "Value", "Hash"],
        [[str(t.seq), f"{t.occurred_at.astimezone(tz):%d %b %Y %H:%M}", t.kind, t.memo,
          _moved(t.moved), t.hash[:10]] for t in report.transactions] or [["-"] * 6],
        widths=[12 * mm, 28 * mm, 22 * mm, 70 * mm, 28 * mm, 20 * mm], numeric=(0, 4), wrap=(3,)))
    doc.build(story, onFirstPage=furniture, onLaterPages=furniture)
    return buffer.getvalue()


def _moved(moved: dict[str, Decimal]) -> str:
    return ", ".join(pdf_amount(amount, commodity) for commodity, amount in sorted(moved.items())) or "-"
