"""Chain anchors: each estate's hash-chain head (seq and hash) published outside the database.

Someone who can write to the database with the triggers off can delete the newest
transactions and rewind `ledger_chains`; what is left still verifies. A copy of an earlier
head kept elsewhere (printed on every statement and AGM report, emailed daily to
`LEDGER_ANCHOR_EMAIL`) catches that: `flask ledger verify --anchor CODE:SEQ:HASH` checks that
the chain still holds transaction SEQ with exactly that hash. Since every hash covers the
one before it, an anchor that holds vouches for the whole chain up to it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import audit
from app.jobs import job
from app.models import Estate, LedgerChain, LedgerTransaction, utcnow

JOB_KIND = "ledger_anchor_email"
_ANCHOR = re.compile(r"(?P<estate>[^:\s]+):(?P<seq>\d{1,18}):(?P<hash>[0-9a-fA-F]{64})")


class AnchorFormatError(ValueError):
    """An anchor is not written ESTATE:SEQ:HASH (a 64-character hex SHA-256)."""


@dataclass(frozen=True)
class Anchor:
    """One estate's chain position: its code, a transaction's seq and that transaction's hash."""

    estate_code: str
    seq: int
    hash: str
    at: datetime | None = None  # when it was read (None when parsed from text)

    def __str__(self) -> str:
        return f"{self.estate_code}:{self.seq}:{self.hash}"


def parse_anchor(text: str) -> Anchor:
    """Read `ESTATE:SEQ:HASH` as written on a statement or in the anchor email."""
    found = _ANCHOR.fullmatch(text.strip())
    if found is None:
        raise AnchorFormatError(f"{text!r} is not ESTATE:SEQ:HASH (HASH is 64 hex characters)")
    return Anchor(found["estate"], int(found["seq"]), found["hash"].lower())


def chain_head(session: Session, estate_id: int) -> Anchor | None:
    """The estate's chain head now, or None before its first transaction."""
    row = session.execute(
        select(Estate.code, LedgerChain.last_seq, LedgerChain.last_hash)
        .join(LedgerChain, LedgerChain.estate_id == Estate.id)
        .where(Estate.id == estate_id)
    ).first()
    if row is None or not row.last_seq:
        return None
    return Anchor(row.code, row.last_seq, row.last_hash, utcnow())


def chain_heads(session: Session) -> list[Anchor]:
    """Every estate's chain head now, in estate code order (estates with no transactions left out)."""
    rows = session.execute(
        select(Estate.code, LedgerChain.last_seq, LedgerChain.last_hash)
        .join(LedgerChain, LedgerChain.estate_id == Estate.id)
        .where(LedgerChain.last_seq > 0)
        .order_by(Estate.code)
    ).all()
    now = utcnow()
    return [Anchor(code, seq, digest, now) for code, seq, digest in rows]


def anchor_problem(session: Session, anchor: Anchor) -> str | None:
    """Why the ledger no longer holds `anchor` (naming the estate), or None when it does."""
    estate_id = session.scalar(select(Estate.id).where(Estate.code == anchor.estate_code))
    if estate_id is None:
        return f"{anchor.estate_code}: anchor seq {anchor.seq} names no estate"
    found = session.scalar(select(LedgerTransaction.hash).where(
        LedgerTransaction.estate_id == estate_id, LedgerTransaction.seq == anchor.seq))
    if found is None:
        return (f"{anchor.estate_code}: ANCHOR BROKEN: the chain no longer holds seq {anchor.seq} "
                f"(anchored hash {anchor.hash[:16]}...); transactions were removed")
    if found != anchor.hash:
        return (f"{anchor.estate_code}: ANCHOR BROKEN: seq {anchor.seq} now has hash {found[:16]}..., "
                f"the anchor says {anchor.hash[:16]}...; history was rewritten")
    return None


def anchor_line(anchor: Anchor | None) -> str:
    """The line statements and reports print: where the estate's chain stood when printed (reader's language)."""
    from flask_babel import gettext

    if anchor is None:
        return gettext("Ledger anchor: no transactions yet")
    return gettext("Ledger anchor %(anchor)s", anchor=f"{anchor.estate_code}:{anchor.seq}:{anchor.hash}")


@job(JOB_KIND)
def send_anchor_email(session: Session, progress, now: datetime | None = None) -> str:
    """Email every estate's chain head to LEDGER_ANCHOR_EMAIL (daily); commits the audit row."""
    from app.notify.email import send_email

    to = current_app.config.get("LEDGER_ANCHOR_EMAIL", "")
    if not to:
        return "LEDGER_ANCHOR_EMAIL is not set: no anchor email sent"
    anchors = chain_heads(session)
    progress.set_total(1)
    when = (now or utcnow()).strftime("%Y-%m-%d %H:%M UTC")
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = to
    message["Subject"] = f"Meterwise ledger anchors {when}"
    lines = [f"Ledger chain heads at {when}. Keep this email: it is the proof, outside the "
             "database, of what the ledger held.", ""]
    lines += [f"{a.estate_code}  seq {a.seq}  hash {a.hash}  at {when}" for a in anchors] or [
        "No estate has ledger transactions yet."]
    if anchors:
        # One anchor per line: the command stays copyable with any number of estates.
        lines += ["", "To check the ledger still holds them:", "flask ledger verify \\"]
        lines += [f"  --anchor {a}" + (" \\" if i < len(anchors) - 1 else "")
                  for i, a in enumerate(anchors)]
    message.set_content("\n".join(lines) + "\n")
    send_email(message)
    audit.record(session, "ledger.anchors_sent", "Ledger anchors",
                 new={"to": to, "anchors": [str(a) for a in anchors]})
    session.commit()
    progress.step()
    return f"{len(anchors)} anchor(s) sent to {to}"
