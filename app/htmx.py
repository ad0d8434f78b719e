"""The only reader of HX-* headers: decides between a fragment and a full page."""
from flask import Response, make_response, request
from jinja2_fragments.flask import render_block


def is_partial() -> bool:
    """A request wants a fragment when htmx sent it and it is neither boosted nor a history restore."""
    headers = request.headers
    return (headers.get("HX-Request") == "true"
            and headers.get("HX-Boosted") != "true"
            and headers.get("HX-History-Restore-Request") != "true")


def render(template: str, block: str | None = None, **context) -> Response:
    """Render `block` of `template` for htmx requests and the whole page otherwise."""
    from flask import render_template

    if block and is_partial():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    response = make_response(body)
    response.vary.add("HX-Request")
    return response


def redirect(location: str) -> Response:
    """Redirect a full page, or tell htmx to navigate (a 302 would be swapped in place)."""
    from flask import redirect as flask_redirect

    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = location
        return response
    return flask_redirect(location)


def refuse(page, message: str) -> Response:
    """Show the page again with `message` as an error, status 400.

    `page` is the GET view that renders it. Never a redirect: a redirect sent with 400 is
    not followed, so the browser shows a bare "Redirecting…" page and the message is lost.
    """
    from flask import flash

    flash(message, "error")
    response = make_response(page())
    response.status_code = 400
    return response
