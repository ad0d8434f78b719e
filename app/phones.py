"""Phone numbers: one normaliser to E.164 for every place a number is stored or compared.

Numbers arrive written every way people write them ("+266 5775 5403", "0027 82 123 4567",
"082-123-4567", "26657755403" as M-PESA prints it). `to_e164()` reads one against the
numbering plan of the country it was written in (an estate's ISO 3166 country) and returns
the whole international number, so two numbers are the same only when every digit is.

The `phonenumbers` package is not a dependency: the plans below cover the estates' countries
(ZA, LS, BJ), the M-PESA markets and the neighbours whose currencies we hold; a number
already in international form ("+…", "00…") is accepted for any country.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class InvalidPhone(ValueError):
    """The text is not a phone number of the given country (or in international form)."""


@dataclass(frozen=True)
class NumberingPlan:
    calling_code: str
    lengths: frozenset[int]  # national significant number lengths
    trunk_prefix: str = ""  # dialled before a national number inside the country
    legacy_prefix: str = ""  # prepended to a national number of legacy_length digits
    legacy_length: int = 0

    def significant(self, national: str) -> str | None:
        """The national significant number for `national`, or None when it cannot be one."""
        if self.legacy_length and len(national) == self.legacy_length:
            national = self.legacy_prefix + national
        if len(national) not in self.lengths or national.startswith("0") and not self.legacy_prefix:
            return None
        if self.legacy_prefix and not national.startswith(self.legacy_prefix):
            return None
        return national


PLANS: dict[str, NumberingPlan] = {
    "ZA": NumberingPlan("27", frozenset({9}), trunk_prefix="0"),
    "LS": NumberingPlan("266", frozenset({8})),
    # Benin moved to 10-digit numbers on 30 Nov 2024 by prefixing "01" to every number;
    # an old 8-digit number is the same subscriber, so it is read as the new one.
    "BJ": NumberingPlan("229", frozenset({10}), legacy_prefix="01", legacy_length=8),
    "KE": NumberingPlan("254", frozenset({9}), trunk_prefix="0"),
    "TZ": NumberingPlan("255", frozenset({9}), trunk_prefix="0"),
    # Neighbours whose currencies app/money.py knows.
    "NA": NumberingPlan("264", frozenset({8, 9}), trunk_prefix="0"),
    "BW": NumberingPlan("267", frozenset({7, 8})),
    "SZ": NumberingPlan("268", frozenset({8})),
    "SN": NumberingPlan("221", frozenset({9})),
}
_PLAN_BY_CODE = {plan.calling_code: plan for plan in PLANS.values()}
_SEPARATORS = re.compile(r"[\s\-./()\u00a0]")
E164_MAX_DIGITS = 15
E164_MIN_DIGITS = 8


def to_e164(raw: str | None, country_code: str | None) -> str:
    """Return `raw` as '+<digits>', read in `country_code`'s plan; raise InvalidPhone."""
    text = _SEPARATORS.sub("", raw or "")
    if not text:
        raise InvalidPhone("no phone number")
    international = text.startswith("+") or text.startswith("00")
    digits = text[1:] if text.startswith("+") else text[2:] if text.startswith("00") else text
    if not digits.isascii() or not digits.isdigit():
        raise InvalidPhone(f"{raw!r} is not a phone number")
    if international:
        return _international(digits, raw)
    plan = PLANS.get((country_code or "").upper())
    if plan is not None:
        # M-PESA writes the payer in international form without the "+": "26657755403".
        if digits.startswith(plan.calling_code):
            significant = plan.significant(digits[len(plan.calling_code):])
            if significant is not None:
                return f"+{plan.calling_code}{significant}"
        national = digits[len(plan.trunk_prefix):] if plan.trunk_prefix and \
            digits.startswith(plan.trunk_prefix) else digits
        significant = plan.significant(national)
        if significant is not None:
            return f"+{plan.calling_code}{significant}"
    # Another known country's number written without the "+" (a neighbour's phone).
    known = _known_international(digits)
    if known is not None:
        return known
    if plan is None and country_code:
        raise InvalidPhone(f"{raw!r} is not in international form and there is no numbering plan "
                           f"for {country_code}")
    raise InvalidPhone(f"{raw!r} is not a phone number of {country_code or 'a known country'}")


def try_e164(raw: str | None, country_code: str | None) -> str | None:
    """Return `raw` in E.164, or None when it cannot be read as a number."""
    try:
        return to_e164(raw, country_code)
    except InvalidPhone:
        return None


def is_international(raw: str | None) -> bool:
    """Whether `raw` names its country itself, so it reads the same in every estate."""
    return try_e164(raw, None) is not None


def _international(digits: str, raw: str | None) -> str:
    known = _known_international(digits)
    if known is not None:
        return known
    if _plan_for(digits) is not None:  # a known country code with the wrong length
        raise InvalidPhone(f"{raw!r} has the wrong number of digits for its country")
    if not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS or digits.startswith("0"):
        raise InvalidPhone(f"{raw!r} is not an international phone number")
    return f"+{digits}"


def _known_international(digits: str) -> str | None:
    plan = _plan_for(digits)
    if plan is None:
        return None
    significant = plan.significant(digits[len(plan.calling_code):])
    return f"+{plan.calling_code}{significant}" if significant is not None else None


def _plan_for(digits: str) -> NumberingPlan | None:
    # Country calling codes are prefix-free (ITU-T E.164), so at most one matches.
    for length in (1, 2, 3):
        plan = _PLAN_BY_CODE.get(digits[:length])
        if plan is not None:
            return plan
    return None
