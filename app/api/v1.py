"""The integration API under /api/v1 (A7): keyed, scoped, rate-limited JSON, documented by itself.

Views parse, check the key's scope (another estate's id is a 404), call one domain function and
dump a declared model. The readings POST stays in app/api/readings.py (same prefix, same keys).
"""
from __future__ import annotations

import base64
import binascii
import json

from flask import Blueprint, Response, abort, current_app, render_template, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import joinedload

from app.integration import idempotency
from app.billing.debt import debts
from app.integration import keys, operations, topups
from app.api.access import current_key, protect
from app.api.declare import BodyError, Param, dump, openapi_document, operation, parse
from app.api.problems import PROBLEM_TYPE, problem
from app.api.resources import (BillOut, BulkSkippedOut, BulkTopupIn, BulkTopupOut, ConsumptionOut, DebtList, DebtOut, EstateList, EstateOut, MaintenanceIn,
                               MaintenanceOut, MeterList, MeterOut, MoveInIn, MoveInOut, MoveOutIn, MoveOutOut,
                               PocketOut, Problem, TopupIn, TopupOut,
                               UnitCreatedOut, UnitIn, UnitList, UnitOut, WalletList, WalletOut)
from app.extensions import csrf, db
from app.ledger import LedgerError
from app.metering.ingest import ingest_paused
from app.metering.queries import PERIODS, consumption_in, is_online
from app.models import Account, Estate, Meter, Unit, Wallet, canonical_serial, utcnow
from app.money import quantize
from app.payments import PaymentError
from app.payments.credit import AmountOutOfRange
from app.routing import INTEGER_MAX

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
protect(bp)

DEFAULT_PAGE, MAX_PAGE = 50, 200
PERIOD_ALIASES = {"last_30min": "last_30_minutes"}  # PowerCMS's name for it
PAGING = (Param("cursor", "query", str, "The `next_cursor` of the previous page"),
          Param("limit", "query", int, f"Page size (default {DEFAULT_PAGE})", minimum=1, maximum=MAX_PAGE))
ESTATE_FILTER = Param("estate_id", "query", int, "Only this estate", minimum=1)
SECURITY = {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "Bearer": {"type": "http", "scheme": "bearer"}}


def _json(model, status: int = 200) -> Response:
    return Response(json.dumps(dump(model)), status=status, mimetype="application/json")


def _int_arg(name: str, *, minimum: int = 1, maximum: int = INTEGER_MAX) -> int | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or not minimum <= int(raw) <= maximum:
        abort(problem(400, f"{name} must be a whole number from {minimum} to {maximum}"))
    return int(raw)


def _page() -> tuple[int, int]:
    """(after id, limit) from `cursor` and `limit`; a cursor is opaque to clients."""
    limit = _int_arg("limit", maximum=MAX_PAGE) or DEFAULT_PAGE
    cursor = request.args.get("cursor")
    if not cursor:
        return 0, limit
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii") + b"==").decode("ascii")
        kind, _, after = text.partition(":")
        if kind != "id" or not after.isdigit() or int(after) > INTEGER_MAX:
            raise ValueError
    except (ValueError, UnicodeError, binascii.Error):
        abort(problem(400, "cursor is not one this API gave out; start again without it"))
    return int(after), limit


def _next_cursor(rows, limit: int) -> str | None:
    if len(rows) <= limit:
        return None
    return base64.urlsafe_b64encode(f"id:{rows[limit - 1].id}".encode()).decode().rstrip("=")


def _scoped(query, column):
    return query.where(keys.estate_condition(current_key(), column))


def _one_or_404(query):
    found = db.session.scalar(query)
    if found is None:
        abort(problem(404, "there is no such object in this key's scope"))
    return found


def _id_or_404(value: int) -> int:
    if not 0 < value <= INTEGER_MAX:
        abort(problem(404, "there is no such object in this key's scope"))
    return value


def _estate_out(estate: Estate) -> EstateOut:
    return EstateOut(estate.id, estate.code, estate.name, estate.country, estate.currency, estate.timezone,
                     estate.wallet_denomination)


def _unit_out(unit: Unit) -> UnitOut:
    return UnitOut(unit.id, unit.estate_id, unit.number, unit.account_number, unit.occupancy_status)


