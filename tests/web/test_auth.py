"""Signing in and out, CSRF, rate limits, invite links and session cookies (X1)."""
from urllib.parse import urlsplit

import pytest
from flask import url_for
from sqlalchemy import select

from app.auth.invites import invite_link
from app.auth.redirects import safe_next
from app.models import AuditLog, User
from tests import factories
from tests.helpers import csrf_from, page_token, sign_in

LANDING = {
    "staff": "/staff/", "tenant": "/tenant/", "owner": "/owner/", "family": "/family/",
    "body_corporate": "/body-corporate/", "agent": "/agent/", "utility": "/utility/",
}


def path_of(response) -> str:
    return urlsplit(response.headers["Location"]).path


def is_signed_in(client) -> bool:
    """Whether the client's session reaches a login-only page."""
    return client.get("/notifications").status_code == 200


# --- signing in -----------------------------------------------------------------------

@pytest.mark.parametrize("role", sorted(LANDING))
def test_login_redirects_to_the_users_own_layer(world, new_client, role):
    client = new_client()
    response = sign_in(client, world.emails[role])
    assert response.status_code == 302
    assert path_of(response) == LANDING[role]
    assert client.get(LANDING[role]).status_code == 200


def test_login_page_promises_only_the_invites_that_exist(app, new_client):
    # Staff invite with `flask invite`; staff and managing agents from the administration pages.
    page = new_client().get("/login").get_data(as_text=True)
    assert "Meterwise staff or your managing agent email you an invite link" in page
    assert "invite" in app.cli.commands
    assert "admin.invite_person" in app.view_functions and "admin.grant_person" in app.view_functions


def test_login_without_any_role_lands_on_no_access(world, new_client):
    client = new_client()
    response = sign_in(client, world.emails["nobody"])
    assert path_of(response) == "/no-access"
    assert "no estate or unit has been shared with you" in client.get("/no-access").get_data(as_text=True)


def test_login_ignores_email_case_and_records_the_login(world, new_client, committed):
    client = new_client("10.9.9.9")
    response = sign_in(client, world.emails["tenant"].upper())
    assert response.status_code == 302
    with committed() as s:
        user = s.scalar(select(User).where(User.email == world.emails["tenant"]))
        assert user.last_login_at is not None
        row = s.scalar(select(AuditLog).where(AuditLog.action == "user.login"))
        assert (row.actor, row.ip, row.actor_user_id) == (world.emails["tenant"], "10.9.9.9", user.id)


def test_wrong_password_is_refused_with_a_clear_message_and_no_session(world, new_client):
    client = new_client()
    response = sign_in(client, world.emails["tenant"], "not the password")
    assert response.status_code == 401
    assert "That email and password do not match an active login." in response.get_data(as_text=True)
    assert not is_signed_in(client)
    assert client.get("/tenant/").status_code == 302


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(world, new_client):
    response = sign_in(new_client(), "nobody-here@example.test", "whatever it is")
    assert response.status_code == 401
    assert "That email and password do not match an active login." in response.get_data(as_text=True)


def test_inactive_user_is_refused_even_with_the_right_password(committed, new_client):
    with committed() as s:
        email = factories.make_user(s, "staff", active=False).email
    client = new_client()
    response = sign_in(client, email)
    assert response.status_code == 401
    assert "do not match an active login" in response.get_data(as_text=True)
    assert client.get("/staff/").status_code == 302


def test_deactivating_a_user_ends_their_open_session(world, login, committed):
    client = login(world.emails["tenant"])
    assert client.get("/tenant/").status_code == 200
    with committed() as s:
        s.scalar(select(User).where(User.email == world.emails["tenant"])).active = False
    response = client.get("/tenant/")
    assert response.status_code == 302 and path_of(response) == "/login"


def test_anonymous_visitor_is_sent_to_login_and_back_afterwards(world, new_client):
    client = new_client()
    response = client.get("/tenant/units/%d" % world.unit_a)
    assert response.status_code == 302
    assert path_of(response) == "/login"
    assert "next=" in response.headers["Location"]
    after = sign_in(client, world.emails["tenant"], next_url=f"/tenant/units/{world.unit_a}")
    assert path_of(after) == f"/tenant/units/{world.unit_a}"


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/steal", "https:/evil.example", "/\\evil.example",
    "/%5Cevil.example", "/%09/evil.example", "javascript:alert(1)",
])
def test_next_parameter_never_leaves_the_site(world, new_client, target):
    response = sign_in(new_client(), world.emails["tenant"], next_url=target)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "evil.example" not in location and "javascript" not in location
    assert path_of(response) == "/tenant/"


EVIL_TARGETS = ["https://evil.example/", "//evil.example/steal", "https:/evil.example", "/\\evil.example",
                "/\tevil.example", "/\x7f/evil.example", "javascript:alert(1)", "evil.example", ""]


