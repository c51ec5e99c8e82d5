"""OAuth 2.0 endpoints. Their errors are RFC 6749 bodies produced by authlib, not problem+json."""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from flask import Blueprint, Response, current_app, g, jsonify, request
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from gateway.auth.oauth import SCOPES, authorization
from gateway.auth.ratelimit import Limit, limiter
from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.core.problems import Problem, problem_response, to_problem
from gateway.http import openapi
from gateway.http.schemas import EXAMPLE_CLIENT_ID, EXAMPLE_ISSUER, View, absent

bp = Blueprint("oauth", __name__)


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


_OAUTH_ENDPOINTS = frozenset({"oauth.token", "oauth.revoke", "oauth.introspect"})


@bp.before_request
def _readable_basic_credentials() -> Response | None:
    """Basic credentials that decode to no UTF-8 text are a wrong client, not a server fault.

    authlib decodes them itself and lets a UnicodeDecodeError escape (a 500); no client id or secret
    the gateway issues is anything but ASCII, so such a header can only be refused.
    """
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if request.endpoint not in _OAUTH_ENDPOINTS or scheme.lower() != "basic":
        return None
    try:
        base64.b64decode(value.strip()).decode("utf-8")
    except binascii.Error:
        return None  # authlib treats these as no credentials, as before
    except UnicodeDecodeError:
        g.failed = True
        error = InvalidClientError(description="the Basic credentials are not UTF-8 text", status_code=401)
        status, body, headers = error()
        response: Response = authorization.handle_response(status, dict(body), headers)
        return response
    return None


@bp.errorhandler(Exception)
def _oauth_error(exc: Exception) -> Response:
    """Errors before authlib runs (a NUL in the form, a body too large) answer in RFC 6749 form too.

    Only the three OAuth endpoints: there a client library expects ``{"error": …}`` in application/json.
    A rate limit (429) and a server fault (5xx) stay problems, as documented.
    """
    problem = to_problem(exc)
    g.failed = True
    if request.endpoint not in _OAUTH_ENDPOINTS or problem.status == 429 or problem.status >= 500:
        return problem_response(problem)
    _status, body, headers = InvalidRequestError(description=problem.detail or problem.code)()
    response: Response = authorization.handle_response(problem.status, dict(body), headers)
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


# --- OpenAPI ------------------------------------------------------------------------------------
# The forms describe what authlib reads; it parses them itself.


class _ClientAuthentication(BaseModel):
    client_id: str | None = Field(None, description="client_secret_post only; otherwise HTTP Basic")
    client_secret: str | None = Field(None, description="client_secret_post only; otherwise HTTP Basic")


class TokenForm(_ClientAuthentication):
    grant_type: Literal["client_credentials"]
    scope: str | None = Field(None, description="space-separated; default: every scope the app holds. "
                                                "Asking for one it does not hold is invalid_scope")


class TokenHintForm(_ClientAuthentication):
    token: str = Field(description="the access token")
    token_type_hint: Literal["access_token", "refresh_token"] | None = None


class TokenResponse(View):
    """RFC 6749 section 5.1."""

    access_token: str = Field(description="send as Authorization: Bearer …")
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds")
    scope: str = Field(description="space-separated scopes granted")


class Revoked(View):
    """An empty object: the token is revoked, or was unknown (RFC 7009 answers both alike)."""


class Introspection(View):
    """RFC 7662: only ``active`` for a token that is unknown, expired, revoked or another app's."""

    active: bool
    client_id: str | SkipJsonSchema[None] = absent("active tokens only")
    scope: str | SkipJsonSchema[None] = absent("active tokens only")
    token_type: Literal["Bearer"] | SkipJsonSchema[None] = absent("active tokens only")
    iat: int | SkipJsonSchema[None] = absent("issued at, seconds since the epoch (active tokens only)")
    exp: int | SkipJsonSchema[None] = absent("expires at, seconds since the epoch (active tokens only)")


class OAuthError(View):
    """RFC 6749 section 5.2."""

    error: str = Field(description="e.g. invalid_request, invalid_client, invalid_scope, unsupported_grant_type")
    error_description: str | SkipJsonSchema[None] = absent()
    error_uri: str | SkipJsonSchema[None] = absent()


class ServerMetadata(View):
    """RFC 8414 authorization server metadata."""

    issuer: str
    token_endpoint: str
    revocation_endpoint: str
    introspection_endpoint: str
    jwks_uri: str
    scopes_supported: list[str]
    response_types_supported: list[str] = Field(description="empty: there is no authorization endpoint")
    grant_types_supported: list[Literal["client_credentials"]]
    token_endpoint_auth_methods_supported: list[str]
    revocation_endpoint_auth_methods_supported: list[str]
    introspection_endpoint_auth_methods_supported: list[str]
    service_documentation: str


