"""The one bulk import mechanism (A1): a file is staged, previewed, then committed; kinds plug in.

How an import runs (STYLE "Dry run then execute": `import_file(..., dry_run=True)` is the preview):

1. **Read** (`app/estates/import_files.py`): CSV or .xlsx into a header and text cells, or one
   refusal for the whole file (`ImportRefused`, field-keyed errors for the form).
2. **Stage**: the kind's columns are checked (missing ones refuse the file; extra ones are
   reported as ignored), then every row is checked on its own: formula-injection cells
   (a text starting with = + - @) are refused, the kind parses each cell into a cleaned value
   and an identity key, a key seen twice in one file rejects every row carrying it (never a
   guess), and the kind classifies the rest against live data: create, update, unchanged or
   reject. Rows are stored as `ImportRow`s of an `ImportBatch`; nothing live is touched.
3. **Commit** (`commit_import`): the staged create/update rows are classified again against
   live data as it is now; a row whose outcome changed since the preview is rejected on its own
   (with its reason), the others are applied in bulk by the kind, with a per-row retry in
   savepoints if the bulk apply fails, so one bad row never blocks or corrupts the others.
   One audit row per commit with the counts, plus one per object created.

Re-uploading the same bytes (SHA-256) for the same estate and kind shows the earlier import;
another file with the same rows classifies them as unchanged. Files over `INLINE_ROWS` rows
are staged and committed as jobs (`import_stage`, `import_commit`) with the progress component.

A kind (`app/estates/import_kinds.py`) is one class registered with `@register`: its name,
columns (`Field`s), and `parse`, `classify` and `apply`. The onboarding issue adds `tenancies`.
"""
from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import audit
from app.estates.import_files import UnreadableFile, read_table
from app.jobs import Progress, enqueue, job
from app.models import AuditLog, Estate, JobRun, User, utcnow
from app.models.imports import ImportBatch, ImportRow
from app.sql_arrays import insert_rows

INLINE_ROWS = 500  # larger files are staged and committed by a job
STAGE_JOB, COMMIT_JOB = "import_stage", "import_commit"
_FORMULA_START = ("=", "+", "-", "@")
_NUMBER = re.compile(r"-?[0-9]+(?:[.,][0-9]+)?")
_CHUNK = 2000


# --- errors -------------------------------------------------------------------------------

class ImportRefused(Exception):
    """Base error: the file or the action was refused as a whole; `errors` is keyed by form field."""

    def __init__(self, message: str, field_name: str = "file") -> None:
        super().__init__(message)
        self.errors: dict[str, str] = {field_name: message}