@pytest.mark.parametrize("target", EVIL_TARGETS)
def test_safe_next_refuses_anything_but_a_same_site_path(target):
    assert safe_next(target) is None


def test_safe_next_keeps_a_same_site_path():
    assert safe_next("/staff/metering/alerts?page=2") == "/staff/metering/alerts?page=2"


@pytest.mark.parametrize("target", ["//evil.example", "https://evil.example/x", "/\\evil.example"])
def test_maintenance_switch_never_redirects_off_site(world, login, target):
    client = login(world.emails["staff"])
    token = csrf_from(client.get("/staff/metering").get_data(as_text=True))
    response = client.post("/staff/metering/maintenance", data={"on": "0", "next": target, "csrf_token": token})
    assert response.status_code == 302
    assert "evil.example" not in response.headers["Location"]
    assert path_of(response) == "/staff/metering"
    back = client.post("/staff/metering/maintenance", data={"on": "0", "next": "/staff/metering/alerts",
                                                            "csrf_token": token})
    assert path_of(back) == "/staff/metering/alerts"


def test_every_next_the_app_reads_goes_through_safe_next():
    """A new view reading `next` without the check fails here, before it can redirect off-site."""
    import re
    from pathlib import Path

    app_dir = Path(__file__).resolve().parents[2] / "app"
    reads = re.compile(r"""(request\.(?:args|form|values)(?:\.get\(|\[)\s*["']next["'])""")
    unchecked = [f"{path.relative_to(app_dir)}:{line_no}"
                 for path in sorted(app_dir.rglob("*.py"))
                 for line_no, line in enumerate(path.read_text().splitlines(), 1)
                 for _ in reads.finditer(line) if "safe_next(" not in line]
    assert not unchecked, "`next` read without safe_next():\n" + "\n".join(unchecked)


def test_passwords_are_stored_hashed(committed):
    with committed() as s:
        user = factories.make_user(s, "tenant", estate=factories.make_estate(s))
        stored = user.password_hash
        assert factories.DEFAULT_PASSWORD not in stored
        assert stored.split(":")[0] in {"scrypt", "pbkdf2", "argon2"}
        assert user.check_password(factories.DEFAULT_PASSWORD)
        assert not user.check_password(factories.DEFAULT_PASSWORD + "!")


# --- signing out --------------------------------------------------------------------

def test_logout_ends_the_session(world, login):
    client = login(world.emails["owner"])
    token = csrf_from(client.get("/owner/").get_data(as_text=True))
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and path_of(response) == "/login"
    assert "You are signed out." in client.get("/login").get_data(as_text=True)
    assert client.get("/owner/").status_code == 302


def session_cookie(client) -> str:
    cookie = client.get_cookie("session")
    assert cookie is not None, "the client holds no session cookie"
    return cookie.value


def test_a_copy_of_the_session_cookie_is_dead_after_logout(world, login, new_client, committed):
    """Logout ends the session on the server: replaying the old cookie opens nothing."""
    client = login(world.emails["staff"])
    assert client.get("/staff/").status_code == 200
    stolen = session_cookie(client)
    token = csrf_from(client.get("/staff/").get_data(as_text=True))
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    # From the same address and browser: Flask-Login's "strong" protection already refuses
    # a cookie moved elsewhere, and would hide whether logout ended anything.
    replay = new_client(client.environ_base["REMOTE_ADDR"])
    replay.set_cookie("session", stolen)
    response = replay.get("/staff/")
    assert response.status_code == 302 and path_of(response) == "/login"
    with committed() as s:
        assert s.scalar(select(AuditLog.action).where(AuditLog.action == "user.logout"))


def test_logout_ends_the_users_other_sessions_and_a_new_sign_in_works(world, login):
    phone, laptop = login(world.emails["tenant"]), login(world.emails["tenant"])
    token = csrf_from(phone.get("/tenant/").get_data(as_text=True))
    phone.post("/logout", data={"csrf_token": token})
    assert laptop.get("/tenant/").status_code == 302  # every session of the user ends
    again = login(world.emails["tenant"])
    assert again.get("/tenant/").status_code == 200
    assert login(world.emails["owner"]).get("/owner/").status_code == 200  # others untouched


def test_a_session_from_before_session_versions_is_refused(world, new_client, app, committed):
    """A cookie holding a bare user id (signed before the upgrade) must sign in again."""
    from flask.sessions import SecureCookieSessionInterface
    from flask_login.utils import _create_identifier

    with committed() as s:
        user_id = s.scalar(select(User.id).where(User.email == world.emails["staff"]))
    client = new_client()
    with app.test_request_context(environ_base=client.environ_base):
        identifier = _create_identifier()  # as Flask-Login's "strong" protection expects it
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    client.set_cookie("session", serializer.dumps({"_user_id": str(user_id), "_fresh": True, "_id": identifier}))
    response = client.get("/staff/")
    assert response.status_code == 302 and path_of(response) == "/login"


