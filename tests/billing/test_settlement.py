"""Settlement (U3): rules validated, the split exact to the minor unit, runs idempotent and reversible."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.billing import settlement as s
from app.ledger import Entry, post
from app.models import Account, LedgerTransaction
from app.periods import last_complete_period, month_bounds
from tests.factories import make_estate_with_wallet, make_period


# --- the split, pure -----------------------------------------------------------------------

def _rules(draw_percentages, fixed):
    rules = [s.Rule(n, "percentage", p) for n, p in enumerate(draw_percentages, start=1)]
    rules += [s.Rule(100 + n, "fixed", f) for n, f in enumerate(fixed)]
    return rules


@settings(max_examples=30, deadline=None)
@given(currency=st.sampled_from(["ZAR", "XOF"]),
       percentages=st.lists(st.decimals(min_value="0.0001", max_value="60", places=4), max_size=4),
       fixed=st.lists(st.integers(min_value=1, max_value=50_000), max_size=3),
       revenue=st.integers(min_value=-100, max_value=10_000_000),
       remainder_at=st.integers(min_value=0, max_value=7))
def test_parts_sum_exactly_to_revenue_and_the_remainder_is_never_negative(currency, percentages, fixed, revenue,
                                                                          remainder_at):
    places = 0 if currency == "XOF" else 2
    revenue = Decimal(revenue).scaleb(-places)
    rules = _rules(percentages, [Decimal(f).scaleb(-places) for f in fixed])
    rules.insert(min(remainder_at, len(rules)), s.Rule(999, "remainder", None))
    try:
        rules_ok = s.validate_rules([s.RuleInput(r.party_id, r.method, "" if r.value is None else str(r.value))
                                     for r in rules], currency, {r.party_id for r in rules})
    except s.RuleError:
        assert sum(percentages, Decimal(0)) > 100
        return
    try:
        parts = s.split(revenue, rules_ok, currency)
    except s.SplitRefused:
        taken = sum((r.value for r in rules if r.method == "fixed"), Decimal(0))
        assert revenue <= 0 or taken + revenue * sum(percentages, Decimal(0)) / 100 > revenue - Decimal(1).scaleb(-places)
        return
    assert sum(parts) == revenue
    assert all(part >= 0 for part in parts)
    assert all(part == part.quantize(Decimal(1).scaleb(-places)) for part in parts)
    remainder = parts[[r.method for r in rules_ok].index("remainder")]
    assert remainder >= 0


def test_percentages_are_shared_by_largest_remainder():
    # Three thirds of 100 XOF: 33.33 each; the rounded total 100 is kept, the extra unit to the first.
    rules = [s.Rule(1, "percentage", Decimal("33.3333")), s.Rule(2, "percentage", Decimal("33.3333")),
             s.Rule(3, "percentage", Decimal("33.3334")), s.Rule(4, "remainder", None)]
    assert s.split(Decimal(100), rules, "XOF") == [Decimal(33), Decimal(33), Decimal(34), Decimal(0)]


@pytest.mark.parametrize("rows, field", [
    ([s.RuleInput(1, "percentage", "60")], "rules"),  # no remainder
    ([s.RuleInput(1, "remainder"), s.RuleInput(2, "remainder")], "rules"),
    ([s.RuleInput(1, "percentage", "70"), s.RuleInput(2, "percentage", "40"), s.RuleInput(3, "remainder")], "rules"),
    ([s.RuleInput(1, "percentage", "abc"), s.RuleInput(2, "remainder")], "rule-1-value"),
    ([s.RuleInput(1, "fixed", "10.5"), s.RuleInput(2, "remainder")], "rule-1-value"),  # XOF has no decimals
    ([s.RuleInput(1, "fixed", "10"), s.RuleInput(1, "remainder")], "rule-2-party"),
    ([s.RuleInput(9, "fixed", "10"), s.RuleInput(1, "remainder")], "rule-1-party"),
])
def test_bad_rules_are_refused_with_the_field_named(rows, field):
    with pytest.raises(s.RuleError) as refused:
        s.validate_rules(rows, "XOF", {1, 2, 3})
    assert field in refused.value.errors


# --- runs on the ledger ----------------------------------------------------------------------

@pytest.fixture
def sun(session):
    """An XOF estate with last month's revenue of 100,001 XOF billed, and three parties with rules."""
    kit = make_estate_with_wallet(session, currency="XOF")
    estate = kit.estate
    period = last_complete_period(estate.tz)
    start, _ = month_bounds(period, estate.timezone)
    post(session, Entry(estate_id=estate.id, kind="topup", idempotency_key="test:topup",
                        legs=[(kit.pocket().id, Decimal(200_000)), (kit.accounts.clearing.id, Decimal(-200_000))],
                        occurred_at=start + timedelta(hours=1)))
    post(session, Entry(estate_id=estate.id, kind="consumption", idempotency_key="reading:test:1",
                        legs=[(kit.pocket().id, Decimal(-100_001)), (kit.accounts.revenue["electricity"].id,
                                                                   Decimal(100_001))],
                        occurred_at=start + timedelta(days=3)))
    session.commit()
    utility = s.add_party(session, estate, name="Power utility", role="utility", contact_email="bulk@example.com")
    body = s.add_party(session, estate, name="Body corporate", role="body_corporate")
    operator = s.add_party(session, estate, name="Operator", role="operator")
    s.save_rules(session, estate, "electricity", period, [
        s.RuleInput(utility.id, "percentage", "62.5"), s.RuleInput(body.id, "fixed", "15000"),
        s.RuleInput(operator.id, "remainder")])
    return kit, period, (utility, body, operator)


