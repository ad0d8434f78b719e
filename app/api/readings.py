"""POST /api/v1/readings (M4): cellular gateways post JSON readings with an X-API-Key header."""
import json

from flask import Blueprint, jsonify, request

from app.extensions import csrf, db
from app.ledger import LedgerError
from app.metering.api_keys import key_is_valid
from app.metering.decoders import HTTP_TOPIC
from app.metering.ingest import Message, ingest, ingest_paused

bp = Blueprint("readings_api", __name__, url_prefix="/api/v1")
MAX_READINGS = 1000


@bp.post("/readings")
@csrf.exempt
def post_readings():
    """Ingest one reading object or {"readings": [...]}; refused ones are reported and dead-lettered."""
    if not key_is_valid(db.session, request.headers.get("X-API-Key")):
        return jsonify(error="a valid X-API-Key header is required"), 401
    if ingest_paused(db.session):
        response = jsonify(error="ingest is paused for maintenance; retry later")
        response.headers["Retry-After"] = "60"
        return response, 503
    body = request.get_json(silent=True)
    items = body.get("readings") if isinstance(body, dict) and "readings" in body else [body]
    if body is None or not isinstance(items, list) or not items:
        return jsonify(error="send a JSON reading object or {\"readings\": [...]}"), 400
    if len(items) > MAX_READINGS:
        return jsonify(error=f"at most {MAX_READINGS} readings per request"), 413
    messages = [Message(HTTP_TOPIC, json.dumps(item).encode()) for item in items]
    try:
        report = ingest(db.session, messages)
    except LedgerError as error:  # e.g. a reading in a locked period: nothing is stored
        db.session.rollback()
        return jsonify(error=f"the ledger refused the batch: {error}"), 409
    db.session.commit()
    return jsonify(accepted=report.accepted, duplicates=report.duplicates, billed=report.billed,
                   refused=report.dead_letters), 200