def _meter_out(meter: Meter) -> MeterOut:
    return MeterOut(meter.id, meter.serial, meter.estate_id, meter.unit_id, meter.utility, meter.protocol,
                    meter.relay_state, meter.last_reading_at, meter.last_register, is_online(meter, utcnow()))


def _wallets_out(wallets: list[Wallet]) -> list[WalletOut]:
    if not wallets:
        return []
    pockets: dict[int, list[PocketOut]] = {w.id: [] for w in wallets}
    for account in db.session.scalars(select(Account).where(
            Account.wallet_id.in_(list(pockets)), Account.kind == "pocket").order_by(Account.id)):
        pockets[account.wallet_id].append(PocketOut(account.utility, quantize(account.balance, account.commodity),
                                                    account.commodity))
    return [WalletOut(w.unit_id, w.estate_id, pockets[w.id]) for w in wallets]


# --- Reads --------------------------------------------------------------------------------

@operation(bp, "GET", "/estates", summary="List the estates in the key's scope", permission="read",
           response=EstateList, params=PAGING, tags=("estates",))
def list_estates():
    after, limit = _page()
    rows = list(db.session.scalars(_scoped(select(Estate).where(Estate.id > after), Estate.id)
                                   .order_by(Estate.id).limit(limit + 1)))
    return _json(EstateList([_estate_out(e) for e in rows[:limit]], _next_cursor(rows, limit)))


@operation(bp, "GET", "/estates/<int:estate_id>", summary="One estate", permission="read", response=EstateOut,
           params=(Param("estate_id", "path", int),), tags=("estates",))
def get_estate(estate_id: int):
    estate = _one_or_404(_scoped(select(Estate).where(Estate.id == _id_or_404(estate_id)), Estate.id))
    return _json(_estate_out(estate))


@operation(bp, "GET", "/units", summary="List units, by estate", permission="read", response=UnitList,
           params=(ESTATE_FILTER, *PAGING), tags=("units",))
def list_units():
    after, limit = _page()
    query = _scoped(select(Unit).where(Unit.id > after), Unit.estate_id)
    if (estate_id := _int_arg("estate_id")) is not None:
        query = query.where(Unit.estate_id == estate_id)
    rows = list(db.session.scalars(query.order_by(Unit.id).limit(limit + 1)))
    return _json(UnitList([_unit_out(u) for u in rows[:limit]], _next_cursor(rows, limit)))


@operation(bp, "GET", "/units/<int:unit_id>", summary="One unit", permission="read", response=UnitOut,
           params=(Param("unit_id", "path", int),), tags=("units",))
def get_unit(unit_id: int):
    unit = _one_or_404(_scoped(select(Unit).where(Unit.id == _id_or_404(unit_id)), Unit.estate_id))
    return _json(_unit_out(unit))


@operation(bp, "GET", "/units/<int:unit_id>/wallet", summary="A unit's wallet with its pocket balances",
           permission="read", response=WalletOut, params=(Param("unit_id", "path", int),), tags=("wallets",))
def get_wallet(unit_id: int):
    unit = _one_or_404(_scoped(select(Unit).where(Unit.id == _id_or_404(unit_id)), Unit.estate_id))
    wallet = db.session.scalar(select(Wallet).where(Wallet.unit_id == unit.id))
    if wallet is None:
        return _json(WalletOut(unit.id, unit.estate_id, []))
    return _json(_wallets_out([wallet])[0])


@operation(bp, "GET", "/wallets", summary="List wallets with balances, by estate", permission="read",
           response=WalletList, params=(ESTATE_FILTER, *PAGING), tags=("wallets",))
def list_wallets():
    after, limit = _page()
    query = _scoped(select(Wallet).where(Wallet.id > after), Wallet.estate_id)
    if (estate_id := _int_arg("estate_id")) is not None:
        query = query.where(Wallet.estate_id == estate_id)
    rows = list(db.session.scalars(query.order_by(Wallet.id).limit(limit + 1)))
    return _json(WalletList(_wallets_out(rows[:limit]), _next_cursor(rows, limit)))


