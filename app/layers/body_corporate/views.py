"""Body corporate pages: scheme figures (occupancy, meters online, wallets in good standing)."""
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import render
from app.layers.body_corporate import bp
from app.reports.summaries import estate_figures

ROLES = ("body_corporate",)


@bp.get("/")
def index():
    figures = [estate_figures(db.session, e) for e in visible_estates(db.session, current_user, ROLES)]
    return render("body_corporate/index.html", figures=figures)


@bp.get("/estates/<int:estate_id>")
def estate(estate_id: int):
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    return render("body_corporate/index.html", figures=[estate_figures(db.session, found)])
