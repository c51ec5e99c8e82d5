"""OpenAPI 3.1 document assembled from each HTTP module's ``PATHS``.

Descriptions live beside the routes they describe; a test compares this document with the URL map
so neither can drift from the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import ModuleType
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "code": {"type": "string"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "reason": {"type": "string"},
    },
}

_PROBLEM_RESPONSE = {
    "description": "problem details (RFC 9457)",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def problem(description: str = "problem details (RFC 9457)") -> dict[str, Any]:
    return {**_PROBLEM_RESPONSE, "description": description}


def protected(*scopes: str) -> dict[str, Any]:
    return {"security": [{"oauth2": list(scopes)}]}


# Examples of one media type by name: each an Example Object made with :func:`example`.
Examples = Mapping[str, Mapping[str, Any]]

_NO_VALUE: Any = object()


def example(summary: str, value: Any = _NO_VALUE, *, description: str | None = None) -> dict[str, Any]:
    """An Example Object (OpenAPI 3.1) for the ``examples`` of a media type or parameter.

    Without a value it only describes what is sent or answered (binary media: an image, a zip).
    """
    found: dict[str, Any] = {"summary": summary}
    if description:
        found["description"] = description
    if value is not _NO_VALUE:
        found["value"] = value
    return found


def media(schema: Mapping[str, Any], examples: Examples | None = None) -> dict[str, Any]:
    """A Media Type Object: the schema and, by name, examples of it."""
    found: dict[str, Any] = {"schema": dict(schema)}
    if examples:
        found["examples"] = {name: dict(item) for name, item in examples.items()}
    return found


def json_body(model: type[BaseModel], examples: Examples | None = None) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": media(schema_of(model), examples)}}


def form_body(model: type[BaseModel], examples: Examples | None = None) -> dict[str, Any]:
    """An ``application/x-www-form-urlencoded`` body (the OAuth endpoints), one field per member."""
    return {"required": True,
            "content": {"application/x-www-form-urlencoded": media(schema_of(model), examples)}}


def path_parameter(name: str, example_value: str, description: str | None = None,
                   pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "minLength": 1}
    if pattern:
        schema["pattern"] = pattern
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema,
                                 "example": example_value}
    if description:
        parameter["description"] = description
    return parameter


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query string of a :class:`gateway.http.validation.Query` model, one parameter per field.

    The first of a field's ``examples`` becomes the parameter's ``example``.
    """
    schema = schema_of(model)
    required = set(schema.get("required", []))
    parameters = []
    for name, declared in schema.get("properties", {}).items():
        field = {k: v for k, v in declared.items() if k not in ("title", "description", "anyOf", "examples")}
        if field.get("default", 0) is None:
            del field["default"]
        description = declared.get("description")
        # Optional fields come out as anyOf [T, null]; a query parameter is simply absent instead.
        variants = [v for v in declared.get("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:
            field = {**variants[0], **field}
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": field}
        if description:
            parameter["description"] = description
        if declared.get("examples"):
            parameter["example"] = declared["examples"][0]
        parameters.append(parameter)
    return parameters


def json_response(description: str, model: type[BaseModel] | None = None,
                  examples: Examples | None = None) -> dict[str, Any]:
    """A JSON answer described by ``model`` (a :class:`gateway.http.schemas.View`), with named examples.

    Without a model the answer is only "a JSON object": give every answer whose shape is known a model.
    """
    schema = schema_of(model, mode="serialization") if model is not None else {"type": "object"}
    return {"description": description, "content": {"application/json": media(schema, examples)}}


def schema_of(model: type[BaseModel], mode: JsonSchemaMode = "validation") -> dict[str, Any]:
    """The JSON Schema of ``model``: of what is sent (``validation``) or answered (``serialization``)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode=mode)
    # Nested models are inlined via $defs so each body stays self-contained.
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, defs)
    return inlined


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            return _inline(defs[ref.rsplit("/", 1)[1]], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node


_HTML_FAILURE = {"description": "an error page", "content": {"text/html": {"schema": {"type": "string"}}}}


def _failures_of(operation: dict[str, Any]) -> dict[str, Any]:
    """The failures any route of its kind can answer, in the media type its other errors use."""
    responses = operation.get("responses", {})
    html = any("text/html" in r.get("content", {}) for s, r in responses.items() if s.startswith("2"))
    documented_400 = responses.get("400")

    def failure(description: str) -> dict[str, Any]:
        if html:
            return {**_HTML_FAILURE, "description": description}
        if documented_400 is not None and "application/problem+json" not in documented_400.get("content", {}):
            return {**documented_400, "description": description}  # e.g. RFC 6749 errors of the OAuth endpoints
        return problem(description)

    failures = {
        "400": failure("a malformed request, e.g. a NUL character in a parameter (invalid_characters)"),
        "500": problem("internal_error: an unexpected error; nothing was committed"),
        "503": problem("database_unavailable or signing_key_unavailable: nothing was decided (Retry-After)"),
    }
    body = operation.get("requestBody", {}).get("content", {})
    if body:
        failures["413"] = failure("payload_too_large: the body exceeds the limit")
    if "application/json" in body:
        failures["415"] = problem("unsupported_media_type: send the body as application/json")
        failures["422"] = problem("validation_failed or unknown_field: the body does not match its schema")
    if operation.get("security"):
        failures["401"] = problem("missing_token or invalid_token (WWW-Authenticate: Bearer)")
        failures["403"] = problem("insufficient_scope")
    return failures


def build(modules: list[ModuleType], issuer: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for module in modules:
        for path, operations in module.PATHS.items():
            merged = paths.setdefault(path, {})
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                # Every status a route can answer is listed with its media type (no catch-all "default"),
                # so a schema-driven client or fuzzer knows all of them.
                for status, response in _failures_of(operation).items():
                    responses.setdefault(status, response)
                merged[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Consent Gateway",
            "version": "1",
            "description": "Consent-gated biometric editing: signed consent records, decisions with signed "
            "tickets, an edit proxy and a tamper-evident audit log.",
        },
        "servers": [{"url": issuer.rstrip("/")}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Problem": PROBLEM_SCHEMA},
            "securitySchemes": {
                "oauth2": {
                    "type": "oauth2",
                    "flows": {
                        "clientCredentials": {
                            "tokenUrl": "/oauth/token",
                            "scopes": {
                                "consent:read": "read own consent requests and consents",
                                "consent:write": "create consent requests, revoke consents",
                                "edit:face": "decisions and edits on faces",
                                "edit:voice": "decisions and edits on voices",
                                "audit:read": "read the audit log, checkpoints and proofs",
                                "audit:export": "export signed audit bundles",
                                "admin": "register algorithms and administer the gateway",
                            },
                        }
                    },
                }
            },
        },
    }

