"""Wallet access (F2): grant view, topup or manage on a unit's wallet by email or phone, revoke.

A grant names a login. Granting to an email nobody uses yet makes an invited login (the
invite email lets them choose a password); a phone must already belong to someone with a
login, since an invite needs an email. Revoking takes effect on the next request: the scope
check reads the grants each time.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.estates.people import PersonError, normalise_email, normalise_phone
from app.families import FamilyError
from app.i18n.label_texts import N_
from app.models import Person, Unit, User, utcnow
from app.models.families import GRANT_LEVELS, WalletGrant

# English msgids, translated where they are shown (the `translate` filter, gettext).
LEVEL_WORDS = {"view": N_("See balances and history"), "topup": N_("Top up (no history)"),
               "manage": N_("Manage: top up, history, limits and access")}


@dataclass
class Granted:
    grant: WalletGrant
    invited: bool  # a new login was made and sent an invite


def active_grants(session: Session, unit_id: int) -> list[WalletGrant]:
    """The grants not revoked on this unit's wallet, managers first."""
    grants = session.scalars(select(WalletGrant).where(
        WalletGrant.unit_id == unit_id, WalletGrant.revoked_at.is_(None)).order_by(WalletGrant.id)).all()
    return sorted(grants, key=lambda g: (GRANT_LEVELS.index(g.level) * -1, g.id))


def grant_of(session: Session, user: User, unit_id: int, *, lock: bool = False) -> WalletGrant | None:
    """The user's active grant on the unit's wallet (locked for update when asked)."""
    query = select(WalletGrant).where(WalletGrant.unit_id == unit_id, WalletGrant.user_id == user.id,
                                      WalletGrant.revoked_at.is_(None))
    return session.scalar(query.with_for_update() if lock else query)


def _find_or_invite(session: Session, unit: Unit, email: str | None, phone: str | None,
                    name: str) -> tuple[User, bool]:
    if email:
        user = session.scalar(select(User).where(User.email == email))
        if user is not None:
            return user, False
    if phone:
        user = session.scalar(select(User).join(Person, Person.id == User.person_id).where(Person.phone == phone))
        if user is not None:
            return user, False
    if not email:
        raise FamilyError({"phone": "No one with a login has this phone number; add their email "
                                    "address so we can send them an invite."})
    person = Person(full_name=name or email.split("@")[0], email=email, phone=phone, estate_id=unit.estate_id)
    user = User(email=email, person=person)
    session.add(user)
    session.flush()
    return user, True


def grant_access(session: Session, unit: Unit, *, email: str = "", phone: str = "", level: str,
                 name: str = "", acting_user: User) -> Granted:
    """Give a person `level` on the unit's wallet (changing an existing grant's level); commits once."""
    errors: dict[str, str] = {}
    if level not in GRANT_LEVELS:
        errors["level"] = "Choose what they may do."
    try:
        email_value = normalise_email(email)
    except PersonError as error:
        errors.update(error.errors)
        email_value = None
    try:
        phone_value = normalise_phone(phone, unit.estate.country)
    except PersonError as error:
        errors.update(error.errors)
        phone_value = None
    if not errors and not email_value and not phone_value:
        errors["email"] = "Enter their email address or phone number."
    if len(name or "") > 200:
        errors["name"] = "That name is too long."
    if errors:
        raise FamilyError(errors)
    user, invited = _find_or_invite(session, unit, email_value, phone_value, (name or "").strip())
    if user.id == acting_user.id:
        raise FamilyError({"email": "You cannot change your own access."})
    if not user.active:
        raise FamilyError({"email": "That login is switched off; ask staff to switch it back on."})
    grant = grant_of(session, user, unit.id, lock=True)
    if grant is None:
        grant = WalletGrant(unit_id=unit.id, user_id=user.id, level=level, granted_by_user_id=acting_user.id,
                            alerts_enabled=level == "manage", alert_channels=["in_app", "email"])
        session.add(grant)
        session.flush()
        audit.record(session, "wallet_grant.granted", grant, estate_id=unit.estate_id,
                     new={"unit": unit.number, "user": user.email, "level": level, "invited": invited})
    elif grant.level != level:
        audit.record(session, "wallet_grant.changed", grant, estate_id=unit.estate_id,
                     old={"level": grant.level}, new={"level": level, "user": user.email})
        grant.level = level
        grant.alerts_enabled = grant.alerts_enabled and level == "manage"
    user.__dict__.pop("_role_set", None)
    if invited:
        from app.auth.invites import send_invite
        send_invite(session, user, acting_user.display_name, unit.estate.name)
    else:
        from app.notify import notify
        notify(session, "wallet_shared", {"unit": unit, "estate": unit.estate, "level": LEVEL_WORDS[level],
                                          "by": acting_user.display_name}, user=user, channels=("in_app",))
    session.commit()
    return Granted(grant, invited)


def revoke_access(session: Session, unit: Unit, grant_id: int, *, acting_user: User) -> WalletGrant:
    """End a grant on this unit's wallet; the person loses access on their next request; commits once."""
    grant = session.scalar(select(WalletGrant).where(
        WalletGrant.id == grant_id, WalletGrant.unit_id == unit.id, WalletGrant.revoked_at.is_(None))
        .with_for_update())
    if grant is None:
        raise FamilyError({"grant": "That access was already removed."})
    if grant.user_id == acting_user.id:
        raise FamilyError({"grant": "You cannot remove your own access; ask another manager or staff."})
    grant.revoked_at = utcnow()
    grant.revoked_by_user_id = acting_user.id
    audit.record(session, "wallet_grant.revoked", grant, estate_id=unit.estate_id,
                 old={"level": grant.level}, new={"unit": unit.number, "user": grant.user.email})
    session.commit()
    return grant
