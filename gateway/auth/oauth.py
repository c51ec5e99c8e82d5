"""App authentication with authlib: client credentials, RFC 7009 revocation, RFC 7662 introspection.

Tokens are looked up in the database on every request (by hash), so a revoked or expired token is
refused on the very next request in every process; there is no in-process token cache to outlive it.
"""

from __future__ import annotations

import functools
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector
from authlib.oauth2.rfc6749 import InvalidScopeError, JsonRequest, OAuth2Error, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, current_app, g
from flask import request as current_request
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy

from consent.journal import Journal, Party
from gateway.auth.models import OAuthClient, OAuthToken, secret_hash
from gateway.auth.redirects import is_host
from gateway.core.db import db, standalone
from gateway.core.prepared import Prepared
from gateway.core.problems import Problem

SCOPES = (
    "consent:read",
    "consent:write",
    "edit:face",
    "edit:voice",
    "audit:read",
    "audit:export",
    "admin",
)

P = ParamSpec("P")
R = TypeVar("R")


def _query_client(client_id: str) -> OAuthClient | None:
    client = db.session.get(OAuthClient, client_id)
    return client if client is not None and not client.disabled else None


def _save_token(token: dict[str, Any], request: Any) -> None:
    db.session.add(
        OAuthToken(
            access_token_hash=secret_hash(token["access_token"]),
            client_id=request.client.client_id,
            scope=token.get("scope", ""),
            issued_at=int(time.time()),
            expires_in=int(token["expires_in"]),
            revoked=False,
        )
    )
    # The token endpoint is answered by authlib, outside our view functions, so commit here.
    db.session.commit()


def _token_by_string(token_string: str) -> OAuthToken | None:
    return db.session.scalars(
        select(OAuthToken).where(OAuthToken.access_token_hash == secret_hash(token_string))
    ).first()


@dataclass(frozen=True)
class BearerToken:
    """An access token as a protected request needs it: read, checked and forgotten within the request.

    authlib's TokenMixin (the part a resource server uses), read with one prebuilt Core statement
    rather than as an ORM object: nothing in a request changes the token it came with.
    """

    client_id: str
    scope: str
    issued_at: int
    expires_in: int
    revoked: bool
    redirect_uris: tuple[str, ...]  # the app's, as registered (read with the token)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_at(self) -> int:
        return self.issued_at + self.expires_in

    def is_expired(self) -> bool:
        return self.get_expires_at() <= int(time.time())

    def is_revoked(self) -> bool:
        return self.revoked


_TOKENS = OAuthToken.__table__.c
_CLIENTS = OAuthClient.__table__.c
# Built once (a request pays for running it, not for building it); standalone: it runs before the
# request takes SQLite's write lock, if it takes it at all. The app's redirect URIs come with the token
# (one statement, not a second read where a view needs them); a token whose app is gone matches nothing.
_BEARER = Prepared(standalone(
    select(_TOKENS.client_id, _TOKENS.scope, _TOKENS.issued_at, _TOKENS.expires_in, _TOKENS.revoked,
           _CLIENTS.redirect_uris)
    .join_from(OAuthToken.__table__, OAuthClient.__table__, _CLIENTS.client_id == _TOKENS.client_id)
    .where(_TOKENS.access_token_hash == bindparam("token_hash"))
))


def _bearer_token(token_string: str) -> BearerToken | None:
    # Read on every request, never cached: a revocation or expiry is seen by the very next request
    # in every process.
    rows = _BEARER.rows(db.session.connection(), {"token_hash": secret_hash(token_string)})
    if not rows:
        return None
    row = rows[0]
    return BearerToken(client_id=row.client_id, scope=row.scope, issued_at=row.issued_at,
                       expires_in=row.expires_in, revoked=bool(row.revoked),
                       redirect_uris=tuple(row.redirect_uris or ()))


class _ClientCredentials(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self) -> None:
        super().validate_token_request()
        # authlib would quietly narrow a request for scopes the app does not hold; refusing is clearer
        # and stops an app from believing it holds a scope it was never granted.
        requested = set((self.request.payload.scope or "").split())
        if requested - set(self.request.client.scope.split()):
            raise InvalidScopeError()


class _Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> OAuthToken | None:
        return _token_by_string(token_string)

    def revoke_token(self, token: OAuthToken, request: Any) -> None:
        token.revoked = True
        db.session.commit()


class _Introspection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> OAuthToken | None:
        return _token_by_string(token_string)

    def check_permission(self, token: OAuthToken, client: OAuthClient, request: Any) -> bool:
        # An app may introspect only its own tokens: another app's token is reported inactive.
        return token.client_id == client.client_id

    def introspect_token(self, token: OAuthToken) -> dict[str, Any]:
        return {
            "active": True,
            "client_id": token.client_id,
            "scope": token.scope,
            "token_type": "Bearer",
            "iat": token.issued_at,
            "exp": token.get_expires_at(),
        }


class _Bearer(BearerTokenValidator):  # type: ignore[misc]
    def authenticate_token(self, token_string: str) -> BearerToken | None:
        return _bearer_token(token_string)


@dataclass(frozen=True)
class _OAuth:
    server: AuthorizationServer
    protector: ResourceProtector


_EXT = "consent_gateway.oauth"


