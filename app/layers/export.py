"""Export downloads for the blueprints: `?format=csv|pdf` read from the request, the file returned.

The files themselves are built by app.reports.export (the columns, CSV and PDF tables);
this module is the request side, so it lives beside the blueprints.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, request
from flask_babel import gettext

from app.i18n.formatting import translate_text
from app.reports.export import FORMATS, Column, Section, to_csv, to_pdf, to_report_pdf


def requested_format() -> str | None:
    """The export format a request asks for (`?format=csv|pdf`), None for the page itself."""
    wanted = request.args.get("format")
    if wanted is None:
        return None
    if wanted not in FORMATS:
        abort(400, gettext("format must be one of %(choices)s", choices=", ".join(FORMATS)))
    return wanted


def translated_columns(columns: Sequence[Column]) -> list[Column]:
    """The columns with their headings in the reader's language (X8).

    A heading made with `_()`/`lazy_gettext` is already translated; an English heading that is a
    msgid of the catalogues is looked up; anything else stays as it is. The import templates
    whose headers SPEC fixes (`unit,utility,amount`, ...) are not built here and stay English.
    """
    return [dataclasses.replace(column, label=translate_text(str(column.label))) for column in columns]


def respond(rows: Iterable[Any], columns: Sequence[Column], title: str, fmt: str, *,
            subtitle: str = "", timezone: str | None = None, note: str = "") -> Response:
    """The rows as a CSV or PDF download named after the title, times in `timezone`.

    Without a zone the viewer's is used (their estate's, else UTC; app/presenters.py), and
    the PDF says which zone its times are in.
    """
    from app.presenters import display_timezone

    rows = list(rows)
    zone = ZoneInfo(display_timezone(timezone))
    slug = _slug(str(title))
    columns, title = translated_columns(columns), translate_text(str(title))
    subtitle, note = translate_text(str(subtitle)), translate_text(str(note))
    if fmt == "csv":
        body = to_csv(rows, columns, zone).encode("utf-8-sig")  # the BOM makes Excel read UTF-8
        mimetype = "text/csv"
    elif fmt == "pdf":
        body = to_pdf(rows, columns, title, zone, subtitle=subtitle, note=note)
        mimetype = "application/pdf"
    else:
        abort(400, gettext("format must be one of %(choices)s", choices=", ".join(FORMATS)))
    return _download(body, mimetype, slug, fmt)


def respond_report(sections: Sequence[Section], title: str, *, subtitle: str = "", timezone: str | None = None,
                   note: str = "") -> Response:
    """A page's every figure in one PDF download (`respond` is one table as CSV or PDF)."""
    from app.presenters import display_timezone

    zone = ZoneInfo(display_timezone(timezone))
    slug = _slug(str(title))
    title, subtitle, note = translate_text(str(title)), translate_text(str(subtitle)), translate_text(str(note))
    body = to_report_pdf(sections, title, zone, subtitle=subtitle, note=note)
    return _download(body, "application/pdf", slug, "pdf")


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "report"


def _download(body: bytes, mimetype: str, slug: str, fmt: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{slug}.{fmt}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
