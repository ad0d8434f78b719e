"""Arrears pages (A4, issue 16): an estate's debts by age with exports and escalation tasks, and a
unit's debt page (credit limits per pocket, payment plan, what it owes).

Staff reach every estate, agents the estates they manage (`ROLES`); the work is in
`app/billing/debt.py` and `app/billing/ladder.py`.
"""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext, ngettext
from flask_login import current_user
from sqlalchemy import select

from app.auth.scope import estate_or_404, unit_or_404
from app.billing import debt as debt_module
from app.billing.ladder import (LadderError, steps_in_words, active_plan, agree_plan, end_plan, instalments_due, ladder_steps,
                                plan_paid, update_task)
from app.extensions import db
from app.htmx import redirect, render
from app.i18n.label_texts import N_
from app.labels import label
from app.layers.admin import ROLES, bp
from app.layers.export import requested_format, respond, titled
from app.models import Account, User, Wallet, utcnow
from app.models.arrears import ArrearsRecord
from app.models.debt import ArrearsEpisode, ArrearsTask, PaymentPlan
from app.models.meter import UTILITIES
from app.money import quantize
from app.reports.export import Column, money_column

DEBT_COLUMNS = [
    Column("Unit", lambda d: d.unit.number if d.unit else ""),
    Column("Who", lambda d: d.who),
    Column("Debt", lambda d: label("pocket", d.utility) if d.kind == "pocket" else f"Arrears record ({d.source})"),
    money_column("Owed", lambda d: d.owed, lambda d: d.estate.currency),
    Column(N_("In debt since"), lambda d: d.since.isoformat()),
    Column("Days", lambda d: d.days, numeric=True),
    Column(N_("Bucket"), lambda d: debt_module.BUCKET_LABELS[d.bucket]),
]


def _filters(args) -> dict[str, str]:
    bucket = (args.get("bucket") or "")[:8]
    utility = (args.get("utility") or "")[:16]
    return {"bucket": bucket if bucket in debt_module.BUCKETS else "",
            "utility": utility if utility in (*UTILITIES, "records") else ""}


