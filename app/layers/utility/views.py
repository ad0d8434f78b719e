"""Utility pages: bulk meters against the sum of unit meters, per estate and utility."""
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import render
from app.layers.utility import bp
from app.reports.summaries import bulk_vs_units, estate_figures, loss_threshold

ROLES = ("utility",)


@bp.get("/")
def index():
    estates = visible_estates(db.session, current_user, ROLES)
    rows = [_row(e) for e in estates]
    return render("utility/index.html", rows=rows)


@bp.get("/estates/<int:estate_id>")
def estate(estate_id: int):
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    return render("utility/index.html", rows=[_row(found)])


def _row(estate):
    """One estate's section: figures, bulk comparisons and the loss % its setting marks."""
    return estate_figures(db.session, estate), bulk_vs_units(db.session, estate), loss_threshold(db.session, estate.id)