@operation(bp, "GET", "/meters", summary="List meters, by estate or unit", permission="read", response=MeterList,
           params=(ESTATE_FILTER, Param("unit_id", "query", int, "Only this unit's meters", minimum=1), *PAGING),
           tags=("meters",))
def list_meters():
    after, limit = _page()
    query = _scoped(select(Meter).where(Meter.id > after), Meter.estate_id)
    if (estate_id := _int_arg("estate_id")) is not None:
        query = query.where(Meter.estate_id == estate_id)
    if (unit_id := _int_arg("unit_id")) is not None:
        query = query.where(Meter.unit_id == unit_id)
    rows = list(db.session.scalars(query.order_by(Meter.id).limit(limit + 1)))
    return _json(MeterList([_meter_out(m) for m in rows[:limit]], _next_cursor(rows, limit)))


def _meter_or_404(serial: str) -> Meter:
    if len(serial) > 64 or not serial.isprintable():  # a NUL would reach PostgreSQL as a 500
        abort(problem(404, "there is no such meter in this key's scope"))
    return _one_or_404(_scoped(select(Meter).where(Meter.serial == canonical_serial(serial)), Meter.estate_id))


@operation(bp, "GET", "/meters/<serial>", summary="One meter by serial (zero-padded or not)", permission="read",
           response=MeterOut, params=(Param("serial", "path", str),), tags=("meters",))
def get_meter(serial: str):
    return _json(_meter_out(_meter_or_404(serial)))


@operation(bp, "GET", "/meters/<serial>/consumption", summary="First and last reading and consumption in a period",
           permission="read", response=ConsumptionOut, tags=("meters",),
           params=(Param("serial", "path", str),
                   Param("period", "query", str, "The period (default today; last_30min is last_30_minutes)",
                         enum=(*PERIODS, *PERIOD_ALIASES))))
def meter_consumption(serial: str):
    meter = _meter_or_404(serial)
    period = request.args.get("period", "today")
    period = PERIOD_ALIASES.get(period, period)
    if period not in PERIODS:
        return problem(400, f"period must be one of {', '.join(PERIODS)}")
    found = consumption_in(db.session, meter, period)
    return _json(ConsumptionOut(meter.serial, period, found.start, found.end, found.first_at, found.first_register,
                                found.last_at, found.last_register, found.consumption))


@operation(bp, "GET", "/meters/<serial>/bills/last-month", summary="A meter's bill for last month",
           permission="read", response=BillOut, params=(Param("serial", "path", str),), tags=("meters",))
def meter_last_month_bill(serial: str):
    meter = _meter_or_404(serial)
    bill = operations.last_month_bill(db.session, meter)
    found = bill.readings
    return _json(BillOut(meter.serial, bill.month, found.start, found.end, found.first_at, found.first_register,
                         found.last_at, found.last_register, found.consumption,
                         quantize(bill.amount_billed, bill.commodity), bill.commodity))


@operation(bp, "GET", "/arrears", summary="Debts (pockets below zero, open arrears records) with their age",
           permission="read", response=DebtList, params=(ESTATE_FILTER, *PAGING), tags=("arrears",))
def list_arrears():
    after, limit = _page()
    estates = _scoped(select(Estate), Estate.id)
    if (estate_id := _int_arg("estate_id")) is not None:
        estates = estates.where(Estate.id == estate_id)
    found = debts(db.session, db.session.scalars(estates.order_by(Estate.id)).all())
    page = found[after:after + limit + 1]
    rows = [DebtOut(d.estate.id, d.unit.id if d.unit else None, d.kind, d.utility, d.source,
                    quantize(d.owed, d.estate.currency), d.estate.currency, d.since.isoformat(), d.days, d.bucket,
                    d.record_id) for d in page[:limit]]
    cursor = (base64.urlsafe_b64encode(f"id:{after + limit}".encode()).decode().rstrip("=")
              if len(page) > limit else None)  # a position in the oldest-first list
    return _json(DebtList(rows, cursor))


@operation(bp, "GET", "/maintenance", summary="Whether maintenance mode holds reading ingest", permission="read",
           response=MaintenanceOut, staff_only=True, tags=("maintenance",))
