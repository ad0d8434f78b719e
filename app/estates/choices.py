"""What an estate may be set to: countries and currencies from CLDR (Babel), timezones from zoneinfo.

Names are in English. A country is any CLDR territory that has timezones (regions such as
"Africa" or "European Union" have none); a currency is one that is legal tender somewhere
today; a timezone is any zone the system's tz database knows, the country's own zones first.
"""
from functools import lru_cache
from zoneinfo import available_timezones

from babel import Locale
from babel.core import get_global
from babel.numbers import get_currency_name, get_territory_currencies

_ENGLISH = Locale("en")
_NOT_PLACES = {"Factory", "localtime", "posixrules", "Etc/Unknown"}


@lru_cache(maxsize=1)
def countries() -> tuple[tuple[str, str], ...]:
    """(ISO 3166 alpha-2 code, English name), sorted by name."""
    zones = get_global("territory_zones")
    found = [(code, name) for code, name in _ENGLISH.territories.items()
             if len(code) == 2 and code.isalpha() and code in zones]
    return tuple(sorted(found, key=lambda item: item[1]))


@lru_cache(maxsize=1)
def currencies() -> tuple[tuple[str, str], ...]:
    """(ISO 4217 code, English name) of every currency in use today, sorted by code."""
    codes: set[str] = set()
    for territory in get_global("territory_currencies"):
        codes.update(get_territory_currencies(territory, tender=True))
    return tuple((code, get_currency_name(code, locale=_ENGLISH)) for code in sorted(codes))


@lru_cache(maxsize=1)
def timezones() -> tuple[str, ...]:
    """Every timezone name the tz database has, sorted."""
    return tuple(sorted(available_timezones() - _NOT_PLACES))


def country_name(code: str | None) -> str:
    """A country's English name ('LS' -> 'Lesotho'), or the code itself when CLDR has none."""
    return _ENGLISH.territories.get(code or "", code or "")


def currency_name(code: str | None) -> str:
    """A currency's English name ('XOF' -> 'West African CFA Franc')."""
    return dict(currencies()).get(code or "", code or "")


def country_currencies(country: str | None) -> tuple[str, ...]:
    """The currencies legal in a country today, its main one first ('LS' -> ('ZAR', 'LSL'))."""
    if not country:
        return ()
    return tuple(get_territory_currencies(country, tender=True))


def country_timezones(country: str | None) -> tuple[str, ...]:
    """The country's own timezones ('LS' -> ('Africa/Maseru',)), as the tz database knows them."""
    known = set(timezones())
    return tuple(zone for zone in get_global("territory_zones").get(country or "", ()) if zone in known)


def timezones_for(country: str | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Timezones grouped for a select: the country's own first, then all the others."""
    own = country_timezones(country)
    rest = tuple(zone for zone in timezones() if zone not in own)
    return ((f"{country_name(country)}", own), ("All timezones", rest)) if own else (("All timezones", rest),)
