"""Staff metering pages: meters and their last reading, dead letters (view, replay), relay
commands, and the maintenance switch that pauses ingest (M7)."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from sqlalchemy import select

from app import audit
from app.extensions import db
from app.htmx import redirect, render
from app.layers.staff import bp
from app.metering import queries
from app.metering.ingest import ingest_paused, replay_dead_letter, set_maintenance
from app.models import Estate
from app.models.metering import DeadLetter


def _estate_ids() -> list[int]:
    return list(db.session.scalars(select(Estate.id)))


@bp.get("/metering")
def metering():
    offline_only = request.args.get("offline") == "1"
    rows = queries.meter_rows(db.session, _estate_ids(), only_offline=offline_only)
    return render("staff/metering/meters.html", "meter_table", rows=rows, offline_only=offline_only,
                  paused=ingest_paused(db.session), dead_count=queries.dead_letter_count(db.session))


@bp.get("/metering/dead-letters")
def dead_letters():
    pending = request.args.get("pending") == "1"
    return render("staff/metering/dead_letters.html", letters=queries.dead_letters(db.session, unreplayed_only=pending),
                  pending=pending, paused=ingest_paused(db.session))


@bp.post("/metering/dead-letters/replay")
def replay():
    letter = db.session.get(DeadLetter, request.form.get("dead_letter_id", type=int) or 0) or abort(404)
    if letter.replayed_at is not None and letter.replay_outcome and not letter.replay_outcome.startswith("refused"):
        flash("That message was already replayed successfully.", "error")
        return redirect(url_for("staff.dead_letters")), 400
    outcome = replay_dead_letter(db.session, letter)
    audit.record(db.session, "dead_letter.replay", letter, new={"outcome": outcome})
    db.session.commit()
    flash(f"Message #{letter.id}: {outcome}.", "error" if outcome.startswith("refused") else "success")
    return redirect(url_for("staff.dead_letters"))


@bp.get("/metering/commands")
def relay_commands():
    return render("staff/metering/commands.html", rows=queries.relay_commands(db.session, _estate_ids()),
                  paused=ingest_paused(db.session))


@bp.post("/metering/maintenance")
def maintenance():
    wanted = request.form.get("on") == "1"
    set_maintenance(db.session, wanted)
    db.session.commit()
    flash("Maintenance mode is on: ingest is paused and messages wait in the broker." if wanted
          else "Maintenance mode is off: ingest resumes and bills every waiting reading.", "success")
    return redirect(request.form.get("next") or url_for("staff.metering"))
