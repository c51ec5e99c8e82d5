from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import jwt as pyjwt
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from joserfc import jws as jose_jws
from joserfc import jwt as jose_jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet, OKPKey

from consent import errors, jws
from tests.consent.signers import ISSUER, KeySigner, b64url, compact, public_jwk

TYP = "consent+jwt"
CLAIMS: dict[str, Any] = {
    "iss": ISSUER,
    "jti": "cns_abc",
    "sub": "sub_xyz",
    "aud": "client-1",
    "iat": 1_700_000_000,
    "exp": 4_100_000_000,
    "consent": {"operations": ["face_swap"], "purpose": "Ünïcode ✓ 换脸", "max_uses": None},
}


def keys_of(signer: KeySigner) -> dict[str, Ed25519PublicKey]:
    return {signer.kid: signer.private_key.public_key()}


def verify(token: str, signer: KeySigner, **overrides: Any) -> jws.VerifiedRecord:
    kwargs: dict[str, Any] = {"issuer": ISSUER, "typ": TYP} | overrides
    return jws.verify(token, keys_of(signer), **kwargs)


def with_header(signer: KeySigner, header: dict[str, Any], claims: dict[str, Any] = CLAIMS) -> str:
    return compact(json.dumps(header).encode(), rfc8785.dumps(claims), signer.private_key)


# --- what sign() produces ---------------------------------------------------------------------------


def test_round_trip_returns_claims_header_and_the_exact_signed_bytes(signer: KeySigner) -> None:
    record = verify(jws.sign(CLAIMS, signer, TYP), signer)

    assert record.claims == CLAIMS
    assert record.header == {"alg": "EdDSA", "kid": signer.kid, "typ": TYP}
    assert record.payload_bytes == rfc8785.dumps(CLAIMS)


def test_header_and_payload_are_jcs_canonical(signer: KeySigner) -> None:
    header_segment, payload_segment, _ = jws.sign(CLAIMS, signer, TYP).split(".")

    assert header_segment == b64url(b'{"alg":"EdDSA","kid":"k-test-1","typ":"consent+jwt"}')
    assert payload_segment == b64url(rfc8785.dumps(CLAIMS))


def test_member_order_of_the_claims_does_not_change_the_record(signer: KeySigner) -> None:
    reordered = dict(reversed(list(CLAIMS.items())))
    # Ed25519 is deterministic, so equal signing input means an identical token.
    assert jws.sign(reordered, signer, TYP) == jws.sign(CLAIMS, signer, TYP)


def test_pyjwt_verifies_what_we_sign(signer: KeySigner) -> None:
    token = jws.sign(CLAIMS, signer, TYP)
    key = pyjwt.PyJWK(public_jwk(signer))

    claims = pyjwt.decode(token, key, algorithms=["EdDSA"], issuer=ISSUER, audience="client-1")

    assert claims == CLAIMS
    assert pyjwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": signer.kid, "typ": TYP}


def test_joserfc_verifies_what_we_sign(signer: KeySigner) -> None:
    token = jws.sign(CLAIMS, signer, TYP)
    key_set = KeySet.import_key_set({"keys": [public_jwk(signer)]})

    # joserfc flags "EdDSA" as superseded by "Ed25519" (RFC 9864) but still verifies it.
    with pytest.warns(SecurityWarning, match="RFC 9864"):
        decoded = jose_jwt.decode(token, key_set, algorithms=["EdDSA"])
    with pytest.warns(SecurityWarning, match="RFC 9864"):
        compact_obj = jose_jws.deserialize_compact(token, key_set, algorithms=["EdDSA"])

    assert decoded.claims == CLAIMS
    assert decoded.header == {"alg": "EdDSA", "kid": signer.kid, "typ": TYP}
    assert compact_obj.payload == rfc8785.dumps(CLAIMS)


def test_we_verify_what_pyjwt_signs(signer: KeySigner) -> None:
    token = pyjwt.encode(CLAIMS, signer.private_key, algorithm="EdDSA", headers={"kid": signer.kid, "typ": TYP})

    assert verify(token, signer).claims == CLAIMS


