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
    return select(Unit.id).where(or_(Unit.estate_id.in_(estate_grants), Unit.id.in_(unit_grants)))


def estate_ids_query(user: User, roles: Iterable[str]) -> Select:
    """Select the ids of estates the user reaches: estate grants, or grants on one of its units."""
    roles = tuple(roles)
    direct = select(RoleGrant.estate_id).where(
        RoleGrant.user_id == user.id, RoleGrant.role.in_(roles), RoleGrant.estate_id.is_not(None))
    via_unit = select(Unit.estate_id).where(Unit.id.in_(
        select(RoleGrant.unit_id).where(RoleGrant.user_id == user.id, RoleGrant.role.in_(roles))))
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
