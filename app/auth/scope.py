"""The one scope check (X1): which estates and units a user may see in a given role.

Anything outside a user's grants is answered with 404, never 403, so ids of other
people's units reveal nothing. Staff see everything.
"""
from collections.abc import Iterable

from flask import abort
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from app.models import Estate, RoleGrant, Unit, User
from app.routing import INTEGER_MAX


def unit_ids_query(user: User, roles: Iterable[str]) -> Select:
    """Select the ids of units the user reaches through grants of these roles."""
    roles = tuple(roles)
    estate_grants = select(RoleGrant.estate_id).where(
        RoleGrant.user_id == user.id, RoleGrant.role.in_(roles), RoleGrant.estate_id.is_not(None))
    unit_grants = select(RoleGrant.unit_id).where(
        RoleGrant.user_id == user.id, RoleGrant.role.in_(roles), RoleGrant.unit_id.is_not(None))
    if "family" in roles:  # F2: wallet grants (any level) make a unit visible in the family layer
        return select(Unit.id).where(or_(Unit.estate_id.in_(estate_grants), Unit.id.in_(unit_grants),
                                         Unit.id.in_(_wallet_grant_unit_ids(user))))
    return select(Unit.id).where(or_(Unit.estate_id.in_(estate_grants), Unit.id.in_(unit_grants)))


def estate_ids_query(user: User, roles: Iterable[str]) -> Select:
    """Select the ids of estates the user reaches: estate grants, or grants on one of its units."""
    roles = tuple(roles)
    direct = select(RoleGrant.estate_id).where(
        RoleGrant.user_id == user.id, RoleGrant.role.in_(roles), RoleGrant.estate_id.is_not(None))
    via_unit = select(Unit.estate_id).where(Unit.id.in_(
        select(RoleGrant.unit_id).where(RoleGrant.user_id == user.id, RoleGrant.role.in_(roles))))
    if "family" in roles:  # F2: the estates of units shared through wallet grants
        via_unit = select(Unit.estate_id).where(or_(
            Unit.id.in_(select(RoleGrant.unit_id).where(RoleGrant.user_id == user.id, RoleGrant.role.in_(roles))),
            Unit.id.in_(_wallet_grant_unit_ids(user))))
    return select(Estate.id).where(or_(Estate.id.in_(direct), Estate.id.in_(via_unit)))


def visible_units(session: Session, user: User, roles: Iterable[str]) -> list[Unit]:
    """Return the units the user may see in these roles, ordered by estate and number."""
    query = select(Unit).join(Estate).order_by(Estate.name, Unit.number)
    if not user.is_staff:
        query = query.where(Unit.id.in_(unit_ids_query(user, roles)))
    return list(session.scalars(query))


def visible_estates(session: Session, user: User, roles: Iterable[str]) -> list[Estate]:
    """Return the estates the user may see in these roles."""
    query = select(Estate).order_by(Estate.name)
    if not user.is_staff:
        query = query.where(Estate.id.in_(estate_ids_query(user, roles)))
    return list(session.scalars(query))


def unit_or_404(session: Session, user: User, unit_id: int, roles: Iterable[str]) -> Unit:
    """Return the unit if the user's grants in these roles cover it, else abort with 404."""
    if not 0 < unit_id <= INTEGER_MAX:  # ids from forms and query strings: no such unit, not a 500
        abort(404)
    unit = session.get(Unit, unit_id)
    if unit is None:
        abort(404)
    if user.is_staff:
        return unit
    allowed = session.scalar(select(Unit.id).where(
        Unit.id == unit_id, Unit.id.in_(unit_ids_query(user, roles))))
    if allowed is None:
        abort(404)
    return unit


def estate_or_404(session: Session, user: User, estate_id: int, roles: Iterable[str]) -> Estate:
    """Return the estate if the user's grants in these roles reach it, else abort with 404."""
    if not 0 < estate_id <= INTEGER_MAX:  # ids from forms and query strings: no such estate
        abort(404)
    estate = session.get(Estate, estate_id)
    if estate is None:
        abort(404)
    if user.is_staff:
        return estate
    allowed = session.scalar(select(Estate.id).where(
        Estate.id == estate_id, Estate.id.in_(estate_ids_query(user, roles))))
    if allowed is None:
        abort(404)
    return estate


def require_role(user: User, role: str) -> None:
    """Abort with 404 unless the user holds `role` somewhere (or is staff)."""
    if not user.is_authenticated or not (user.is_staff or role in user.roles):
        abort(404)


# --- family wallet grants (F2) -----------------------------------------------------------

def _wallet_grant_unit_ids(user: User) -> Select:
    """Units shared with the user through a wallet grant not revoked (read on every request)."""
    from app.models.families import WalletGrant

    return select(WalletGrant.unit_id).where(WalletGrant.user_id == user.id, WalletGrant.revoked_at.is_(None))


def wallet_actions(session: Session, user: User, unit_id: int) -> frozenset[str]:
    """What the user may do on this unit's wallet in the family layer (empty: not shared with them).

    Staff may do everything; a wallet grant gives its level's actions; a role grant "family"
    on the unit or its estate (the form before wallet grants) reads as `view`.
    """
    from app.models.families import LEVEL_ACTIONS, WalletGrant

    if user.is_staff:
        return LEVEL_ACTIONS["manage"]
    level = session.scalar(select(WalletGrant.level).where(
        WalletGrant.unit_id == unit_id, WalletGrant.user_id == user.id, WalletGrant.revoked_at.is_(None)))
    if level is not None:
        return LEVEL_ACTIONS[level]
    legacy = session.scalar(select(Unit.id).where(Unit.id == unit_id, Unit.id.in_(
        unit_ids_query(user, ("family",)))))
    return LEVEL_ACTIONS["view"] if legacy is not None else frozenset()


def wallet_or_404(session: Session, user: User, unit_id: int, action: str) -> Unit:
    """The unit if it is shared with the user (else 404) and their level allows `action` (else 403)."""
    unit = unit_or_404(session, user, unit_id, ("family",))
    if action not in wallet_actions(session, user, unit.id):
        abort(403)
    return unit


def wallet_group_or_404(session: Session, user: User, group_id: int):
    """The wallet group if the user made it (staff: any), else 404."""
    from app.models.families import WalletGroup

    if not 0 < group_id <= INTEGER_MAX:
        abort(404)
    group = session.get(WalletGroup, group_id)
    if group is None or not (user.is_staff or group.owner_user_id == user.id):
        abort(404)
    return group
