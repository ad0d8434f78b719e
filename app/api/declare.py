"""Declarations the API is built from and documented by: models, parameters, operations.

Request and response bodies are frozen dataclasses; `json_schema()` reads their type hints
(JSON Schema 2020-12, as OpenAPI 3.1 uses), `parse()` checks a request body against the same
hints, and `operation()` registers a view with its method, path, permission, parameters and
responses. `openapi_document()` assembles the document from those registrations and Flask's
URL map, so what is served and what is documented cannot drift apart.

(pydantic and spectree/flask-openapi3 are the approved libraries for this but are not
installed in this environment; this module is the small subset the API uses.)
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, get_args, get_origin, get_type_hints

from flask import Blueprint

DECIMAL_PATTERN = r"^-?\d{1,15}(\.\d{1,6})?$"


def described(description: str, **schema: Any) -> Any:
    """A dataclass field with a description and extra JSON Schema keywords (maxLength, ...)."""
    default = schema.pop("default", dataclasses.MISSING)
    return field(default=default, metadata={"description": description, "schema": schema})


class BodyError(ValueError):
    """A request body that does not fit its model; `errors` maps a field path to its problem."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


# --- JSON Schema from type hints ---------------------------------------------------------

def _is_optional(hint) -> tuple[bool, Any]:
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1 and len(get_args(hint)) == 2:
            return True, args[0]
    return False, hint


