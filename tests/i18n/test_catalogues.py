"""Languages (X8): the catalogues, CLDR formatting, and every notification in each language."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.pofile import read_po

from app.i18n import LANGUAGES, known
from app.i18n.formatting import cldr_pattern, local_date, money_text, relocalise
from app.money import format_amount

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
TRANSLATED = [code for code in LANGUAGES if code != "en"]


def catalogue(language: str):
    with (ROOT / "translations" / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=language)


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_with_the_same_placeholders(language):
    template_ids = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po((ROOT / "translations/messages.pot").open("rb")) if m.id}
    entries = [m for m in catalogue(language) if m.id]
    assert {m.id if isinstance(m.id, str) else m.id[0] for m in entries} >= template_ids
    for message in entries:
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        assert all(strings), f"{language}: {ids[0]!r} has no translation"
        wanted = set(PLACEHOLDER.findall(" ".join(ids)))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) == wanted, (language, ids[0], text)
            assert text.count("%%") == ids[0].count("%%"), (language, ids[0], text)


def test_french_money_dates_and_quantities_follow_cldr():
    spaced = lambda text: re.sub(r"[\u00a0\u202f]", " ", text)  # noqa: E731
    assert spaced(money_text(Decimal("1234.5"), "LSL", "fr")) == "1 234,50 LSL"
    assert spaced(money_text(Decimal("1234.5"), "LSL", "fr", symbol="M")) == "1 234,50 M"
    assert spaced(money_text(Decimal("1234"), "XOF", "fr")) == "1 234 F CFA"
    assert spaced(money_text(Decimal("-12.5"), "ZAR", "fr")) == "-12,50 ZAR"
    assert spaced(money_text(Decimal("3.25"), "KWH", "fr")) == "3,250 kWh"
    assert local_date(date(2026, 3, 1), "%-d %B %Y", "fr") == "1 mars 2026"
    assert cldr_pattern("%d %b %Y %H:%M") == "dd MMM y HH:mm"


def test_english_keeps_the_portal_forms():
    assert money_text(Decimal("1234.5"), "LSL", "en") == format_amount(Decimal("1234.5"), "LSL") == "M 1\u202f234.50"
    assert money_text(Decimal("1234.5"), "XOF", "en", symbol="F") == "F 1\u202f234"
    assert local_date(date(2026, 3, 1), "%-d %B %Y", "en") == "1 March 2026"


def test_amounts_written_in_english_are_rewritten_for_the_reader():
    assert relocalise("M 1\u202f234.50", "fr").replace("\u202f", " ").replace("\xa0", " ") == "1 234,50 LSL"
    assert relocalise("3.250 kWh", "st") == "3.250 kWh"  # Sesotho writes decimals with a point
    assert relocalise("R 10.00", "en") == "R 10.00"
    assert relocalise("unit A03", "fr") == "unit A03"


@pytest.mark.parametrize("code,expected", [("fr", "fr"), ("FR", "fr"), ("fr-BE", "fr"), ("st_LS", "st"),
                                           ("de", None), ("", None), (None, None)])
def test_language_codes_are_read_leniently(code, expected):
    assert known(code) == expected


def _contexts():
    unit = SimpleNamespace(number="A03", id=1, account_number="0001HAT")
    estate = SimpleNamespace(id=None, name="Ha Thetsane", code="HAT")
    pocket = SimpleNamespace(utility="electricity", balance=Decimal("120.5"), commodity="LSL", metered=True,
                             days_left=Decimal(12), today=Decimal("3.2"), this_month=Decimal("80.4"),
                             quantity_unit="KWH")
    version = SimpleNamespace(effective_from=date(2026, 3, 1))
    base = {"unit": unit, "estate": estate}
    return [
        ("budget_alert", {**base, "kind": "critical", "utility": "electricity", "balance": "M 5.00", "threshold": "M 50.00"}),
        ("budget_alert", {**base, "kind": "low", "utility": "hot water", "balance": "M 40.00", "threshold": "M 50.00"}),
        ("budget_alert", {**base, "kind": "high_usage", "utility": "water", "used": "0.900 kL", "usual": "0.300 kL", "percent": 200}),
        ("invite", {"name": "Palesa", "inviter": "Staff", "estate": "Ha Thetsane", "days": 7, "link": "http://x/i"}),
        ("invite", {"name": "Palesa", "inviter": "Staff", "estate": None, "days": 7, "link": "http://x/i"}),
        ("ledger_verify_failed", {"summary": "Link 4 is broken.", "link": "http://x/l"}),
        ("password_reset", {"name": "Palesa", "minutes": 30, "link": "http://x/r"}),
        ("payment_receipt", {**base, "amount": "M 100.00", "balance": "M 220.50", "utility": "electricity",
                             "payment": SimpleNamespace(provider_ref="5L956Z39DJ")}),
        ("supply_change", {**base, "state": "off", "utility": "Electricity", "balance": "M -1.00", "minimum": "M 20.00",
                           "channels": ["online at http://x/t", "by M-PESA to paybill 400200, account 0001HAT"]}),
        ("supply_change", {**base, "state": "on", "utility": "Electricity", "balance": "M 30.00", "minimum": None,
                           "channels": ["online at http://x/t"]}),
        ("tariff_notice", {**base, "utility": "electricity", "version": version, "prices": "M 2.10/kWh",
                           "new_cost": "M 210.00", "old_cost": "M 190.00"}),
        ("sms_balance", {**base, "pockets": [pocket]}),
        ("sms_use", {**base, "pockets": [pocket], "week": {"electricity": Decimal("20.1")}}),
        ("sms_help", {**base, "paybill": "400200", "account": "0001HAT", "units": [unit, unit]}),
        ("sms_help", {**base, "paybill": None, "account": "0001HAT", "units": []}),
        ("sms_choose_unit", {**base, "units": [unit, SimpleNamespace(number="B12")], "keyword": "BAL"}),
        ("sms_unknown_phone", {"estate": None}),
        ("arrears_notice", {**base, "action": "restrict", "owed": "M 120.00", "since": date(2026, 9, 1),
                            "restricted_percent": 50}),
        ("arrears_notice", {**base, "action": "suspend", "owed": "M 120.00", "since": date(2026, 9, 1)}),
        ("move_in_welcome", {**base, "channels": ["by M-PESA to paybill 400200"], "move_in": date(2026, 3, 1)}),
        ("move_out_statement", {**base, "move_out": date(2026, 3, 31), "statement_url": "http://x/s",
                                "pockets": [SimpleNamespace(label="Electricity", balance_text="M 20.00",
                                                            action="refund", amount_text="M 20.00")]}),
        ("wallet_shared", {**base, "by": "Palesa", "level": "view"}),
        ("family_alert", {**base, "kind": "low", "utility": "electricity", "balance": "M 5.00", "threshold": "M 50.00"}),
        ("family_alert", {**base, "kind": "spend_limit", "utility": "water", "spent": "M 90.00", "period": "weekly",
                          "period_words": "this week", "limit": "M 90.00", "held": True, "until": "Monday"}),
        ("family_alert", {**base, "kind": "off", "utility": "electricity", "until": None, "reason": "no credit"}),
        ("utility_demand", {**base, "heavy": True, "event": SimpleNamespace(peak_kw=Decimal("125.5"),
                                                                            threshold_kw=Decimal("100"),
                                                                            state="warned")}),
    ]


@pytest.mark.parametrize("template,context", _contexts(), ids=lambda value: value if isinstance(value, str) else "")
def test_every_notification_renders_in_each_language(app, template, context):
    from flask import render_template
    from flask_babel import force_locale

    texts = {}
    with app.test_request_context("/"):
        for language in LANGUAGES:
            with force_locale(language):
                texts[language] = render_template(f"notifications/{template}.txt", **context)
    for language, text in texts.items():
        assert text.startswith("Subject: ") and text.count("\n") >= 1, (language, text)
        assert "%(" not in text and "%%" not in text, (language, text)
    assert texts["fr"] != texts["en"] and texts["st"] != texts["en"]
