"""Fuzzed PayFast ITNs (issue 11, item 6): never a 5xx, and nothing half-written.

Each example mutates a genuine ITN (a field set to a hostile value, a field added or
repeated), sometimes re-signed and vouched for by the emulator so it reaches the deep
paths (lookup, amount, crediting). Afterwards every credited payment has exactly its one
ledger transaction and the pockets hold exactly what was credited.
"""
from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.models import Account, LedgerTransaction
from app.models.payments import Payment
from app.payments import payfast
from tests.payments.test_payfast import post_itn, resign, start_payment

FIELDS = ("m_payment_id", "pf_payment_id", "payment_status", "item_name", "amount_gross",
          "amount_fee", "amount_net", "custom_str1", "custom_int1", "name_first", "name_last",
          "email_address", "merchant_id", "signature")
HOSTILE = st.one_of(
    st.text(max_size=30),
    st.integers(0, 3000).map(lambda n: "x" * n),  # over every column size
    st.sampled_from(["", "\x00", "60.00\x00", " 60.00 ", "1e999999", "-1e999999", "NaN", "Infinity",
                     "9" * 40, "60,00", "６０.00", "0x3c", "[" * 5000, "COMPLETE", "60.00"]),
)
mutation = st.tuples(
    st.sampled_from(("set", "add", "repeat", "drop")),
    st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=20), st.just("\x00")),
    HOSTILE,
    st.booleans(),  # re-sign it (as a forger holding the passphrase could)
    st.integers(0, 2),  # which pending payment
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(change=mutation)
def test_fuzzed_itns_never_fail_the_server(app, kit, payfast_gateway, client, change):
    if not hasattr(payfast_gateway, "checkouts"):  # once per test, not per example
        payfast_gateway.checkouts = [start_payment(app, kit, "60.00") for _ in range(3)]
    how, name, value, signed, which = change
    itn = payfast_gateway.state.make_itn(payfast_gateway.checkouts[which])
    if how == "set":
        itn = [(k, value if k == name else v) for k, v in itn]
    elif how == "add":
        itn = itn + [(name, value)]
    elif how == "repeat":
        itn = itn + [(k, value) for k, v in itn if k == name]
    else:
        itn = [(k, v) for k, v in itn if k != name]
    if signed:
        itn = resign(itn)
        payfast_gateway.state.vouched.add(payfast.param_string(itn))

    response = post_itn(client, itn)
    assert response.status_code < 500, response.get_data(as_text=True)[:300]

    with app.app_context():
        credited = db.session.scalars(select(Payment).where(Payment.status == "credited")).all()
        keys = db.session.scalars(select(LedgerTransaction.idempotency_key)
                                  .where(LedgerTransaction.idempotency_key.like("payfast:%"))).all()
        assert sorted(keys) == sorted(p.idempotency_key for p in credited)
        assert all(p.transaction_id for p in credited)
        pocket = db.session.scalar(select(Account.balance).where(Account.id == kit.pocket_id))
        assert pocket == sum((p.amount for p in credited), Decimal(0))
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 3
        db.session.remove()
