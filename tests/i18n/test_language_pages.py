"""Languages on pages (X8): the browser's language, the switch, the person's choice, the estate default."""
from __future__ import annotations

import pytest

from app.extensions import db
from app.models import Person
from tests.helpers import csrf_from


def test_visitors_get_the_browsers_language_and_can_switch(client):
    page = client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="fr">' in page and "Se connecter" in page and "Mot de passe" in page
    token = csrf_from(page)
    switched = client.post("/language", data={"language": "st", "next": "/login", "csrf_token": token})
    assert switched.status_code == 302 and switched.headers["Location"].endswith("/login")
    page = client.get("/login", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert '<html lang="st">' in page and ">Kena<" in page


def test_a_switch_to_an_unknown_language_or_off_site_is_refused(client):
    token = csrf_from(client.get("/login").get_data(as_text=True))
    assert client.post("/language", data={"language": "xx", "csrf_token": token}).status_code == 400
    away = client.post("/language", data={"language": "fr", "next": "//evil.example/", "csrf_token": token})
    assert away.status_code == 302 and "evil" not in away.headers["Location"]
    assert client.post("/language", data={"language": "fr"}).status_code == 400  # no CSRF token


def test_the_persons_choice_on_my_account_changes_the_dashboard(app, rented, login):
    client = login(rented.email)
    english = client.get(f"/tenant/units/{rented.unit_id}").get_data(as_text=True)
    assert "Days of credit left" in english
    token = csrf_from(client.get("/account").get_data(as_text=True))
    bad = client.post("/account", data={"email": rented.email, "phone": rented.phone, "language": "de",
                                        "csrf_token": token})
    assert bad.status_code == 400 and "Choose one of the languages listed." in bad.get_data(as_text=True)
    saved = client.post("/account", data={"email": rented.email, "phone": rented.phone, "language": "fr",
                                          "csrf_token": token})
    assert saved.status_code == 302
    with app.app_context():
        assert db.session.get(Person, rented.person_id).language == "fr"
        db.session.remove()
    french = client.get(f"/tenant/units/{rented.unit_id}").get_data(as_text=True)
    assert '<html lang="fr">' in french and "Jours de crédit restants" in french and "Recharger" in french
    assert "0,00\u00a0LSL" in french  # the empty pocket, as CLDR writes it in French
    history = client.get(f"/tenant/units/{rented.unit_id}/transactions").get_data(as_text=True)
    assert "Toutes les poches" in history and "<h1>Opérations" in history


def test_the_estate_default_applies_to_people_without_a_choice(app, rented, login, committed):
    from app.settings import put_setting

    with committed() as s:
        put_setting(s, "language", "st", rented.estate_id)
        put_setting(s, "currency_symbol", "M", rented.estate_id)
    page = login(rented.email).get(f"/tenant/units/{rented.unit_id}").get_data(as_text=True)
    assert '<html lang="st">' in page and "Matsatsi a chelete e setseng" in page and "M0.00" in page


def test_the_pdf_statement_is_in_the_readers_language(app, rented, login, committed):
    from io import BytesIO

    from pypdf import PdfReader

    from app.periods import current_period

    with committed() as s:
        s.get(Person, rented.person_id).language = "fr"
    response = login(rented.email).get(f"/tenant/units/{rented.unit_id}/statements/{current_period('Africa/Maseru')}.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = " ".join(page.extract_text() for page in PdfReader(BytesIO(response.data)).pages)
    assert "Relevé mensuel" in text and "Solde d'ouverture" in text and "PROVISOIRE" in text


# --- owner, body-corporate and estate administration pages in each language ------------------

# One label each page must show translated, per language: (path, French, Sesotho).
_LAYER_PAGES = {
    "owner": [
        ("/owner/", "Mes biens", "Matlo a ka"),
        ("/owner/reconciliation", "Rapprochement des recettes", "Papiso ea chelete e kenang"),
        ("/owner/usage", "Plus gros consommateurs", "Basebelisi ba baholo"),
        ("/owner/vacancy", "Taux de vacance", "Sekhahla sa liyuniti tse se nang batho"),
        ("/owner/units/{unit}", "Activité récente", "Liketso tsa morao tjena"),
        ("/owner/units/{unit}/statements", "Relevés", "Litatemente"),
    ],
    "body_corporate": [
        ("/body-corporate/", "Vue d'ensemble des copropriétés", "Kakaretso ea libaka tse kopanetsoeng"),
        ("/body-corporate/estates/{estate}", "Clôturer et verrouiller les mois", "Koala 'me u notlele likhoeli"),
        ("/body-corporate/estates/{estate}/levies", "Définitions des charges", "Litlhaloso tsa makhetho"),
        ("/body-corporate/estates/{estate}/levies/new", "Répartir sur les logements", "Arola ho liyuniti"),
        ("/body-corporate/estates/{estate}/reports", "Rapports d'audit", "Litlaleho tsa tlhahlobo"),
    ],
    "staff": [
        ("/admin/", "Résidences", "Libaka"),
        ("/admin/estates/{estate}", "Vue d'ensemble", "Kakaretso"),
        ("/admin/estates/{estate}/settings", "Langue par défaut", "Puo e tloaelehileng"),
        ("/admin/estates/{estate}/units", "Ajouter un logement", "Kenya yuniti"),
        ("/admin/estates/{estate}/units/new", "Numéro du logement", "Nomoro ea yuniti"),
        ("/admin/units/{unit}", "Position GPS", "Sebaka sa GPS"),
        ("/admin/units/{unit}/meters", "Ajouter un compteur", "Kenya mitara"),
        ("/admin/units/{unit}/people", "Ajouter un locataire", "Kenya mohiri"),
        ("/admin/units/{unit}/debt", "Limites de crédit", "Meeli ea mokoloto"),
        ("/admin/units/{unit}/notes", "Nouvelle note", "Molaetsa o mocha"),
        ("/admin/estates/{estate}/meters", "Ajouter un compteur de résidence", "Kenya mitara ea sebaka"),
        ("/admin/estates/{estate}/people", "Inscrire une personne", "Ngolisa motho"),
        ("/admin/estates/{estate}/people/{person}", "Donner un rôle", "Fana ka karolo"),
        ("/admin/estates/{estate}/arrears", "Par ancienneté", "Ka nako"),
        ("/admin/estates/{estate}/tariff-classes", "Ajouter une classe", "Kenya sehlopha"),
        ("/admin/estates/{estate}/imports", "Envoyer un fichier", "Romela faele"),
        # the staff layer's own pages, its API keys and webhooks, and the API reference
        ("/staff/", "Journal d'audit", "Buka ea tlhahlobo"),
        ("/staff/ledger", "Périodes comptables", "Linako tsa lichelete"),
        ("/staff/metering", "Résidence / logement", "Sebaka / yuniti"),
        ("/staff/metering/dead-letters", "Aucun message rejeté.", "Ha ho melaetsa e hanneng."),
        ("/staff/payments", "Paiements non rapprochés", "Litefo tse sa tsamaisaneng"),
        ("/staff/corrections", "Corrections récentes", "Litokiso tsa morao-rao"),
        ("/staff/jobs", "Surveillance", "Tlhokomelo"),
        ("/staff/tariffs", "Nouvelle version pour", "Mofuta o mocha bakeng sa"),
        ("/staff/statements?estate_id={estate}", "Émettre les relevés maintenant", "Ntša litatemente hona joale"),
        ("/staff/sources", "Copie du CRM UISP", "Kopi ea CRM ea UISP"),
        ("/staff/reconciliation", "Toutes les résidences, dernier jour", "Libaka tsohle, letsatsi la morao-rao"),
        ("/staff/settlement?estate_id={estate}", "Répartition entre les parties", "Kabo ho mekha"),
        ("/staff/metering/api-keys", "Nouvelle clé", "Senotlolo se secha"),
        ("/staff/webhooks", "Nouveau webhook", "Webhook e ncha"),
        ("/api/v1/docs", "Lisible par machine", "E balehang ke mochini"),
    ],
    "agent": [
        ("/agent/", "Résidences gérées", "Libaka tse laoloang"),
        ("/agent/units/{unit}", "Ce que vous pouvez faire", "Seo u ka se etsang"),
        ("/agent/units/{unit}", "depuis le 1 janvier 2024", "ho tloha ka 1 "),
        ("/agent/units/{unit}/move-in", "Faire emménager un locataire dans le logement", "Kenya mohiri yuniting"),
        ("/agent/units/{unit}/move-out", "Locataire depuis le 1 janvier 2024.", "Mohiri ho tloha ka 1 "),
        ("/agent/units/{unit}/readings", "Enregistrer le relevé", "Boloka palo"),
        ("/agent/estates/{estate}/bulk-topup", "Choisir les portefeuilles par filtre", "Khetha lisepache ka sefe"),
        ("/agent/estates/{estate}/refunds", "Remboursements de départ", "Likhutliso tsa chelete ha motho a tsoa"),
        ("/agent/api-keys", "Nouvelle clé", "Senotlolo se secha"),
        ("/agent/webhooks", "Nouveau webhook", "Webhook e ncha"),
    ],
    "family": [
        ("/family/", "Portefeuilles familiaux", "Lisepache tsa lelapa"),
        ("/family/units/{unit}", "Vous pouvez : voir les soldes", "U ka: bona chelete e setseng"),
        ("/family/units/{unit}/access", "Donner accès à quelqu'un", "Fa motho phihlello"),
        ("/family/units/{unit}/history", "Historique · Logement", "Nalane · Yuniti"),
        ("/family/units/{unit}/limits", "Plafonds de recharge par personne", "Meeli ea ho kenya chelete ka motho"),
        ("/family/groups", "Nouveau groupe", "Sehlopha se secha"),
        ("/family/topup", "Recharger un portefeuille", "Kenya chelete sepacheng"),
    ],
}


@pytest.fixture
def layer_logins(rented, committed) -> dict[str, str]:
    """An owner of the rented unit, a trustee of its estate, a staff member, an agent of the estate and a
    family manager of the unit's wallet: their emails."""
    from tests.helpers import make_login

    with committed() as s:
        from app.models import Unit

        unit = s.get(Unit, rented.unit_id)
        from app.models.families import WalletGrant

        family = make_login(s, full_name="Thabo Mokoena", phone=None)
        s.add(WalletGrant(unit_id=unit.id, user_id=family.id, level="manage", alert_channels=["in_app"]))
        return {"owner": make_login(s, "owner", unit=unit).email,
                "body_corporate": make_login(s, "body_corporate", estate=unit.estate).email,
                "staff": make_login(s, "staff").email,
                "agent": make_login(s, "agent", estate=unit.estate).email,
                "family": family.email}


@pytest.mark.parametrize("language", ["fr", "st"])
@pytest.mark.parametrize("role", list(_LAYER_PAGES))
def test_every_layers_pages_render_in_each_language(rented, layer_logins, login, role, language):
    client = login(layer_logins[role])
    token = csrf_from(client.get("/account").get_data(as_text=True))
    assert client.post("/language", data={"language": language, "csrf_token": token}).status_code == 302
    for path, french, sesotho in _LAYER_PAGES[role]:
        url = path.format(unit=rented.unit_id, estate=rented.estate_id, person=rented.person_id)
        response = client.get(url)
        page = response.get_data(as_text=True)
        assert response.status_code == 200, (url, response.status_code)
        assert f'<html lang="{language}">' in page, url
        assert (french if language == "fr" else sesotho) in page.replace("&#39;", "'"), (url, language)
        assert "%(" not in page and "%%" not in page, url


def test_the_body_corporate_dashboard_writes_money_the_french_way(rented, layer_logins, login):
    client = login(layer_logins["body_corporate"])
    token = csrf_from(client.get("/account").get_data(as_text=True))
    client.post("/language", data={"language": "fr", "csrf_token": token})
    page = client.get(f"/body-corporate/estates/{rented.estate_id}").get_data(as_text=True)
    assert "Charges appelées" in page and "0,00\u00a0LSL" in page


def test_staff_set_a_persons_language_on_the_admin_person_page(app, rented, layer_logins, login):
    client = login(layer_logins["staff"])
    url = f"/admin/estates/{rented.estate_id}/people/{rented.person_id}"
    page = client.get(url).get_data(as_text=True)
    assert 'name="language"' in page
    fields = {"full_name": "Palesa Mokoena", "email": rented.email, "phone": rented.phone, "csrf_token": csrf_from(page)}
    refused = client.post(url, data={**fields, "language": "de"})
    assert refused.status_code == 400 and "Choose one of the languages listed." in refused.get_data(as_text=True)
    assert client.post(url, data={**fields, "language": "st"}).status_code == 302
    with app.app_context():
        assert db.session.get(Person, rented.person_id).language == "st"
        db.session.remove()
    tenant_page = login(rented.email).get(f"/tenant/units/{rented.unit_id}").get_data(as_text=True)
    assert '<html lang="st">' in tenant_page
    assert client.post(url, data={**fields, "language": ""}).status_code == 302
    with app.app_context():
        assert db.session.get(Person, rented.person_id).language is None
        db.session.remove()


# --- utility pages in each language -------------------------------------------------------

# (path, French, Sesotho): a label each utility page shows translated.
_UTILITY_PAGES = [
    ("/utility/estates/{estate}", ">Général<", ">E kholo<"),
    ("/utility/estates/{estate}/losses", "<h1>Pertes", "<h1>Tahlehelo"),
    ("/utility/estates/{estate}/revenue", "<h1>Contrôle des recettes", "<h1>Tiiso ea chelete e kenang"),
    ("/utility/estates/{estate}/finance", "<h1>Finances de l'exploitant", "<h1>Lichelete tsa k'hamphani ea litšebeletso"),
    ("/utility/estates/{estate}/demand", "<h1>Puissance", "<h1>Tlhoko ea motlakase"),
    ("/utility/estates/{estate}/profiles", "<h1>Profils de consommation", "<h1>Mekhoa ea tšebeliso"),
    ("/utility/estates/{estate}/carbon", "<h1>Empreinte carbone", "<h1>Mohlala oa khabone"),
    ("/utility/estates/{estate}/solar", "<h1>Solaire partagé", "<h1>Matla a letsatsi a arolelanoang"),
]


@pytest.fixture
def utility_login(rented, committed) -> str:
    """A utility user of the rented unit's estate, which has one open revenue case on the unit's meter."""
    from datetime import date as day

    from sqlalchemy import select

    from app.models import Meter, Unit
    from app.models.utility import RevenueCase
    from tests.helpers import make_login

    with committed() as s:
        unit = s.get(Unit, rented.unit_id)
        meter = s.scalar(select(Meter).where(Meter.unit_id == unit.id))
        s.add(RevenueCase(estate_id=unit.estate_id, meter_id=meter.id, unit_id=unit.id, opened_on=day(2026, 11, 30),
                          score=70, parts=[{"rule": "zero_use", "points": 70, "why": "30 h"}], note=""))
        return make_login(s, "utility", estate=unit.estate).email


@pytest.mark.parametrize("language", ["fr", "st"])
def test_utility_pages_render_in_each_language(rented, utility_login, login, language):
    client = login(utility_login)
    token = csrf_from(client.get("/account").get_data(as_text=True))
    assert client.post("/language", data={"language": language, "csrf_token": token}).status_code == 302
    for path, french, sesotho in _UTILITY_PAGES:
        url = path.format(estate=rented.estate_id)
        response = client.get(url)
        page = response.get_data(as_text=True).replace("&#39;", "'")
        assert response.status_code == 200, (url, response.status_code)
        assert f'<html lang="{language}">' in page, url
        assert (french if language == "fr" else sesotho) in page, (url, language)
        assert "%(" not in page and "%%" not in page, url
        if path.endswith("/revenue"):  # the case, with its form
            assert 'class="card case"' in page and (">Enregistrer<" if language == "fr" else ">Boloka<") in page
    # the exports' column headings are in the reader's language too (module-level lazy_gettext columns)
    csv = client.get(f"/utility/estates/{rented.estate_id}/losses?format=csv").get_data(as_text=True)
    assert csv.lstrip("\ufeff").startswith("Période,Général," if language == "fr" else "Nako,E kholo,")
    assert client.get(f"/utility/estates/{rented.estate_id}/revenue?table=cases&format=pdf").status_code == 200


def test_error_pages_are_in_the_readers_language_and_the_api_stays_english(client):
    french = {"Accept-Language": "fr"}
    page = client.get("/no/such/page", headers=french)
    assert page.status_code == 404 and "Introuvable" in page.get_data(as_text=True)
    refused = client.post("/language", data={"language": "fr"}, headers=french)  # no CSRF token
    assert refused.status_code == 400 and "Formulaire expiré" in refused.get_data(as_text=True)
    api = client.get("/api/v1/no-such-thing", headers=french)
    assert api.status_code == 404 and api.is_json and "Introuvable" not in api.get_data(as_text=True)
