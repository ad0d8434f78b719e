"""Administration landing pages: the estates a user administers, and one estate's areas."""
from flask_login import current_user

from app.auth.scope import estate_or_404, visible_estates
from app.estates.profile import setting_rows
from app.extensions import db
from app.htmx import render
from app.layers.admin import ROLES, bp


@bp.get("/")
def index():
    return render("admin/index.html", estates=visible_estates(db.session, current_user, ROLES))


@bp.get("/estates/<int:estate_id>")
def estate(estate_id: int):
    found = estate_or_404(db.session, current_user, estate_id, ROLES)
    key = ("payment_max_amount", "mpesa_paybill", "tariff_notice_days", "water_credit_limit")
    rows = [row for row in setting_rows(db.session, found) if row.spec.key in key]
    return render("admin/estate.html", estate=found, key_settings=rows)
