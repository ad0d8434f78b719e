"""Numbers, money, dates and ages written for the reader's language, from CLDR (Babel).

English keeps the portal's own forms ("M 1 234.50", "02 Dec 2026 14:05"), so nothing an
English reader sees changes; French and Sesotho follow CLDR ("1 234,50 LSL", "2 déc. 2026").
An estate may name the symbol its currency is known by (setting `currency_symbol`: "M" for
the loti, which CLDR only knows as LSL); it replaces CLDR's symbol in every language.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date as cldr_date, format_datetime as cldr_datetime
from babel.numbers import format_currency, format_decimal, get_currency_symbol
from flask import Flask, g, has_request_context
from flask_babel import gettext, ngettext

from app.money import SYMBOLS, MoneyError, format_amount, minor_units, quantize

QUANTITIES = {"KWH": "kWh", "KL": "kL"}
_symbols: ContextVar[dict[str, str] | None] = ContextVar("currency_symbols", default=None)


_I18N = []  # app.i18n, imported on first use (it imports this module): not once per amount


def _language(language: str | None) -> str:
    if not _I18N:
        import app.i18n
        _I18N.append(app.i18n)
    return _I18N[0].known(language) or _I18N[0].current_language()


# --- currency symbols ----------------------------------------------------------------------

def estate_symbols(session, estate_ids) -> dict[str, str]:
    """{currency: symbol} the estates have set (setting `currency_symbol`); one estate per currency wins."""
    from sqlalchemy import select

    from app.i18n import SYMBOL_SETTING
    from app.models import Estate, Setting

    ids = list(estate_ids)
    if not ids:
        return {}
    rows = session.execute(select(Estate.currency, Setting.value).join(Setting, Setting.estate_id == Estate.id)
                           .where(Setting.key == SYMBOL_SETTING, Estate.id.in_(ids)).order_by(Estate.id))
    found: dict[str, str] = {}
    for currency, value in rows:
        if isinstance(value, str) and value.strip():
            found.setdefault(currency.upper(), value.strip())
    return found


@contextmanager
def symbols_of(session, estate_ids):
    """Format money with these estates' own currency symbols inside the block (messages, PDFs)."""
    token = _symbols.set(estate_symbols(session, estate_ids))
    try:
        yield
    finally:
        _symbols.reset(token)


def symbols_in_use() -> dict[str, str]:
    """The symbols for this message (symbols_of) or, in a request, the viewer's estates'."""
    chosen = _symbols.get()
    if chosen is not None:
        return chosen
    if not has_request_context():
        return {}
    cached = g.get("_currency_symbols")
    if cached is None:
        cached = g._currency_symbols = _viewer_symbols()
    return cached


def _viewer_symbols() -> dict[str, str]:
    from flask_login import current_user
    from sqlalchemy import select

    from app.auth.scope import estate_ids_query
    from app.extensions import db
    from app.models import Estate

    if not current_user or not current_user.is_authenticated:
        return {}
    if current_user.is_staff:
        ids = db.session.scalars(select(Estate.id))
    else:
        ids = db.session.scalars(estate_ids_query(current_user, current_user.roles))
    return estate_symbols(db.session, ids)


# --- money and quantities ------------------------------------------------------------------

def money_text(amount: Decimal | int | str, commodity: str, language: str | None = None,
               symbol: str | None = None) -> str:
    """An amount of money or a quantity as the reader writes it: 'M 1 234.50', '1 234,50 LSL'."""
    code = str(commodity).upper()
    language = _language(language)
    value = quantize(amount, code)
    if code in QUANTITIES:
        if language == "en":
            return format_amount(value, code)
        places = minor_units(code)
        pattern = "#,##0" + ("." + "0" * places if places else "")
        return f"{format_decimal(value, format=pattern, locale=language, decimal_quantization=False)} {QUANTITIES[code]}"
    symbol = symbol or symbols_in_use().get(code)
    if language == "en":
        text = format_amount(value, code)
        return text if not symbol else f"{symbol} {text.split(' ', 1)[1]}"
    text = format_currency(value, code, locale=language)
    if symbol:
        text = text.replace(get_currency_symbol(code, locale=language), symbol, 1)
    return text


