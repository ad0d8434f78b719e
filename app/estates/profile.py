"""An estate's profile and settings: creating an estate and editing it (X6, C1/C10).

The profile is the estate row (code, name, country, currency, timezone, fiscal year, wallet
denomination, minimum activation amount), its feature flags (`LIVE_FEATURES`) and its own
values of the catalogue settings (`settings_catalog`). Every change is audited with its old
and new values; each action commits once.

Form values come in as text keyed by field name: the profile fields by their column name,
feature flags as `feature_<name>` ("1" = on; absent = off, as a checkbox sends it, read only
when `features` is present: the form says it showed the flags) and settings as
`setting_<key>` (empty = not set for this estate; absent = left as it is).

Once an estate has a ledger posting its currency, wallet denomination and code are fixed:
posted amounts are in that currency or unit, and published ledger anchors and M-PESA account
numbers quote the code.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from flask_babel import gettext
from app import audit
from app.estates import choices
from app.estates.settings_catalog import SettingSpec, SettingValueError, estate_specs, spec_for
from app.estates.status import switch_feature
from app.ledger.accounts import pocket_commodity
from app.models import Account, Estate, Posting
from app.models.estate import FEATURE_DEFAULTS, LIVE_FEATURES, WALLET_DENOMINATIONS
from app.money import MoneyError, minor_units, parse_amount
from app.settings import clear_setting, get_setting, own_settings, put_setting

CODE = re.compile(r"[A-Z0-9](?:[A-Z0-9-]{0,14}[A-Z0-9])?", re.ASCII)
MAX_NAME = 200
PROFILE_FIELDS = ("code", "name", "country", "currency", "timezone", "fiscal_year_start_month",
                  "wallet_denomination", "minimum_activation_amount")
LOCKED_BY_POSTINGS = ("code", "currency", "wallet_denomination", "timezone")
NEW_ESTATE_DEFAULTS = {"country": "ZA", "currency": "ZAR", "timezone": "Africa/Johannesburg",
                       "fiscal_year_start_month": "3", "wallet_denomination": "currency",
                       "minimum_activation_amount": "0"}


class EstateError(ValueError):
    """An estate the rules refuse to save; `errors` says why, by form field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


class InvalidEstateField(EstateError):
    """One or more fields hold a value their rule refuses (several rules may be broken at once)."""


class EstateCodeTaken(EstateError):
    """Another estate already has this code."""


class EstateMoneyLocked(EstateError):
    """Currency, wallet denomination or code changed on an estate that has postings."""


@dataclass
class EstateSaved:
    """What a save did: the estate, and the changes by field (old, new)."""

    estate: Estate
    created: bool
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


# --- reads for the form ------------------------------------------------------------------

def posting_count(session: Session, estate_id: int) -> int:
    """How many ledger postings the estate's accounts have."""
    return session.scalar(select(func.count(Posting.id)).join(Account, Account.id == Posting.account_id)
                          .where(Account.estate_id == estate_id)) or 0


def has_postings(session: Session, estate_id: int) -> bool:
    """Whether any ledger posting touches one of the estate's accounts."""
    return bool(session.scalar(select(exists().where(
        Posting.account_id == Account.id, Account.estate_id == estate_id))))


def locked_fields(session: Session, estate: Estate | None) -> dict[str, str]:
    """The fields that can no longer change, each with the reason the form shows beside it."""
    if estate is None or estate.id is None or not has_postings(session, estate.id):
        return {}
    count = posting_count(session, estate.id)
    held = gettext("kWh/kL units") if estate.wallet_denomination == "units" else estate.currency
    return {"currency": gettext("Fixed: the ledger already has %(count)s postings in %(held)s; amounts already posted "
                                "cannot be re-read in another currency.", count=f"{count:,}", held=held),
            "wallet_denomination": gettext("Fixed: the ledger already has %(count)s postings in %(held)s; amounts "
                                           "already posted cannot be re-read in another denomination.",
                                           count=f"{count:,}", held=held),
            "code": gettext("Fixed: the estate has postings, and its published ledger anchors and M-PESA "
                            "account numbers quote this code."),
            "timezone": gettext("Fixed: the ledger already has %(count)s postings whose days and months (bills, "
                                "closed and locked periods, statements) were counted in this timezone.",
                                count=f"{count:,}")}


def form_values(session: Session, estate: Estate | None) -> dict[str, str]:
    """The values the form starts with: the estate's own (or a new estate's defaults)."""
    if estate is None:
        values = dict(NEW_ESTATE_DEFAULTS, code="", name="", features="1")
        values.update({f"feature_{name}": "1" if FEATURE_DEFAULTS[name] else "" for name in LIVE_FEATURES})
        values.update({f"setting_{spec.key}": "" for spec in estate_specs()})
        return values
    values = {name: str(getattr(estate, name)) for name in PROFILE_FIELDS}
    values["minimum_activation_amount"] = _amount_text(estate.minimum_activation_amount)
    values["features"] = "1"
    values.update({f"feature_{name}": "1" if estate.feature_enabled(name) else "" for name in LIVE_FEATURES})
    own = own_settings(session, estate.id)
    values.update({f"setting_{spec.key}": spec.show(own.get(spec.key)) for spec in estate_specs()})
    return values


