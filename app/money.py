"""Decimal money and quantities: parsing, quantising to minor units, formatting. Never float.

A currency's minor units come from CLDR (Babel's data: XOF 0, ZAR 2, ...); energy and water
units are held to the watt-hour and the litre.
"""
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import get_currency_precision, is_currency

QUANTITY_MINOR_UNITS: dict[str, int] = {"KWH": 3, "KL": 3}
UTILITY_UNITS = {"electricity": "KWH", "water": "KL", "hot_water": "KL", "solar": "KWH"}
SYMBOLS = {"ZAR": "R", "LSL": "M", "NAD": "N$", "BWP": "P", "KES": "KSh", "USD": "$",
           "EUR": "€", "XOF": "CFA", "KWH": "kWh", "KL": "kL"}


class MoneyError(ValueError):
    """An amount that cannot be read as a decimal number."""


# What a person may type as an amount: ASCII digits, then at most one decimal separator (dot
# or comma) and its decimals. No signs, exponents, spaces or thousands separators: "1,234"
# could be 1.234 or 1234, so it is refused rather than guessed.
_TYPED_AMOUNT = re.compile(r"(?P<sign>-)?(?P<whole>[0-9]+)(?:[.,](?P<fraction>[0-9]+))?", re.ASCII)
MAX_TYPED_LENGTH = 24


def minor_units(commodity: str) -> int:
    """Return the number of decimal places kept for a currency or unit."""
    return _minor_units(str(commodity).upper())


@lru_cache(maxsize=512)  # called for every amount quantised: one CLDR look-up per code
def _minor_units(code: str) -> int:
    if code in QUANTITY_MINOR_UNITS:
        return QUANTITY_MINOR_UNITS[code]
    if len(code) != 3 or not is_currency(code):
        raise MoneyError(f"unknown currency or unit {code!r}")
    return get_currency_precision(code)


def quantize(amount: Decimal | int | str, commodity: str) -> Decimal:
    """Round an amount to the commodity's minor units (banker's rounding)."""
    value = to_decimal(amount)
    return value.quantize(Decimal(1).scaleb(-minor_units(commodity)), rounding=ROUND_HALF_EVEN)


def parse_amount(text: str | None, commodity: str, *, allow_negative: bool = False,
                 places: int | None = None) -> Decimal:
    """Read an amount a person typed into a form, exactly; MoneyError says what is wrong.

    `places` overrides the commodity's minor units (a tariff rate may have more decimals).
    """
    places = minor_units(commodity) if places is None else places
    raw = "" if text is None else str(text)
    typed = raw.strip()
    if not typed:
        raise MoneyError("enter an amount")
    example = "100" if places == 0 else "100." + "5" * min(places, 2)
    found = _TYPED_AMOUNT.fullmatch(typed) if len(typed) <= MAX_TYPED_LENGTH else None
    if found is None:
        raise MoneyError(f"{typed!r} is not an amount: use digits with at most one decimal "
                         f"point or comma, like {example} (no spaces, signs, exponents or "
                         "thousands separators)")
    if found["sign"] and not allow_negative:
        raise MoneyError(f"{typed!r}: the amount cannot be negative")
    fraction = found["fraction"]
    if fraction is not None and len(fraction) > places:
        if places == 0:
            raise MoneyError(f"{typed!r}: {commodity.upper()} amounts have no decimals")
        raise MoneyError(f"{typed!r}: {commodity.upper()} amounts have at most {places} decimals "
                         "(thousands separators are not accepted)")
    return Decimal(f"{found['sign'] or ''}{found['whole']}" + (f".{fraction}" if fraction else ""))


def to_decimal(amount: Decimal | int | str) -> Decimal:
    """Read a Decimal from wire input or code; floats and exponents are refused.

    Forms use `parse_amount()`, which is strict; this also reads provider text such as
    "1,234.50" (thousands separators) and "12,50" (a decimal comma).
    """
    if isinstance(amount, float):
        raise MoneyError("floats are not accepted for money; pass a string or Decimal")
    if isinstance(amount, Decimal):
        value = amount
    else:
        text = str(amount).strip().replace(" ", "").replace("\u202f", "")
        if text.count(",") == 1 and "." not in text:
            text = text.replace(",", ".")  # "12,50": a decimal comma, as written in ZA and LS
        else:
            text = text.replace(",", "")  # "1,234.50": thousands separators
        if any(letter in text for letter in "eE"):
            raise MoneyError(f"{amount!r} is not a plain decimal number (exponents are refused)")
        try:
            value = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"{amount!r} is not a number") from None
    if not value.is_finite():
        raise MoneyError(f"{amount!r} is not a finite number")
    return value


def format_amount(amount: Decimal, commodity: str) -> str:
    """Format for display: 'R 1 234.50', 'M -12.00', '42.125 kWh'."""
    places = minor_units(commodity)
    text = f"{quantize(amount, commodity):,.{places}f}".replace(",", "\u202f")
    symbol = SYMBOLS.get(commodity.upper(), commodity.upper())
    if commodity.upper() in {"KWH", "KL"}:
        return f"{text} {symbol}"
    return f"{symbol} {text}"