def _balances(session, parties):
    session.expire_all()
    return [session.get(Account, p.account_id).balance for p in parties]


def test_a_run_posts_each_share_and_a_rerun_posts_nothing(session, sun):
    kit, period, parties = sun
    report = s.run_settlement(session, kit.estate, period)
    [outcome] = report.outcomes
    assert outcome.status == "posted" and outcome.revenue == Decimal(100_001) and outcome.basis == "billed"
    # 62.5 % of 100,001 = 62,500.625 -> 62,501; fixed 15,000; the rest 22,500.
    assert _balances(session, parties) == [Decimal(62_501), Decimal(15_000), Decimal(22_500)]
    assert session.get(Account, kit.accounts.revenue["electricity"].id).balance == 0
    keys = set(session.scalars(LedgerTransaction.__table__.select().with_only_columns(
        LedgerTransaction.idempotency_key).where(LedgerTransaction.kind == "settlement")))
    assert keys == {f"settlement:{kit.estate.code}:electricity:{period}:1:{p.id}" for p in parties}
    count = session.query(LedgerTransaction).count()
    again = s.run_settlement(session, kit.estate, period)
    assert again.outcomes[0].status == "already_posted"
    assert session.query(LedgerTransaction).count() == count


def test_a_reversal_and_a_new_run_give_the_new_split(session, sun):
    kit, period, (utility, body, operator) = sun
    run = s.run_settlement(session, kit.estate, period).outcomes[0].run
    with pytest.raises(s.RunError):
        s.reverse_run(session, run, reason="")
    s.reverse_run(session, run, reason="wrong percentage")
    assert _balances(session, (utility, body, operator)) == [0, 0, 0]
    s.save_rules(session, kit.estate, "electricity", period, [
        s.RuleInput(utility.id, "percentage", "50"), s.RuleInput(operator.id, "remainder")])
    second = s.run_settlement(session, kit.estate, period).outcomes[0]
    assert second.status == "posted" and second.run.run_number == 2
    assert _balances(session, (utility, body, operator)) == [Decimal(50_000), 0, Decimal(50_001)]
    # The reversal left revenue's figure for the month untouched.
    assert s.period_revenue(session, kit.estate, "electricity", period)[0] == Decimal(100_001)


def test_a_locked_month_is_refused_and_nothing_is_written(session, sun):
    kit, period, parties = sun
    make_period(session, kit.estate, period, "locked")
    session.commit()
    outcome = s.run_settlement(session, kit.estate, period).outcomes[0]
    assert outcome.status == "refused" and "locked" in outcome.message
    assert _balances(session, parties) == [0, 0, 0]
    assert s.runs_of(session, kit.estate.id) == []


def test_rules_that_need_a_negative_remainder_are_refused_at_the_run(session, sun):
    kit, period, (utility, body, operator) = sun
    s.save_rules(session, kit.estate, "electricity", period, [
        s.RuleInput(body.id, "fixed", "100002"), s.RuleInput(operator.id, "remainder")])
    outcome = s.run_settlement(session, kit.estate, period).outcomes[0]
    assert outcome.status == "refused" and "more than the revenue" in outcome.message
    assert s.runs_of(session, kit.estate.id) == []


