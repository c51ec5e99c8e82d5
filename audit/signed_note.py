"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519, tlog checkpoints
(https://c2sp.org/tlog-checkpoint) and witness cosignatures (https://c2sp.org/tlog-cosignature, Ed25519
``cosignature/v1``).

Standard library and ``cryptography`` only, so the offline verifier can use it.

A note is ``text + "\\n" + signature lines``; a signature line is ``— <key name> base64(key ID || sig)``
with an em dash (U+2014). A key ID is the first four bytes of SHA-256(name || 0x0A || 0x01 || public key),
and a verifier key is written ``<name>+<hex key ID>+base64(0x01 || public key)``.

A cosignature is one more signature line on a checkpoint, by a witness that checked the checkpoint is
consistent with every earlier one it saw: key ID SHA-256(name || 0x0A || 0x04 || public key)[:4], the line's
bytes are key ID || 8-byte big-endian POSIX time || Ed25519 signature over
``"cosignature/v1\ntime <time>\n" + checkpoint text``; its vkey has type byte 0x04.
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
COSIGNATURE_V1 = 0x04
_TIMESTAMP_SIZE = 8
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
class Cosigner:
    """A trusted witness: the name and key ID its cosignature lines carry, and its Ed25519 key."""

    name: str
    key_id: int
    public_key: bytes


@dataclass(frozen=True)
class Cosignature:
    """A cosignature line that verified: which witness, when it cosigned (POSIX seconds), the line itself."""

    name: str
    timestamp: int
    line: str


@dataclass(frozen=True)
class Checkpoint:
    """The body of a tlog checkpoint: the log's origin, its tree size and the RFC 9162 root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()


def key_id(name: str, public_key_bytes: bytes, kind: int = ED25519) -> int:
    _check_key_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public_key_bytes).digest()
    return int.from_bytes(digest[:_KEY_ID_SIZE], "big")


def vkey_for(name: str, public_key_bytes: bytes, kind: int = ED25519) -> str:
    """The verifier key string of an Ed25519 public key under ``name`` (``kind`` COSIGNATURE_V1: a witness's)."""
    _check_public_key(public_key_bytes)
    encoded = base64.b64encode(bytes([kind]) + public_key_bytes).decode()
    return f"{name}+{key_id(name, public_key_bytes, kind):08x}+{encoded}"


def parse_vkey(vkey: str) -> Verifier:
    """A note signer's verifier key (type 0x01)."""
    name, kid, public_key = _parse_vkey(vkey, ED25519)
    return Verifier(name=name, key_id=kid, public_key=public_key)


def parse_cosigner_vkey(vkey: str) -> Cosigner:
    """A witness's verifier key (type 0x04, tlog-cosignature)."""
    name, kid, public_key = _parse_vkey(vkey, COSIGNATURE_V1)
    return Cosigner(name=name, key_id=kid, public_key=public_key)


def _parse_vkey(vkey: str, kind: int) -> tuple[str, int, bytes]:
    # The base64 part may itself contain '+', and the name may not, so split from the left.
    name, sep1, rest = vkey.partition("+")
    hex_id, sep2, encoded = rest.partition("+")
    if not (sep1 and sep2) or not _KEY_ID_HEX.fullmatch(hex_id):
        raise FormatError(f"malformed verifier key {vkey!r}")
    _check_key_name(name)
    raw = _b64decode(encoded, f"verifier key {vkey!r}")
    if len(raw) != 1 + _ED25519_KEY_SIZE or raw[0] != kind:
        what = "an Ed25519 key" if kind == ED25519 else "an Ed25519 cosigner (witness) key"
        raise FormatError(f"verifier key {vkey!r} is not {what}")
    public_key = raw[1:]
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise FormatError(f"verifier key {vkey!r} is not a valid Ed25519 key") from exc
    if key_id(name, public_key, kind) != int(hex_id, 16):
        raise FormatError(f"verifier key {vkey!r} has a key ID that does not match its key")
    return name, int(hex_id, 16), public_key


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


def cosign(body: str, name: str, sign: Callable[[bytes], bytes], public_key_bytes: bytes, timestamp: int) -> str:
    """A witness's cosignature line on the checkpoint text ``body`` (ending with a newline)."""
    _check_text(body)
    if not body.endswith("\n"):
        raise FormatError("note text must end with a newline")
    if not 0 <= timestamp < 1 << 63:
        raise FormatError("a cosignature time is a POSIX time below 2**63")
    signature = sign(_cosigned_message(body, timestamp))
    if len(signature) != _ED25519_SIGNATURE_SIZE:
        raise ValueError("sign() must return a 64-byte Ed25519 signature")
    blob = (key_id(name, public_key_bytes, COSIGNATURE_V1).to_bytes(_KEY_ID_SIZE, "big")
            + timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signature)
    return f"{_SIGNATURE_PREFIX}{name} {base64.b64encode(blob).decode()}\n"


def cosignatures(note: str, cosigners: Iterable[Cosigner]) -> list[Cosignature]:
    """The cosignatures on ``note`` by the trusted witnesses ``cosigners`` (one per witness at most).

    Lines by others are ignored. Raises InvalidSignatureError when a trusted witness's line does not
    verify, FormatError for a malformed note. Says nothing about the log's own signature (``open_note``).
    """
    text, signatures = _split(note)
    known = {(c.name, c.key_id): c for c in cosigners}
    found: dict[str, Cosignature] = {}
    for line, (name, kid, blob) in zip(note[len(text) + 1 : -1].split("\n"), signatures, strict=True):
        cosigner = known.get((name, kid))
        if cosigner is None:
            continue
        if len(blob) != _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE:
            raise InvalidSignatureError(f"cosignature by {name} ({kid:08x}) has the wrong length")
        timestamp = int.from_bytes(blob[:_TIMESTAMP_SIZE], "big")
        try:
            Ed25519PublicKey.from_public_bytes(cosigner.public_key).verify(
                blob[_TIMESTAMP_SIZE:], _cosigned_message(text, timestamp))
        except InvalidSignature as exc:
            raise InvalidSignatureError(f"cosignature by {name} ({kid:08x}) does not verify") from exc
        found.setdefault(name, Cosignature(name=name, timestamp=timestamp, line=line + "\n"))
    return list(found.values())


def signature_lines(text: str) -> list[str]:
    """The signature lines of a witness's answer (each ``— name base64``, newline-terminated)."""
    if not text.endswith("\n"):
        raise FormatError("signature lines must end with a newline")
    lines = [f"{line}\n" for line in text[:-1].split("\n")]
    if not 1 <= len(lines) <= MAX_SIGNATURES:
        raise FormatError(f"expected between 1 and {MAX_SIGNATURES} signature lines")
    for line in lines:
        _check_text(line[:-1])
        _parse_signature_line(line[:-1])
    return lines


def _cosigned_message(body: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


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
