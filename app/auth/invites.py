"""Invite links: signed, time-limited, single use (the token binds the current password hash)."""
import hashlib

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from app import audit
from app.models import User
from app.notify import notify

SALT = "meterwise-invite"


class InviteInvalid(Exception):
    """The link is expired, tampered with or already used."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _fingerprint(user: User) -> str:
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def invite_link(user: User) -> str:
    """Return an absolute link that lets the user choose a password."""
    token = _serializer().dumps({"user": user.id, "fp": _fingerprint(user)})
    # Built from the URL map, not url_for: the CLI and workers send invites outside a request.
    path = current_app.url_map.bind("invite").build("auth.accept_invite", {"token": token})
    return current_app.config["PUBLIC_URL"].rstrip("/") + path


def send_invite(session: Session, user: User, inviter: str, estate: str | None = None) -> str:
    """Email an invite link to the user (in-app too) and audit it; returns the link."""
    link = invite_link(user)
    days = current_app.config["INVITE_MAX_AGE_SECONDS"] // 86400
    notify(session, "invite", {"name": user.display_name, "inviter": inviter, "estate": estate,
                               "link": link, "days": days}, user=user, channels=("email",))
    audit.record(session, "user.invited", user, new={"email": user.email})
    return link


def user_from_invite(session: Session, token: str) -> User:
    """Return the user an invite token names, or raise InviteInvalid."""
    try:
        data = _serializer().loads(token, max_age=current_app.config["INVITE_MAX_AGE_SECONDS"])
    except SignatureExpired:
        raise InviteInvalid("This invite link has expired. Ask for a new one.") from None
    except BadSignature:
        raise InviteInvalid("This invite link is not valid.") from None
    user = session.get(User, data.get("user"))
    if user is None or not user.active or data.get("fp") != _fingerprint(user):
        raise InviteInvalid("This invite link has already been used or is no longer valid.")
    return user
