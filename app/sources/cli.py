"""`flask sources backfill`: a historical Koios or ThunderCloud import from the command line."""
import sys

import click
from flask.cli import AppGroup

from app.extensions import db

sources_cli = AppGroup("sources", help="Imports from external sources.")


@sources_cli.command("backfill")
@click.option("--estate", "estate_code", required=True, help="The estate's code.")
@click.option("--source", type=click.Choice(["koios", "thundercloud"]), required=True)
@click.option("--from", "first", required=True, metavar="YYYY-MM-DD", help="First day (UTC).")
@click.option("--to", "last", required=True, metavar="YYYY-MM-DD", help="Last day (UTC), yesterday at the latest.")
def backfill(estate_code: str, source: str, first: str, last: str) -> None:
    """Import every day of the range (resuming an earlier stopped one is done from the staff page)."""
    from app.cli import estate_by_code
    from app.sources.backfill import BackfillError, parse_request, start_backfill

    estate = estate_by_code(estate_code)
    try:
        source, _, first_day, last_day = parse_request(source, estate.id, first, last)
        row = start_backfill(db.session, source, estate, first_day, last_day)
    except BackfillError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    click.echo(f"Backfill #{row.id} {row.summary or row.status}")
    sys.exit(0 if row.status in ("done", "queued", "running") else 1)
