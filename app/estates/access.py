"""Access to an estate (X6): role grants, invites, simple tenancies and ownerships, logins.

A grant gives a person's login a role on the estate (ESTATE_ROLES) or on one unit
(UNIT_ROLES); the login is made on the way (an email, no password) and the existing invite
link (app/auth/invites.py) is emailed so they choose a password. Nobody grants staff here,
and a grant never reaches past the granter's estates: an agent grants only on the estates
they administer, staff on any. Tenancies and ownerships here are the small version (a date
in, a date out, the matching unit grant); the move-in/move-out flow with readings and
refunds is built elsewhere and never touches wallets here.

Every action is audited and commits once; `AccessError` carries a field-keyed `errors`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app import audit
from app.auth.scope import estate_ids_query
from app.auth.sessions import end_sessions
from app.models import Estate, Person, RoleGrant, Tenancy, Unit, UnitOwnership, User
from app.models.people import ESTATE_ROLES, UNIT_ROLES

ADMIN_ROLES = ("agent",)  # the grants that let a login administer an estate (app.layers.admin.ROLES)


class AccessError(ValueError):
    """An access change the rules refuse; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class GrantRefused(AccessError):
    """The role, the place or the granter's own reach does not allow this grant."""


class NoEmail(AccessError):
    """A login (and so a grant or an invite) needs an email, and the person has none."""


class AlreadyGranted(AccessError):
    """The person's login already holds this role there."""


class TenancyRefused(AccessError):
    """A tenancy or ownership date or overlap the rules refuse."""


@dataclass
class GrantResult:
    grant: RoleGrant | None
    user: User | None
    login_created: bool = False
    invite_link: str | None = None


def administers(session: Session, actor: User, estate_id: int) -> bool:
    """Whether the actor may change access in the estate: staff anywhere, agents in their estates."""
    if actor.is_staff:
        return True
    return session.scalar(select(Estate.id).where(
        Estate.id == estate_id, Estate.id.in_(estate_ids_query(actor, ADMIN_ROLES)))) is not None


def _check_reach(session: Session, actor: User, estate_id: int) -> None:
    if not administers(session, actor, estate_id):
        raise GrantRefused({"role": "You can only give access in the estates you administer."})


def login_of(session: Session, person: Person) -> User | None:
    """The person's login, if they have one."""
    return session.scalar(select(User).where(User.person_id == person.id).order_by(User.id).limit(1))


def _ensure_login(session: Session, person: Person) -> tuple[User, bool]:
    user = login_of(session, person)
    if user is not None:
        return user, False
    if not person.email:
        raise NoEmail({"email": f"{person.full_name} has no email: add one to give them a login."})
    email = person.email.strip().lower()
    other = session.scalar(select(User).where(func.lower(User.email) == email))
    if other is not None:
        if other.person_id is not None:
            raise GrantRefused({"email": "Another person's login already uses this email."})
        other.person_id = person.id  # a login made before people were linked to it
        session.flush()
        return other, False
    user = User(email=email, password_hash=None, active=True, person_id=person.id)
    session.add(user)
    session.flush()
    audit.record(session, "user.created", user, new={"email": email, "person_id": person.id},
                 estate_id=person.estate_id)
    return user, True


def _place(role: str, estate: Estate | None, unit: Unit | None) -> int:
    """Check the role fits the place; return the estate id the grant lives in."""
    if role == "staff":
        raise GrantRefused({"role": "Staff access is not given from these pages."})
    if unit is not None:
        if role not in UNIT_ROLES:
            raise GrantRefused({"role": "On a unit, choose tenant, owner or family."})
        return unit.estate_id
    if estate is None:
        raise GrantRefused({"role": "Choose an estate or a unit for the role."})
    if role not in ESTATE_ROLES:
        raise GrantRefused({"role": "On an estate, choose owner, body corporate, agent or utility."})
    return estate.id


