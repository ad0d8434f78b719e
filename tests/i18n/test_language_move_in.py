"""Languages (X8) at move-in and in exports: the new tenant's language on the agent's form; CSV headings."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditLog, Person, utcnow
from tests import factories
from tests.helpers import csrf_from


@pytest.fixture
def vacant(committed):
    """A Sesotho-default estate with a vacant unit, its agent, and a French-speaking person of the estate."""
    from app.settings import put_setting
    from tests.helpers import make_login

    with committed() as s:
        estate = factories.make_estate(s, country="LS", currency="LSL", timezone="Africa/Maseru")
        put_setting(s, "language", "st", estate.id)
        unit = factories.make_unit(s, estate, number="A03", occupancy_status="vacant")
        agent = make_login(s, "agent", estate=estate)
        known = Person(estate_id=estate.id, full_name="Aurélie Dossou", email="aurelie@example.test",
                       language="fr", created_at=utcnow())
        s.add(known)
        s.flush()
        return {"unit": unit.id, "agent": agent.email, "person": known.id, "estate": estate.id}


def _form(client, unit_id):
    page = client.get(f"/agent/units/{unit_id}/move-in").get_data(as_text=True)
    return page, {"csrf_token": csrf_from(page), "move_in": "2026-12-01", "invite": "", "language_default": "st"}


def test_the_form_offers_the_languages_with_the_estates_default_chosen(vacant, login):
    page, _ = _form(login(vacant["agent"]), vacant["unit"])
    assert '<select id="f-language" name="language"' in page
    assert 'value="st" lang="st" selected>Sesotho' in page and 'value="fr" lang="fr" >Français' in page


def test_a_new_tenant_gets_the_chosen_language_validated_and_audited(app, vacant, login, committed):
    client = login(vacant["agent"])
    _, sent = _form(client, vacant["unit"])
    sent.update(person_id="new", full_name="Koffi Mensah", email="koffi@example.test", phone="")
    refused = client.post(f"/agent/units/{vacant['unit']}/move-in", data={**sent, "language": "de"})
    assert refused.status_code == 400 and 'id="f-language-error"' in refused.get_data(as_text=True)
    with committed() as s:
        assert s.scalar(select(Person).where(Person.email == "koffi@example.test")) is None
    moved = client.post(f"/agent/units/{vacant['unit']}/move-in", data={**sent, "language": "fr"})
    assert moved.status_code == 302
    with committed() as s:
        person = s.scalar(select(Person).where(Person.email == "koffi@example.test"))
        assert person.language == "fr"
        created = s.scalar(select(AuditLog).where(AuditLog.action == "person.created",
                                                  AuditLog.entity_id == str(person.id)))
        assert created.new["language"] == "fr"


def test_an_existing_person_keeps_their_language_unless_the_agent_chooses_another(vacant, login, committed):
    client = login(vacant["agent"])
    _, sent = _form(client, vacant["unit"])
    sent.update(person_id=str(vacant["person"]), language="st")  # the list left at the estate's default
    assert client.post(f"/agent/units/{vacant['unit']}/move-in", data=sent).status_code == 302
    with committed() as s:
        assert s.get(Person, vacant["person"]).language == "fr"
        assert s.scalar(select(AuditLog).where(AuditLog.action == "person.language")) is None
        from app.estates.tenancies import current_tenancy
        from app.models import Unit

        tenancy = current_tenancy(s, s.get(Unit, vacant["unit"]))
        s.delete(tenancy)  # free the unit for the second move-in
    _, sent = _form(client, vacant["unit"])
    sent.update(person_id=str(vacant["person"]), language="en")
    assert client.post(f"/agent/units/{vacant['unit']}/move-in", data=sent).status_code == 302
    with committed() as s:
        assert s.get(Person, vacant["person"]).language == "en"
        changed = s.scalar(select(AuditLog).where(AuditLog.action == "person.language"))
        assert changed.old == {"language": "fr"} and changed.new == {"language": "en"}


def test_export_headings_follow_the_readers_language(login, committed):
    from tests.helpers import make_login

    with committed() as s:
        staff = make_login(s, "staff").email
    client = login(staff)
    english = client.get("/staff/metering/api-keys?format=csv").get_data(as_text=True)
    assert english.lstrip("\ufeff").startswith("Name,Key starts,Permissions,Estate,Created,Last used,Revoked")
    token = csrf_from(client.get("/account").get_data(as_text=True))
    client.post("/language", data={"language": "fr", "csrf_token": token})
    french = client.get("/staff/metering/api-keys?format=csv").get_data(as_text=True)
    assert french.lstrip("\ufeff").startswith("Nom,Début de la clé,Permissions,Résidence,Créé,Dernière utilisation,Révoquée")
    from io import BytesIO

    from pypdf import PdfReader

    pdf = client.get("/staff/metering/api-keys?format=pdf")
    text = " ".join(page.extract_text() for page in PdfReader(BytesIO(pdf.data)).pages)
    assert "Clés d'API" in text and "par Meterwise" in text and "Aucune ligne." in text  # no key yet: no table


def test_the_api_move_in_takes_the_tenants_language(vacant, client, committed):
    from app.integration import keys
    from app.models import Estate, User

    with committed() as s:
        agent = s.scalar(select(User).where(User.email == vacant["agent"]))
        key = keys.issue_key(s, "CRM", permissions="read,manage", estate=s.get(Estate, vacant["estate"]),
                             issuer=agent).key
    body = {"person": {"full_name": "Mpho Lerotholi", "email": "mpho@example.test", "language": "xx"},
            "move_in": "2026-12-01"}
    refused = client.post(f"/api/v1/units/{vacant['unit']}/move-in", json=body, headers={"X-API-Key": key})
    assert refused.status_code == 422 and "person.language" in refused.get_json()["errors"]
    body["person"]["language"] = "st"
    moved = client.post(f"/api/v1/units/{vacant['unit']}/move-in", json=body, headers={"X-API-Key": key})
    assert moved.status_code == 201, moved.get_data(as_text=True)
    with committed() as s:
        assert s.get(Person, moved.get_json()["person_id"]).language == "st"
