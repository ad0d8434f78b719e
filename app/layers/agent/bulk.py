"""Bulk top-up pages (A2): choose wallets by filter or CSV, confirm the total and count, see each row.

The plan is stored (`BulkTopup`) so the confirmation, the job and the result table all read the
same rows; confirming twice (or a second tab) credits nothing more. The work is in
app/payments/bulk_topup.py.
"""
from decimal import Decimal

from flask import abort, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import estate_or_404
from app.extensions import db
from app.htmx import redirect, render
from app.layers.agent import bp
from app.models import JobRun
from app.models.estate import OCCUPANCY_STATUSES
from app.models.meter import UTILITIES
from app.money import MoneyError, parse_amount
from app.payments import bulk_topup
from app.payments.bulk_topup import BulkTopupError, UnitFilter

ROLES = ("agent",)


def _form_page(estate, *, form=None, errors=None, status=200):
    response = render("agent/bulk_topup.html", estate=estate, form=form or {"utility": "electricity", "mode": "filter"},
                      errors=errors or {}, statuses=OCCUPANCY_STATUSES, utilities=UTILITIES,
                      inline_rows=bulk_topup.INLINE_ROWS, batches=bulk_topup.batches_of(db.session, estate))
    response.status_code = status
    return response


@bp.route("/estates/<int:estate_id>/bulk-topup", methods=["GET", "POST"])
def bulk_topup_form(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    if request.method == "GET":
        return _form_page(estate, form={"utility": "electricity", "mode": "filter",
                                        "prefix": (request.args.get("prefix") or "")[:32]})
    form = {name: (request.form.get(name) or "")[:100] for name in
            ("mode", "utility", "amount", "prefix", "status", "below", "supply_off", "description")}
    errors: dict[str, str] = {}
    try:
        if form["mode"] == "csv":
            upload = request.files.get("file")
            if upload is None or not upload.filename:
                raise BulkTopupError({"file": gettext("Choose a CSV file with the columns unit, utility and amount.")})
            rows = bulk_topup.rows_from_csv(db.session, estate, upload.read(bulk_topup.MAX_CSV_BYTES + 1))
        else:
            if form["utility"] not in UTILITIES:
                errors["utility"] = gettext("Choose a utility.")
            if form["status"] and form["status"] not in OCCUPANCY_STATUSES:
                errors["status"] = gettext("Choose an occupancy status or any.")
            below = None
            if form["below"].strip():
                try:
                    below = parse_amount(form["below"], estate.currency, allow_negative=True)
                except MoneyError as error:
                    errors["below"] = gettext("Enter an amount in %(currency)s: %(error)s.", currency=estate.currency, error=error)
            try:
                parse_amount(form["amount"], estate.currency)
            except MoneyError as error:
                errors["amount"] = gettext("Enter the amount per wallet in %(currency)s: %(error)s.", currency=estate.currency, error=error)
            if errors:
                raise BulkTopupError(errors)
            rows = bulk_topup.rows_from_filter(db.session, estate, form["utility"], form["amount"], UnitFilter(
                prefix=form["prefix"][:32], status=form["status"], below=below, supply_off=bool(form["supply_off"])))
        batch = bulk_topup.plan_bulk_topup(db.session, estate, rows, description=form["description"],
                                           user_id=current_user.id)
    except BulkTopupError as error:
        db.session.rollback()
        return _form_page(estate, form=form, errors=error.errors, status=400)
    return redirect(url_for("agent.bulk_topup_batch", estate_id=estate.id, batch_id=batch.id))


def _batch_or_404(estate, batch_id: int):
    batch = bulk_topup.batch_of(db.session, estate, batch_id)
    if batch is None:
        abort(404)
    return batch


def _run_of(batch):
    from sqlalchemy import select

    return db.session.scalar(select(JobRun).where(JobRun.kind == bulk_topup.JOB,
                                                  JobRun.target == f"bulk_topup:{batch.id}")
                             .order_by(JobRun.id.desc()).limit(1))


@bp.get("/estates/<int:estate_id>/bulk-topup/<int:batch_id>")
def bulk_topup_batch(estate_id: int, batch_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    batch = _batch_or_404(estate, batch_id)
    credited_total = sum((Decimal(r["amount"]) for r in batch.results or [] if r and r["outcome"] == "credited"),
                         Decimal("0"))
    return render("agent/bulk_topup_batch.html", "batch_results", estate=estate, batch=batch, run=_run_of(batch),
                  credited_total=credited_total, inline_rows=bulk_topup.INLINE_ROWS)


@bp.post("/estates/<int:estate_id>/bulk-topup/<int:batch_id>/run")
def bulk_topup_run(estate_id: int, batch_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    batch = _batch_or_404(estate, batch_id)
    bulk_topup.start_bulk_topup(db.session, batch, user_id=current_user.id)
    return redirect(url_for("agent.bulk_topup_batch", estate_id=estate.id, batch_id=batch_id))


@bp.get("/estates/<int:estate_id>/bulk-topup/template.csv")
def bulk_topup_template(estate_id: int):
    from flask import Response

    estate_or_404(db.session, current_user, estate_id, ROLES)
    return Response("\ufeffunit,utility,amount\r\n", mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=bulk-topup.csv"})
