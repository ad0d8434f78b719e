"""Case notes (issue 14 item 7): what staff and an estate's agents note about a unit or a
person of the estate. Notes are append-only: a mistaken note is answered by a new one, so
the record of what was known when stays whole (every note is audited as it is added).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app import audit
from app.models import Estate, Person, RoleGrant, Tenancy, Unit, UnitOwnership, User, utcnow
from app.models.corrections import CaseNote
from app.routing import INTEGER_MAX

BODY_MAX = 4000


class NoteError(ValueError):
    """A note was refused; `errors` says why, by form field."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class NoteBodyInvalid(NoteError):
    """The note is empty or too long."""


@dataclass(frozen=True)
class AddedNote:
    note: CaseNote


def person_of_estate(session: Session, estate: Estate, person_id: int) -> Person | None:
    """The person if they belong to the estate (registered there, a tenancy, an ownership
    or a grant in it), else None."""
    if not 0 < person_id <= INTEGER_MAX:
        return None
    person = session.get(Person, person_id)
    if person is None:
        return None
    if person.estate_id == estate.id:
        return person
    units = select(Unit.id).where(Unit.estate_id == estate.id)
    linked = session.scalar(select(Person.id).where(Person.id == person_id, or_(
        Person.id.in_(select(Tenancy.person_id).where(Tenancy.unit_id.in_(units))),
        Person.id.in_(select(UnitOwnership.person_id).where(UnitOwnership.unit_id.in_(units))),
        Person.id.in_(select(User.person_id).join(RoleGrant, RoleGrant.user_id == User.id).where(
            or_(RoleGrant.estate_id == estate.id, RoleGrant.unit_id.in_(units)))),
    )))
    return person if linked is not None else None


def notes_for(session: Session, *, unit: Unit | None = None, person: Person | None = None,
              estate: Estate | None = None) -> list[CaseNote]:
    """A unit's notes, or a person's notes within one estate, newest first."""
    query = select(CaseNote).order_by(CaseNote.created_at.desc(), CaseNote.id.desc())
    if unit is not None:
        query = query.where(CaseNote.unit_id == unit.id)
    else:
        query = query.where(CaseNote.person_id == person.id, CaseNote.estate_id == estate.id)
    return list(session.scalars(query))


def add_note(session: Session, estate: Estate, body: str, *, unit: Unit | None = None,
             person: Person | None = None, user_id: int | None = None,
             now: datetime | None = None) -> AddedNote:
    """Add a note to a unit or a person of the estate; commits once."""
    text = (body or "").replace("\r\n", "\n").strip()
    if not text:
        raise NoteBodyInvalid({"body": "Write the note first."})
    if len(text) > BODY_MAX:
        raise NoteBodyInvalid({"body": f"Keep a note under {BODY_MAX} characters ({len(text)} now)."})
    if "\x00" in text:
        raise NoteBodyInvalid({"body": "The note contains a character that cannot be stored."})
    note = CaseNote(estate_id=estate.id, unit_id=unit.id if unit else None,
                    person_id=person.id if person and not unit else None, body=text,
                    author_user_id=user_id, created_at=now or utcnow())
    session.add(note)
    session.flush()
    audit.record(session, "case_note.added", note, estate_id=estate.id,
                 new={"unit": unit.number if unit else None, "person_id": note.person_id, "body": text})
    session.commit()
    return AddedNote(note)
