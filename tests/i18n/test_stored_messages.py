"""Sentences kept as parts (app/i18n/messages.py) are written in the reader's language when shown:
a reconciliation check's name, summary and failing item, and a report subscription's title.

The French of strings new in issue 23 is added to the loaded catalogue here (the same text as
/work/notes/labels_translations.json, which goes into translations/fr); what is tested is that the
page looks the stored parts up at display time, with French numbers, and that English is unchanged.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import flask_babel
import pytest
from flask_babel import force_locale

from tests import factories

FRENCH = {
    "Readings vs bills": "Relevés / factures",
    "%(count)s of %(checked)s do not match": "%(count)s sur %(checked)s ne concordent pas",
    "Reading on meter %(serial)s": "Relevé du compteur %(serial)s",
    "%(when)s UTC, %(used)s used, has no bill": "%(when)s UTC, %(used)s consommés, sans facture",
    "no bulk meter to compare": "aucun compteur général à comparer",
    "Meters %(estate)s": "Compteurs %(estate)s",
}


@pytest.fixture
def french(app, monkeypatch):
    """The French catalogue as loaded, with the entries above (restored after the test)."""
    with app.test_request_context(), force_locale("fr"):
        catalogue = flask_babel.get_translations()
    for msgid, text in FRENCH.items():
        monkeypatch.setitem(catalogue._catalog, msgid, text)
    return catalogue


def test_a_reconciliation_check_reads_in_french_and_in_english_as_before(app, committed, login, french):
    from app.analytics import daily_reconciliation as recon
    from app.models import Reading
    from tests.helpers import make_login

    with committed() as s:
        kit = factories.make_estate_with_wallet(s, name="Ha Thetsane")
        meter = factories.make_meter(s, kit.unit, serial="SM-77")
        staff = make_login(s, "staff")
        day = recon.yesterday(kit.estate)
        start, _ = recon.day_bounds(kit.estate, day)
        s.add(Reading(meter_id=meter.id, taken_at=start + timedelta(hours=8), register=Decimal("1214.5"),
                      consumption=Decimal("1214.5")))
        s.flush()
        recon.reconcile_estate(s, kit.estate, day)
        estate_id, email = kit.estate.id, staff.email
    client = login(email)
    url = f"/staff/reconciliation?estate_id={estate_id}&day={day.isoformat()}"
    english = client.get(url, headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Readings vs bills" in english and "1 of 1 do not match" in english
    assert "Reading on meter SM-77" in english and "1214.5 used, has no bill" in english
    assert "no bulk meter to compare" in english
    page = client.get(url, headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="fr">' in page
    assert "Relevés / factures" in page and "1 sur 1 ne concordent pas" in page
    assert "Relevé du compteur SM-77" in page
    assert "1\u202f214,5 consommés, sans facture" in page  # the stored number, as French writes it
    assert "aucun compteur général à comparer" in page and "no bulk meter" not in page


def test_an_old_row_without_parts_still_shows_its_english(app, french):
    from app.analytics.daily_reconciliation import shown_detail, shown_summary
    from app.models.settlement import ReconciliationResult

    old = ReconciliationResult(check="bulk", ok=True, checked=0, summary="no bulk meter to compare", items=[])
    with app.test_request_context(), force_locale("fr"):
        assert shown_summary(old) == "no bulk meter to compare"
        assert shown_detail({"label": "x", "detail": "has no bill"}) == "has no bill"


def test_a_subscription_title_is_in_the_readers_language(app, committed, login, french):
    from app.models import User
    from app.reports.subscriptions import subscribe
    from tests.helpers import make_login

    with committed() as s:
        kit = factories.make_estate_with_wallet(s, name="Ha Thetsane")
        staff = make_login(s, "staff")
        estate_id, email, user_id = kit.estate.id, staff.email, staff.id
    with committed() as s:
        user = s.get(User, user_id)
        with app.test_request_context():
            made = subscribe(s, app, user, "admin.estate_meters_page", {"estate_id": str(estate_id)}, "weekly", "csv")
            plain = subscribe(s, app, user, "staff.metering", {}, "weekly", "csv")
        assert made.title == "Meters ha thetsane"  # the stored English name, from the file name as before
        assert made.title_parts == {"m": "Meters %(estate)s", "p": {"estate": "Ha Thetsane"}}
        assert plain.title_parts == {"m": "Meters", "p": {}}
    client = login(email)
    page = client.get("/subscriptions", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert "Compteurs Ha Thetsane" in page and ">Compteurs<" in page  # "Meters" is in the catalogue already
    english = client.get("/subscriptions", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Meters ha thetsane" in english
