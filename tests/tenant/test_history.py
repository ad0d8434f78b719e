"""T3: transaction history with a running balance across pages and filters, and charges that explain themselves."""
from __future__ import annotations

import html
import re
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.billing import tariffs
from app.models import Account, Estate, LedgerTransaction, Meter
from app.models.metering import TariffVersion
from app.money import format_amount
from tests import factories
from tests.tenant.conftest import feed, reading
from tests.helpers import table_with

JOBURG = ZoneInfo("Africa/Johannesburg")


@pytest.fixture
def busy(home, committed):
    """30 electricity entries and 6 water entries on the home unit in October, each memo naming itself.

    Returns {memo: (pocket utility, balance after it)} computed here, in time order per pocket."""
    entries = []
    with committed() as s:
        clearing = s.get(Account, home.clearing)
        for i in range(30):
            amount = Decimal("20.00") if i % 3 == 0 else Decimal("-7.50")
            kind = "topup" if amount > 0 else "adjustment"
            entries.append(("electricity", home.pocket, amount, kind, datetime(2026, 10, 1 + i, 12, tzinfo=JOBURG),
                            f"electricity entry {i:02d}"))
        for i in range(6):
            entries.append(("water", home.water_pocket, Decimal("-3.25"), "adjustment",
                            datetime(2026, 10, 2 + 5 * i, 18, tzinfo=JOBURG), f"water entry {i}"))
        for _, pocket, amount, kind, at, memo in entries:
            factories.make_topup(s, s.get(Account, pocket), amount, clearing=clearing, kind=kind,
                                 occurred_at=at, memo=memo)
    running = {"electricity": Decimal("500.00"), "water": Decimal("300.00")}  # the home fixture's top-ups
    expected = {}
    for utility, _, amount, _, at, memo in sorted(entries, key=lambda e: e[4]):
        running[utility] += amount
        expected[memo] = (utility, running[utility])
    return expected


