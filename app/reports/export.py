"""The one export mechanism for report tables (A6): the same rows and columns as CSV or PDF.

This module builds the files from rows and columns; app.layers.export reads the request
(`?format=csv|pdf`) and returns them as a download. A page that shows a table offers
`?format=csv` and `?format=pdf` links; its view builds the rows once and, when a format is
asked for, returns `respond(rows, columns, title, fmt)` instead of the page. CSV keeps
numbers machine-readable (plain decimals, ISO times, the commodity in its own column); the
PDF is the same table with the report page furniture.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from app.money import format_amount, quantize
from app.reports.pdf import render_table_pdf

FORMATS = ("csv", "pdf")
_UNSAFE_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    """A column: its heading, how to read a row's value, and whether it is a number."""

    label: str
    value: Callable[[Any], Any]
    numeric: bool = False


def money_column(label: str, amount: Callable[[Any], Decimal | None],
                 commodity: Callable[[Any], str]) -> Column:
    """A money column: formatted in the PDF; the CSV keeps the plain decimal."""
    return Column(label, lambda row: _Money(amount(row), commodity(row)), numeric=True)


@dataclass(frozen=True)
class _Money:
    amount: Decimal | None
    commodity: str


def to_pdf(rows: Iterable[Any], columns: Sequence[Column], title: str, zone: ZoneInfo = UTC, *,
           subtitle: str = "", note: str = "") -> bytes:
    """The table as a PDF with the report page furniture, saying which zone its times are in."""
    table = [[_pdf_cell(column.value(row), zone) for column in columns] for row in rows]
    numeric = [i for i, column in enumerate(columns) if column.numeric]
    return render_table_pdf(title, [c.label for c in columns], table, subtitle=subtitle,
                            numeric=numeric, timezone=zone.key, note=note)


def _unit_heading(label: str) -> str:
    """The heading of a money column's commodity column ("Amount unit"), in the reader's language."""
    from flask import has_request_context
    from flask_babel import gettext

    return gettext("%(column)s unit", column=label) if has_request_context() else f"{label} unit"


def to_csv(rows: Iterable[Any], columns: Sequence[Column], zone: ZoneInfo = UTC) -> str:
    """The table as CSV text; money columns become an amount and a commodity column; times in `zone`."""
    out = io.StringIO()
    writer = csv.writer(out)
    rows = list(rows)
    money_columns = {i for i, c in enumerate(columns)
                     if rows and isinstance(c.value(rows[0]), _Money)}
    header = []
    for i, column in enumerate(columns):
        header.append(column.label)
        if i in money_columns:
            header.append(_unit_heading(column.label))
    writer.writerow(header)
    for row in rows:
        cells = []
        for i, column in enumerate(columns):
            value = column.value(row)
            if isinstance(value, _Money):
                cells += ["" if value.amount is None else str(quantize(value.amount, value.commodity)),
                          value.commodity]
            else:
                cells.append(_csv_cell(value, zone))
                if i in money_columns:
                    cells.append("")
        writer.writerow(cells)
    return out.getvalue()


def _csv_cell(value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):  # ISO with the zone's offset: still machine-readable
        return value.astimezone(zone).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (Decimal, int)):
        return str(value)
    text = str(value)
    # A cell a spreadsheet would run as a formula is written as text.
    return "'" + text if text.startswith(_UNSAFE_START) else text


def _pdf_cell(value: Any, zone: ZoneInfo) -> str:
    if value is None:
        return "-"
    if isinstance(value, _Money):
        return "-" if value.amount is None else format_amount(value.amount, value.commodity)
    if isinstance(value, datetime):
        return value.astimezone(zone).strftime("%d %b %Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d %b %Y")
    return str(value)


@dataclass(frozen=True)
class Section:
    """One figure of a whole-report PDF: its heading, rows and columns, a note, and its chart
    (app.reports.pdf.ReportChart) when it has one."""

    heading: str
    rows: Sequence[Any]
    columns: Sequence[Column]
    note: str = ""
    chart: Any = None


def to_report_pdf(sections: Iterable[Section], title: str, zone: ZoneInfo = UTC, *, subtitle: str = "",
                  note: str = "") -> bytes:
    """Several figures' tables (and charts) in one PDF, cells as `to_pdf` writes them."""
    from app.reports.pdf import ReportSection, render_report_pdf

    built = [ReportSection(s.heading, [c.label for c in s.columns],
                           [[_pdf_cell(c.value(row), zone) for c in s.columns] for row in s.rows],
                           numeric=[i for i, c in enumerate(s.columns) if c.numeric], note=s.note, chart=s.chart)
             for s in sections]
    return render_report_pdf(title, built, subtitle=subtitle, timezone=zone.key, note=note)
