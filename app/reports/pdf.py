"""ReportLab rendering: the shared page look of every report PDF, its tables, and receipts.

Owns layout only; figures arrive as plain values (app.statements, app.reports.export). Text
uses the PDF base fonts, so it is cleaned to what they can draw (WinAnsi): the narrow
no-break space money formatting uses becomes a plain space.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from io import BytesIO
from zoneinfo import ZoneInfo

from flask_babel import gettext
from reportlab import rl_config
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import (
    Flowable, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle,
)

from app.estates.settings_catalog import setting_default
from app.i18n.formatting import local_date
from app.models import utcnow
from app.money import format_amount

rl_config.useA85 = 0  # binary compressed streams: smaller files, ~2 ms less per statement
_STYLES = getSampleStyleSheet()
BODY = ParagraphStyle("body", parent=_STYLES["Normal"], fontName="Helvetica", fontSize=9, leading=11.5)
SMALL = ParagraphStyle("small", parent=BODY, fontSize=7.5, leading=9.5, textColor=colors.HexColor("#555555"))
H2 = ParagraphStyle("h2", parent=BODY, fontName="Helvetica-Bold", fontSize=11, leading=14,
                    spaceBefore=8, spaceAfter=4)
CELL = ParagraphStyle("cell", parent=BODY, fontSize=8.5, leading=10.5)
CELL_RIGHT = ParagraphStyle("cell_right", parent=CELL, alignment=TA_RIGHT)
CELL_HEAD = ParagraphStyle("cell_head", parent=CELL, fontName="Helvetica-Bold")
CELL_HEAD_RIGHT = ParagraphStyle("cell_head_right", parent=CELL_HEAD, alignment=TA_RIGHT)
GRID = colors.HexColor("#d0d5dd")
SHADE = colors.HexColor("#f2f4f7")
NEGATIVE = colors.HexColor("#b42318")


def pdf_text(text: object) -> str:
    """Text the base fonts can draw: narrow spaces become spaces, other gaps become '?'."""
    value = str(text).replace("\u202f", " ").replace("\u2009", " ").replace("\u2212", "-")
    return value.encode("cp1252", "replace").decode("cp1252")


def pdf_amount(amount: Decimal | None, commodity: str) -> str:
    """Money or a quantity as the PDF shows it ('R 1 234.50', '42.125 kWh')."""
    return "-" if amount is None else pdf_text(format_amount(Decimal(amount), commodity))


def brand(colour: str) -> colors.Color:
    """The estate's colour, or the default when the setting is not a colour."""
    try:
        return colors.HexColor(colour)
    except (ValueError, TypeError):
        return colors.HexColor(setting_default("brand_colour"))


def escaped(text: object) -> str:
    """Text safe inside a Paragraph: drawable by the base fonts, markup characters escaped."""
    return pdf_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- shared page furniture ---------------------------------------------------------------


def page_band(canvas, doc, colour: colors.Color, title: str, subtitle: str, footer: str,
              anchor: str = "") -> None:
    """The coloured title band on every page, the footer with page numbers, and the ledger anchor."""
    width, height = doc.pagesize
    canvas.saveState()
    canvas.setFillColor(colour)
    canvas.rect(0, height - 24 * mm, width, 24 * mm, stroke=0, fill=1)
    canvas.setFillColor(colors.white)
    canvas.setFont("Helvetica-Bold", 15)
    canvas.drawString(doc.leftMargin, height - 12 * mm, pdf_text(title))
    canvas.setFont("Helvetica", 9.5)
    canvas.drawString(doc.leftMargin, height - 18.5 * mm, pdf_text(subtitle))
    canvas.setFillColor(colors.HexColor("#667085"))
    canvas.setFont("Helvetica", 7.5)
    canvas.drawString(doc.leftMargin, 10 * mm, pdf_text(footer))
    canvas.drawRightString(width - doc.rightMargin, 10 * mm, pdf_text(gettext("Page %(page)s", page=doc.page)))
    if anchor:
        # Above the footer, inside the bottom margin; fixed-width so the hash reads and copies cleanly.
        canvas.setFont("Courier", 7)
        canvas.drawString(doc.leftMargin, 13.5 * mm, pdf_text(anchor))
    canvas.restoreState()


