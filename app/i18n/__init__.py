"""Languages (X8): which language a page, email, SMS or PDF is in, and its set-up with Flask-Babel.

A reader's language is, in order: the person's own choice (`Person.language`, set on My account,
the admin person page or at move-in), the language they switched to in this browser session
(people without a person row, and visitors before they sign in), their estate's default
(setting `language`), the browser's Accept-Language, English. Messages to a person (`notify`,
SMS replies, statements) use `language_for(session, person, estate_id)`: their choice, else the
estate's default, else English.

Catalogues live in translations/<lang>/LC_MESSAGES/messages.po, compiled by `make translations`;
a string without a translation (or a missing catalogue) shows in English. Numbers, money and dates
follow the language's CLDR rules (`app/i18n/formatting.py`).
"""
from __future__ import annotations

import os

from flask import Flask, g, has_request_context, request, session as browser_session
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français", "st": "Sesotho"}
DEFAULT_LANGUAGE = "en"
LANGUAGE_SETTING = "language"  # an estate's default language
SYMBOL_SETTING = "currency_symbol"  # the symbol an estate's currency is known by ("M" for LSL)
SESSION_KEY = "language"


class LanguageError(ValueError):
    """A language code that is not one of LANGUAGES."""


def known(code: str | None) -> str | None:
    """The language code if it is one we have ("fr", "FR", "fr-BE" -> "fr"), else None."""
    if not code or not isinstance(code, str):
        return None
    base = code.strip().replace("_", "-").split("-")[0].lower()
    return base if base in LANGUAGES else None


def estate_language(session: Session, estate_id: int | None) -> str | None:
    """The estate's default language (setting `language`), None when it has none."""
    if estate_id is None:
        return None
    from app.settings import get_setting
    return known(get_setting(session, LANGUAGE_SETTING, estate_id))


def language_for(session: Session, person=None, estate_id: int | None = None) -> str:
    """The language to write to a person in: theirs, else their (or the given) estate's, else English."""
    own = known(getattr(person, "language", None))
    if own:
        return own
    estate_id = estate_id if estate_id is not None else getattr(person, "estate_id", None)
    return estate_language(session, estate_id) or DEFAULT_LANGUAGE


def home_estate_id(session: Session, user) -> int | None:
    """The estate a signed-in user belongs to: their person's, else that of their first grant."""
    from app.models import RoleGrant, Unit

    person = user.person
    if person is not None and person.estate_id is not None:
        return person.estate_id
    # One row, two columns: an owner of 500 units has 500 grants, and this runs on every page.
    first = session.execute(select(RoleGrant.estate_id, Unit.estate_id)
                            .outerjoin(Unit, Unit.id == RoleGrant.unit_id)
                            .where(RoleGrant.user_id == user.id)
                            .order_by(RoleGrant.id).limit(1)).first()
    if first is None:
        return None
    return first[0] if first[0] is not None else first[1]


def select_locale() -> str:
    """Flask-Babel's locale selector: the signed-in reader's language, worked out once per request."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    chosen = g.get("_language")
    if chosen is None:
        chosen = g._language = _request_language()
    return chosen


def _request_language() -> str:
    from app.extensions import db

    user = current_user if current_user and current_user.is_authenticated else None
    own = known(getattr(user.person, "language", None)) if user is not None and user.person else None
    if own:
        return own
    switched = known(browser_session.get(SESSION_KEY))
    if switched:
        return switched
    if user is not None:
        estate = estate_language(db.session, home_estate_id(db.session, user))
        if estate:
            return estate
    return request.accept_languages.best_match(list(LANGUAGES)) or DEFAULT_LANGUAGE


def current_language() -> str:
    """The language the current page or message is being written in."""
    from flask_babel import get_locale

    locale = get_locale()
    return known(str(locale)) if locale is not None and known(str(locale)) else DEFAULT_LANGUAGE


def choose_language(session: Session, user, code: str) -> bool:
    """Switch the signed-in user's language (kept on their person, audited); the caller commits.

    Returns whether anything changed. Without a person the choice lives in the browser session.
    """
    from app import audit

    language = known(code)
    if language is None or code.strip().lower() != language:
        raise LanguageError(f"{code!r} is not a language we have ({', '.join(LANGUAGES)})")
    browser_session[SESSION_KEY] = language
    g.pop("_language", None)
    person = getattr(user, "person", None) if user is not None else None
    if person is None or person.language == language:
        return False
    audit.record(session, "person.language", person, old={"language": person.language},
                 new={"language": language}, estate_id=person.estate_id)
    person.language = language
    return True


def translations_directory(app: Flask) -> str:
    return os.path.abspath(os.path.join(app.root_path, "..", "translations"))


def init_app(app: Flask) -> None:
    """Set up Flask-Babel and the language-aware template filters (after the other filters)."""
    from app.extensions import babel
    from app.i18n import formatting

    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", translations_directory(app))
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LANGUAGE)
    babel.init_app(app, locale_selector=select_locale)
    formatting.install(app)
    from app.i18n.views import bp
    app.register_blueprint(bp)
