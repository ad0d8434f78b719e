"""`flask ingest replay-spool`: spooled messages go back through ingest() once, however often the
same spool is replayed; a refused one is one dead letter; one that fails again stays spooled."""
import base64
import json

from sqlalchemy import func, select

from app.models import LedgerTransaction, Reading
from app.models.metering import DeadLetter
from tests.metering.conftest import at, balance, direct


def spool_line(message, reason="pipeline error: deadlock detected") -> str:
    return json.dumps({"at": "2026-12-01T10:00:00+00:00", "topic": message.topic, "reason": reason,
                       "payload_base64": base64.b64encode(message.payload).decode()})


def write(path, lines) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def test_replay_feeds_spooled_messages_through_ingest_once(app, session, metered, cli_runner, tmp_path):
    path = tmp_path / "ingest-spool.jsonl"
    lines = [spool_line(direct("23022673", at(90), "100")), spool_line(direct("23022673", at(60), "101.5")),
             spool_line(direct("99999999", at(60), "5")),  # no such meter: refused
             "this is not json", ""]
    write(path, lines)
    result = cli_runner.invoke(args=["ingest", "replay-spool", "--path", str(path)])
    assert result.exit_code == 0, result.output
    assert "4 spooled messages: 2 accepted, 0 already stored, 2 refused" in result.output
    assert not path.exists() and not (tmp_path / "ingest-spool.jsonl.replaying").exists()
    billed = balance(session, metered.pocket)
    assert billed == 100 - 3  # 1.5 kWh at R2.00
    reasons = sorted(session.scalars(select(DeadLetter.reason)))
    assert reasons[0].startswith("spool line is not a spooled message") and reasons[1] == "unknown meter 99999999"

    write(path, lines)  # the same spool again (a copy kept, a crash before the file was removed)
    again = cli_runner.invoke(args=["ingest", "replay-spool", "--path", str(path)])
    assert "0 accepted, 2 already stored, 2 refused into the dead letters (2 were already there)" in again.output
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Reading)) == 2
    assert session.scalar(select(func.count()).select_from(DeadLetter)) == 2
    assert balance(session, metered.pocket) == billed, "nothing billed twice"


def test_an_interrupted_replay_resumes_and_failures_stay_spooled(app, session, metered, cli_runner, tmp_path,
                                                                  monkeypatch):
    path = tmp_path / "spool.jsonl"
    leftover = tmp_path / "spool.jsonl.replaying"  # a replay that stopped half way
    write(leftover, [spool_line(direct("23022673", at(90), "100"))])
    write(path, [spool_line(direct("23022673", at(60), "101"))])  # spooled since
    from app.metering import spool

    real = spool.ingest

    def flaky(session, messages, **options):
        if b'"101 kWh"' in messages[0].payload:
            raise RuntimeError("database still down")
        return real(session, messages, **options)
    monkeypatch.setattr(spool, "ingest", flaky)
    result = cli_runner.invoke(args=["ingest", "replay-spool", "--path", str(path)])
    assert result.exit_code == 1 and "2 spooled messages: 1 accepted" in result.output
    assert "line 1: RuntimeError: database still down" in result.output
    assert not leftover.exists()
    assert [json.loads(line)["topic"] for line in path.read_text().splitlines()] == ["meters/23022673/readings"]
    monkeypatch.setattr(spool, "ingest", real)
    assert cli_runner.invoke(args=["ingest", "replay-spool", "--path", str(path)]).exit_code == 0
    assert not path.exists()
    assert session.scalar(select(func.count()).select_from(Reading)) == 2
    assert session.scalar(select(func.count()).select_from(LedgerTransaction)) >= 2


def test_nothing_spooled_is_nothing_to_do(cli_runner, tmp_path):
    result = cli_runner.invoke(args=["ingest", "replay-spool", "--path", str(tmp_path / "none.jsonl")])
    assert result.exit_code == 0 and "0 spooled messages" in result.output


def test_any_spool_line_is_replayed_or_refused_never_a_crash(app, session, tmp_path):
    from hypothesis import HealthCheck, given, settings, strategies as st

    from app.metering.spool import replay_spool

    path = tmp_path / "fuzz.jsonl"
    lines = st.one_of(st.text(max_size=200).filter(lambda t: "\n" not in t and "\r" not in t),
                      st.builds(lambda topic, payload: json.dumps({"topic": topic, "payload_base64": payload}),
                                st.text(max_size=40), st.text(max_size=40)))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(line=lines)
    def check(line):
        path.write_text(line + "\n", encoding="utf-8", errors="surrogateescape")
        report = replay_spool(session, path)
        assert report.failed == [] and not path.exists()
    check()
