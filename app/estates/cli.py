"""`flask import KIND FILE --estate CODE [--commit]`: the bulk import from the command line (A1)."""
import sys
from pathlib import Path

import click

from app.extensions import db


@click.command("import")
@click.argument("kind")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--estate", "estate_code", required=True, help="The estate's code.")
@click.option("--commit", "commit", is_flag=True,
              help="Apply the good rows (without it: preview only, nothing changes).")
def import_command(kind: str, file: Path, estate_code: str, commit: bool) -> None:
    """Preview (or with --commit apply) a CSV or .xlsx import of KIND: units, persons, meters, opening_balances.

    Prints the counts and every rejected row. Exits 1 when any row is rejected (with --commit
    the good rows are applied all the same), 2 when the file itself is refused.
    """
    from app.estates.imports import ImportRefused, import_file, kinds
    from app.labels import label
    from app.cli import estate_by_code

    estate = estate_by_code(estate_code)
    try:
        report = import_file(db.session, estate, kind, file.name, file.read_bytes(), dry_run=not commit)
    except ImportRefused as error:
        names = ", ".join(k.name for k in kinds())
        click.echo(f"Refused: {error}" + (f" (kinds: {names})" if "kind" in error.errors else ""), err=True)
        sys.exit(2)
    batch = report.batch
    if report.repeated:
        click.echo(f"This file was imported before: import #{batch.id} of {batch.created_at:%Y-%m-%d %H:%M} UTC "
                   f"({label('import_batch', batch.status).lower()}); nothing new was done.")
    for name in batch.ignored_columns or []:
        click.echo(f"Column {name!r} is not part of a {batch.kind} import and was ignored.")
    verb = ("created", "updated") if batch.status == "committed" else ("to create", "to update")
    click.echo(f"{label('import_kind', batch.kind)} import #{batch.id} of {estate.code} "
               f"({batch.status}): {batch.to_create} {verb[0]}, {batch.to_update} {verb[1]}, "
               f"{batch.unchanged} unchanged, {batch.rejected} rejected.")
    for _number, errors in report.rejected:
        for message in errors:
            click.echo(f"  {message}")
    if batch.status == "staged" and not commit:
        click.echo("Preview only: run again with --commit to apply the good rows.")
    sys.exit(1 if batch.rejected else 0)
