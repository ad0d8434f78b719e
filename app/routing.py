"""URL converters: `<int:...>` and `<bigint:...>` match only ids their database columns can hold.

An id the column cannot hold names nothing, so the answer is 404; without the bound
PostgreSQL refuses the query ("integer out of range") and the page fails with a 500, on
every route that takes an id.
"""
from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import ValidationError
from werkzeug.routing.converters import IntegerConverter

INTEGER_MAX = 2**31 - 1  # PostgreSQL `integer`: most primary keys (mapped_column(primary_key=True))
BIGINT_MAX = 2**63 - 1   # PostgreSQL `bigint`: ledger transactions, postings, meter alerts, ...


def whole_number(text: str | None, lowest: int = 0, highest: int = INTEGER_MAX) -> int | None:
    """`text` as a whole number within bounds, else None. ASCII digits only: "²" and "٣" are
    digits to `str.isdigit()` but `int()` refuses the first, so a check with isdigit() alone lets
    a crafted form value through to a 500."""
    text = (text or "").strip()
    if not text or len(text) > len(str(highest)) or not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if lowest <= value <= highest else None


class IntegerIdConverter(IntegerConverter):
    """`<int:...>`: an unsigned integer no larger than an `integer` column holds."""

    default_max = INTEGER_MAX

    def __init__(self, map, fixed_digits: int = 0, min: int | None = None,
                 max: int | None = None, signed: bool = False) -> None:
        super().__init__(map, fixed_digits, min, self.default_max if max is None else max, signed)

    def to_python(self, value: str) -> int:
        try:
            return super().to_python(value)
        except ValidationError:
            # Werkzeug's own refusal would answer 405 when the same path has a rule for
            # another method (GET and POST on /tenant/units/<id>/alerts): there is no such
            # object whatever the method, so say 404.
            raise NotFound() from None


class BigIntegerIdConverter(IntegerIdConverter):
    """`<bigint:...>`: an unsigned integer no larger than a `bigint` column holds."""

    default_max = BIGINT_MAX


def install_converters(app: Flask) -> None:
    """Replace Flask's `int` converter and add `bigint`; call before any route is added."""
    app.url_map.converters["int"] = IntegerIdConverter
    app.url_map.converters["bigint"] = BigIntegerIdConverter
