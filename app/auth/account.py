"""A signed-in person's own account: their email, phone and how their alerts reach them.

Contact details are the person's (app/estates/people.py normalises and checks them); the
notification channels are the ones stored today, per unit, in the budget alert settings
(app/notify/budget_alerts.py): this page edits those rows, it keeps no second store.
"""
from __future__ import annotations

from collections.abc import Mapping

from flask_babel import gettext
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.estates.people import PersonError, change_own_contact
from app.models import BudgetAlertSetting, Estate, RoleGrant, Unit, User
from app.models.budget_alerts import ALERT_CHANNELS
from app.models.base import utcnow


class AccountError(ValueError):
    """Account changes that cannot be saved; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


def home_country(session: Session, user: User) -> str | None:
    """The country a person's phone is read in: their estate's, else that of their first grant."""
    person = user.person
    if person is not None and person.estate_id is not None:
        return session.scalar(select(Estate.country).where(Estate.id == person.estate_id))
    grant = session.scalars(select(RoleGrant).where(RoleGrant.user_id == user.id)
                            .order_by(RoleGrant.id)).first()
    if grant is None:
        return None
    if grant.estate_id is not None:
        return session.scalar(select(Estate.country).where(Estate.id == grant.estate_id))
    if grant.unit_id is not None:
        return session.scalar(select(Estate.country).join(Unit, Unit.estate_id == Estate.id)
                              .where(Unit.id == grant.unit_id))
    return None


def alert_settings(session: Session, user: User) -> list[tuple[BudgetAlertSetting, Unit]]:
    """The user's budget alert settings with their units, by estate and unit number."""
    rows = session.execute(
        select(BudgetAlertSetting, Unit).join(Unit, Unit.id == BudgetAlertSetting.unit_id)
        .where(BudgetAlertSetting.user_id == user.id).order_by(Unit.estate_id, Unit.number))
    return [(setting, unit) for setting, unit in rows]


def save_account(session: Session, user: User, values: Mapping[str, str | None],
                 channels: Mapping[int, list[str]]) -> bool:
    """Save the user's email, phone and alert channels (all or nothing); commits once.

    `channels` maps a budget alert setting id to the channels chosen for it. Returns whether
    anything changed.
    """
    errors: dict[str, str] = {}
    settings = alert_settings(session, user)
    wanted: dict[int, list[str]] = {}
    phone_after = (values.get("phone") or "").strip()
    for setting, unit in settings:
        chosen = list(dict.fromkeys(channels.get(setting.id, [])))
        field = f"channels_{setting.id}"
        if not chosen or any(c not in ALERT_CHANNELS for c in chosen):
            errors[field] = gettext("Choose at least one way to be told: in the app, email or SMS.")
        elif "sms" in chosen and not phone_after:
            errors[field] = gettext("SMS needs a phone number: enter one above or choose another way.")
        wanted[setting.id] = chosen
    from app.i18n import LANGUAGES, known  # languages (issue 23): the person's own choice
    language = (values.get("language") or "").strip().lower() or None
    if "language" in values and language is not None and (known(language) != language or language not in LANGUAGES):
        errors["language"] = gettext("Choose one of the languages listed.")
    try:
        contact = change_own_contact(session, user, values, country=home_country(session, user)) \
            if not errors else None
    except PersonError as error:
        session.rollback()
        errors.update(error.errors)
        contact = None
    if errors:
        session.rollback()
        raise AccountError(errors)
    changed = bool(contact and contact["new"])
    if "language" in values and user.person is not None and user.person.language != language:
        audit.record(session, "person.language", user.person, old={"language": user.person.language},
                     new={"language": language}, estate_id=user.person.estate_id)
        user.person.language, changed = language, True
    for setting, unit in alert_settings(session, user):
        chosen = wanted[setting.id]
        if chosen != list(setting.channels or []):
            audit.record(session, "budget_alerts.channels", setting, estate_id=unit.estate_id,
                         old={"channels": setting.channels}, new={"channels": chosen})
            setting.channels, setting.updated_at = chosen, utcnow()
            changed = True
    session.commit()
    return changed
