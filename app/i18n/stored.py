"""Texts written in English by a background job (or for another reader) and stored, shown in the
reader's language when a page displays them (issue 23).

A job's result (`JobRun.result`), a dead letter's replay outcome and a SparkMeter push result
are plain English text columns read by logs, exports, the API and tests; they stay English.
The sentences they are made of are templates registered here with `stored_message()`: the
writer formats them with `fill()` (plain %-formatting, the English it wrote before), and a page
shows the stored text through `render_stored()`, which matches it against the templates,
recovers the parameters and returns `gettext(template, **parameters)` in the reader's
language. A parameter that is itself a stored sentence, or an amount written the English way,
is rendered in turn; a text no template matches (an older row, a vendor's own words) shows as
it was stored.
"""
from __future__ import annotations

import re
from functools import lru_cache

from flask_babel import gettext

_TEMPLATES: dict[str, re.Pattern] = {}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def stored_message(msgid: str) -> str:
    """Register (and mark for the catalogues) a template of a stored English sentence."""
    if msgid not in _TEMPLATES:
        parts, names, last = [], set(), 0
        for found in _PLACEHOLDER.finditer(msgid):
            parts.append(re.escape(msgid[last:found.start()].replace("%%", "%")))
            name = found.group(1)
            parts.append(f"(?P={name})" if name in names else f"(?P<{name}>.*?)")
            names.add(name)
            last = found.end()
        parts.append(re.escape(msgid[last:].replace("%%", "%")))
        _TEMPLATES[msgid] = re.compile("".join(parts), re.DOTALL)
        _ordered.cache_clear()
    return msgid


N_ = stored_message


def fill(msgid: str, **params) -> str:
    """The English sentence a template makes with these parameters (what is stored)."""
    return msgid % params if params else msgid.replace("%%", "%")


# The modules whose `N_("...")` templates are stored texts. A template written inside a function
# registers only when that code runs, so before the first match their sources are read for
# every `N_()` of a literal (as `make messages` reads them): a page renders a text stored by
# another process (the worker) without running its writer first.
WRITERS = ("app.payments.corrections", "app.payments.credit", "app.payments.mpesa_sms", "app.payments.vendor_credit", "app.payments.bulk_topup",
           "app.sources.sparkmeter", "app.sources.koios_payments", "app.sources.thundercloud", "app.sources.uisp",
           "app.sources.backfill", "app.metering.ingest", "app.job_schedule")
_loaded = False


def _templates_in(module_name: str) -> list[str]:
    import ast
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    tree = ast.parse(open(spec.origin, encoding="utf-8").read())
    return [node.args[0].value for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "N_"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)]


def _load_writers() -> None:
    global _loaded
    if not _loaded:
        for name in WRITERS:
            for msgid in _templates_in(name):
                stored_message(msgid)
        _loaded = True


@lru_cache(maxsize=1)
def _ordered() -> tuple[tuple[str, re.Pattern], ...]:
    # The most literal text first: "%(n)s rows" must not win over "%(n)s rows, %(m)s new".
    return tuple(sorted(_TEMPLATES.items(), key=lambda item: -len(_PLACEHOLDER.sub("", item[0]))))


def match(text: str) -> tuple[str, dict[str, str]] | None:
    """The template and parameters a stored text was made of, or None."""
    _load_writers()
    for msgid, pattern in _ordered():
        found = pattern.fullmatch(text)
        if found:
            return msgid, found.groupdict()
    return None


def render_stored(text, language: str | None = None, _depth: int = 0):
    """A stored English sentence in the reader's language; any other text as it is."""
    if not isinstance(text, str) or not text or _depth > 3:
        return text
    from app.i18n import current_language

    if (language or current_language()) == "en":
        return text  # stored in English: shown exactly as written
    found = match(text)
    if found is None:
        return text
    from app.i18n.formatting import relocalise

    msgid, params = found
    params = {name: relocalise(render_stored(value, language, _depth + 1), language)
              for name, value in params.items()}
    if language:
        from flask_babel import force_locale

        with force_locale(language):
            return gettext(msgid, **params)
    return gettext(msgid, **params)


def reader_amount(amount, currency: str) -> str:
    """An amount for a sentence built in a request: `format_amount()` in English (the text tests
    and logs know), the reader's CLDR form otherwise."""
    from app.i18n import current_language
    from app.i18n.formatting import money_text
    from app.money import format_amount

    return format_amount(amount, currency) if current_language() == "en" else money_text(amount, currency)