def report_document(buffer: BytesIO, title: str, pagesize=A4) -> SimpleDocTemplate:
    return SimpleDocTemplate(buffer, pagesize=pagesize, title=pdf_text(title), author="Meterwise",
                             leftMargin=15 * mm, rightMargin=15 * mm, topMargin=30 * mm,
                             bottomMargin=17 * mm, invariant=1)


PADDING = 12  # a Table cell's default left and right padding (6 pt each)
PORTRAIT_WIDTH = A4[0] - 30 * mm  # the frame inside report_document's margins
LANDSCAPE_WIDTH = A4[1] - 30 * mm


def _natural_widths(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[float]:
    """Each column's width on one line: its widest cell or heading, with padding."""
    widths = [stringWidth(h, "Helvetica-Bold", 8.5) for h in header]
    for row in rows:
        for i, value in enumerate(row):
            width = stringWidth(value, "Helvetica", 8.5)
            if width > widths[i]:
                widths[i] = width
    return [w + PADDING for w in widths]


def fitted_widths(natural: Sequence[float], available: float) -> list[float]:
    """Column widths that add up to at most `available`: narrow columns keep their width,
    the wide ones share what is left equally (and wrap)."""
    if sum(natural) <= available:
        return list(natural)
    widths = list(natural)
    left, order = available, sorted(range(len(natural)), key=lambda i: natural[i])
    for position, index in enumerate(order):
        share = left / (len(order) - position)
        if natural[index] > share:
            for rest in order[position:]:
                widths[rest] = share
            break
        left -= natural[index]
    return widths


def data_table(header: Sequence[str], rows: Sequence[Sequence[object]], *, widths=None,
               numeric: Sequence[int] = (), colour: colors.Color | None = None,
               bold_rows: Sequence[int] = (), wrap: Sequence[int] = (),
               available: float = PORTRAIT_WIDTH) -> Table:
    """A report table that fits its frame: shaded header, right-aligned numeric columns,
    header repeated per page.

    Widths are the ones given, else each column's natural width, shrunk to fit `available`.
    Cells are plain strings (fast); a column becomes wrapping Paragraphs when asked (`wrap`)
    or when its text is wider than its column, so no cell runs past the page edge.
    """
    head = [pdf_text(h) for h in header]
    cells = [[pdf_text(value) for value in row] for row in rows]
    natural = _natural_widths(head, cells)
    if widths is None:
        widths = fitted_widths(natural, available)
    wrapping = set(wrap) | {i for i, width in enumerate(widths) if natural[i] > width + 0.01}
    on_colour = {"textColor": colors.white} if colour else {}
    head_styles = (ParagraphStyle("head", parent=CELL_HEAD, **on_colour),
                   ParagraphStyle("head_right", parent=CELL_HEAD_RIGHT, **on_colour)) if wrapping else ()
    body = [[Paragraph(escaped(h), head_styles[i in numeric]) if i in wrapping else h
             for i, h in enumerate(head)]]
    for row in cells:
        body.append([Paragraph(escaped(value), CELL_RIGHT if i in numeric else CELL) if i in wrapping
                     else value
                     for i, value in enumerate(row)])
    table = Table(body, colWidths=widths, repeatRows=1)
    style = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 8.5),
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 8.5),
        ("BACKGROUND", (0, 0), (-1, 0), colour or SHADE),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.white if colour else colors.black),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, GRID),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
    ]
    for column in numeric:
        style.append(("ALIGN", (column, 0), (column, -1), "RIGHT"))
    for index in bold_rows:
        style.append(("BACKGROUND", (0, index + 1), (-1, index + 1), SHADE))
        style.append(("FONT", (0, index + 1), (-1, index + 1), "Helvetica-Bold", 8.5))
    table.setStyle(TableStyle(style))
    return table


