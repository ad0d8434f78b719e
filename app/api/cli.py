"""`flask webhook add|list|deliver` (A7): subscriptions for outgoing webhooks from the command line."""
import click

from app.extensions import db


@click.group("webhook")
def webhook_cli() -> None:
    """Outgoing webhooks (Standard Webhooks, signed with a whsec_ secret)."""


@webhook_cli.command("add")
@click.option("--estate", "estate_code", default=None, help="The estate whose events are sent (default: every estate).")
@click.option("--url", required=True, help="The receiver's https:// URL.")
@click.option("--events", required=True, help="Comma-separated: wallet.topup, wallet.low_balance, meter.reading, "
                                               "meter.offline, tenant.onboarded.")
@click.option("--description", default="", help="What receives them.")
def add_webhook(estate_code: str | None, url: str, events: str, description: str) -> None:
    """Subscribe a URL and print its signing secret once."""
    from app.audit import Actor, acting_as
    from app.cli import estate_by_code
    from app.notify.webhooks_out import WebhookError, add_endpoint

    estate = estate_by_code(estate_code)
    try:
        with acting_as(Actor("system:cli")):
            new = add_endpoint(db.session, url=url, events=events, estate=estate, issuer=None, description=description)
    except WebhookError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Webhook #{new.row.id} → {new.row.url} ({new.row.events}; "
               f"{estate.code if estate else 'every estate'}). Signing secret (shown once, store it now):\n{new.secret}")


@webhook_cli.command("list")
def list_webhooks() -> None:
    """List subscriptions: id, URL, events, scope, state."""
    from app.notify.webhooks_out import endpoints_for

    rows = endpoints_for(db.session, None)
    if not rows:
        click.echo("no webhooks")
    for row in rows:
        state = f"disabled ({row.disabled_reason})" if row.disabled_at else "live"
        click.echo(f"#{row.id}\t{row.url}\t{row.events}\t{row.estate.code if row.estate else 'all'}\t{state}")


@webhook_cli.command("deliver")
def deliver_webhooks() -> None:
    """Attempt every delivery whose retry time has come (what the cron job does)."""
    from app.notify.webhooks_out import deliver_due

    click.echo(f"{deliver_due(db.session)} deliveries attempted")
