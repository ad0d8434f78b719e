"""`flask levies run --estate CODE --month YYYY-MM`: the levy run from the command line (B3)."""
import sys

import click
from flask.cli import AppGroup

from app.extensions import db

levies_cli = AppGroup("levies", help="Body-corporate levies.")


@levies_cli.command("run")
@click.option("--estate", "estate_code", required=True, help="The estate's code.")
@click.option("--month", "period", required=True, help="The month to charge, YYYY-MM.")
@click.option("--dry-run", is_flag=True, help="Show what would be charged; post nothing.")
def levies_run(estate_code: str, period: str, dry_run: bool) -> None:
    """Charge the month's levies to every unit's owner; a re-run posts nothing new."""
    from app.billing.levies import LevyError, run_levies
    from app.cli import estate_by_code

    estate = estate_by_code(estate_code)
    try:
        report = run_levies(db.session, estate, period, dry_run=dry_run)
    except LevyError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.summary(estate.currency))
    for problem in report.problems:
        click.echo(f"  {problem}", err=True)
    sys.exit(0)
