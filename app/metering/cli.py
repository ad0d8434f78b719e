"""Metering commands: `flask maintenance on|off` (M7), `flask api-key create|list|revoke` (M4) and `flask readings archive|restore|partitions` (M8)."""
import click

from app.extensions import db


@click.command("maintenance")
@click.argument("state", type=click.Choice(["on", "off", "status"]))
def maintenance(state: str) -> None:
    """Pause ingest (messages wait in the broker, HTTP answers 503) or resume it."""
    from app.metering.ingest import ingest_paused, set_maintenance

    if state != "status":
        set_maintenance(db.session, state == "on")
    click.echo(f"maintenance mode is {'on: ingest paused' if ingest_paused(db.session) else 'off: ingesting'}")


@click.group("api-key")
def api_key_cli() -> None:
    """Keys for the JSON API (/api/v1): readings from gateways, reads, top-ups, webhooks."""


@api_key_cli.command("create")
@click.argument("name", required=False)
@click.option("--estate", "estate_code", default=None, help="The estate the key may reach (default: every estate).")
@click.option("--permissions", default="readings:write", show_default=True,
              help="Comma-separated: read, readings:write, topups:write, manage, webhooks:manage.")
@click.option("--rate-limit", "rate_limit", type=int, default=None, help="Requests per hour (default 1000).")
@click.option("--test", "test_mode", is_flag=True, help="Make an mw_test_ key instead of mw_live_.")
def create_key(name: str | None, estate_code: str | None, permissions: str, rate_limit: int | None,
               test_mode: bool) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from app.integration.keys import ApiKeyError, issue_key
    from app.audit import Actor, acting_as
    from app.cli import estate_by_code

    estate = estate_by_code(estate_code)
    try:
        with acting_as(Actor("system:cli")):
            default_name = f"{estate.code if estate else 'all estates'} key"
            new = issue_key(db.session, default_name if name is None else name,
                            permissions=permissions, estate=estate, rate_limit_per_hour=rate_limit,
                            mode="test" if test_mode else "live")
    except ApiKeyError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"API key #{new.row.id} “{new.row.name}” ({new.row.permissions}; "
               f"{estate.code if estate else 'every estate'}) (shown once, store it now):\n{new.key}")


@api_key_cli.command("list")
def list_keys() -> None:
    """List keys: id, prefix, name, created, last used, revoked."""
    from app.metering.api_keys import api_keys

    rows = api_keys(db.session)
    if not rows:
        click.echo("no API keys")
    for row in rows:
        used = row.last_used_at.isoformat(timespec="minutes") if row.last_used_at else "never"
        state = f"revoked {row.revoked_at.isoformat(timespec='minutes')}" if row.revoked_at else "live"
        click.echo(f"#{row.id}\t{row.prefix}…\t{row.name}\t{row.permissions}\tcreated {row.created_at.isoformat(timespec='minutes')}"
                   f"\tlast used {used}\t{state}")


@api_key_cli.command("revoke")
@click.argument("key_id", type=int)
def revoke_key(key_id: int) -> None:
    """Revoke a key by its id; requests with it answer 401 from now on."""
    from app.audit import Actor, acting_as
    from app.metering.api_keys import ApiKeyError, revoke_api_key

    try:
        with acting_as(Actor("system:cli")):
            row = revoke_api_key(db.session, key_id)
    except ApiKeyError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"API key #{row.id} “{row.name}” revoked")


@click.group("ingest")
def ingest_cli() -> None:
    """The readings pipeline's own maintenance."""


@ingest_cli.command("replay-spool")
@click.option("--path", "path", default=None, help="The spool file (default INGEST_SPOOL_PATH).")
def replay_spool_command(path: str | None) -> None:
    """Feed messages the ingest worker had to spool back through the pipeline, idempotently."""
    from flask import current_app

    from app.audit import Actor, acting_as
    from app.metering.spool import replay_spool

    with acting_as(Actor("system:cli")):
        report = replay_spool(db.session, path or current_app.config["INGEST_SPOOL_PATH"])
    click.echo(report.summary())
    for number, error in report.failed:
        click.echo(f"line {number}: {error}", err=True)
    if report.failed:
        raise SystemExit(1)


@click.group("readings")
def readings_cli() -> None:
    """Readings by month (M8): archive whole months to Parquet files and restore them."""


def _months_or_fail(value: str):
    from app.metering.archive import ArchiveRefused, parse_month

    try:
        return parse_month(value)
    except ArchiveRefused as error:
        raise click.BadParameter(str(error)) from error


@readings_cli.command("archive")
@click.option("--before", "before", required=True, help="YYYY-MM: every whole month before it is archived")
def archive_command(before: str) -> None:
    """Write each month before --before to a Parquet file with a manifest, check it, drop the month."""
    from app.audit import Actor, acting_as
    from app.metering.archive import ArchiveRefused, archive_before

    try:
        with acting_as(Actor("system:cli")):
            results = archive_before(db.session, _months_or_fail(before))
    except ArchiveRefused as error:
        db.session.rollback()
        raise click.ClickException("\n  ".join([str(error), *error.details])) from error
    if not results:
        click.echo(f"no readings before {before} left to archive")
    for result in results:
        click.echo(f"{result.month:%Y-%m}: {result.rows:,} readings → {result.path} ({result.seconds:.1f} s)")


@readings_cli.command("restore")
@click.option("--month", "month", required=True, help="YYYY-MM: the archived month to bring back")
def restore_command(month: str) -> None:
    """Check an archived month's file against its checksum and manifest, then load it back."""
    from app.audit import Actor, acting_as
    from app.metering.archive import ArchiveRefused, restore_month

    try:
        with acting_as(Actor("system:cli")):
            result = restore_month(db.session, _months_or_fail(month))
            db.session.commit()
    except ArchiveRefused as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from error
    click.echo(f"{result.month:%Y-%m}: {result.rows:,} readings restored from {result.path} ({result.seconds:.1f} s)")


@readings_cli.command("partitions")
def partitions_command() -> None:
    """Create this month's and the next months' partitions (the daily job does this too)."""
    from app.metering.archive import ensure_partitions_ahead, label, partitions

    created = ensure_partitions_ahead(db.session)
    db.session.commit()
    click.echo(f"created: {', '.join(label(m) for m in created) or 'none'}; "
               f"partitions: {', '.join(label(m) for m in sorted(partitions(db.session))) or 'none (plain table)'}")
