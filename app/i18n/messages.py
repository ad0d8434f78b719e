"""Sentences stored in rows as their parts, written in the reader's language when shown (issue 23).

A service that keeps a sentence for later (a reconciliation check's summary, a failing item's
detail) stores `message(N_("%(count)s of %(checked)s do not match"), count=3, checked=40)`: the
English msgid and its values, as JSON. `english(parts)` is the sentence as it always was (kept in
the row's text column, for old readers and the emails); `render(parts)` writes it in the current
language (a page's, or a `force_locale` block's) through the catalogues.

A value may be plain (a name, a count, a reference: shown as it is) or one of
- `money(amount, commodity)`: an amount, written as the reader writes money;
- `number(value)`: a plain decimal number (a quantity, a percentage);
- `code(kind, value)`: a stored code, shown through `app.labels.label` in the reader's language;
- another `message(...)`: a sentence inside a sentence.
Plurals: `message(singular, plural=..., num=count, ...)` goes through ngettext.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

Parts = dict[str, Any]


def message(msgid: str, *, plural: str | None = None, **params) -> Parts:
    """A sentence's parts: its English msgid (marked with N_ by the caller) and its values."""
    parts: Parts = {"m": str(msgid), "p": params}
    if plural is not None:
        parts["pl"] = str(plural)
    return parts


def money(amount, commodity: str) -> dict:
    return {"money": str(amount), "c": str(commodity)}


def number(value) -> dict:
    return {"num": format(Decimal(str(value)).normalize(), "f")}


def code(kind: str, value, *, raw_english: bool = False) -> dict:
    """A stored code; `raw_english`: the English sentence keeps the bare code (as it always read)."""
    parts = {"label": kind, "code": None if value is None else str(value)}
    if raw_english:
        parts["raw"] = True
    return parts


def is_message(value) -> bool:
    return isinstance(value, dict) and isinstance(value.get("m"), str) and isinstance(value.get("p", {}), dict)


def _value(value, language: str | None, english_only: bool):
    from app.labels import label

    if is_message(value):
        return english(value) if english_only else render(value, language)
    if not isinstance(value, dict):
        return value
    if "money" in value:
        from app.money import format_amount

        if english_only:
            return format_amount(Decimal(value["money"]), value["c"])
        from app.i18n.formatting import money_text

        return money_text(Decimal(value["money"]), value["c"], language)
    if "num" in value:
        if english_only:
            return value["num"]
        from app.i18n.formatting import number_text

        return number_text(value["num"], language=language)
    if "label" in value:
        if english_only and value.get("raw"):
            return value.get("code") or ""
        text = label(value["label"], value.get("code"))
        if english_only or not text:
            return text
        from flask_babel import gettext

        return gettext(text)
    return value


def _format(text: str, values: dict) -> str:
    try:
        return text % values if values or "%" in text else text
    except (KeyError, TypeError, ValueError):
        return text  # a catalogue entry that lost a placeholder never breaks a page


def english(parts: Parts) -> str:
    """The sentence in English, exactly as the service wrote it before it kept the parts."""
    params = {key: _value(value, "en", True) for key, value in (parts.get("p") or {}).items()}
    text = parts["m"]
    if "pl" in parts and params.get("num", 1) != 1:
        text = parts["pl"]
    return _format(text, params)


def render(parts: Parts, language: str | None = None) -> str:
    """The sentence in the current language (or `language`'s number and money formats)."""
    from flask_babel import get_translations

    translations = get_translations()
    params = {key: _value(value, language, False) for key, value in (parts.get("p") or {}).items()}
    if "pl" in parts:
        text = translations.ngettext(parts["m"], parts["pl"], int((parts.get("p") or {}).get("num", 1)))
    else:
        text = translations.gettext(parts["m"])
    return _format(text, params)


def render_all(parts_list, separator: str = "") -> str:
    """Several stored sentences (a summary and its addition) shown one after the other."""
    return separator.join(render(p) for p in parts_list or [] if is_message(p))


def english_all(parts_list, separator: str = "") -> str:
    return separator.join(english(p) for p in parts_list or [] if is_message(p))
