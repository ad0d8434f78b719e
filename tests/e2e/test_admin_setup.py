"""An operator sets up an estate from an empty database in the browser (issue 14, X6):
estate, unit, meter and a tenant invite through the pages; the tenant then sets a password
from the invite and sees their unit."""
from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server

from app.extensions import db, limiter

pytestmark = pytest.mark.e2e

STAFF = ("operator@example.test", "operator-password-1")


@pytest.fixture
def empty_server(app):
    """The app on an empty database but for one staff login, served over HTTP."""
    from app.models import RoleGrant, User

    with app.app_context():
        limiter.reset()
        user = User(email=STAFF[0])
        user.set_password(STAFF[1])
        db.session.add_all([user, RoleGrant(user=user, role="staff")])
        db.session.commit()
        db.session.remove()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="empty-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def sign_in(page, url: str, email: str, password: str) -> None:
    page.goto(f"{url}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def invite_path(app, email: str) -> str:
    from app.models import Notification, User

    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        body = db.session.scalar(select(Notification.body).where(
            Notification.user_id == user.id, Notification.template == "invite").order_by(Notification.id.desc()))
        db.session.remove()
    return re.search(r"/invite/[A-Za-z0-9._-]+", body).group(0)


def test_an_operator_sets_up_an_estate_and_the_invited_tenant_sees_their_unit(app, empty_server, open_page, shots):
    url = empty_server
    page = open_page({"width": 1280, "height": 900})
    sign_in(page, url, *STAFF)

    page.goto(f"{url}/admin/estates/new")
    page.fill("#code", "OAK")
    page.fill("#name", "Oakridge Flats")
    page.select_option("#country", "ZA")
    page.select_option("#currency", "ZAR")
    page.select_option("#timezone", "Africa/Johannesburg")
    page.get_by_role("button", name="Create estate").click()
    page.wait_for_load_state()
    assert "Oakridge Flats" in page.content()

    page.goto(f"{url}/admin/")
    page.get_by_role("link", name="Oakridge Flats").click()
    page.get_by_role("navigation", name="Administration of Oakridge Flats").get_by_role("link", name="Units").click()
    estate_units = page.url
    page.goto(estate_units.rstrip("/") + "/new")
    page.fill("#unit-number", "A1")
    page.get_by_role("button", name="Add unit").click()
    page.wait_for_load_state()
    assert re.search(r"/admin/units/\d+$", page.url), page.url

    page.get_by_text("Add a meter").click()  # the meters component loads itself, then opens its form
    page.fill("#add-serial", "000077001")
    page.select_option("#add-utility", "electricity")
    page.get_by_role("button", name="Add meter").click()
    page.wait_for_selector("text=77001")

    page.wait_for_selector("#tenant-person")
    page.get_by_text("New person's details").first.click()
    page.fill("#tenant-full_name", "Zoë Mokoena")
    page.fill("#tenant-email", "zoe@example.test")
    page.get_by_role("button", name="Add tenant").click()
    page.wait_for_selector("text=Zoë Mokoena")
    page.screenshot(path=str(shots / "admin-setup-unit.png"), full_page=True)

    tenant = open_page({"width": 360, "height": 800})
    tenant.goto(url + invite_path(app, "zoe@example.test"))
    tenant.get_by_label("New password").fill("zoe-password-123")
    tenant.get_by_label("Repeat the password").fill("zoe-password-123")
    tenant.get_by_role("button", name="Save and sign in").click()  # not the footer's language buttons
    tenant.wait_for_load_state()
    if "/login" in tenant.url:
        sign_in(tenant, url, "zoe@example.test", "zoe-password-123")
    tenant.goto(f"{url}/tenant/")
    assert "A1" in tenant.content() and "Oakridge Flats" in tenant.content()
    tenant.screenshot(path=str(shots / "admin-setup-tenant.png"), full_page=True)
