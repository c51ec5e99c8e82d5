from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jwt as pyjwt
import pytest

from consent import jws, records
from consent.errors import InvalidTerms
from tests.consent.signers import ISSUER, KeySigner, public_jwk

T0 = datetime(2026, 3, 1, 8, 0, 0, 750_000, tzinfo=UTC)  # fractional seconds are floored
T0_NUMERIC = 1_772_352_000
DIGEST = "ab" * 32

CONSENT = records.ConsentRecordSpec(
    consent_id="cns_AAAAAAAAAAAAAAAAAAAAAAAA",
    request_id="creq_BBBBBBBBBBBBBBBBBBBBBBBB",
    subject_id="sub_CCCCCCCCCCCCCCCCCCCCCCCC",
    client_id="faceapp",
    issued_at=T0,
    not_before=T0,
    expires_at=T0 + timedelta(days=30),
    operations=("voice_clone", "face_swap"),
    purpose="Birthday video with your face",
    algorithms=("GD-2025-002", "GD-2025-001"),
    max_uses=10,
    notice=records.Notice(version="2026-01", sha256=DIGEST, locale="zh-CN"),
    collection=records.Collection(method="hosted_consent_screen", authn="email_otp", at=T0 - timedelta(seconds=30)),
    jurisdiction="CN",
    legal_basis="pipl_art29_separate_consent",
)

REVOCATION = records.RevocationRecordSpec(
    revocation_id="rev_DDDDDDDDDDDDDDDDDDDDDDDD",
    consent_id=CONSENT.consent_id,
    subject_id=CONSENT.subject_id,
    client_id="faceapp",
    issued_at=T0 + timedelta(days=1),
    by="subject",
    reason="no longer wanted",
)

TICKET = records.TicketSpec(
    decision_id="dec_EEEEEEEEEEEEEEEEEEEEEEEE",
    algorithm="GD-2025-001",
    client_id="faceapp",
    operation="face_swap",
    consent_ids=(CONSENT.consent_id, "cns_FFFFFFFFFFFFFFFFFFFFFFFF"),
    media={"source": DIGEST, "target": "cd" * 32},
    issued_at=T0,
    expires_at=T0 + timedelta(seconds=60),
)


# --- ids --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["creq", "cns", "rev", "dec", "sub"])
def test_new_id_is_prefixed_url_safe_and_random(prefix: records.IdPrefix) -> None:
    ids = {records.new_id(prefix) for _ in range(200)}

    assert len(ids) == 200
    for value in ids:
        assert re.fullmatch(rf"{prefix}_[A-Za-z0-9_-]{{22,}}", value)


def test_new_id_refuses_an_unknown_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        records.new_id("usr")  # type: ignore[arg-type]


# --- consent record ---------------------------------------------------------------------------------


def test_consent_claims_are_exactly_the_designed_record() -> None:
    assert records.consent_claims(CONSENT, issuer=ISSUER) == {
        "iss": ISSUER,
        "jti": "cns_AAAAAAAAAAAAAAAAAAAAAAAA",
        "sub": "sub_CCCCCCCCCCCCCCCCCCCCCCCC",
        "aud": "faceapp",
        "iat": T0_NUMERIC,
        "nbf": T0_NUMERIC,
        "exp": T0_NUMERIC + 30 * 86400,
        "request": "creq_BBBBBBBBBBBBBBBBBBBBBBBB",
        "consent": {
            "operations": ["face_swap", "voice_clone"],  # catalogue order, whatever order was ticked
            "modalities": ["face", "voice"],
            "purpose": "Birthday video with your face",
            "algorithms": ["GD-2025-001", "GD-2025-002"],
            "max_uses": 10,
            "notice": {"version": "2026-01", "sha256": DIGEST, "locale": "zh-CN"},
            "collection": {"method": "hosted_consent_screen", "authn": "email_otp", "at": T0_NUMERIC - 30},
            "jurisdiction": "CN",
            "legal_basis": "pipl_art29_separate_consent",
            "evidence": {},
        },
    }


