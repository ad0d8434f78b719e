"""Export downloads for the blueprints: `?format=csv|pdf` read from the request, the file returned.

The files themselves are built by app.reports.export (the columns, CSV and PDF tables);
this module is the request side, so it lives beside the blueprints.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, request
from flask_babel import gettext

from app.i18n.formatting import translate_text
from app.i18n.messages import is_message, message, render
from app.reports.export import FORMATS, Column, Section, to_csv, to_pdf, to_report_pdf


TITLE_HEADER = "X-Report-Title"  # the title's message parts, read by report subscriptions (issue 23)


class ReportTitle(str):
    """A download's title: the English text (the file's name comes from it) and its message parts,
    so the PDF heading and a subscription's name are written in the reader's language."""

    parts: dict

    def __new__(cls, msgid: str, **params):
        from app.i18n.messages import english

        parts = message(msgid, **params)
        title = super().__new__(cls, english(parts))
        title.parts = parts
        return title


def titled(msgid: str, **params) -> ReportTitle:
    """`respond(rows, columns, titled(N_("Meters %(estate)s"), estate=estate.name), fmt)`."""
    return ReportTitle(msgid, **params)


def title_parts(title) -> dict:
    """The message parts of a title: its own, a lazy msgid's, or the text itself as the msgid."""
    parts = getattr(title, "parts", None)
    if is_message(parts):
        return parts
    args = getattr(title, "_args", None)  # flask_babel's LazyString keeps its msgid and values
    if args and isinstance(args[0], str) and not getattr(title, "_kwargs", None):
        return message(args[0])
    return message(str(title).replace("%", "%%"))


def _title_text(title) -> str:
    return render(title.parts) if isinstance(title, ReportTitle) else translate_text(str(title))


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
    slug, parts = _slug(str(title)), title_parts(title)
    columns, title = translated_columns(columns), _title_text(title)
    subtitle, note = translate_text(str(subtitle)), translate_text(str(note))
    if fmt == "csv":
        body = to_csv(rows, columns, zone).encode("utf-8-sig")  # the BOM makes Excel read UTF-8
        mimetype = "text/csv"
    elif fmt == "pdf":
        body = to_pdf(rows, columns, title, zone, subtitle=subtitle, note=note)
        mimetype = "application/pdf"
    else:
        abort(400, gettext("format must be one of %(choices)s", choices=", ".join(FORMATS)))
    return _download(body, mimetype, slug, fmt, parts)


def respond_report(sections: Sequence[Section], title: str, *, subtitle: str = "", timezone: str | None = None,
                   note: str = "") -> Response:
    """A page's every figure in one PDF download (`respond` is one table as CSV or PDF)."""
    from app.presenters import display_timezone

    zone = ZoneInfo(display_timezone(timezone))
    slug, parts = _slug(str(title)), title_parts(title)
    title, subtitle, note = _title_text(title), translate_text(str(subtitle)), translate_text(str(note))
    body = to_report_pdf(sections, title, zone, subtitle=subtitle, note=note)
    return _download(body, "application/pdf", slug, "pdf", parts)


def _slug(title: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-").lower() or "report"


def _download(body: bytes, mimetype: str, slug: str, fmt: str, parts: dict | None = None) -> Response:
    response = Response(body, mimetype=mimetype)
    if parts is not None:
        response.headers[TITLE_HEADER] = json.dumps(parts, ensure_ascii=True, default=str)[:2000]
    response.headers["Content-Disposition"] = f'attachment; filename="{slug}.{fmt}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response
