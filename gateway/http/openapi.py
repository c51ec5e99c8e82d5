"""OpenAPI 3.1 document assembled from each HTTP module's ``PATHS``.

Descriptions live beside the routes they describe; a test compares this document with the URL map
so neither can drift from the other.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import BaseModel

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


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema_of(model)}}}


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The query string of a :class:`gateway.http.validation.Query` model, one parameter per field."""
    schema = schema_of(model)
    required = set(schema.get("required", []))
    parameters = []
    for name, declared in schema.get("properties", {}).items():
        field = {k: v for k, v in declared.items() if k not in ("title", "description", "anyOf")}
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
        parameters.append(parameter)
    return parameters


def json_response(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
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


def build(modules: list[ModuleType], issuer: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for module in modules:
        for path, operations in module.PATHS.items():
            merged = paths.setdefault(path, {})
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                # Every route can fail this way; listing them keeps schema-driven clients honest.
                responses.setdefault("default", _PROBLEM_RESPONSE)
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