def get_maintenance():
    return _json(MaintenanceOut(ingest_paused(db.session)))


@operation(bp, "POST", "/maintenance", summary="Switch maintenance mode (readings wait in the broker meanwhile)",
           permission="manage", body=MaintenanceIn, response=MaintenanceOut, staff_only=True, tags=("maintenance",),
           errors={422: "The body does not fit the model"})
def post_maintenance():
    body = _body_or_problem(MaintenanceIn)
    if isinstance(body, Response):
        return body
    return _json(MaintenanceOut(operations.switch_maintenance(db.session, current_key(), body.maintenance)))


@operation(bp, "POST", "/units", summary="Register a unit, optionally with its meter", permission="manage",
           body=UnitIn, response=UnitCreatedOut, status=201, tags=("units",),
           errors={422: "The body does not fit, or a rule refused a value (`errors` says which)"})
def create_unit():
    body = _body_or_problem(UnitIn)
    if isinstance(body, Response):
        return body
    if body.estate_id > INTEGER_MAX:
        return problem(404, "there is no such estate in this key's scope")
    estate = _one_or_404(_scoped(select(Estate).where(Estate.id == body.estate_id), Estate.id))
    values = {"number": body.number, "occupancy_status": body.occupancy_status or "vacant",
              "floor_area_m2": "" if body.floor_area_m2 is None else str(body.floor_area_m2),
              "address": body.address or ""}
    meter_values = None
    if body.meter is not None:
        meter_values = {"serial": body.meter.serial, "utility": body.meter.utility, "role": "unit",
                        "protocol": body.meter.protocol or "",
                        "interval_minutes": "" if body.meter.interval_minutes is None else str(body.meter.interval_minutes),
                        "dev_eui": body.meter.dev_eui or ""}
    try:
        made = operations.register_unit(db.session, estate, values, meter_values)
    except operations.RegistrationRefused as error:
        return _refused_body(BodyError(error.errors), "unit")
    return _json(UnitCreatedOut(_unit_out(made.unit), _meter_out(made.meter) if made.meter else None), 201)


@operation(bp, "POST", "/units/<int:unit_id>/move-in", summary="Move a tenant into a unit", permission="manage",
           body=MoveInIn, response=MoveInOut, status=201, params=(Param("unit_id", "path", int),), tags=("units",),
           errors={422: "The body does not fit, or a rule refused a value (`errors` says which)"})
def unit_move_in(unit_id: int):
    unit = _one_or_404(_scoped(select(Unit).where(Unit.id == _id_or_404(unit_id)), Unit.estate_id))
    body = _body_or_problem(MoveInIn)
    if isinstance(body, Response):
        return body
    person = {"full_name": body.person.full_name, "email": body.person.email or "", "phone": body.person.phone or ""}
    if body.person.language:  # X8: stored on the new person (audited with it); else the estate's default
        person["language"] = body.person.language
    try:
        moved = operations.move_in(db.session, current_key(), unit, person, body.move_in, body.openings)
    except operations.RegistrationRefused as error:
        return _refused_body(BodyError(error.errors), "move-in")
    return _json(MoveInOut(unit.id, moved.tenancy_id, moved.person_id, len(moved.readings)), 201)


@operation(bp, "POST", "/units/<int:unit_id>/move-out", summary="Move a unit's tenant out (refund or debt per pocket)",
           permission="manage", body=MoveOutIn, response=MoveOutOut, params=(Param("unit_id", "path", int),),
           tags=("units",), errors={422: "The body does not fit, or a rule refused a value (`errors` says which)"})
def unit_move_out(unit_id: int):
    unit = _one_or_404(_scoped(select(Unit).where(Unit.id == _id_or_404(unit_id)), Unit.estate_id))
    body = _body_or_problem(MoveOutIn)
    if isinstance(body, Response):
        return body
    try:
        moved = operations.move_out(db.session, current_key(), unit, body.move_out, body.closings)
    except operations.RegistrationRefused as error:
        return _refused_body(BodyError(error.errors), "move-out")
    currency = db.session.get(Estate, unit.estate_id).currency
    return _json(MoveOutOut(unit.id, moved.tenancy_id, quantize(moved.refund_total, currency),
                            quantize(moved.debt_total, currency), currency))


