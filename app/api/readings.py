"""POST /api/v1/readings (M4): cellular gateways post JSON readings with an X-API-Key header.

The key is checked, counted against its hourly rate limit and scoped like every /api/v1
call (`app.api.access.protect`): it needs `readings:write`, and a key scoped to estates may
post only for their meters (another estate's meter is refused as an unknown one).

Bad input never gives a 5xx: a body that is not JSON (or nested too deeply to read) is a 400,
a reading the pipeline cannot use is refused with its reason (and dead-lettered), a batch the
ledger refuses is a 409 and a database that is unreachable a 503; nothing is half-written.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError

from app.api.access import current_key, protect
from app.api.declare import described, operation
from app.api.problems import problem
from app.extensions import csrf, db
from app.integration.keys import scope_estate_ids
from app.ledger import LedgerError
from app.metering.api_keys import READINGS_PERMISSION
from app.metering.decoders import HTTP_TOPIC
from app.metering.ingest import Message, ingest_and_commit, ingest_paused

bp = Blueprint("readings_api", __name__, url_prefix="/api/v1")
protect(bp)
MAX_READINGS = 1000


@dataclass(frozen=True)
class ReadingsIn:
    """A batch of readings as gateways post them (one reading object on its own is taken too)."""

    readings: list[dict[str, Any]] = described(
        "Up to 1,000 reading objects, each as the gateway sends it: `serial`, a register (`register`, "
        "`energy`, `energy_kwh`, `volume`, ...), optional `unit` and `timestamp`; or NB-IoT JSON with `imei`. "
        "A single reading object may be sent as the whole body instead of this batch.", maxItems=MAX_READINGS)


@dataclass(frozen=True)
class ReadingsOut:
    """What the batch did: readings stored, already known, billed, and the reasons of those refused."""

    accepted: int
    duplicates: int
    billed: int
    refused: list[str] = described("One reason per refused reading, in the order sent (each is dead-lettered)")


def _body():
    """The request's JSON, or None when it is not JSON (deep nesting included)."""
    try:
        return request.get_json(silent=True)
    except RecursionError:  # json raises it, not ValueError, past its nesting limit
        return None


def _encoded(item) -> bytes:
    """One reading as the pipeline takes it: JSON bytes (what cannot be re-encoded, a string)."""
    try:
        return json.dumps(item).encode()
    except (RecursionError, ValueError):
        return b'"reading nested too deeply"'


@operation(bp, "POST", "/readings", summary="Post meter readings (a gateway's batch or one reading)",
           permission=READINGS_PERMISSION, body=ReadingsIn, response=ReadingsOut, tags=("readings",),
           errors={400: "Not JSON, or neither a reading object nor {\"readings\": [...]}",
                   409: "The ledger refused the batch (a locked period): nothing was stored",
                   413: f"More than {MAX_READINGS} readings in one request",
                   503: "Ingest is paused for maintenance, or the database is unavailable (see Retry-After)"})
@csrf.exempt
def post_readings():
    """Ingest one reading object or {"readings": [...]}; refused ones are reported and dead-lettered."""
    if ingest_paused(db.session):
        return problem(503, "ingest is paused for maintenance; retry later", headers={"Retry-After": "60"})
    body = _body()
    items = body.get("readings") if isinstance(body, dict) and "readings" in body else [body]
    if body is None or not isinstance(items, list) or not items:
        return problem(400, "send a JSON reading object or {\"readings\": [...]}")
    if len(items) > MAX_READINGS:
        return problem(413, f"at most {MAX_READINGS} readings per request")
    messages = [Message(HTTP_TOPIC, _encoded(item)) for item in items]
    try:
        report = ingest_and_commit(db.session, messages, estate_ids=scope_estate_ids(db.session, current_key()))
    except LedgerError as error:  # e.g. a reading in a locked period: nothing is stored
        db.session.rollback()
        return problem(409, f"the ledger refused the batch: {error}")
    except (OperationalError, InterfaceError):  # the database, not the readings: send them again
        db.session.rollback()
        return problem(503, "the database is unavailable; retry later", headers={"Retry-After": "30"})
    return jsonify(accepted=report.accepted, duplicates=report.duplicates, billed=report.billed,
                   refused=report.dead_letters), 200

