"""`flask solar allocate --estate CODE --month YYYY-MM`: a month's shared solar from the command line
(Quantify 11.2), through the same `run_allocation()` as the staff button on the utility solar page."""
import sys

import click
from flask.cli import AppGroup

from app.extensions import db

solar_cli = AppGroup("solar", help="Shared solar.")


@solar_cli.command("allocate")
@click.option("--estate", "estate_code", required=True, help="The estate's code.")
@click.option("--month", "period", required=True, help="The month to allocate, YYYY-MM (a month that has ended).")
@click.option("--dry-run", is_flag=True, help="Show the shares; post nothing.")
def solar_allocate(estate_code: str, period: str, dry_run: bool) -> None:
    """Share the month's solar generation among the units and post it; a re-run posts nothing new.

    Exit status 1 when the month is refused (not ended, closed in the ledger, wallets in kWh) or
    nothing can be allocated (no generation, no solar rate, no unit can take a share).
    """
    from app.billing.shared_solar import SolarError, run_allocation, summary
    from app.cli import estate_by_code

    estate = estate_by_code(estate_code)
    try:
        report = run_allocation(db.session, estate, period, dry_run=dry_run)
    except SolarError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    click.echo(summary(report, estate.currency))
    for row in report.rows:
        if row.status == "left out":
            click.echo(f"  {row.unit_number}: no share ({row.reason})")
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(1 if report.problems else 0)
