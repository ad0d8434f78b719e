"""Fuzzed EFT statement uploads (issue 11, item 6): never a 5xx, and nothing half-written.

Each example uploads a statement whose rows are built from hostile cells (NUL, line breaks,
quotes, huge or non-numeric amounts, over-long fields) through the staff page. Every row
is reported exactly once, and only rows reported as imported exist as payments.
"""
from __future__ import annotations

import io
import re

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.extensions import db
from app.models import LedgerTransaction
from app.models.payments import Payment
from tests.helpers import csrf_from

CELL = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", "\x00", "\r", "\n", '"', '"unterminated', "1e30", "-5", "NaN", "Infinity",
                     "9" * 25, "0.0000001", "12,50", "1 000.00", "2026-11-02", "02/11/2026",
                     "9999-99-99", "A01", "\ufeff"]),
    st.integers(0, 140_000).map(lambda n: "x" * n),
)
ROW = st.tuples(CELL, CELL, CELL, CELL)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(ROW, max_size=4), raw=st.booleans(), header=st.sampled_from(
    ["date,amount,reference,bank_ref", "Date,Amount,Reference,Bank_Ref,Extra", "date,amount\x00,ref,id"]))
@example(rows=[("2026-11-02", "100.00", "nobody", "FUZZ-OK-1")], raw=False,  # one row that imports, every run
         header="date,amount,reference,bank_ref")
def test_fuzzed_statements_never_fail_the_server(app, kit, login, rows, raw, header):
    if not hasattr(kit, "staff"):  # one login per test, not per example
        kit.staff = login(kit.staff_email)
        kit.token = csrf_from(kit.staff.get("/staff/payments").get_data(as_text=True))
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Payment))
        db.session.remove()
    # raw: cells written as they are (breaking the CSV); otherwise quoted as a bank would.
    body = "\n".join([header] + [",".join(c if raw else '"' + c.replace('"', '""') + '"' for c in row)
                                 for row in rows])
    response = kit.staff.post("/staff/payments/eft/statement", data={
        "csrf_token": kit.token, "statement": (io.BytesIO(body.encode("utf-8", "surrogatepass")), "s.csv")},
        content_type="multipart/form-data")
    assert response.status_code < 500, response.get_data(as_text=True)[:300]

    with app.app_context():
        after = db.session.scalar(select(func.count()).select_from(Payment))
        summary = re.search(r"(\d+) imported, \d+ duplicate", response.get_data(as_text=True))
        imported = int(summary.group(1)) if summary else 0  # the report's own count of imported rows
        assert after - before == (imported if response.status_code == 200 else 0)
        # Nothing is credited by an import: only a person's confirmation credits.
        assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 0
        db.session.remove()
