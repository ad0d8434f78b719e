"""Inbound payment webhooks (fixed interfaces): PayFast ITN and the SMS gateway.

Both are CSRF-exempt: PayFast is checked by signature, source and gateway confirmation;
the SMS gateway by HTTP Basic Auth.
"""
import hmac
import json
import zlib

from flask import Blueprint, Response, current_app, jsonify, request

from app.extensions import csrf, db
from app.payments import mpesa_sms, payfast

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)


@bp.post("/payfast/itn")
def payfast_itn():
    # Fields in the order posted: the ITN signature depends on it.
    fields = list(request.form.items(multi=True))
    outcome = payfast.handle_itn(db.session, payfast.PayfastSettings.from_config(current_app.config),
                                 fields, request.remote_addr)
    return Response(outcome.message, status=outcome.status_code, mimetype="text/plain")


@bp.route("/sms", methods=["GET", "POST"])
def sms_gateway():
    if not _gateway_authorised():
        return Response(json.dumps({"error": True, "message": "authentication required"}), 401,
                        {"WWW-Authenticate": 'Basic realm="meterwise-sms"'}, mimetype="application/json")
    if request.method == "GET":
        return jsonify({"medic-gateway": True})
    try:
        raw = request.get_data()
        if request.headers.get("Content-Encoding", "").lower() == "gzip":
            raw = _gunzip(raw)
        body = _parse_json(raw)
        answer = mpesa_sms.handle_gateway_post(db.session, body,
                                               senders=current_app.config["MPESA_SENDERS"])
    except (ValueError, OSError) as error:
        db.session.rollback()
        return jsonify({"error": True, "message": str(error)}), 400
    return jsonify(answer)


def _parse_json(raw: bytes) -> dict:
    """The gateway's JSON object; ValueError when the body as a whole cannot be read."""
    try:
        # An integer too long for Python's int() stays text, for the message to refuse.
        body = json.loads(raw or b"{}", parse_int=lambda digits: int(digits) if len(digits) <= 40 else digits)
    except RecursionError:  # e.g. 100,000 nested "[": Python's parser gives up
        raise ValueError("the body is nested too deeply to read") from None
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    return body


MAX_GATEWAY_BODY = 2 * 1024 * 1024  # far above a gateway poll; refuses gzip bombs


def _gunzip(raw: bytes) -> bytes:
    """Decompress a gzip body, refusing one that inflates past MAX_GATEWAY_BODY."""
    try:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        body = inflater.decompress(raw, MAX_GATEWAY_BODY)
    except zlib.error as error:
        raise ValueError(f"the gzip body is corrupt: {error}") from None
    if inflater.unconsumed_tail:
        raise ValueError("the body is too large")
    return body


def _gateway_authorised() -> bool:
    expected_password = current_app.config.get("SMS_GATEWAY_PASSWORD") or ""
    auth = request.authorization
    if not expected_password or auth is None or auth.type != "basic":
        return False
    user_ok = hmac.compare_digest((auth.username or "").encode(),
                                  current_app.config["SMS_GATEWAY_USER"].encode())
    password_ok = hmac.compare_digest((auth.password or "").encode(), expected_password.encode())
    return user_ok and password_ok