@operation(bp, "POST", "/wallets/bulk-topup", summary="Top up many wallets of an estate at once (idempotent)",
           permission="topups:write", body=BulkTopupIn, response=BulkTopupOut, status=201, tags=("wallets",),
           params=(Param("Idempotency-Key", "header", str, "A unique key per batch; a retry sends the same",
                         required=True),),
           errors={400: "Not JSON, or no Idempotency-Key", 409: "The first request with this key is still running",
                   422: "The body does not fit, or no row could be credited (`errors` says why)"})
def bulk_topup():
    return _idempotent("batch", lambda key, idempotency_key, raw: _bulk_topup(key, idempotency_key))


def _idempotent(what: str, run) -> Response:
    """Stripe's Idempotency-Key semantics for a POST that moves money: the first response (status and
    body) is stored and replayed; the same key with another body is 422; while the first runs, 409."""
    key = current_key()
    idempotency_key = request.headers.get("Idempotency-Key", "").strip()
    if not idempotency_key or len(idempotency_key) > idempotency.MAX_KEY_LENGTH or not idempotency_key.isprintable():
        return problem(400, f"send an Idempotency-Key header (1 to 255 printable characters) unique to this {what}")
    raw = request.get_data(cache=True)
    fingerprint = idempotency.request_fingerprint(request.method, request.path, raw)
    claim = idempotency.claim(db.session, key.id, idempotency_key, fingerprint)
    if claim.row_id is None:
        db.session.rollback()  # nothing claimed: end the transaction (and free no lock) now
        if claim.replayed:
            response = Response(claim.body, status=claim.status,
                                mimetype=PROBLEM_TYPE if claim.status >= 400 else "application/json")
            response.headers["Idempotent-Replayed"] = "true"
            return response
        return problem(claim.status, claim.refusal)
    # The claim, the work and the stored response commit together (`run` does not commit;
    # a refusal it rolls back takes the claim along, and is then stored on its own).
    try:
        response = run(key, idempotency_key, raw)
    except Exception:
        db.session.rollback()
        idempotency.release(db.engine, claim.row_id)
        raise
    idempotency.finish(db.session, db.engine, claim.row_id, key.id, idempotency_key, fingerprint, response.status_code,
                       response.get_data(as_text=True))
    return response


def _bulk_topup(key, idempotency_key: str) -> Response:
    body = _body_or_problem(BulkTopupIn)
    if isinstance(body, Response):
        return body
    if len(body.rows) > 20_000:
        return _refused_body(BodyError({"rows": "at most 20,000 rows: split the batch"}), "bulk top-up")
    if body.estate_id > INTEGER_MAX or any(row.unit_id > INTEGER_MAX for row in body.rows):
        return problem(404, "there is no such estate or unit in this key's scope")
    estate = _one_or_404(_scoped(select(Estate).where(Estate.id == body.estate_id), Estate.id))
    try:
        batch = operations.bulk_topup(db.session, key, estate, [(r.unit_id, r.utility, r.amount) for r in body.rows],
                                      idempotency_key, body.description)
    except operations.RegistrationRefused as error:
        return _refused_body(BodyError(error.errors), "bulk top-up")
    except (OperationalError, InterfaceError):
        db.session.rollback()
        return problem(503, "the database is unavailable; retry later", headers={"Retry-After": "30"})
    skipped = [BulkSkippedOut(str(s.get("unit", "")), str(s.get("utility", "")), str(s.get("amount", "")),
                              str(s.get("reason", ""))) for s in batch.skipped or []]
    return _json(BulkTopupOut(batch.id, batch.status, batch.count, batch.credited,
                              quantize(batch.total, estate.currency), estate.currency, skipped), 201)


def _body_or_problem(model, what: str | None = None):
    """The request's JSON body parsed into `model`, or the problem to answer (400 not JSON, 422 misfit;
    `what` names the model in the refusal, by default from its class name)."""
    try:
        data = json.loads(request.get_data(cache=True))
    except (ValueError, RecursionError):
        return problem(400, "the body is not JSON")
    try:
        return parse(model, data)
    except BodyError as error:
        return _refused_body(error, what or model.__name__.removesuffix("In").lower())


