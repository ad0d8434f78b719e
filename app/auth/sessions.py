"""Signed-in sessions that the server can end: each carries the user's session version.

A Flask session lives in a signed cookie, so logging out on the browser alone leaves a copy
of the old cookie valid until it expires. The user row holds a `session_version`; the id
Flask-Login keeps in the session (and in a remember cookie) is `"<user id>:<version>"`
(`User.get_id`), the loader refuses any other version, and `end_sessions` bumps it: every
session the user has open, on any device, ends at once.
"""
from sqlalchemy.orm import Session

from app.models import User


def user_for_session(session: Session, token: str) -> User | None:
    """The user a session's token names, or None when it is malformed or its version has ended."""
    user_id, _, version = (token or "").partition(":")
    if not (user_id.isascii() and user_id.isdigit() and version.isascii() and version.isdigit()):
        return None  # also a session from before versions existed: sign in again
    user = session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
        return None
    return user


def end_sessions(session: Session, user: User) -> None:
    """End every open session of the user (a new sign-in starts a fresh one); the caller commits."""
    # In SQL, so two logouts at once both count and neither reads a stale version.
    user.session_version = User.session_version + 1
    session.flush()