def _grant(session: Session, actor: User, person: Person, role: str, *, estate: Estate | None,
           unit: Unit | None, invite: bool) -> GrantResult:
    """Add the grant (and login) and send the invite; the caller commits."""
    estate_id = _place(role, estate, unit)
    _check_reach(session, actor, estate_id)
    user, created = _ensure_login(session, person)
    exists = session.scalar(select(RoleGrant.id).where(
        RoleGrant.user_id == user.id, RoleGrant.role == role,
        RoleGrant.unit_id == unit.id if unit is not None else RoleGrant.unit_id.is_(None),
        RoleGrant.estate_id.is_(None) if unit is not None else RoleGrant.estate_id == estate_id))
    if exists is not None:
        raise AlreadyGranted({"role": f"{person.full_name} already has this role here."})
    grant = RoleGrant(user_id=user.id, role=role, estate_id=None if unit is not None else estate_id,
                      unit_id=unit.id if unit is not None else None)
    session.add(grant)
    session.flush()
    user.__dict__.pop("_role_set", None)
    audit.record(session, "role.granted", grant, estate_id=estate_id,
                 new={"user": user.email, "person_id": person.id, "role": role,
                      "estate_id": grant.estate_id, "unit_id": grant.unit_id})
    link = None
    if invite and user.active and not user.password_hash:
        link = _send(session, actor, user, estate_id)
    return GrantResult(grant, user, created, link)


def _send(session: Session, actor: User, user: User, estate_id: int) -> str:
    from app.auth.invites import send_invite

    estate = session.get(Estate, estate_id)
    return send_invite(session, user, inviter=actor.display_name, estate=estate.name if estate else None)


def grant_role(session: Session, actor: User, person: Person, role: str, *, estate: Estate | None = None,
               unit: Unit | None = None, invite: bool = True, user_id: int | None = None) -> GrantResult:
    """Give the person `role` on the estate or the unit, making their login and inviting them; commits once."""
    result = _grant(session, actor, person, role, estate=estate, unit=unit, invite=invite)
    session.commit()
    return result


def resend_invite(session: Session, actor: User, person: Person, estate: Estate, *,
                  user_id: int | None = None) -> GrantResult:
    """Email a fresh invite link to a login that has not chosen a password yet; commits once."""
    _check_reach(session, actor, estate.id)
    user = login_of(session, person)
    if user is None:
        raise NoEmail({"invite": "Give them a role first: that makes their login and sends the invite."})
    if not user.active:
        raise GrantRefused({"invite": "This login is deactivated: reactivate it first."})
    if user.password_hash:
        raise GrantRefused({"invite": "They have already chosen a password; "
                                      "they can use “Forgot your password?” on the sign-in page."})
    link = _send(session, actor, user, estate.id)
    session.commit()
    return GrantResult(None, user, False, link)


def grant_in_estate(session: Session, estate: Estate, grant_id: int) -> RoleGrant | None:
    """A non-staff grant that lives in the estate (on it, or on one of its units), else None."""
    from app.routing import INTEGER_MAX

    if not 0 < grant_id <= INTEGER_MAX:
        return None
    units = select(Unit.id).where(Unit.estate_id == estate.id)
    return session.scalar(select(RoleGrant).where(
        RoleGrant.id == grant_id, RoleGrant.role != "staff",
        or_(RoleGrant.estate_id == estate.id, RoleGrant.unit_id.in_(units))))


def revoke_grant(session: Session, actor: User, estate: Estate, grant: RoleGrant, *,
                 user_id: int | None = None) -> None:
    """Take a grant away (the login keeps its other grants); commits once."""
    if grant.role == "staff":
        raise GrantRefused({"grant": "Staff access is not changed from these pages."})
    _check_reach(session, actor, estate.id)
    if grant.user_id == actor.id and grant.role in ADMIN_ROLES and not actor.is_staff:
        raise GrantRefused({"grant": "You cannot take away your own administration of this estate."})
    _revoke(session, grant, estate.id)
    session.commit()


def _revoke(session: Session, grant: RoleGrant, estate_id: int) -> None:
    user = session.get(User, grant.user_id)
    audit.record(session, "role.revoked", grant, estate_id=estate_id,
                 old={"user": user.email if user else None, "role": grant.role,
                      "estate_id": grant.estate_id, "unit_id": grant.unit_id})
    session.delete(grant)
    session.flush()
    if user is not None:
        user.__dict__.pop("_role_set", None)


