"""Family wallet groups (F1): a person's groups over wallets they manage, and each group's overview."""
from flask import flash, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import visible_units, wallet_actions, wallet_group_or_404, wallet_or_404
from app.extensions import db
from app.families import FamilyError
from app.families.groups import add_member, create_group, group_overview, my_groups, remove_member
from app.htmx import redirect, render
from app.layers.family import bp


def _manageable():
    return [u for u in visible_units(db.session, current_user, ("family",))
            if "distribute" in wallet_actions(db.session, current_user, u.id)]


@bp.get("/groups")
def groups():
    return _list({}, {})


@bp.post("/groups")
def new_group():
    wanted = [wallet_or_404(db.session, current_user, unit_id, "distribute")
              for unit_id in request.form.getlist("unit_id", type=int)]
    try:
        group = create_group(db.session, current_user, request.form.get("name", ""), wanted)
    except FamilyError as error:
        db.session.rollback()
        return _list(error.errors, request.form), 400
    flash(gettext("Group “%(name)s” made.", name=group.name), "success")
    return redirect(url_for("family.group", group_id=group.id))


@bp.get("/groups/<int:group_id>")
def group(group_id: int):
    found = wallet_group_or_404(db.session, current_user, group_id)
    return _page(found, {})


@bp.post("/groups/<int:group_id>/members")
def add_group_member(group_id: int):
    found = wallet_group_or_404(db.session, current_user, group_id)
    unit = wallet_or_404(db.session, current_user, request.form.get("unit_id", type=int) or 0, "distribute")
    try:
        add_member(db.session, found, unit)
    except FamilyError as error:
        db.session.rollback()
        return _page(found, error.errors), 400
    flash(gettext("Unit %(number)s added.", number=unit.number), "success")
    return redirect(url_for("family.group", group_id=found.id))


@bp.post("/groups/<int:group_id>/members/<int:unit_id>/remove")
def remove_group_member(group_id: int, unit_id: int):
    found = wallet_group_or_404(db.session, current_user, group_id)
    try:
        remove_member(db.session, found, unit_id)
    except FamilyError as error:
        db.session.rollback()
        return _page(found, error.errors), 400
    flash(gettext("Wallet taken out of the group."), "success")
    return redirect(url_for("family.group", group_id=found.id))


def _list(errors, form):
    return render("family/groups.html", groups=my_groups(db.session, current_user), units=_manageable(),
                  errors=errors, form=form)


def _page(found, errors):
    from app.families.distribution import RULE_WORDS, group_distributions
    from app.payments.payfast import checkout_expiry_cutoff

    overview = group_overview(db.session, found, current_user)
    in_group = {m.unit.id for m in overview.members}
    distributions = group_distributions(db.session, found)
    return render("family/group.html", o=overview, errors=errors,
                  addable=[u for u in _manageable() if u.id not in in_group],
                  distributions=distributions, d_payments={d.payment_id: d.payment for d in distributions},
                  rules=RULE_WORDS, cutoff=checkout_expiry_cutoff())
