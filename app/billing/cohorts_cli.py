"""`flask cohorts init|snapshot|source`: debt cohorts (A5) from the command line."""
import click
from flask.cli import AppGroup

from app.extensions import db

cohorts_cli = AppGroup("cohorts", help="Debt cohorts: each fiscal year's top debtors, snapshotted monthly.")


def _estate(code: str):
    from app.cli import estate_by_code

    return estate_by_code(code)


@cohorts_cli.command("init")
@click.option("--estate", "estate_code", required=True, help="The estate's code.")
@click.option("--fiscal-year", "fiscal_year", default=None, help="FY2027 or 2027 (default: the year under way).")
def cohorts_init(estate_code: str, fiscal_year: str | None) -> None:
    """Take the fiscal year's cohort (its top debtors on the cohort day); a rerun keeps the same members."""
    from app.billing.cohorts import CohortError, fiscal_year_text, parse_fiscal_year, take_cohort

    estate = _estate(estate_code)
    try:
        report = take_cohort(db.session, estate, parse_fiscal_year(fiscal_year))
    except CohortError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    cohort = report.cohort
    click.echo(f"{estate.code} {fiscal_year_text(cohort.fiscal_year)}: {report.members} members "
               f"(top {cohort.size} by {cohort.ranked_by}, as at {cohort.taken_on.isoformat()}, {cohort.source}); "
               f"{report.added} new or changed, {report.removed} removed, {report.unchanged} unchanged")


@cohorts_cli.command("snapshot")
@click.option("--estate", "estate_code", required=True, help="The estate's code.")
@click.option("--month", "month", required=True, help="The month, YYYY-MM.")
def cohorts_snapshot(estate_code: str, month: str) -> None:
    """Snapshot each cohort member's balance, debt, consumption and payments for the month; reruns change nothing."""
    from app.billing.cohorts import CohortError, snapshot_month

    estate = _estate(estate_code)
    try:
        report = snapshot_month(db.session, estate, month)
    except CohortError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    click.echo(f"{estate.code} {report.summary()}")


@cohorts_cli.command("source")
@click.option("--estate", "estate_code", required=True, help="The estate's code.")
@click.option("--url", default="", help="SQLAlchemy URL of the external billing database, or env:VARNAME to "
                                        "keep only a variable's name and read the URL (and its password) from "
                                        "that environment variable whenever the source is queried; empty "
                                        "clears it.")
@click.option("--query", default="", help="SQL returning account, balance, debt, consumption, payments "
                                          "for `account IN :accounts`.")
def cohorts_source(estate_code: str, url: str, query: str) -> None:
    """Read the estate's cohorts from an external billing database (or, with no URL, from the ledger again).

    Prefer --url env:VARNAME (for example env:SUN_BILLING_DB_URL, set in the environment of the web
    and worker processes): a literal URL's password is stored in the settings table in plain text
    (the audit log hides it either way). Drivers: any installed SQLAlchemy dialect, such as
    postgresql+psycopg, or oracle+oracledb (python-oracledb's thin mode needs no Oracle client).
    """
    from app.billing.cohorts import CohortError, set_external_source

    estate = _estate(estate_code)
    try:
        set_external_source(db.session, estate, url or None, query or None)
    except CohortError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    click.echo(f"{estate.code}: cohorts read from {'the external database' if url else 'the ledger'}")
    if url.strip().startswith("env:"):
        import os

        name = url.strip()[4:].strip()
        if not os.environ.get(name):
            click.echo(f"note: {name} is not set in this environment; set it wherever cohorts are taken")
