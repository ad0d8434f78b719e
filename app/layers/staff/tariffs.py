"""Staff tariff pages (C5): every estate's versions, a form for a new future-dated version, and
one version's impact report (last month's use under the old and the new prices)."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_login import current_user
from sqlalchemy import select

from app.billing import schedule, tariff_classes
from app.extensions import db
from app.htmx import redirect, render
from app.labels import label
from app.layers.staff import bp
from app.models import Estate
from app.models.meter import UTILITIES
from app.models.metering import TARIFF_KINDS, TariffVersion


def _form_context(form, errors: dict[str, str] | None = None) -> dict:
    estates = db.session.scalars(select(Estate).order_by(Estate.name)).all()
    chosen = next((e for e in estates if str(e.id) == str(form.get("estate_id"))), estates[0] if estates else None)
    classes = tariff_classes.estate_classes(db.session, chosen.id) if chosen else []
    return {"estates": estates, "chosen": chosen, "classes": classes, "utilities": UTILITIES, "kinds": TARIFF_KINDS,
            "kind_labels": schedule.KIND_LABELS, "form": form, "errors": dict(errors or {}),
            "rows": schedule.FORM_ROWS,
            "earliest": schedule.earliest_effective_date(db.session, chosen) if chosen else None,
            "notice_days": schedule.notice_days(db.session, chosen.id) if chosen else None}


@bp.get("/tariffs")
def tariffs():
    return render("staff/tariffs/index.html", overview=schedule.tariff_overview(db.session),
                  describe=schedule.describe, kind_labels=schedule.KIND_LABELS)


@bp.get("/tariffs/new")
def new_tariff():
    return render("staff/tariffs/new.html", **_form_context(request.args))


@bp.post("/tariffs")
def create_tariff():
    try:
        version = schedule.create_version(db.session, request.form, user_id=current_user.id)
    except schedule.TariffFormError as error:
        db.session.rollback()
        return render("staff/tariffs/new.html", **_form_context(request.form, error.errors)), 400
    flash(f"{label('utility', version.utility)} tariff from {version.effective_from:%-d %b %Y} saved; "
          "residents are told ahead of it and it switches on by itself.", "success")
    return redirect(url_for("staff.tariff", version_id=version.id))


@bp.get("/tariffs/<int:version_id>")
def tariff(version_id: int):
    version = db.session.get(TariffVersion, version_id) or abort(404)
    report = schedule.impact_report(db.session, version)
    return render("staff/tariffs/version.html", version=version, report=report, estate=report.estate,
                  several_classes=len(tariff_classes.estate_classes(db.session, version.estate_id)) > 1,
                  describe=schedule.describe, notice_days=schedule.notice_days(db.session, version.estate_id))
