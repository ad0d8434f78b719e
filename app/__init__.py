"""Meterwise: `create_app()` wires configuration, extensions, blueprints, errors and commands."""
import logging
import os

from flask import Flask, g, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app.config import CONFIGS, INSTANCE_DIR

# Modules that define @job functions; workers and inline runs need them registered.
JOB_MODULES = [
    "app.ledger.verify",
    "app.ledger.anchors",
    "app.notify.email",
    "app.statements.runs",
    "app.payments.vendor_credit",
    "app.sources.uisp",
    "app.sources.sparkmeter",
    "app.sources.koios_payments",
    "app.sources.thundercloud",
    "app.billing.schedule",
    "app.metering.alerts",
    "app.metering.credit_control",
    "app.metering.archive",
    "app.notify.budget_alerts",
    "app.ledger.pocket_flows",
    "app.estates.imports",
    "app.billing.levies",  # levy run (issue 18)
    "app.payments.bulk_topup",  # issue 15
    "app.payments.credit",  # issue 15: receipts of payments credited together
    "app.estates.notices",  # issue 15: agents' outage and maintenance notices
    "app.analytics.utility_jobs",  # utility layer (issue 19)
    "app.notify.webhooks_out",  # issue 21: webhook deliveries and their retries
    "app.billing.settlement",  # issue 20: settlement runs
    "app.billing.shared_solar",  # issue 19: the monthly shared-solar allocation
    "app.analytics.daily_reconciliation",  # issue 20: daily reconciliation
    "app.billing.ladder",  # arrears (issue 16)
    "app.billing.cohorts",  # debt cohorts (issue 16, A5)
    "app.sources.backfill",  # issue 22: historical backfills
    "app.reports.subscriptions",  # issue 22: report subscriptions
    "app.integration.idempotency",  # issue 21: the daily purge of stored API responses
    "app.integration.events",  # issue 21: meter.offline webhook events
]


