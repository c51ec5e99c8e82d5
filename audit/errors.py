"""Exceptions of the audit domain.

No HTTP here: ``gateway/`` maps these to status codes and problem types once.
This module depends on nothing but the standard library so that the offline
verifier can import it.
"""

from __future__ import annotations

from typing import ClassVar


class AuditError(Exception):
    """Base class of every error the audit package raises; ``code`` is its stable machine code."""

    code: ClassVar[str] = "audit_error"


class FormatError(AuditError, ValueError):
    """Input does not follow its format: a note, a key, a checkpoint or a bundle."""


class VerificationError(AuditError):
    """A cryptographic check failed.

    ``shard`` and ``index`` say where, when the check knows it: ``index`` is a
    leaf index (for inclusion proofs) or a tree size (for consistency proofs and
    checkpoints), as the message spells out.
    """

    def __init__(self, message: str, *, shard: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.shard = shard
        self.index = index


class InclusionProofError(VerificationError):
    """An RFC 9162 inclusion proof does not lead to the expected root."""


class ConsistencyProofError(VerificationError):
    """An RFC 9162 consistency proof does not link the two tree heads."""


class InvalidSignatureError(VerificationError):
    """A signature made by a known key does not verify."""


class UnverifiedNoteError(VerificationError):
    """No signature on a note comes from a trusted key."""


class ProofUnavailable(AuditError):
    """The hashes a proof needs are not stored (out of range, or purged by retention)."""

    code = "proof_unavailable"