def rate_text(rate, currency: str, language: str | None = None) -> str:
    """A price per unit keeping every decimal it was set with: 'R 2.855' in English, '2,855 ZAR' in French."""
    code = str(currency).upper()
    language = _language(language)
    value = Decimal(str(rate)).normalize()
    places = max(2, -value.as_tuple().exponent) if value.as_tuple().exponent < 0 else 2
    if language == "en":  # the portal's own form, as it always was
        return f"{SYMBOLS.get(code, code)} {value:.{places}f}"
    text = format_currency(value, code, locale=language, currency_digits=False, decimal_quantization=False)
    symbol = symbols_in_use().get(code)
    return text.replace(get_currency_symbol(code, locale=language), symbol, 1) if symbol else text


_RATE = re.compile(r"(?P<symbol>[^\s\d/]+) (?P<number>[0-9]+(?:\.[0-9]+)?)/(?P<unit>kWh|kL)")


def relocalise_rate(text, language: str | None = None):
    """A rate already written the English way ('R 2.85/kWh', from a posting's memo) for the reader."""
    found = _RATE.fullmatch(text) if isinstance(text, str) else None
    language = _language(language)
    if found is None or language == "en":
        return text
    code = _SYMBOL_CODES.get(found["symbol"]) or (found["symbol"] if re.fullmatch(r"[A-Z]{3}", found["symbol"]) else None)
    if code is None:
        return text
    try:
        return f"{rate_text(Decimal(found['number']), code, language)}/{found['unit']}"
    except (ArithmeticError, ValueError):
        return text


_SYMBOL_CODES = {symbol: code for code, symbol in SYMBOLS.items() if code not in QUANTITIES}
_ENGLISH_AMOUNT = re.compile(r"(?P<symbol>[^\s\d]+) (?P<number>-?[0-9\u202f]+(?:\.[0-9]+)?)")
_ENGLISH_QUANTITY = re.compile(r"(?P<number>-?[0-9\u202f]+(?:\.[0-9]+)?) (?P<unit>kWh|kL)")


def relocalise(text, language: str | None = None):
    """An amount already written the English way ('M 12.50', '3.250 kWh') rewritten for the reader.

    Notification contexts arrive with amounts formatted by `app.money.format_amount`; anything
    that is not such an amount is returned as it is.
    """
    if not isinstance(text, str):
        return text
    language = _language(language)
    quantity = _ENGLISH_QUANTITY.fullmatch(text)
    found = _ENGLISH_AMOUNT.fullmatch(text)
    try:
        if quantity:
            return money_text(Decimal(quantity["number"].replace("\u202f", "")),
                              "KWH" if quantity["unit"] == "kWh" else "KL", language)
        if found:
            symbol = found["symbol"]
            code = _SYMBOL_CODES.get(symbol) or (symbol if re.fullmatch(r"[A-Z]{3}", symbol) else None)
            if code is None:
                own = {v: k for k, v in symbols_in_use().items()}
                code = own.get(symbol)
            if code is None:
                return text
            return money_text(Decimal(found["number"].replace("\u202f", "")), code, language,
                              symbol=symbol if symbol != SYMBOLS.get(code) and symbol != code else None)
    except (MoneyError, ArithmeticError):
        return text
    return text


def number_text(value, places: int | None = None, language: str | None = None) -> str:
    """A plain number in the reader's language ('1,234.5' in English, '1 234,5' in French).

    With `places` the number has exactly that many decimals; without, it keeps its own (up to 3).
    """
    if value is None:
        return "—"
    number, language = Decimal(str(value)), _language(language)
    if places is not None and language == "en":  # CLDR's English pattern is Python's; long tables call this per cell
        return f"{number:,.{places}f}"
    pattern = "#,##0" + ("." + "0" * places if places else "" if places == 0 else ".###")
    return format_decimal(number, format=pattern, locale=language, decimal_quantization=True)


# --- dates and times -----------------------------------------------------------------------

_STRFTIME_TO_CLDR = {"d": "dd", "-d": "d", "b": "MMM", "B": "MMMM", "Y": "y", "y": "yy", "m": "MM",
                     "-m": "M", "H": "HH", "-H": "H", "M": "mm", "S": "ss", "a": "EEE", "A": "EEEE",
                     "e": "d"}