def test_we_verify_with_keys_from_a_jwks_that_joserfc_exported(signer: KeySigner) -> None:
    raw = signer.private_key.private_bytes_raw()
    exported = OKPKey.import_key(
        {"kty": "OKP", "crv": "Ed25519", "d": b64url(raw), "x": public_jwk(signer)["x"]},
        parameters={"kid": signer.kid, "use": "sig"},
    ).as_dict(private=False)

    keys = jws.jwks_to_keys({"keys": [exported]})

    assert jws.verify(jws.sign(CLAIMS, signer, TYP), keys, issuer=ISSUER, typ=TYP).claims == CLAIMS


def test_sign_refuses_claims_of_another_issuer(signer: KeySigner) -> None:
    with pytest.raises(errors.InvalidTerms, match="issuer"):
        jws.sign(CLAIMS | {"iss": "https://other.test"}, signer, TYP)


@pytest.mark.parametrize("value", [float("nan"), 2**60])
def test_sign_refuses_claims_without_a_canonical_form(signer: KeySigner, value: object) -> None:
    with pytest.raises(errors.InvalidTerms, match="RFC 8785"):
        jws.sign(CLAIMS | {"x": value}, signer, TYP)


# --- what verify() refuses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "..",
        "eyJ.eyJ.",
        "e30=.e30.AAAA",  # padded
        "e3+.e30.AAAA",  # standard alphabet, not url-safe
        "a" * (64 * 1024 + 1),
    ],
)
def test_malformed_tokens_are_refused(signer: KeySigner, token: str) -> None:
    with pytest.raises(errors.MalformedRecord):
        verify(token, signer)


@pytest.mark.parametrize("token", [None, 42, b"a.b.c", ["a", "b", "c"]])
def test_a_token_that_is_not_a_string_is_refused(signer: KeySigner, token: Any) -> None:
    with pytest.raises(errors.MalformedRecord):
        verify(token, signer)


@pytest.mark.parametrize(
    "header",
    [
        b"not json",
        b"[]",
        b'"EdDSA"',
        b'{"alg":"EdDSA","alg":"none","kid":"k-test-1","typ":"consent+jwt"}',  # duplicate member
        b'{"alg":"EdDSA","kid":"k-test-1","typ":"consent+jwt","n":NaN}',
        b"\xff\xfe{}",
    ],
)
def test_a_header_that_is_not_one_json_object_is_refused(signer: KeySigner, header: bytes) -> None:
    token = compact(header, rfc8785.dumps(CLAIMS), signer.private_key)
    with pytest.raises(errors.MalformedRecord):
        verify(token, signer)


def test_non_canonical_base64_is_refused(signer: KeySigner) -> None:
    header_segment, payload, signature = jws.sign(CLAIMS, signer, TYP).split(".")
    # The 52-byte header leaves one byte in the last group: "Q" carries 4 unused zero bits, and "R"
    # decodes to the same byte with one of them set, a second spelling of the same header.
    assert header_segment.endswith("fQ")
    altered = header_segment[:-1] + "R"
    with pytest.raises(errors.MalformedRecord, match="canonical"):
        verify(f"{altered}.{payload}.{signature}", signer)


@pytest.mark.parametrize("alg", ["none", "None", "HS256", "RS256", "ES256", "Ed25519", "eddsa", "", None, ["EdDSA"]])
def test_any_algorithm_but_eddsa_is_refused(signer: KeySigner, alg: Any) -> None:
    token = with_header(signer, {"alg": alg, "kid": signer.kid, "typ": TYP})
    with pytest.raises(errors.AlgorithmNotAllowed):
        verify(token, signer)


def test_a_header_without_alg_is_refused(signer: KeySigner) -> None:
    with pytest.raises(errors.AlgorithmNotAllowed):
        verify(with_header(signer, {"kid": signer.kid, "typ": TYP}), signer)


def test_unsigned_alg_none_token_is_refused(signer: KeySigner) -> None:
    header = b64url(json.dumps({"alg": "none", "kid": signer.kid, "typ": TYP}).encode())
    body = b64url(rfc8785.dumps(CLAIMS))
    with pytest.raises(errors.InvalidRecord):
        verify(f"{header}.{body}.", signer)
    with pytest.raises(errors.AlgorithmNotAllowed):
        verify(f"{header}.{body}.AA", signer)


