"""One-time codes that prove a subject controls a contact address.

Six digits, ten minutes, at most five attempts, and only a keyed hash is stored: a database dump
does not reveal live codes, and a guesser gets five tries in a million per code sent (sending is
rate-limited by the gateway, per contact and per IP).

:func:`verify_code` raises :class:`~consent.errors.CodeRejected` *after* it has counted the attempt
and written the ``code.failed`` entry, so the caller must commit on that exception (return an
error page) rather than roll back — otherwise a guesser would get unlimited attempts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from consent.errors import (
    CodeAttemptsExhausted,
    CodeExpired,
    CodeNotFound,
    CodeRejected,
    CodeUsed,
    WrongCode,
)
from consent.journal import Journal, Party
from consent.models import OneTimeCode, Subject

CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
CODE_DIGITS = 6


@dataclass(frozen=True)
class IssuedCode:
    id: str
    code: str  # to send once; never stored
    expires_at: datetime


def _digest(pepper: bytes, code_id: str, code: str) -> str:
    # The code id is mixed in so that equal codes have unequal hashes and a hash cannot be replayed
    # against another row.
    return hmac.new(pepper, f"{code_id}:{code}".encode(), hashlib.sha256).hexdigest()


def issue_code(
    session: Session,
    *,
    subject: Subject,
    purpose: str,
    request_id: str | None,
    pepper: bytes,
    journal: Journal,
    now: datetime,
) -> IssuedCode:
    """Create a fresh code for ``subject`` and retire any earlier unused one for the same step."""
    session.execute(
        update(OneTimeCode)
        .where(
            OneTimeCode.subject_id == subject.id,
            OneTimeCode.purpose == purpose,
            OneTimeCode.request_id.is_(None) if request_id is None else OneTimeCode.request_id == request_id,
            OneTimeCode.used_at.is_(None),
            OneTimeCode.superseded_at.is_(None),
        )
        .values(superseded_at=now)
    )
    code_id = "otp_" + secrets.token_urlsafe(18)
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    row = OneTimeCode(
        id=code_id,
        purpose=purpose,
        subject_id=subject.id,
        request_id=request_id,
        code_hash=_digest(pepper, code_id, code),
        created_at=now,
        expires_at=now + CODE_TTL,
        attempts=0,
    )
    session.add(row)
    journal.record("code.sent", Party("subject", subject.id), subject=subject.id,
                   consent_request_id=request_id, detail={"purpose": purpose, "channel": subject.contact_kind})
    return IssuedCode(id=code_id, code=code, expires_at=row.expires_at)


def verify_code(
    session: Session,
    *,
    code_id: str | None,
    purpose: str,
    request_id: str | None,
    presented: str,
    pepper: bytes,
    journal: Journal,
    now: datetime,
) -> OneTimeCode:
    """Consume the code if ``presented`` matches; otherwise count the attempt and raise (see module doc)."""
    row = None
    if code_id:
        # FOR UPDATE serialises concurrent guesses at one code on PostgreSQL (SQLite serialises all
        # writers anyway), so parallel requests cannot squeeze in a sixth attempt.
        row = session.scalars(select(OneTimeCode).where(OneTimeCode.id == code_id).with_for_update()).first()
    if row is None or row.purpose != purpose or row.request_id != request_id:
        _fail(journal, None, request_id, purpose, CodeNotFound("no code was sent for this step; ask for one"))
    if row.used_at is not None:
        _fail(journal, row.subject_id, request_id, purpose, CodeUsed("this code was already used"))
    if row.superseded_at is not None:
        _fail(journal, row.subject_id, request_id, purpose,
              CodeNotFound("a newer code was sent; use the latest one"))
    if row.attempts >= MAX_ATTEMPTS:
        _fail(journal, row.subject_id, request_id, purpose,
              CodeAttemptsExhausted(f"{MAX_ATTEMPTS} wrong attempts; ask for a new code"))
    if now >= row.expires_at:
        _fail(journal, row.subject_id, request_id, purpose, CodeExpired("the code has expired; ask for a new one"))
    row.attempts += 1
    candidate = "".join(presented.split())
    expected = row.code_hash
    actual = _digest(pepper, row.id, candidate)
    if not (len(candidate) == CODE_DIGITS and candidate.isdigit() and hmac.compare_digest(expected, actual)):
        left = MAX_ATTEMPTS - row.attempts
        error = WrongCode(f"the code is not right; {left} attempt(s) left", attempts_left=left)
        _fail(journal, row.subject_id, request_id, purpose, error, attempts=row.attempts)
    row.used_at = now
    journal.record("code.verified", Party("subject", row.subject_id), subject=row.subject_id,
                   consent_request_id=request_id, detail={"purpose": purpose})
    return row


def _fail(
    journal: Journal,
    subject_id: str | None,
    request_id: str | None,
    purpose: str,
    error: CodeRejected,
    *,
    attempts: int | None = None,
) -> NoReturn:
    detail: dict[str, object] = {"purpose": purpose}
    if attempts is not None:
        detail["attempts"] = attempts
    party = Party("subject", subject_id) if subject_id else Party("system", "anonymous")
    journal.record("code.failed", party, subject=subject_id, consent_request_id=request_id,
                   reason=error.code, detail=detail)
    raise error