def render_table_pdf(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *,
                     subtitle: str = "", numeric: Sequence[int] = (), timezone: str = "UTC",
                     note: str = "") -> bytes:
    """A plain report PDF of one table (A6 exports) that fits the page: portrait when the
    columns fit on one line, else landscape with the widest columns wrapped. `note`: a
    sentence above the table (what the figures are), wrapped to the page."""
    buffer = BytesIO()
    natural = sum(_natural_widths([pdf_text(c) for c in columns], [[pdf_text(v) for v in r] for r in rows]))
    pagesize, available = (A4, PORTRAIT_WIDTH) if natural <= PORTRAIT_WIDTH else (landscape(A4), LANDSCAPE_WIDTH)
    doc = report_document(buffer, title, pagesize)
    now = utcnow().astimezone(ZoneInfo(timezone))
    generated = gettext("Generated %(time)s by Meterwise · times in %(zone)s · %(num)s rows",
                        time=local_date(now, "%d %b %Y %H:%M"), zone=timezone, num=len(rows))

    def furniture(canvas, d):
        page_band(canvas, d, colors.HexColor("#0f766e"), title, subtitle, generated)

    story = [data_table(columns, rows, numeric=numeric, available=available)] if rows else [
        Paragraph(gettext("No rows."), BODY)]
    if note:
        story.insert(0, Paragraph(escaped(note), BODY))
    doc.build(story, onFirstPage=furniture, onLaterPages=furniture)
    return buffer.getvalue()


# --- a report of several figures -----------------------------------------------------------


@dataclass(frozen=True)
class ChartSeries:
    """One series of a report chart: its legend label, a value per x label, and its colour."""

    label: str
    values: Sequence[float]
    colour: str


@dataclass(frozen=True)
class ReportChart:
    """A figure's chart as the page draws it: bars (stacked when asked, negatives below the
    axis) or lines over the x labels, in one unit."""

    kind: str  # "bar" | "line"
    labels: Sequence[str]
    series: Sequence[ChartSeries]
    unit: str = ""
    stacked: bool = False


@dataclass(frozen=True)
class ReportSection:
    """One figure of a whole-report PDF: a heading, an optional note and chart, and its table."""

    heading: str
    columns: Sequence[str]
    rows: Sequence[Sequence[object]]
    numeric: Sequence[int] = ()
    note: str = ""
    chart: ReportChart | None = None


