"""Two-way SMS (T5): BAL, USE and HELP in three languages through the gateway endpoint."""
from __future__ import annotations

import base64
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.models import LedgerTransaction, Notification, Person, Tenancy
from app.models.payments import SmsMessage
from app.notify.sms_commands import KEYWORDS, REPLIES_PER_HOUR, parse_command

URL = "/webhooks/sms"
PASSWORD = "gateway-secret"
_ids = iter(range(10**6))


@pytest.fixture(autouse=True)
def gateway_credentials(app, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_GATEWAY_USER", "gateway")
    monkeypatch.setitem(app.config, "SMS_GATEWAY_PASSWORD", PASSWORD)


def auth() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"gateway:{PASSWORD}".encode()).decode()}


def text(client, sender: str, content: str) -> list[dict]:
    """Relay one SMS; return the outgoing messages the gateway is given to send."""
    body = {"messages": [{"id": f"in-{next(_ids)}", "from": sender, "content": content,
                          "sms_sent": 1764662400000, "sms_received": 1764662401000}], "updates": []}
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 200, response.get_data(as_text=True)
    outgoing = response.get_json()["messages"]
    # The gateway reports them sent, as a phone does on its next poll: they are not offered again.
    client.post(URL, json={"messages": [], "updates": [{"id": m["id"], "status": "SENT"} for m in outgoing]},
                headers=auth())
    return outgoing


@pytest.mark.parametrize("typed,kind,language", [
    ("BAL", "balance", "en"), ("  bal ", "balance", "en"), ("Balance", "balance", "en"),
    ("USE", "use", "en"), ("usage", "use", "en"), ("help", "help", "en"),
    ("SOLDE", "balance", "fr"), ("conso", "use", "fr"), ("Consommation", "use", "fr"), ("aide", "help", "fr"),
    ("CHELETE", "balance", "st"), ("tšebeliso", "use", "st"), ("Tsebeliso", "use", "st"), ("thuso", "help", "st"),
])
def test_keywords_in_three_languages(typed, kind, language):
    assert parse_command(typed) == parse_command(typed.upper())
    command = parse_command(typed)
    assert (command.kind, command.language, command.unit_ref) == (kind, language, None)


def test_a_unit_may_follow_the_keyword_and_anything_else_is_unknown():
    assert parse_command("bal   a03").unit_ref == "A03"
    for typed in ("", "hello", "BAL A03 please", "BALX", "B A L", "BAL <script>", "x" * 500):
        assert parse_command(typed).kind == "unknown", typed
    assert {lang for _kind, lang in KEYWORDS.values()} == {"en", "fr", "st"}


def test_bal_answers_with_the_dashboard_figures_in_the_persons_language(app, rented, client, committed, login):
    from app.i18n.formatting import money_text
    from app.models import Unit
    from app.reports.usage import unit_dashboard

    with committed() as s:
        s.get(Person, rented.person_id).language = "st"
    replies = text(client, rented.phone, "chelete")
    assert [r["to"] for r in replies] == [rented.phone]
    with app.app_context():
        pockets = unit_dashboard(db.session, db.session.get(Unit, rented.unit_id)).pockets
        expected = [money_text(p.balance, p.commodity, "st") for p in pockets]
        db.session.remove()
    content = replies[0]["content"]
    assert content.startswith(f"Chelete e setseng ea yuniti {rented.unit_number}.")
    assert "Motlakase" in content and all(figure in content for figure in expected)
    # The dashboard shows the same balances.
    page = login(rented.email).get(f"/tenant/units/{rented.unit_id}").get_data(as_text=True)
    assert all(figure in page for figure in expected)


def test_use_and_help_replies(app, rented, client):
    use = text(client, rented.phone, "USE")[0]["content"]
    assert use.startswith(f"Unit {rented.unit_number} use.") and "today" in use and "this week" in use
    help_text = text(client, rented.phone, "aide")[0]["content"]  # the person has no language: English
    assert "paybill 400200" in help_text and "Text BAL for your balance" in help_text
    with app.app_context():
        rows = db.session.scalars(select(SmsMessage).order_by(SmsMessage.id)).all()
        assert [(r.outcome, r.reason) for r in rows] == [("command", "use: answered (sms_use)"),
                                                         ("command", "help: answered (sms_help)")]
        assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 0  # never credits
        db.session.remove()


def test_unknown_phone_is_answered_once_in_the_keywords_language(app, rented, client):
    first = text(client, "+26650009999", "SOLDE")
    assert len(first) == 1 and first[0]["to"] == "+26650009999"
    assert first[0]["content"].startswith("Meterwise. Ce numéro n'est lié à aucun logement.")
    assert text(client, "+26650009999", "SOLDE") == []  # rate-limited: one reply a day
    with app.app_context():
        last = db.session.scalars(select(SmsMessage).order_by(SmsMessage.id.desc())).first()
        assert "not answered" in last.reason
        db.session.remove()


def test_a_number_sharing_only_the_last_digits_is_a_stranger(rented, client):
    # Same eight last digits, another country: never matched on a suffix.
    reply = text(client, "+27657755403", "BAL")
    assert len(reply) == 1 and "not linked to a unit" in reply[0]["content"]


def test_replies_to_a_known_phone_are_rate_limited(rented, client):
    answered = [text(client, rented.phone, "BAL") for _ in range(REPLIES_PER_HOUR + 2)]
    assert [len(replies) for replies in answered] == [1] * REPLIES_PER_HOUR + [0, 0]


def test_a_phone_with_two_units_is_asked_to_choose(app, rented, client, committed):
    from tests import factories

    with committed() as s:
        from app.models import Estate
        second = factories.make_unit(s, s.get(Estate, rented.estate_id), number="B12")
        factories.make_wallet(s, second)
        s.add(Tenancy(unit_id=second.id, person_id=rented.person_id, move_in=date(2024, 1, 1)))
    choose = text(client, rented.phone, "BAL")[0]["content"]
    assert choose.startswith("Which unit?") and "B12" in choose and rented.unit_number in choose
    named = text(client, rented.phone, "bal b12")[0]["content"]
    assert named.startswith("Unit B12 balance.")


def test_sender_ids_and_payment_senders_are_never_answered(app, rented, client):
    assert text(client, "MPESA", "BAL") == []
    assert text(client, "Vodacom", "Your bundle expires tomorrow") == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
        db.session.remove()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sender=st.one_of(st.text(max_size=20), st.from_regex(r"\+?[0-9]{6,16}", fullmatch=True), st.integers()),
       content=st.one_of(st.text(max_size=80), st.sampled_from(list(KEYWORDS)).map(lambda w: f" {w.lower()}  x1 "),
                         st.none(), st.lists(st.integers(), max_size=3)))
def test_inbound_commands_fuzzed_never_fail(rented, client, sender, content):
    body = {"messages": [{"id": f"fz-{next(_ids)}", "from": sender, "content": content}], "updates": []}
    response = client.post(URL, json=body, headers=auth())
    assert response.status_code == 200
    assert all(set(m) == {"id", "to", "content"} for m in response.get_json()["messages"])
