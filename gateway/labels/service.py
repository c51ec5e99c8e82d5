"""Where does this file come from? The label's verification against our keys, and what our records add.

Used by ``POST /v1/labels/verify`` and ``consent-gateway labels verify``. Nothing is stored: the file is
read once to check its label and once to hash it whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent.lifecycle import effective_status
from consent.models import CONSENT_ACTIVE, Consent
from gateway.auth.models import OAuthClient
from gateway.core.times import format_optional, format_time
from gateway.decisions.models import DecisionRow
from gateway.keys.keyring import key_store
from gateway.keys.store import jwks
from gateway.labels.verifier import LabelError, VerifiedLabel, read_label, verify_label
from gateway.registry.algorithms import get_algorithm

__all__ = ["verify_file"]

_READ = 1024 * 1024


def verify_file(session: Session, media: IO[bytes], *, issuer: str, now: datetime) -> dict[str, Any]:
    """A report on ``media``'s label: never an exception for a bad file, ``valid`` says it."""
    file_sha256 = _sha256(media)
    keys = jwks(key_store().all(session))
    try:
        label = verify_label(media, keys, issuer=issuer)
    except LabelError as exc:
        report: dict[str, Any] = {"valid": False, "error": {"code": exc.code, "detail": str(exc)},
                                  "file_sha256": file_sha256}
        claimed = _claimed(media)
        if claimed is not None:
            # What the label says, unproven: useful to see what a moved or altered label pretends.
            report["claimed"] = claimed
        return report
    return {"valid": True, "file_sha256": file_sha256, **_provenance(session, label, file_sha256, now)}


def _provenance(session: Session, label: VerifiedLabel, file_sha256: str, now: datetime) -> dict[str, Any]:
    decision = session.get(DecisionRow, label.decision_id)
    filing_number = str(label.edit.get("algorithm", ""))
    algorithm = get_algorithm(session, filing_number) if filing_number else None
    client = session.scalars(select(OAuthClient).where(OAuthClient.client_id == label.client_id)).first()
    consent_ids = [c for c in label.edit.get("consents", []) if isinstance(c, str)]
    consents = []
    for consent_id in consent_ids:
        row = session.get(Consent, consent_id)
        status = None if row is None else effective_status(row, now)
        consents.append({"id": consent_id, "status": status, "active": status == CONSENT_ACTIVE})
    return {
        "container": label.container,
        "content_sha256": label.content_sha256,
        "kid": label.kid,
        "signed_at": format_time(datetime.fromtimestamp(label.issued_at, UTC)),
        "label": label.fields,
        "decision": None if decision is None else {
            "id": decision.id,
            "operation": decision.operation,
            "decided_at": format_time(decision.created_at),
            "outcome": decision.outcome,
            "outcome_at": format_optional(decision.outcome_at),
            # The exact bytes the app received (the outcome's digest), or a re-saved copy of them.
            "received_by_app": decision.output_sha256 == file_sha256,
        },
        "algorithm": {
            "filing_number": filing_number,
            "name": None if algorithm is None else algorithm.name,
            "provider": None if algorithm is None else algorithm.provider,
            "status": None if algorithm is None else algorithm.status,
        },
        "app": {"client_id": label.client_id, "name": None if client is None else client.name},
        "operation": label.edit.get("operation"),
        "consents": consents,
        "consents_active": bool(consents) and all(c["active"] for c in consents),
    }


def _claimed(media: IO[bytes]) -> Mapping[str, str] | None:
    try:
        return read_label(media).fields
    except LabelError:
        return None


def _sha256(media: IO[bytes]) -> str:
    media.seek(0)
    digest = hashlib.sha256()
    while chunk := media.read(_READ):
        digest.update(chunk)
    media.seek(0)
    return digest.hexdigest()