def test_a_payout_is_marked_paid_once_with_its_reference(session, sun):
    kit, period, parties = sun
    run = s.run_settlement(session, kit.estate, period).outcomes[0].run
    line = run.lines[0]
    s.mark_paid(session, line, reference="FNB 12345")
    assert _balances(session, parties)[0] == 0
    with pytest.raises(s.RunError):
        s.mark_paid(session, line, reference="again")
    with pytest.raises(s.RunError):  # a run with a paid share is not reversed
        s.reverse_run(session, run, reason="late")


def test_the_cli_runs_a_month_and_a_dry_run_posts_nothing(session, sun, cli_runner):
    kit, period, parties = sun
    result = cli_runner.invoke(args=["settlement", "run", "--estate", kit.estate.code, "--month", period, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would post" in result.output and "62" in result.output
    assert _balances(session, parties) == [0, 0, 0]
    result = cli_runner.invoke(args=["settlement", "run", "--estate", kit.estate.code, "--month", period])
    assert result.exit_code == 0, result.output
    assert _balances(session, parties) == [Decimal(62_501), Decimal(15_000), Decimal(22_500)]
    future = datetime.now(UTC).strftime("%Y-%m")
    result = cli_runner.invoke(args=["settlement", "run", "--estate", kit.estate.code, "--month", future])
    assert result.exit_code != 0 and "has not ended" in result.output


# --- the staff pages --------------------------------------------------------------------------

def test_staff_add_a_party_and_bad_input_comes_back_next_to_the_field(session, sun, staff_client):
    from tests.helpers import page_token

    kit, period, parties = sun
    page = f"/staff/settlement?estate_id={kit.estate.id}"
    token = page_token(staff_client, page)
    refused = staff_client.post(f"/staff/estates/{kit.estate.id}/settlement/parties",
                                data={"csrf_token": token, "name": "Operator", "role": "operator",
                                      "contact_email": "not an email"})
    assert refused.status_code == 400
    html = refused.get_data(as_text=True)
    assert "already has a party called Operator" in html and "Enter an email address" in html
    added = staff_client.post(f"/staff/estates/{kit.estate.id}/settlement/parties",
                              data={"csrf_token": token, "name": "Landlord Dube", "role": "landlord"})
    assert added.status_code in (302, 303)
    assert "Landlord Dube" in staff_client.get(page).get_data(as_text=True)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.text(max_size=12), method=st.sampled_from(["percentage", "fixed", "remainder", "bogus", ""]))
def test_the_rules_form_never_fails_on_odd_input(session, sun, staff_client, value, method):
    from tests.helpers import page_token

    kit, period, (utility, body, operator) = sun
    token = page_token(staff_client, f"/staff/settlement?estate_id={kit.estate.id}")
    response = staff_client.post(f"/staff/estates/{kit.estate.id}/settlement/rules", data={
        "csrf_token": token, "utility": "electricity", "effective_from": period,
        "rule-1-party": str(utility.id), "rule-1-method": method, "rule-1-value": value,
        "rule-2-party": str(operator.id), "rule-2-method": "remainder"})
    assert response.status_code in (302, 303, 400)
    if response.status_code == 400:
        assert 'class="field-error"' in response.get_data(as_text=True)


def test_staff_settle_a_month_mark_a_payout_reverse_and_download_statements(session, sun, staff_client):
    from pypdf import PdfReader
    from io import BytesIO

    from tests.helpers import page_token

    kit, period, (utility, body, operator) = sun
    page = f"/staff/settlement?estate_id={kit.estate.id}&period={period}"
    token = page_token(staff_client, page)
    ran = staff_client.post(f"/staff/estates/{kit.estate.id}/settlement/{period}/run", headers={"X-CSRFToken": token})
    assert ran.status_code == 200 and "Settlement run" in ran.get_data(as_text=True)
    html = staff_client.get(page).get_data(as_text=True)
    assert "run 1" in html and "62\u202f501" in html
    [run] = s.runs_of(session, kit.estate.id)
    pdf = staff_client.get(f"/staff/settlement/parties/{utility.id}/statement?period={period}")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(BytesIO(pdf.data)).pages)
    assert "62.5 % of revenue" in text and "billed for consumption" in text
    csv = staff_client.get(f"/staff/settlement?estate_id={kit.estate.id}&period={period}&format=csv")
    assert "Power utility" in csv.get_data(as_text=True)
    line = next(line for line in run.lines if line.party_id == body.id)
    assert staff_client.post(f"/staff/settlement/lines/{line.id}/paid",
                             data={"csrf_token": token, "reference": ""}).status_code == 400
    paid = staff_client.post(f"/staff/settlement/lines/{line.id}/paid",
                             data={"csrf_token": token, "reference": "EFT-778"})
    assert paid.status_code in (302, 303)
    refused = staff_client.post(f"/staff/settlement/runs/{run.id}/reverse",
                                data={"csrf_token": token, "reason": "test"})
    assert refused.status_code == 400 and "has been paid out" in refused.get_data(as_text=True)
    assert staff_client.post("/staff/settlement/runs/987654/reverse", data={"csrf_token": token}).status_code == 404
    assert staff_client.post("/staff/settlement/lines/987654/paid", data={"csrf_token": token}).status_code == 404
    assert staff_client.get("/staff/settlement/parties/987654/statement").status_code == 404