def test_hs256_keyed_with_the_public_key_is_refused(signer: KeySigner) -> None:
    # The classic alg-confusion forgery: an HMAC whose secret is the published public key.
    public = signer.private_key.public_key()
    for secret in (
        public.public_bytes(Encoding.Raw, PublicFormat.Raw),
        public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo),
    ):
        signing_input = f"{b64url(json.dumps({'alg': 'HS256', 'kid': signer.kid, 'typ': TYP}).encode())}." + b64url(
            rfc8785.dumps(CLAIMS)
        )
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(errors.AlgorithmNotAllowed):
            verify(f"{signing_input}.{b64url(mac)}", signer)


def test_unknown_kid_is_refused(signer: KeySigner) -> None:
    with pytest.raises(errors.UnknownKey):
        verify(with_header(signer, {"alg": "EdDSA", "kid": "k-retired-elsewhere", "typ": TYP}), signer)


@pytest.mark.parametrize("kid", [None, 1, ["k-test-1"], {"k": "k-test-1"}, True])
def test_kid_that_is_not_a_string_is_refused(signer: KeySigner, kid: Any) -> None:
    header = {"alg": "EdDSA", "typ": TYP} | ({} if kid is None else {"kid": kid})
    with pytest.raises(errors.MalformedRecord, match="kid"):
        verify(with_header(signer, header), signer)


@pytest.mark.parametrize("crit", [[], ["b64"], ["exp"]])
def test_crit_header_is_refused(signer: KeySigner, crit: list[str]) -> None:
    header = {"alg": "EdDSA", "kid": signer.kid, "typ": TYP, "crit": crit, "b64": True}
    with pytest.raises(errors.UnsupportedHeader):
        verify(with_header(signer, header), signer)


@pytest.mark.parametrize("typ", ["consent-revocation+jwt", "consent-ticket+jwt", "JWT", "", None, 7])
def test_wrong_typ_is_refused(signer: KeySigner, typ: Any) -> None:
    header = {"alg": "EdDSA", "kid": signer.kid} | ({} if typ is None else {"typ": typ})
    with pytest.raises(errors.WrongType):
        verify(with_header(signer, header), signer)


def test_a_revocation_is_not_accepted_as_a_consent_record(signer: KeySigner) -> None:
    with pytest.raises(errors.WrongType):
        verify(jws.sign(CLAIMS, signer, "consent-revocation+jwt"), signer)


@pytest.mark.parametrize("typ", ["application/consent+jwt", "Consent+JWT"])
def test_typ_compares_as_a_media_type(signer: KeySigner, typ: str) -> None:
    token = with_header(signer, {"alg": "EdDSA", "kid": signer.kid, "typ": typ})
    assert verify(token, signer).claims == CLAIMS


def test_an_altered_payload_is_refused(signer: KeySigner) -> None:
    header, _, signature = jws.sign(CLAIMS, signer, TYP).split(".")
    altered = b64url(rfc8785.dumps(CLAIMS | {"aud": "client-2"}))
    with pytest.raises(errors.BadSignature):
        verify(f"{header}.{altered}.{signature}", signer)


def test_an_altered_header_is_refused(signer: KeySigner) -> None:
    _, payload, signature = jws.sign(CLAIMS, signer, TYP).split(".")
    header = b64url(json.dumps({"kid": signer.kid, "typ": TYP, "alg": "EdDSA"}).encode())
    with pytest.raises(errors.BadSignature):
        verify(f"{header}.{payload}.{signature}", signer)


