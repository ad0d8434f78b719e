"""A user's role checks: one small query per loaded user, never every grant, and never stale."""
from contextlib import contextmanager

from sqlalchemy import event, select

from app.extensions import db
from app.models import RoleGrant, User
from tests import factories


@contextmanager
def statements():
    """Collect the SQL statements run inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def test_role_checks_query_distinct_roles_once_without_loading_grants(session):
    estate = factories.make_estate(session)
    units = [factories.make_unit(session, estate) for _ in range(20)]
    user_id = factories.make_user(session, grants=[("owner", unit) for unit in units]
                                  + [("tenant", units[0])]).id
    session.commit()
    session.expunge_all()
    with statements() as seen:
        user = session.get(User, user_id)
        for _ in range(3):
            assert not user.is_staff
            assert user.roles == ["tenant", "owner"]
    assert len(seen) == 2, seen  # the user, then its distinct roles
    assert "DISTINCT" in seen[1] and "grants" not in user.__dict__


def test_role_set_follows_new_and_removed_grants(session):
    estate = factories.make_estate(session)
    user = factories.make_user(session, "owner", estate=estate)
    session.commit()
    assert user.roles == ["owner"]
    user.grants.append(RoleGrant(role="staff"))
    assert user.is_staff, "a grant added through the relationship counts at once"
    session.commit()
    assert user.roles == ["staff", "owner"]
    session.delete(session.scalar(select(RoleGrant).where(RoleGrant.user_id == user.id,
                                                           RoleGrant.role == "staff")))
    session.commit()
    assert not user.is_staff, "a commit expires the user, and with it the cached roles"
    assert user.roles == ["owner"]


def test_a_new_user_reads_its_roles_from_its_pending_grants(session):
    estate = factories.make_estate(session)
    user = User(email="pending@example.test")
    user.grants.append(RoleGrant(role="agent", estate_id=estate.id))
    assert user.roles == ["agent"] and not user.is_staff


def test_the_page_language_reads_one_grant_row_not_every_grant(session):
    """Choosing a page's language falls back to the estate of a user's first grant: one small
    statement (an owner of 500 units used to load 500 grants on every page)."""
    from app.i18n import home_estate_id

    estate = factories.make_estate(session)
    units = [factories.make_unit(session, estate) for _ in range(20)]
    user = factories.make_user(session, grants=[("owner", unit) for unit in units])
    estate_grant = factories.make_user(session, "agent", estate=estate)
    nothing = factories.make_user(session)
    session.commit()
    expected, _ = estate.id, user.person  # loaded before counting
    with statements() as seen:
        assert home_estate_id(session, user) == expected
    assert len(seen) == 1 and "LIMIT" in seen[0], seen
    assert home_estate_id(session, estate_grant) == estate.id
    assert home_estate_id(session, nothing) is None
