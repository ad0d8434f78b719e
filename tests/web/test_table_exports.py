"""Every staff and agent table downloads as CSV and PDF (A6, issue 14 item 4): the page links
to `?format=csv|pdf`, the CSV has the table's columns and its rows, the PDF is a PDF."""
from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from app.metering.api_keys import issue_api_key
from app.models import Unit
from app.models.metering import TariffVersion
from app.models.payments import Payment
from app.payments.credit import credit_payment
from tests import factories


@pytest.fixture
def data(committed, world):
    """On estate 1: a meter on unit A, a credited EFT payment, a tariff version, an API key."""
    with committed() as s:
        unit = s.get(Unit, world.unit_a)
        meter = factories.make_meter(s, unit, serial="EXP-0001")
        payment = Payment(provider="eft", provider_ref="EXPORT-REF-1", amount=Decimal("75.00"), status="to_confirm",
                          unit_id=unit.id, estate_id=unit.estate_id, utility="electricity",
                          paid_at=datetime(2026, 11, 2, 8, tzinfo=UTC))
        s.add(payment)
        s.flush()
        credit_payment(s, payment)
        s.add(TariffVersion(estate_id=world.estate1, utility="electricity", effective_from=date(2026, 1, 1),
                            kind="flat", rates={"rate": "2.50"}))
        issue_api_key(s, "Export gateway")
        return {"meter": meter.id, "tx": payment.transaction_id}


# (url, who, a column heading, a value one of the rows holds or None for "the header only")
def cases(world, data):
    staff = [
        ("/staff/", "Action", "payment.credited"),
        ("/staff/ledger", "Month", world.estate1_name),
        ("/staff/metering", "Meter", "EXP-0001"),
        ("/staff/metering/alerts", "Kind", None),
        ("/staff/metering/commands", "Relay", None),
        ("/staff/metering/dead-letters", "Reason", None),
        ("/staff/metering/api-keys", "Key starts", "Export gateway"),
        ("/staff/payments", "Provider ref", "EXPORT-REF-1"),
        ("/staff/payments?table=unmatched", "Why unmatched", None),
        ("/staff/payments?table=suspicious", "Message", None),
        ("/staff/sources", "Koios id", None),
        ("/staff/sources?table=thundercloud", "kWh", None),
        ("/staff/sources/suspensions", "Grace date", None),
        ("/staff/sources/customers", "On time", None),
        ("/staff/tariffs", "Prices", world.estate1_name),
        (f"/staff/meters/{data['meter']}?table=periods", "Consumption", None),
        (f"/staff/meters/{data['meter']}?table=readings", "Register", None),
        (f"/staff/transactions/{data['tx']}", "Account", "75.00"),
        ("/staff/corrections", "Reason", None),
        ("/staff/corrections?table=recent", "Reason", None),
    ]
    agent = [(f"/agent/estates/{world.estate1}", "Tenant", world.unit_a_number)]
    return [("staff", *case) for case in staff] + [("agent", *case) for case in agent]


def _with_format(url: str, fmt: str) -> str:
    return url + ("&" if "?" in url else "?") + f"format={fmt}"


def test_every_table_downloads_as_csv_and_pdf_with_its_rows(app, world, data, login):
    clients = {role: login(world.emails[role]) for role in ("staff", "agent")}
    problems = []
    for role, url, heading, value in cases(world, data):
        client = clients[role]
        page = client.get(url.split("?")[0])
        if "format=csv" not in page.get_data(as_text=True) and "?table=" not in url:
            problems.append(f"{url}: no download link on the page")
        response = client.get(_with_format(url, "csv"))
        if response.mimetype != "text/csv":
            problems.append(f"{url}: CSV answered {response.status_code} {response.mimetype}")
            continue
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
        if heading not in rows[0]:
            problems.append(f"{url}: no {heading!r} column in {rows[0]}")
        if value is not None and not any(value in cell for row in rows[1:] for cell in row):
            problems.append(f"{url}: no row with {value!r}")
        pdf = client.get(_with_format(url, "pdf"))
        if pdf.mimetype != "application/pdf" or not pdf.data.startswith(b"%PDF"):
            problems.append(f"{url}: PDF answered {pdf.status_code} {pdf.mimetype}")
    assert not problems, "\n".join(problems)


def test_an_agent_downloads_only_their_estates_units(world, data, login):
    agent = login(world.emails["agent"])
    own = agent.get(f"/agent/estates/{world.estate1}?format=csv").get_data(as_text=True)
    assert world.unit_a_number in own and world.unit_b_number not in own
    assert agent.get(f"/agent/estates/{world.estate2}?format=csv").status_code == 404
    assert agent.get(f"/agent/estates/{world.estate1}?format=xls").status_code == 400


def test_the_payments_download_keeps_the_pages_filters(world, data, login):
    staff = login(world.emails["staff"])
    html = staff.get("/staff/payments?provider=mpesa").get_data(as_text=True)
    assert "format=csv&amp;provider=mpesa" in html
    assert "EXPORT-REF-1" not in staff.get("/staff/payments?provider=mpesa&format=csv").get_data(as_text=True)
    assert "EXPORT-REF-1" in staff.get("/staff/payments?provider=eft&format=csv").get_data(as_text=True)
