"""Exports fit the page and use the estate's timezone; every time shown is local or labelled (X5, C10)."""
from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.platypus import Paragraph

from app.models import Account, Notification, RoleGrant, User
from app.reports.pdf import data_table, render_table_pdf
from tests import factories
from tests.helpers import make_login

LONG_MEMO = ("PayFast top-up R 1 250.00: electricity R 800.00, water R 300.00, hot water R 150.00 "
             "(pf-20261101-000042-reference-that-keeps-going) paid from the family account of the Dlamini household")


def _runs(data: bytes) -> list[tuple[float, float, str, float]]:
    """(x where the text starts, its width, the text, the page width) for every text run drawn."""
    runs = []
    for page in PdfReader(io.BytesIO(data)).pages:
        width = float(page.mediabox.width)

        def visit(text, cm, tm, font, size, width=width):
            if text.strip():
                x = tm[4] * cm[0] + cm[4]
                name = str(font.get("/BaseFont", "/Helvetica")).lstrip("/") if font else "Helvetica"
                runs.append((x, stringWidth(text, name, size * tm[0] * cm[0] if size else 8.5), text, width))
        page.extract_text(visitor_text=visit)
    return runs


def test_the_transactions_pdf_fits_the_page_and_is_in_local_time(home, login, committed):
    with committed() as s:
        factories.make_topup(s, s.get(Account, home.pocket), "1250.00", clearing=s.get(Account, home.clearing),
                             memo=LONG_MEMO, occurred_at=datetime(2026, 11, 1, 20, 3, tzinfo=UTC))
    response = login(home.tenant).get(f"/tenant/units/{home.unit}/transactions?format=pdf")
    assert response.status_code == 200
    runs = _runs(response.data)
    text = " ".join(r[2] for r in runs)
    assert "01 Nov 2026 22:03" in text and "20:03" not in text  # Johannesburg, not UTC
    assert "01 Sep 2026 08:00" in text and "Africa/Johannesburg" in text
    clipped = [(round(x), round(w), t) for x, w, t, page in runs if x < 0 or x + w > page + 0.5]
    assert clipped == []
    assert "Dlamini" in text  # the long memo wrapped rather than ran off the page


def test_the_transactions_csv_is_in_local_time(home, login):
    text = login(home.tenant).get(f"/tenant/units/{home.unit}/transactions?format=csv").get_data(as_text=True)
    assert "2026-09-01T08:00:00+02:00" in text and "+00:00" not in text


def test_a_wide_export_table_is_laid_out_within_the_page():
    columns = [f"Column number {i}" for i in range(9)]
    rows = [[LONG_MEMO if i == 4 else f"value {i} of a row" for i in range(9)] for _ in range(30)]
    runs = _runs(render_table_pdf("Wide", columns, rows, timezone="Africa/Maseru"))
    assert [t for x, w, t, page in runs if x < 0 or x + w > page + 0.5] == []
    text = " ".join(" ".join(t.split()) for *_, t, _ in runs)
    assert "Column number 0" in text and "Column number 8" in text


def test_a_given_column_width_too_narrow_for_its_text_wraps():
    table = data_table(["Kind", "Memo"], [["standing_charge", "short"]], widths=[12 * mm, 40 * mm])
    assert isinstance(table._cellvalues[1][0], Paragraph) and table._cellvalues[1][1] == "short"


@pytest.fixture
def inbox(home, committed):
    """A notification for Ayanda created at 20:03 UTC, and a staff login over estates in two zones."""
    with committed() as s:
        s.add(Notification(user_id=home.tenant_id, channel="in_app", template="payment_receipt",
                           subject="Payment received: R 150.00", body="We received R 150.00.",
                           created_at=datetime(2026, 11, 3, 20, 3, tzinfo=UTC)))
        factories.make_estate(s, timezone="Africa/Abidjan", currency="XOF")
        staff = make_login(s, "staff")
        s.add(Notification(user_id=staff.id, channel="in_app", template="ledger_verify_failed",
                           subject="Ledger check", body="ok", created_at=datetime(2026, 11, 3, 20, 3, tzinfo=UTC)))
        return staff.email


def test_the_inbox_shows_a_tenant_their_estates_time(home, inbox, login):
    page = login(home.tenant).get("/notifications").get_data(as_text=True)
    assert "03 Nov 2026 22:03" in page and "20:03" not in page
    assert "22:03 SAST" not in page  # one zone: no label needed


def test_staff_across_zones_see_times_labelled(inbox, login):
    page = login(inbox).get("/notifications").get_data(as_text=True)
    assert "03 Nov 2026 20:03 UTC" in page


def test_the_local_time_filter_labels_only_when_the_zone_is_not_plainly_the_viewers(app, home, committed):
    from flask_login import login_user

    from app.presenters import local_time

    moment = datetime(2026, 11, 3, 20, 3, tzinfo=UTC)
    with app.test_request_context():
        login_user(_user(home.tenant_id))
        assert local_time(moment) == "03 Nov 2026 22:03"
        assert local_time(moment, "Africa/Johannesburg") == "03 Nov 2026 22:03"
        assert local_time(moment, "Africa/Abidjan") == "03 Nov 2026 20:03 GMT"
        assert local_time(moment, None, "%d %b %Y") == "03 Nov 2026"
    with app.test_request_context():  # nobody signed in: UTC, labelled
        assert local_time(moment) == "03 Nov 2026 20:03 UTC"
    with committed() as s:  # Maseru keeps Johannesburg's clock: one clock, no label
        maseru = factories.make_estate(s, timezone="Africa/Maseru", currency="LSL")
        s.add(RoleGrant(user_id=home.tenant_id, role="tenant", estate_id=maseru.id))
    with app.test_request_context():
        login_user(_user(home.tenant_id))
        assert local_time(moment) == "03 Nov 2026 22:03"
        assert local_time(moment, "Africa/Maseru") == "03 Nov 2026 22:03"


def _user(user_id: int) -> User:
    from app.extensions import db

    return db.session.get(User, user_id)
