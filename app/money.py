"""Decimal money and quantities: parsing, quantising to minor units, formatting. Never float."""
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

# Minor units per commodity. Currencies follow ISO 4217; energy and water units are
# held to the watt-hour and the litre.
MINOR_UNITS: dict[str, int] = {
    "ZAR": 2, "LSL": 2, "NAD": 2, "BWP": 2, "SZL": 2, "KES": 2, "USD": 2, "EUR": 2,
    "XOF": 0, "UGX": 0, "RWF": 0,
    "KWH": 3, "KL": 3,
}
UTILITY_UNITS = {"electricity": "KWH", "water": "KL", "hot_water": "KL", "solar": "KWH"}
SYMBOLS = {"ZAR": "R", "LSL": "M", "NAD": "N$", "BWP": "P", "KES": "KSh", "USD": "$",
           "EUR": "€", "XOF": "CFA", "KWH": "kWh", "KL": "kL"}


class MoneyError(ValueError):
    """An amount that cannot be read as a decimal number."""


def minor_units(commodity: str) -> int:
    """Return the number of decimal places kept for a currency or unit."""
    try:
        return MINOR_UNITS[commodity.upper()]
    except KeyError:
        raise MoneyError(f"unknown currency or unit {commodity!r}") from None


def quantize(amount: Decimal | int | str, commodity: str) -> Decimal:
    """Round an amount to the commodity's minor units (banker's rounding)."""
    value = to_decimal(amount)
    return value.quantize(Decimal(1).scaleb(-minor_units(commodity)), rounding=ROUND_HALF_EVEN)


def to_decimal(amount: Decimal | int | str) -> Decimal:
    """Read a Decimal from user or wire input; floats are refused."""
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