def test_any_algorithm_and_unlimited_uses_are_explicit_nulls() -> None:
    consent = records.consent_claims(dataclasses.replace(CONSENT, algorithms=None, max_uses=None), issuer=ISSUER)[
        "consent"
    ]
    assert consent["algorithms"] is None
    assert consent["max_uses"] is None


def test_renewal_names_the_superseded_consent_and_evidence_stays_open() -> None:
    spec = dataclasses.replace(
        CONSENT,
        supersedes="cns_OLDOLDOLDOLDOLDOLDOLDOLD",
        evidence={"face_template_sha256": DIGEST, "phrase": {"locale": "en", "sha256": DIGEST}},
    )

    claims = records.consent_claims(spec, issuer=ISSUER)

    assert claims["supersedes"] == "cns_OLDOLDOLDOLDOLDOLDOLDOLD"
    assert claims["consent"]["evidence"]["phrase"] == {"locale": "en", "sha256": DIGEST}
    assert "supersedes" not in records.consent_claims(CONSENT, issuer=ISSUER)


def test_times_in_other_zones_become_the_same_numeric_date() -> None:
    east8 = timezone(timedelta(hours=8))
    spec = dataclasses.replace(
        CONSENT,
        issued_at=T0.astimezone(east8),
        not_before=T0.astimezone(east8),
        expires_at=CONSENT.expires_at.astimezone(east8),
    )
    assert records.consent_claims(spec, issuer=ISSUER) == records.consent_claims(CONSENT, issuer=ISSUER)


@pytest.mark.parametrize(
    "changes",
    [
        {"consent_id": "rev_AAAAAAAAAAAAAAAAAAAAAAAA"},
        {"consent_id": "cns_"},
        {"request_id": "cns_AAAAAAAAAAAAAAAAAAAAAAAA"},
        {"subject_id": "alice@example.com"},
        {"client_id": " "},
        {"issued_at": T0.replace(tzinfo=None)},
        {"not_before": T0 - timedelta(seconds=1)},
        {"expires_at": T0},
        {"expires_at": T0 + timedelta(milliseconds=100)},  # floors to the same second as nbf
        {"operations": ()},
        {"operations": ("face_swap", "face_swap")},
        {"operations": ("face_swap", "lip_sync")},
        {"purpose": ""},
        {"algorithms": ()},
        {"algorithms": ("GD-1", "GD-1")},
        {"algorithms": ("",)},
        {"max_uses": 0},
        {"max_uses": True},
        {"notice": records.Notice(version="1", sha256=DIGEST.upper(), locale="en")},
        {"notice": records.Notice(version="1", sha256="ab", locale="en")},
        {"notice": records.Notice(version="1", sha256=DIGEST, locale="fr")},
        {"notice": records.Notice(version="", sha256=DIGEST, locale="en")},
        {"collection": records.Collection(method="", authn="email_otp", at=T0)},
        {"collection": records.Collection(method="screen", authn="", at=T0)},
        {"collection": records.Collection(method="screen", authn="sms_otp", at=T0 + timedelta(seconds=1))},
        {"jurisdiction": ""},
        {"legal_basis": ""},
        {"supersedes": "cns_AAAAAAAAAAAAAAAAAAAAAAAA"},
        {"supersedes": "creq_BBBBBBBBBBBBBBBBBBBBBBBB"},
    ],
)
def test_consent_claims_refuse_facts_that_cannot_make_a_valid_record(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidTerms):
        records.consent_claims(dataclasses.replace(CONSENT, **changes), issuer=ISSUER)