# --- the party statements by email ----------------------------------------------------------

from tests.statements.test_statement_runs import pdf_text, smtp  # noqa: E402,F401  (the mail capture fixture)


def test_a_run_emails_each_party_its_statement_once_with_the_pdf(session, sun, smtp):
    from sqlalchemy import select

    from app.models import AuditLog, JobRun

    kit, period, (utility, body, operator) = sun
    operator.contact_email = "ops@example.com"
    session.commit()
    job = s.start_run(kit.estate, period)
    session.expire_all()
    job = session.get(JobRun, job.id)
    assert job.status == "done", (job.errors, job.result)
    assert sorted(m["To"] for m in smtp.messages) == ["bulk@example.com", "ops@example.com"]
    mail = next(m for m in smtp.messages if m["To"] == "bulk@example.com")
    [attachment] = mail.iter_attachments()
    assert attachment.get_content_type() == "application/pdf"
    text = pdf_text(attachment.get_content())
    assert "Power utility" in text and "62.5 % of revenue" in text and "billed for consumption" in text
    assert "Body corporate: no contact email" in job.result
    [run] = s.runs_of(session, kit.estate.id)
    sent = {line.party_id: (line.statement_sent_to, line.statement_sent_at) for line in run.lines}
    assert sent[utility.id][0] == "bulk@example.com" and sent[utility.id][1] is not None
    assert sent[body.id] == (None, None)
    assert {line.statement_outcome for line in run.lines if line.party_id != body.id} == {"sent"}
    audits = session.scalars(select(AuditLog).where(AuditLog.action == "settlement.statement_sent")).all()
    assert sorted(a.new["to"] for a in audits) == ["bulk@example.com", "ops@example.com"]

    # Again (a rerun of the job, or the Send button): nothing is emailed twice, and it says when.
    outcomes = {o.party: o for o in s.send_party_statements(session, run)}
    assert outcomes["Power utility"].status == "already_sent"
    assert outcomes["Power utility"].sent_at == sent[utility.id][1]
    assert "already sent to bulk@example.com on" in outcomes["Power utility"].text(kit.estate.timezone)
    s.start_run(kit.estate, period)
    assert len(smtp.messages) == 2


def test_a_failed_statement_email_is_reported_and_sent_on_the_next_try(session, sun, smtp):
    kit, period, (utility, _, _) = sun
    s.run_settlement(session, kit.estate, period)
    [run] = s.runs_of(session, kit.estate.id)
    smtp.refuse = True
    outcome = next(o for o in s.send_party_statements(session, run) if o.party == "Power utility")
    assert outcome.status == "failed" and "451" in outcome.error and "try again" in outcome.text(kit.estate.timezone)
    assert next(line for line in run.lines if line.party_id == utility.id).statement_sent_at is None
    smtp.refuse = False
    assert next(o for o in s.send_party_statements(session, run) if o.party == "Power utility").status == "sent"
    assert [m["To"] for m in smtp.messages] == ["bulk@example.com"]


def test_staff_send_the_statements_of_a_run_from_its_page(session, sun, staff_client, smtp):
    from tests.helpers import page_token

    kit, period, _ = sun
    s.run_settlement(session, kit.estate, period)
    [run] = s.runs_of(session, kit.estate.id)
    page = f"/staff/settlement?estate_id={kit.estate.id}&period={period}"
    token = page_token(staff_client, page)
    assert "Send statements" in staff_client.get(page).get_data(as_text=True)
    sent = staff_client.post(f"/staff/settlement/runs/{run.id}/send-statements", data={"csrf_token": token},
                             follow_redirects=True)
    html = sent.get_data(as_text=True)
    assert sent.status_code == 200 and "Power utility: statement emailed to bulk@example.com" in html
    assert "Statement emailed to bulk@example.com" in html
    again = staff_client.post(f"/staff/settlement/runs/{run.id}/send-statements", data={"csrf_token": token},
                              follow_redirects=True).get_data(as_text=True)
    assert "Power utility: statement already sent to bulk@example.com on" in again
    assert len(smtp.messages) == 1
    assert staff_client.post("/staff/settlement/runs/987654/send-statements",
                             data={"csrf_token": token}).status_code == 404
    assert staff_client.post(f"/staff/settlement/runs/{run.id}/send-statements").status_code == 400  # no CSRF