def init_app(app: Flask) -> None:
    """One authorization server and one resource protector per app, each registered once."""
    app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN", {"client_credentials": app.config["ACCESS_TOKEN_TTL"]})
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", list(SCOPES))
    server = AuthorizationServer()
    server.init_app(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(_ClientCredentials)
    server.register_endpoint(_Revocation)
    server.register_endpoint(_Introspection)
    protector = ResourceProtector()
    protector.register_token_validator(_Bearer())
    app.extensions[_EXT] = _OAuth(server, protector)


def _oauth() -> _OAuth:
    oauth: _OAuth = current_app.extensions[_EXT]
    return oauth


# The current app's authorization server, for the token, revocation and introspection routes.
authorization: Any = LocalProxy(lambda: _oauth().server)


def _problem_for(error: OAuth2Error) -> Problem:
    # Resource endpoints answer in problem+json like every other API error, while keeping the
    # RFC 6750 WWW-Authenticate challenge that OAuth clients look for.
    status = error.status_code or 401
    challenge = f'Bearer error="{error.error}"' if error.error != "missing_authorization" else "Bearer"
    if error.error == "insufficient_scope":
        status = 403
    code = {
        "missing_authorization": "missing_token",
        "invalid_token": "invalid_token",
        "insufficient_scope": "insufficient_scope",
        "unsupported_token_type": "invalid_token",
    }.get(error.error, "invalid_token")
    return Problem(status, code, error.description or None, headers={"WWW-Authenticate": challenge})


def require(*scopes: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Protect a view: a live token holding ALL of ``scopes`` (g.client_id, g.token_scopes and
    g.client_redirect_uris are set for the view)."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            authenticate(*scopes)
            return view(*args, **kwargs)

        setattr(wrapped, "required_scopes", scopes)  # noqa: B010 - read by the OpenAPI builder
        return wrapped

    return decorator


def authenticate(*scopes: str) -> BearerToken:
    try:
        # authlib treats a list of scopes as "any of"; each scope is required here, so check them one
        # by one (a decision needs edit:face, an export needs audit:export, never a substitute).
        # The request as authlib's bearer validation reads it (method, headers): Flask's own adapter also
        # builds the full URL, which nothing here reads and which cost as much as the rest of the check.
        resource_request = JsonRequest(current_request.method, current_request.path, current_request.headers)
        token: BearerToken = _oauth().protector.validate_request([scopes[0]] if scopes else None, resource_request)
        granted = set(token.scope.split())
        missing = [s for s in scopes if s not in granted]
        if missing:
            raise Problem(403, "insufficient_scope", f"this call needs the scope(s): {' '.join(missing)}",
                          headers={"WWW-Authenticate": f'Bearer error="insufficient_scope" scope="{" ".join(scopes)}"'})
    except OAuth2Error as error:
        raise _problem_for(error) from error
    g.client_id = token.client_id
    g.token_scopes = frozenset(token.scope.split())
    g.client_redirect_uris = token.redirect_uris
    return token


# RFC 7591 client metadata an app may register to introduce itself on the consent screen.
CLIENT_METADATA = ("client_uri", "policy_uri", "tos_uri", "logo_uri")
# RFC 3986 characters only: these URLs end up in pages and (the logo's origin) in the
# Content-Security-Policy, where a quote, a space or a semicolon must never arrive.
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_MAX_URI_LENGTH = 2000


def _metadata_uri(field: str, uri: str | None) -> str | None:
    """A client metadata URL as people will open it: https (http only on loopback, for development)."""
    if uri is None or not uri.strip():
        return None
    if len(uri) > _MAX_URI_LENGTH or not _URI_CHARACTERS.fullmatch(uri):
        raise ValueError(f"{field} must be a URL of at most {_MAX_URI_LENGTH} URI characters (RFC 3986): {uri!r}")
    parts = urlsplit(uri)
    host = parts.hostname or ""
    loopback = host in ("localhost", "127.0.0.1", "::1")
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"{field} must be an https URL (http only on loopback, for development): {uri}")
    if parts.username or parts.password or not is_host(host):
        raise ValueError(f"{field} needs a DNS name or an IP address as its host, and no credentials: {uri}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise ValueError(f"{field} has an invalid port: {uri}") from exc
    return uri


def create_client(
    session: Session, *, name: str, scope: str, redirect_uris: list[str], actor: Party, journal: Journal,
    now: datetime, client_uri: str | None = None, policy_uri: str | None = None, tos_uri: str | None = None,
    logo_uri: str | None = None,
) -> tuple[OAuthClient, str]:
    """Register an app; the secret is returned once and only its hash is kept.

    ``client_uri``, ``policy_uri``, ``tos_uri`` and ``logo_uri`` (RFC 7591) introduce the app on the
    consent screen: its publisher's page, privacy policy, terms and logo.
    """
    unknown = [s for s in scope.split() if s not in SCOPES]
    if unknown:
        raise ValueError(f"unknown scope(s): {' '.join(unknown)}; known: {' '.join(SCOPES)}")
    if not name.strip():
        raise ValueError("a client needs a name")
    metadata = {
        "client_uri": _metadata_uri("client_uri", client_uri),
        "policy_uri": _metadata_uri("policy_uri", policy_uri),
        "tos_uri": _metadata_uri("tos_uri", tos_uri),
        "logo_uri": _metadata_uri("logo_uri", logo_uri),
    }
    secret = secrets.token_urlsafe(32)
    client = OAuthClient(
        client_id="cli_" + secrets.token_urlsafe(16),
        client_secret_hash=secret_hash(secret),
        name=name.strip(),
        scope=" ".join(dict.fromkeys(scope.split())),
        redirect_uris=redirect_uris,
        created_at=now,
        disabled=False,
        **metadata,
    )
    session.add(client)
    registered = {key: value for key, value in metadata.items() if value is not None}
    journal.record("client.created", actor, client_id=client.client_id,
                   detail={"name": client.name, "scope": client.scope, "redirect_uris": redirect_uris, **registered})
    return client, secret