def schema_for(hint, components: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of one type hint; dataclasses become `$ref`s into `components`."""
    optional, inner = _is_optional(hint)
    if optional:
        return {"anyOf": [schema_for(inner, components), {"type": "null"}]}
    origin = get_origin(hint)
    if origin is Literal:
        values = list(get_args(hint))
        return {"type": "string", "enum": values} if all(isinstance(v, str) for v in values) else {"enum": values}
    if origin in (list, tuple):
        return {"type": "array", "items": schema_for(get_args(hint)[0], components)}
    if origin is dict:
        return {"type": "object", "additionalProperties": schema_for(get_args(hint)[1], components)}
    if dataclasses.is_dataclass(hint):
        if hint.__name__ not in components:
            components[hint.__name__] = {}  # reserve first: models may refer to themselves
            components[hint.__name__] = model_schema(hint, components)
        return {"$ref": f"#/components/schemas/{hint.__name__}"}
    simple = {bool: {"type": "boolean"}, int: {"type": "integer"}, str: {"type": "string"},
              float: {"type": "number"}, Any: {},
              Decimal: {"type": "string", "pattern": DECIMAL_PATTERN, "format": "decimal"},
              datetime: {"type": "string", "format": "date-time"}}
    if hint in simple:
        return dict(simple[hint])
    raise TypeError(f"no JSON Schema for {hint!r}")


def model_schema(model: type, components: dict[str, Any]) -> dict[str, Any]:
    """The object schema of a dataclass model: its fields, which are required, descriptions."""
    hints = get_type_hints(model)
    properties, required = {}, []
    for item in dataclasses.fields(model):
        schema = schema_for(hints[item.name], components)
        extra = dict(item.metadata.get("schema", {}))
        if extra:
            target = schema["anyOf"][0] if "anyOf" in schema else schema
            target.update(extra)
        if item.metadata.get("description"):
            schema["description"] = item.metadata["description"]
        properties[item.name] = schema
        if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            required.append(item.name)
    schema = {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    if model.__doc__ and not model.__doc__.startswith(model.__name__ + "("):
        schema["description"] = model.__doc__.strip().splitlines()[0]
    return schema


# --- Parsing request bodies ---------------------------------------------------------------

def _coerce(hint, value, path: str, errors: dict[str, str]):
    optional, inner = _is_optional(hint)
    if value is None:
        if not optional:
            errors[path] = "is required (not null)"
        return None
    hint = inner
    origin = get_origin(hint)
    if origin is Literal:
        if value not in get_args(hint):
            errors[path] = f"must be one of {', '.join(map(str, get_args(hint)))}"
        return value
    if origin is list:
        if not isinstance(value, list):
            errors[path] = "must be an array"
            return None
        return [_coerce(get_args(hint)[0], v, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if dataclasses.is_dataclass(hint):
        return _parse_into(hint, value, path, errors)
    if hint is bool:
        if not isinstance(value, bool):
            errors[path] = "must be true or false"
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors[path] = "must be an integer"
        return value
    if hint is str:
        if not isinstance(value, str):
            errors[path] = "must be a string"
        return value
    if hint is Decimal:
        # Money travels as a string ("150.00"); a JSON number is accepted when it is an integer.
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            errors[path] = 'must be a decimal string such as "150.00"'
            return None
        import re
        text = str(value)
        if not re.fullmatch(DECIMAL_PATTERN, text):
            errors[path] = 'must be a decimal string such as "150.00"'
            return None
        try:
            return Decimal(text)
        except InvalidOperation:
            errors[path] = 'must be a decimal string such as "150.00"'
            return None
    return value


def _parse_into(model: type, data, path: str, errors: dict[str, str]):
    if not isinstance(data, dict):
        errors[path or "body"] = "must be a JSON object"
        return None
    hints = get_type_hints(model)
    names = {f.name for f in dataclasses.fields(model)}
    for extra in sorted(set(data) - names, key=str)[:10]:
        errors[f"{path}{'.' if path else ''}{extra}"] = "is not a field of this request"
    values = {}
    for item in dataclasses.fields(model):
        where = f"{path}{'.' if path else ''}{item.name}"
        if item.name not in data:
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                errors[where] = "is required"
            continue
        value = _coerce(hints[item.name], data[item.name], where, errors)
        limits = item.metadata.get("schema", {})
        if isinstance(value, str) and where not in errors:
            if "maxLength" in limits and len(value) > limits["maxLength"]:
                errors[where] = f"has at most {limits['maxLength']} characters"
            elif "minLength" in limits and len(value) < limits["minLength"]:
                errors[where] = f"has at least {limits['minLength']} character(s)"
        if isinstance(value, int) and not isinstance(value, bool) and where not in errors:
            if "minimum" in limits and value < limits["minimum"]:
                errors[where] = f"must be at least {limits['minimum']}"
            elif "maximum" in limits and value > limits["maximum"]:
                errors[where] = f"must be at most {limits['maximum']}"
        values[item.name] = value
    if errors:
        return None
    return model(**values)


def parse(model: type, data) -> Any:
    """Build `model` from decoded JSON, or raise BodyError listing every field's problem."""
    errors: dict[str, str] = {}
    result = _parse_into(model, data, "", errors)
    if errors:
        raise BodyError(errors)
    return result


def dump(value) -> Any:
    """A model (or list of them) as JSON-ready values: Decimals as strings, times in ISO 8601."""
    if dataclasses.is_dataclass(value):
        return {f.name: dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --- Operations ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """A query, path or header parameter."""

    name: str
    where: Literal["query", "path", "header"]
    type: Any = str
    description: str = ""
    required: bool = False
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Operation:
    endpoint: str
    method: str
    summary: str
    permission: str | None
    params: tuple[Param, ...]
    body: type | None
    responses: dict[int, tuple[str, type | None]]
    tags: tuple[str, ...]
    staff_only: bool = False
    raw_body: tuple[str, ...] = ()  # media types of a body taken as bytes (a CSV file), not a model


OPERATIONS: dict[str, Operation] = {}  # by endpoint name
STANDARD_ERRORS = {401: "No valid API key", 404: "Not found, or outside the key's scope",
                   429: "Over the key's rate limit (see Retry-After)"}


def operation(bp: Blueprint, method: str, rule: str, *, summary: str, permission: str | None,
              response: type | None = None, status: int = 200, params: tuple[Param, ...] = (),
              body: type | None = None, errors: dict[int, str] | None = None, tags: tuple[str, ...] = (),
              staff_only: bool = False, raw_body: tuple[str, ...] = ()) -> Callable:
    """Register a view on `bp` at `rule` and declare it for the OpenAPI document.

    `raw_body` names the media types of a body read as bytes (a file) instead of a `body` model.
    """
    def register(view: Callable) -> Callable:
        endpoint = f"{bp.name}.{view.__name__}"
        responses: dict[int, tuple[str, type | None]] = {status: ("OK" if status == 200 else "Created", response)}
        for code, text in {**STANDARD_ERRORS, **(errors or {})}.items():
            responses[code] = (text, None)
        if permission is not None:
            responses.setdefault(403, ("The key lacks the permission this operation needs", None))
        if body is not None or raw_body or any(param.where == "query" for param in params):
            responses.setdefault(400, ("A parameter or the body is not valid (the detail says which)", None))
        OPERATIONS[endpoint] = Operation(endpoint, method.upper(), summary, permission, params, body,
                                         responses, tags, staff_only, tuple(raw_body))
        view.api_permission = permission
        view.api_staff_only = staff_only
        bp.add_url_rule(rule, view_func=view, methods=[method.upper()])
        return view
    return register


def _openapi_path(rule: str) -> str:
    import re
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _param_schema(param: Param) -> dict[str, Any]:
    schema = schema_for(param.type, {})
    if param.enum:
        schema["enum"] = list(param.enum)
    if param.minimum is not None:
        schema["minimum"] = param.minimum
    if param.maximum is not None:
        schema["maximum"] = param.maximum
    return schema


def openapi_document(app, *, title: str, version: str, description: str, problem_model: type,
                     security_schemes: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every declared operation, paths read from the app's URL map."""
    components: dict[str, Any] = {}
    problem_ref = schema_for(problem_model, components)
    paths: dict[str, Any] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        spec = OPERATIONS.get(rule.endpoint)
        if spec is None:
            continue
        item: dict[str, Any] = {"operationId": rule.endpoint.split(".", 1)[1], "summary": spec.summary,
                                "tags": list(spec.tags)}
        notes = []
        if spec.permission:
            notes.append(f"Needs the `{spec.permission}` permission.")
        if spec.staff_only:
            notes.append("Only keys over every estate (staff keys) may call it.")
        if notes:
            item["description"] = " ".join(notes)
        item["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required or p.where == "path",
             "description": p.description, "schema": _param_schema(p)} for p in spec.params]
        if spec.body is not None:
            item["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": schema_for(spec.body, components)}}}
        elif spec.raw_body:
            item["requestBody"] = {"required": True, "content": {
                media: ({"schema": {"type": "string"}} if media.startswith("text/") else {})
                for media in spec.raw_body}}
        responses = {}
        for code, (text, model) in sorted(spec.responses.items()):
            if code < 400:
                content = {"application/json": {"schema": schema_for(model, components)}} if model else {}
            else:
                content = {"application/problem+json": {"schema": problem_ref}}
            responses[str(code)] = {"description": text, **({"content": content} if content else {})}
        item["responses"] = responses
        if spec.permission is not None:
            item["security"] = [{name: []} for name in security_schemes]
        else:
            item["security"] = []
        paths.setdefault(_openapi_path(rule.rule), {})[spec.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": security_schemes},
        "security": [{name: []} for name in security_schemes],
    }
