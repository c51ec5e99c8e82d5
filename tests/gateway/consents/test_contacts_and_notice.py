"""Contacts at rest (normalised, keyed hash, AES-GCM bound to the row) and the versioned notice."""

from __future__ import annotations

import base64
import json
from importlib import resources

import pytest
from flask import Flask
from sqlalchemy import select

from consent.errors import InvalidContact
from consent.models import Subject
from consent.notice import CURRENT_VERSION, AlgorithmFacts, NoticeFacts, render
from consent.subjects import parse_contact
from gateway.core.db import db
from gateway.keys.contacts import Vault
from gateway.keys.store import KeyStoreError
from tests.factories import create_consent_request
from tests.gateway.consents.conftest import Caller

MASTER = b"m" * 32


@pytest.mark.parametrize(("raw", "kind", "value"), [
    ("Alice@Example.COM", "email", "alice@example.com"),
    ("  bob@mail.example.org ", "email", "bob@mail.example.org"),
    ("+86 138-0013-8000", "phone", "+8613800138000"),
    ("+1 (415) 555-0100", "phone", "+14155550100"),
])
def test_contacts_are_normalised(raw: str, kind: str, value: str) -> None:
    contact = parse_contact(raw)
    assert (contact.kind, contact.value) == (kind, value)


@pytest.mark.parametrize("raw", ["", "alice", "alice@", "@example.com", "a b@example.com", "13800138000",
                                 "+0123456789", "+12", "x" * 255 + "@example.com", "<a@example.com>"])
def test_unusable_contacts_are_refused(raw: str) -> None:
    with pytest.raises(InvalidContact):
        parse_contact(raw)


def test_masking_hides_most_of_the_address() -> None:
    assert parse_contact("alice@example.com").masked() == "a***@example.com"
    assert parse_contact("+8613800138000").masked() == "+86*******8000"


def test_vault_hashes_with_a_key_and_encrypts_bound_to_the_row() -> None:
    vault, other = Vault(MASTER), Vault(b"n" * 32)
    alice, bob = parse_contact("alice@example.com"), parse_contact("bob@example.com")
    assert vault.lookup_hash(alice) == vault.lookup_hash(parse_contact("ALICE@example.com"))
    assert vault.lookup_hash(alice) != vault.lookup_hash(bob)
    # Keyed: another master key gives other hashes, so a dump cannot be matched against a list of emails.
    assert vault.lookup_hash(alice) != other.lookup_hash(alice)
    sealed = vault.seal(alice, vault.lookup_hash(alice))
    assert b"alice" not in sealed
    assert vault.unseal(sealed, vault.lookup_hash(alice)) == "alice@example.com"
    # Two seals of one address differ (fresh nonce) and a ciphertext cannot move to another row.
    assert sealed != vault.seal(alice, vault.lookup_hash(alice))
    with pytest.raises(KeyStoreError):
        vault.unseal(sealed, vault.lookup_hash(bob))
    with pytest.raises(KeyStoreError):
        other.unseal(sealed, vault.lookup_hash(alice))
    # The subkeys are separate: the code pepper is neither the lookup key nor derived alike.
    assert vault.code_pepper != other.code_pepper
    assert len(vault.code_pepper) == 32


def test_contacts_are_encrypted_in_the_database(app: Flask, client: object, caller: Caller) -> None:
    create_consent_request(client, caller.token, contact="Alice@Example.com")  # type: ignore[arg-type]
    with app.app_context():
        subject = db.session.scalars(select(Subject)).one()
        assert subject.id.startswith("sub_")
        assert b"alice" not in subject.contact_encrypted.lower()
        assert "alice" not in subject.contact_hash
        vault = Vault(base64.b64decode(app.config["MASTER_KEY"]))
        assert vault.unseal(subject.contact_encrypted, subject.contact_hash) == "alice@example.com"


FACTS = NoticeFacts(app_name="Birthday Videos", operations=("voice_clone", "face_swap"), purpose="A video",
                    algorithms=(AlgorithmFacts("FN-1", "SwapPro", "Acme"),), duration_days=30, max_uses=None,
                    portal_url="https://gw.example/me")


def test_the_notice_is_stable_and_its_fingerprint_covers_what_is_shown() -> None:
    en = render(FACTS, "en")
    assert en.version == CURRENT_VERSION
    assert render(FACTS, "en").sha256 == en.sha256
    assert en.title == "Birthday Videos asks for your consent to edit your face and voice"
    # Catalogue order, whatever order the app listed them in.
    assert [op.name for op in en.operations] == ["face_swap", "voice_clone"]
    for shown in (en.title, en.intro, *(op.description for op in en.operations),
                  *(p for s in en.sections for p in s.paragraphs)):
        assert shown in en.text
    changed = render(NoticeFacts(**{**FACTS.__dict__, "purpose": "Another video"}), "en")
    assert changed.sha256 != en.sha256


def test_the_notice_in_chinese() -> None:
    zh = render(FACTS, "zh-CN")
    assert zh.locale == "zh-CN"
    assert "请求您同意编辑您的面部和声音" in zh.title
    assert "备案编号 FN-1" in zh.text
    assert zh.sha256 != render(FACTS, "en").sha256
    assert render(FACTS, "fr").locale == "en"


def test_both_catalogues_have_the_same_keys_and_placeholders() -> None:
    import string

    files = resources.files("gateway.i18n")
    en = json.loads(files.joinpath("en.json").read_text("utf-8"))
    zh = json.loads(files.joinpath("zh-CN.json").read_text("utf-8"))
    assert set(en) == set(zh)

    def names(text: str) -> set[str]:
        return {field for _, field, _, _ in string.Formatter().parse(text) if field}

    for key in en:
        assert names(en[key]) == names(zh[key]), key