def _nice(value: float) -> float:
    """The round number at or above a positive value an axis ends at (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 0.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if value <= step * power * (1 + 1e-9))


def _tick(value: float) -> str:
    size = abs(value)
    return f"{value:,.0f}" if size >= 10 or size == 0 else f"{value:,.2f}"


class SeriesChart(Flowable):
    """A report chart drawn straight on the canvas (fast, like the statement's daily bars):
    y axis from the lowest to the highest stack, x labels thinned to fit, a legend on top."""

    def __init__(self, chart: ReportChart, width: float, height: float = 55 * mm) -> None:
        super().__init__()
        self.chart, self.width, self.height = chart, width, height

    def wrap(self, available_width, available_height):
        return self.width, self.height

    def _range(self) -> tuple[float, float]:
        chart = self.chart
        if chart.kind == "bar" and chart.stacked:
            highs = [sum(max(s.values[i], 0) for s in chart.series) for i in range(len(chart.labels))]
            lows = [sum(min(s.values[i], 0) for s in chart.series) for i in range(len(chart.labels))]
        else:
            highs = lows = [v for s in chart.series for v in s.values]
        high, low = _nice(max([0.0, *highs])), -_nice(-min([0.0, *lows]))
        return (low, high) if high > low else (low, low + 1.0)

    def draw(self) -> None:
        canvas, chart = self.canv, self.chart
        left, right, bottom, top = 42, self.width - 4, 14, self.height - 16
        low, high = self._range()
        scale = (top - bottom) / (high - low)  # drawing only, never money

        def y(value: float) -> float:
            return bottom + (value - low) * scale

        # legend
        canvas.setFont("Helvetica", 7)
        x = left
        for series in chart.series:
            canvas.setFillColor(colors.HexColor(series.colour))
            canvas.rect(x, self.height - 8, 7, 6, stroke=0, fill=1)
            canvas.setFillColor(colors.black)
            text = pdf_text(series.label)
            canvas.drawString(x + 9, self.height - 7.5, text)
            x += 9 + stringWidth(text, "Helvetica", 7) + 10
        if chart.unit:
            canvas.drawRightString(right, self.height - 7.5, pdf_text(chart.unit))
        # y axis: low, zero and high
        canvas.setFont("Helvetica", 6.5)
        canvas.setStrokeColor(GRID)
        canvas.setLineWidth(0.3)
        drawn: list[float] = []
        for value in (0.0, high, low, high / 2, low / 2):  # skip a tick too close to one drawn
            if all(abs(y(value) - y(other)) >= 9 for other in drawn):
                drawn.append(value)
                canvas.line(left, y(value), right, y(value))
                canvas.drawRightString(left - 3, y(value) - 2, _tick(value))
        count = max(len(chart.labels), 1)
        slot = (right - left) / count
        every = max(1, int(stringWidth("2026-Q1", "Helvetica", 6.5) + 6) // max(int(slot), 1) + 1)
        canvas.setFillColor(colors.black)
        for i, name in enumerate(chart.labels):
            if i % every == 0 or i == count - 1:
                canvas.drawCentredString(left + (i + 0.5) * slot, 3, pdf_text(name))
        if chart.kind == "bar":
            columns = 1 if chart.stacked else max(len(chart.series), 1)
            bar = max(slot * 0.7 / columns, 0.5)
            for i in range(count):
                up = down = 0.0
                for n, series in enumerate(chart.series):
                    value = float(series.values[i])
                    if value == 0:
                        continue
                    if chart.stacked:
                        base = up if value > 0 else down
                        x0 = left + i * slot + slot * 0.15
                        if value > 0:
                            up += value
                        else:
                            down += value
                    else:
                        base, x0 = 0.0, left + i * slot + slot * 0.15 + n * bar
                    canvas.setFillColor(colors.HexColor(series.colour))
                    y0, y1 = sorted((y(base), y(base + value)))
                    canvas.rect(x0, y0, bar, max(y1 - y0, 0.3), stroke=0, fill=1)
        else:
            for series in chart.series:
                canvas.setStrokeColor(colors.HexColor(series.colour))
                canvas.setFillColor(colors.HexColor(series.colour))
                canvas.setLineWidth(1.2)
                points = [(left + (i + 0.5) * slot, y(float(v))) for i, v in enumerate(series.values)]
                for a, b in zip(points, points[1:]):
                    canvas.line(*a, *b)
                for px, py in points:
                    canvas.circle(px, py, 1.4, stroke=0, fill=1)
        canvas.setStrokeColor(colors.HexColor("#667085"))
        canvas.setLineWidth(0.5)
        canvas.line(left, y(0.0), right, y(0.0))


def render_report_pdf(title: str, sections: Sequence[ReportSection], *, subtitle: str = "",
                      timezone: str = "UTC", note: str = "") -> bytes:
    """One PDF of a page's every figure (its chart when it has one, then its table), with the
    report page furniture: portrait unless a table needs landscape to fit."""
    buffer = BytesIO()
    widest = max((sum(_natural_widths([pdf_text(c) for c in s.columns], [[pdf_text(v) for v in r] for r in s.rows]))
                  for s in sections), default=0)
    pagesize, available = (A4, PORTRAIT_WIDTH) if widest <= PORTRAIT_WIDTH else (landscape(A4), LANDSCAPE_WIDTH)
    doc = report_document(buffer, title, pagesize)
    now = utcnow().astimezone(ZoneInfo(timezone))
    generated = f"Generated {now:%d %b %Y %H:%M} by Meterwise · times in {timezone} · {len(sections)} figures"

    def furniture(canvas, d):
        page_band(canvas, d, colors.HexColor("#0f766e"), title, subtitle, generated)

    story: list = [Paragraph(escaped(note), BODY), Spacer(1, 2 * mm)] if note else []
    for section in sections:
        head = [Paragraph(escaped(section.heading), H2)]
        if section.note:
            head.append(Paragraph(escaped(section.note), SMALL))
        if section.chart is not None and any(v for series in section.chart.series for v in series.values):
            head += [Spacer(1, 2 * mm), SeriesChart(section.chart, available), Spacer(1, 2 * mm)]
        if section.rows:
            table = data_table(section.columns, section.rows, numeric=section.numeric, available=available)
            table.hAlign = "LEFT"  # under its heading and chart, as the page shows it
        else:
            table = Paragraph("No rows.", BODY)
        if len(section.rows) <= 14:  # a short table stays on the page of its heading and chart
            story.append(KeepTogether([*head, table]))
        else:  # a long one starts below them and runs on (its header repeats per page)
            story += [KeepTogether(head), table]
        story.append(Spacer(1, 4 * mm))
    doc.build(story, onFirstPage=furniture, onLaterPages=furniture)
    return buffer.getvalue()


# --- a payment receipt ------------------------------------------------------------------


def render_receipt_pdf(receipt) -> bytes:
    """One payment's receipt (app.reports.receipts.Receipt) on an A4 page, in the estate's timezone.

    In the reader's language: words through gettext, money and dates per `app.i18n.formatting`
    (English exactly as before)."""
    from app.i18n.formatting import money_text, translate_text, translated_label

    line, estate = receipt.line, receipt.estate
    buffer = BytesIO()
    doc = report_document(buffer, f"Receipt {line.receipt}")
    tz = ZoneInfo(estate.timezone)
    title = gettext("%(estate)s - Payment receipt", estate=estate.name)
    subtitle = gettext("Receipt %(number)s · Unit %(unit)s", number=line.receipt, unit=line.unit.number)
    footer = gettext("Generated %(when)s (%(zone)s) by Meterwise",
                     when=local_date(utcnow().astimezone(tz), "%d %b %Y %H:%M"), zone=estate.timezone)

    def furniture(canvas, d):
        page_band(canvas, d, colors.HexColor("#0f766e"), title, subtitle, footer)

    def amount(value, commodity):
        return "-" if value is None else pdf_text(money_text(Decimal(value), commodity))

    facts = [[gettext("Paid"), f"{local_date(line.at.astimezone(tz), '%d %b %Y %H:%M')} ({estate.timezone})"],
             [gettext("Unit"), f"{line.unit.number}, {estate.name}"], [gettext("Method"), translate_text(line.method)],
             [gettext("Payer reference"), line.reference or "-"],
             [gettext("Amount"), amount(line.amount, line.currency)],
             [gettext("Status"), translated_label(line.status, "payment_line")]]
    if receipt.payer:
        facts.insert(4, [gettext("Paid by"), receipt.payer])
    story = [data_table([gettext("Receipt number"), line.receipt], facts, widths=[45 * mm, 135 * mm]),
             Spacer(1, 4 * mm), Paragraph(escaped(gettext("Credited")), H2),
             data_table([gettext("Pocket"), gettext("Credited"), gettext("New balance")],
                        [[translated_label(p.utility, "utility") if p.utility else "-",
                          amount(p.amount, p.commodity), amount(p.balance_after, p.commodity)] for p in receipt.parts],
                        widths=[60 * mm, 60 * mm, 60 * mm], numeric=(1, 2)), Spacer(1, 2 * mm)]
    if receipt.memo:
        story.append(Paragraph(escaped(receipt.memo), SMALL))
    if receipt.note:
        story.append(Paragraph(escaped(receipt.note), SMALL))
    doc.build(story, onFirstPage=furniture, onLaterPages=furniture)
    return buffer.getvalue()