@dataclass(frozen=True)
class SettingRow:
    """One setting as the settings page shows it."""

    spec: SettingSpec
    own: Any  # the estate's own value, None when it has none
    inherited: Any  # what applies without it: the global value, else the default
    inherited_from: str  # "global setting" or "default"

    @property
    def effective(self) -> Any:
        return self.own if self.own is not None else self.inherited


def setting_rows(session: Session, estate: Estate | None) -> list[SettingRow]:
    """Every estate setting with the estate's own value and what applies without it."""
    own = own_settings(session, estate.id) if estate is not None and estate.id else {}
    rows = []
    for spec in estate_specs():
        global_value = get_setting(session, spec.key, None)
        inherited, source = (global_value, "global setting") if global_value is not None else (spec.fallback(), "default")
        rows.append(SettingRow(spec, own.get(spec.key), inherited, source))
    return rows


# --- writes --------------------------------------------------------------------------------

def create_estate(session: Session, values: Mapping[str, Any], *, user_id: int | None = None) -> EstateSaved:
    """Create an estate from form values, with its features and own settings; commits once.

    Audit rows name the request's actor (`app.audit.current_actor`), which is `user_id` in a view.
    """
    profile, errors = _read_profile(session, values, None)
    features = _read_features(values)
    settings = _read_settings(values, profile.get("currency"), profile.get("wallet_denomination"), errors)
    _raise_for(errors)
    estate = Estate(**profile, currency_minor_units=minor_units(profile["currency"]),
                    features={name: features.get(name, FEATURE_DEFAULTS[name]) for name in FEATURE_DEFAULTS})
    session.add(estate)
    session.flush()
    audit.record(session, "estate.create", estate, estate_id=estate.id,
                 new={**profile, "currency_minor_units": estate.currency_minor_units, "features": estate.features})
    for key, value in settings.items():
        if value is not None:
            put_setting(session, key, value, estate.id)
    session.commit()
    return EstateSaved(estate, True, {name: (None, value) for name, value in profile.items()})


def update_estate(session: Session, estate: Estate, values: Mapping[str, Any], *,
                  user_id: int | None = None) -> EstateSaved:
    """Change an estate's profile, features and own settings from form values; commits once.

    Fields absent from `values` keep their value.
    """
    profile, errors = _read_profile(session, values, estate)
    currency = profile.get("currency", estate.currency)
    denomination = profile.get("wallet_denomination", estate.wallet_denomination)
    settings = _read_settings(values, currency, denomination, errors)
    locked = locked_fields(session, estate)
    moved = {name: locked[name] for name in LOCKED_BY_POSTINGS
             if name in locked and name in profile and profile[name] != getattr(estate, name)}
    if moved and not errors:
        raise EstateMoneyLocked(moved)
    errors.update(moved)
    _raise_for(errors)
    old_currency, old_denomination = estate.currency, estate.wallet_denomination
    old, new = audit.changes(estate, profile)
    if "currency" in new:
        estate.currency_minor_units = minor_units(estate.currency)
        old["currency_minor_units"], new["currency_minor_units"] = minor_units(old_currency), estate.currency_minor_units
    if "currency" in new or "wallet_denomination" in new:
        _recommodity_accounts(session, estate, old_currency, old_denomination)
    if new:
        audit.record(session, "estate.update", estate, old=old, new=new, estate_id=estate.id)
    changes = {name: (old[name], new[name]) for name in new}
    for name, wanted in _read_features(values).items():
        before = estate.feature_enabled(name)
        if switch_feature(session, estate, name, wanted):
            changes[f"feature_{name}"] = (before, wanted)
    own = own_settings(session, estate.id)
    for key, value in settings.items():
        if value is None:
            if clear_setting(session, key, estate.id):
                changes[f"setting_{key}"] = (own.get(key), None)
        elif key not in own and spec_for(key).type == "bool" and value == spec_for(key).default:
            continue  # an unticked box for a setting never set here: nothing changed
        elif own.get(key) != value:
            put_setting(session, key, value, estate.id)
            changes[f"setting_{key}"] = (own.get(key), value)
    session.commit()
    return EstateSaved(estate, False, changes)


# --- reading the form ------------------------------------------------------------------------

def _raise_for(errors: dict[str, str]) -> None:
    if not errors:
        return
    if set(errors) == {"code"} and errors["code"].startswith("another estate"):
        raise EstateCodeTaken(errors)
    raise InvalidEstateField(errors)


def _text(values: Mapping[str, Any], name: str) -> str | None:
    value = values.get(name)
    return None if value is None else str(value).strip()


