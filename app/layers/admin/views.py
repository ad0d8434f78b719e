"""Administration landing pages: the estates a user administers, and one estate's areas."""
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.extensions import db
from app.htmx import render
from app.layers.admin import ROLES, bp


@bp.get("/")
def index():
    return render("admin/index.html", estates=visible_estates(db.session, current_user, ROLES))


@bp.get("/estates/<int:estate_id>")
def estate(estate_id: int):
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    return render("admin/estate.html", estate=found)
