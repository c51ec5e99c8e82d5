"""OAuth 2.0 endpoints. Their errors are RFC 6749 bodies produced by authlib, not problem+json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from gateway.auth.oauth import SCOPES, authorization
from gateway.auth.ratelimit import Limit, limiter
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem, problem_response

bp = Blueprint("oauth", __name__)

_FORM = {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
_OAUTH_ERROR = {"description": "RFC 6749 error", "content": {"application/json": {"schema": {"type": "object"}}}}


@bp.post("/oauth/token")
def token() -> Response:
    # Guessing client secrets is throttled per address, in the shared store so every process counts.
    limit = Limit("oauth-token-ip", int(current_app.config["TOKEN_RATE_LIMIT_PER_MINUTE"]), 60)
    verdict = limiter().hit(db.session, limit, request.remote_addr or "unknown", utcnow())
    if not verdict.allowed:
        # Returned, not raised, so the boundary commits the count of the refused attempt too.
        return problem_response(Problem(429, "too_many_requests", "too many token requests; slow down",
                                        headers={"Retry-After": str(verdict.retry_after)}))
    response: Response = authorization.create_token_response()
    return response


@bp.post("/oauth/revoke")
def revoke() -> Response:
    response: Response = authorization.create_endpoint_response("revocation")
    return response


@bp.post("/oauth/introspect")
def introspect() -> Response:
    response: Response = authorization.create_endpoint_response("introspection")
    return response


@bp.get("/.well-known/oauth-authorization-server")
def metadata() -> Response:
    issuer = current_app.config["ISSUER"].rstrip("/")
    body: dict[str, Any] = {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "scopes_supported": list(SCOPES),
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "service_documentation": f"{issuer}/docs",
    }
    return jsonify(body)


PATHS: dict[str, Any] = {
    "/oauth/token": {
        "post": {
            "summary": "Client-credentials access token (HTTP Basic or client_secret_post)",
            "tags": ["oauth"],
            "requestBody": {"required": True, "content": _FORM},
            "responses": {"200": {"description": "token response"}, "400": _OAUTH_ERROR, "401": _OAUTH_ERROR,
                          "429": {"description": "rate limited (problem+json, Retry-After)"}},
        }
    },
    "/oauth/revoke": {
        "post": {
            "summary": "Revoke an access token (RFC 7009)",
            "tags": ["oauth"],
            "requestBody": {"required": True, "content": _FORM},
            "responses": {"200": {"description": "revoked (or unknown)"}, "400": _OAUTH_ERROR, "401": _OAUTH_ERROR},
        }
    },
    "/oauth/introspect": {
        "post": {
            "summary": "Introspect an access token (RFC 7662)",
            "tags": ["oauth"],
            "requestBody": {"required": True, "content": _FORM},
            "responses": {"200": {"description": "introspection response"}, "400": _OAUTH_ERROR,
                          "401": _OAUTH_ERROR},
        }
    },
    "/.well-known/oauth-authorization-server": {
        "get": {
            "summary": "Authorization server metadata (RFC 8414)",
            "tags": ["oauth"],
            "responses": {"200": {"description": "metadata"}},
        }
    },
}