class UnknownKind(ImportRefused):
    """No import kind of that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"There is no import of {name!r}: choose one of {', '.join(REGISTRY)}.", "kind")


class UnreadableImport(ImportRefused):
    """The file is not CSV or .xlsx, or cannot be read."""


class MissingColumns(ImportRefused):
    """The header lacks columns the kind needs."""

    def __init__(self, missing: Sequence[str], kind: ImportKind) -> None:
        self.missing = list(missing)
        super().__init__(f"The file has no {', '.join(missing)} column{'s' if len(missing) > 1 else ''}: "
                         f"a {kind.label.lower()} file has the columns {', '.join(kind.headers)} "
                         "(download the template).")


class NotCommittable(ImportRefused):
    """The import is not staged (already committed, failed, or still being read)."""


# --- what a kind declares -------------------------------------------------------------------

@dataclass(frozen=True)
class Field:
    """One column of a kind: its header, what a valid cell looks like, and how formulas are told apart.

    `cell` is "text" (a leading = + - @ is a formula), "number" (a leading - is a minus sign)
    or "phone" (a leading + starts an international number). `required`: the cell must be
    filled; `column_required`: the header must have the column.
    """

    name: str
    expected: str
    cell: str = "text"
    required: bool = False
    column_required: bool = False


def found_text(value: str | None) -> str:
    """A cell as an error message quotes it."""
    if value is None or value == "":
        return "nothing"
    shown = value if len(value) <= 60 else value[:57] + "..."
    return f'"{shown}"'


@dataclass
class Row:
    """One data row while it is staged or committed: cells in, cleaned values, key and action out."""

    number: int
    raw: dict[str, str]
    key: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    action: str | None = None  # create, update, unchanged, reject
    target_id: int | None = None  # the live object an update or unchanged row names
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # update: field -> (old, new)
    object_id: int | None = None  # set by apply
    staged_id: int | None = None  # the ImportRow's id, at commit

    def error(self, column: str, expected: str, found: str | None) -> None:
        """Add "row N, column C: expected X, found Y" (found is the cell as written)."""
        self.errors.append(f"row {self.number}, column {column}: expected {expected}, found {found_text(found)}")

    def refuse(self, column: str, expected: str, found_sentence: str) -> None:
        """Add an error whose "found" part is a sentence rather than the cell (ambiguity, conflicts)."""
        self.errors.append(f"row {self.number}, column {column}: expected {expected}, found {found_sentence}")

    def cell(self, name: str) -> str:
        return self.raw.get(name, "") or ""


@dataclass
class ImportContext:
    """What a kind's checks and apply need: the session, estate, who acts, and a per-run cache."""

    session: Session
    estate: Estate
    user_id: int | None = None
    now: datetime | None = None
    batch: ImportBatch | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def cached(self, name: str, load: Callable[[], Any]) -> Any:
        if name not in self.cache:
            self.cache[name] = load()
        return self.cache[name]

    def audit_created(self, entity_type: str, created: Iterable[tuple[int, dict[str, Any]]], *,
                      action: str | None = None) -> None:
        """One audit row per object the import created, in one bulk insert (the caller commits)."""
        who = audit.current_actor.get()
        rows = [{"at": self.now or utcnow(), "actor_user_id": who.user_id, "actor": who.label, "ip": who.ip,
                 "action": action or f"{entity_type.lower()}.create", "entity_type": entity_type, "entity_id": str(object_id),
                 "estate_id": self.estate.id, "old": None,
                 "new": {**audit._jsonable(values), "import_id": self.batch.id if self.batch else None}}
                for object_id, values in created]
        insert_rows(self.session, AuditLog, rows)


