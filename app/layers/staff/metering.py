"""Staff metering pages: meters and their last reading, one meter's M6 periods, alerts and
commands, open alerts (acknowledge), dead letters (view, replay), relay commands, API keys
for the readings endpoint (create once, revoke), and the maintenance switch (M7)."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.i18n.stored import render_stored
from app.auth.redirects import safe_next
from app.extensions import db
from app.htmx import redirect, refuse, render
from app.labels import label
from app.layers.staff import bp
from app.metering import alerts, meter_settings, queries
from app.metering.modbus import device_status
from app.metering.ingest import dismiss_dead_letter, ingest_paused, replay_dead_letter, set_maintenance
from app.models import Estate, Meter, Unit
from app.models.metering import DeadLetter, MeterAlert
from app.i18n.label_texts import N_
from app.i18n.messages import message
from app.layers.export import requested_format, respond, titled
from app.reports.export import Column

METER_COLUMNS = [
    Column(_l("Meter"), lambda r: r.meter.serial), Column(_l("DevEUI"), lambda r: r.meter.dev_eui or ""),
    Column(_l("Estate"), lambda r: r.estate_code), Column(_l("Unit"), lambda r: r.unit_number or r.meter.role),
    Column(_l("Utility"), lambda r: label("utility", r.meter.utility)), Column(_l("Status"), lambda r: label("meter_status", r.status)),
    Column(_l("Last reading"), lambda r: r.meter.last_reading_at), Column(_l("Register"), lambda r: r.meter.last_register, numeric=True),
    Column(_l("Relay"), lambda r: r.meter.relay_state or ""),
]
DEAD_LETTER_COLUMNS = [
    Column(_l("#"), lambda d: d.id, numeric=True), Column(_l("Received"), lambda d: d.received_at),
    Column(_l("Reason"), lambda d: d.reason), Column(_l("Topic"), lambda d: d.topic),
    Column(_l("Replayed"), lambda d: d.replayed_at), Column(_l("Replay outcome"), lambda d: d.replay_outcome or ""),
    Column(_l("Reading of"), lambda d: d.reading_at), Column(_l("Dismissed"), lambda d: d.dismissed_at),
]
COMMAND_COLUMNS = [
    Column(_l("Sent"), lambda r: r[0].published_at or r[0].created_at), Column(_l("Meter"), lambda r: r[1].serial),
    Column(_l("Relay"), lambda r: r[0].state), Column(_l("Why"), lambda r: r[0].reason),
    Column(_l("Status"), lambda r: label("command_status", r[0].status)), Column(_l("Acknowledged"), lambda r: r[0].acknowledged_at),
]
ALERT_COLUMNS = [
    Column(_l("Raised"), lambda r: r[0].raised_at), Column(_l("Meter"), lambda r: r[1].serial), Column(_l("Estate"), lambda r: r[2]),
    Column(_l("Unit"), lambda r: r[3] or ""), Column(_l("Kind"), lambda r: label("alert", r[0].kind)), Column(_l("Detail"), lambda r: r[0].detail),
]
# One meter's page: its tables by ?table= (periods by default).
METER_DETAIL_TABLES = {
    "periods": (N_("consumption"), [
        Column(_l("Period"), lambda p: p.label), Column(_l("First reading at"), lambda p: p.first_at),
        Column(_l("First register"), lambda p: p.first_register, numeric=True), Column(_l("Last reading at"), lambda p: p.last_at),
        Column(_l("Last register"), lambda p: p.last_register, numeric=True), Column(_l("Consumption"), lambda p: p.consumption, numeric=True)]),
    "alerts": (N_("alerts"), [
        Column(_l("Raised"), lambda a: a.raised_at), Column(_l("Kind"), lambda a: label("alert", a.kind)),
        Column(_l("Detail"), lambda a: a.detail), Column(_l("Acknowledged"), lambda a: a.acknowledged_at)]),
    "commands": (N_("relay commands"), [
        Column(_l("Sent"), lambda c: c.published_at or c.created_at), Column(_l("Relay"), lambda c: c.state),
        Column(_l("Why"), lambda c: c.reason), Column(_l("Status"), lambda c: label("command_status", c.status))]),
    "dead_letters": ("dead letters", [
        Column(_l("#"), lambda d: d.id, numeric=True), Column(_l("Received"), lambda d: d.received_at),
        Column(_l("Reason"), lambda d: d.reason), Column(_l("Replay"), lambda d: d.replay_outcome or "")]),
    "readings": (N_("latest readings"), [
        Column(_l("Taken"), lambda r: r.taken_at), Column(_l("Register"), lambda r: r.register, numeric=True),
        Column(_l("Since previous"), lambda r: r.consumption, numeric=True)]),
}


def _estate_ids() -> list[int]:
    return list(db.session.scalars(select(Estate.id)))


@bp.get("/metering")
def metering():
    offline_only = request.args.get("offline") == "1"
    rows = queries.meter_rows(db.session, _estate_ids(), only_offline=offline_only)
    if fmt := requested_format():
        return respond(rows, METER_COLUMNS, N_("Offline meters") if offline_only else N_("Meters"), fmt)
    return render("staff/metering/meters.html", "meter_table", rows=rows, offline_only=offline_only,
                  paused=ingest_paused(db.session), dead_count=queries.dead_letter_count(db.session))


@bp.get("/metering/dead-letters")
def dead_letters():
    pending = request.args.get("pending") == "1"
    letters = queries.dead_letters(db.session, unreplayed_only=pending)
    if fmt := requested_format():
        return respond(letters, DEAD_LETTER_COLUMNS, "Dead letters", fmt)
    return render("staff/metering/dead_letters.html", letters=letters, pending=pending, paused=ingest_paused(db.session))


@bp.post("/metering/dead-letters/replay")
def replay():
    letter = db.session.get(DeadLetter, request.form.get("dead_letter_id", type=int) or 0) or abort(404)
    if letter.replayed_at is not None and letter.replay_outcome and not letter.replay_outcome.startswith("refused"):
        return refuse(dead_letters, gettext("That message was already replayed successfully."))
    outcome = replay_dead_letter(db.session, letter)
    flash(gettext("Message #%(id)s: %(outcome)s.", id=letter.id, outcome=render_stored(outcome)), "error" if outcome.startswith("refused") else "success")
    return redirect(url_for("staff.dead_letters"))


@bp.post("/metering/dead-letters/dismiss")
def dismiss():
    letter = db.session.get(DeadLetter, request.form.get("dead_letter_id", type=int) or 0) or abort(404)
    if not dismiss_dead_letter(db.session, letter, current_user.id):
        return refuse(dead_letters, gettext("That message was already replayed or dismissed."))
    flash(gettext("Message #%(id)s dismissed: it is kept, and no longer counts as waiting.", id=letter.id), "success")
    return redirect(url_for("staff.dead_letters", pending=request.form.get("pending") or None))


@bp.get("/metering/commands")
def relay_commands():
    rows = queries.relay_commands(db.session, _estate_ids())
    if fmt := requested_format():
        return respond(rows, COMMAND_COLUMNS, "Relay commands", fmt)
    return render("staff/metering/commands.html", rows=rows, paused=ingest_paused(db.session))


@bp.post("/metering/maintenance")
def maintenance():
    wanted = request.form.get("on") == "1"
    set_maintenance(db.session, wanted)
    flash(gettext("Maintenance mode is on: ingest is paused and messages wait in the broker.") if wanted
          else gettext("Maintenance mode is off: ingest resumes and bills every waiting reading."), "success")
    return redirect(safe_next(request.form.get("next")) or url_for("staff.metering"))


@bp.get("/meters/<int:meter_id>")
def meter(meter_id: int):
    meter = db.session.get(Meter, meter_id) or abort(404)
    estate = db.session.get(Estate, meter.estate_id)
    tables = {
        "periods": lambda: queries.meter_periods(db.session, meter),
        "alerts": lambda: alerts.meter_alerts(db.session, meter.id),
        "commands": lambda: queries.meter_commands(db.session, meter.id),
        "dead_letters": lambda: queries.meter_dead_letters(db.session, meter),
        "readings": lambda: queries.recent_readings(db.session, meter.id, limit=10),
    }
    if fmt := requested_format():
        wanted = request.args.get("table") if request.args.get("table") in tables else "periods"
        title, columns = METER_DETAIL_TABLES[wanted]
        return respond(tables[wanted](), columns, titled(N_("Meter %(serial)s %(table)s"), serial=meter.serial, table=message(title)), fmt, timezone=estate.timezone)
    return render("staff/metering/meter.html", meter=meter, estate=estate,
                  unit=db.session.get(Unit, meter.unit_id) if meter.unit_id else None,
                  periods=tables["periods"](), alerts=tables["alerts"](), commands=tables["commands"](),
                  letters=tables["dead_letters"](), readings=tables["readings"](),
                  modbus=device_status(db.session, meter.serial),
                  paused=ingest_paused(db.session))


@bp.post("/meters/<int:meter_id>/boundaries")
def meter_boundaries(meter_id: int):
    meter = db.session.get(Meter, meter_id) or abort(404)
    on = request.form.get("on") == "1"
    meter_settings.set_reports_on_boundaries(db.session, meter, on)
    flash(gettext("Meter %(serial)s: readings off its interval's boundaries are now refused.", serial=meter.serial) if on
          else gettext("Meter %(serial)s: readings are now accepted at the meter's own time.", serial=meter.serial),
          "success")
    return redirect(url_for("staff.meter", meter_id=meter.id))


@bp.get("/metering/alerts")
def meter_alerts():
    rows = alerts.open_alerts(db.session)
    if fmt := requested_format():
        return respond(rows, ALERT_COLUMNS, N_("Open meter alerts"), fmt)
    return render("staff/metering/alerts.html", rows=rows, paused=ingest_paused(db.session))


@bp.post("/metering/alerts/<bigint:alert_id>/acknowledge")
def acknowledge_alert(alert_id: int):
    db.session.get(MeterAlert, alert_id) or abort(404)
    back = safe_next(request.form.get("next")) or url_for("staff.meter_alerts")
    try:
        alert = alerts.acknowledge(db.session, alert_id, current_user.id)
    except alerts.AlertError as error:
        db.session.rollback()
        return refuse(meter_alerts, str(error))
    flash(gettext("Alert #%(id)s (%(kind)s) acknowledged.", id=alert.id, kind=gettext(label('alert', alert.kind)).lower()),
          "success")
    return redirect(back)


# API keys (issue 21): the one key model's pages, shared with the agent layer.
from app.layers.api_keys import register as register_api_key_pages  # noqa: E402

register_api_key_pages(bp, "staff", "/metering/api-keys")
from app.layers.webhooks_pages import register as register_webhook_pages  # noqa: E402

register_webhook_pages(bp, "staff", "/webhooks")
