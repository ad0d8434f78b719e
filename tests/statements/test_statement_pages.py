"""Statement pages: downloads are scope-checked, staff see runs and failures, AGM report, exports."""
import csv
import io
from datetime import date
from decimal import Decimal

from flask import url_for
from sqlalchemy import select

from app.models import Statement, Tenancy, Unit
from tests.factories import make_estate_with_wallet, make_period
from tests.statements.test_statement_runs import PERIOD, month_of_activity, pdf_text
from tests.helpers import make_login


def url(app, endpoint, **values):
    with app.test_request_context():
        return url_for(endpoint, **values)


def test_tenant_downloads_own_statements_and_not_a_neighbours(app, committed, login):
    with committed() as s:
        kit = month_of_activity(s)
        other = make_estate_with_wallet(s)
        login_user = make_login(s, "tenant", unit=kit.unit)
        # A tenant gets the months their tenancy touches (app/reports/history.py).
        s.add(Tenancy(unit_id=kit.unit.id, person_id=login_user.person_id, move_in=date(2025, 6, 1)))
        tenant = login_user.email
        ids = kit.unit.id, other.unit.id
    mine, theirs = ids
    client = login(tenant)
    page = client.get(url(app, "tenant.statements", unit_id=mine)).get_data(as_text=True)
    assert "January 2026" in page and "December 2025" not in page  # from the first movement on
    response = client.get(url(app, "tenant.statement_download", unit_id=mine, period=PERIOD))
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    assert "R 1 149.00" in text and "PROVISIONAL" in text  # not issued yet
    assert client.get(url(app, "tenant.statement_download", unit_id=theirs, period=PERIOD)).status_code == 404
    assert client.get(url(app, "tenant.statement_download", unit_id=mine, period="2099-01")).status_code == 404  # not begun; 2999 is no month (400)
    assert client.get(url(app, "owner.statement_download", unit_id=mine, period=PERIOD)).status_code == 404


def test_owner_gets_the_archived_pdf_once_issued(app, committed, login):
    from app.statements.runs import start_run
    with committed() as s:
        kit = month_of_activity(s)
        owner = make_login(s, "owner", unit=kit.unit).email
        unit_id = kit.unit.id
    with app.app_context():
        from app.extensions import db
        start_run(db.session.get(Unit, unit_id).estate, PERIOD)
    client = login(owner)
    page = client.get(url(app, "owner.statements", unit_id=unit_id)).get_data(as_text=True)
    assert "issued" in page
    response = client.get(url(app, "owner.statement_download", unit_id=unit_id, period=PERIOD))
    with committed() as s:
        archived = s.scalar(select(Statement).where(Statement.unit_id == unit_id))
        assert response.data == archived.pdf
    assert "PROVISIONAL" not in pdf_text(response.data)


def test_staff_page_runs_the_month_and_shows_failed_emails(app, committed, login):
    with committed() as s:
        kit = month_of_activity(s)
        staff = make_login(s, "staff").email
        estate_id, code = kit.estate.id, kit.estate.code
    client = login(staff)
    page = client.get(url(app, "staff.statements", estate_id=estate_id, period=PERIOD))
    assert page.status_code == 200 and "not issued" in page.get_data(as_text=True)
    from tests.helpers import csrf_from
    token = csrf_from(page.get_data(as_text=True))
    saved = app.config["MAIL_URL"]
    app.config["MAIL_URL"] = "smtp://127.0.0.1:1"  # nothing listens: every email fails
    try:
        response = client.post(url(app, "staff.run_statements", estate_id=estate_id, period=PERIOD),
                               headers={"X-CSRFToken": token, "HX-Request": "true"})
    finally:
        app.config["MAIL_URL"] = saved
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "failed" in body and "not sent" in body
    page = client.get(url(app, "staff.statements", estate_id=estate_id, period=PERIOD)).get_data(as_text=True)
    assert "2 waiting" in page and "ConnectionRefusedError" in page
    exported = client.get(url(app, "staff.statements", estate_id=estate_id, period=PERIOD, format="csv"))
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0]["Emails waiting"] == "2" and rows[0]["Unit"]
    pdf = client.get(url(app, "staff.statements", estate_id=estate_id, period=PERIOD, format="pdf"))
    assert pdf.mimetype == "application/pdf" and f"Statements {code} {PERIOD}" in pdf_text(pdf.data)
    assert client.get(url(app, "staff.statements", estate_id=estate_id, period=PERIOD, format="xls")).status_code == 400
    future = client.post(url(app, "staff.run_statements", estate_id=estate_id, period="2999-01"),
                         headers={"X-CSRFToken": token})
    assert future.status_code == 400