# --- tenancies and ownerships -----------------------------------------------------------

def _unit_grant(session: Session, person: Person, role: str, unit: Unit) -> RoleGrant | None:
    user = login_of(session, person)
    if user is None:
        return None
    return session.scalar(select(RoleGrant).where(RoleGrant.user_id == user.id, RoleGrant.role == role,
                                                  RoleGrant.unit_id == unit.id))


def _person(session: Session, unit: Unit, person: Person | Mapping[str, str | None]) -> Person:
    """The chosen person, or a new one registered to the unit's estate from form values."""
    if isinstance(person, Person):
        return person
    from app.estates.people import register_person

    return register_person(session, session.get(Estate, unit.estate_id), person)


def add_tenant(session: Session, actor: User, unit: Unit, person: Person | Mapping[str, str | None],
               move_in: date, *, invite: bool = True,
               user_id: int | None = None) -> tuple[Tenancy, GrantResult | None]:
    """Record a tenancy from `move_in`, give a login the tenant role on the unit and invite them; commits once.

    `person` is a person of the estate, or the form values of a new one (registered here).
    A person without an email gets the tenancy only (no login: they pay and are told by SMS).
    """
    tenancy, result = place_tenant(session, actor, unit, person, move_in, invite=invite, user_id=user_id)
    session.commit()
    return tenancy, result


def place_tenant(session: Session, actor: User, unit: Unit, person: Person | Mapping[str, str | None],
                 move_in: date, *, invite: bool = True, today: date | None = None,
                 user_id: int | None = None) -> tuple[Tenancy, GrantResult | None]:
    """Record the tenancy, mark the unit occupied once it has begun, grant and invite; the caller commits."""
    from app.estates.status import set_occupancy

    _check_reach(session, actor, unit.estate_id)
    person = _person(session, unit, person)
    current = session.scalar(select(Tenancy.id).where(
        Tenancy.unit_id == unit.id, Tenancy.person_id == person.id,
        or_(Tenancy.move_out.is_(None), Tenancy.move_out >= move_in)))
    if current is not None:
        raise TenancyRefused({"person_id": f"{person.full_name} already rents unit {unit.number} then."})
    tenancy = Tenancy(unit_id=unit.id, person_id=person.id, move_in=move_in)
    session.add(tenancy)
    session.flush()
    audit.record(session, "tenancy.created", tenancy, estate_id=unit.estate_id,
                 new={"unit": unit.number, "person_id": person.id, "move_in": move_in})
    if move_in <= (today or date.today()) and unit.occupancy_status != "maintenance":
        set_occupancy(session, unit, "occupied", user_id=user_id)  # a tenant lives there from today
    result = None
    if person.email and _unit_grant(session, person, "tenant", unit) is None:
        result = _grant(session, actor, person, "tenant", estate=None, unit=unit, invite=invite)
    return tenancy, result


def add_owner(session: Session, actor: User, unit: Unit, person: Person | Mapping[str, str | None],
              since: date, *, invite: bool = True,
              user_id: int | None = None) -> tuple[UnitOwnership, GrantResult | None]:
    """Record an ownership from `since`, give a login the owner role on the unit and invite them; commits once.

    `person` is a person of the estate, or the form values of a new one (registered here).
    """
    _check_reach(session, actor, unit.estate_id)
    person = _person(session, unit, person)
    current = session.scalar(select(UnitOwnership.id).where(
        UnitOwnership.unit_id == unit.id, UnitOwnership.person_id == person.id,
        or_(UnitOwnership.until.is_(None), UnitOwnership.until >= since)))
    if current is not None:
        raise TenancyRefused({"person_id": f"{person.full_name} already owns unit {unit.number} then."})
    ownership = UnitOwnership(unit_id=unit.id, person_id=person.id, since=since)
    session.add(ownership)
    session.flush()
    audit.record(session, "ownership.created", ownership, estate_id=unit.estate_id,
                 new={"unit": unit.number, "person_id": person.id, "since": since,
                      "share_percent": ownership.share_percent})
    result = None
    if person.email and _unit_grant(session, person, "owner", unit) is None:
        result = _grant(session, actor, person, "owner", estate=None, unit=unit, invite=invite)
    session.commit()
    return ownership, result


