"""What the API answers, as pydantic models for ``/openapi.json``, where more than one module needs them.

The models only *describe* the JSON: the views build their answers themselves, and
``tests/gateway/http/test_openapi_examples.py`` checks real answers against these descriptions. A model
beside its routes is enough when one module uses it; the pieces here are shared.

The ``EXAMPLE_*`` values are one consistent story, taken from a real run of the gateway (issuer
``https://consent.example.com``): the app "Birthday Videos" asks Alice for consent to a face swap
with the algorithm ``BJ-2024-0042``, she grants it, the app gets a decision and later withdraws the
consent on her behalf. Every example in the document names these, so they can be read together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = ["JWK", "JWKSet", "SigningKeyView", "View", "absent"]


class View(BaseModel):
    """Base of the response descriptions: open to members added later (clients must ignore unknown ones)."""

    model_config = ConfigDict(frozen=True)


def absent(description: str | None = None, *, extra: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """A member the answer leaves out where it does not apply (annotate it ``T | SkipJsonSchema[None]``).

    Annotated ``T | None`` instead, the member may also be present and null. ``extra`` is merged into
    the member's schema.
    """

    def schema_extra(schema: dict[str, Any]) -> None:
        # Left out, never sent as null: a "default": null would say otherwise.
        schema.pop("default", None)
        schema.update(extra or {})

    return Field(None, description=description, json_schema_extra=schema_extra, **constraints)


# --- signing keys -------------------------------------------------------------------------------------

_BASE64URL_ED25519 = r"^[A-Za-z0-9_-]{43}$"


class _PublicKey(View):
    kty: Literal["OKP"]
    crv: Literal["Ed25519"]
    x: str = Field(pattern=_BASE64URL_ED25519, description="the 32-byte public key, base64url without padding")
    kid: str = Field(description="names the key in the header of every record, ticket and checkpoint it signs")
    use: Literal["sig"]
    alg: Literal["EdDSA"]


class JWK(_PublicKey):
    """An Ed25519 public key (RFC 8037 OKP JWK)."""

    status: Literal["retired"] | SkipJsonSchema[None] = absent(
        "only on a retired key: it signs nothing new, and what it signed still verifies")
    retired_at: datetime | SkipJsonSchema[None] = absent("when the key was retired (retired keys only)")


class JWKSet(View):
    """The public signing keys, the active one and every retired one (RFC 7517 JWK Set)."""

    keys: list[JWK]


class SigningKeyView(_PublicKey):
    """A signing key as an admin sees it: its public JWK with status and creation time."""

    status: Literal["active", "retired"]
    created_at: datetime
    retired_at: datetime | SkipJsonSchema[None] = absent("when the key was retired (retired keys only)")


# --- example values -------------------------------------------------------------------------------------

EXAMPLE_ISSUER = "https://consent.example.com"
EXAMPLE_CLIENT_ID = "cli_H5FTxr13i2fCBbLU89ywZA"
EXAMPLE_ADMIN_CLIENT_ID = "cli_Evc7AjDcKkG1qHjzfNQY1Q"
EXAMPLE_REDIRECT_URI = "https://videos.example.com/consent/done"
EXAMPLE_FILING_NUMBER = "BJ-2024-0042"
EXAMPLE_REQUEST_ID = "creq__mptAyFJT8MVe2xxy_6E7UIs"
EXAMPLE_CONSENT_ID = "cns_2CFuYPd08at1Qkb7TDpaC254"
EXAMPLE_SUBJECT_ID = "sub_HiKi8-dKzdZbR5QfdnUtmvjE"
EXAMPLE_DECISION_ID = "dec_jw4s1DEQsbOBXdz91yzPU_PL"
EXAMPLE_PURPOSE = "Put your face into the birthday video your friends are making"
# sha256sum photo.jpg (the source) and frame.jpg (the target), and of the edited output.
EXAMPLE_SOURCE_SHA256 = "6e312f5d45f48a974de81caafb68aa33b81b0452f5be368570387828995e950c"
EXAMPLE_TARGET_SHA256 = "69318100430109f0782baf3aba48c43d3a067ec7fc7e2866622d3e2579ec258f"
EXAMPLE_OUTPUT_SHA256 = "1fb9f4097256db2d7b1e13aff79cee44339891a31c556b9cf6093885773b3618"
EXAMPLE_KID = "kTB3kP6vsV7Sm"
EXAMPLE_JWK: dict[str, Any] = {
    "kty": "OKP", "crv": "Ed25519", "x": "GPD4E-OuW0YAqj-SixDHa3xGTVGByuOenqkFXJu7qZc", "kid": EXAMPLE_KID,
    "use": "sig", "alg": "EdDSA",
}
EXAMPLE_RETIRED_JWK: dict[str, Any] = {
    "kty": "OKP", "crv": "Ed25519", "x": "V15tUXHCcF-bsFeGi2F7pZDVXVyGf2CDDDcN9oxqS7E", "kid": "kwQk7yBYOTRFv",
    "use": "sig", "alg": "EdDSA", "status": "retired", "retired_at": "2026-11-21T09:00:00Z",
}
