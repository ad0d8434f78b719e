"""Ledger anchors and TRUNCATE (issue 11 item 13): what a database writer cannot hide.

Deleting the newest transactions and rewinding the chain head leaves a ledger that verifies
from inside; an anchor kept outside (statement, AGM report, daily email) does not hold.
"""
import runpy
from pathlib import Path

import pytest
from rq import cron as rq_cron
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from app.ledger.anchors import Anchor, chain_head, chain_heads
from app.models import AuditLog, LedgerTransaction, Posting
from tests.factories import make_estate_with_wallet, make_topup
from tests.integration.test_ledger_verify import tamper
from tests.statements.test_statement_runs import PERIOD, month_of_activity, pdf_text

CRON_FILE = Path(__file__).resolve().parents[2] / "workers" / "cron.py"


@pytest.fixture
def ledger(session):
    """An estate with five committed top-ups of 10..50; returns (kit, [anchor after each])."""
    kit = make_estate_with_wallet(session)
    anchors = []
    for n in range(1, 6):
        make_topup(session, kit.pocket(), str(10 * n), clearing=kit.accounts.clearing)
        session.commit()
        anchors.append(chain_head(session, kit.estate.id))
    return kit, anchors


def test_truncating_the_ledger_is_refused(session, ledger):
    for statement in ("TRUNCATE postings", "TRUNCATE postings, ledger_transactions CASCADE",
                      "TRUNCATE accounts CASCADE"):  # a cascade reaches the ledger too
        with pytest.raises(DBAPIError, match="append-only: TRUNCATE on"):
            session.execute(text(statement))
        session.rollback()
    assert session.scalar(select(func.count()).select_from(LedgerTransaction)) == 5
    assert session.scalar(select(func.count()).select_from(Posting)) == 10


def test_a_removed_tail_with_a_rewound_head_fails_its_anchor(session, ledger, cli_runner):
    kit, anchors = ledger
    fifth, third = anchors[4], anchors[2]
    assert (fifth.seq, third.seq) == (5, 3)
    # The tamperer deletes seq 5, rewinds the head to seq 4 and fixes the cached balances.
    last = session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.seq == 5))
    tamper(session, "DELETE FROM postings WHERE transaction_id = :t",
           "DELETE FROM ledger_transactions WHERE id = :t",
           "UPDATE ledger_chains SET last_seq = 4, last_hash = :h WHERE estate_id = :e",
           "UPDATE accounts SET balance = balance - 50 WHERE id = :pocket",
           "UPDATE accounts SET balance = balance + 50 WHERE id = :clearing",
           t=last, h=anchors[3].hash, e=kit.estate.id, pocket=kit.pocket().id,
           clearing=kit.accounts.clearing.id)

    plain = cli_runner.invoke(args=["ledger", "verify"])
    assert plain.exit_code == 0, plain.output  # from inside the database nothing shows

    broken = cli_runner.invoke(args=["ledger", "verify", "--anchor", str(fifth)])
    assert broken.exit_code == 1, broken.output
    assert f"{kit.estate.code}: ANCHOR BROKEN: the chain no longer holds seq 5" in broken.output
    assert "LEDGER BROKEN" in broken.output

    held = cli_runner.invoke(args=["ledger", "verify", "--anchor", str(third)])
    assert held.exit_code == 0, held.output
    assert f"{kit.estate.code}: anchor seq 3 holds" in held.output

    both = cli_runner.invoke(args=["ledger", "verify", "--anchor", str(third), "--anchor", str(fifth)])
    assert both.exit_code == 1


def test_a_rewritten_transaction_fails_its_anchor_and_bad_anchors_are_named(session, ledger, cli_runner):
    kit, anchors = ledger
    forged = Anchor(kit.estate.code, 2, "f" * 64)
    result = cli_runner.invoke(args=["ledger", "verify", "--anchor", str(forged)])
    assert result.exit_code == 1
    assert f"{kit.estate.code}: ANCHOR BROKEN: seq 2 now has hash {anchors[1].hash[:16]}" in result.output

    unknown = cli_runner.invoke(args=["ledger", "verify", "--anchor", f"NOPE:1:{'a' * 64}"])
    assert unknown.exit_code == 1 and "NOPE: anchor seq 1 names no estate" in unknown.output

    malformed = cli_runner.invoke(args=["ledger", "verify", "--anchor", f"{kit.estate.code}:5:abc"])
    assert malformed.exit_code == 2 and "is not ESTATE:SEQ:HASH" in malformed.output


def test_the_daily_anchor_email_lists_every_chain_head(app, session, ledger, monkeypatch):
    kit, anchors = ledger
    other = make_estate_with_wallet(session)
    make_topup(session, other.pocket(), "5", clearing=other.accounts.clearing)
    session.commit()
    sent = []
    monkeypatch.setattr("app.notify.email.send_email", sent.append)

    rq_cron._job_data_registry.clear()
    try:
        runpy.run_path(str(CRON_FILE))
        entries = {entry["name"]: entry for entry in rq_cron._job_data_registry}
    finally:
        rq_cron._job_data_registry.clear()
    entry = entries["ledger_anchors"]
    assert entry["cron"] == "15 3 * * *"

    monkeypatch.setitem(app.config, "LEDGER_ANCHOR_EMAIL", "")
    entry["func"](*entry["args"])
    assert sent == []  # not configured: nothing sent

    monkeypatch.setitem(app.config, "LEDGER_ANCHOR_EMAIL", "auditor@example.test")
    entry["func"](*entry["args"])
    (message,) = sent
    assert message["To"] == "auditor@example.test"
    body = message.get_content()
    assert f"{kit.estate.code}  seq 5  hash {anchors[4].hash}" in body
    heads = {a.estate_code: a for a in chain_heads(session)}
    assert f"{other.estate.code}  seq 1  hash {heads[other.estate.code].hash}" in body
    assert f"--anchor {anchors[4]}" in body
    session.expire_all()
    audited = session.scalar(select(AuditLog).where(AuditLog.action == "ledger.anchors_sent"))
    assert str(anchors[4]) in audited.new["anchors"]


def test_statements_and_the_audit_report_print_the_chain_head(session):
    from app.statements.audit_report import build_audit_report, render_audit_report
    from app.statements.figures import statement_for
    from app.statements.pdf import render_statement

    kit = month_of_activity(session)
    head = chain_head(session, kit.estate.id)
    assert head.seq == 3
    line = f"Ledger anchor {kit.estate.code}:3:{head.hash}"
    assert line in pdf_text(render_statement(statement_for(session, kit.unit, PERIOD)))
    report_text = pdf_text(render_audit_report(session, build_audit_report(session, kit.estate, PERIOD)))
    assert line in report_text
    assert f"Chain head when this report was made: {kit.estate.code}:3:{head.hash}" in report_text