def _check_end(start: date, end: date, today: date) -> None:
    if end < start:
        raise TenancyRefused({"end": f"The end date cannot be before the start ({start.isoformat()})."})
    if end > today:
        raise TenancyRefused({"end": "Enter today's date or an earlier one: access ends when you save."})


def end_tenancy(session: Session, actor: User, tenancy: Tenancy, move_out: date, *,
                today: date | None = None, user_id: int | None = None) -> Tenancy:
    """Close a current tenancy on `move_out` and take away the tenant's access to the unit; commits once."""
    unit = session.get(Unit, tenancy.unit_id)
    _check_reach(session, actor, unit.estate_id)
    if tenancy.move_out is not None:
        raise TenancyRefused({"end": "This tenancy has already ended."})
    _check_end(tenancy.move_in, move_out, today or date.today())
    tenancy.move_out = move_out
    audit.record(session, "tenancy.ended", tenancy, estate_id=unit.estate_id,
                 old={"move_out": None}, new={"move_out": move_out})
    person = session.get(Person, tenancy.person_id)
    still = session.scalar(select(Tenancy.id).where(
        Tenancy.unit_id == unit.id, Tenancy.person_id == person.id, Tenancy.id != tenancy.id,
        Tenancy.move_out.is_(None)))
    grant = _unit_grant(session, person, "tenant", unit)
    if grant is not None and still is None:
        _revoke(session, grant, unit.estate_id)
    _vacate_if_empty(session, unit, move_out, user_id=user_id)
    session.commit()
    return tenancy


def _vacate_if_empty(session: Session, unit: Unit, day: date, *, user_id: int | None = None) -> bool:
    """Mark the unit vacant when nobody rents it after `day`; the caller commits."""
    from app.estates.status import set_occupancy

    others = session.scalar(select(Tenancy.id).where(
        Tenancy.unit_id == unit.id, or_(Tenancy.move_out.is_(None), Tenancy.move_out > day)).limit(1))
    if others is not None or unit.occupancy_status != "occupied":
        return False
    return set_occupancy(session, unit, "vacant", user_id=user_id)


def end_ownership(session: Session, actor: User, ownership: UnitOwnership, until: date, *,
                  today: date | None = None, user_id: int | None = None) -> UnitOwnership:
    """Close a current ownership on `until` and take away the owner's access to the unit; commits once."""
    unit = session.get(Unit, ownership.unit_id)
    _check_reach(session, actor, unit.estate_id)
    if ownership.until is not None:
        raise TenancyRefused({"end": "This ownership has already ended."})
    _check_end(ownership.since, until, today or date.today())
    ownership.until = until
    audit.record(session, "ownership.ended", ownership, estate_id=unit.estate_id,
                 old={"until": None}, new={"until": until})
    person = session.get(Person, ownership.person_id)
    grant = _unit_grant(session, person, "owner", unit)
    if grant is not None:
        _revoke(session, grant, unit.estate_id)
    session.commit()
    return ownership


# --- logins ------------------------------------------------------------------------------

def set_login_active(session: Session, actor: User, user: User, active: bool, *,
                     user_id: int | None = None) -> bool:
    """Staff deactivate or reactivate a login; deactivating ends its sessions at once; commits once.

    Returns False when the login already was that way.
    """
    if not actor.is_staff:
        raise GrantRefused({"login": "Only Meterwise staff deactivate or reactivate logins."})
    if user.id == actor.id:
        raise GrantRefused({"login": "You cannot deactivate your own login."})
    if user.active == active:
        return False
    audit.record(session, "user.reactivated" if active else "user.deactivated", user,
                 old={"active": user.active}, new={"active": active})
    user.active = active
    if not active:
        end_sessions(session, user)
    session.commit()
    return True