_BEARER = "2qnX1P68oRHpufaJhHBFtlWXOMHqM9ERdYdbrEnfYV"
_SCOPE = "consent:read consent:write edit:face"
_BASIC = "Authenticate the app with HTTP Basic (client_id:client_secret), or send both in the form."
_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
_OAUTH_ERROR = openapi.json_response("RFC 6749 error", OAuthError, {"invalid_client": openapi.example(
    "Wrong or missing client credentials", {
        "error": "invalid_client",
        "error_description": "The client cannot authenticate with methods: "
                             "['client_secret_basic', 'client_secret_post']"})})
_METADATA = {
    "issuer": EXAMPLE_ISSUER,
    "token_endpoint": f"{EXAMPLE_ISSUER}/oauth/token",
    "revocation_endpoint": f"{EXAMPLE_ISSUER}/oauth/revoke",
    "introspection_endpoint": f"{EXAMPLE_ISSUER}/oauth/introspect",
    "jwks_uri": f"{EXAMPLE_ISSUER}/.well-known/jwks.json",
    "scopes_supported": list(SCOPES),
    "response_types_supported": [],
    "grant_types_supported": ["client_credentials"],
    "token_endpoint_auth_methods_supported": _AUTH_METHODS,
    "revocation_endpoint_auth_methods_supported": _AUTH_METHODS,
    "introspection_endpoint_auth_methods_supported": _AUTH_METHODS,
    "service_documentation": f"{EXAMPLE_ISSUER}/docs",
}

PATHS: dict[str, Any] = {
    "/oauth/token": {
        "post": {
            "summary": "Client-credentials access token (HTTP Basic or client_secret_post)",
            "tags": ["oauth"],
            "requestBody": openapi.form_body(TokenForm, {
                "basic": openapi.example("Three scopes, the app authenticated with HTTP Basic",
                                         {"grant_type": "client_credentials", "scope": _SCOPE}, description=_BASIC),
                "post": openapi.example("Every scope the app holds, credentials in the form (client_secret_post)", {
                    "grant_type": "client_credentials", "client_id": EXAMPLE_CLIENT_ID,
                    "client_secret": "Xq0mG7cV1pZr4TtL9eWb2sNk8HdJ5yFa3uQoR6iMvE"}),
            }),
            "responses": {"200": openapi.json_response("token response", TokenResponse, {
                              "token": openapi.example("An hour-long token", {
                                  "access_token": _BEARER, "token_type": "Bearer", "expires_in": 3600,
                                  "scope": _SCOPE})}),
                          "400": _OAUTH_ERROR, "401": _OAUTH_ERROR,
                          "429": openapi.problem("rate limited (too_many_requests, Retry-After)")},
        }
    },
    "/oauth/revoke": {
        "post": {
            "summary": "Revoke an access token (RFC 7009)",
            "tags": ["oauth"],
            "requestBody": openapi.form_body(TokenHintForm, {"revoke": openapi.example(
                "Revoke one of the app's tokens", {"token": _BEARER, "token_type_hint": "access_token"},
                description=_BASIC)}),
            "responses": {"200": openapi.json_response("revoked (or unknown)", Revoked, {
                              "revoked": openapi.example("Revoked", {})}),
                          "400": _OAUTH_ERROR, "401": _OAUTH_ERROR},
        }
    },
    "/oauth/introspect": {
        "post": {
            "summary": "Introspect an access token (RFC 7662)",
            "tags": ["oauth"],
            "requestBody": openapi.form_body(TokenHintForm, {"introspect": openapi.example(
                "Is this token of the app still good?", {"token": _BEARER}, description=_BASIC)}),
            "responses": {"200": openapi.json_response("introspection response", Introspection, {
                              "active": openapi.example("An active token", {
                                  "active": True, "client_id": EXAMPLE_CLIENT_ID, "scope": _SCOPE,
                                  "token_type": "Bearer", "iat": 1796072532, "exp": 1796076132}),
                              "inactive": openapi.example("Revoked, expired, unknown or another app's",
                                                          {"active": False})}),
                          "400": _OAUTH_ERROR, "401": _OAUTH_ERROR},
        }
    },
    "/.well-known/oauth-authorization-server": {
        "get": {
            "summary": "Authorization server metadata (RFC 8414)",
            "tags": ["oauth"],
            "responses": {"200": openapi.json_response("metadata", ServerMetadata, {
                "metadata": openapi.example("This gateway's metadata", _METADATA)})},
        }
    },
}