def test_a_signed_consent_record_verifies_with_pyjwt_against_the_jwks(signer: KeySigner) -> None:
    token = jws.sign(records.consent_claims(CONSENT, issuer=ISSUER), signer, records.CONSENT_TYP)
    key = pyjwt.PyJWKSet.from_dict({"keys": [public_jwk(signer)]})[signer.kid]

    claims = pyjwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        issuer=ISSUER,
        audience="faceapp",
        # The record is for a fixed date in 2026; whether it is still in force is not this test's point.
        options={"require": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"], "verify_exp": False},
    )

    assert claims["consent"]["operations"] == ["face_swap", "voice_clone"]
    assert pyjwt.get_unverified_header(token)["typ"] == "consent+jwt"


# --- revocation record ------------------------------------------------------------------------------


def test_revocation_claims_are_exactly_the_designed_record() -> None:
    assert records.revocation_claims(REVOCATION, issuer=ISSUER) == {
        "iss": ISSUER,
        "jti": "rev_DDDDDDDDDDDDDDDDDDDDDDDD",
        "consent": CONSENT.consent_id,
        "sub": CONSENT.subject_id,
        "aud": "faceapp",
        "iat": T0_NUMERIC + 86400,
        "by": "subject",
        "reason": "no longer wanted",
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"revocation_id": "cns_DDDDDDDDDDDDDDDDDDDDDDDD"},
        {"consent_id": "rev_DDDDDDDDDDDDDDDDDDDDDDDD"},
        {"subject_id": ""},
        {"client_id": ""},
        {"by": "robot"},
        {"reason": None},
        {"issued_at": datetime(2026, 3, 2)},
    ],
)
def test_revocation_claims_refuse_invalid_facts(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidTerms):
        records.revocation_claims(dataclasses.replace(REVOCATION, **changes), issuer=ISSUER)


# --- decision ticket --------------------------------------------------------------------------------


def test_ticket_claims_are_exactly_the_designed_ticket() -> None:
    assert records.ticket_claims(TICKET, issuer=ISSUER) == {
        "iss": ISSUER,
        "jti": "dec_EEEEEEEEEEEEEEEEEEEEEEEE",
        "aud": "GD-2025-001",
        "iat": T0_NUMERIC,
        "exp": T0_NUMERIC + 60,
        "client_id": "faceapp",
        "operation": "face_swap",
        "consents": [CONSENT.consent_id, "cns_FFFFFFFFFFFFFFFFFFFFFFFF"],
        "media": {"source": DIGEST, "target": "cd" * 32},
        "binding": "not_checked",
    }


def test_a_ticket_says_when_the_gateway_checked_binding() -> None:
    claims = records.ticket_claims(dataclasses.replace(TICKET, binding="checked"), issuer=ISSUER)
    assert claims["binding"] == "checked"


def test_a_ticket_may_live_exactly_120_seconds() -> None:
    spec = dataclasses.replace(TICKET, expires_at=TICKET.issued_at + records.TICKET_MAX_LIFETIME)
    claims = records.ticket_claims(spec, issuer=ISSUER)
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    "changes",
    [
        {"expires_at": T0 + timedelta(seconds=121)},
        {"expires_at": T0},
        {"expires_at": T0 - timedelta(seconds=1)},
        {"decision_id": "cns_EEEEEEEEEEEEEEEEEEEEEEEE"},
        {"algorithm": ""},
        {"client_id": ""},
        {"operation": "lip_sync"},
        {"consent_ids": ()},
        {"consent_ids": ("cns_A", "cns_A")},
        {"consent_ids": ("sub_A",)},
        {"media": {}},
        {"media": {"Source": DIGEST}},
        {"media": {"source": DIGEST.upper()}},
        {"media": {"source": "ab"}},
        {"media": {"x" * 33: DIGEST}},
    ],
)
def test_ticket_claims_refuse_invalid_facts(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidTerms):
        records.ticket_claims(dataclasses.replace(TICKET, **changes), issuer=ISSUER)


def test_record_types_are_the_designed_media_types() -> None:
    assert (records.CONSENT_TYP, records.REVOCATION_TYP, records.TICKET_TYP) == (
        "consent+jwt",
        "consent-revocation+jwt",
        "consent-ticket+jwt",
    )
