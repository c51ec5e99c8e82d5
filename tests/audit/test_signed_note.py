"""C2SP signed notes and tlog checkpoints, with real Ed25519 keys."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.errors import FormatError, InvalidSignatureError, UnverifiedNoteError
from audit.rfc9162 import EMPTY_ROOT, leaf_hash
from audit.signed_note import (
    Checkpoint,
    format_checkpoint,
    key_id,
    open_note,
    parse_checkpoint,
    parse_vkey,
    sign_note,
    vkey_for,
)

# golang.org/x/mod/sumdb/note's published example: its signer key encodes 0x01 || Ed25519 seed.
GO_SKEY_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIGNATURE = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
GO_NOTE = f"{GO_TEXT}\n\u2014 PeterNeumann {GO_SIGNATURE}\n"

NAME = "gateway.test/audit"


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_reproduces_the_published_go_example_byte_for_byte() -> None:
    private = Ed25519PrivateKey.from_private_bytes(GO_SKEY_SEED)
    public = raw_public(private)
    assert vkey_for("PeterNeumann", public) == GO_VKEY
    assert key_id("PeterNeumann", public) == 0xC74F20A3
    assert sign_note(GO_TEXT, "PeterNeumann", private.sign, public) == GO_NOTE
    assert open_note(GO_NOTE, [parse_vkey(GO_VKEY)]) == (GO_TEXT, ["PeterNeumann"])


def test_checkpoint_round_trip(key: Ed25519PrivateKey) -> None:
    root = leaf_hash(b"entry")
    body = format_checkpoint("gateway.test/audit/2025-01", 1, root)
    assert body == f"gateway.test/audit/2025-01\n1\n{base64.b64encode(root).decode()}\n"
    note = sign_note(body, NAME, key.sign, raw_public(key))
    text, signers = open_note(note, [parse_vkey(vkey_for(NAME, raw_public(key)))])
    assert (text, signers) == (body, [NAME])
    assert parse_checkpoint(text) == Checkpoint("gateway.test/audit/2025-01", 1, root)


def test_checkpoint_extension_lines_are_kept() -> None:
    body = format_checkpoint("o", 0, EMPTY_ROOT, ["ext one", "ext two"])
    assert parse_checkpoint(body).extensions == ("ext one", "ext two")


def test_altered_body_is_rejected(key: Ed25519PrivateKey) -> None:
    note = sign_note(format_checkpoint("o", 5, EMPTY_ROOT), NAME, key.sign, raw_public(key))
    with pytest.raises(InvalidSignatureError):
        open_note(note.replace("\n5\n", "\n6\n"), [parse_vkey(vkey_for(NAME, raw_public(key)))])


def test_wrong_key_is_an_unverified_note(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    note = sign_note(format_checkpoint("o", 5, EMPTY_ROOT), NAME, key.sign, raw_public(key))
    # Same name, different key: a different key ID, so the signature is from an unknown key.
    with pytest.raises(UnverifiedNoteError):
        open_note(note, [parse_vkey(vkey_for(NAME, raw_public(other)))])


def test_unknown_signer_is_ignored_and_known_one_suffices(key: Ed25519PrivateKey) -> None:
    witness = Ed25519PrivateKey.generate()
    body = format_checkpoint("o", 5, EMPTY_ROOT)
    note = sign_note(body, NAME, key.sign, raw_public(key))
    cosigned = sign_note(body, "witness.example", witness.sign, raw_public(witness))
    both = note + cosigned.split("\n\n", 1)[1]
    trusted = [parse_vkey(vkey_for(NAME, raw_public(key)))]
    assert open_note(both, trusted) == (body, [NAME])
    with pytest.raises(UnverifiedNoteError, match=r"witness\.example"):
        open_note(cosigned, trusted)


def test_forged_signature_with_the_right_key_id_is_rejected(key: Ed25519PrivateKey) -> None:
    forger = Ed25519PrivateKey.generate()
    body = format_checkpoint("o", 5, EMPTY_ROOT)
    forged = sign_note(body, NAME, forger.sign, raw_public(forger))
    # Splice the real key's ID into the forged signature: the key is known, so it must be checked.
    sig = base64.b64decode(forged.rsplit(" ", 1)[1])
    real_id = key_id(NAME, raw_public(key)).to_bytes(4, "big")
    note = f"{body}\n\u2014 {NAME} {base64.b64encode(real_id + sig[4:]).decode()}\n"
    with pytest.raises(InvalidSignatureError):
        open_note(note, [parse_vkey(vkey_for(NAME, raw_public(key)))])


@pytest.mark.parametrize("note", [
    "no signature block\n",
    "text\n\n- name AAAA\n",
    "text\n\n\u2014 name not-base64!\n",
    "text\n\n\u2014 name AAAA\n",
    "text\n\n\u2014 bad+name AAAAAAAA\n",
    "tab\there\n\n\u2014 name AAAAAAAA\n",
    "text\n\n\u2014 name AAAAAAAA",
])
def test_malformed_notes(note: str) -> None:
    with pytest.raises(FormatError):
        open_note(note, [parse_vkey(GO_VKEY)])


@pytest.mark.parametrize("vkey", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # key ID does not match
    "PeterNeumann+c74f20a3+AhpZ2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # not type 0x01
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",  # short key
    "PeterNeumann+c74f20a3",
    "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
])
def test_malformed_vkeys(vkey: str) -> None:
    with pytest.raises(FormatError):
        parse_vkey(vkey)


@pytest.mark.parametrize("body", [
    "o\n5\n",
    "o\n05\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n",
    "o\n-1\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n",
    "o\n5\n" + base64.b64encode(EMPTY_ROOT[:31]).decode() + "\n",
    "o\n5\n" + base64.b64encode(EMPTY_ROOT).decode(),
    "o\n5\n" + base64.b64encode(EMPTY_ROOT).decode() + "\n\n",
])
def test_malformed_checkpoints(body: str) -> None:
    with pytest.raises(FormatError):
        parse_checkpoint(body)


def test_signing_refuses_what_could_not_be_opened(key: Ed25519PrivateKey) -> None:
    with pytest.raises(FormatError):
        sign_note("no final newline", NAME, key.sign, raw_public(key))
    with pytest.raises(FormatError):
        sign_note("text\n", "has space", key.sign, raw_public(key))
    with pytest.raises(FormatError):
        format_checkpoint("two\nlines", 1, EMPTY_ROOT)
