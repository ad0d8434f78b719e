"""Security headers on every response, templates the CSP can run, and error pages that survive
the request that failed (issue 11, items 7 and 9)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask_login import login_required
from sqlalchemy import text

from app import create_app
from app.config import ProductionConfig, TestConfig
from app.extensions import db
from tests.helpers import sign_in

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def csp_of(response) -> dict[str, str]:
    """The response's Content-Security-Policy as directive -> sources."""
    policy = response.headers.get("Content-Security-Policy", "")
    return {part.split(" ", 1)[0]: part.split(" ", 1)[1] if " " in part else ""
            for part in (p.strip() for p in policy.split(";")) if part}


def assert_security_headers(response) -> None:
    csp = csp_of(response)
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_pages_and_error_pages_carry_the_security_headers(world, login, new_client):
    staff = login(world.emails["staff"])
    page = staff.get("/staff/")
    assert page.status_code == 200
    assert_security_headers(page)
    missing = staff.get("/staff/meters/987654")
    assert missing.status_code == 404 and "Not found" in missing.get_data(as_text=True)
    assert_security_headers(missing)
    anonymous = new_client().get("/no-such-page")
    assert anonymous.status_code == 404
    assert_security_headers(anonymous)
    assert_security_headers(new_client().get("/login"))
    assert "Strict-Transport-Security" not in page.headers  # plain HTTP outside production


def test_a_pdf_gets_the_headers_but_no_policy_that_would_blank_chromes_viewer(world, login):
    response = login(world.emails["tenant"]).get(f"/tenant/units/{world.unit_a}/statements/2026-01.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "Content-Security-Policy" not in response.headers


def test_the_checkout_form_may_post_to_payfast_only(world, new_client, app):
    csp = csp_of(new_client().get("/login"))
    assert csp["form-action"] == "'self' http://127.0.0.1:5101"  # TestConfig's PAYFAST_PROCESS_URL


def test_production_sends_strict_transport_security(app):
    class Production(ProductionConfig):
        SQLALCHEMY_DATABASE_URI = app.config["SQLALCHEMY_DATABASE_URI"]
        SECRET_KEY = "production-test-secret"

    production = create_app(Production)
    try:
        response = production.test_client().get("/login")
        assert response.status_code == 200
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
        assert_security_headers(response)
    finally:
        with production.app_context():
            db.engine.dispose()


# --- templates the policy can run --------------------------------------------------------

INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.I)
HANDLER_ATTRIBUTE = re.compile(r"""\son[a-z]+\s*=\s*["']""", re.I)
EVAL_ATTRIBUTE = re.compile(r"\shx-on[:\-]|\shx-vals\s*=\s*['\"]\s*js:|hx-trigger=\"[^\"]*\[", re.I)
STYLE = re.compile(r"\sstyle\s*=|<style", re.I)


@pytest.mark.parametrize("pattern, what", [
    (INLINE_SCRIPT, "an inline <script> (script-src 'self' refuses it; JSON data blocks are fine)"),
    (HANDLER_ATTRIBUTE, "an on*= handler attribute (refused by the CSP; use static/js)"),
    (EVAL_ATTRIBUTE, "an htmx attribute that needs eval (hx-on, js: values, trigger filters)"),
    (STYLE, "an inline style (style-src 'self' refuses it; use a class in static/css)"),
])
def test_no_template_needs_what_the_policy_refuses(pattern, what):
    found = [f"{path.relative_to(TEMPLATES)}:{text_.count(chr(10), 0, match.start()) + 1}"
             for path in sorted(TEMPLATES.rglob("*.html"))
             for text_ in [path.read_text()] for match in pattern.finditer(text_)]
    assert not found, f"{what}:\n" + "\n".join(found)


def test_htmx_injects_no_inline_styles_and_evaluates_nothing(world, new_client):
    page = new_client().get("/login").get_data(as_text=True)
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'>', page)
    assert config, "base.html carries the htmx config"
    assert '"includeIndicatorStyles": false' in config.group(1)
    assert '"allowEval": false' in config.group(1)


# --- error pages after a failed query -------------------------------------------------

@pytest.fixture
def failing_app(app):
    """A second app on the test database with a page whose query fails mid-transaction."""
    class Config(TestConfig):
        SQLALCHEMY_DATABASE_URI = app.config["SQLALCHEMY_DATABASE_URI"]
        PROPAGATE_EXCEPTIONS = False  # answer with the 500 page, as production does

    broken = create_app(Config)

    @broken.get("/broken")
    @login_required
    def broken_page():
        db.session.execute(text("SELECT 1 / 0"))  # PostgreSQL now refuses every statement

    yield broken
    with broken.app_context():
        db.engine.dispose()


def test_the_500_page_renders_after_a_failed_query(world, failing_app):
    client = failing_app.test_client()
    assert sign_in(client, world.emails["staff"]).status_code == 302
    response = client.get("/broken")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    # The page is ours, with the signed-in menu (its queries ran after the rollback).
    assert "Something went wrong" in page and "Sign out" in page
    assert_security_headers(response)


def test_a_404_after_a_failed_query_renders_too(world, failing_app):
    @failing_app.get("/broken-then-missing")
    @login_required
    def broken_then_missing():
        from flask import abort
        from sqlalchemy.exc import DataError

        try:
            db.session.execute(text("SELECT 1 / 0"))
        except DataError:
            abort(404)  # a view that turns a failed lookup into 404 without rolling back

    client = failing_app.test_client()
    assert sign_in(client, world.emails["staff"]).status_code == 302
    response = client.get("/broken-then-missing")
    assert response.status_code == 404 and "Sign out" in response.get_data(as_text=True)
