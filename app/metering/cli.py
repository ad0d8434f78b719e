"""`flask maintenance on|off` (M7): pause or resume meter-data ingest."""
import click

from app.extensions import db


@click.command("maintenance")
@click.argument("state", type=click.Choice(["on", "off", "status"]))
def maintenance(state: str) -> None:
    """Pause ingest (messages wait in the broker, HTTP answers 503) or resume it."""
    from app.metering.ingest import ingest_paused, set_maintenance

    if state != "status":
        set_maintenance(db.session, state == "on")
        db.session.commit()
    click.echo(f"maintenance mode is {'on: ingest paused' if ingest_paused(db.session) else 'off: ingesting'}")
