"""The integration API's later endpoints (issue 21), on the /api/v1 blueprint of app/api/v1.py:
ledger transactions, readings, bulk imports (stage, preview, commit), wallet groups with a group
top-up, and debt cohorts with their monthly snapshots.

Like every /api/v1 view these parse, check the key's scope (another estate's object is a 404),
make one domain call and dump a declared model (app/api/resources_more.py); the key, its
permission and its rate limit are checked before (app/api/access.py).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from decimal import Decimal

from flask import Response, abort, request
from flask_babel import force_locale
from sqlalchemy import and_, exists, func, or_, select

from app.api.access import current_key
from app.api.declare import BodyError, Param, operation
from app.api.problems import problem
from app.api.resources_more import (CohortList, CohortMemberList, CohortMemberOut, CohortOut, GroupDetailOut,
                                    GroupList, GroupMemberOut, GroupOut, GroupPocketOut, GroupTopupIn,
                                    GroupTopupOut, GroupLegOut, ImportOut, ImportRowOut, LeftOutOut, PostingOut,
                                    ReadingList, ReadingOut, SnapshotOut, TransactionList, TransactionOut)
from app.api.v1 import (CREDIT_FAILURES, DEFAULT_PAGE, _body_or_problem, ESTATE_FILTER, MAX_PAGE, PAGING, _id_or_404, _idempotent,
                        _int_arg, _json, _next_cursor, _one_or_404, _page, _refused_body, _scoped, bp,
                        credit_failure)
from app.estates import imports
from app.extensions import db
from app.families import FamilyError
from app.families.limits import CapReached
from app.integration import group_topups, keys, topups
from app.models import (Account, Estate, LedgerTransaction, Meter, Posting, Reading, Unit, Wallet,
                        canonical_serial)
from app.models.cohorts import CohortMember, CohortSnapshot, DebtCohort
from app.models.families import WalletGroup, WalletGroupMember
from app.models.imports import ImportBatch
from app.money import quantize
from app.payments import PaymentError
from app.routing import INTEGER_MAX

UTILITIES = ("electricity", "water", "hot_water", "solar")
FROM = Param("from", "query", datetime, "Only at or after this time (ISO 8601; without a zone, UTC)")
TO = Param("to", "query", datetime, "Only before this time (ISO 8601; without a zone, UTC)")
IMPORT_MEDIA = ("text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
MAX_REFUSED_SHOWN = 200
_PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    try:
        found = datetime.fromisoformat(raw)
        found = found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
    except (ValueError, OverflowError):
        abort(problem(400, f"{name} must be a time in ISO 8601, such as 2026-11-01T00:00:00Z"))
    return found


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _position_cursor(offset: int, limit: int, rows: list) -> str | None:
    return _encode(f"id:{offset + limit}") if len(rows) > limit else None


# --- Ledger transactions ------------------------------------------------------------------

@operation(bp, "GET", "/transactions", summary="List ledger transactions with their postings, oldest first",
           permission="read", response=TransactionList, tags=("transactions",), params=(
               ESTATE_FILTER,
               Param("unit_id", "query", int, "Only those that move this unit's wallet", minimum=1),
               Param("utility", "query", str, "With unit_id: only those that move that pocket", enum=UTILITIES),
               Param("account_id", "query", int, "Only those that move this account (a pocket's id)", minimum=1),
               Param("kind", "query", str, "Only this kind (topup, consumption, standing_charge, ...)"),
               Param("period", "query", str, "Only this financial period (YYYY-MM)"),
               FROM, TO, *PAGING))
def list_transactions():
    after, limit = _page()
    query = _scoped(select(LedgerTransaction).where(LedgerTransaction.id > after), LedgerTransaction.estate_id)
    if (estate_id := _int_arg("estate_id")) is not None:
        query = query.where(LedgerTransaction.estate_id == estate_id)
    utility = request.args.get("utility") or None
    if utility is not None and utility not in UTILITIES:
        return problem(400, f"utility must be one of {', '.join(UTILITIES)}")
    if (unit_id := _int_arg("unit_id")) is not None:
        moved = (select(Posting.id).join(Account, Account.id == Posting.account_id)
                 .join(Wallet, Wallet.id == Account.wallet_id)
                 .where(Posting.transaction_id == LedgerTransaction.id, Wallet.unit_id == unit_id))
        query = query.where(exists(moved.where(Account.utility == utility) if utility else moved))
    elif utility is not None:
        return problem(400, "utility filters a unit's pockets: send unit_id with it")
    if (account_id := _int_arg("account_id")) is not None:
        query = query.where(exists(select(Posting.id).where(Posting.transaction_id == LedgerTransaction.id,
                                                            Posting.account_id == account_id)))
    if kind := request.args.get("kind"):
        if len(kind) > 32 or not kind.isprintable():
            return problem(400, "kind is a transaction kind such as topup")
        query = query.where(LedgerTransaction.kind == kind)
    if period := request.args.get("period"):
        if not _PERIOD.fullmatch(period):
            return problem(400, "period must be a month as YYYY-MM")
        query = query.where(LedgerTransaction.period == period)
    if (start := _time_arg("from")) is not None:
        query = query.where(LedgerTransaction.occurred_at >= start)
    if (end := _time_arg("to")) is not None:
        query = query.where(LedgerTransaction.occurred_at < end)
    rows = list(db.session.scalars(query.order_by(LedgerTransaction.id).limit(limit + 1)))
    page = rows[:limit]
    postings: dict[int, list[PostingOut]] = {t.id: [] for t in page}
    if page:
        for posting, code, account_kind, account_utility, unit in db.session.execute(
                select(Posting, Account.code, Account.kind, Account.utility, Wallet.unit_id)
                .join(Account, Account.id == Posting.account_id).outerjoin(Wallet, Wallet.id == Account.wallet_id)
                .where(Posting.transaction_id.in_(list(postings))).order_by(Posting.id)):
            postings[posting.transaction_id].append(PostingOut(
                posting.account_id, code, account_kind, account_utility, unit,
                quantize(posting.amount, posting.commodity), posting.commodity))
    return _json(TransactionList([TransactionOut(t.id, t.estate_id, t.kind, t.occurred_at, t.recorded_at, t.period,
                                                 t.memo, t.reverses_id, postings[t.id]) for t in page],
                                 _next_cursor(rows, limit)))


# --- Readings -----------------------------------------------------------------------------

def _reading_cursor() -> tuple[datetime, int] | None:
    """(taken_at, id) after which the page starts; readings are paged by time (the table's order)."""
    cursor = request.args.get("cursor")
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii") + b"==").decode("ascii")
        kind, at, after = text.split("|")
        if kind != "r" or not after.isdigit() or int(after) > INTEGER_MAX:
            raise ValueError
        return datetime.fromisoformat(at).astimezone(UTC), int(after)
    except (ValueError, UnicodeError, binascii.Error, OverflowError):
        abort(problem(400, "cursor is not one this API gave out; start again without it"))


@operation(bp, "GET", "/readings", summary="List meter readings, oldest first", permission="read",
           response=ReadingList, tags=("meters",), params=(
               Param("serial", "query", str, "Only this meter's readings"), ESTATE_FILTER, FROM, TO, *PAGING))
def list_readings():
    limit = _int_arg("limit", maximum=MAX_PAGE) or DEFAULT_PAGE
    after = _reading_cursor()
    query = (_scoped(select(Reading, Meter).join(Meter, Meter.id == Reading.meter_id), Meter.estate_id))
    if serial := request.args.get("serial"):
        if len(serial) > 64 or not serial.isprintable():  # a NUL would reach PostgreSQL as a 500
            return problem(400, "serial is a meter's serial number (at most 64 characters)")
        query = query.where(Meter.serial == canonical_serial(serial))
    if (estate_id := _int_arg("estate_id")) is not None:
        query = query.where(Meter.estate_id == estate_id)
    if (start := _time_arg("from")) is not None:
        query = query.where(Reading.taken_at >= start)
    if (end := _time_arg("to")) is not None:
        query = query.where(Reading.taken_at < end)
    if after is not None:
        query = query.where(or_(Reading.taken_at > after[0], and_(Reading.taken_at == after[0], Reading.id > after[1])))
    rows = db.session.execute(query.order_by(Reading.taken_at, Reading.id).limit(limit + 1)).all()
    page = rows[:limit]
    cursor = None
    if len(rows) > limit:
        last = page[-1][0]
        cursor = _encode(f"r|{last.taken_at.astimezone(UTC).isoformat()}|{last.id}")
    return _json(ReadingList([ReadingOut(r.id, m.serial, m.id, m.estate_id, m.unit_id, m.utility, r.taken_at,
                                         r.register, r.consumption, r.received_at) for r, m in page], cursor))


# --- Bulk imports -------------------------------------------------------------------------

def _import_out(report: imports.ImportReport) -> ImportOut:
    batch = report.batch
    refused = [ImportRowOut(number, list(errors or [])) for number, errors in report.rejected[:MAX_REFUSED_SHOWN]]
    return ImportOut(batch.id, batch.estate_id, batch.kind, batch.file_name, batch.status, report.repeated,
                     batch.total_rows, batch.to_create, batch.to_update, batch.unchanged, batch.rejected,
                     list(batch.ignored_columns or []), refused, batch.message, batch.created_at, batch.committed_at)


def _kind_or_404(kind: str) -> str:
    try:
        return imports.get_kind(kind).name
    except imports.UnknownKind:
        names = ", ".join(k.name for k in imports.kinds())
        abort(problem(404, f"there is no import of that kind: choose one of {names}"))


def _batch_or_404(kind: str, batch_id: int, *, lock: bool = False) -> ImportBatch:
    query = _scoped(select(ImportBatch).where(ImportBatch.id == _id_or_404(batch_id),
                                              ImportBatch.kind == _kind_or_404(kind)),
                    ImportBatch.estate_id)
    return _one_or_404(query.with_for_update() if lock else query)


@operation(bp, "POST", "/imports/<kind>", summary="Stage a CSV or .xlsx file for import: its preview",
           permission="manage", response=ImportOut, status=201, raw_body=IMPORT_MEDIA, tags=("imports",),
           params=(Param("kind", "path", str, "units, persons, meters, opening_balances, ..."),
                   Param("estate_id", "query", int, "The estate to import into", required=True, minimum=1),
                   Param("file_name", "query", str, "The file's name, for the import history")),
           errors={415: "The body is not text/csv or .xlsx",
                   422: "The file was refused as a whole (`errors` says why): nothing was staged"})
def stage_import(kind: str):
    """Stage the body's file: each row classified (create, update, unchanged, reject), nothing live touched.

    The same bytes staged before for the estate and kind answer with that import (`repeated`);
    a file over 500 rows is staged by a job (status `staging`: poll the import).
    """
    kind = _kind_or_404(kind)
    estate_id = _int_arg("estate_id")
    if estate_id is None:
        return problem(400, "send estate_id: the estate to import into")
    estate = _one_or_404(_scoped(select(Estate).where(Estate.id == estate_id), Estate.id))
    if request.mimetype not in IMPORT_MEDIA:
        return problem(415, "send the file as the body, with Content-Type text/csv (or the .xlsx type)")
    file_name = (request.args.get("file_name") or f"api-{kind}.csv")[:255]
    if not file_name.isprintable():
        return problem(400, "file_name must be printable text")
    try:
        report = imports.start_import(db.session, estate, kind, file_name, request.get_data(),
                                      user_id=current_key().created_by_user_id)
    except imports.ImportRefused as error:
        db.session.rollback()
        return _refused_body(BodyError(error.errors), "import")
    return _json(_import_out(report), 201)


@operation(bp, "GET", "/imports/<kind>/<int:batch_id>", summary="An import's status, counts and refused rows",
           permission="manage", response=ImportOut, tags=("imports",),
           params=(Param("kind", "path", str), Param("batch_id", "path", int)))
def get_import(kind: str, batch_id: int):
    batch = _batch_or_404(kind, batch_id)
    return _json(_import_out(imports.report_for(db.session, batch)))


@operation(bp, "POST", "/imports/<kind>/<int:batch_id>/commit",
           summary="Commit a staged import (again: the committed import, nothing applied twice)",
           permission="manage", response=ImportOut, tags=("imports",),
           params=(Param("kind", "path", str), Param("batch_id", "path", int)),
           errors={409: "The import is still staging or committing, or failed: it cannot be committed"})
def commit_import(kind: str, batch_id: int):
    """Apply the staged create and update rows (a row changed since the preview is rejected alone).

    Idempotent by the batch id: committing a committed import answers with it and applies nothing.
    """
    batch = _batch_or_404(kind, batch_id, lock=True)
    if batch.status == "committed":
        return _json(_import_out(imports.report_for(db.session, batch)))
    try:
        report = imports.start_commit(db.session, batch, user_id=current_key().created_by_user_id)
    except imports.ImportRefused as error:
        db.session.rollback()
        return problem(409, str(error))
    return _json(_import_out(report))


# --- Wallet groups ------------------------------------------------------------------------

def _groups_in_scope(query):
    """Groups with members, every one in the key's scope (a group reaching past it is not shown)."""
    outside = (select(WalletGroupMember.id).join(Unit, Unit.id == WalletGroupMember.unit_id)
               .where(WalletGroupMember.group_id == WalletGroup.id,
                      ~keys.estate_condition(current_key(), Unit.estate_id)))
    return query.where(exists(select(WalletGroupMember.id).where(WalletGroupMember.group_id == WalletGroup.id)),
                       ~exists(outside))


def _group_or_404(group_id: int) -> WalletGroup:
    return _one_or_404(_groups_in_scope(select(WalletGroup).where(WalletGroup.id == _id_or_404(group_id))))


@operation(bp, "GET", "/wallet-groups", summary="List wallet groups (family wallets) in the key's scope",
           permission="read", response=GroupList, params=(ESTATE_FILTER, *PAGING), tags=("wallet groups",))
def list_wallet_groups():
    after, limit = _page()
    query = _groups_in_scope(select(WalletGroup).where(WalletGroup.id > after))
    if (estate_id := _int_arg("estate_id")) is not None:
        query = query.where(exists(select(WalletGroupMember.id).join(Unit, Unit.id == WalletGroupMember.unit_id)
                                   .where(WalletGroupMember.group_id == WalletGroup.id, Unit.estate_id == estate_id)))
    rows = list(db.session.scalars(query.order_by(WalletGroup.id).limit(limit + 1)))
    page = rows[:limit]
    counts = dict(db.session.execute(select(WalletGroupMember.group_id, func.count()).where(
        WalletGroupMember.group_id.in_([g.id for g in page])).group_by(WalletGroupMember.group_id)).all()) if page else {}
    return _json(GroupList([GroupOut(g.id, g.name, g.created_at, counts.get(g.id, 0)) for g in page],
                           _next_cursor(rows, limit)))


@operation(bp, "GET", "/wallet-groups/<int:group_id>", summary="A wallet group's members with their balances",
           permission="read", response=GroupDetailOut, params=(Param("group_id", "path", int),),
           tags=("wallet groups",))
def get_wallet_group(group_id: int):
    group = _group_or_404(group_id)
    members = db.session.execute(select(Unit, Estate.currency).join(WalletGroupMember, WalletGroupMember.unit_id == Unit.id)
                                 .join(Estate, Estate.id == Unit.estate_id)
                                 .where(WalletGroupMember.group_id == group.id).order_by(WalletGroupMember.id)).all()
    pockets: dict[int, list[GroupPocketOut]] = {unit.id: [] for unit, _ in members}
    if pockets:
        for unit_id, account in db.session.execute(
                select(Wallet.unit_id, Account).join(Account, Account.wallet_id == Wallet.id)
                .where(Wallet.unit_id.in_(list(pockets)), Account.kind == "pocket").order_by(Account.id)):
            pockets[unit_id].append(GroupPocketOut(account.utility, quantize(account.balance, account.commodity),
                                                   account.commodity))
    return _json(GroupDetailOut(group.id, group.name, group.created_at,
                                [GroupMemberOut(u.id, u.estate_id, u.number, currency, pockets[u.id])
                                 for u, currency in members]))


@operation(bp, "POST", "/wallet-groups/<int:group_id>/topups",
           summary="Top up a wallet group: one payment shared by a rule, credited at once (idempotent)",
           permission="topups:write", body=GroupTopupIn, response=GroupTopupOut, status=201,
           tags=("wallet groups",),
           params=(Param("group_id", "path", int),
                   Param("Idempotency-Key", "header", str, "A unique key per top-up; a retry sends the same",
                         required=True)),
           errors={400: "Not JSON, or no Idempotency-Key", 409: "The first request with this key is still running",
                   422: "The body does not fit (an amount with more decimals than the currency has included), "
                        "the rule cannot be applied, or this key was used with another body; or a leg is above "
                        "the top-up cap of the group owner's grant on that wallet (detail `above the top-up "
                        "cap`, `errors` per leg as `leg_<unit id>`). Nothing is credited, and a retry with the "
                        "same Idempotency-Key replays the same refusal: send a new key once the amounts change"})
def wallet_group_topup(group_id: int):
    """Share one payment the integrator received over the group's wallets and credit it at once.

    It is paid on the group owner's behalf: the members the owner may top up take part, each leg
    within the owner's top-up caps on that wallet (and counted towards them). Any currency of the
    group's estates (not only PayFast's), in its minor units; legs add up to the total exactly.
    """
    with force_locale("en"):  # the API answers in English, the family module's messages included
        return _idempotent("group top-up", lambda key, idempotency_key, raw: _group_topup(group_id, key,
                                                                                           idempotency_key))


def _group_topup(group_id: int, key, idempotency_key: str) -> Response:
    group = _group_or_404(group_id)
    body = _body_or_problem(GroupTopupIn, "group top-up")
    if isinstance(body, Response):
        return body
    members = {m.unit_id for m in group.members}
    try:
        currency = group_topups.currency_for(group, body.currency)
        for name, value in (("amount", body.amount), ("target", body.target),
                            *((f"fixed[{i}].amount", leg.amount) for i, leg in enumerate(body.fixed or []))):
            if value is not None:
                topups.check_places(value, currency, name)
    except FamilyError as error:
        return _refused_body(BodyError(error.errors), "group top-up")
    except PaymentError as error:
        return _refused_body(BodyError({error.field: str(error)}), "group top-up")
    form = {"rule": body.rule, "utility": body.utility, "currency": currency,
            "amount": "" if body.amount is None else str(body.amount),
            "target": "" if body.target is None else str(body.target),
            "remainder_unit_id": "" if body.remainder_unit_id is None else str(body.remainder_unit_id)}
    for index, leg in enumerate(body.fixed or []):
        if leg.unit_id not in members:
            return _refused_body(BodyError({f"fixed[{index}].unit_id": "is not a member of this group"}),
                                 "group top-up")
        form[f"fixed_{leg.unit_id}"] = str(leg.amount)
    try:
        result = group_topups.group_topup(db.session, key, group, form, idempotency_key=idempotency_key,
                                          reference=body.reference, commit=False)  # `_idempotent` commits
    except CapReached as error:
        db.session.rollback()
        response = problem(422, "above the top-up cap: a leg is above what the group owner's grant on that "
                                "wallet lets them top up (each in `errors`); nothing was credited. Change the "
                                "amounts and send them with a new Idempotency-Key")
        body = json.loads(response.get_data())
        body["errors"] = {name: text for name, text in error.errors.items() if name != "amount"}
        response.set_data(json.dumps(body))
        return response
    except FamilyError as error:
        db.session.rollback()
        return _refused_body(BodyError(error.errors), "group top-up")
    except PaymentError as error:  # AmountOutOfRange included
        db.session.rollback()
        return _refused_body(BodyError({getattr(error, "field", None) or "amount": str(error)}), "group top-up")
    except CREDIT_FAILURES as error:
        return credit_failure(error)
    payment = result.payment
    currency = payment.currency
    return _json(GroupTopupOut(
        payment.id, group.id, payment.status, result.distribution.rule, result.distribution.utility,
        quantize(payment.amount, currency), currency,
        [GroupLegOut(leg.unit_id, leg.estate_id, quantize(leg.amount, currency), leg.transaction_id,
                     quantize(leg.balance, leg.commodity)) for leg in result.legs],
        [LeftOutOut(unit_id, reason) for unit_id, reason in result.left_out]), 201)


# --- Debt cohorts -------------------------------------------------------------------------

def _cohort_out(cohort: DebtCohort, members: int, currency: str) -> CohortOut:
    return CohortOut(cohort.id, cohort.estate_id, cohort.fiscal_year, cohort.taken_on.isoformat(), cohort.ranked_by,
                     cohort.size, members, cohort.source, currency)


def _member_counts(ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    return dict(db.session.execute(select(CohortMember.cohort_id, func.count()).where(
        CohortMember.cohort_id.in_(ids)).group_by(CohortMember.cohort_id)).all())


@operation(bp, "GET", "/cohorts", summary="List debt cohorts (each fiscal year's top debtors of an estate)",
           permission="read", response=CohortList, tags=("arrears",), params=(
               ESTATE_FILTER, Param("fiscal_year", "query", int, "Only this fiscal year (FY2027: 2027)",
                                    minimum=1900, maximum=9999), *PAGING))
def list_cohorts():
    after, limit = _page()
    query = _scoped(select(DebtCohort, Estate.currency).join(Estate, Estate.id == DebtCohort.estate_id)
                    .where(DebtCohort.id > after), DebtCohort.estate_id)
    if (estate_id := _int_arg("estate_id")) is not None:
        query = query.where(DebtCohort.estate_id == estate_id)
    if (fiscal_year := _int_arg("fiscal_year", minimum=1900, maximum=9999)) is not None:
        query = query.where(DebtCohort.fiscal_year == fiscal_year)
    rows = db.session.execute(query.order_by(DebtCohort.id).limit(limit + 1)).all()
    page = rows[:limit]
    counts = _member_counts([c.id for c, _ in page])
    cursor = _encode(f"id:{page[-1][0].id}") if len(rows) > limit else None
    return _json(CohortList([_cohort_out(c, counts.get(c.id, 0), currency) for c, currency in page], cursor))


@operation(bp, "GET", "/cohorts/<int:cohort_id>/members",
           summary="A cohort's members by rank, each with its monthly snapshots", permission="read",
           response=CohortMemberList, params=(Param("cohort_id", "path", int), *PAGING), tags=("arrears",))
def list_cohort_members(cohort_id: int):
    offset, limit = _page()  # a position in the by-rank list, opaque like every cursor
    cohort, currency = db.session.execute(
        _scoped(select(DebtCohort, Estate.currency).join(Estate, Estate.id == DebtCohort.estate_id)
                .where(DebtCohort.id == _id_or_404(cohort_id)), DebtCohort.estate_id)).first() or (None, None)
    if cohort is None:
        return problem(404, "there is no such object in this key's scope")
    rows = db.session.execute(select(CohortMember, Unit.number).join(Unit, Unit.id == CohortMember.unit_id)
                              .where(CohortMember.cohort_id == cohort.id)
                              .order_by(CohortMember.rank, CohortMember.id).offset(offset).limit(limit + 1)).all()
    page = rows[:limit]
    snapshots: dict[int, list] = {m.unit_id: [] for m, _ in page}
    if snapshots:
        for snap in db.session.scalars(select(CohortSnapshot).where(
                CohortSnapshot.cohort_id == cohort.id, CohortSnapshot.unit_id.in_(list(snapshots)))
                .order_by(CohortSnapshot.month)):
            snapshots[snap.unit_id].append(snap)
    money = lambda value: quantize(Decimal(value), currency)  # noqa: E731
    data = [CohortMemberOut(m.unit_id, number, m.rank, money(m.owed), money(m.usage), [
        _snapshot_out(s, money) for s in snapshots[m.unit_id]]) for m, number in page]
    return _json(CohortMemberList(_cohort_out(cohort, _member_counts([cohort.id]).get(cohort.id, 0), currency),
                                  data, _position_cursor(offset, limit, rows)))


def _snapshot_out(snap: CohortSnapshot, money) -> SnapshotOut:
    return SnapshotOut(snap.month.strftime("%Y-%m"), money(snap.balance), money(snap.debt), money(snap.consumption),
                       money(snap.payments))