def create_app(config: str | type | None = None) -> Flask:
    """Build the Flask app; `config` is a key of CONFIGS or a class (tests pass their own)."""
    app = Flask(__name__, template_folder="../templates", static_folder="../static",
                instance_path=str(INSTANCE_DIR))
    if config is None:
        config = os.environ.get("METERWISE_CONFIG", "dev")
    app.config.from_object(CONFIGS[config] if isinstance(config, str) else config)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from app.routing import install_converters

    install_converters(app)  # before the blueprints add their `<int:...>` routes
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
    register_security_headers(app)
    register_template_helpers(app)
    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    import importlib

    from app import models  # noqa: F401  (every model registered before migrations look)
    for module in JOB_MODULES:  # importing a module registers its @job functions
        importlib.import_module(module)
    from app.audit import Actor, current_actor
    from app.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(app.root_path, "..", "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(token: str):
        from app.auth.sessions import user_for_session

        return user_for_session(db.session, token)

    @app.before_request
    def remember_actor() -> None:
        # Domain code never reads the request; audit rows learn who acted from this.
        if current_user.is_authenticated:
            actor = Actor(current_user.email, current_user.id, request.remote_addr)
        else:
            actor = Actor("anonymous", None, request.remote_addr)
        g.actor_token = current_actor.set(actor)

    @app.teardown_request
    def forget_actor(_error) -> None:
        # Reset, so work done after the request (tests, CLI) is not filed under its user.
        token = g.pop("actor_token", None)
        if token is not None:
            try:
                current_actor.reset(token)
            except ValueError:  # set in another context (e.g. a streamed response)
                pass

    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        os.makedirs(app.instance_path, exist_ok=True)
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        @event.listens_for(Engine, "connect")
        def sqlite_pragmas(dbapi_connection, _record) -> None:
            if type(dbapi_connection).__module__.startswith("sqlite3"):
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=10000")
                cursor.close()


def register_blueprints(app: Flask) -> None:
    from app.api.health import bp as health_bp
    from app.auth import bp as auth_bp
    from app.layers import admin, agent, body_corporate, family, owner, portal, staff, tenant, utility

    app.register_blueprint(auth_bp)
    app.register_blueprint(health_bp)
    from app.api.webhooks import bp as webhooks_bp; app.register_blueprint(webhooks_bp)  # noqa: E702
    from app.api.readings import bp as readings_bp; app.register_blueprint(readings_bp)  # noqa: E702
    from app.api import v1_more  # noqa: F401  transactions, readings, imports, groups, cohorts on api_v1's bp
    from app.api.v1 import bp as api_v1_bp; app.register_blueprint(api_v1_bp)  # noqa: E702  (issue 21)
    app.register_blueprint(portal.bp)
    from app.layers.subscriptions import bp as subscriptions_bp; app.register_blueprint(subscriptions_bp)  # noqa: E702  (issue 22)
    for layer in (tenant, owner, family, body_corporate, agent, utility, staff, admin):
        app.register_blueprint(layer.bp)


def register_errorhandlers(app: Flask) -> None:
    from app.api.problems import is_api_request, problem, register_problem_handlers
    from app.extensions import db
    from app.i18n.label_texts import N_

    register_problem_handlers(app)

    def transaction_failed() -> bool:
        """Whether the request's transaction can no longer run a statement."""
        session = db.session()  # the request's Session behind the scoped proxy
        if not session.in_transaction():
            return False
        if not session.is_active:  # a failed flush
            return True
        raw = session.connection().connection.driver_connection
        status = getattr(getattr(raw, "info", None), "transaction_status", None)  # psycopg 3
        return status is not None and status.name == "INERROR"  # PostgreSQL: "transaction is aborted"

    def render_error(code: int, title: str, message: str):
        # The page's own queries (the signed-in user's roles for the menu) need a working
        # transaction: a failed one would make the error page fail too. A 500 discards the
        # request's work whatever its state; a 4xx only when its transaction failed (tests
        # share one session between their data and the request, and the views commit
        # explicitly, so nothing uncommitted of a refused request is ever kept).
        if code >= 500 or transaction_failed():
            db.session.rollback()
        if is_api_request():  # the JSON API answers problem+json, pages an HTML page
            return problem(code, message)
        from app.htmx import is_partial
        from app.i18n.formatting import translate_text

        title, message = translate_text(title), translate_text(message)  # the texts below are N_() messages

        if is_partial():  # htmx swaps a 400 into the element that asked: the message alone
            return render_template("_refusal.html", message=message), code
        return render_template("error.html", code=code, title=title, message=message), code

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_error(400, N_("Form expired"), N_("The form was missing its security token or it "
                            "expired. Go back, reload the page and try again."))

    from app.periods import InvalidPeriod

    @app.errorhandler(InvalidPeriod)
    def invalid_period(error):
        return render_error(400, N_("Not a month"), str(error))

    @app.errorhandler(400)
    def bad_request(error):
        return render_error(400, N_("Bad request"), getattr(error, "description", "") or N_("The request was not understood."))

    @app.errorhandler(404)
    def not_found(error):
        return render_error(404, N_("Not found"), N_("There is nothing here, or it is not yours to see."))

    @app.errorhandler(429)
    def too_many(error):
        return render_error(429, N_("Too many attempts"), N_("Too many attempts in a short time. "
                            "Wait a minute and try again."))

    from sqlalchemy.exc import IntegrityError

    @app.errorhandler(IntegrityError)
    def integrity_error(error):
        # Two people saving the same thing at the same moment: both passed the form's checks and
        # the database's unique key refused the second. Say so (409) instead of a 500; anything
        # else the database refuses is a bug and stays a 500 (logged).
        if not unique_violation(error):
            app.logger.error("database refused a write", exc_info=error)
            return server_error(error)
        db.session.rollback()
        return render_error(409, N_("Saved at the same moment"), N_(
            "Someone else saved the same thing (a unit number, an email, a reference) a moment ago, so this was "
            "not saved. Reload the page to see theirs, then try again if it is still needed."))

    @app.errorhandler(500)
    def server_error(error):
        return render_error(500, N_("Something went wrong"), N_("The error was logged. Nothing was "
                            "half-saved; try again in a moment."))


def unique_violation(error) -> bool:
    """Whether a database IntegrityError is a unique key refusing a duplicate (PostgreSQL 23505, SQLite's text)."""
    original = getattr(error, "orig", None)
    if getattr(original, "sqlstate", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(original)


def content_security_policy(config) -> str:
    """The CSP of every page: our own scripts, styles and requests only; never framed."""
    from urllib.parse import urlsplit

    # The PayFast checkout page posts its signed form to PayFast's process URL.
    payfast = urlsplit(config.get("PAYFAST_PROCESS_URL") or "")
    form_targets = " ".join(["'self'"] + ([f"{payfast.scheme}://{payfast.netloc}"] if payfast.netloc else []))
    return "; ".join([
        "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
        "object-src 'none'", "base-uri 'self'", f"form-action {form_targets}",
        "frame-ancestors 'none'",
    ])


def register_security_headers(app: Flask) -> None:
    """Send the security headers on every response, pages, files and errors alike (CSP on pages)."""
    policy = content_security_policy(app.config)
    headers = {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
        # Same-origin only: paths such as /invite/<token> must not reach other sites.
        "Referrer-Policy": "same-origin",
    }
    if app.config.get("HSTS_MAX_AGE"):  # production only: dev and tests speak plain HTTP
        headers["Strict-Transport-Security"] = f"max-age={app.config['HSTS_MAX_AGE']}; includeSubDomains"

    @app.after_request
    def add_security_headers(response):
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        # Documents only: on a PDF the policy would stop Chrome's own viewer from showing
        # it (object-src, and the viewer's inline styles); CSV and JSON run nothing anyway.
        if response.mimetype in ("text/html", "image/svg+xml"):
            response.headers.setdefault("Content-Security-Policy", policy)
        return response


def register_template_helpers(app: Flask) -> None:
    from app import labels
    from app.presenters import install

    install(app)
    labels.install(app)
    from app.i18n import init_app as init_languages  # languages (issue 23): after the English filters
    init_languages(app)


def register_commands(app: Flask) -> None:
    from app.cli import register

    register(app)