def test_without_a_mail_server_the_statement_is_logged_and_said_so(session, sun, app, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_URL", "")
    kit, period, _ = sun
    s.run_settlement(session, kit.estate, period)
    [run] = s.runs_of(session, kit.estate.id)
    first = next(o for o in s.send_party_statements(session, run) if o.party == "Power utility")
    assert first.status == "logged" and "not emailed" in first.text(kit.estate.timezone)
    again = next(o for o in s.send_party_statements(session, run) if o.party == "Power utility")
    assert again.status == "already_logged" and "already written to the log" in again.text(kit.estate.timezone)


def test_a_party_statement_is_resent_on_purpose_recorded_and_audited(session, sun, smtp):
    from sqlalchemy import select

    from app.models import AuditLog

    kit, period, (utility, body, _) = sun
    s.run_settlement(session, kit.estate, period)
    [run] = s.runs_of(session, kit.estate.id)
    s.send_party_statements(session, run)
    line = next(line for line in run.lines if line.party_id == utility.id)
    first = line.statement_sent_at
    utility.contact_email = "new.bulk@example.com"  # the party's contact changed since
    session.commit()
    outcome = s.resend_party_statement(session, line)
    assert outcome.status == "resent" and outcome.text(kit.estate.timezone) == (
        "Power utility: statement sent again to new.bulk@example.com")
    assert [m["To"] for m in smtp.messages] == ["bulk@example.com", "new.bulk@example.com"]
    assert line.statement_sent_to == "new.bulk@example.com" and line.statement_sent_at >= first
    [audit] = session.scalars(select(AuditLog).where(AuditLog.action == "settlement.statement_resent")).all()
    assert (audit.entity_id, audit.old["to"], audit.new["to"]) == (str(line.id), "bulk@example.com",
                                                                   "new.bulk@example.com")
    s.resend_party_statement(session, line)
    assert s.resend_counts(session, [l.id for l in run.lines]) == {line.id: 2}
    # The run-wide button still sends nobody twice; a party without a contact is told so.
    assert {o.status for o in s.send_party_statements(session, run) if o.party == "Power utility"} == {"already_sent"}
    assert s.resend_party_statement(session, next(l for l in run.lines if l.party_id == body.id)).status == "no_contact"
    assert len(smtp.messages) == 3
    s.reverse_run(session, run, reason="wrong percentage")
    with pytest.raises(s.RunError):
        s.resend_party_statement(session, line)
    assert len(smtp.messages) == 3


def test_staff_resend_one_party_statement_from_the_run(session, sun, staff_client, smtp):
    from tests.helpers import page_token

    kit, period, (utility, _, _) = sun
    s.run_settlement(session, kit.estate, period)
    [run] = s.runs_of(session, kit.estate.id)
    page = f"/staff/settlement?estate_id={kit.estate.id}&period={period}"
    assert "Resend statement" not in staff_client.get(page).get_data(as_text=True)  # nothing sent yet
    s.send_party_statements(session, run)
    line = next(line for line in run.lines if line.party_id == utility.id)
    token = page_token(staff_client, page)
    assert f"/staff/settlement/lines/{line.id}/resend-statement" in staff_client.get(page).get_data(as_text=True)
    sent = staff_client.post(f"/staff/settlement/lines/{line.id}/resend-statement", data={"csrf_token": token},
                             follow_redirects=True)
    html = sent.get_data(as_text=True)
    assert sent.status_code == 200 and "Power utility: statement sent again to bulk@example.com" in html
    assert "Sent again on purpose 1 time(s)" in html and len(smtp.messages) == 2
    assert staff_client.post("/staff/settlement/lines/987654/resend-statement",
                             data={"csrf_token": token}).status_code == 404
    assert staff_client.post(f"/staff/settlement/lines/{line.id}/resend-statement").status_code == 400  # no CSRF
