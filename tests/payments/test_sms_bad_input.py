"""SMS gateway bad input (issue 11, items 2 and 6): each message is handled on its own, a
bad one is refused with its reason, the rest of the poll is stored, and nothing gives a 500."""
from __future__ import annotations

import itertools
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import func, select, text

from app.extensions import db
from app.models import Notification
from app.models.payments import Payment, SmsMessage
from tests.payments.test_mpesa_parse import DOCUMENTED
from tests.payments.test_sms_gateway import URL, auth, balance, gateway_credentials  # noqa: F401


def confirmation(txn: str = "5L956Z39DJ", amount: str = "1.00", reference: str = "315103084",
                 name: str = "Tamer Teker") -> str:
    return (DOCUMENTED.replace("5L956Z39DJ", txn).replace("M1.00", f"M{amount}")
            .replace("315103084", reference).replace("Tamer Teker", name))


def post(client, messages, updates=()):
    return client.post(URL, json={"messages": list(messages), "updates": list(updates)},
                       headers=auth())


def stored(app) -> dict[str, tuple[str, str | None]]:
    with app.app_context():
        rows = db.session.execute(select(SmsMessage.gateway_id, SmsMessage.outcome,
                                         SmsMessage.reason)).all()
        db.session.remove()
    return {gateway_id: (outcome, reason) for gateway_id, outcome, reason in rows}


def test_bad_messages_are_refused_one_by_one_and_the_good_one_is_credited(app, kit, client):
    valid = {"id": "good", "from": "MPESA", "content": DOCUMENTED, "sms_sent": 1544338740000}
    long_id = "x" * 150
    batch = [
        {"id": "long-ref", "from": "MPESA", "content": confirmation("6A111Z39DJ", reference="R" * 150)},
        {"id": "long-name", "from": "MPESA", "content": confirmation("6A111Z39DK", name="Tamer " * 40)},
        {"id": "huge-amount", "from": "MPESA", "content": confirmation("6A111Z39DL", amount="1" * 20)},
        {"id": "nul", "from": "MPESA", "content": "\x00" + confirmation("6A111Z39DM", amount="2.00")},
        {"id": "nul-from", "from": "MP\x00ESA", "content": confirmation("6A111Z39DO", amount="9.00")},
        {"id": "nested", "from": "MPESA", "content": json.loads("[" * 500 + "]" * 500)},
        {"id": "no-text", "from": ["MPESA"], "content": "hello"},
        {"id": "\ud800bad-surrogate", "from": "MPESA", "content": "hi \udfff"},
        {"from": "MPESA", "content": "no id"},
        "not an object",
        {"id": long_id, "from": "MPESA", "content": confirmation("6A111Z39DN", amount="3.00")},
        {"id": "time", "from": "MPESA", "content": "nothing", "sms_sent": 10**30},
        valid,
    ]
    updates = [{"id": "mw-99999999999", "status": "SENT"}, {"id": "mw-²", "status": "SENT"},
               {"id": ["mw-1"], "status": {"x": 1}}, "not an object"]
    response = post(client, batch, updates)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(response.get_json()["messages"]) == 3  # receipts: good, nul (stripped), long id
    rows = stored(app)
    assert rows["long-ref"] == ("refused", "the reference is longer than 100 characters")
    assert rows["long-name"] == ("refused", "the payer's name is longer than 200 characters")
    assert rows["huge-amount"] == ("refused", "the amount is larger than any payment can be")
    assert rows["nul"] == ("payment", "matched by phone 26657755403")  # the NUL is dropped
    assert rows["nul-from"] == ("suspicious", "suspicious: sent by MPESA, not by an M-PESA sender id "
                                              "(M-PESA, MPESA); not credited")  # stored without the NUL
    assert rows["nested"] == ("refused", "the content is not text")
    assert rows["no-text"] == ("refused", "the sender is not text")
    assert rows["?bad-surrogate"][0] == "ignored"
    assert rows["time"] == ("ignored", "not an incoming payment confirmation")
    assert rows["good"] == ("payment", "matched by phone 26657755403")
    refused_unnamed = [v for k, v in rows.items() if k.startswith("sha256:") and v[0] == "refused"]
    assert sorted(refused_unnamed) == [("refused", "the message has no id"),
                                       ("refused", "the message is not a JSON object")]
    assert [v for k, v in rows.items() if k.startswith("sha256:") and v[0] == "payment"] == [
        ("payment", "matched by phone 26657755403")]  # the over-long id, kept as a digest
    assert balance(app, kit.pocket_id) == Decimal("6.00")

    # The gateway retries the same poll: nothing is stored or credited twice.
    again = post(client, batch, updates)
    assert again.status_code == 200
    assert stored(app) == rows
    assert balance(app, kit.pocket_id) == Decimal("6.00")


