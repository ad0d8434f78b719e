"""Staff pages for external sources: refresh from UISP, suspensions, UISP customers, SparkMeter imports."""
from datetime import date, timedelta

from flask import abort, current_app, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import func, select

from app.auth.redirects import safe_next
from app.extensions import db
from app.htmx import is_partial, redirect, render
from app.jobs import enqueue
from app.i18n.label_texts import N_
from app.i18n.messages import message
from app.layers.export import requested_format, respond, titled
from app.layers.portal import job_panel
from app.layers.staff import bp
from app.models import Estate, JobRun
from app.models.sources import KoiosPayment, UispClient
from app.money import MoneyError, format_amount
from app.reports.export import Column
from app.sources.koios_payments import KOIOS_PAYMENTS_IMPORT, recent_koios_payments, start_koios_payments_import
from app.sources.sparkmeter import KOIOS_IMPORT, start_koios_import
from app.sources.suspensions import (
    REFRESH_KIND, find_clients, is_stale, job_target, last_full_refresh, refresh_target,
    running_refresh, suspensions)
from app.sources.thundercloud import (
    THUNDERCLOUD_IMPORT, recent_thundercloud_payments, start_thundercloud_import, unmatched_payments)


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


KOIOS_PAYMENT_COLUMNS = [
    Column(_l("Paid"), lambda r: r[0].paid_at), Column(_l("Koios id"), lambda r: r[0].koios_id),
    Column(_l("Ours"), lambda r: "yes" if r[0].origin == "meterwise" else ""), Column(_l("Customer"), lambda r: r[0].customer_code or ""),
    Column(_l("Unit"), lambda r: r[1].number if r[1] else ""), Column(_l("Amount"), lambda r: r[0].amount, numeric=True),
    Column(_l("Currency"), lambda r: r[0].currency or ""),
]
THUNDERCLOUD_PAYMENT_COLUMNS = [
    Column(_l("Detected"), lambda r: r[0].detected_at), Column(_l("Meter"), lambda r: r[0].meter_serial),
    Column(_l("Customer"), lambda r: r[0].customer_code or ""), Column(_l("Estate"), lambda r: r[2].code if r[2] else ""),
    Column(_l("Unit"), lambda r: r[1].number if r[1] else ""), Column(_l("Amount"), lambda r: r[0].amount, numeric=True),
    Column(_l("Currency"), lambda r: r[2].currency if r[2] else ""), Column(_l("kWh"), lambda r: r[0].kwh, numeric=True),
]
# The sources page's sections that fetch themselves again when a job finishes (?part=).
SOURCES_PARTS = ("uisp_copy", "koios_payments", "thundercloud_payments")


@bp.get("/sources")
def sources():
    counts = dict(db.session.execute(
        select(UispClient.risky, func.count()).where(UispClient.removed_at.is_(None))
        .group_by(UispClient.risky)).all())
    part = request.args.get("part")
    if fmt := requested_format():
        if request.args.get("table") == "thundercloud":
            return respond(recent_thundercloud_payments(db.session), THUNDERCLOUD_PAYMENT_COLUMNS,
                           N_("ThunderCloud payments"), fmt)
        return respond(recent_koios_payments(db.session), KOIOS_PAYMENT_COLUMNS, N_("Payments made at SparkMeter"), fmt)
    return render("staff/sources/index.html", part if part in SOURCES_PARTS else None,
                  counts=counts, suspended=len(suspensions(db.session)), **_freshness(), **_sparkmeter())


@bp.get("/sources/uisp/freshness")
def uisp_freshness():
    return render("staff/sources/_freshness.html", **_freshness())


@bp.post("/sources/uisp/refresh")
def refresh_uisp():
    kind = request.form.get("scope", "all")
    if kind == "estate":
        estate = db.session.get(Estate, request.form.get("estate_id", type=int) or 0) or abort(404)
        target = refresh_target("estate", estate.id)
    elif kind == "client":
        client_id = request.form.get("client_id", type=int) or abort(400, gettext("Choose the customer to refresh."))
        target = refresh_target("client", client_id)
    elif kind == "all":
        target = refresh_target("all")
    else:
        abort(400, gettext("Choose what to refresh: everything, an estate or a customer."))
    run = enqueue(REFRESH_KIND, target, target=job_target(target), user_id=current_user.id)
    if is_partial():
        return job_panel(run)
    return redirect(safe_next(request.form.get("next")) or url_for("staff.sources"))


def _client_status(c) -> str:
    if c.removed_at:
        return "Removed in UISP"
    if c.is_archived:
        return "Archived"
    if c.has_suspended_service:
        return "Suspended"
    return "Active" if c.is_active else "Inactive"


SUSPENSION_COLUMNS = [
    Column(_l("Customer"), lambda r: r.client.name), Column(_l("VIP"), lambda r: "yes" if r.client.is_vip else ""),
    Column(_l("Estate"), lambda r: r.estate_name or ""), Column(_l("Service"), lambda r: r.service.name),
    Column(_l("Outstanding"), lambda r: r.client.account_outstanding, numeric=True), Column(_l("Currency"), lambda r: r.client.currency or ""),
    Column(_l("Grace date"), lambda r: r.grace), Column(_l("Risky"), lambda r: "yes" if r.client.risky else ""),
    Column(_l("Missed"), lambda r: r.client.missed_count, numeric=True), Column(_l("Late"), lambda r: r.client.late_count, numeric=True),
    Column(_l("Last payment"), lambda r: r.client.last_payment_at),
]
CUSTOMER_COLUMNS = [
    Column(_l("Customer"), lambda c: c.name), Column(_l("Account"), lambda c: c.user_ident or c.uisp_id),
    Column(_l("Outstanding"), lambda c: c.account_outstanding, numeric=True), Column(_l("Currency"), lambda c: c.currency or ""),
    Column(_l("On time"), lambda c: c.on_time_count, numeric=True), Column(_l("Late"), lambda c: c.late_count, numeric=True),
    Column(_l("Missed"), lambda c: c.missed_count, numeric=True), Column(_l("Risky"), lambda c: "yes" if c.risky else ""),
    Column(_l("Status"), _client_status),
]


