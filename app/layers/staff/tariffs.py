"""Staff tariff pages (C5): every estate's versions, a form for a new future-dated version, and
one version's impact report (last month's use under the old and the new prices)."""
from __future__ import annotations

from flask import abort, flash, request, url_for
from flask_babel import gettext, lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from app.billing import schedule, tariff_classes
from app.extensions import db
from app.i18n.formatting import local_date
from app.htmx import redirect, render
from app.labels import label
from app.i18n.label_texts import N_
from app.i18n.messages import code
from app.layers.export import requested_format, respond, titled
from app.layers.staff import bp
from app.reports.export import Column, money_column
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


TARIFF_COLUMNS = [
    Column(_l("Estate"), lambda r: r[0].name), Column(_l("Utility"), lambda r: label("utility", r[1].utility)),
    Column(_l("From"), lambda r: r[1].effective_from), Column(_l("Kind"), lambda r: label("tariff", r[1].kind)),
    Column(_l("Prices"), lambda r: schedule.describe(r[1], r[0].currency)), Column(_l("Status"), lambda r: r[2]),
    Column(_l("Notice sent"), lambda r: r[1].notice_sent_at),
]


@bp.get("/tariffs")
def tariffs():
    if fmt := requested_format():
        rows = [(item.estate, version, status) for item in schedule.tariff_overview(db.session)
                for version, status in item.rows]
        return respond(rows, TARIFF_COLUMNS, N_("Tariff versions"), fmt)
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
    flash(gettext("%(utility)s tariff from %(date)s saved; residents are told ahead of it and it switches on by itself.",
                  utility=gettext(label('utility', version.utility)), date=local_date(version.effective_from, "%-d %b %Y")),
          "success")
    return redirect(url_for("staff.tariff", version_id=version.id))


@bp.get("/tariffs/<int:version_id>")
def tariff(version_id: int):
    version = db.session.get(TariffVersion, version_id) or abort(404)
    report = schedule.impact_report(db.session, version)
    if fmt := requested_format():
        currency = report.estate.currency
        columns = [Column(_l("Unit"), lambda r: r.unit_number), Column(_l("Used"), lambda r: r.consumption, numeric=True),
                   money_column(_l("Old price"), lambda r: r.old_cost, lambda r: currency),
                   money_column(_l("New price"), lambda r: r.new_cost, lambda r: currency),
                   money_column(_l("Change"), lambda r: r.change, lambda r: currency),
                   Column(_l("Change %"), lambda r: r.percent, numeric=True)]
        return respond(report.rows, columns, titled(N_("Tariff impact %(estate)s %(utility)s %(day)s"), estate=report.estate.code,
                              utility=code("utility", version.utility), day=f"{version.effective_from:%Y-%m-%d}"), fmt, timezone=report.estate.timezone)
    return render("staff/tariffs/version.html", version=version, report=report, estate=report.estate,
                  several_classes=len(tariff_classes.estate_classes(db.session, version.estate_id)) > 1,
                  describe=schedule.describe, notice_days=schedule.notice_days(db.session, version.estate_id))