def test_logout_by_get_is_not_allowed(world, login):
    client = login(world.emails["owner"])
    assert client.get("/logout").status_code == 405
    assert is_signed_in(client)


# --- rate limits ----------------------------------------------------------------------

def test_sixth_login_attempt_in_a_minute_is_refused_with_429(world, new_client):
    client = new_client()
    token = page_token(client)
    statuses = [client.post("/login", data={"email": world.emails["tenant"], "password": "wrong",
                                            "csrf_token": token}).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    refused = client.post("/login", data={"email": world.emails["tenant"],
                                          "password": factories.DEFAULT_PASSWORD, "csrf_token": token})
    assert refused.status_code == 429, "the right password must not get through the limit either"
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert not is_signed_in(client)


def test_login_limit_per_email_holds_across_addresses(world, new_client):
    """Rotating IP addresses does not buy more guesses at one account."""
    statuses = []
    for attempt in range(6):
        client = new_client(f"10.66.0.{attempt + 1}")
        statuses.append(sign_in(client, world.emails["agent"], "wrong").status_code)
    assert statuses == [401] * 5 + [429]


def test_login_limit_per_address_holds_across_emails(world, new_client):
    """One address cannot spray guesses over many accounts."""
    client = new_client("10.77.0.1")
    token = page_token(client)
    emails = [f"guess{n}@example.test" for n in range(5)] + [world.emails["tenant"]]
    statuses = [client.post("/login", data={"email": e, "password": "wrong", "csrf_token": token}).status_code
                for e in emails]
    assert statuses == [401] * 5 + [429]


def test_viewing_the_login_page_is_not_rate_limited(world, new_client):
    client = new_client()
    assert all(client.get("/login").status_code == 200 for _ in range(8))
    assert sign_in(client, world.emails["tenant"]).status_code == 302


# --- CSRF -----------------------------------------------------------------------------

def test_login_post_without_csrf_token_is_refused(world, new_client):
    client = new_client()
    client.get("/login")
    response = client.post("/login", data={"email": world.emails["tenant"],
                                           "password": factories.DEFAULT_PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert not is_signed_in(client)


def test_login_post_with_a_forged_csrf_token_is_refused(world, new_client):
    client = new_client()
    client.get("/login")
    response = client.post("/login", data={"email": world.emails["tenant"],
                                           "password": factories.DEFAULT_PASSWORD,
                                           "csrf_token": "forged"})
    assert response.status_code == 400
    assert not is_signed_in(client)


def test_csrf_token_of_another_session_is_refused(world, new_client):
    other = page_token(new_client(), "/login")
    client = new_client()
    client.get("/login")
    response = client.post("/login", data={"email": world.emails["tenant"],
                                           "password": factories.DEFAULT_PASSWORD, "csrf_token": other})
    assert response.status_code == 400


def test_logout_without_csrf_token_keeps_the_session(world, login):
    client = login(world.emails["tenant"])
    assert client.post("/logout").status_code == 400
    assert is_signed_in(client)


def test_feature_toggle_without_csrf_token_changes_nothing(world, login, committed):
    from app.models import Estate

    client = login(world.emails["staff"])
    response = client.post(f"/staff/estates/{world.estate1}/features/credit_control", data={"enabled": "1"})
    assert response.status_code == 400
    with committed() as s:
        assert not s.get(Estate, world.estate1).feature_enabled("credit_control")
        assert s.scalar(select(AuditLog).where(AuditLog.action == "estate.feature")) is None


def test_feature_toggle_with_the_forms_token_works(world, login, committed):
    from app.models import Estate

    client = login(world.emails["staff"])
    token = csrf_from(client.get("/staff/").get_data(as_text=True))
    response = client.post(f"/staff/estates/{world.estate1}/features/credit_control",
                           data={"enabled": "1", "csrf_token": token})
    assert response.status_code == 302
    with committed() as s:
        assert s.get(Estate, world.estate1).feature_enabled("credit_control")


def test_htmx_post_with_the_body_header_token_works(world, login, committed):
    from app.models import Estate

    client = login(world.emails["staff"])
    html = client.get("/staff/").get_data(as_text=True)
    header_token = csrf_from(html.split("<body", 1)[1].split(">", 1)[0] + ">")  # hx-headers on <body>
    response = client.post(f"/staff/estates/{world.estate1}/features/statements",
                           data={"enabled": "0"},
                           headers={"HX-Request": "true", "X-CSRFToken": header_token})
    assert response.status_code == 204
    assert urlsplit(response.headers["HX-Redirect"]).path == "/staff/"
    with committed() as s:
        assert not s.get(Estate, world.estate1).feature_enabled("statements")


def test_htmx_post_without_the_header_is_refused(world, login):
    client = login(world.emails["staff"])
    response = client.post(f"/staff/estates/{world.estate1}/features/statements",
                           data={"enabled": "0"}, headers={"HX-Request": "true"})
    assert response.status_code == 400


# --- invites --------------------------------------------------------------------------

@pytest.fixture
def invited(app, committed):
    """An invited tenant with no password yet, and their invite link (path only)."""
    with committed() as s:
        estate = factories.make_estate(s)
        unit = factories.make_unit(s, estate)
        user = factories.make_user(s, "tenant", unit=unit, password=None)
        s.flush()
        with app.test_request_context():
            link = invite_link(user)
        return user.email, urlsplit(link).path


NEW_PASSWORD = "a long new password 42"


def test_invite_link_sets_a_password_and_signs_in(invited, new_client, committed):
    email, path = invited
    client = new_client()
    page = client.get(path)
    assert page.status_code == 200 and email in page.get_data(as_text=True)
    response = client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD,
                                       "csrf_token": csrf_from(page.get_data(as_text=True))})
    assert response.status_code == 302 and path_of(response) == "/tenant/"
    assert "Your password is set" in client.get("/tenant/").get_data(as_text=True)
    # The new password works for a normal sign-in, and is stored hashed.
    assert sign_in(new_client(), email, NEW_PASSWORD).status_code == 302
    with committed() as s:
        user = s.scalar(select(User).where(User.email == email))
        assert NEW_PASSWORD not in user.password_hash


def test_invite_link_cannot_be_used_twice(invited, new_client):
    email, path = invited
    client = new_client()
    token = csrf_from(client.get(path).get_data(as_text=True))
    assert client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD,
                                   "csrf_token": token}).status_code == 302
    again = new_client()
    response = again.get(path)
    assert response.status_code == 400
    assert "already been used" in response.get_data(as_text=True)
    # Nor can a form fetched before the first use overwrite the password afterwards.
    replay = client.post(path, data={"password": "attacker password 99", "confirm": "attacker password 99",
                                     "csrf_token": token})
    assert replay.status_code == 400
    assert sign_in(new_client(), email, "attacker password 99").status_code == 401