def test_body_corporate_audit_report_pdf(app, committed, login):
    with committed() as s:
        kit = month_of_activity(s)
        make_period(s, kit.estate, PERIOD, "locked")
        trustee = make_login(s, "body_corporate", estate=kit.estate).email
        other = make_estate_with_wallet(s)
        ids = kit.estate.id, other.estate.id
    mine, theirs = ids
    client = login(trustee)
    response = client.get(url(app, "body_corporate.audit_report", estate_id=mine, period=PERIOD))
    assert response.status_code == 200
    text = pdf_text(response.data)
    assert "Audit report" in text and "Verified" in text and "LEDGER OK" in text
    assert "PayFast top-up R 1 234.50" in text and "All transactions (3)" in text
    assert "locked" in text and "consumption" in text
    assert client.get(url(app, "body_corporate.audit_report", estate_id=theirs, period=PERIOD)).status_code == 404
    ranged = client.get(url(app, "body_corporate.reports", estate_id=mine) + "?from=2025-12&to=2026-01")
    assert ranged.status_code == 302
    assert client.get(ranged.headers["Location"]).status_code == 200
    bad = client.get(url(app, "body_corporate.audit_report", estate_id=mine, period="2026-02") + "?to=2026-01")
    assert bad.status_code == 400


def test_exports_of_unit_transactions_and_owner_portfolio(app, committed, login):
    with committed() as s:
        kit = month_of_activity(s)
        owner = make_login(s, "owner", unit=kit.unit).email
        other = make_estate_with_wallet(s)
        ids = kit.unit.id, other.unit.id, kit.unit.number
    mine, theirs, number = ids
    client = login(owner)
    response = client.get(url(app, "owner.transactions_export", unit_id=mine, format="csv"))
    assert response.headers["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert [(r["Kind"], r["Amount"], r["Amount unit"]) for r in rows] == [
        ("Use", "-28.50", "ZAR"), ("Use", "-57.00", "ZAR"), ("Top-up", "1234.50", "ZAR")]
    pdf = client.get(url(app, "owner.transactions_export", unit_id=mine, format="pdf"))
    assert "R 1 234.50" in pdf_text(pdf.data) and f"Transactions unit {number}" in pdf_text(pdf.data)
    assert client.get(url(app, "owner.transactions_export", unit_id=theirs, format="csv")).status_code == 404
    portfolio = client.get(url(app, "owner.units_export", format="csv")).get_data(as_text=True)
    assert number in portfolio and "Electricity R 1 149.00".replace(" 1 ", " 1\u202f") in portfolio


def test_csv_cells_that_look_like_formulas_are_written_as_text():
    from app.reports.export import Column, to_csv
    text = to_csv([{"memo": "=HYPERLINK(\"http://x\")", "n": Decimal("-5")}],
                  [Column("Memo", lambda r: r["memo"]), Column("N", lambda r: r["n"], numeric=True)])
    assert "'=HYPERLINK" in text and ",-5" in text


def test_audit_report_says_so_when_the_ledger_does_not_verify(session):
    from sqlalchemy import text

    from app.statements.audit_report import build_audit_report, render_audit_report
    kit = month_of_activity(session)
    session.execute(text("UPDATE accounts SET balance = balance + 1 WHERE id = :id"), {"id": kit.pocket().id})
    session.commit()
    report = build_audit_report(session, kit.estate, PERIOD)
    text_of_pdf = pdf_text(render_audit_report(session, report))
    assert not report.verified_ok
    assert "VERIFICATION FAILED" in text_of_pdf and "LEDGER BROKEN" in text_of_pdf
    assert "open" in text_of_pdf and "not locked" in text_of_pdf


def test_a_tenant_downloads_the_statement_without_the_owners_levies(app, committed, login):
    from app.statements.runs import start_run
    from tests.statements.test_statement_runs import month_with_a_levy
    with committed() as s:
        kit = month_with_a_levy(s)
        tenant = make_login(s, "tenant", unit=kit.unit)
        s.add(Tenancy(unit_id=kit.unit.id, person_id=tenant.person_id, move_in=date(2025, 6, 1)))
        owner = make_login(s, "owner", unit=kit.unit)
        occupier = make_login(s, "tenant", unit=kit.unit, grants=[("owner", kit.unit)])  # lives there, owns it
        s.add(Tenancy(unit_id=kit.unit.id, person_id=occupier.person_id, move_in=date(2025, 6, 1)))
        logins, unit_id = (tenant.email, owner.email, occupier.email), kit.unit.id
    tenant, owner, occupier = logins

    def text(email, layer):
        response = login(email).get(url(app, f"{layer}.statement_download", unit_id=unit_id, period=PERIOD))
        assert response.status_code == 200
        return pdf_text(response.data)

    for issued in (False, True):  # the provisional rendering, then the archived copies
        assert "Levies (owner)" not in text(tenant, "tenant") and "R 1 149.00" in text(tenant, "tenant")
        assert "Levies (owner)" in text(owner, "owner")
        assert "Levies (owner)" in text(occupier, "tenant") and "Levies (owner)" in text(occupier, "owner")
        if not issued:
            with app.app_context():
                from app.extensions import db
                start_run(db.session.get(Unit, unit_id).estate, PERIOD)
