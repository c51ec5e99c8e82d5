from __future__ import annotations

import ast
import dataclasses
import hashlib
import hmac
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import consent.ticket_verifier as tv
from consent import jws, records
from tests.consent.signers import ISSUER, KeySigner, b64url, compact, public_jwk

FILING = "GD-2025-001"
T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
NOW = T0.timestamp() + 10
SOURCE = hashlib.sha256(b"source image").hexdigest()
TARGET = hashlib.sha256(b"target image").hexdigest()
MEDIA = {"source": SOURCE, "target": TARGET}

SPEC = records.TicketSpec(
    decision_id="dec_AAAAAAAAAAAAAAAAAAAAAAAA",
    algorithm=FILING,
    client_id="faceapp",
    operation="face_swap",
    consent_ids=("cns_AAAAAAAAAAAAAAAAAAAAAAAA", "cns_BBBBBBBBBBBBBBBBBBBBBBBB"),
    media=MEDIA,
    issued_at=T0,
    expires_at=T0 + timedelta(seconds=60),
)


def issue(signer: KeySigner, spec: records.TicketSpec = SPEC) -> str:
    """A ticket exactly as the gateway issues one."""
    return jws.sign(records.ticket_claims(spec, issuer=ISSUER), signer, records.TICKET_TYP)


def issue_claims(signer: KeySigner, claims: dict[str, Any], typ: str = records.TICKET_TYP) -> str:
    """A correctly signed ticket with claims the gateway's builder would refuse."""
    return jws.sign(claims, signer, typ)


def check(
    ticket: str,
    jwks: dict[str, Any],
    *,
    media: dict[str, str] = MEDIA,
    now: float | datetime = NOW,
    cache: tv.ReplayCache | None = None,
    issuer: str = ISSUER,
    audience: str = FILING,
) -> dict[str, Any]:
    return tv.verify_ticket(
        ticket,
        jwks,
        media,
        now,
        issuer=issuer,
        audience=audience,
        replay_cache=cache if cache is not None else tv.InMemoryReplayCache(),
    )


def test_a_ticket_the_gateway_issued_authorises_exactly_its_media(signer: KeySigner, jwks: dict[str, Any]) -> None:
    claims = check(issue(signer), jwks)

    assert claims["operation"] == "face_swap"
    assert claims["client_id"] == "faceapp"
    assert claims["consents"] == list(SPEC.consent_ids)
    assert claims["media"] == MEDIA


def test_now_may_be_an_aware_datetime(signer: KeySigner, jwks: dict[str, Any]) -> None:
    assert check(issue(signer), jwks, now=T0 + timedelta(seconds=10))["jti"] == SPEC.decision_id
    with pytest.raises(ValueError, match="timezone"):
        check(issue(signer), jwks, now=datetime(2026, 5, 1, 12, 0))