@bp.get("/estates/<int:estate_id>/arrears")
def arrears(estate_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    filters = _filters(request.args)
    found = debt_module.debts(db.session, [estate])
    totals = debt_module.bucket_totals(found)
    shown = [d for d in found if (not filters["bucket"] or d.bucket == filters["bucket"])
             and (not filters["utility"] or (d.kind == "record" if filters["utility"] == "records"
                                             else d.kind == "pocket" and d.utility == filters["utility"]))]
    if fmt := requested_format():
        return respond(shown, DEBT_COLUMNS, titled(N_("Arrears %(estate)s"), estate=estate.name), fmt, timezone=estate.timezone)
    tasks = db.session.scalars(select(ArrearsTask).where(ArrearsTask.estate_id == estate.id,
                                                         ArrearsTask.status == "open").order_by(ArrearsTask.id)).all()
    users = {u.id: u for u in db.session.scalars(select(User).where(
        User.id.in_({t.assigned_to_user_id for t in tasks if t.assigned_to_user_id})))} if tasks else {}
    episodes = {e.unit_id: e for e in db.session.scalars(select(ArrearsEpisode).where(
        ArrearsEpisode.estate_id == estate.id, ArrearsEpisode.closed_at.is_(None)))}
    plans = {p.unit_id: p for p in db.session.scalars(select(PaymentPlan).where(
        PaymentPlan.estate_id == estate.id, PaymentPlan.status == "active"))}
    from app.models.debt import WriteOff
    pending = db.session.scalars(select(WriteOff).where(WriteOff.estate_id == estate.id, WriteOff.status == "pending")
                                 .order_by(WriteOff.id)).all() if current_user.is_staff else []
    return render("admin/arrears.html", estate=estate, pending=pending, debts=shown, totals=totals, filters=filters,
                  buckets=debt_module.BUCKET_LABELS, utilities=UTILITIES, tasks=tasks, users=users,
                  episodes=episodes, plans=plans, steps=ladder_steps(db.session, estate), in_words=steps_in_words,
                  total=sum((d.owed for d in shown), 0))


@bp.post("/arrears-tasks/<int:task_id>")
def arrears_task(task_id: int):
    task = db.session.get(ArrearsTask, task_id)
    if task is None:
        abort(404)
    estate = estate_or_404(db.session, current_user, task.estate_id, ROLES)
    try:
        update_task(db.session, task, request.form.get("action", "")[:8], user_id=current_user.id,
                    note=request.form.get("note", "")[:200])
    except LadderError as error:
        db.session.rollback()
        flash(next(iter(error.errors.values())), "error")
        return redirect(url_for("admin.arrears", estate_id=estate.id)), 400
    flash(gettext("Task closed.") if task.status == "closed" else gettext("Task is yours."), "success")
    return redirect(url_for("admin.arrears", estate_id=estate.id))


# --- one unit's debt -----------------------------------------------------------------------

def _unit_page(unit, errors: dict | None = None, form: dict | None = None, status: int = 200):
    estate = unit.estate
    pockets = db.session.scalars(select(Account).join(Wallet, Wallet.id == Account.wallet_id).where(
        Wallet.unit_id == unit.id).order_by(Account.utility)).all()
    own = {key: str(quantize(value, estate.currency))
           for key, value in debt_module.pocket_overrides(db.session, [p.id for p in pockets]).items()}
    defaults = {p.id: quantize(debt_module.estate_default_limit(db.session, estate, p.utility), estate.currency)
                for p in pockets}
    found = debt_module.debts(db.session, [estate], unit_ids={unit.id})
    records = db.session.scalars(select(ArrearsRecord).where(ArrearsRecord.unit_id == unit.id)
                                 .order_by(ArrearsRecord.opened_at.desc())).all()
    plan = active_plan(db.session, unit.id)
    plan_figures = None
    if plan is not None:
        today = utcnow().astimezone(estate.tz).date()
        due = instalments_due(plan, today)
        plan_figures = {"due": due, "owed": plan.instalment * due, "paid": plan_paid(db.session, plan)}
    episode = db.session.scalar(select(ArrearsEpisode).where(ArrearsEpisode.unit_id == unit.id,
                                                             ArrearsEpisode.closed_at.is_(None)))
    return render("admin/unit_debt.html", unit=unit, estate=estate, pockets=pockets, own=own, defaults=defaults,
                  debts=found, records=records, plan=plan, plan_figures=plan_figures, episode=episode,
                  total=sum((d.owed for d in found), 0), errors=errors or {}, form=form or {},
                  in_words=steps_in_words), status


@bp.get("/units/<int:unit_id>/debt")
def unit_debt(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    return _unit_page(unit)


@bp.post("/units/<int:unit_id>/credit-limits")
def unit_credit_limits(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    pockets = db.session.scalars(select(Account).join(Wallet, Wallet.id == Account.wallet_id).where(
        Wallet.unit_id == unit.id)).all()
    form = {key: value[:40] for key, value in request.form.items() if key.startswith("limit_")}
    try:
        changed = debt_module.save_pocket_limits(db.session, pockets, request.form, user_id=current_user.id)
    except debt_module.CreditLimitError as error:
        db.session.rollback()
        return _unit_page(unit, error.errors, form, 400)
    flash(ngettext("Unit %(number)s: %(num)s credit limit changed.", "Unit %(number)s: %(num)s credit limits changed.",
                   changed, number=unit.number) if changed
          else gettext("Unit %(number)s: nothing changed.", number=unit.number), "success")
    return redirect(url_for("admin.unit_debt", unit_id=unit.id))


@bp.post("/units/<int:unit_id>/payment-plan")
def unit_payment_plan(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    form = {key: request.form.get(key, "")[:200] for key in ("instalment", "frequency", "starts_on", "note")}
    try:
        agree_plan(db.session, unit, form, user_id=current_user.id)
    except LadderError as error:
        db.session.rollback()
        return _unit_page(unit, error.errors, form, 400)
    flash(gettext("Unit %(number)s: payment plan agreed; the escalation ladder waits while it is kept.", number=unit.number),
          "success")
    return redirect(url_for("admin.unit_debt", unit_id=unit.id))


@bp.post("/payment-plans/<int:plan_id>/end")
def end_payment_plan(plan_id: int):
    plan = db.session.get(PaymentPlan, plan_id)
    if plan is None:
        abort(404)
    unit = unit_or_404(db.session, current_user, plan.unit_id, ROLES)
    end_plan(db.session, plan, user_id=current_user.id)
    flash(gettext("Unit %(number)s: payment plan ended; the ladder resumes.", number=unit.number), "success")
    return redirect(url_for("admin.unit_debt", unit_id=unit.id))


# --- write-offs (staff only) ---------------------------------------------------------------

@bp.post("/units/<int:unit_id>/write-off")
def unit_write_off(unit_id: int):
    from app.billing.write_offs import WriteOffError, request_write_off
    from app.layers.admin import staff_only

    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    staff_only()
    form = {key: request.form.get(key, "")[:300] for key in ("target", "amount", "reason")}
    try:
        done = request_write_off(db.session, unit.estate, form["target"][:40], form["amount"][:40], form["reason"],
                                 user_id=current_user.id)
    except WriteOffError as error:
        db.session.rollback()
        return _unit_page(unit, {f"write_off_{k}": v for k, v in error.errors.items()}, form, 400)
    flash(gettext("Written off.") if done.status == "posted"
          else gettext("Write-off asked for: above the estate's threshold it waits for another staff member's approval."),
          "success")
    return redirect(url_for("admin.unit_debt", unit_id=unit.id))


@bp.post("/write-offs/<int:write_off_id>")
def decide_write_off_view(write_off_id: int):
    from app.billing.write_offs import WriteOffError, decide_write_off
    from app.layers.admin import staff_only
    from app.models.debt import WriteOff

    staff_only()
    write_off = db.session.get(WriteOff, write_off_id)
    if write_off is None:
        abort(404)
    estate = estate_or_404(db.session, current_user, write_off.estate_id, ROLES)
    action = request.form.get("action", "")
    if action not in ("approve", "reject"):
        flash(gettext("Choose approve or reject."), "error")
        return redirect(url_for("admin.arrears", estate_id=estate.id)), 400
    try:
        decide_write_off(db.session, write_off, action == "approve", user_id=current_user.id)
    except WriteOffError as error:
        db.session.rollback()
        flash(next(iter(error.errors.values())), "error")
        return redirect(url_for("admin.arrears", estate_id=estate.id)), 400
    flash(gettext("Write-off approved and posted.") if action == "approve" else gettext("Write-off rejected."), "success")
    return redirect(url_for("admin.arrears", estate_id=estate.id))
