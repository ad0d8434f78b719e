"""Errors on the JSON API as problem+json (RFC 9457): `type`, `title`, `status`, `detail`.

Every error answered under /api/ (a refused request, an unknown route, a crash) has this one
shape and the `application/problem+json` type; pages keep their HTML error pages.
"""
from __future__ import annotations

import json

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

API_PREFIX = "/api/"
PROBLEM_TYPE = "application/problem+json"


def is_api_request() -> bool:
    """Whether the current request is one for the JSON API."""
    return request.path.startswith(API_PREFIX)


def problem(status: int, detail: str | None = None, *, headers: dict[str, str] | None = None) -> Response:
    """A problem+json response for `status`, `detail` saying what went wrong and what to do."""
    title = HTTP_STATUS_CODES.get(status, "Error")
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail or title}
    return Response(json.dumps(body), status=status, headers=headers, mimetype=PROBLEM_TYPE)


def register_problem_handlers(app: Flask) -> None:
    """Answer HTTP errors on /api/ routes as problem+json; others keep Flask's handling."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not is_api_request() or error.code is None:
            return error
        response = problem(error.code, error.description)
        for name in ("Retry-After", "Allow", "WWW-Authenticate"):  # what the error's own response carries
            value = error.get_response().headers.get(name)
            if value:
                response.headers[name] = value
        return response
