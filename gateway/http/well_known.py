"""Public keys: anyone verifies records and tickets with these, without trusting our database."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from gateway.core.db import db
from gateway.http import openapi
from gateway.http.schemas import EXAMPLE_JWK, EXAMPLE_RETIRED_JWK, JWKSet
from gateway.keys.keyring import key_store
from gateway.keys.store import jwks

bp = Blueprint("well_known", __name__)


@bp.get("/.well-known/jwks.json")
def jwks_document() -> Response:
    response = jsonify(jwks(key_store().all(db.session)))
    # Short cache: a rotation must reach verifiers quickly, retired keys never disappear anyway.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


PATHS: dict[str, Any] = {
    "/.well-known/jwks.json": {
        "get": {
            "summary": "Public signing keys (Ed25519 OKP JWKS; retired keys stay listed with status)",
            "tags": ["keys"],
            "responses": {"200": openapi.json_response("JWK set", JWKSet, {
                "rotated": openapi.example("The active key and one retired key", {
                    "keys": [EXAMPLE_RETIRED_JWK, EXAMPLE_JWK]})})},
        }
    }
}
