"""The implicit label of GB 45438-2025 (Annex E) and the gateway's signature in ``ReservedCode1``.

The label is the JSON object ``{"Label", "ContentProducer", "ProduceID", "ReservedCode1",
"ContentPropagator", "PropagateID", "ReservedCode2"}`` stored under the key ``AIGC``. The signature is a
compact JWS with a detached payload (RFC 7515 Appendix F): ``BASE64URL(header)..BASE64URL(signature)``,
printable ASCII. What the header and the payload hold, and which bytes of each container the content
digest covers, is defined once, in the vendorable verifier (``gateway.labels.verifier``), and used here.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785

from gateway.keys.store import Signer
from gateway.labels.verifier import FIELDS, LABEL_TYPE, SIGNATURE_FIELD, signing_payload

# An Ed25519 signature is 64 bytes: 86 base64url characters. A placeholder of that length lets a
# container settle its layout before the real signature is known (see containers).
_SIGNATURE_CHARS = 86


@dataclass(frozen=True)
class Provenance:
    """Where an output comes from: the decision and what it allowed, and who receives the output."""

    decision_id: str
    client_id: str
    operation: str
    algorithm: str
    consents: tuple[str, ...]
    reference: str = ""


def label_fields(producer: str, provenance: Provenance, signature: str = "") -> dict[str, str]:
    """The seven Annex E fields, in the standard's order."""
    values = {
        "Label": "1",  # 1: generated or synthesised by AI (2: possibly, 3: suspected)
        "ContentProducer": producer,
        "ProduceID": provenance.decision_id,
        "ReservedCode1": signature,
        "ContentPropagator": provenance.client_id,
        "PropagateID": provenance.reference,
        "ReservedCode2": "",
    }
    return {name: values[name] for name in FIELDS}


def label_value(fields: Mapping[str, str]) -> str:
    """The value stored under ``AIGC``: compact JSON, members in the standard's order, UTF-8 as is."""
    return json.dumps({name: fields[name] for name in FIELDS}, ensure_ascii=False, separators=(",", ":"))


def signature_header(signer: Signer, provenance: Provenance, *, container: str, content_sha256: str,
                     now: datetime) -> dict[str, Any]:
    return {
        "alg": "EdDSA",
        "kid": signer.kid,
        "typ": LABEL_TYPE,
        "iss": signer.issuer,
        "iat": int(now.timestamp()),
        "content": {"container": container, "sha256": content_sha256},
        "edit": {"operation": provenance.operation, "algorithm": provenance.algorithm,
                 "consents": list(provenance.consents)},
    }


def sign(fields: Mapping[str, str], header: Mapping[str, Any], signer: Signer) -> str:
    """``ReservedCode1``: the detached compact JWS over ``header`` and the label's signing payload."""
    content = header["content"]
    header_segment = _b64url(rfc8785.dumps(dict(header)))
    payload = signing_payload(fields, content["container"], content["sha256"])
    signature = signer.sign(f"{header_segment}.{_b64url(payload)}".encode("ascii"))
    return f"{header_segment}..{_b64url(signature)}"


def placeholder(header: Mapping[str, Any]) -> str:
    """A stand-in for ``ReservedCode1`` of exactly the length the real one will have."""
    return f"{_b64url(rfc8785.dumps(dict(header)))}..{'A' * _SIGNATURE_CHARS}"


def with_signature(fields: Mapping[str, str], signature: str) -> dict[str, str]:
    return {**fields, SIGNATURE_FIELD: signature}


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")
