"""Emails built in code go out in the recipient's language (X8): monthly statements, settlement parties."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.billing import settlement as s
from app.models import JobRun, Person
from app.settings import put_setting
from app.statements.runs import start_run
from tests.billing.test_settlement import sun  # noqa: F401  (the settlement fixture)
from tests.statements.test_statement_runs import PERIOD, month_of_activity, pdf_text, smtp  # noqa: F401


def spaced(text: str) -> str:
    return re.sub(r"[\u00a0\u202f]", " ", text)


def _body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")


def test_a_french_recipient_gets_the_statement_email_in_french_an_english_one_as_before(session, smtp):
    kit = month_of_activity(session)
    put_setting(session, "language", "fr", kit.estate.id)  # the estate's default: the tenant has none
    session.scalar(select(Person).where(Person.full_name == "Olga Owner")).language = "en"
    session.commit()
    run = start_run(kit.estate, PERIOD)
    session.expire_all()
    assert session.get(JobRun, run.id).status == "done"
    mail = {m["To"]: m for m in smtp.messages}
    number = kit.unit.number

    english = mail["owner@example.test"]
    assert english["Subject"] == f"Protea Court: your statement for January 2026 (unit {number})"
    assert _body(english) == (f"Hello,\n\nAttached is the Protea Court statement for unit {number}, January 2026.\n"
                              "You can download it again at any time from your Meterwise page.\n\nMeterwise\n")

    french = mail["tenant@example.test"]
    assert "janvier 2026" in french["Subject"] and "January" not in french["Subject"]
    assert _body(french).startswith("Bonjour,") and "janvier 2026" in _body(french)
    # The archived PDF is in the estate's language, money the French way.
    text = spaced(pdf_text(next(french.iter_attachments()).get_content()))
    assert "Relevé mensuel" in text and "janvier 2026" in text and "1 149,00 ZAR" in text and "R 1 149.00" not in text


def test_a_settlement_party_is_emailed_in_the_estates_language(session, sun, smtp):  # noqa: F811
    kit, period, (utility, _, _) = sun
    s.run_settlement(session, kit.estate, period)
    [run] = s.runs_of(session, kit.estate.id)
    line = next(line for line in run.lines if line.party_id == utility.id)

    s.resend_party_statement(session, line)  # no language set: English, as before
    english = smtp.messages[-1]
    assert _body(english).startswith("Hello,\n\nAttached is Power utility's settlement statement from ")
    assert "electricity run 1, your share CFA 62\u202f501." in _body(english)
    assert "62.5 % of revenue" in pdf_text(next(english.iter_attachments()).get_content())

    put_setting(session, "language", "fr", kit.estate.id)
    session.commit()
    s.resend_party_statement(session, line)
    french = smtp.messages[-1]
    body = spaced(_body(french))
    assert body.startswith("Bonjour,") and "62 501 F CFA" in body and "CFA 62" not in body
    assert "Power utility" in french["Subject"]
    text = spaced(pdf_text(next(french.iter_attachments()).get_content()))
    assert "Mois" in text and "Recettes" in text and "62,5 %" in text and "Month" not in text


def test_a_receipt_pdf_in_french(session, app):
    from datetime import datetime
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from flask_babel import force_locale

    from app.reports.pdf import render_receipt_pdf
    from app.reports.receipts import PaymentLine, Receipt, ReceiptPart
    from tests.factories import make_estate_with_wallet

    kit = make_estate_with_wallet(session, name="Protea Court")
    line = PaymentLine("T42", kit.unit, datetime(2026, 1, 5, 10, tzinfo=ZoneInfo("UTC")), "Bank transfer (EFT)",
                       "5L956Z39DJ", Decimal("1234.50"), "ZAR", "received", ["hot_water"])
    receipt = Receipt(line, kit.estate, [ReceiptPart("hot_water", Decimal("1234.50"), "ZAR", Decimal("1300.25"))])
    texts = {}
    for language in ("en", "fr"):
        with app.test_request_context("/"), force_locale(language):
            texts[language] = spaced(pdf_text(render_receipt_pdf(receipt)))
    assert "Receipt number T42" in texts["en"] and "Amount R 1 234.50" in texts["en"] and "Hot water" in texts["en"]
    assert "Paid 05 Jan 2026 12:00" in texts["en"]
    french = texts["fr"]
    assert "Numéro de reçu T42" in french and "1 234,50 ZAR" in french and "Eau chaude" in french
    assert "05 janv. 2026 12:00" in french and "Receipt number" not in french and "R 1 234.50" not in french