def test_a_message_failing_in_the_database_is_refused_alone(app, kit, client, monkeypatch):
    """Whatever breaks inside one message's savepoint rolls back only that message."""
    from app.payments import mpesa_sms

    real = mpesa_sms.match_unit

    def exploding(session, reference, phone, **options):
        if reference == "BOOM":
            session.execute(text("SELECT 'not a number'::integer"))  # a DataError
        return real(session, reference, phone, **options)

    monkeypatch.setattr(mpesa_sms, "match_unit", exploding)
    response = post(client, [
        {"id": "boom", "from": "MPESA", "content": confirmation("6A111Z39DJ", reference="BOOM")},
        {"id": "good", "from": "MPESA", "content": DOCUMENTED}])
    assert response.status_code == 200
    rows = stored(app)
    assert rows["boom"] == ("refused", "could not be processed (DataError)")
    assert rows["good"][0] == "payment"
    with app.app_context():
        assert db.session.scalar(select(Payment.provider_ref)) == "5L956Z39DJ"
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 1
        db.session.remove()


def test_a_body_nested_beyond_reading_is_a_400(client):
    response = client.post(URL, data="[" * 100_000, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json() == {"error": True, "message": "the body is nested too deeply to read"}


def test_an_integer_too_long_for_python_is_refused_in_its_message(app, kit, client):
    body = ('{"messages": [{"id": ' + "9" * 5000 + ', "from": "MPESA", "content": "x"}, '
            '{"id": "good", "from": "MPESA", "content": ' + json.dumps(DOCUMENTED) + '}]}')
    response = client.post(URL, data=body, headers={**auth(), "Content-Type": "application/json"})
    assert response.status_code == 200
    assert stored(app)["good"][0] == "payment"


def test_a_failed_receipt_reason_with_nul_bytes_is_stored(app, kit, client):
    (receipt,) = post(client, [{"id": "good", "from": "MPESA", "content": DOCUMENTED}]).get_json()["messages"]
    response = post(client, [], [{"id": receipt["id"], "status": "FAILED", "reason": "no\x00 signal"}])
    assert response.status_code == 200
    with app.app_context():
        assert db.session.scalar(select(Notification.error).where(Notification.channel == "sms")) == "no signal"
        db.session.remove()


# --- fuzz: never a 5xx, nothing half-written ---------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)
nasty_text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800", "9", "M"]),
                     max_size=300)
contents = st.one_of(
    nasty_text,
    st.builds(confirmation, txn=st.from_regex(r"[A-Z0-9]{8,12}", fullmatch=True),
              amount=st.from_regex(r"[0-9]{1,30}(\.[0-9]{1,2})?", fullmatch=True),
              reference=st.from_regex(r"[A-Za-z0-9/-]{1,160}", fullmatch=True),
              name=st.from_regex(r"[A-Za-z][A-Za-z .'-]{0,250}", fullmatch=True)),
    json_values)
messages = st.one_of(
    st.fixed_dictionaries({"content": contents}, optional={
        "id": st.text(max_size=120) | st.integers() | json_values,
        "from": st.sampled_from(["MPESA", "m-pesa", "+27820000001", ""]) | nasty_text | json_values,
        "sms_sent": st.integers() | st.floats() | st.text(max_size=12) | json_values}),
    json_values)
updates = st.one_of(
    st.fixed_dictionaries({}, optional={
        "id": st.from_regex(r"mw-[0-9]{1,20}", fullmatch=True) | st.text(max_size=20) | json_values,
        "status": st.sampled_from(["SENT", "DELIVERED", "FAILED", "PENDING"]) | json_values,
        "reason": nasty_text | json_values}),
    json_values)

_serial = itertools.count(1)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(messages, max_size=5), fuzzed_updates=st.lists(updates, max_size=3),
       position=st.integers(min_value=0, max_value=5))
def test_fuzzed_polls_never_give_a_5xx_and_keep_the_valid_message(app, kit, client, batch,
                                                                   fuzzed_updates, position):
    serial = next(_serial)
    txn = f"VALID{serial:05d}"
    valid = {"id": f"valid-{serial}", "from": "MPESA", "content": confirmation(txn)}
    batch.insert(min(position, len(batch)), valid)
    response = post(client, batch, fuzzed_updates)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    with app.app_context():
        row = db.session.scalar(select(SmsMessage).where(SmsMessage.gateway_id == valid["id"]))
        assert row is not None and row.outcome == "payment", row and row.reason
        payment = db.session.get(Payment, row.payment_id)
        assert (payment.provider_ref, payment.status) == (txn, "credited"), payment.status_reason
        # Nothing half-written: every payment belongs to one stored SMS that names it.
        orphans = db.session.scalar(select(func.count()).select_from(Payment).where(
            ~Payment.id.in_(select(SmsMessage.payment_id).where(SmsMessage.payment_id.is_not(None)))))
        assert orphans == 0
        assert all(p.status in ("credited", "unmatched") for p in db.session.scalars(select(Payment)))
        db.session.remove()
