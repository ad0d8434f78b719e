"""Demo data for languages (issue 23): a Sesotho-speaking and a French-speaking tenant, each with a login.

Called from `app.demo.seed` once the estates exist. The Maseru and mini-grid estates name the loti
by its symbol M; each new tenant has texted the gateway once (CHELETE, SOLDE), so the SMS outbox
holds a reply in their language.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.i18n import SYMBOL_SETTING
from app.models import RoleGrant, User
from app.settings import put_setting

LANGUAGE_TENANTS = {  # role -> (estate code, language, keyword texted to the gateway)
    "tenant_st": ("MAS", "st", "CHELETE"),
    "tenant_fr": ("SUN", "fr", "SOLDE"),
}


def language_logins() -> list[tuple[str, str, str]]:
    """The (role, email, password) of the language demo logins."""
    from app.demo import LOGIN_DOMAIN
    return [(role, f"{role.replace('_', '-')}@{LOGIN_DOMAIN}", f"{role.replace('_', '-')}-demo-2026")
            for role in LANGUAGE_TENANTS]


def seed_languages(session: Session, seeded: dict) -> list[tuple[str, str, str]]:
    """Give two current tenants a language and a login; return their logins. The caller commits."""
    from app.payments.mpesa_sms import receive_message

    for code, symbol in (("SUN", "R"), ("MAS", "M"), ("TPM", "M")):  # CLDR's French has only ZAR, LSL
        if code in seeded:
            put_setting(session, SYMBOL_SETTING, symbol, seeded[code].estate.id)
    taken = set(session.scalars(select(RoleGrant.unit_id).where(RoleGrant.unit_id.is_not(None))))
    logins = []
    for (role, email, password), (code, language, keyword) in zip(language_logins(), LANGUAGE_TENANTS.values()):
        estate = seeded.get(code)
        if estate is None:
            continue
        number, person = next(((n, p) for n, p in sorted(estate.tenants.items())
                               if p.phone and estate.units[n].id not in taken), (None, None))
        if person is None:
            continue
        person.language, person.email = language, email
        user = User(email=email, person=person)
        user.set_password(password)
        session.add_all([user, RoleGrant(user=user, role="tenant", unit_id=estate.units[number].id)])
        session.flush()
        logins.append((role, email, password))
        receive_message(session, {"id": f"demo-{role}", "from": person.phone, "content": keyword})
    return logins
