"""Registering and editing people of an estate (X6): validation, E.164 phones, duplicates, audit."""
from datetime import date

import pytest
from sqlalchemy import select

from app.estates.people import (DuplicatePerson, PersonInvalid, create_person, estate_people,
                                person_of_estate, update_person)
from app.models import AuditLog, Person, Tenancy
from tests import factories


@pytest.fixture
def estate(session):
    return factories.make_estate(session, country="ZA")


def test_a_person_with_only_a_phone_is_registered_in_e164_and_audited(session, estate):
    person = create_person(session, estate, {"full_name": "  Thabo   Mokoena ", "phone": "082 123 4567"})
    assert (person.full_name, person.email, person.phone, person.estate_id) == \
        ("Thabo Mokoena", None, "+27821234567", estate.id)
    row = session.scalar(select(AuditLog).where(AuditLog.action == "person.created"))
    assert row.new["phone"] == "+27821234567" and row.estate_id == estate.id


@pytest.mark.parametrize("country, raw, expected", [
    ("ZA", "0821234567", "+27821234567"),
    ("ZA", "+27 82 123 4567", "+27821234567"),
    ("LS", "5775 5403", "+26657755403"),
    ("LS", "26657755403", "+26657755403"),
    ("BJ", "97 12 34 56", "+2290197123456"),   # an old 8-digit Benin number is the new 10-digit one
    ("BJ", "01 97 12 34 56", "+2290197123456"),
])
def test_phones_are_stored_in_e164_in_the_estates_country(session, country, raw, expected):
    estate = factories.make_estate(session, country=country)
    assert create_person(session, estate, {"full_name": "Someone", "phone": raw}).phone == expected


def test_email_is_stripped_and_lower_cased(session, estate):
    person = create_person(session, estate, {"full_name": "Zoë Ngũgĩ", "email": "  Zoe.Ngugi@Example.COM "})
    assert person.email == "zoe.ngugi@example.com" and person.full_name == "Zoë Ngũgĩ"


@pytest.mark.parametrize("values, field, words", [
    ({"full_name": "", "email": "a@example.com"}, "full_name", "full name"),
    ({"full_name": "A"}, "email", "email or a phone"),
    ({"full_name": "A", "email": "not-an-email"}, "email", "name@example.com"),
    ({"full_name": "A", "email": "a@b"}, "email", "name@example.com"),
    ({"full_name": "A", "phone": "12"}, "phone", "phone number of ZA"),
    ({"full_name": "A", "phone": "call me"}, "phone", "phone number"),
    ({"full_name": "x" * 201, "phone": "0821234567"}, "full_name", "200 characters"),
])
def test_invalid_values_are_refused_with_a_message_by_the_field(session, estate, values, field, words):
    with pytest.raises(PersonInvalid) as refused:
        create_person(session, estate, values)
    assert words in refused.value.errors[field]
    session.rollback()
    assert session.scalar(select(Person.id)) is None


def test_a_duplicate_email_or_phone_in_the_estate_is_refused_and_names_the_existing_person(session, estate):
    first = create_person(session, estate, {"full_name": "First", "email": "same@example.com",
                                            "phone": "0821234567"})
    with pytest.raises(DuplicatePerson) as refused:
        create_person(session, estate, {"full_name": "Second", "email": "SAME@example.com"})
    assert refused.value.existing.id == first.id and "First already has this email" in refused.value.errors["email"]
    session.rollback()
    with pytest.raises(DuplicatePerson) as refused:
        create_person(session, estate, {"full_name": "Third", "phone": "+27 82 123 4567"})
    assert refused.value.existing.id == first.id and "phone" in refused.value.errors
    session.rollback()
    # Another estate may have its own person with that phone.
    other = factories.make_estate(session, country="ZA")
    assert create_person(session, other, {"full_name": "Elsewhere", "phone": "0821234567"}).id


def test_a_tenant_of_the_estate_counts_for_duplicates_and_membership(session, estate):
    unit = factories.make_unit(session, estate)
    tenant = Person(full_name="Old Tenant", phone="+27821112222")  # registered before estates had people
    session.add(tenant)
    session.flush()
    session.add(Tenancy(unit_id=unit.id, person_id=tenant.id, move_in=date(2024, 1, 1)))
    session.commit()
    assert person_of_estate(session, estate, tenant.id).id == tenant.id
    assert person_of_estate(session, factories.make_estate(session), tenant.id) is None
    with pytest.raises(DuplicatePerson):
        create_person(session, estate, {"full_name": "New", "phone": "082 111 2222"})
    session.rollback()
    rows = estate_people(session, estate, role="tenant")
    assert [r.person.full_name for r in rows] == ["Old Tenant"] and rows[0].roles == ["tenant"]


def test_update_changes_only_what_differs_audits_old_and_new_and_moves_the_login_email(session, estate):
    user = factories.make_user(session, "tenant", unit=factories.make_unit(session, estate),
                               email="old@example.com", phone="+27821234567")
    user.person.estate_id = estate.id
    session.commit()
    result = update_person(session, estate, user.person, {"full_name": user.person.full_name,
                                                          "email": "New@Example.com", "phone": "0821234567"})
    assert result["new"] == {"email": "new@example.com"} and result["old"] == {"email": "old@example.com"}
    assert user.email == "new@example.com"
    row = session.scalar(select(AuditLog).where(AuditLog.action == "person.updated"))
    assert row.old == {"email": "old@example.com"} and row.new == {"email": "new@example.com"}
    with pytest.raises(PersonInvalid) as refused:
        update_person(session, estate, user.person, {"full_name": "X", "email": "", "phone": "0821234567"})
    assert "signs in with their email" in refused.value.errors["email"]


def test_search_finds_by_name_email_and_phone_digits(session, estate):
    create_person(session, estate, {"full_name": "Amahle Zulu", "phone": "0731234567"})
    create_person(session, estate, {"full_name": "Ben Smith", "email": "ben@example.com"})
    assert [r.person.full_name for r in estate_people(session, estate, search="zul")] == ["Amahle Zulu"]
    assert [r.person.full_name for r in estate_people(session, estate, search="BEN@")] == ["Ben Smith"]
    assert [r.person.full_name for r in estate_people(session, estate, search="073 123")] == ["Amahle Zulu"]
    assert [r.person.full_name for r in estate_people(session, estate, search="100%_")] == []
    assert len(estate_people(session, estate, role="none")) == 2


def test_an_agent_cannot_move_the_email_of_a_login_that_reaches_other_estates(session, estate):
    other = factories.make_estate(session)
    agent = factories.make_user(session, "agent", estate=estate, password=None)
    owner = factories.make_user(session, "owner", estate=estate, email="owner@example.com",
                                grants=[("owner", other)])
    local = factories.make_user(session, "tenant", unit=factories.make_unit(session, estate), email="local@example.com")
    session.commit()
    with pytest.raises(PersonInvalid, match="outside the estates you administer"):
        update_person(session, estate, owner.person, {"full_name": "Owner", "email": "agent-own@example.com"},
                      actor=agent)
    session.rollback()
    assert update_person(session, estate, owner.person, {"full_name": "Renamed", "email": "owner@example.com"},
                         actor=agent)["new"] == {"full_name": "Renamed"}
    assert update_person(session, estate, local.person, {"full_name": "Local", "email": "new-local@example.com"},
                         actor=agent)["new"]["email"] == "new-local@example.com"