def test_tampered_invite_token_is_refused(invited, new_client):
    _, path = invited
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    response = new_client().get(tampered)
    assert response.status_code == 400
    assert "not valid" in response.get_data(as_text=True)


def test_invite_password_must_be_long_and_confirmed(invited, new_client):
    _, path = invited
    client = new_client()
    token = csrf_from(client.get(path).get_data(as_text=True))
    short = client.post(path, data={"password": "short", "confirm": "short", "csrf_token": token})
    assert short.status_code == 400 and "at least 10 characters" in short.get_data(as_text=True)
    differ = client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x",
                                     "csrf_token": token})
    assert differ.status_code == 400 and "The two passwords differ." in differ.get_data(as_text=True)
    assert not is_signed_in(client)


def test_expired_invite_link_is_refused(invited, new_client, app, monkeypatch):
    _, path = invited
    monkeypatch.setitem(app.config, "INVITE_MAX_AGE_SECONDS", -1)
    response = new_client().get(path)
    assert response.status_code == 400
    assert "expired" in response.get_data(as_text=True)


# --- cookies --------------------------------------------------------------------------

def test_session_cookie_is_httponly_and_samesite_lax(world, new_client):
    client = new_client()
    token = page_token(client)
    response = client.post("/login", data={"email": world.emails["tenant"],
                                           "password": factories.DEFAULT_PASSWORD, "csrf_token": token})
    cookies = [v for k, v in response.headers.items() if k.lower() == "set-cookie"]
    session_cookie = [c for c in cookies if c.startswith("session=")]
    assert session_cookie, cookies
    attributes = {part.strip().lower() for part in session_cookie[0].split(";")}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes


def test_url_for_helpers_match_the_paths_used_here(app):
    """The literal paths in these tests are the app's real routes."""
    with app.test_request_context():
        assert url_for("auth.login") == "/login"
        assert url_for("auth.logout") == "/logout"
        for role, path in LANDING.items():
            assert url_for(f"{role}.index") == path


def test_cli_invite_prints_a_link_that_sets_a_password(app, session):
    """`flask invite EMAIL` works outside a request and its link opens the password form."""
    from tests.factories import make_user

    user = make_user(session, email="cli-invite@example.com", role="staff", password=None)
    session.commit()
    result = app.test_cli_runner().invoke(args=["invite", user.email])
    assert result.exit_code == 0, result.output
    link = result.output.strip().splitlines()[-1]
    assert link.startswith(app.config["PUBLIC_URL"] + "/invite/")
    page = app.test_client().get(link.removeprefix(app.config["PUBLIC_URL"]))
    assert page.status_code == 200
    assert b"Choose a password" in page.data