# --- Top-ups ------------------------------------------------------------------------------

CREDIT_FAILURES = (LedgerError, IntegrityError, OperationalError, InterfaceError)


def credit_failure(error: Exception) -> Response:
    """The answer to a top-up the ledger or the database could not take (one of CREDIT_FAILURES);
    the transaction is rolled back, so the Idempotency-Key claim goes with it."""
    db.session.rollback()
    if isinstance(error, LedgerError):
        return problem(409, f"the ledger refused the top-up: {error}")
    if isinstance(error, IntegrityError):
        return problem(409, "the same top-up is being credited by another request; retry in a moment")
    return problem(503, "the database is unavailable; retry later", headers={"Retry-After": "30"})


def _refused_body(error: BodyError, model: str = "top-up") -> Response:
    response = problem(422, f"the request body does not fit the {model} model: " + str(error)[:500])
    body = json.loads(response.get_data())
    body["errors"] = dict(list(error.errors.items())[:20])
    response.set_data(json.dumps(body))
    return response


@operation(bp, "POST", "/topups", summary="Credit a unit's pocket (idempotent: send an Idempotency-Key)",
           permission="topups:write", body=TopupIn, response=TopupOut, status=201, tags=("wallets",),
           params=(Param("Idempotency-Key", "header", str, "A unique key per top-up; a retry sends the same",
                         required=True),),
           errors={400: "Not JSON, or no Idempotency-Key", 409: "The first request with this key is still running",
                   422: "The body does not fit, or this key was used with another body"})
def create_topup():
    return _idempotent("top-up", _topup)


def _topup(key, idempotency_key: str, raw: bytes) -> Response:
    body = _body_or_problem(TopupIn, "top-up")
    if isinstance(body, Response):
        return body
    if body.unit_id > INTEGER_MAX:
        return problem(404, "there is no such unit in this key's scope")
    unit = db.session.scalar(_scoped(select(Unit).where(Unit.id == body.unit_id), Unit.estate_id)
                             .options(joinedload(Unit.estate)))  # the credit reads the estate: no second query
    if unit is None:
        return problem(404, "there is no such unit in this key's scope")
    try:
        result = topups.topup(db.session, key, unit, amount=body.amount, utility=body.utility,
                              idempotency_key=idempotency_key, reference=body.reference,
                              payer_phone=body.payer_phone, commit=False)  # `_idempotent` commits
    except AmountOutOfRange as error:
        db.session.rollback()
        return _refused_body(BodyError({"amount": str(error)}))
    except PaymentError as error:
        db.session.rollback()
        return _refused_body(BodyError({getattr(error, "field", None) or "body": str(error)}))
    except CREDIT_FAILURES as error:
        return credit_failure(error)
    payment = result.payment
    return _json(TopupOut(payment.id, payment.transaction_id, unit.id, payment.utility,
                          quantize(payment.amount, payment.currency), payment.currency,
                          quantize(result.balance, result.commodity or payment.currency), payment.status), 201)


# --- The document -------------------------------------------------------------------------

def document() -> dict:
    """The OpenAPI 3.1 document of this API, built from the declared operations."""
    return openapi_document(
        current_app, title="Meterwise integration API", version="1.0.0", problem_model=Problem,
        security_schemes=SECURITY,
        description="Keyed JSON API: send `X-API-Key: mw_live_…` (or `Authorization: Bearer`). A key sees only "
                    "its estates (another estate's id is a 404) and may do only what its permissions allow. "
                    "Money-moving POSTs take an `Idempotency-Key`. Errors are `application/problem+json`. "
                    "Responses carry `RateLimit` and `RateLimit-Policy`; over the limit is a 429 with "
                    "`Retry-After`.")


@operation(bp, "GET", "/openapi.json", summary="This document", permission=None, tags=("meta",))
def openapi_json():
    return Response(json.dumps(document(), indent=1), mimetype="application/json")


@bp.get("/docs")
def docs():
    """A readable page of the document (no script: the CSP allows none from elsewhere)."""
    from app.api.markup import inline_code

    return render_template("api/docs.html", doc=document(), code=inline_code)


docs.api_permission = None
