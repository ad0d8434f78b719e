"""Case notes on a unit and on a person of an estate, for staff and the estate's agents.

Each list is an HTMX component (`admin/_notes.html`, root id `case-notes`) that the unit and
person administration pages load into their notes slot; it is a page of its own too.
"""
from flask import abort, request, url_for
from flask_babel import gettext
from flask_login import current_user

from app.auth.scope import estate_or_404, unit_or_404
from app.estates.notes import NoteError, add_note, notes_for, person_of_estate
from app.extensions import db
from app.htmx import render
from app.layers.admin import ROLES, bp


@bp.get("/units/<int:unit_id>/notes")
def unit_notes(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    return _notes(unit.estate, unit=unit)


@bp.post("/units/<int:unit_id>/notes")
def add_unit_note(unit_id: int):
    unit = unit_or_404(db.session, current_user, unit_id, ROLES)
    return _add(unit.estate, unit=unit)


@bp.get("/estates/<int:estate_id>/people/<int:person_id>/notes")
def person_notes(estate_id: int, person_id: int):
    estate, person = _person(estate_id, person_id)
    return _notes(estate, person=person)


@bp.post("/estates/<int:estate_id>/people/<int:person_id>/notes")
def add_person_note(estate_id: int, person_id: int):
    estate, person = _person(estate_id, person_id)
    return _add(estate, person=person)


def _person(estate_id: int, person_id: int):
    estate = estate_or_404(db.session, current_user, estate_id, ROLES)
    person = person_of_estate(db.session, estate, person_id)
    if person is None:
        abort(404)  # someone else's, or no one: the same answer
    return estate, person


def _notes(estate, *, unit=None, person=None, errors=None, body: str = "", code: int = 200, added=False):
    if unit is not None:
        action = url_for("admin.add_unit_note", unit_id=unit.id)
        subject = gettext("Unit %(number)s", number=unit.number)
    else:
        action = url_for("admin.add_person_note", estate_id=estate.id, person_id=person.id)
        subject = person.full_name
    response = render("admin/notes.html", "notes", estate=estate, unit=unit, person=person, subject=subject,
                      notes=notes_for(db.session, unit=unit, person=person, estate=estate), action=action,
                      errors=errors or {}, body=body, added=added)
    response.status_code = code
    return response


def _add(estate, *, unit=None, person=None):
    body = request.form.get("body", "")
    try:
        add_note(db.session, estate, body, unit=unit, person=person, user_id=current_user.id)
    except NoteError as error:
        db.session.rollback()
        return _notes(estate, unit=unit, person=person, errors=error.errors, body=body[:5000], code=400)
    return _notes(estate, unit=unit, person=person, added=True)