def test_a_record_signed_by_another_key_under_our_kid_is_refused(signer: KeySigner) -> None:
    impostor = KeySigner(kid=signer.kid, issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    with pytest.raises(errors.BadSignature):
        verify(jws.sign(CLAIMS, impostor, TYP), signer)


@pytest.mark.parametrize("signature", ["AAAA", b64url(b"\x00" * 64), b64url(b"\x00" * 65)])
def test_a_wrong_length_or_zero_signature_is_refused(signer: KeySigner, signature: str) -> None:
    header, payload, _ = jws.sign(CLAIMS, signer, TYP).split(".")
    with pytest.raises(errors.BadSignature):
        verify(f"{header}.{payload}.{signature}", signer)


@pytest.mark.parametrize("iss", ["https://other.test", None, ISSUER + "/"])
def test_wrong_issuer_is_refused(signer: KeySigner, iss: str | None) -> None:
    claims = {k: v for k, v in CLAIMS.items() if k != "iss"} | ({} if iss is None else {"iss": iss})
    token = compact(
        rfc8785.dumps({"alg": "EdDSA", "kid": signer.kid, "typ": TYP}), rfc8785.dumps(claims), signer.private_key
    )
    with pytest.raises(errors.WrongIssuer):
        verify(token, signer)


@pytest.mark.parametrize(
    "payload", [b"[1,2]", b'"cns"', b"null", b"not json", b'{"iss":"a","iss":"b"}', b'{"exp":Infinity}']
)
def test_a_signed_payload_that_is_not_one_json_object_is_refused(signer: KeySigner, payload: bytes) -> None:
    header = rfc8785.dumps({"alg": "EdDSA", "kid": signer.kid, "typ": TYP})
    with pytest.raises(errors.MalformedRecord):
        verify(compact(header, payload, signer.private_key), signer)


def test_every_refusal_is_an_invalid_record_with_a_stable_code() -> None:
    refusals = [
        errors.MalformedRecord,
        errors.AlgorithmNotAllowed,
        errors.UnsupportedHeader,
        errors.UnknownKey,
        errors.WrongType,
        errors.BadSignature,
        errors.WrongIssuer,
    ]
    codes = [cls.code for cls in refusals]
    assert all(issubclass(cls, errors.InvalidRecord) for cls in refusals)
    assert len(set(codes)) == len(codes)
    assert all(code.isidentifier() and code.islower() for code in codes)


# --- JWKS -------------------------------------------------------------------------------------------


def test_jwks_to_keys_keeps_ed25519_signature_keys_and_skips_the_rest(signer: KeySigner) -> None:
    retired = KeySigner(kid="k-old", issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    jwks_doc = {
        "keys": [
            public_jwk(signer),
            public_jwk(retired) | {"status": "retired", "retired_at": "2025-01-01T00:00:00Z"},
            {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": "AA", "y": "AA"},
            {"kty": "OKP", "crv": "X25519", "kid": "ecdh", "x": public_jwk(signer)["x"]},
            public_jwk(signer) | {"kid": "for-encryption", "use": "enc"},
            public_jwk(signer) | {"kid": "for-another-alg", "alg": "Ed448"},
        ]
    }

    keys = jws.jwks_to_keys(jwks_doc)

    assert sorted(keys) == ["k-old", "k-test-1"]
    assert keys["k-old"].public_bytes_raw() == retired.private_key.public_key().public_bytes_raw()
    assert verify(jws.sign(CLAIMS, retired, TYP), retired).claims == CLAIMS


def test_jwks_to_keys_accepts_a_key_without_use_or_alg(signer: KeySigner) -> None:
    jwk = {k: v for k, v in public_jwk(signer).items() if k not in {"use", "alg"}}
    assert list(jws.jwks_to_keys({"keys": [jwk]})) == [signer.kid]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({}, "keys"),
        ({"keys": {"k": {}}}, "keys"),
        ({"keys": ["not an object"]}, "object"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AA"}]}, "kid"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "", "x": "AA"}]}, "kid"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "AAAA"}]}, "32-byte"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k", "x": "!!"}]}, "32-byte"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k"}]}, "32-byte"),
    ],
)
def test_jwks_to_keys_refuses_unusable_sets(document: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.InvalidKeySet, match=message):
        jws.jwks_to_keys(document)


def test_jwks_to_keys_refuses_a_repeated_kid(signer: KeySigner) -> None:
    other = KeySigner(kid=signer.kid, issuer=ISSUER, private_key=Ed25519PrivateKey.generate())
    with pytest.raises(errors.InvalidKeySet, match="two keys"):
        jws.jwks_to_keys({"keys": [public_jwk(signer), public_jwk(other)]})


def test_jwks_to_keys_refuses_published_private_keys(signer: KeySigner) -> None:
    leaked = public_jwk(signer) | {"d": b64url(signer.private_key.private_bytes_raw())}
    with pytest.raises(errors.InvalidKeySet, match="private"):
        jws.jwks_to_keys({"keys": [leaked]})
