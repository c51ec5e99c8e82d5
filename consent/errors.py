"""The consent domain's exceptions. No HTTP here: ``gateway`` maps each ``code`` to a status once.

``code`` is part of the public contract (it reaches API clients and the audit log), so it never
changes once released; add a new subclass instead of renaming one.
"""

from __future__ import annotations

from typing import ClassVar


class ConsentError(Exception):
    """Base of every consent-domain failure."""

    code: ClassVar[str] = "consent_error"


class InvalidRecord(ConsentError):
    """A presented record (consent, revocation or ticket JWS) must not be trusted."""

    code = "invalid_record"


class MalformedRecord(InvalidRecord):
    """Not a well-formed compact JWS, or its header or payload is not the JSON it must be."""

    code = "malformed_record"


class AlgorithmNotAllowed(InvalidRecord):
    """The header names an algorithm other than EdDSA (e.g. ``none`` or HS256: alg confusion)."""

    code = "algorithm_not_allowed"


class UnsupportedHeader(InvalidRecord):
    """The header asks for processing this verifier does not do (``crit``)."""

    code = "unsupported_header"


class UnknownKey(InvalidRecord):
    """The ``kid`` names no key in the verifier's key set."""

    code = "unknown_key"


class WrongType(InvalidRecord):
    """The ``typ`` header is not the record type the caller expects."""

    code = "wrong_type"


class BadSignature(InvalidRecord):
    """The signature does not verify: the record was altered or signed with another key."""

    code = "bad_signature"


class WrongIssuer(InvalidRecord):
    """Validly signed, but ``iss`` names another issuer."""

    code = "wrong_issuer"


class InvalidKeySet(ConsentError):
    """A JWKS document is not usable (no ``keys`` array, a broken Ed25519 key, a repeated ``kid``)."""

    code = "invalid_key_set"


class UnknownOperation(ConsentError):
    """The name is not an operation of the catalogue."""

    code = "unknown_operation"


class InvalidTerms(ConsentError):
    """The facts handed to a record builder or to the policy cannot make a valid record or request."""

    code = "invalid_terms"


# --- Consent lifecycle, subjects and one-time codes (appended by the lifecycle work) -------------


class InvalidContact(ConsentError):
    """Not an email address or an E.164 phone number."""

    code = "invalid_contact"


class RequestNotFound(ConsentError):
    """No consent request with this id for this caller (another app's id reads as unknown)."""

    code = "consent_request_not_found"


class ConsentNotFound(ConsentError):
    """No consent with this id for this caller (another app's or subject's id reads as unknown)."""

    code = "consent_not_found"


class IdempotencyConflict(ConsentError):
    """The Idempotency-Key was already used by this app for a request with a different body."""

    code = "idempotency_key_reused"


class AlgorithmNotAvailable(ConsentError):
    """A named algorithm is not registered, is suspended, or performs none of the operations."""

    code = "algorithm_not_available"


class RedirectNotRegistered(ConsentError):
    """The redirect_uri is not one the app registered (exact match), so it could be an open redirect."""

    code = "redirect_uri_not_registered"


class SubjectMismatch(ConsentError):
    """The contact given does not belong to the subject of the consent being renewed."""

    code = "subject_mismatch"


class RequestNotPending(ConsentError):
    """The request was already decided or has expired; ``status`` says which."""

    code = "request_not_pending"

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class ConsentNotActive(ConsentError):
    """The consent already ended (withdrawn, revoked, expired or exhausted); ``status`` says how."""

    code = "consent_not_active"

    def __init__(self, message: str, status: str) -> None:
        super().__init__(message)
        self.status = status


class NoOperationChosen(ConsentError):
    """Approve was pressed with no operation ticked; each operation needs its own tick."""

    code = "no_operation_chosen"


class NoticeChanged(ConsentError):
    """The notice the subject read is not the one that would be recorded; they must read it again."""

    code = "notice_changed"


class CodeRejected(ConsentError):
    """A one-time code does not prove control of the contact. Subclasses say why."""

    code = "code_rejected"


class CodeNotFound(CodeRejected):
    """No code was sent for this step (or it was replaced by a newer one)."""

    code = "code_not_found"


class WrongCode(CodeRejected):
    code = "code_invalid"

    def __init__(self, message: str, attempts_left: int) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


class CodeExpired(CodeRejected):
    code = "code_expired"


class CodeUsed(CodeRejected):
    code = "code_used"


class CodeAttemptsExhausted(CodeRejected):
    """Five wrong attempts were made; the code is dead and a new one must be sent."""

    code = "code_attempts_exhausted"
