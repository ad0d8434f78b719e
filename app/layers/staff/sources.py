"""Staff pages for external sources: refresh from UISP, suspensions, UISP customers."""
from datetime import date, timedelta

from flask import abort, current_app, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from app.extensions import db
from app.htmx import is_partial, redirect, render
from app.jobs import enqueue
from app.layers.staff import bp
from app.models import Estate
from app.models.sources import UispClient
from app.money import MoneyError, format_amount
from app.sources.suspensions import (
    REFRESH_KIND, find_clients, is_stale, job_target, last_full_refresh, refresh_target,
    running_refresh, suspensions)


@bp.context_processor
def amount_formatter() -> dict:
    """`uisp_amount(value, currency)`: UISP may use currencies our money module does not know."""
    def uisp_amount(value, currency: str | None) -> str:
        if value is None:
            return "—"
        try:
            return format_amount(value, currency or "")
        except MoneyError:
            return f"{currency or ''} {value:,.2f}".strip()
    return {"uisp_amount": uisp_amount}


def _estate_filter() -> Estate | None:
    """The estate named by ?estate=<id>, if any (404 for an unknown one)."""
    estate_id = request.args.get("estate", type=int)
    if estate_id is None:
        return None
    return db.session.get(Estate, estate_id) or abort(404)


def _freshness() -> dict:
    """What the refresh bar shows: last full refresh, staleness, a run in progress."""
    last = last_full_refresh(db.session)
    return {"last_refresh": last, "running": running_refresh(db.session, "all"),
            "stale": is_stale(last, current_app.config["UISP_STALE_AFTER_HOURS"]),
            "estates": db.session.scalars(select(Estate).order_by(Estate.name)).all()}


@bp.get("/sources")
def sources():
    counts = dict(db.session.execute(
        select(UispClient.risky, func.count()).where(UispClient.removed_at.is_(None))
        .group_by(UispClient.risky)).all())
    return render("staff/sources/index.html", counts=counts, suspended=len(suspensions(db.session)),
                  **_freshness())


@bp.post("/sources/uisp/refresh")
def refresh_uisp():
    kind = request.form.get("scope", "all")
    if kind == "estate":
        estate = db.session.get(Estate, request.form.get("estate_id", type=int) or 0) or abort(404)
        target = refresh_target("estate", estate.id)
    elif kind == "client":
        client_id = request.form.get("client_id", type=int) or abort(400)
        target = refresh_target("client", client_id)
    elif kind == "all":
        target = refresh_target("all")
    else:
        abort(400)
    run = enqueue(REFRESH_KIND, target, target=job_target(target), user_id=current_user.id)
    if is_partial():
        return render("_job_progress.html", run=run)
    back = request.form.get("next", "")
    local = back.startswith("/") and not back.startswith("//")  # never off-site
    return redirect(back if local else url_for("staff.sources"))


@bp.get("/sources/suspensions")
def uisp_suspensions():
    estate = _estate_filter()
    rows = suspensions(db.session, estate.id if estate else None)
    return render("staff/sources/suspensions.html", "results", rows=rows, estate=estate,
                  today=date.today(), **_freshness())


@bp.get("/sources/customers")
def uisp_customers():
    estate = _estate_filter()
    text = request.args.get("q", "")
    clients = find_clients(db.session, text, estate.id if estate else None)
    return render("staff/sources/customers.html", "results", clients=clients, q=text, estate=estate,
                  **_freshness())


@bp.get("/sources/customers/<int:uisp_client_id>")
def uisp_customer(uisp_client_id: int):
    client = db.session.scalar(select(UispClient).where(UispClient.uisp_id == uisp_client_id)) or abort(404)
    estate = db.session.get(Estate, client.estate_id) if client.estate_id else None
    return render("staff/sources/customer.html", client=client, estate=estate, today=date.today(),
                  running=running_refresh(db.session, refresh_target("client", uisp_client_id)),
                  **{k: v for k, v in _freshness().items() if k != "running"})


@bp.post("/sources/koios/import")
def import_koios():
    day = request.form.get("day") or (date.today() - timedelta(days=1)).isoformat()
    try:
        date.fromisoformat(day)
    except ValueError:
        abort(400)
    run = enqueue("koios_import", day, target=f"koios:{day}", user_id=current_user.id)
    return render("_job_progress.html", run=run)


@bp.post("/sources/thundercloud/import")
def import_thundercloud():
    run = enqueue("thundercloud_import", target="thundercloud:exports", user_id=current_user.id)
    return render("_job_progress.html", run=run)