def _read_profile(session: Session, values: Mapping[str, Any], estate: Estate | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The profile fields present in `values`, checked; every field is required for a new estate."""
    profile: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name in PROFILE_FIELDS:
        typed = _text(values, name)
        if typed is None and estate is not None:
            continue  # an edit that does not send a field keeps it
        typed = typed or ""
        if name == "minimum_activation_amount" and "currency" in errors:
            continue  # an amount cannot be read without its currency; the currency's message says why
        try:
            profile[name] = _READERS[name](session, typed, estate, profile)
        except SettingValueError as error:
            errors[name] = str(error)
    return profile, errors


def _read_code(session: Session, typed: str, estate: Estate | None, profile: dict) -> str:
    code = typed.upper()
    if not code:
        raise SettingValueError(gettext("enter a short code, like SUNBIRD or MAS-01"))
    if not CODE.fullmatch(code):
        raise SettingValueError(gettext("a code is 1 to 16 letters A-Z, digits or hyphens (not at either end)"))
    taken = session.scalar(select(Estate.id).where(func.upper(Estate.code) == code))
    if taken is not None and (estate is None or taken != estate.id):
        raise SettingValueError(f"another estate already has the code {code}")
    return code


def _read_name(session: Session, typed: str, estate: Estate | None, profile: dict) -> str:
    if not typed:
        raise SettingValueError(gettext("enter the estate's name"))
    if len(typed) > MAX_NAME:
        raise SettingValueError(f"at most {MAX_NAME} characters")
    if any(ord(ch) < 32 for ch in typed):
        raise SettingValueError(gettext("the name cannot contain control characters"))
    return typed


def _read_country(session: Session, typed: str, estate: Estate | None, profile: dict) -> str:
    code = typed.upper()
    if code not in dict(choices.countries()):
        raise SettingValueError(gettext("choose a country from the list"))
    return code


def _read_currency(session: Session, typed: str, estate: Estate | None, profile: dict) -> str:
    code = typed.upper()
    if estate is not None and code == estate.currency:
        return code  # kept as it is, even if CLDR has retired it since
    if code not in dict(choices.currencies()):
        raise SettingValueError(gettext("choose a currency from the list"))
    return code


def _read_timezone(session: Session, typed: str, estate: Estate | None, profile: dict) -> str:
    if typed not in set(choices.timezones()):
        raise SettingValueError(gettext("choose a timezone from the list, like Africa/Johannesburg"))
    return typed


def _read_month(session: Session, typed: str, estate: Estate | None, profile: dict) -> int:
    if not re.fullmatch(r"[0-9]{1,2}", typed, re.ASCII) or not 1 <= int(typed) <= 12:
        raise SettingValueError(gettext("choose the month the fiscal year starts in (1 to 12)"))
    return int(typed)


def _read_denomination(session: Session, typed: str, estate: Estate | None, profile: dict) -> str:
    if typed not in WALLET_DENOMINATIONS:
        raise SettingValueError(gettext("choose money or units"))
    return typed


def _read_minimum(session: Session, typed: str, estate: Estate | None, profile: dict) -> Decimal:
    currency = profile.get("currency") or (estate.currency if estate is not None else None)
    if not currency:
        raise SettingValueError(gettext("choose the currency first"))
    try:
        return parse_amount(typed or "0", currency)
    except MoneyError as error:
        raise SettingValueError(str(error)) from None


_READERS = {"code": _read_code, "name": _read_name, "country": _read_country, "currency": _read_currency,
            "timezone": _read_timezone, "fiscal_year_start_month": _read_month,
            "wallet_denomination": _read_denomination, "minimum_activation_amount": _read_minimum}


def _read_features(values: Mapping[str, Any]) -> dict[str, bool]:
    """The live feature flags, as checkboxes send them (none when the form did not show them)."""
    if "features" not in values:
        return {}
    return {name: str(values.get(f"feature_{name}") or "").strip() in ("1", "on", "true") for name in LIVE_FEATURES}


def _read_settings(values: Mapping[str, Any], currency: str | None, denomination: str | None,
                   errors: dict[str, str]) -> dict[str, Any]:
    """The catalogue settings present in `values`, parsed (None: not set for this estate)."""
    found: dict[str, Any] = {}
    for spec in estate_specs():
        name = f"setting_{spec.key}"
        if name not in values:
            continue
        if spec.amount_of and not currency:
            continue  # the currency is refused already; amounts cannot be read without it
        try:
            found[spec.key] = spec.parse(values.get(name), currency=currency or "USD",
                                         denomination=denomination or "currency")
        except SettingValueError as error:
            errors[name] = str(error)
    return found


def _recommodity_accounts(session: Session, estate: Estate, old_currency: str, old_denomination: str) -> None:
    """Accounts opened before a currency or denomination change (none posted to) follow it."""
    for account in session.scalars(select(Account).where(Account.estate_id == estate.id)):
        if account.kind == "pocket" and account.utility:
            account.commodity = pocket_commodity(estate, account.utility)
        elif account.commodity == old_currency:
            account.commodity = estate.currency


def _amount_text(value: Decimal | None) -> str:
    if value is None:
        return "0"
    text = format(Decimal(value), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
