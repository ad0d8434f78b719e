"""Utility pages: bulk meters against the sum of unit meters, per estate and utility."""
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import render
from app.layers.utility import bp
from app.reports.summaries import bulk_vs_units, estate_figures

ROLES = ("utility",)


@bp.get("/")
def index():
    estates = visible_estates(db.session, current_user, ROLES)
    rows = [(estate_figures(db.session, e), bulk_vs_units(db.session, e)) for e in estates]
    return render("utility/index.html", rows=rows)


@bp.get("/estates/<int:estate_id>")
def estate(estate_id: int):
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    rows = [(estate_figures(db.session, found), bulk_vs_units(db.session, found))]
    return render("utility/index.html", rows=rows)
