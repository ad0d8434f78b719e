"""Spool replay (`flask ingest replay-spool`): messages the MQTT ingest worker had to spool back into
`ingest()`.

The worker spools a message (INGEST_SPOOL_PATH, one JSON line: `at`, `topic`, `reason`,
`payload_base64`) only when even its dead letter could not be written, then acknowledges it,
so the spool is the only copy. Replay is idempotent, so it can be run again after a crash or on
a copy of the same file: the spool is first renamed to `<path>.replaying` (the worker starts a
fresh spool meanwhile), each message runs through `ingest()` in its own transaction (readings
are unique per meter and time, bills keyed by reading), a refused message becomes one dead
letter (not one per replay: an identical dead letter already kept is not written again), and a
message that fails again (the pipeline still raising) is appended back to the spool. The
`.replaying` file is removed once every line is settled; an interrupted replay resumes from it
(then the live spool is replayed in the same run).
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.metering.ingest import Message, dead_letter_row, ingest
from app.models import utcnow
from app.models.metering import DeadLetter

log = logging.getLogger(__name__)
SPOOL_TOPIC = "spool"  # the dead letter of a spool line that cannot even be read


@dataclass
class SpoolReplayReport:
    """What a replay did, per outcome; `failed` lists (line number, error) of lines put back."""

    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    already_refused: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.lines} spooled messages: {self.accepted} accepted, {self.duplicates} already stored, "
                f"{self.refused} refused into the dead letters ({self.already_refused} were already there), "
                f"{len(self.failed)} failed again and stay in the spool")


def replay_spool(session: Session, path: str | Path) -> SpoolReplayReport:
    """Feed every spooled message through `ingest()` once; commits once per message."""
    path = Path(path)
    working = path.with_name(path.name + ".replaying")
    report = SpoolReplayReport()
    back: list[str] = []
    # An interrupted replay's file first, then the live spool (renamed: the worker starts a new one).
    for _pass in range(2):
        if not working.exists():
            if not path.exists():
                break
            os.replace(path, working)
        _replay_file(session, working, report, back)
        working.unlink()
    if back:
        with path.open("a", encoding="utf-8", errors="surrogateescape") as spool:
            spool.writelines(back)
    return report


def _replay_file(session: Session, working: Path, report: SpoolReplayReport, back: list[str]) -> None:
    with working.open(encoding="utf-8", errors="surrogateescape") as spool:
        for number, line in enumerate(spool, start=1):
            if not line.strip():
                continue
            report.lines += 1
            try:
                _replay_line(session, line.rstrip("\n"), report)
            except Exception as error:  # the pipeline still fails on it: keep it for next time
                session.rollback()
                log.exception("spooled message on line %d failed again", number)
                report.failed.append((number, f"{type(error).__name__}: {error}"[:300]))
                back.append(line if line.endswith("\n") else line + "\n")


def _replay_line(session: Session, line: str, report: SpoolReplayReport) -> None:
    message = _message(line)
    if message is None:
        _keep_dead(session, dead_letter_row(SPOOL_TOPIC, line.encode("utf-8", "surrogateescape"),
                                            "spool line is not a spooled message (JSON with topic and "
                                            "payload_base64)", None, utcnow()), report)
        return
    outcome = ingest(session, [message], keep_dead_letters=False)
    report.accepted += outcome.accepted
    report.duplicates += outcome.duplicates
    if outcome.dead_letters:
        _keep_dead(session, dead_letter_row(message.topic, message.payload, outcome.dead_letters[0], None,
                                            message.received_at or utcnow()), report)
        return
    session.commit()


def _keep_dead(session: Session, row: dict, report: SpoolReplayReport) -> None:
    """Write the dead letter unless an identical one (topic, payload, reason) is already kept; commits."""
    kept = session.scalar(select(DeadLetter.id).where(
        DeadLetter.topic == row["topic"], DeadLetter.raw_payload == row["raw_payload"],
        DeadLetter.reason == row["reason"]).limit(1))
    report.refused += 1
    if kept is None:
        session.add(DeadLetter(**row))
    else:
        report.already_refused += 1
    session.commit()


def _message(line: str) -> Message | None:
    try:
        document = json.loads(line)
        if not isinstance(document, dict) or not isinstance(document.get("topic"), str):
            return None
        payload = base64.b64decode(document.get("payload_base64", ""), validate=True)
    except (ValueError, binascii.Error, RecursionError):
        return None
    received = None
    if isinstance(document.get("at"), str):
        from datetime import datetime

        try:
            received = datetime.fromisoformat(document["at"])
        except ValueError:
            received = None
    return Message(document["topic"], payload, received_at=received if received and received.tzinfo else None)
