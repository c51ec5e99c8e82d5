"""Who am I (for apps checking their token) and the key list (for admins)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify
from pydantic import Field

from gateway.auth.models import OAuthClient
from gateway.auth.oauth import require
from gateway.core.db import db
from gateway.core.problems import Problem
from gateway.core.times import format_time
from gateway.http import openapi
from gateway.http.schemas import (
    EXAMPLE_CLIENT_ID,
    EXAMPLE_JWK,
    EXAMPLE_REDIRECT_URI,
    EXAMPLE_RETIRED_JWK,
    SigningKeyView,
    View,
)
from gateway.keys.keyring import key_store
from gateway.keys.store import jwk_for

bp = Blueprint("clients_api", __name__, url_prefix="/v1")


@bp.get("/clients/me")
@require()
def me() -> Response:
    client = db.session.get(OAuthClient, g.client_id)
    if client is None:
        raise Problem(401, "invalid_token", "the token's client no longer exists")
    return jsonify(client_id=client.client_id, name=client.name, scope=sorted(g.token_scopes),
                   redirect_uris=client.redirect_uris)


@bp.get("/keys")
@require("admin")
def keys() -> Response:
    rows = key_store().all(db.session)
    return jsonify(keys=[{**jwk_for(r), "status": r.status,
                          "created_at": format_time(r.created_at)} for r in rows])


class ClientView(View):
    """The app the token belongs to."""

    client_id: str = Field(pattern="^cli_")
    name: str
    scope: list[str] = Field(description="the scopes of this token (sorted), not all the app holds")
    redirect_uris: list[str] = Field(description="where a consent request may send the person back")


class KeyList(View):
    """Every signing key, newest last."""

    keys: list[SigningKeyView]


PATHS: dict[str, Any] = {
    "/v1/clients/me": {"get": {"summary": "The calling app and the scopes of its token", "tags": ["apps"],
                               **openapi.protected(),
                               "responses": {"200": openapi.json_response("client", ClientView, {
                                                 "app": openapi.example("A token for three scopes", {
                                                     "client_id": EXAMPLE_CLIENT_ID, "name": "Birthday Videos",
                                                     "scope": ["consent:read", "consent:write", "edit:face"],
                                                     "redirect_uris": [EXAMPLE_REDIRECT_URI]})}),
                                             "401": openapi.problem()}}},
    "/v1/keys": {"get": {"summary": "Signing keys with their status (admin)", "tags": ["keys"],
                         **openapi.protected("admin"),
                         "responses": {"200": openapi.json_response("keys", KeyList, {
                                           "rotated": openapi.example("After one rotation", {"keys": [
                                               {**EXAMPLE_RETIRED_JWK, "created_at": "2026-08-01T08:00:00Z"},
                                               {**EXAMPLE_JWK, "status": "active",
                                                "created_at": "2026-11-21T09:00:00Z"}]})}),
                                       "401": openapi.problem(), "403": openapi.problem()}}},
}
