"""Family pages: every wallet shared with the person, what they may do on each, a member dashboard."""
from flask import render_template
from flask_babel import gettext

from app.i18n.label_texts import N_
from flask_login import current_user

from app.auth.scope import visible_units, wallet_actions, wallet_or_404
from app.extensions import db
from app.families.groups import my_groups
from app.htmx import render
from app.layers.family import bp
from app.reports.summaries import recent_pocket_activity, unit_cards
from app.reports.usage import unit_dashboard
from app.reports.wallet_totals import commodity_totals

ROLES = ("family",)
HISTORY_LINES = 100
ACTION_WORDS = {"history": N_("see history"), "topup": N_("top up"), "limits": N_("set limits"),
                "grant": N_("share access")}


@bp.errorhandler(403)
def forbidden(error):
    return render_template("error.html", code=403, title=gettext("Not allowed"),
                           message=getattr(error, "description", "") or
                           gettext("Your access to this wallet does not allow this.")), 403


def allowed_words(actions) -> list[str]:
    """What a person may do on a wallet, in words, for the family pages."""
    return [N_("see balances")] + [words for action, words in ACTION_WORDS.items() if action in actions]


@bp.get("/")
def index():
    cards = unit_cards(db.session, visible_units(db.session, current_user, ROLES))
    actions = {card.unit.id: wallet_actions(db.session, current_user, card.unit.id) for card in cards}
    return render("family/index.html", cards=cards, totals=commodity_totals(cards), actions=actions,
                  words={k: allowed_words(v) for k, v in actions.items()}, groups=my_groups(db.session, current_user))


@bp.get("/units/<int:unit_id>")
def unit(unit_id: int):
    found = wallet_or_404(db.session, current_user, unit_id, "balance")
    actions = wallet_actions(db.session, current_user, found.id)
    dashboard = unit_dashboard(db.session, found)
    return render("family/unit.html", "dashboard", dash=dashboard, card=dashboard.card, actions=actions,
                  words=allowed_words(actions))


@bp.get("/units/<int:unit_id>/history")
def history(unit_id: int):
    found = wallet_or_404(db.session, current_user, unit_id, "history")
    card = unit_cards(db.session, [found])[0]
    activity = recent_pocket_activity(db.session, [p.account_id for p in card.pockets], limit=HISTORY_LINES)
    return render("family/history.html", card=card, unit=found, activity=activity,
                  actions=wallet_actions(db.session, current_user, found.id))
