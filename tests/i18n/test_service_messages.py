"""Texts built in services (issue 23): a payment outcome, a job's stored result and a page's
abort(400) refusal in the reader's language, English unchanged.

The catalogues may not hold the newest msgids yet (they are merged from the helpers' notes);
`_french` adds the few this file reads to the loaded French catalogue when it lacks them,
with the same sentences as /work/notes/svcmsg_translations.json, and takes them out after.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from flask_babel import force_locale, get_translations

from app.i18n.stored import fill, match, render_stored
from app.labels import job_result
from app.sources.koios_payments import KoiosPaymentsReport

FRENCH = {
    "Koios payments: %(listed)s listed, %(imported)s imported, %(known)s already known, %(matched)s matched "
    "now, %(unmatched)s unmatched, %(malformed)s malformed":
        "Paiements Koios : %(listed)s listés, %(imported)s importés, %(known)s déjà connus, %(matched)s "
        "rapprochés maintenant, %(unmatched)s non rapprochés, %(malformed)s mal formés",
    "refused again: %(reason)s": "refusé de nouveau : %(reason)s",
    "unknown meter %(meter)s": "compteur inconnu %(meter)s",
    "Payment %(name)s already belongs to a unit; nothing changed.":
        "Le paiement %(name)s appartient déjà à un logement ; rien n'a changé.",
    "pocket must be one of %(choices)s": "la poche doit être l'une de %(choices)s",
}


@pytest.fixture
def _french(app):
    with app.test_request_context(), force_locale("fr"):
        catalog = get_translations()._catalog
    added = [msgid for msgid in FRENCH if msgid not in catalog]
    catalog.update({msgid: FRENCH[msgid] for msgid in added})
    yield
    for msgid in added:
        catalog.pop(msgid, None)


def test_a_stored_job_result_renders_in_the_readers_language(app, _french):
    report = KoiosPaymentsReport(listed=18, imported=6)
    stored = report.summary()
    assert stored == ("Koios payments: 18 listed, 6 imported, 0 already known, 0 matched now, "
                      "0 unmatched, 0 malformed")  # what the job writes stays English
    run = SimpleNamespace(status="done", result=stored + "\nsomething no template knows")
    with app.test_request_context():
        assert job_result(run) == [stored + ".", "Something no template knows."]
        with force_locale("fr"):
            assert job_result(run) == ["Paiements Koios : 18 listés, 6 importés, 0 déjà connus, 0 rapprochés "
                                       "maintenant, 0 non rapprochés, 0 mal formés.",
                                       "Something no template knows."]
            # A parameter that is itself a stored sentence is rendered too (a dead letter's replay).
            assert render_stored(fill("refused again: %(reason)s", reason="unknown meter 555")) == \
                "refusé de nouveau : compteur inconnu 555"
    assert match("Koios payments: 1 listed") is None


def test_a_payment_outcome_is_flashed_in_french(app, _french, rented, login, committed):
    from app.models import utcnow
    from app.models.sources import KoiosPayment
    from tests.helpers import make_login

    with committed() as s:
        staff = make_login(s, "staff").email
        paid = KoiosPayment(koios_id="kp-fr-1", customer_code="C-404", amount=10, currency="LSL",
                            paid_at=utcnow(), origin="vendor")
        s.add(paid)
        s.flush()
        paid_id = paid.id
    client = login(staff)
    token = csrf_from_page(client)
    assert client.post("/language", data={"language": "fr", "csrf_token": token}).status_code == 302
    form = {"source": "koios", "payment_id": paid_id, "unit_id": rented.unit_id, "utility": "electricity",
            "csrf_token": token}
    client.post("/staff/payments/assign", data=form)
    again = client.post("/staff/payments/assign", data=form, follow_redirects=True)
    page = again.get_data(as_text=True).replace("&#39;", "'")
    assert "Le paiement kp-fr-1 appartient déjà à un logement ; rien n'a changé." in page


def test_a_bad_query_parameter_is_refused_in_the_readers_language(app, rented, login, _french):
    client = login(rented.email)
    token = csrf_from_page(client)
    assert client.post("/language", data={"language": "fr", "csrf_token": token}).status_code == 302
    usage = client.get(f"/tenant/units/{rented.unit_id}/usage?utility=gas")
    assert usage.status_code == 400
    assert "utility doit être l'un de electricity, water, hot_water" in usage.get_data(as_text=True).replace("&#39;", "'")
    history = client.get(f"/tenant/units/{rented.unit_id}/transactions?utility=gas")
    assert history.status_code == 400
    assert "la poche doit être l'une de electricity" in history.get_data(as_text=True).replace("&#39;", "'")


def csrf_from_page(client) -> str:
    from tests.helpers import csrf_from

    return csrf_from(client.get("/account").get_data(as_text=True))
