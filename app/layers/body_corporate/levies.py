"""Body corporate levies (B3): definitions with a preview of each unit's share, the levy run, payments."""
from flask import abort, flash, request, url_for
from flask_babel import gettext
from flask_login import current_user
from sqlalchemy import select

from app.auth.scope import estate_or_404
from app.billing.levies import (ALLOCATION_LABELS, FREQUENCY_LABELS, JOB_KIND, REMAINDER_RULE, LevyError,
                                blank_form, build_definition, charge_months_text, check_run, definition_or_none,
                                definitions_of, form_of, job_target, owed_by_unit, record_levy_payment,
                                save_definition, start_levy_run)
from app.extensions import db
from app.htmx import redirect, render
from app.i18n.formatting import money_text
from app.i18n.label_texts import N_
from app.layers.body_corporate import bp
from app.layers.export import requested_format, respond, titled
from app.layers.portal import job_panel
from app.models import JobRun, Unit
from app.periods import current_period
from app.reports.export import Column, money_column
from app.routing import whole_number

ROLES = ("body_corporate",)
FORM_FIELDS = ("name", "amount", "frequency", "charge_month", "allocation", "effective_from", "effective_to",
               "units", "custom")
OWED_COLUMNS = [
    Column("Unit", lambda r: r.unit_number),
    money_column("Invoiced, unpaid", lambda r: r.invoiced, lambda r: r.currency),
    money_column("Levy arrears", lambda r: r.arrears, lambda r: r.currency),
    money_column("Owed", lambda r: r.owed, lambda r: r.currency),
    money_column(N_("Prepaid"), lambda r: r.prepaid, lambda r: r.currency),
]


def _recent(estate) -> list[str]:
    from app.periods import previous_period

    months = [current_period(estate.tz)]
    while len(months) < 13:
        months.append(previous_period(months[-1]))
    return months


@bp.get("/estates/<int:estate_id>/levies")
def levies(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    owed = owed_by_unit(db.session, estate)
    for row in owed:
        row.currency = estate.currency
    if requested_format():
        return respond([r for r in owed], OWED_COLUMNS, titled(N_("Levies owed %(estate)s"), estate=estate.code), requested_format(),
                       subtitle=estate.name, timezone=estate.timezone)
    return _levies_page(estate, owed)


def _levies_page(estate, owed=None, run_errors=None, payment_errors=None, payment_form=None, period=None,
                 block=None):
    if owed is None:
        owed = owed_by_unit(db.session, estate)
    period = period or current_period(estate.tz)
    run = db.session.scalar(select(JobRun).where(JobRun.kind == JOB_KIND, JobRun.target.like(f"{estate.code}:%"))
                            .order_by(JobRun.id.desc()))
    return render("body_corporate/levies/index.html", block, estate=estate, definitions=definitions_of(db.session, estate),
                  owed=owed, owing=[r for r in owed if r.owed > 0], months=_recent(estate), period=period, run=run,
                  run_errors=run_errors or {}, payment_errors=payment_errors or {},
                  payment_form=payment_form or {}, frequency_labels=FREQUENCY_LABELS,
                  allocation_labels=ALLOCATION_LABELS, charge_months_text=charge_months_text)


@bp.post("/estates/<int:estate_id>/levies/run")
def run_levies_now(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    period = request.form.get("month", "")
    try:
        period = check_run(db.session, estate, period)
    except LevyError as error:
        db.session.rollback()
        return _levies_page(estate, run_errors=error.errors, period=period, block="run_form"), 400
    run = start_levy_run(estate, period, user_id=current_user.id)
    return job_panel(run)


@bp.post("/estates/<int:estate_id>/levies/payments")
def record_payment(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    form = {"unit_id": request.form.get("unit_id", ""), "amount": request.form.get("amount", ""),
            "reference": request.form.get("reference", "")}
    unit_id = whole_number(form["unit_id"], 1)
    unit = db.session.get(Unit, unit_id) if unit_id is not None else None
    if unit is None or unit.estate_id != estate.id:
        db.session.rollback()
        return _levies_page(estate, payment_errors={"unit_id": gettext("Choose the unit the payment is for.")},
                            payment_form=form), 400
    try:
        amount = record_levy_payment(db.session, unit, form["amount"], form["reference"], user_id=current_user.id)
    except LevyError as error:
        db.session.rollback()
        return _levies_page(estate, payment_errors=error.errors, payment_form=form), 400
    flash(gettext("Levy payment of %(amount)s recorded for unit %(number)s.", amount=money_text(amount, estate.currency),
                  number=unit.number), "success")
    return redirect(url_for("body_corporate.levies", estate_id=estate.id))


@bp.route("/estates/<int:estate_id>/levies/new", methods=["GET", "POST"])
def new_levy(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    return _edit(estate, None)


@bp.route("/estates/<int:estate_id>/levies/<int:levy_id>", methods=["GET", "POST"])
def edit_levy(estate_id: int, levy_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    definition = definition_or_none(db.session, estate, levy_id)
    if definition is None:
        abort(404)
    return _edit(estate, definition)


def _edit(estate, definition):
    units = db.session.scalars(select(Unit).where(Unit.estate_id == estate.id).order_by(Unit.number)).all()
    if request.method == "GET":
        form = form_of(db.session, definition) if definition else blank_form(estate)
        return _form_page(estate, definition, units, form, {}, None)
    form = {name: request.form.get(name, "") for name in FORM_FIELDS}
    form["unit_ids"] = request.form.getlist("unit_ids")
    try:
        if request.form.get("action") == "save":
            saved = save_definition(db.session, estate, form, definition=definition, user_id=current_user.id)
            flash(gettext("Levy “%(name)s” saved.", name=saved.name), "success")
            return redirect(url_for("body_corporate.levies", estate_id=estate.id))
        draft, shares = build_definition(db.session, estate, form, definition=definition)
        db.session.rollback()  # a preview changes nothing (the draft may be the saved definition)
        return _form_page(estate, definition, units, form, {}, shares)
    except LevyError as error:
        db.session.rollback()
        return _form_page(estate, definition, units, form, error.errors, None), 400


def _form_page(estate, definition, units, form, errors, shares):
    total = sum((row.share for row in shares), start=0) if shares else None
    return render("body_corporate/levies/form.html", estate=estate, definition=definition, units=units,
                  form=form, errors=errors, shares=shares, total=total, remainder_rule=REMAINDER_RULE,
                  frequency_labels=FREQUENCY_LABELS, allocation_labels=ALLOCATION_LABELS)
