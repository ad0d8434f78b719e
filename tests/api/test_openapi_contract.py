"""The generated OpenAPI document, and every operation fuzzed against it (schemathesis-style).

schemathesis is approved for this but not installed here, so this file does its core check
with hypothesis: every operation in /api/v1/openapi.json is called with generated path,
query, header and body values (valid ones and negative ones), and every answer must be a
declared status, never a 5xx, with a body that matches the declared schema.
"""
from __future__ import annotations

import json
import re
from urllib.parse import quote

from hypothesis import HealthCheck, given, settings, strategies as st

from app.integration import keys
from tests import factories

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
FUZZ = settings(max_examples=25, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def conforms(value, schema: dict, components: dict, where: str = "$") -> list[str]:
    """Problems of `value` against the JSON Schema subset the document uses (empty: it conforms)."""
    schema = resolve(schema, components)
    if "anyOf" in schema:
        options = [conforms(value, option, components, where) for option in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{where}: matches no anyOf option ({options})"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} not in {schema['enum']}"]
    kind = schema.get("type")
    checks = {"integer": lambda v: isinstance(v, int) and not isinstance(v, bool), "string": lambda v: isinstance(v, str),
              "boolean": lambda v: isinstance(v, bool), "null": lambda v: v is None,
              "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
              "array": lambda v: isinstance(v, list), "object": lambda v: isinstance(v, dict)}
    if kind and not checks[kind](value):
        return [f"{where}: {value!r} is not {kind}"]
    problems = []
    if kind == "string" and "pattern" in schema and not re.search(schema["pattern"], value):
        problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
    if kind == "array":
        for index, item in enumerate(value):
            problems += conforms(item, schema.get("items", {}), components, f"{where}[{index}]")
    if kind == "object":
        properties = schema.get("properties", {})
        problems += [f"{where}: missing {name}" for name in schema.get("required", []) if name not in value]
        for name, item in value.items():
            if name in properties:
                problems += conforms(item, properties[name], components, f"{where}.{name}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{where}: undeclared property {name}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += conforms(item, schema["additionalProperties"], components, f"{where}.{name}")
    return problems


def check_answer(response, operation: dict, components: dict, label: str) -> None:
    status = response.status_code
    assert status < 500, (label, status, response.get_data(as_text=True)[:300])
    declared = operation["responses"]
    assert str(status) in declared, (label, status, sorted(declared), response.get_data(as_text=True)[:300])
    content = declared[str(status)].get("content")
    if not content:
        return
    (media, spec), = content.items()
    assert response.mimetype == media, (label, status, response.mimetype)
    problems = conforms(json.loads(response.get_data()), spec["schema"], components)
    assert not problems, (label, status, problems[:5])


def values_for(schema: dict, known: list) -> st.SearchStrategy:
    """Values of a parameter: the declared kind, ids that exist, and negative ones."""
    kind = schema.get("type")
    good = st.sampled_from(schema["enum"]) if "enum" in schema else (
        st.integers(-3, 2 ** 45) if kind == "integer" else st.text(max_size=40))
    return st.one_of(good, st.sampled_from(known), st.text(max_size=20), st.integers(-2 ** 63, 2 ** 63))


def test_the_document_is_openapi_3_1_generated_from_the_routes(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = response.get_json()
    assert doc["openapi"] == "3.1.0"
    operations = {op["operationId"] for path in doc["paths"].values() for op in path.values()}
    assert {"list_estates", "get_estate", "list_units", "get_unit", "get_wallet", "list_wallets", "list_meters",
            "get_meter", "meter_consumption", "create_topup", "openapi_json", "meter_last_month_bill", "list_arrears",
            "get_maintenance", "post_maintenance", "create_unit", "unit_move_in", "unit_move_out", "bulk_topup",
            "post_readings"} <= operations
    readings = doc["paths"]["/api/v1/readings"]["post"]  # its own blueprint (app/api/readings.py), declared too
    assert readings["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReadingsIn"}
    assert readings["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReadingsOut"}
    assert {"400", "401", "403", "409", "413", "429"} <= set(readings["responses"])
    assert "readings:write" in readings["description"]
    topup = doc["paths"]["/api/v1/topups"]["post"]
    assert topup["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/TopupIn"}
    assert {"201", "401", "403", "409", "422", "429"} <= set(topup["responses"])
    assert doc["components"]["schemas"]["TopupIn"]["required"] == ["unit_id", "amount"]
    assert doc["components"]["securitySchemes"]["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for path in doc["paths"]:  # every declared path is a real route
        assert (client.get(re.sub(r"\{[^}]+\}", "1", path)).status_code != 405 or path == "/api/v1/topups"
                or path.endswith(("/move-in", "/move-out", "/bulk-topup", "/commit", "/topups"))  # POST-only
                or path == "/api/v1/imports/{kind}")
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and "POST /api/v1/topups" in page.get_data(as_text=True)


def test_every_operation_fuzzed_answers_as_declared(session, client):
    kit = factories.make_estate_with_wallet(session)
    meter = factories.make_meter(session, kit.unit)
    other = factories.make_estate_with_wallet(session)
    session.commit()
    key = keys.issue_key(session, "fuzz", permissions=",".join(keys.API_PERMISSIONS),
                         rate_limit_per_hour=1_000_000).key
    scoped = keys.issue_key(session, "fuzz scoped", permissions="read,topups:write", estate=kit.estate,
                            rate_limit_per_hour=1_000_000).key
    doc = client.get("/api/v1/openapi.json").get_json()
    components = doc["components"]["schemas"]
    known = [kit.estate.id, kit.unit.id, other.unit.id, other.estate.id, meter.serial, "0" + meter.serial, 0]
    counts = {}
    for path, methods in doc["paths"].items():
        for method, operation in methods.items():
            params = operation.get("parameters", [])
            strategy = st.fixed_dictionaries({
                p["name"]: (values_for(p["schema"], known) if p["required"] or p["in"] == "path"
                            else st.none() | values_for(p["schema"], known)) for p in params})
            body, media = None, "application/json"
            if "requestBody" in operation and "application/json" not in operation["requestBody"]["content"]:
                media = next(iter(operation["requestBody"]["content"]))  # a file sent as the body (a CSV)
                body = st.text(max_size=200) | st.binary(max_size=200) | st.sampled_from(
                    ["number\n1A\n", "number,floor_area_m2\n1A,50\n=cmd(),\n1A,\n", ""])
            elif "requestBody" in operation:
                model = resolve(operation["requestBody"]["content"]["application/json"]["schema"], components)
                fields = {name: st.none() | values_for(resolve(s.get("anyOf", [s])[0], components), known)
                          | st.decimals(-10 ** 6, 10 ** 6, places=3).map(str)
                          for name, s in model["properties"].items()}
                body = st.one_of(st.fixed_dictionaries({}, optional=fields), JSON_VALUES)

            fuzz_operation(client, path, method, operation, params, strategy, body, [key, scoped], components,
                           counts, media)()
    assert set(counts) == {op["operationId"] for path in doc["paths"].values() for op in path.values()}


def fuzz_operation(client, path, method, operation, params, strategy, body, api_keys, components, counts,
                   media="application/json"):
    """A hypothesis test of one operation, ready to call."""
    @FUZZ
    @given(values=strategy, payload=body if body is not None else st.none(), which=st.sampled_from(api_keys))
    def call(values, payload, which):
        url = path
        query, headers = [], {"X-API-Key": which}
        for p in params:
            value = values[p["name"]]
            if value is None:
                continue
            if p["in"] == "path":
                # Werkzeug decodes %2F before routing and merges slashes, and "." or ".." are path
                # steps: such a value addresses another route (a 308), never this operation.
                segment = str(value).replace("/", "_")
                segment = "x" if segment in ("", ".", "..") else segment
                url = url.replace("{" + p["name"] + "}", quote(segment, safe=""))
            elif p["in"] == "query":
                query.append(f"{p['name']}={quote(str(value), safe='')}")
            else:
                headers[p["name"]] = re.sub(r"[\r\n\x00-\x1f\x7f]", "", str(value))[:300] or "k"
        full = url + ("?" + "&".join(query) if query else "")
        if method == "post":
            data = json.dumps(payload) if media == "application/json" else payload
            response = client.post(full, data=data, content_type=media, headers=headers)
        else:
            response = client.get(full, headers=headers)
        counts[operation["operationId"]] = counts.get(operation["operationId"], 0) + 1
        check_answer(response, operation, components, f"{method.upper()} {full} {payload!r}")
    return call


def test_unauthenticated_and_over_limit_answers_match_the_document(session, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    components = doc["components"]["schemas"]
    tight = keys.issue_key(session, "tight", permissions="read", rate_limit_per_hour=1).key
    operation = doc["paths"]["/api/v1/estates"]["get"]
    check_answer(client.get("/api/v1/estates"), operation, components, "no key")
    check_answer(client.get("/api/v1/estates", headers={"X-API-Key": tight}), operation, components, "first")
    over = client.get("/api/v1/estates", headers={"X-API-Key": tight})
    assert over.status_code == 429
    check_answer(over, operation, components, "over")
    forbidden = client.post("/api/v1/topups", json={}, headers={"X-API-Key": keys.issue_key(
        session, "r", permissions="read").key, "Idempotency-Key": "x"})
    assert forbidden.status_code == 403
    check_answer(forbidden, doc["paths"]["/api/v1/topups"]["post"], components, "forbidden")
