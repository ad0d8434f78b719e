"""ReportLab rendering of the monthly statement: the figures of app.statements.figures on one or two pages.

Owns layout only; the page furniture, styles and tables are the shared report look in
app.reports.pdf.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from io import BytesIO
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.units import mm
from reportlab.lib.styles import ParagraphStyle
from reportlab.platypus import Flowable, KeepTogether, Paragraph, Spacer, Table

from flask_babel import force_locale, gettext as _

from app.i18n.formatting import local_date, money_text, relocalise_rate
from app.ledger.anchors import anchor_line
from app.models import utcnow
from app.reports.pdf import (
    BODY, GRID, H2, NEGATIVE, SMALL, brand, data_table, escaped, page_band, pdf_text,
    report_document,
)
from app.statements.figures import CATEGORIES, CATEGORY_LABELS, StatementData

MAX_TOPUP_LINES = 18


def render_statement(data: StatementData, *, provisional: bool = False,
                     issued_at: datetime | None = None, language: str | None = None,
                     levies: bool = True) -> bytes:
    """The one-to-two page PDF of a unit's month, in the estate's currency and timezone.

    In `language` when given (the monthly run: the estate's default), else the reader's.
    `levies=False` leaves out the owner's levy section: the tenant's copy (levies are the
    owner's business, B3).
    """
    if language is not None:
        with force_locale(language):
            return render_statement(data, provisional=provisional, issued_at=issued_at, levies=levies)
    buffer = BytesIO()
    colour = brand(data.brand_colour)
    doc = report_document(buffer, f"{data.estate_name} statement {data.unit_number} {data.period}")
    tz = ZoneInfo(data.timezone)
    issued = (issued_at or utcnow()).astimezone(tz)
    title = _("%(estate)s - Monthly statement", estate=data.estate_name)
    month = local_date(datetime.strptime(data.period, "%Y-%m").date(), "%B %Y")  # data.period_label, for the reader
    subtitle = _("Unit %(number)s", number=data.unit_number) + f" · {month}"
    if provisional:
        subtitle += " · " + _("PROVISIONAL (not yet issued)")
    footer = _("Issued %(when)s (%(zone)s) · figures from the Meterwise ledger · ref %(ref)s",
               when=local_date(issued, "%d %b %Y %H:%M"), zone=data.timezone, ref=data.figures_sha256()[:12])
    anchor = anchor_line(data.chain_head)

    def furniture(canvas, d):
        page_band(canvas, d, colour, title, subtitle, footer, anchor)

    doc.build(_statement_story(data, colour, tz, provisional, levies), onFirstPage=furniture,
              onLaterPages=furniture)
    return buffer.getvalue()


def _statement_story(data: StatementData, colour, tz: ZoneInfo, provisional: bool, levies: bool) -> list:
    start_local = data.start.astimezone(tz)
    end_local = data.end.astimezone(tz)
    people = []
    if data.tenants:
        people.append(_("Tenant: %(names)s", names=", ".join(data.tenants)))
    if data.owners:
        people.append(_("Owner: %(names)s", names=", ".join(data.owners)))
    story = [
        Paragraph(escaped(" · ".join(people) or _("No tenant in this month")), BODY),
        Paragraph(escaped(
            _("Period %(start)s 00:00 to %(end)s 00:00 (%(zone)s);", start=local_date(start_local, "%d %b %Y"),
              end=local_date(end_local, "%d %b %Y"), zone=data.timezone) + " "
            + (_("wallet pockets hold kWh and kL; top-ups also show what was paid in %(currency)s.",
                 currency=data.currency) if data.units_mode
               else _("amounts in %(currency)s.", currency=data.currency))), SMALL),
    ]
    if provisional:
        story.append(Paragraph(
            _("This month has not been issued yet: these figures are provisional and may still change."),
            ParagraphStyle("warn", parent=SMALL, textColor=NEGATIVE)))
    if not data.pockets:
        story += [Spacer(1, 6 * mm), Paragraph(_("This unit has no wallet."), BODY)]
        return story + (_levy_section(data) if levies else [])
    story += [Paragraph(_("Summary"), H2), _summary_table(data, colour)]
    story += [Paragraph(_("Consumption"), H2), _consumption_table(data)]
    if any(p.daily for p in data.pockets):
        story.append(KeepTogether([Spacer(1, 2 * mm), ConsumptionChart(data, colour)]))
    story += _topup_section(data, tz)
    return story + (_levy_section(data) if levies else [])


def _levy_section(data: StatementData) -> list:
    """The owner's levies (B3): the levy pocket's month and what is in arrears."""
    levy = data.levy
    if levy is None:
        return []
    rows = [[_("Opening balance"), _pdf_amount(levy.opening, levy.currency)]]
    rows += [[memo or _("Levy"), _pdf_amount(amount, levy.currency)] for memo, amount in levy.lines[:MAX_TOPUP_LINES]]
    rows += [[_("Levy payments"), _pdf_amount(levy.paid, levy.currency)]]
    if levy.other:
        rows.append([_("Moved to arrears, corrections"), _pdf_amount(levy.other, levy.currency)])
    rows += [[_("Closing balance (negative: invoiced, unpaid)"), _pdf_amount(levy.closing, levy.currency)],
             [_("Levy arrears owed at month end"), _pdf_amount(levy.arrears, levy.currency)]]
    return [Paragraph(_("Levies (owner)"), H2),
            Paragraph(_("Levies are the owner's: they are charged to the owner's levy pocket, never to the "
                        "unit's wallet."), SMALL),
            data_table(["", _("Amount")], rows, widths=[140 * mm, 40 * mm], numeric=(1,), wrap=(0,))]


def _summary_table(data: StatementData, colour) -> Table:
    pockets = data.pockets
    header = [""] + [_(p.label) for p in pockets]
    show_total = not data.units_mode and len(pockets) > 1
    if show_total:
        header.append(_("Total"))

    def row(label: str, values: list[Decimal], commodity: str | None = None) -> list[str]:
        cells = [label] + [_pdf_amount(v, commodity or p.commodity) for v, p in zip(values, pockets)]
        if show_total:
            cells.append(_pdf_amount(sum(values, Decimal(0)), data.currency))
        return cells

    rows = [row(_("Opening balance"), [p.opening for p in pockets])]
    for category in CATEGORIES:
        rows.append(row(_(CATEGORY_LABELS[category]), [p.movements[category] for p in pockets]))
    rows.append(row(_("Closing balance"), [p.closing for p in pockets]))
    if data.units_mode:
        rows.append([_("Paid for top-ups")] + [_pdf_amount(p.topup_value, data.currency) for p in pockets])
    numeric = range(1, len(header))
    width = 180 * mm
    first = 38 * mm
    widths = [first] + [(width - first) / (len(header) - 1)] * (len(header) - 1)
    return data_table(header, rows, widths=widths, numeric=numeric, colour=colour,
                      bold_rows=(0, len(CATEGORIES) + 1))


def _consumption_table(data: StatementData) -> Table:
    rows = []
    for p in data.pockets:
        quantity = _pdf_amount(p.quantity, p.quantity_unit) if p.quantity is not None else _("no readings")
        charged = _pdf_amount(-p.movements["consumption"], p.commodity)
        rates = ", ".join(relocalise_rate(rate) for rate in p.rates) if p.rates else (_("units from the wallet") if data.units_mode else "-")
        rows.append([_(p.label), quantity, charged, pdf_text(rates)])
    return data_table([_("Utility"), _("Metered"), _("Charged to wallet"), _("Tariff applied")], rows,
                      widths=[38 * mm, 38 * mm, 42 * mm, 62 * mm], numeric=(1, 2))


class ConsumptionChart(Flowable):
    """Small daily bar charts, one per utility that consumed anything (each in its own unit).

    Drawn straight on the canvas: reportlab.graphics' chart widgets cost ~90 ms a statement
    and a Drawing of shapes ~9 ms; canvas calls cost well under 1 ms.
    """

    def __init__(self, data: StatementData, colour) -> None:
        super().__init__()
        self.colour = colour
        tz = ZoneInfo(data.timezone)
        first = data.start.astimezone(tz).date()
        days = (data.end.astimezone(tz).date() - first).days
        self.dates = [first + timedelta(days=i) for i in range(days)]
        self.pockets = [p for p in data.pockets if p.daily]
        self.width, self.height = 180 * mm, 32 * mm

    def wrap(self, available_width, available_height):
        return self.width, self.height

    def draw(self) -> None:
        canvas, gap = self.canv, 8 * mm
        each = (self.width - gap * (len(self.pockets) - 1)) / len(self.pockets)
        bottom, top = 10, self.height - 12
        for index, pocket in enumerate(self.pockets):
            left = index * (each + gap) + 22
            plot_width = each - 24
            values = [pocket.daily.get(day, Decimal(0)) for day in self.dates]
            peak = max(max(values), Decimal(0))
            unit = {"KWH": "kWh", "KL": "kL"}.get(pocket.commodity, pocket.commodity)
            canvas.setFillColor(colors.black)
            canvas.setFont("Helvetica-Bold", 7.5)
            canvas.drawString(left - 22, self.height - 6, pdf_text(_("%(utility)s per day (%(unit)s)", utility=_(pocket.label), unit=unit)))
            canvas.setFont("Helvetica", 6)
            canvas.drawRightString(left - 2, top - 2, _axis_number(peak))
            canvas.drawRightString(left - 2, bottom - 2, "0")
            slot = plot_width / len(self.dates)
            for offset, day in enumerate(self.dates):
                if day.day in (1, 10, 20) or offset == len(self.dates) - 1:
                    canvas.drawCentredString(left + (offset + 0.5) * slot, 2, str(day.day))
            canvas.setStrokeColor(GRID)
            canvas.setLineWidth(0.3)
            canvas.line(left, top, left + plot_width, top)
            canvas.setFillColor(self.colour)
            scale = (top - bottom) / float(peak) if peak > 0 else 0.0  # drawing only, never money
            for offset, value in enumerate(values):
                bar = float(value) * scale
                if bar > 0:
                    canvas.rect(left + offset * slot + 0.4, bottom, max(slot - 0.8, 0.4), bar,
                                stroke=0, fill=1)
            canvas.setStrokeColor(colors.HexColor("#667085"))
            canvas.setLineWidth(0.5)
            canvas.line(left, bottom, left + plot_width, bottom)


def _axis_number(value: Decimal) -> str:
    """A chart axis label: whole numbers above 10, two places below."""
    return f"{value:,.0f}" if value >= 10 else f"{value:,.2f}"


def _topup_section(data: StatementData, tz: ZoneInfo) -> list:
    story = [Paragraph(_("Top-ups"), H2)]
    if not data.topups:
        return story + [Paragraph(_("No top-ups this month."), BODY)]
    shown = data.topups[:MAX_TOPUP_LINES]
    labels = {p.utility: _(p.label) for p in data.pockets}
    rows = []
    for line in shown:
        commodities = {commodity for _, _, commodity in line.parts}
        if len(commodities) == 1:
            amount = _pdf_amount(sum((a for _, a, _ in line.parts), Decimal(0)), commodities.pop())
        else:  # units mode: kWh and kL do not add up
            amount = ", ".join(_pdf_amount(a, c) for _, a, c in line.parts)
        pockets = ", ".join(labels.get(u, u) for u, _, _ in line.parts)
        rows.append([local_date(line.occurred_at.astimezone(tz), "%d %b %H:%M"), line.memo or _("Top-up"),
                     pockets, amount])
    story.append(data_table([_("When"), _("Description"), _("Pockets"), _("Amount")], rows,
                            widths=[24 * mm, 90 * mm, 36 * mm, 30 * mm], numeric=(3,),
                            wrap=(1, 2) if not data.units_mode else (1, 2, 3)))
    if len(data.topups) > len(shown):
        story.append(Paragraph(
            _("and %(count)s more top-ups; every one is in your transaction history in the portal.",
              count=len(data.topups) - len(shown)), SMALL))
    return story


def _pdf_amount(amount: Decimal | None, commodity: str) -> str:
    """`app.reports.pdf.pdf_amount` in the reader's language (English unchanged)."""
    return "-" if amount is None else pdf_text(money_text(Decimal(amount), commodity))
