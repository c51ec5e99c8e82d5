# ruff: noqa: N818 -- names say what went wrong (like cryptography's InvalidSignature); the root ends in Error.
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
