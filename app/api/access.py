"""Who is calling the integration API and how much: the key, its permission, its rate limit.

Every /api/v1 request is identified by its key (`X-API-Key`, or `Authorization: Bearer`),
looked up once per request (one indexed query) and counted per key in a fixed hourly window
on the rate-limit storage Flask-Limiter uses (RATELIMIT_STORAGE_URI: Redis in production),
with `limits`, the engine Flask-Limiter is built on (its storage's INCR, windows aligned to the
clock hour: one round trip per request). Flask-Limiter's own decorator is not
used here: it adds `X-RateLimit-*` and a `Retry-After` to every response, 200s included, and
keeps one storage per process rather than per app. Responses carry the IETF draft
`RateLimit-Policy` and `RateLimit` headers; a request over the limit is a 429 problem with
`Retry-After`.
"""
from __future__ import annotations

import logging
import math
import time
from functools import lru_cache

from dataclasses import dataclass

from flask import Blueprint, Response, current_app, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from app.audit import current_actor
from app.integration import keys
from app.integration.key_actors import audit_actor
from app.api.problems import problem
from app.extensions import db
from app.models.api import ApiKey

POLICY_NAME = "hourly"
log = logging.getLogger(__name__)


def presented_key() -> str | None:
    """The key a request presents: X-API-Key, else an `Authorization: Bearer` token."""
    key = request.headers.get("X-API-Key")
    if key:
        return key.strip()
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def current_key() -> ApiKey | None:
    """The live key of this request, looked up once."""
    # Kept on the request, not `g`: an app context (a test's, a CLI's) may outlive many requests.
    environ = request.environ
    if "meterwise.api_key" not in environ:
        environ["meterwise.api_key"] = keys.authenticate(db.session, presented_key())
    return environ["meterwise.api_key"]


@dataclass(frozen=True)
class Counted:
    """One request counted against its key's limit."""

    quota: int
    window: int
    remaining: int
    reset_in: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        """The IETF draft headers (draft-ietf-httpapi-ratelimit-headers) for this count."""
        return {"RateLimit-Policy": f'"{POLICY_NAME}";q={self.quota};w={self.window}',
                "RateLimit": f'"{POLICY_NAME}";r={self.remaining};t={self.reset_in}'}


def _rate_limiter():
    """This app's fixed-window counter on the rate-limit storage (Redis in production)."""
    limiter = current_app.extensions.get("api_rate_limiter")
    if limiter is None:
        uri = current_app.config.get("API_RATELIMIT_STORAGE_URI") or current_app.config["RATELIMIT_STORAGE_URI"]
        limiter = current_app.extensions["api_rate_limiter"] = FixedWindowRateLimiter(storage_from_string(uri))
    return limiter


@lru_cache(maxsize=256)
def _limit(text: str):
    """The parsed limit ("1000/hour"): parsed once per distinct limit, not per request."""
    return parse(text)


def count_request(key: ApiKey) -> Counted | None:
    """Count one request against the key's hourly limit; None when the counter is unreachable."""
    default = current_app.config.get("API_RATE_LIMIT_PER_HOUR", keys.DEFAULT_RATE_LIMIT_PER_HOUR)
    if key.public_id is None:  # a gateway's `mwk_` key from before A7: in the field, posting for many meters
        default = current_app.config.get("API_GATEWAY_RATE_LIMIT_PER_HOUR", keys.GATEWAY_RATE_LIMIT_PER_HOUR)
    item = _limit(keys.rate_limit(key, default))
    identity = f"{key.id}:{key.public_id or key.key_hash[:12]}"  # ids restart when a database is rebuilt
    # Windows are aligned to the clock (the hour), so one INCR (one storage round trip) gives both
    # the count and, from the clock, when the window resets.
    window = item.get_expiry()
    now = time.time()
    bucket = int(now // window)
    try:
        count = _rate_limiter().storage.incr(item.key_for("api", identity, str(bucket)), window + 60)
    except Exception:  # noqa: BLE001 - the counter's storage is down: serve, do not fail every call
        log.warning("API rate-limit storage unreachable; request not counted", exc_info=True)
        return None
    reset_in = max(1, math.ceil((bucket + 1) * window - now))
    return Counted(item.amount, window, max(0, item.amount - count), reset_in, count <= item.amount)


def protect(bp: Blueprint) -> None:
    """Refuse requests without a live key or the view's permission, and count each per key."""

    @bp.before_request
    def require_key():
        view = current_app.view_functions.get(request.endpoint)
        permission = getattr(view, "api_permission", "read")
        if permission is None:  # the document and its docs page are public
            return None
        key = current_key()
        if key is None:
            return problem(401, "send a live API key in the X-API-Key header (or Authorization: Bearer)",
                           headers={"WWW-Authenticate": 'Bearer realm="meterwise"'})
        # Audit rows written for this request name the key (and the person who issued it).
        current_actor.set(audit_actor(key, request.remote_addr))  # a CLI key: "api:<prefix> (CLI key “NAME”)"
        counted = count_request(key) if current_app.config.get("RATELIMIT_ENABLED", True) else None
        request.environ["meterwise.api_counted"] = counted
        if counted is not None and not counted.allowed:
            retry_after = max(1, counted.reset_in)
            return problem(429, f"this key may make {counted.quota} requests per hour; retry in {retry_after} s",
                           headers={**counted.headers(), "Retry-After": str(retry_after)})
        if permission not in key.permission_set:
            return problem(403, f"this key lacks the {permission} permission")
        if getattr(view, "api_staff_only", False) and (key.estate_id is not None or _issued_by_agent(key)):
            return problem(404, "there is nothing here for this key")
        return None

    @bp.after_request
    def add_rate_limit_headers(response: Response) -> Response:
        counted = request.environ.get("meterwise.api_counted")
        if counted is not None:
            for name, value in counted.headers().items():
                response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        return response


def _issued_by_agent(key: ApiKey) -> bool:
    from app.models import User
    if key.created_by_user_id is None:
        return False
    user = db.session.get(User, key.created_by_user_id)
    return user is None or not user.is_staff