def rows_of(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    table = table_with(response.get_data(as_text=True), "Balance")
    return [row for row in table.texts() if len(row) >= 5]


def check_balances(rows, expected, currency="ZAR"):
    for row in rows:
        memo, balance = row[1], row[4]
        if memo in expected:
            assert balance == format_amount(expected[memo][1], currency), (memo, balance)


def test_running_balance_is_right_on_every_page(home, busy, login, committed):
    client = login(home.tenant)
    url = f"/tenant/units/{home.unit}/transactions"
    first, second = rows_of(client.get(url)), rows_of(client.get(url + "?page=2"))
    assert len(first) == 25 and len(second) == 38 - 25, "36 entries and the fixture's 2 top-ups"
    check_balances(first + second, busy)
    memos = [r[1] for r in first + second]
    assert memos[0] == "electricity entry 29" and memos[-1] == "PayFast top-up", "newest first"
    assert len(set(memos)) == 38
    with committed() as s:
        cached = s.get(Account, home.pocket).balance
    assert first[0][4] == format_amount(cached, "ZAR"), "the newest row's balance is the pocket's balance"
    assert "Page 1 of 2" in client.get(url).get_data(as_text=True)


def test_filters_keep_each_rows_running_balance(home, busy, login):
    client = login(home.tenant)
    url = f"/tenant/units/{home.unit}/transactions"
    water = rows_of(client.get(url + "?utility=water"))
    assert [r[1] for r in water] == [f"water entry {i}" for i in range(5, -1, -1)] + ["EFT"]
    check_balances(water, busy)
    assert water[0][4] == format_amount(Decimal("300.00") - 6 * Decimal("3.25"), "ZAR")
    narrowed = rows_of(client.get(url + "?utility=electricity&kind=adjustment&from=2026-10-10&to=2026-10-20"))
    assert {r[1] for r in narrowed} == {f"electricity entry {i:02d}" for i in range(9, 20) if i % 3}
    check_balances(narrowed, busy)
    fragment = client.get(url + "?kind=topup", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="history"') and "<html" not in fragment
    csv = client.get(url + "?format=csv")
    assert csv.mimetype == "text/csv" and "electricity entry 29" in csv.get_data(as_text=True)


@pytest.mark.parametrize("query, message", [
    ("from=2026-13-01", "must be a date"), ("from=2026-10-05&to=2026-10-01", "must not be after"),
    ("page=0", "page must be"), ("page=9", "only 1 page"), ("utility=gas", "pocket must be one of"),
])
def test_bad_filters_are_refused_with_a_message(home, login, query, message):
    response = login(home.tenant).get(f"/tenant/units/{home.unit}/transactions?{query}")
    assert response.status_code == 400
    assert message in html.unescape(response.get_data(as_text=True))


# --- explanations -----------------------------------------------------------------------


def charge_for(committed, serial: str, at: datetime) -> int:
    with committed() as s:
        return s.scalar(select(LedgerTransaction.id).where(
            LedgerTransaction.idempotency_key == f"reading:{serial}:{at.astimezone(ZoneInfo('UTC')).isoformat()}"))


def explanation(client, home, tx_id: int) -> str:
    response = client.get(f"/tenant/units/{home.unit}/transactions/{tx_id}", headers={"HX-Request": "true"})
    assert response.status_code == 200
    text = html.unescape(response.get_data(as_text=True))
    assert "<html" not in text
    return re.sub(r"[ \t\r\n]+", " ", text)  # money keeps its narrow no-break space


def test_a_block_tariff_charge_shows_its_readings_and_band_split(home, login, committed):
    with committed() as s:
        s.add(TariffVersion(estate_id=home.estate, utility="electricity", effective_from=date(2026, 10, 1),
                            kind="block", rates={"blocks": [{"up_to": "10", "rate": "1.50"},
                                                            {"up_to": None, "rate": "3.00"}]}))
    times = [datetime(2026, 10, 5, h, tzinfo=JOBURG) for h in (10, 12, 14)]
    feed(committed, [reading("E-1", times[0], "1000"), reading("E-1", times[1], "1008"),
                     reading("E-1", times[2], "1015")])
    client = login(home.tenant)
    first = explanation(client, home, charge_for(committed, "E-1", times[1]))
    assert "block 1: 0-10" in first and "block 2" not in first and "R -12.00" in first
    second = explanation(client, home, charge_for(committed, "E-1", times[2]))
    assert "Meter E-1" in second
    assert "1\u202f008.000 kWh" in second and "1\u202f015.000 kWh" in second, "the readings before and after"
    assert "Inclining blocks tariff in force from 01 Oct 2026" in second
    assert re.search(r"block 1: 0-10.*?2\.000 kWh.*?R 1\.50/kWh.*?R 3\.00", second)
    assert re.search(r"block 2: 10-up.*?5\.000 kWh.*?R 3\.00/kWh.*?R 15\.00", second)
    assert "Priced again: <strong>R 18.00" in second and "Charged: <strong>R 18.00" in second
    assert "differs" not in second


def test_a_register_wrap_is_explained_as_what_was_billed(home, login, committed):
    with committed() as s:
        s.get(Meter, home.electricity_meter).register_digits = 5
    times = [datetime(2026, 10, 7, h, tzinfo=JOBURG) for h in (10, 12)]
    feed(committed, [reading("E-1", times[0], "99998"), reading("E-1", times[1], "3")])
    text = explanation(login(home.tenant), home, charge_for(committed, "E-1", times[1]))
    assert "Used: <strong class=\"quantity\">5.000 kWh" in text, "the wrap, not 3 - 99998"
    assert "Priced again: <strong>R 10.00" in text and "Charged: <strong>R 10.00" in text and "differs" not in text


def test_a_solar_export_is_explained_at_the_solar_rate(home, login, committed):
    with committed() as s:
        s.add(TariffVersion(estate_id=home.estate, utility="electricity", effective_from=date(2026, 10, 1),
                            kind="flat", rates={"rate": "2.00"}, solar_rate=Decimal("0.85")))
        s.get(Meter, home.electricity_meter).bidirectional = True
    times = [datetime(2026, 10, 8, h, tzinfo=JOBURG) for h in (11, 13)]
    feed(committed, [reading("E-1", times[0], "1000"), reading("E-1", times[1], "996.5")])
    client = login(home.tenant)
    tx_id = charge_for(committed, "E-1", times[1])
    page = html.unescape(client.get(f"/tenant/units/{home.unit}/transactions").get_data(as_text=True))
    assert "Why this credit?" in page
    text = explanation(client, home, tx_id)
    assert "Exported to the grid: <strong class=\"quantity\">3.500 kWh" in text and "Used:" not in text
    assert "At the solar rate R 0.85/kWh: <strong>R 2.98" in text and "Credited: <strong>R 2.98" in text
    assert "differs" not in text and "Priced again" not in text


def test_a_time_of_use_charge_shows_its_windows(home, login, committed):
    with committed() as s:
        s.add(TariffVersion(estate_id=home.estate, utility="water", effective_from=date(2026, 10, 1), kind="tou",
                            rates={"default_rate": "20.00", "windows": [{"start": "22:00", "end": "06:00", "rate": "10.00"}]}))
    start, end = datetime(2026, 10, 6, 21, tzinfo=JOBURG), datetime(2026, 10, 6, 23, tzinfo=JOBURG)
    feed(committed, [reading("W-1", start, "100", "kL"), reading("W-1", end, "104", "kL")])
    text = explanation(login(home.tenant), home, charge_for(committed, "W-1", end))
    assert re.search(r"outside the windows.*?2\.000 kL.*?R 20\.00/kL.*?R 40\.00", text)
    assert re.search(r"window 22:00-06:00.*?2\.000 kL.*?R 10\.00/kL.*?R 20\.00", text)
    assert "Charged: <strong>R 60.00" in text


def test_charge_lines_add_up_to_what_charge_prices():
    prices = [tariffs.Price(date(2026, 1, 1), "block", {"blocks": [{"up_to": "50", "rate": "1.10"},
                                                                  {"up_to": "100", "rate": "2.20"},
                                                                  {"up_to": None, "rate": "3.30"}]}),
              tariffs.Price(date(2026, 10, 15), "tou", {"default_rate": "2.5", "windows": [
                  {"start": "22:00", "end": "06:00", "rate": "1.2"}]})]
    start, end = datetime(2026, 9, 28, 7, tzinfo=JOBURG), datetime(2026, 10, 16, 23, tzinfo=JOBURG)
    quantity = Decimal("321.5")
    lines = tariffs.charge_lines(prices, JOBURG, start, end, quantity, {date(2026, 9, 1): Decimal("40")})
    assert sum(line.amount for line in lines) == tariffs.charge(prices, JOBURG, start, end, quantity,
                                                                {date(2026, 9, 1): Decimal("40")})
    assert sum(line.quantity for line in lines) == quantity
    assert {line.band for line in lines} >= {"block 1: 0-50", "block 2: 50-100", "block 3: 100-up",
                                             "window 22:00-06:00", "outside the windows"}


def test_a_top_up_explains_itself_and_other_units_transactions_are_404(home, login, committed):
    with committed() as s:
        topup = s.scalar(select(LedgerTransaction.id).where(LedgerTransaction.memo == "PayFast top-up"))
        other = factories.make_estate_with_wallet(s)
        theirs = factories.make_topup(s, other.pocket(), "10.00", clearing=other.accounts.clearing).transaction_id
        neighbour = factories.make_unit(s, s.get(Estate, home.estate))
        wallet = factories.make_wallet(s, neighbour)
        next_door = factories.make_topup(s, wallet.pocket("water"), "5.00",
                                         clearing=s.get(Account, home.clearing)).transaction_id
    client = login(home.tenant)
    text = explanation(client, home, topup)
    assert "R 500.00" in text and "Money into your wallet." in text
    for tx in (theirs, next_door, 987654):
        assert client.get(f"/tenant/units/{home.unit}/transactions/{tx}").status_code == 404
