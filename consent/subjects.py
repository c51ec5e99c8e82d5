"""Subjects: people known by a verified contact address and named everywhere by a ``sub_…`` id.

The contact is the only thing that identifies a subject, so it is normalised before it is hashed
(``Alice@Example.COM`` and ``alice@example.com`` are one person). Encryption and the keyed hash are
the gateway's (they need the master key); this module only sees them through :class:`ContactVault`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from consent.errors import InvalidContact
from consent.models import Subject
from consent.records import new_id

ContactKind = Literal["email", "phone"]

MAX_CONTACT_LENGTH = 254  # RFC 5321 path limit; a phone number is far shorter
# Deliberately simple: one @, a dotted domain, no spaces. Deliverability is what the code proves.
_EMAIL = re.compile(r"[^@\s<>\"']{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
# E.164: "+", country code, subscriber number; 8 to 15 digits in all.
_PHONE = re.compile(r"\+[1-9][0-9]{7,14}")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
# What parse_contact accepts, as one pattern (for schemas): an email address, or a + phone number whose
# digits may be separated by spaces, dots, dashes or parentheses.
CONTACT_PATTERN = (r"^([^@\s<>\"']{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"
                   r"|\+[\s().-]*[1-9]([\s().-]*[0-9]){7,14}[\s().-]*)$")


@dataclass(frozen=True)
class Contact:
    kind: ContactKind
    value: str  # normalised

    def masked(self) -> str:
        """Enough to recognise one's own address without revealing it to onlookers."""
        if self.kind == "email":
            local, domain = self.value.split("@", 1)
            return f"{local[0]}***@{domain}"
        return f"{self.value[:3]}{'*' * (len(self.value) - 7)}{self.value[-4:]}"


def parse_contact(raw: str) -> Contact:
    """Normalise an email address or an E.164 phone number, or raise :class:`InvalidContact`."""
    text = raw.strip()
    if not text or len(text) > MAX_CONTACT_LENGTH:
        raise InvalidContact("a contact is an email address or a phone number in +E.164 form")
    if "@" in text:
        if not _EMAIL.fullmatch(text):
            raise InvalidContact("this is not a usable email address")
        # Lower-cased as a whole: mailbox names are case-insensitive in practice, and two spellings
        # of one address must never become two subjects with separate consents.
        return Contact("email", text.lower())
    phone = _PHONE_SEPARATORS.sub("", text)
    if not _PHONE.fullmatch(phone):
        raise InvalidContact("a phone number needs the + and country code, e.g. +8613800138000")
    return Contact("phone", phone)


class ContactVault(Protocol):
    """Keyed hashing and authenticated encryption of contacts (implemented by the gateway)."""

    def lookup_hash(self, contact: Contact) -> str:
        """A stable keyed hash (hex) that finds the subject without decrypting anything."""
        ...

    def seal(self, contact: Contact, lookup_hash: str) -> bytes: ...

    def unseal(self, sealed: bytes, lookup_hash: str) -> str: ...


def find_subject(session: Session, vault: ContactVault, contact: Contact) -> Subject | None:
    return session.scalars(select(Subject).where(Subject.contact_hash == vault.lookup_hash(contact))).first()


def subject_for_contact(session: Session, vault: ContactVault, contact: Contact, now: datetime) -> Subject:
    """The subject with this contact, created (with a new pseudonymous id) the first time it is seen."""
    existing = find_subject(session, vault, contact)
    if existing is not None:
        return existing
    lookup = vault.lookup_hash(contact)
    subject = Subject(
        id=new_id("sub"),
        contact_hash=lookup,
        contact_kind=contact.kind,
        contact_encrypted=vault.seal(contact, lookup),
        created_at=now,
    )
    try:
        # Two first requests for one contact may race; the unique hash lets exactly one win and the
        # savepoint keeps the loser's transaction usable, so it simply reads the winner's row.
        with session.begin_nested():
            session.add(subject)
    except IntegrityError:
        winner = find_subject(session, vault, contact)
        if winner is None:
            raise
        return winner
    return subject


def contact_of(subject: Subject, vault: ContactVault) -> Contact:
    """Decrypt the subject's contact (to send a code to it)."""
    kind: ContactKind = "email" if subject.contact_kind == "email" else "phone"
    return Contact(kind, vault.unseal(subject.contact_encrypted, subject.contact_hash))
