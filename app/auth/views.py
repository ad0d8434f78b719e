"""Login, logout, invite acceptance, and the home redirect to the user's first layer."""
from flask_babel import gettext
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import func, select

from app import audit
from app.auth.forms import ForgotPasswordForm, LoginForm, SetPasswordForm
from app.auth.invites import InviteInvalid, user_from_invite
from app.auth.passwords import ResetInvalid, request_reset, reset_password, user_from_reset
from app.auth.redirects import safe_next
from app.auth.sessions import end_sessions
from app.extensions import db, limiter
from app.models import User, utcnow

bp = Blueprint("auth", __name__)

LAYER_ENDPOINTS = {
    "staff": "staff.index", "agent": "agent.index", "body_corporate": "body_corporate.index",
    "utility": "utility.index", "owner": "owner.index", "tenant": "tenant.index",
    "family": "family.index",
}


def home_for(user: User) -> str:
    """The landing page of the user's first layer."""
    for role in ("staff", "agent", "body_corporate", "utility", "owner", "tenant", "family"):
        if role in user.roles:
            return url_for(LAYER_ENDPOINTS[role])
    return url_for("auth.no_access")


@bp.get("/")
def home():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(home_for(current_user))


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _login_email_key() -> str:
    return "login-email:" + (request.form.get("email") or "").strip().lower()


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_login_email_key)
def login():
    form = LoginForm()
    if form.validate_on_submit():
        email = form.email.data.strip().lower()
        user = db.session.scalar(select(User).where(func.lower(User.email) == email))
        if user is None or not user.active or not user.check_password(form.password.data):
            flash(gettext("That email and password do not match an active login."), "error")
            return render_template("auth/login.html", form=form), 401
        login_user(user)
        user.last_login_at = utcnow()
        audit.record(db.session, "user.login", user,
                     actor=audit.Actor(user.email, user.id, request.remote_addr))
        db.session.commit()
        return redirect(safe_next(request.args.get("next")) or home_for(user))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@login_required
def logout():
    user = current_user._get_current_object()
    # Server-side: a copy of this session's cookie (and every other session of the user)
    # no longer signs anyone in.
    end_sessions(db.session, user)
    audit.record(db.session, "user.logout", user,
                 actor=audit.Actor(user.email, user.id, request.remote_addr))
    db.session.commit()
    logout_user()
    flash(gettext("You are signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/invite/<token>", methods=["GET", "POST"])
def accept_invite(token: str):
    try:
        user = user_from_invite(db.session, token)
    except InviteInvalid as error:
        return render_template("auth/invite_invalid.html", message=str(error)), 400
    form = SetPasswordForm()
    if form.validate_on_submit():
        user.set_password(form.password.data)
        audit.record(db.session, "user.password_set", user,
                     actor=audit.Actor(user.email, user.id, request.remote_addr))
        db.session.commit()
        login_user(user)
        flash(gettext("Your password is set. Welcome to Meterwise."), "success")
        return redirect(home_for(user))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/set_password.html", form=form, user=user), status


def _reset_email_key() -> str:
    return "reset-email:" + (request.form.get("email") or "").strip().lower()[:254]


RESET_SENT = ("If that address has a Meterwise login, we have emailed it a link to choose a new "
              "password. The link works once, for {minutes} minutes.")


@bp.route("/forgot-password", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_reset_email_key)
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        request_reset(db.session, form.email.data)  # the same answer whether or not it has a login
        minutes = current_app.config["PASSWORD_RESET_MAX_AGE_SECONDS"] // 60
        return render_template("auth/forgot_password.html", form=None, sent=RESET_SENT.format(minutes=minutes))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/forgot_password.html", form=form, sent=None), status


@bp.route("/reset-password/<token>", methods=["GET", "POST"], endpoint="reset_password")
def reset_password_page(token: str):
    try:
        user = user_from_reset(db.session, token)
    except ResetInvalid as error:
        return render_template("auth/invite_invalid.html", message=str(error), title=gettext("Reset link"),
                               again=True), 400
    form = SetPasswordForm()
    if form.validate_on_submit():
        reset_password(db.session, user, form.password.data,
                       actor=audit.Actor(user.email, user.id, request.remote_addr))
        login_user(user)
        flash(gettext("Your new password is set. Other devices signed in as you are signed out."), "success")
        return redirect(home_for(user))
    status = 400 if request.method == "POST" else 200
    return render_template("auth/set_password.html", form=form, user=user,
                           title=gettext("Choose a new password")), status


@bp.get("/no-access")
@login_required
def no_access():
    return render_template("auth/no_access.html")
