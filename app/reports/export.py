"""The one export mechanism for report tables (A6): the same rows and columns as CSV or PDF.

A page that shows a table offers `?format=csv` and `?format=pdf` links; its view builds
the rows once and, when a format is asked for, returns `respond(rows, columns, title, fmt)`
instead of the page. CSV keeps numbers machine-readable (plain decimals, ISO times, the
commodity in its own column); the PDF is the same table with the report page furniture.
"""
from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, request

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


def requested_format() -> str | None:
    """The export format a request asks for (`?format=csv|pdf`), None for the page itself."""
    wanted = request.args.get("format")
    if wanted is None:
        return None
    if wanted not in FORMATS:
        abort(400, f"format must be one of {', '.join(FORMATS)}")
    return wanted


def respond(rows: Iterable[Any], columns: Sequence[Column], title: str, fmt: str, *,
            subtitle: str = "", timezone: str | None = None) -> Response:
    """The rows as a CSV or PDF download named after the title, times in `timezone`.

    Without a zone the viewer's is used (their estate's, else UTC; app/presenters.py), and
    the PDF says which zone its times are in.
    """
    from app.presenters import display_timezone

    rows = list(rows)
    zone = ZoneInfo(display_timezone(timezone))
    slug = re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "report"
    if fmt == "csv":
        body = to_csv(rows, columns, zone).encode("utf-8-sig")  # the BOM makes Excel read UTF-8
        mimetype = "text/csv"
    elif fmt == "pdf":
        table = [[_pdf_cell(column.value(row), zone) for column in columns] for row in rows]
        numeric = [i for i, column in enumerate(columns) if column.numeric]
        body = render_table_pdf(title, [c.label for c in columns], table, subtitle=subtitle,
                                numeric=numeric, timezone=zone.key)
        mimetype = "application/pdf"
    else:
        abort(400, f"format must be one of {', '.join(FORMATS)}")
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{slug}.{fmt}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


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
            header.append(f"{column.label} unit")
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