def test_a_retired_key_still_in_the_jwks_verifies(signer: KeySigner, jwks: dict[str, Any]) -> None:
    new = KeySigner(kid="k-new", issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    rotated = {"keys": [public_jwk(new), jwks["keys"][0] | {"status": "retired"}]}
    assert check(issue(signer), rotated)["jti"] == SPEC.decision_id


# --- forged and altered tickets ---------------------------------------------------------------------


def test_a_forged_signature_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    forger = KeySigner(kid=signer.kid, issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    with pytest.raises(tv.BadSignature):
        check(issue(forger), jwks)


def test_an_altered_payload_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    header, _, signature = issue(signer).split(".")
    claims = records.ticket_claims(SPEC, issuer=ISSUER) | {"aud": "GD-2025-666"}
    with pytest.raises(tv.BadSignature):
        check(f"{header}.{b64url(rfc8785.dumps(claims))}.{signature}", jwks, audience="GD-2025-666")


@pytest.mark.parametrize("alg", ["none", "HS256", "ES256", "Ed25519", None])
def test_any_algorithm_but_eddsa_is_refused(signer: KeySigner, jwks: dict[str, Any], alg: str | None) -> None:
    header = json.dumps({"alg": alg, "kid": signer.kid, "typ": records.TICKET_TYP}).encode()
    ticket = compact(header, rfc8785.dumps(records.ticket_claims(SPEC, issuer=ISSUER)), signer.private_key)
    with pytest.raises(tv.AlgorithmNotAllowed):
        check(ticket, jwks)


def test_hs256_keyed_with_the_published_key_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    header = b64url(json.dumps({"alg": "HS256", "kid": signer.kid, "typ": records.TICKET_TYP}).encode())
    signing_input = f"{header}.{b64url(rfc8785.dumps(records.ticket_claims(SPEC, issuer=ISSUER)))}"
    secret = jwks["keys"][0]["x"].encode()
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(tv.AlgorithmNotAllowed):
        check(f"{signing_input}.{b64url(mac)}", jwks)


def test_an_unknown_kid_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    stranger = KeySigner(kid="k-stranger", issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    with pytest.raises(tv.UnknownKey):
        check(issue(stranger), jwks)


@pytest.mark.parametrize(
    "jwks_doc",
    [
        {},
        {"keys": "k"},
        {"keys": [{"kty": "OKP", "crv": "X25519", "kid": "k-test-1", "x": "AA"}]},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k-test-1", "x": "AAAA"}]},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k-test-1", "x": "AA", "use": "enc"}]},
    ],
)
def test_a_jwks_without_a_usable_key_for_the_kid_is_refused(signer: KeySigner, jwks_doc: dict[str, Any]) -> None:
    with pytest.raises(tv.UnknownKey):
        check(issue(signer), jwks_doc)


def test_a_key_published_with_its_private_half_is_not_trusted(signer: KeySigner, jwks: dict[str, Any]) -> None:
    leaked = {"keys": [jwks["keys"][0] | {"d": b64url(signer.private_key.private_bytes_raw())}]}
    with pytest.raises(tv.UnknownKey):
        check(issue(signer), leaked)


def test_a_consent_record_is_not_a_ticket(signer: KeySigner, jwks: dict[str, Any]) -> None:
    ticket = issue_claims(signer, records.ticket_claims(SPEC, issuer=ISSUER), typ=records.CONSENT_TYP)
    with pytest.raises(tv.WrongType):
        check(ticket, jwks)


def test_crit_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    header = json.dumps({"alg": "EdDSA", "kid": signer.kid, "typ": records.TICKET_TYP, "crit": ["exp"]})
    ticket = compact(header.encode(), rfc8785.dumps(records.ticket_claims(SPEC, issuer=ISSUER)), signer.private_key)
    with pytest.raises(tv.MalformedTicket):
        check(ticket, jwks)


@pytest.mark.parametrize("ticket", ["", "a.b", "a.b.c.d", "e30.e30.", "e30=.e30.AA", "x" * 20000, None, 5])
def test_malformed_tickets_are_refused(jwks: dict[str, Any], ticket: Any) -> None:
    with pytest.raises(tv.MalformedTicket):
        check(ticket, jwks)


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": "1746100800"},
        {"exp": 1.5},
        {"exp": True},
        {"jti": ""},
        {"jti": 7},
    ],
)
def test_signed_tickets_with_malformed_claims_are_refused(
    signer: KeySigner, jwks: dict[str, Any], changes: dict[str, Any]
) -> None:
    claims = records.ticket_claims(SPEC, issuer=ISSUER) | changes
    with pytest.raises(tv.MalformedTicket):
        check(issue_claims(signer, claims), jwks)


# --- issuer, audience, time -------------------------------------------------------------------------


def test_a_ticket_of_another_issuer_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    with pytest.raises(tv.WrongIssuer):
        check(issue(signer), jwks, issuer="https://other-gateway.test")


def test_a_ticket_for_another_algorithm_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    with pytest.raises(tv.WrongAudience):
        check(issue(signer), jwks, audience="GD-2025-002")


def test_an_audience_list_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    # A ticket is for one algorithm; a list could smuggle a second one in.
    claims = records.ticket_claims(SPEC, issuer=ISSUER) | {"aud": [FILING, "GD-2025-002"]}
    with pytest.raises(tv.WrongAudience):
        check(issue_claims(signer, claims), jwks)


