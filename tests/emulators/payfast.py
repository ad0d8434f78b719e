"""PayFast emulator: the hosted checkout page that "pays", the ITN it then posts to the
merchant's notify_url, and /eng/query/validate (answers VALID for ITNs it sent).

    app = create_app(passphrase="...")        # WSGI app; app.state holds what it did
    fields = app.state.make_itn({...})         # a signed ITN the emulator will vouch for
"""
from __future__ import annotations

import hashlib
import html
import itertools
import os
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import quote_plus

import requests
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

# PayFast's documented attribute order (kept apart from the app's copy on purpose: the
# emulator stands for PayFast, so a mistake in the app's list shows up as a mismatch).
CHECKOUT_FIELD_ORDER = (
    "merchant_id", "merchant_key", "return_url", "cancel_url", "notify_url", "notify_method",
    "name_first", "name_last", "email_address", "cell_number",
    "m_payment_id", "amount", "item_name", "item_description",
    "custom_int1", "custom_int2", "custom_int3", "custom_int4", "custom_int5",
    "custom_str1", "custom_str2", "custom_str3", "custom_str4", "custom_str5",
    "email_confirmation", "confirmation_address", "currency", "payment_method",
    "subscription_type", "billing_date", "recurring_amount", "frequency", "cycles",
    "subscription_notify_email", "subscription_notify_webhook", "subscription_notify_buyer",
)
ITN_FIELD_ORDER = (
    "m_payment_id", "pf_payment_id", "payment_status", "item_name", "item_description",
    "amount_gross", "amount_fee", "amount_net",
    "custom_str1", "custom_str2", "custom_str3", "custom_str4", "custom_str5",
    "custom_int1", "custom_int2", "custom_int3", "custom_int4", "custom_int5",
    "name_first", "name_last", "email_address", "merchant_id",
)


def _checkout_params(pairs) -> str:
    """Checkout: values trimmed, empty ones left out (PayFast's documented generator)."""
    return "&".join(f"{k}={quote_plus(str(v).strip())}" for k, v in pairs
                    if k != "signature" and str(v).strip())


def _itn_params(pairs) -> str:
    """ITN: every field but the signature, in order, values exactly as sent."""
    return "&".join(f"{k}={quote_plus(str(v))}" for k, v in pairs if k != "signature")


def _sign(params: str, passphrase: str) -> str:
    if passphrase:
        params += f"&passphrase={quote_plus(passphrase)}"
    return hashlib.md5(params.encode()).hexdigest()


@dataclass
class PayfastState:
    passphrase: str
    fee_percent: Decimal = Decimal("3.5")
    vouched: set[str] = field(default_factory=set)  # parameter strings of ITNs we sent
    itns_posted: list[tuple[str, int]] = field(default_factory=list)  # (notify_url, status)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1_000_001))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def make_itn(self, checkout: dict[str, str], status: str = "COMPLETE") -> list[tuple[str, str]]:
        """The signed ITN fields (in PayFast's order) for a checkout, remembered as genuine."""
        gross = Decimal(checkout["amount"])
        fee = -(gross * self.fee_percent / 100).quantize(Decimal("0.01"))
        with self._lock:
            pf_id = str(next(self._ids))
        values = {**checkout, "pf_payment_id": checkout.get("pf_payment_id", pf_id),
                  "payment_status": status, "amount_gross": f"{gross:.2f}",
                  "amount_fee": f"{fee:.2f}", "amount_net": f"{gross + fee:.2f}",
                  "name_first": checkout.get("name_first", "Test"),
                  "name_last": checkout.get("name_last", "Payer")}
        fields = [(name, values.get(name, "")) for name in ITN_FIELD_ORDER]
        params = _itn_params(fields)
        fields.append(("signature", _sign(params, self.passphrase)))
        with self._lock:
            self.vouched.add(params)
        return fields


class PayfastEmulator:
    url_map = Map([
        Rule("/eng/process", endpoint="checkout", methods=["POST"]),
        Rule("/eng/process/pay", endpoint="pay", methods=["POST"]),
        Rule("/eng/query/validate", endpoint="validate", methods=["POST"]),
    ])

    def __init__(self, passphrase: str):
        self.state = PayfastState(passphrase)

    def __call__(self, environ, start_response):
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            endpoint, _ = adapter.match()
            response = getattr(self, endpoint)(request)
        except HTTPException as error:
            response = error
        return response(environ, start_response)

    def checkout(self, request: Request) -> Response:
        """The hosted payment page: check the signature, offer Pay and Cancel."""
        form = request.form
        unknown = sorted(set(form) - set(CHECKOUT_FIELD_ORDER) - {"signature"})
        if unknown:
            return Response(f"Unknown field(s): {', '.join(unknown)}", 400, mimetype="text/plain")
        ordered = [(k, form[k]) for k in CHECKOUT_FIELD_ORDER if k in form]
        if form.get("signature") != _sign(_checkout_params(ordered), self.state.passphrase):
            return Response("Signature mismatch: the merchant's checkout form is not signed correctly",
                            400, mimetype="text/plain")
        hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                         for k, v in form.items())
        return Response(
            "<!doctype html><meta name=viewport content='width=device-width'>"
            "<title>PayFast (emulator)</title><body style='font-family:sans-serif;max-width:30rem;"
            "margin:2rem auto;padding:0 1rem'><h1>PayFast emulator</h1>"
            f"<p>{html.escape(form.get('item_name', ''))}</p><p><strong>R {html.escape(form['amount'])}"
            f"</strong></p><form method=post action='/eng/process/pay'>{hidden}"
            "<button name=outcome value=COMPLETE>Pay now</button> "
            "<button name=outcome value=CANCELLED>Cancel</button></form></body>",
            mimetype="text/html")

    def pay(self, request: Request) -> Response:
        """Post the ITN to notify_url (as PayFast does, server to server), then send the payer back."""
        form = request.form.to_dict()
        status = "COMPLETE" if form.get("outcome") == "COMPLETE" else "CANCELLED"
        fields = self.state.make_itn(form, status)
        try:
            answer = requests.post(form["notify_url"], data=fields, timeout=10).status_code
        except requests.RequestException:
            answer = 0
        self.state.itns_posted.append((form["notify_url"], answer))
        return redirect(form["return_url"] if status == "COMPLETE" else form.get("cancel_url", "/"))

    def validate(self, request: Request) -> Response:
        body = request.get_data(as_text=True)
        return Response("VALID" if body in self.state.vouched else "INVALID", mimetype="text/plain")


def create_app(passphrase: str | None = None) -> PayfastEmulator:
    """The emulator as a WSGI app (passphrase defaults to the app's dev default)."""
    if passphrase is None:
        passphrase = os.environ.get("PAYFAST_PASSPHRASE", "meterwise-dev-passphrase")
    return PayfastEmulator(passphrase)