class ImportKind:
    """A kind of import. Subclass, set the class attributes, implement the three steps, `@register`."""

    name: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[tuple[Field, ...]]
    key_column: ClassVar[str]  # the column that names the identity key in messages
    key_label: ClassVar[str]  # "unit number", "meter serial"
    help: ClassVar[str] = ""

    @property
    def headers(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def missing_columns(self, headers: Sequence[str]) -> list[str]:
        """The columns the file must have and lacks."""
        return [f.name for f in self.fields if f.column_required and f.name not in headers]

    def parse(self, ctx: ImportContext, row: Row) -> None:
        """Check the row's cells on their own: set `row.key` and `row.values`, or add errors."""
        raise NotImplementedError

    def classify(self, ctx: ImportContext, rows: list[Row]) -> None:
        """Decide each parsed row against live data: set `row.action` (and target, changes) or add errors."""
        raise NotImplementedError

    def apply(self, ctx: ImportContext, rows: list[Row]) -> None:
        """Create or update the rows' objects in bulk and set `row.object_id` (the caller commits)."""
        raise NotImplementedError


REGISTRY: dict[str, ImportKind] = {}


def register(kind_class: type[ImportKind]) -> type[ImportKind]:
    """Make a kind available to the pages, the CLI and the jobs under its name."""
    REGISTRY[kind_class.name] = kind_class()
    return kind_class


def get_kind(name: str) -> ImportKind:
    _load_kinds()
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownKind(name) from None


def kinds() -> list[ImportKind]:
    """Every registered kind, in registration order."""
    _load_kinds()
    return list(REGISTRY.values())


def _load_kinds() -> None:
    from app.estates import import_kinds  # noqa: F401 - registers the kinds


def template_csv(kind: ImportKind) -> bytes:
    """The kind's empty template: its header row, UTF-8 with a BOM so Excel reads accents."""
    return ("\ufeff" + ",".join(kind.headers) + "\r\n").encode("utf-8")


# --- staging ----------------------------------------------------------------------------------

def check_formula(row: Row, spec: Field, value: str) -> bool:
    """Refuse a cell a spreadsheet would run as a formula; True when the cell is safe."""
    if not value or not value.startswith(_FORMULA_START):
        return True
    if spec.cell == "number" and value.startswith("-") and _NUMBER.fullmatch(value):
        return True  # a negative number
    if spec.cell == "phone" and value.startswith("+") and value[1:2].isdigit():
        return True  # an international number
    row.error(spec.name, "a value that does not start with = + - @ (a spreadsheet would run it as a "
              "formula)", value)
    return False


def stage_rows(ctx: ImportContext, kind: ImportKind, cells: list[tuple[int, dict[str, str]]],
               progress: Progress | None = None) -> list[Row]:
    """Check and classify a file's rows against live data; writes nothing."""
    rows = [Row(number, {name: values.get(name, "") for name in kind.headers}) for number, values in cells]
    for row in rows:
        safe = all([check_formula(row, spec, row.cell(spec.name)) for spec in kind.fields])
        if safe:
            kind.parse(ctx, row)
        if row.errors:
            row.action = "reject"
    # A key twice rejects every row carrying it, also one refused for another reason: which
    # of them was meant is not guessed.
    _reject_repeated_keys(kind, [row for row in rows if row.key])
    kind.classify(ctx, [row for row in rows if row.action is None])
    for row in rows:
        if row.errors:
            row.action = "reject"
        elif row.action is None:  # a kind that forgot a row: never apply it unseen
            row.refuse(kind.key_column, "a row the import can classify", "one it could not")
            row.action = "reject"
    if progress:
        progress.step(len(rows))
    return rows


def _reject_repeated_keys(kind: ImportKind, rows: list[Row]) -> None:
    by_key: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_key[row.key].append(row)
    for key, same in by_key.items():
        if len(same) < 2:
            continue
        for row in same:
            others = ", ".join(str(other.number) for other in same if other is not row)
            row.refuse(kind.key_column, f"each {kind.key_label} once in the file",
                       f'"{key}" also on row {others} (which one is meant is not guessed)')
            row.action = "reject"


@dataclass
class ImportReport:
    """What a preview or commit did: the batch (counts, status) and every rejected row's messages."""

    batch: ImportBatch
    repeated: bool = False  # the same file was imported before: this is the earlier import
    rejected: list[tuple[int, list[str]]] = field(default_factory=list)
    run: JobRun | None = None  # the job staging or committing a large file

    @property
    def ok(self) -> bool:
        return self.batch.status in ("staged", "committed") and not self.batch.rejected


def import_file(session: Session, estate: Estate, kind_name: str, file_name: str, data: bytes, *,
                dry_run: bool = True, user_id: int | None = None, now: datetime | None = None) -> ImportReport:
    """Stage a file (the preview) and, unless `dry_run`, commit its good rows; commits per step.

    The same bytes imported before for this estate and kind answer with the earlier import
    (and commit it if it is only staged and `dry_run` is off).
    """
    kind = get_kind(kind_name)
    digest = hashlib.sha256(data).hexdigest()
    earlier = earlier_import(session, estate, kind.name, digest)
    if earlier is not None:
        if not dry_run and earlier.status == "staged":
            commit_import(session, earlier, user_id=user_id, now=now)
        return report_for(session, earlier, repeated=True)
    table = _read(data, file_name)
    batch = _new_batch(session, estate, kind, file_name, digest, user_id, now)
    _stage(session, batch, kind, table)
    if not dry_run:
        commit_import(session, batch, user_id=user_id, now=now)
    return report_for(session, batch)


def start_import(session: Session, estate: Estate, kind_name: str, file_name: str, data: bytes, *,
                 user_id: int | None = None, now: datetime | None = None) -> ImportReport:
    """Stage an uploaded file for its preview, as a job when it has over INLINE_ROWS rows; commits."""
    kind = get_kind(kind_name)
    digest = hashlib.sha256(data).hexdigest()
    earlier = earlier_import(session, estate, kind.name, digest)
    if earlier is not None:
        return report_for(session, earlier, repeated=True)
    table = _read(data, file_name)
    if len(table.rows) <= INLINE_ROWS:
        batch = _new_batch(session, estate, kind, file_name, digest, user_id, now)
        _stage(session, batch, kind, table)
        return report_for(session, batch)
    _check_columns(kind, table.headers)
    batch = _new_batch(session, estate, kind, file_name, digest, user_id, now, status="staging")
    batch.content = data
    batch.total_rows = len(table.rows)
    session.commit()
    run = enqueue(STAGE_JOB, batch.id, target=job_target(batch), user_id=user_id)
    session.expire(batch)
    return ImportReport(batch=batch, run=run)


def earlier_import(session: Session, estate: Estate, kind_name: str, digest: str) -> ImportBatch | None:
    """The last import of exactly these bytes for this estate and kind (a failed one does not count)."""
    return session.scalar(select(ImportBatch).where(
        ImportBatch.estate_id == estate.id, ImportBatch.kind == kind_name, ImportBatch.sha256 == digest,
        ImportBatch.status != "failed").order_by(ImportBatch.id.desc()).limit(1))


def job_target(batch: ImportBatch) -> str:
    return f"import:{batch.id}"


def _read(data: bytes, file_name: str):
    try:
        return read_table(data, file_name)
    except UnreadableFile as error:
        raise UnreadableImport(str(error)) from None


def _check_columns(kind: ImportKind, headers: Sequence[str]) -> list[str]:
    """Refuse a header without the kind's columns; return the columns that will be ignored."""
    missing = kind.missing_columns(headers)
    if missing:
        raise MissingColumns(missing, kind)
    return [name for name in headers if name and name not in kind.headers]


def _new_batch(session: Session, estate: Estate, kind: ImportKind, file_name: str, digest: str,
               user_id: int | None, now: datetime | None, status: str = "staged") -> ImportBatch:
    batch = ImportBatch(estate_id=estate.id, kind=kind.name, file_name=(file_name or "upload")[:255],
                        sha256=digest, uploaded_by_user_id=user_id, created_at=now or utcnow(), status=status,
                        ignored_columns=[])
    session.add(batch)
    return batch


def _stage(session: Session, batch: ImportBatch, kind: ImportKind, table, progress: Progress | None = None) -> None:
    """Classify the table's rows and store them on the batch; commits."""
    batch.ignored_columns = _check_columns(kind, table.headers)
    session.flush()
    estate = session.get(Estate, batch.estate_id)
    ctx = ImportContext(session, estate, batch.uploaded_by_user_id, batch.created_at, batch)
    if progress:
        progress.set_total(len(table.rows))
    rows = stage_rows(ctx, kind, table.rows, progress)
    _store_rows(session, batch, rows)
    batch.status = "staged"
    batch.content = None
    session.commit()


def _store_rows(session: Session, batch: ImportBatch, rows: list[Row]) -> None:
    params = [{"batch_id": batch.id, "row_number": row.number, "key": (row.key or None) and row.key[:200],
               "action": row.action, "values": row.values, "raw": row.raw, "errors": row.errors,
               "object_id": row.target_id} for row in rows]
    insert_rows(session, ImportRow, params)
    _count(batch, rows)


def _count(batch: ImportBatch, rows: list[Row]) -> None:
    actions = [row.action for row in rows]
    batch.total_rows = len(rows)
    batch.to_create, batch.to_update = actions.count("create"), actions.count("update")
    batch.unchanged, batch.rejected = actions.count("unchanged"), actions.count("reject")


def report_for(session: Session, batch: ImportBatch, *, repeated: bool = False) -> ImportReport:
    """The batch with its rejected rows' messages, in row order."""
    rejected = [(number, errors) for number, errors in session.execute(
        select(ImportRow.row_number, ImportRow.errors).where(
            ImportRow.batch_id == batch.id, ImportRow.action == "reject").order_by(ImportRow.row_number))]
    run = None
    if batch.status in ("staging", "committing"):
        run = session.scalar(select(JobRun).where(JobRun.target == job_target(batch))
                             .order_by(JobRun.id.desc()).limit(1))
    return ImportReport(batch=batch, repeated=repeated, rejected=rejected, run=run)


# --- committing --------------------------------------------------------------------------------

def start_commit(session: Session, batch: ImportBatch, *, user_id: int | None = None,
                 now: datetime | None = None) -> ImportReport:
    """Commit a staged import, as a job when it applies over INLINE_ROWS rows; commits."""
    if batch.status != "staged":
        raise NotCommittable(f"This import is {batch.status}; only a staged import can be committed.", "commit")
    if batch.to_create + batch.to_update <= INLINE_ROWS:
        commit_import(session, batch, user_id=user_id, now=now)
        return report_for(session, batch)
    batch.status = "committing"
    session.commit()
    run = enqueue(COMMIT_JOB, batch.id, user_id, target=job_target(batch), user_id=user_id)
    session.expire(batch)
    return ImportReport(batch=batch, run=run)


def commit_import(session: Session, batch: ImportBatch, *, user_id: int | None = None,
                  now: datetime | None = None, progress: Progress | None = None) -> ImportBatch:
    """Apply exactly the staged create and update rows; a row that no longer applies is rejected alone; commits once."""
    if batch.status not in ("staged", "committing"):
        raise NotCommittable(f"This import is {batch.status}; only a staged import can be committed.", "commit")
    kind = get_kind(batch.kind)
    now = now or utcnow()
    estate = session.get(Estate, batch.estate_id)
    ctx = ImportContext(session, estate, user_id, now, batch)
    staged = session.execute(select(ImportRow.id, ImportRow.row_number, ImportRow.key, ImportRow.action,
                                    ImportRow.values, ImportRow.raw)
                             .where(ImportRow.batch_id == batch.id, ImportRow.action.in_(("create", "update")))
                             .order_by(ImportRow.row_number)).all()
    if progress:
        progress.set_total(len(staged))
    rows = [Row(number, raw or {}, key=key, values=dict(values or {}), staged_id=row_id)
            for row_id, number, key, action, values, raw in staged]
    previewed = {row.staged_id: action for row, (_, _, _, action, _, _) in zip(rows, staged, strict=True)}
    kind.classify(ctx, rows)
    applicable = []
    for row in rows:
        if row.errors:
            row.errors = [f"{message} (at commit: changed since the preview)" for message in row.errors]
            row.action = "reject"
        elif row.action == previewed[row.staged_id]:
            applicable.append(row)
        elif row.action == "unchanged":
            pass  # someone made the same change since the preview: nothing left to do
        else:
            row.refuse(kind.key_column, f"to {previewed[row.staged_id]} as the preview said",
                       f"that it would now {row.action or 'not apply'} (changed since the preview: "
                       "upload the file again)")
            row.action = "reject"
    _apply_isolated(ctx, kind, applicable, progress)
    updates = [{"id": row.staged_id, "action": row.action, "errors": row.errors, "object_id": row.object_id}
               for row in rows]
    for start in range(0, len(updates), _CHUNK):
        session.execute(update(ImportRow), updates[start:start + _CHUNK])
    counts = dict(session.execute(select(ImportRow.action, func.count()).where(ImportRow.batch_id == batch.id)
                                  .group_by(ImportRow.action)).all())
    batch.to_create, batch.to_update = counts.get("create", 0), counts.get("update", 0)
    batch.unchanged, batch.rejected = counts.get("unchanged", 0), counts.get("reject", 0)
    batch.status, batch.committed_at, batch.committed_by_user_id = "committed", now, user_id
    audit.record(session, "import.commit", batch, estate_id=estate.id, new={
        "kind": batch.kind, "file_name": batch.file_name, "sha256": batch.sha256, "created": batch.to_create,
        "updated": batch.to_update, "unchanged": batch.unchanged, "rejected": batch.rejected})
    session.commit()
    return batch


class _RowFailed(Exception):
    pass


def _apply_isolated(ctx: ImportContext, kind: ImportKind, rows: list[Row], progress: Progress | None) -> None:
    """Apply all rows in one savepoint; if that fails, each row in its own, rejecting only the failures."""
    from app.ledger import LedgerError

    if not rows:
        return
    try:
        with ctx.session.begin_nested():
            kind.apply(ctx, rows)
        if progress:
            progress.step(len(rows))
        return
    except (SQLAlchemyError, LedgerError, ValueError):
        pass
    for row in rows:
        row.object_id = None
        ctx.cache.clear()
        try:
            with ctx.session.begin_nested():
                kind.apply(ctx, [row])
        except (SQLAlchemyError, LedgerError, ValueError) as error:
            reason = str(getattr(error, "orig", None) or error).splitlines()[0][:300]
            row.refuse(kind.key_column, f"a row that can be {'created' if row.action == 'create' else 'updated'}",
                       f"that the database refused it at commit ({reason})")
            row.action = "reject"
            row.object_id = None
        if progress:
            progress.step()


# --- jobs ------------------------------------------------------------------------------------

@job(STAGE_JOB)
def stage_job(session: Session, progress: Progress, batch_id: int) -> str:
    """Read and classify a large uploaded file (idempotent: a staged batch is left as it is)."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None or batch.status != "staging":
        return "nothing to stage"
    kind = get_kind(batch.kind)
    try:
        table = _read(batch.content or b"", batch.file_name)
        _stage(session, batch, kind, table, progress)
    except ImportRefused as error:
        session.rollback()
        batch.status, batch.message, batch.content = "failed", str(error)[:1000], None
        session.commit()
        return f"the file was refused: {error}"
    return (f"preview ready: {batch.to_create} to create, {batch.to_update} to update, "
            f"{batch.unchanged} unchanged, {batch.rejected} rejected")


@job(COMMIT_JOB)
def commit_job(session: Session, progress: Progress, batch_id: int, user_id: int | None = None) -> str:
    """Commit a large staged import (idempotent: a committed batch is left as it is)."""
    batch = session.get(ImportBatch, batch_id)
    if batch is None or batch.status != "committing":
        return "nothing to commit"
    user = session.get(User, user_id) if user_id else None
    try:
        with audit.acting_as(audit.Actor(user.email, user.id) if user else None):
            commit_import(session, batch, user_id=user_id, progress=progress)
    except Exception as error:
        # commit_import applies everything in one transaction, so nothing of it is kept: put the
        # batch back to "staged" with the reason, so the page offers the commit again instead of
        # "committing" forever. The job still fails (its panel and the jobs screen show the traceback).
        session.rollback()
        batch = session.get(ImportBatch, batch_id)
        batch.status = "staged"
        batch.message = (f"The commit failed and nothing was applied ({type(error).__name__}: {error}). "
                         "Commit again; if it fails again, staff can see the error on the jobs screen.")[:1000]
        session.commit()
        raise
    if (batch.message or "").startswith("The commit failed"):
        batch.message = None  # an earlier attempt's reason, no longer true
        session.commit()
    return (f"committed: {batch.to_create} created, {batch.to_update} updated, {batch.unchanged} unchanged, "
            f"{batch.rejected} rejected")


# --- reads for the pages -------------------------------------------------------------------------

def import_history(session: Session, estate: Estate, limit: int = 100) -> list[tuple[ImportBatch, str | None]]:
    """The estate's imports, newest first, with the email of who uploaded each."""
    return list(session.execute(
        select(ImportBatch, User.email).outerjoin(User, User.id == ImportBatch.uploaded_by_user_id)
        .where(ImportBatch.estate_id == estate.id).order_by(ImportBatch.id.desc()).limit(limit)).all())


def staged_rows(session: Session, batch: ImportBatch, actions: Sequence[str], limit: int | None = None) -> list[ImportRow]:
    """The batch's rows with these actions, in row order."""
    query = (select(ImportRow).where(ImportRow.batch_id == batch.id, ImportRow.action.in_(tuple(actions)))
             .order_by(ImportRow.row_number))
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))