def test_expiry_allows_five_seconds_of_clock_skew(signer: KeySigner, jwks: dict[str, Any]) -> None:
    exp = (T0 + timedelta(seconds=60)).timestamp()
    assert check(issue(signer), jwks, now=exp + 4.999)
    with pytest.raises(tv.TicketExpired):
        check(issue(signer), jwks, now=exp + 5)
    with pytest.raises(tv.TicketExpired):
        check(issue(signer), jwks, now=exp + 3600)


def test_a_ticket_from_the_future_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    iat = T0.timestamp()
    assert check(issue(signer), jwks, now=iat - 5)
    with pytest.raises(tv.TicketNotYetValid):
        check(issue(signer), jwks, now=iat - 5.001)


@pytest.mark.parametrize("lifetime", [121, 3600, 0, -10])
def test_a_lifetime_outside_0_to_120_seconds_is_refused(signer: KeySigner, jwks: dict[str, Any], lifetime: int) -> None:
    claims = records.ticket_claims(SPEC, issuer=ISSUER)
    claims["exp"] = claims["iat"] + lifetime
    with pytest.raises(tv.LifetimeTooLong):
        check(issue_claims(signer, claims), jwks)


def test_a_lifetime_of_exactly_120_seconds_is_accepted(signer: KeySigner, jwks: dict[str, Any]) -> None:
    spec = dataclasses.replace(SPEC, expires_at=T0 + timedelta(seconds=120))
    assert check(issue(signer, spec), jwks)


# --- media ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "received",
    [
        {"source": TARGET, "target": SOURCE},  # swapped roles
        {"source": SOURCE, "target": hashlib.sha256(b"another face").hexdigest()},
        {"source": SOURCE},  # a part missing
        {"source": SOURCE, "target": TARGET, "extra": SOURCE},  # a part too many
        {"source": SOURCE.upper(), "target": TARGET.upper()},  # digests are lowercase hex
        {},
    ],
)
def test_media_other_than_the_authorised_are_refused(
    signer: KeySigner, jwks: dict[str, Any], received: dict[str, str]
) -> None:
    with pytest.raises(tv.MediaMismatch):
        check(issue(signer), jwks, media=received)


# --- replay -----------------------------------------------------------------------------------------


def test_a_replayed_ticket_is_refused(signer: KeySigner, jwks: dict[str, Any]) -> None:
    cache = tv.InMemoryReplayCache()
    ticket = issue(signer)
    check(ticket, jwks, cache=cache)
    with pytest.raises(tv.ReplayedTicket):
        check(ticket, jwks, cache=cache, now=NOW + 1)


def test_a_refused_ticket_is_not_consumed(signer: KeySigner, jwks: dict[str, Any]) -> None:
    cache = tv.InMemoryReplayCache()
    ticket = issue(signer)
    with pytest.raises(tv.MediaMismatch):
        check(ticket, jwks, cache=cache, media={"source": SOURCE, "target": SOURCE})
    assert check(ticket, jwks, cache=cache)["jti"] == SPEC.decision_id


def test_the_in_memory_cache_forgets_ids_once_they_expire() -> None:
    cache = tv.InMemoryReplayCache()
    assert cache.remember("dec_1", expires_at=100.0, now=0.0)
    assert not cache.remember("dec_1", expires_at=100.0, now=99.0)
    assert cache.remember("dec_2", expires_at=300.0, now=100.0)  # dec_1 is purged here
    assert cache._expiry == {"dec_2": 300.0}


def test_every_refusal_is_a_ticket_error_with_a_distinct_code() -> None:
    refusals = [cls for cls in vars(tv).values() if isinstance(cls, type) and issubclass(cls, tv.TicketError)]
    codes = [cls.code for cls in refusals]
    assert len(refusals) == 13
    assert len(set(codes)) == len(codes)
    assert all(code.startswith("ticket_") for code in codes)


# --- vendorability ----------------------------------------------------------------------------------


def test_the_verifier_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(Path(tv.__file__).read_text(encoding="utf-8"))
    roots = {
        ((node.module or ".") if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert roots - sys.stdlib_module_names <= {"cryptography"}
