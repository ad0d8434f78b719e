"""`flask settlement run --estate CODE --month YYYY-MM` and `flask reconcile --estate CODE --day YYYY-MM-DD`."""
import sys
from datetime import date

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db

settlement_cli = AppGroup("settlement", help="Settle estates' revenue to their parties (U3).")


def _estate(code: str):
    from app.cli import estate_by_code

    return estate_by_code(code)


@settlement_cli.command("run")
@click.option("--estate", "estate_code", required=True, help="The estate's code.")
@click.option("--month", "period", required=True, help="The month that ended, YYYY-MM.")
@click.option("--utility", default=None, help="Only this utility (default: every utility with rules).")
@click.option("--dry-run", is_flag=True, help="Show the split without posting.")
def settlement_run(estate_code: str, period: str, utility: str | None, dry_run: bool) -> None:
    """Post the month's split to each party; a rerun posts nothing; exit 1 when a utility is refused."""
    from app.billing.settlement import SettlementError, run_settlement, send_party_statements
    from app.money import format_amount

    estate = _estate(estate_code)
    try:
        report = run_settlement(db.session, estate, period, utility=utility, dry_run=dry_run)
    except SettlementError as error:
        raise click.ClickException(str(error)) from None
    click.echo(report.summary())
    for outcome in report.outcomes:
        for line in outcome.lines:
            click.echo(f"  {line.party.name:<30} {format_amount(line.amount, estate.currency):>16}")
        if outcome.run is not None and not dry_run:  # each party its statement, once per run
            for sent in send_party_statements(db.session, outcome.run):
                click.echo(f"  {sent.text(estate.timezone)}")
    sys.exit(1 if any(o.status == "refused" for o in report.outcomes) else 0)


@click.command("reconcile")
@click.option("--estate", "estate_code", default=None, help="Only this estate (default: every estate).")
@click.option("--day", "day_text", default=None, help="The local day, YYYY-MM-DD (default: yesterday).")
def reconcile_command(estate_code: str | None, day_text: str | None) -> None:
    """Run the daily reconciliation (U6) and print each check; exit 1 when any check fails."""
    from app.analytics.daily_reconciliation import reconcile_estate, yesterday
    from app.models import Estate

    estates = [_estate(estate_code)] if estate_code else list(db.session.scalars(select(Estate).order_by(Estate.id)))
    failed = False
    for estate in estates:
        try:
            day = date.fromisoformat(day_text) if day_text else yesterday(estate)
        except ValueError:
            raise click.BadParameter("use YYYY-MM-DD", param_hint="--day") from None
        results = reconcile_estate(db.session, estate, day)
        for result in results:
            failed |= not result.ok
            click.echo(f"{estate.code} {day} {result.check:<9} {'pass' if result.ok else 'FAIL'}  {result.summary}")
            for item in result.items[:20]:
                click.echo(f"    {item.get('label')}: {item.get('detail')}")
    sys.exit(1 if failed else 0)
