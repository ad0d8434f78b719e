"""Flask CLI commands: `flask seed-demo`, `flask ledger verify`, `flask invite`."""
import sys

import click
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy import func, select

from app.extensions import db

ledger_cli = AppGroup("ledger", help="Inspect the ledger.")


def _anchor(ctx, param, values):
    from app.ledger.anchors import AnchorFormatError, parse_anchor

    try:
        return [parse_anchor(value) for value in values]
    except AnchorFormatError as error:
        raise click.BadParameter(str(error)) from None


def estate_by_code(code: str | None):
    """The estate a CLI command's `--estate CODE` names (None when no code is given); an unknown code
    stops the command with a message, never a traceback."""
    from app.models import Estate

    if not code:
        return None
    estate = db.session.scalar(select(Estate).where(Estate.code == code))
    if estate is None:
        raise click.ClickException(f"no estate with code {code!r}")
    return estate


@ledger_cli.command("verify")
@click.option("--estate", "estate_code", help="Only this estate's chain (its code).")
@click.option("--anchor", "anchors", multiple=True, callback=_anchor, metavar="ESTATE:SEQ:HASH",
              help="A chain head printed on a statement or in the anchor email; repeatable.")
def ledger_verify(estate_code: str | None, anchors) -> None:
    """Recompute hash chains and cached balances and check anchors; exit 1 if anything is broken."""
    from app.ledger.verify import summarise, verify_ledger

    estate = estate_by_code(estate_code)
    report = verify_ledger(db.session, estate.id if estate else None, anchors)
    click.echo(summarise(report))
    sys.exit(0 if report.ok else 1)


@click.command("seed-demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when estates already exist.")
@click.option("--days", default=90, show_default=True, help="Days of half-hourly readings.")
def seed_demo(if_empty: bool, days: int) -> None:
    """Create the demo estates with units, meters, readings, payments and one login per layer."""
    from app.demo import demo_logins, seed
    from app.models import Estate

    if if_empty and db.session.scalar(select(func.count(Estate.id))):
        click.echo("Demo data already present (delete instance/meterwise.db to start again).")
        logins = demo_logins()
    else:
        logins = seed(db.session, days=days)
    click.echo("\nDemo logins (one per layer):")
    role_width = max(len(role) for role, _, _ in logins)
    email_width = max(len(email) for _, email, _ in logins)
    for role, email, password in logins:
        click.echo(f"  {role:<{role_width}}  {email:<{email_width}}  {password}")


@click.command("invite")
@click.argument("email")
def invite(email: str) -> None:
    """Print (and email) a fresh invite link for an existing login."""
    from app.auth.invites import send_invite
    from app.models import User

    user = db.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
    if user is None:
        raise click.ClickException(f"no login {email!r}")
    link = send_invite(db.session, user, inviter="Meterwise staff")
    db.session.commit()
    click.echo(link)


def register(app: Flask) -> None:
    """Attach the commands to the app's CLI."""
    app.cli.add_command(ledger_cli)
    app.cli.add_command(seed_demo)
    app.cli.add_command(invite)
    from app.estates.cli import import_command  # noqa: PLC0415 - the estates' commands
    app.cli.add_command(import_command)
    from app.metering.cli import api_key_cli, ingest_cli, maintenance, readings_cli  # noqa: PLC0415 - metering's
    app.cli.add_command(maintenance)
    app.cli.add_command(readings_cli)
    app.cli.add_command(api_key_cli)
    app.cli.add_command(ingest_cli)
    from app.notify.budget_alerts import alerts_cli  # noqa: PLC0415 - tenant budget alerts (T4)
    app.cli.add_command(alerts_cli)
    from app.billing.levies_cli import levies_cli  # noqa: PLC0415 - body-corporate levies (B3)
    app.cli.add_command(levies_cli)
    from app.billing.solar_cli import solar_cli  # noqa: PLC0415 - shared solar (issue 19, Quantify 11.2)
    app.cli.add_command(solar_cli)
    from app.api.cli import webhook_cli  # noqa: PLC0415 - issue 21: outgoing webhooks
    app.cli.add_command(webhook_cli)
    from app.billing.settlement_cli import reconcile_command, settlement_cli  # noqa: PLC0415 - issue 20 (U3, U6)
    app.cli.add_command(settlement_cli)
    app.cli.add_command(reconcile_command)
    from app.billing.cohorts_cli import cohorts_cli  # noqa: PLC0415 - debt cohorts (issue 16, A5)
    app.cli.add_command(cohorts_cli)
    from app.sources.cli import sources_cli  # noqa: PLC0415 - issue 22: historical backfills
    app.cli.add_command(sources_cli)
