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
    "app.notify",
    "app.reports.statement_runs",
    "app.payments.vendor_credit",
    "app.sources.uisp",
    "app.sources.sparkmeter",
    "app.sources.koios_payments",
    "app.sources.thundercloud",
    "app.billing.schedule",
    "app.metering.alerts",
    "app.budget_alerts",
    "app.reports.pocket_flows",
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
    register_extensions(app)
    register_blueprints(app)
    register_errorhandlers(app)
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
    def load_user(user_id: str):
        return db.session.get(models.User, int(user_id))

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
    from app.layers import agent, body_corporate, family, owner, portal, staff, tenant, utility

    app.register_blueprint(auth_bp)
    app.register_blueprint(health_bp)
    from app.api.webhooks import bp as webhooks_bp; app.register_blueprint(webhooks_bp)  # noqa: E702
    from app.api.readings import bp as readings_bp; app.register_blueprint(readings_bp)  # noqa: E702
    app.register_blueprint(portal.bp)
    for layer in (tenant, owner, family, body_corporate, agent, utility, staff):
        app.register_blueprint(layer.bp)


def register_errorhandlers(app: Flask) -> None:
    def render_error(code: int, title: str, message: str):
        return render_template("error.html", code=code, title=title, message=message), code

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_error(400, "Form expired", "The form was missing its security token or it "
                            "expired. Go back, reload the page and try again.")

    @app.errorhandler(400)
    def bad_request(error):
        return render_error(400, "Bad request", getattr(error, "description", "") or "The request was not understood.")

    @app.errorhandler(404)
    def not_found(error):
        return render_error(404, "Not found", "There is nothing here, or it is not yours to see.")

    @app.errorhandler(429)
    def too_many(error):
        return render_error(429, "Too many attempts", "Too many attempts in a short time. "
                            "Wait a minute and try again.")

    @app.errorhandler(500)
    def server_error(error):
        return render_error(500, "Something went wrong", "The error was logged. Nothing was "
                            "half-saved; try again in a moment.")


def register_template_helpers(app: Flask) -> None:
    from app import labels
    from app.presenters import install

    install(app)
    labels.install(app)


def register_commands(app: Flask) -> None:
    from app.cli import register

    register(app)
