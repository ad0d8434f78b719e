"""Forgotten passwords: a signed, expiring, single-use reset link sent by email.

The token binds the login's current password hash and session version, so it stops working
once the password is changed (or every session is ended) and after
PASSWORD_RESET_MAX_AGE_SECONDS. Asking for a link answers the same whether or not the
address has a login: the page never tells who has an account.
"""
import hashlib

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import audit
from app.auth.sessions import end_sessions
from app.models import User
from app.notify import notify

SALT = "meterwise-password-reset"


class ResetInvalid(Exception):
    """The reset link is expired, tampered with or already used."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _fingerprint(user: User) -> str:
    text = f"{user.password_hash or ''}:{user.session_version}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def reset_link(user: User) -> str:
    """An absolute link that lets the user choose a new password (once)."""
    token = _serializer().dumps({"user": user.id, "fp": _fingerprint(user)})
    path = current_app.url_map.bind("reset").build("auth.reset_password", {"token": token})
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


def request_reset(session: Session, email: str) -> bool:
    """Email a reset link when `email` is an active login's; commits once. True when one was sent.

    The caller shows the same answer either way.
    """
    address = (email or "").strip().lower()[:254]
    user = session.scalar(select(User).where(func.lower(User.email) == address)) if address else None
    if user is None or not user.active:
        return False
    minutes = current_app.config["PASSWORD_RESET_MAX_AGE_SECONDS"] // 60
    notify(session, "password_reset", {"name": user.display_name, "link": reset_link(user),
                                       "minutes": minutes}, user=user, channels=("email",))
    audit.record(session, "user.password_reset_requested", user, new={"email": user.email})
    session.commit()
    return True


def user_from_reset(session: Session, token: str) -> User:
    """The user a reset token names, or raise ResetInvalid."""
    try:
        data = _serializer().loads(token, max_age=current_app.config["PASSWORD_RESET_MAX_AGE_SECONDS"])
    except SignatureExpired:
        raise ResetInvalid("This reset link has expired. Ask for a new one.") from None
    except BadSignature:
        raise ResetInvalid("This reset link is not valid.") from None
    user_id = data.get("user") if isinstance(data, dict) else None
    user = session.get(User, user_id) if isinstance(user_id, int) and 0 < user_id < 2**31 else None
    if user is None or not user.active or data.get("fp") != _fingerprint(user):
        raise ResetInvalid("This reset link has already been used or is no longer valid.")
    return user


def reset_password(session: Session, user: User, password: str, actor: audit.Actor | None = None) -> None:
    """Set the new password and end every other session of the user; commits once."""
    user.set_password(password)
    end_sessions(session, user)
    audit.record(session, "user.password_reset", user, actor=actor)
    session.commit()