def cldr_pattern(fmt: str) -> str:
    """A strftime format as a CLDR date pattern ('%d %b %Y %H:%M' -> "dd MMM y HH:mm")."""
    out, literal = [], []

    def flush():
        if literal:
            text = "".join(literal).replace("'", "''")
            out.append(f"'{text}'" if re.search(r"[A-Za-z]", text) else text)
            literal.clear()

    i = 0
    while i < len(fmt):
        if fmt[i] == "%" and i + 1 < len(fmt):
            key = fmt[i + 1:i + 3] if fmt[i + 1] == "-" else fmt[i + 1]
            if key in _STRFTIME_TO_CLDR:
                flush()
                out.append(_STRFTIME_TO_CLDR[key])
                i += 1 + len(key)
                continue
        literal.append(fmt[i])
        i += 1
    flush()
    return "".join(out)


def local_time(moment: datetime | None, timezone: str | None = None, fmt: str = "%d %b %Y %H:%M") -> str:
    """`app.presenters.local_time` in the reader's language (English unchanged)."""
    from app import presenters

    if _language(None) == "en" or moment is None:
        text = presenters.local_time(moment, timezone, fmt)
        return gettext("never") if moment is None else text
    zone = presenters.display_timezone(timezone, moment)
    local = moment.astimezone(ZoneInfo(zone))
    text = cldr_datetime(local, cldr_pattern(fmt), locale=_language(None))
    zones = presenters.viewer_timezones()
    if "%H" in fmt and not (zones and presenters._one_clock([*zones, zone], moment)):
        text += f" {local.tzname()}"
    return text


def local_date(day: date | datetime | None, fmt: str = "%-d %B %Y", language: str | None = None) -> str:
    """A calendar date in the reader's language ('1 March 2026', '1 mars 2026')."""
    if day is None:
        return ""
    language = _language(language)
    if language == "en":
        return day.strftime(fmt)
    if isinstance(day, datetime):  # an aware local time keeps its zone
        return cldr_datetime(day, cldr_pattern(fmt), locale=language)
    return cldr_date(day, cldr_pattern(fmt), locale=language)


def age(moment: datetime | None) -> str:
    """'4 min ago' in the reader's language."""
    from app.models import utcnow

    if moment is None:
        return gettext("never")
    seconds = max(0, int((utcnow() - moment).total_seconds()))
    if seconds < 90:
        return gettext("just now")
    if seconds < 5400:
        return gettext("%(num)d min ago", num=seconds // 60)
    if seconds < 2 * 86400:
        return gettext("%(num)d h ago", num=seconds // 3600)
    return ngettext("%(num)d day ago", "%(num)d days ago", seconds // 86400)


def translate_text(text):
    """A text held in a variable through the catalogues, never %-formatted (msgids write % as %%)."""
    if not isinstance(text, str) or not text:
        return text
    return gettext(text.replace("%", "%%")).replace("%%", "%")


def translated_label(value, kind: str) -> str:
    """`app.labels.label` in the reader's language (labels are English msgids)."""
    from app.labels import label

    text = label(kind, value)
    return gettext(text) if text else text


def install(app: Flask) -> None:
    """Register the language-aware filters over the English ones, and the language globals."""
    from app.i18n import LANGUAGES, current_language

    # `| money(currency, language)`: a long table passes current_language() read once, not once per cell.
    app.add_template_filter(lambda amount, commodity, language=None: "—" if amount is None else
                            money_text(Decimal(amount), commodity, language), "money")
    app.add_template_filter(local_time, "local_time")
    app.add_template_filter(local_date, "local_date")
    app.add_template_filter(age, "age")
    app.add_template_filter(translated_label, "label")
    app.add_template_filter(relocalise, "amount_text")
    app.add_template_filter(number_text, "number")
    # A text held in a variable (a settings label, a group name) through the catalogues; its msgid
    # writes a percent sign as %% (so "90 %" stays a plain percent in every language).
    app.add_template_filter(translate_text, "translate")
    # `| stored`: a sentence a job stored in English (a push result, a payment's reason), in the reader's language.
    from app.i18n.stored import render_stored
    app.add_template_filter(render_stored, "stored")
    app.add_template_global(LANGUAGES, "languages")
    app.add_template_global(current_language, "current_language")
