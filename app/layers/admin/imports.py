"""Bulk imports pages (A1): upload a file, see its staged preview, commit it, download rejected rows.

Staff reach every estate, agents their own; an import of another estate is a 404. The work is
in app/estates/imports.py (the same functions the `flask import` command calls).
"""
from flask import Response, abort, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import estate_or_404
from app.estates.imports import (
    INLINE_ROWS, ImportRefused, get_kind, import_history, kinds, report_for, staged_rows, start_commit,
    start_import, template_csv,
)
from app.extensions import db
from app.htmx import is_partial, redirect, render
from app.layers.admin import ROLES, bp
from app.layers.export import respond
from app.layers.portal import job_panel
from app.models import Estate, ImportBatch, User
from app.reports.export import Column
from app.routing import INTEGER_MAX

SHOWN_ROWS = 200  # rows of each list on the page; the CSV has them all


def _estate(estate_id: int) -> Estate:
    return estate_or_404(db.session, current_user, estate_id, ROLES)


def _batch(estate: Estate, import_id: int) -> ImportBatch:
    if not 0 < import_id <= INTEGER_MAX:
        abort(404)
    batch = db.session.get(ImportBatch, import_id)
    if batch is None or batch.estate_id != estate.id:
        abort(404)
    return batch


def _imports_page(estate: Estate, errors: dict[str, str] | None = None, status: int = 200):
    response = render("admin/imports.html", estate=estate, kinds=kinds(), history=import_history(db.session, estate),
                      errors=errors or {}, chosen=request.form.get("kind") or request.args.get("kind") or "units",
                      inline_rows=INLINE_ROWS)
    response.status_code = status
    return response


@bp.get("/estates/<int:estate_id>/imports")
def imports(estate_id: int):
    return _imports_page(_estate(estate_id))


@bp.post("/estates/<int:estate_id>/imports")
def upload_import(estate_id: int):
    estate = _estate(estate_id)
    upload = request.files.get("file")
    kind = request.form.get("kind", "")
    if upload is None or not upload.filename:
        return _imports_page(estate, {"file": gettext("Choose a CSV or .xlsx file to upload.")}, 400)
    try:
        report = start_import(db.session, estate, kind, upload.filename, upload.read(), user_id=current_user.id)
    except ImportRefused as error:
        db.session.rollback()
        return _imports_page(estate, error.errors, 400)
    target = url_for("admin.import_batch", estate_id=estate.id, import_id=report.batch.id,
                     repeated=1 if report.repeated else None)
    return redirect(target)


@bp.get("/estates/<int:estate_id>/imports/template/<kind>")
def import_template(estate_id: int, kind: str):
    estate = _estate(estate_id)
    try:
        found = get_kind(kind)
    except ImportRefused:
        abort(404)
    response = Response(template_csv(found), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{found.name}-{estate.code.lower()}.csv"'
    return response


@bp.get("/estates/<int:estate_id>/imports/<int:import_id>")
def import_batch(estate_id: int, import_id: int):
    estate = _estate(estate_id)
    batch = _batch(estate, import_id)
    kind = get_kind(batch.kind)
    if request.args.get("format"):
        return _rejected_csv(estate, batch, kind)
    report = report_for(db.session, batch, repeated=bool(request.args.get("repeated")))
    planned = staged_rows(db.session, batch, ("create", "update"), limit=SHOWN_ROWS)
    uploader = db.session.get(User, batch.uploaded_by_user_id) if batch.uploaded_by_user_id else None
    part = request.args.get("part")
    return render("admin/import.html", "batch_body" if part == "body" else None, estate=estate, batch=batch,
                  kind=kind, report=report, planned=planned, shown=SHOWN_ROWS, uploader=uploader,
                  errors={})


def _rejected_csv(estate: Estate, batch: ImportBatch, kind) -> Response:
    numeric = {f.name for f in kind.fields if f.cell == "number"}

    def cell(name):
        def value(row):
            text = (row.raw or {}).get(name, "")
            # A plain number stays a number (a debt of -75.50 is not a formula); other text that a
            # spreadsheet would run is written as text by the export.
            if name in numeric and text and text.lstrip("-").replace(".", "", 1).isdigit():
                from decimal import Decimal
                return Decimal(text)
            return text
        return value

    columns = [Column("row", lambda r: r.row_number, numeric=True)]
    columns += [Column(name, cell(name)) for name in kind.headers]
    columns.append(Column("reason", lambda r: "; ".join(r.errors or [])))
    rows = staged_rows(db.session, batch, ("reject",))
    return respond(rows, columns, f"Rejected rows {estate.code} import {batch.id}", "csv", timezone=estate.timezone)


@bp.post("/estates/<int:estate_id>/imports/<int:import_id>/commit")
def commit_import(estate_id: int, import_id: int):
    estate = _estate(estate_id)
    batch = _batch(estate, import_id)
    try:
        report = start_commit(db.session, batch, user_id=current_user.id)
    except ImportRefused as error:
        db.session.rollback()
        report = report_for(db.session, batch)
        planned = staged_rows(db.session, batch, ("create", "update"), limit=SHOWN_ROWS)
        response = render("admin/import.html", estate=estate, batch=batch, kind=get_kind(batch.kind),
                          report=report, planned=planned, shown=SHOWN_ROWS, uploader=None, errors=error.errors)
        response.status_code = 400
        return response
    if report.run is not None and is_partial():
        return job_panel(report.run)  # a large commit: its panel polls, then the page refreshes
    return redirect(url_for("admin.import_batch", estate_id=estate.id, import_id=batch.id))