@bp.get("/sources/suspensions")
def uisp_suspensions():
    estate = _estate_filter()
    rows = suspensions(db.session, estate.id if estate else None)
    if fmt := requested_format():
        return respond(rows, SUSPENSION_COLUMNS, "UISP suspensions", fmt)
    return render("staff/sources/suspensions.html", "results", rows=rows, estate=estate,
                  today=date.today(), **_freshness())


@bp.get("/sources/customers")
def uisp_customers():
    estate = _estate_filter()
    text = request.args.get("q", "")
    clients = find_clients(db.session, text, estate.id if estate else None)
    if fmt := requested_format():
        return respond(clients, CUSTOMER_COLUMNS, "UISP customers", fmt)
    return render("staff/sources/customers.html", "results", clients=clients, q=text, estate=estate,
                  **_freshness())


CUSTOMER_TABLES = {
    "services": (N_("services"), lambda c: c.services, [
        Column(_l("Service"), lambda s: s.name), Column(_l("Status"), lambda s: "removed" if s.removed_at else s.status_label),
        Column(_l("Price"), lambda s: s.price, numeric=True), Column(_l("Active from"), lambda s: s.active_from)]),
    "invoices": (N_("invoices"), lambda c: c.invoices, [
        Column(_l("Number"), lambda i: i.number or i.uisp_id), Column(_l("Created"), lambda i: i.created_at),
        Column(_l("Due"), lambda i: i.due_date), Column(_l("Total"), lambda i: i.total, numeric=True),
        Column(_l("To pay"), lambda i: i.amount_to_pay, numeric=True), Column(_l("Currency"), lambda i: i.currency or ""),
        Column(_l("Paid"), lambda i: "yes" if i.paid else "no"), Column(_l("Removed"), lambda i: i.removed_at)]),
    "payments": (N_("payments"), lambda c: c.payments, [
        Column(_l("Date"), lambda p: p.created_at), Column(_l("Amount"), lambda p: p.amount, numeric=True),
        Column(_l("Currency"), lambda p: p.currency or ""), Column(_l("Method"), lambda p: p.method or ""),
        Column(_l("Covers invoices"), lambda p: " ".join(str(c.invoice_id) for c in p.covers)),
        Column(_l("Removed"), lambda p: p.removed_at)]),
}


@bp.get("/sources/customers/<int:uisp_client_id>")
def uisp_customer(uisp_client_id: int):
    client = db.session.scalar(select(UispClient).where(UispClient.uisp_id == uisp_client_id)) or abort(404)
    if fmt := requested_format():
        title, rows, columns = CUSTOMER_TABLES.get(request.args.get("table"), CUSTOMER_TABLES["invoices"])
        return respond(rows(client), columns, titled(N_("UISP %(customer)s %(table)s"), customer=client.name, table=message(title)), fmt)
    estate = db.session.get(Estate, client.estate_id) if client.estate_id else None
    return render("staff/sources/customer.html", "details", client=client, estate=estate, today=date.today(),
                  running=running_refresh(db.session, refresh_target("client", uisp_client_id)),
                  **{k: v for k, v in _freshness().items() if k != "running"})


def _sparkmeter() -> dict:
    """What the SparkMeter card shows: each import's latest run and the recent vendor payments."""
    def latest(kind: str, prefix: str):
        return db.session.scalar(select(JobRun).where(JobRun.kind == kind, JobRun.target.startswith(prefix))
                                 .order_by(JobRun.id.desc()).limit(1))
    yesterday = date.today() - timedelta(days=1)
    unmatched = db.session.scalar(select(func.count()).select_from(KoiosPayment).where(
        KoiosPayment.unit_id.is_(None), KoiosPayment.origin == "vendor"))
    return {"koios_run": latest(KOIOS_IMPORT, "koios:readings:"),
            "koios_payments_run": latest(KOIOS_PAYMENTS_IMPORT, "koios:payments"),
            "thundercloud_run": latest(THUNDERCLOUD_IMPORT, "thundercloud:"),
            "koios_payments": recent_koios_payments(db.session), "koios_unmatched": unmatched,
            "thundercloud_payments": recent_thundercloud_payments(db.session),
            "thundercloud_unmatched": unmatched_payments(db.session), "yesterday": yesterday}


def _started(run, slot: str):
    """Answer a SparkMeter button: the progress fragment for htmx, else back to the page."""
    if is_partial():
        return job_panel(run)
    return redirect(url_for("staff.sources", _anchor=slot))


def _refused(message: str):
    """A 400 whose body htmx shows in the button's status area (see the card's before-swap)."""
    return render("_refusal.html", message=message), 400


@bp.post("/sources/koios/import")
def import_koios():
    text = request.form.get("day", "").strip()
    try:
        day = date.fromisoformat(text) if text else None
    except ValueError:
        return _refused(f"“{text}” is not a date (YYYY-MM-DD).")
    if day is not None and day >= date.today():
        return _refused(gettext("Choose a day that has ended: yesterday or earlier."))
    return _started(start_koios_import(day, current_user.id), "koios-readings")


@bp.post("/sources/koios/payments")
def import_koios_payments():
    return _started(start_koios_payments_import(current_user.id), "koios-payments")


@bp.post("/sources/thundercloud/import")
def import_thundercloud():
    return _started(start_thundercloud_import(current_user.id), "thundercloud")
