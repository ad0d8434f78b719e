"""The JSON API answers every error as problem+json; pages keep their HTML error pages."""
import pytest

from app.metering.api_keys import create_api_key


def problem_of(response) -> dict:
    assert response.mimetype == "application/problem+json", response.get_data(as_text=True)[:200]
    body = response.get_json(force=True)
    assert set(body) == {"type", "title", "status", "detail"} and body["status"] == response.status_code
    return body


@pytest.mark.parametrize(("method", "path", "status"), [
    ("get", "/api/v1/nothing-here", 404),
    ("get", "/api/v1/topups", 405),
    ("get", "/api/v1/readings", 401),  # GET lists readings (a keyed read) since issue 21
    ("post", "/api/v1/readings", 401),
])
def test_api_errors_are_problem_json(client, method, path, status):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert problem_of(response)["title"]


def test_refused_readings_say_why_in_problem_json(session, client):
    key = create_api_key(session, "gateway")
    session.commit()
    response = client.post("/api/v1/readings", data=b"not json", headers={"X-API-Key": key},
                           content_type="application/json")
    assert response.status_code == 400
    assert problem_of(response)["detail"].startswith("send a JSON reading object")
    assert problem_of(client.post("/api/v1/readings", json={"readings": [{}] * 1001},
                                  headers={"X-API-Key": key})) == {
        "type": "about:blank", "title": "Request Entity Too Large", "status": 413,
        "detail": "at most 1000 readings per request"}


def test_a_crash_on_the_api_is_problem_json(app, client, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr("app.integration.keys.authenticate", boom)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        response = client.post("/api/v1/readings", json={})
    finally:
        app.config["PROPAGATE_EXCEPTIONS"] = None
    assert response.status_code == 500 and problem_of(response)["status"] == 500


def test_pages_keep_html_errors(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response.mimetype == "text/html"
