"""Koios: readings import with freshness skip and adaptive page size; the payments endpoints."""
from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import func, select

from app.models import Reading
from app.models.metering import DeadLetter
from app.sources.sparkmeter import KoiosError, import_koios_day
from tests import factories
from tests.emulators.koios import build

DAY = date.today() - timedelta(days=1)


@pytest.fixture
def koios(serve_koios):
    """`koios(**settings)` serves a Koios emulator; returns (emulator, API client)."""
    def start(sites=2, meters=3, **settings):
        emulator = build(sites, meters)
        emulator.api_key, emulator.api_secret = "key", "secret"
        for name, value in settings.items():
            setattr(emulator, name, value)
        return emulator, serve_koios(emulator)
    return start


@pytest.fixture
def metered(session):
    """Local meters for every emulated SparkMeter serial of 2 sites x 3 meters."""
    kit = factories.make_estate_with_wallet(session, currency="LSL")
    for site in range(1, 3):
        for meter in range(1, 4):
            factories.make_meter(session, estate=kit.estate, unit=None, role="bulk",
                                 serial=f"SM{site:02d}{meter:04d}", protocol="sparkmeter")
    session.commit()


def readings(session) -> int:
    return session.scalar(select(func.count()).select_from(Reading))


def test_a_day_is_imported_once_and_a_rerun_skips_fresh_sites(session, koios, metered):
    emulator, api = koios()
    report = import_koios_day(session, api, DAY)
    assert (report.sites, report.rows, report.accepted) == (2, 144, 144)
    assert readings(session) == 144
    calls = len(emulator.historical_calls)
    again = import_koios_day(session, api, DAY)
    assert again.skipped_fresh == 2 and len(emulator.historical_calls) == calls
    assert readings(session) == 144


def test_page_size_halves_on_gateway_timeouts_and_stays_small(session, koios, metered):
    emulator, api = koios(max_page_ok=20)
    report = import_koios_day(session, api, DAY)
    assert report.accepted == 144
    assert emulator.historical_calls[:3] == [50, 25, 12]
    assert set(emulator.historical_calls[3:]) == {12}


def test_gateway_too_slow_even_for_ten_rows_is_an_error(session, koios, metered):
    emulator, api = koios(max_page_ok=5)
    with pytest.raises(KoiosError, match="even at 10"):
        import_koios_day(session, api, DAY)
    assert emulator.historical_calls == [50, 25, 12, 10]


def test_5xx_are_retried_and_nothing_is_lost(session, koios, metered):
    emulator, api = koios(error_every=4)
    assert import_koios_day(session, api, DAY).accepted == 144


def test_read_timeouts_also_halve_the_page(session, koios, metered):
    emulator, api = koios(stall_every=5, stall_seconds=3)
    report = import_koios_day(session, api, DAY)
    assert report.accepted == 144 and api.page_size < 50


def test_readings_of_unknown_meters_are_counted_not_dead_lettered(session, koios):
    emulator, api = koios(sites=1, meters=2)
    report = import_koios_day(session, api, DAY)
    assert report.unknown_meters == {"SM010001", "SM010002"} and report.accepted == 0
    assert not session.scalar(select(func.count()).select_from(DeadLetter))


def test_customers_are_listed_across_cursor_pages(koios):
    emulator, api = koios(sites=3, meters=40)
    assert len(api.list_customers(per_page=50)) == 120


# --- payments (used by the credit push to vendor meters) -------------------------------

def test_payment_post_is_idempotent_by_external_id(koios):
    emulator, api = koios()
    body = {"customer_code": "C-SM010001", "amount": "25.00", "memo": "top-up", "external_id": "mw:1"}
    first = api.http.post(api.base_url + "/api/v1/payments", json=body)
    again = api.http.post(api.base_url + "/api/v1/payments", json={**body, "amount": "99.00"})
    assert first.status_code == 201 and again.status_code == 200
    assert again.json()["data"] == first.json()["data"] and len(emulator.payments) == 1
    found = api.http.get(api.base_url + "/api/v1/payments", params={"external_id": "mw:1"})
    assert found.json()["data"]["id"] == first.json()["data"]["id"]
    missing = api.http.get(api.base_url + "/api/v1/payments", params={"external_id": "mw:2"})
    assert missing.status_code == 404


def test_payment_refusals_and_credentials(koios):
    emulator, api = koios()
    url = api.base_url + "/api/v1/payments"
    unknown = api.http.post(url, json={"customer_code": "nobody", "amount": "5", "external_id": "x"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["title"] == "customer not found"
    number = api.http.post(url, json={"customer_code": "C-SM010001", "amount": 5, "external_id": "y"})
    assert number.status_code == 422
    assert requests.get(url, params={"external_id": "x"}).status_code == 401
