"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519, and tlog checkpoints
(https://c2sp.org/tlog-checkpoint).

Standard library and ``cryptography`` only, so the offline verifier can use it.

A note is ``text + "\\n" + signature lines``; a signature line is ``— <key name> base64(key ID || sig)``
with an em dash (U+2014). A key ID is the first four bytes of SHA-256(name || 0x0A || 0x01 || public key),
and a verifier key is written ``<name>+<hex key ID>+base64(0x01 || public key)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.errors import FormatError, InvalidSignatureError, UnverifiedNoteError

ED25519 = 0x01
_ED25519_KEY_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_KEY_ID_SIZE = 4
_HASH_SIZE = 32
# The spec asks verifiers to cap signatures and to accept at least 16; a checkpoint carries one or two.
MAX_SIGNATURES = 100
_SIGNATURE_PREFIX = "\u2014 "
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_TREE_SIZE = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class Verifier:
    """A trusted Ed25519 note key: the name and key ID that signature lines must carry, and the key."""

    name: str
    key_id: int
    public_key: bytes

    def verify(self, message: bytes, signature: bytes) -> None:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature as exc:
            raise InvalidSignatureError(f"signature by {self.name} ({self.key_id:08x}) does not verify") from exc


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint: the log's origin, its tree size and the RFC 9162 root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def key_id(name: str, public_key_bytes: bytes) -> int:
    _check_key_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519]) + public_key_bytes).digest()
    return int.from_bytes(digest[:_KEY_ID_SIZE], "big")


def vkey_for(name: str, public_key_bytes: bytes) -> str:
    """The verifier key string of an Ed25519 public key under ``name``."""
    _check_public_key(public_key_bytes)
    encoded = base64.b64encode(bytes([ED25519]) + public_key_bytes).decode()
    return f"{name}+{key_id(name, public_key_bytes):08x}+{encoded}"


def parse_vkey(vkey: str) -> Verifier:
    # The base64 part may itself contain '+', and the name may not, so split from the left.
    name, sep1, rest = vkey.partition("+")
    hex_id, sep2, encoded = rest.partition("+")
    if not (sep1 and sep2) or not _KEY_ID_HEX.fullmatch(hex_id):
        raise FormatError(f"malformed verifier key {vkey!r}")
    _check_key_name(name)
    raw = _b64decode(encoded, f"verifier key {vkey!r}")
    if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] != ED25519:
        raise FormatError(f"verifier key {vkey!r} is not an Ed25519 key")
    public_key = raw[1:]
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise FormatError(f"verifier key {vkey!r} is not a valid Ed25519 key") from exc
    if key_id(name, public_key) != int(hex_id, 16):
        raise FormatError(f"verifier key {vkey!r} has a key ID that does not match its key")
    return Verifier(name=name, key_id=int(hex_id, 16), public_key=public_key)


def sign_note(body: str, name: str, sign: Callable[[bytes], bytes], public_key_bytes: bytes) -> str:
    """``body`` followed by one Ed25519 signature line; ``sign`` is the private key's sign()."""
    _check_text(body)
    if not body.endswith("\n"):
        raise FormatError("note text must end with a newline")
    _check_public_key(public_key_bytes)
    signature = sign(body.encode())
    if len(signature) != _ED25519_SIGNATURE_SIZE:
        raise ValueError("sign() must return a 64-byte Ed25519 signature")
    blob = key_id(name, public_key_bytes).to_bytes(_KEY_ID_SIZE, "big") + signature
    return f"{body}\n{_SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


def open_note(note: str, verifiers: Iterable[Verifier]) -> tuple[str, list[str]]:
    """Return the note's text and the names of the trusted keys whose signatures verified.

    Signatures by unknown keys are ignored, as the spec requires. Raises InvalidSignatureError when a
    known key's signature fails (the whole note is rejected), UnverifiedNoteError when no known key signed,
    and FormatError for a malformed note.
    """
    text, signatures = _split(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    message = text.encode()
    verified: list[str] = []
    for name, kid, signature in signatures:
        verifier = known.get((name, kid))
        if verifier is None:
            continue
        verifier.verify(message, signature)
        verified.append(name)
    if not verified:
        signers = ", ".join(f"{name} ({kid:08x})" for name, kid, _ in signatures)
        raise UnverifiedNoteError(f"note is not signed by a trusted key (signed by {signers})")
    return text, verified


def _split(note: str) -> tuple[str, list[tuple[str, int, bytes]]]:
    _check_text(note)
    if not note.endswith("\n"):
        raise FormatError("a signed note must end with a newline")
    # The text is separated from the signatures by the last empty line of the note.
    cut = note.rfind("\n\n")
    if cut < 0:
        raise FormatError("note has no signature block")
    text, block = note[: cut + 1], note[cut + 2 :]
    lines = block[:-1].split("\n")
    if not block or len(lines) > MAX_SIGNATURES:
        raise FormatError(f"a note must carry between 1 and {MAX_SIGNATURES} signatures")
    return text, [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: str) -> tuple[str, int, bytes]:
    if not line.startswith(_SIGNATURE_PREFIX):
        raise FormatError(f"malformed signature line {line!r}")
    name, _, encoded = line[len(_SIGNATURE_PREFIX) :].partition(" ")
    _check_key_name(name)
    raw = _b64decode(encoded, f"signature line {line!r}")
    if len(raw) <= _KEY_ID_SIZE:
        raise FormatError(f"signature line {line!r} is too short")
    return name, int.from_bytes(raw[:_KEY_ID_SIZE], "big"), raw[_KEY_ID_SIZE:]


def format_checkpoint(origin: str, size: int, root: bytes, extensions: Sequence[str] = ()) -> str:
    """The checkpoint note text: origin, size and base64 root, each on its own line, then extensions."""
    for line in (origin, *extensions):
        if not line or "\n" in line:
            raise FormatError("checkpoint lines must be non-empty single lines")
    if size < 0:
        raise FormatError("a tree size cannot be negative")
    if len(root) != _HASH_SIZE:
        raise FormatError("a root hash is 32 bytes")
    lines = [origin, str(size), base64.b64encode(root).decode(), *extensions]
    return "".join(f"{line}\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    if not body.endswith("\n"):
        raise FormatError("checkpoint text must end with a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise FormatError("a checkpoint has at least three non-empty lines")
    origin, size, encoded_root, *extensions = lines
    if not _TREE_SIZE.fullmatch(size):
        raise FormatError(f"checkpoint tree size {size!r} is not a canonical decimal")
    root = _b64decode(encoded_root, "checkpoint root")
    # Insist on the canonical encoding so one checkpoint has exactly one text.
    if len(root) != _HASH_SIZE or base64.b64encode(root).decode() != encoded_root:
        raise FormatError("checkpoint root is not the base64 of a 32-byte hash")
    return Checkpoint(origin=origin, size=int(size), root=root, extensions=tuple(extensions))


def _check_text(text: str) -> None:
    if _CONTROL.search(text):
        raise FormatError("note text contains a control character")


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise FormatError(f"invalid key name {name!r}")


def _check_public_key(public_key_bytes: bytes) -> None:
    if len(public_key_bytes) != _ED25519_KEY_SIZE:
        raise ValueError("an Ed25519 public key is 32 bytes")


def _b64decode(encoded: str, what: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise FormatError(f"{what} is not valid base64") from exc
