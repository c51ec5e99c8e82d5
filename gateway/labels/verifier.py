"""Verify the AIGC label of a file that came out of a Consent Gateway. Copy this file into your service.

Every edited output the gateway's proxy returns carries the implicit label of GB 45438-2025 (Annex E):
metadata key ``AIGC`` whose value is the JSON object ``{"Label", "ContentProducer", "ProduceID",
"ReservedCode1", "ContentPropagator", "PropagateID", "ReservedCode2"}``. ``ProduceID`` is the gateway's
decision id, ``ContentPropagator`` the app (OAuth client id) that received the output, and
``ReservedCode1`` the gateway's signature: a compact JWS with a detached payload (RFC 7515 Appendix F),
EdDSA/Ed25519, ``typ`` ``aigc-label+jws``, verifiable with the gateway's ``/.well-known/jwks.json``::

    with open("edited.png", "rb") as media:
        label = verify_label(media, jwks, issuer="https://gateway.example")
    label.decision_id, label.client_id, label.edit["algorithm"], label.edit["consents"]

or ``python verifier.py edited.png --jwks jwks.json --issuer https://gateway.example``.

What is signed (docs/LABELS.md says the same):

* the protected header: ``alg``, ``kid``, ``typ``, ``iss``, ``iat``, ``content`` (``container`` and the
  ``sha256`` below) and ``edit`` (the ``operation``, the ``algorithm``'s filing number and the
  ``consents`` the decision was taken on);
* the detached payload, rebuilt by the verifier: the sorted-key, compact JSON (RFC 8785 form) of
  ``{"aigc": <every label field except ReservedCode1>, "content": {"container", "sha256"}}``.

``sha256`` covers the media *without the label*; exactly these bytes, in file order:

* ``png``: the whole file except every ``iTXt`` chunk whose keyword is ``XML:com.adobe.xmp`` (the XMP
  packet that holds the label), chunks taken whole (length, type, data, CRC);
* ``jpeg``: the whole file except every APP1 segment whose payload starts with
  ``http://ns.adobe.com/xap/1.0/\\0`` (marker, length and payload);
* ``wav``: the form type ``WAVE`` and then every RIFF sub-chunk (id, size, data, pad byte) except the
  ``id3 `` / ``ID3 `` chunk that holds the ID3v2 tag; the RIFF header (whose size changes) is left out;
* ``mp3``: everything after the leading ID3v2 tag (header, frames, padding and footer);
* ``mp4`` (also M4A/MOV-style ISO BMFF): the payload of every top-level ``mdat`` box, in file order.

So a label moved onto another file, or a file changed after labelling, fails with
:class:`ContentMismatch`; a changed label field fails with :class:`BadSignature`.

Only the Python standard library and ``cryptography`` are needed, on purpose, so that a platform can
vendor this one file; the containers are read by hand for the same reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any
from xml.etree import ElementTree

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = [
    "AIGC_KEY",
    "AIGC_NAMESPACE",
    "CONTAINERS",
    "FIELDS",
    "LABEL_TYPE",
    "AlgorithmNotAllowed",
    "BadSignature",
    "ContentMismatch",
    "FoundLabel",
    "LabelError",
    "LabelNotFound",
    "MalformedLabel",
    "UnknownKey",
    "UnsupportedFormat",
    "VerifiedLabel",
    "WrongIssuer",
    "WrongType",
    "parse_label",
    "read_label",
    "signing_payload",
    "sniff",
    "verify_found",
    "verify_label",
]

AIGC_KEY = "AIGC"
AIGC_NAMESPACE = "http://www.tc260.org.cn/ns/AIGC/1.0/"
LABEL_TYPE = "aigc-label+jws"
FIELDS = ("Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator", "PropagateID",
          "ReservedCode2")
SIGNATURE_FIELD = "ReservedCode1"
SIGNED_FIELDS = tuple(f for f in FIELDS if f != SIGNATURE_FIELD)
CONTAINERS = ("png", "jpeg", "wav", "mp3", "mp4")

XMP_PNG_KEYWORD = b"XML:com.adobe.xmp"
XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
ID3_CHUNK_IDS = (b"id3 ", b"ID3 ")
MP4_FREEFORM_MEAN = "com.apple.iTunes"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_READ = 1024 * 1024
# Bounds on what is read into memory: a label and its carrier are a few kilobytes.
_MAX_CARRIER = 4 * 1024 * 1024
_MAX_MOOV = 64 * 1024 * 1024
_MAX_LABEL_CHARS = 64 * 1024
_B64URL = re.compile(r"[A-Za-z0-9_-]+")


class LabelError(Exception):
    """The file's label does not verify. ``code`` is stable and safe to show."""

    code = "label_invalid"


class UnsupportedFormat(LabelError):
    """Not a PNG, JPEG, WAV, MP3 or MP4 file: no label can be read from it."""

    code = "unsupported_format"


class LabelNotFound(LabelError):
    code = "label_missing"


class MalformedLabel(LabelError):
    """The container or the label in it cannot be read as specified."""

    code = "label_malformed"


class AlgorithmNotAllowed(LabelError):
    code = "label_algorithm_not_allowed"


class WrongType(LabelError):
    code = "label_wrong_type"


class UnknownKey(LabelError):
    """No Ed25519 key with the signature's ``kid`` in the JWKS (retired keys count: keep them)."""

    code = "label_unknown_key"


class WrongIssuer(LabelError):
    code = "label_wrong_issuer"


class BadSignature(LabelError):
    """Forged, or a label field (or the signed header) was altered."""

    code = "label_bad_signature"


class ContentMismatch(LabelError):
    """The label is the gateway's, but it was made for other content: the media changed or it was moved."""

    code = "label_content_mismatch"


@dataclass(frozen=True)
class FoundLabel:
    """What a file says, before any check: its container, its label (None if absent), its content digest."""

    container: str
    content_sha256: str
    fields: dict[str, str] | None


@dataclass(frozen=True)
class VerifiedLabel:
    """A label whose signature, issuer and content binding have been checked."""

    container: str
    content_sha256: str
    fields: dict[str, str]
    kid: str
    issuer: str
    issued_at: int
    edit: dict[str, Any] = field(default_factory=dict)

    @property
    def decision_id(self) -> str:
        return self.fields["ProduceID"]

    @property
    def client_id(self) -> str:
        return self.fields["ContentPropagator"]


def sniff(head: bytes) -> str | None:
    """The container of a file from its first bytes (at least 12), or None."""
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"ID3") or _mpeg_audio_sync(head):
        return "mp3"
    return None


def signing_payload(fields: Mapping[str, str], container: str, sha256: str) -> bytes:
    """The detached payload: RFC 8785 form of the signed label fields and the content digest.

    Every member is a string, for which sorted keys and compact ``json.dumps`` without ASCII escaping
    *are* RFC 8785, so this needs no JCS library.
    """
    document = {"aigc": {name: fields[name] for name in SIGNED_FIELDS},
                "content": {"container": container, "sha256": sha256}}
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def read_label(media: IO[bytes]) -> FoundLabel:
    """Read the container, its AIGC label and the digest of its content without the label."""
    media.seek(0)
    container = sniff(media.read(16))
    media.seek(0)
    if container is None:
        raise UnsupportedFormat("not a PNG, JPEG, WAV, MP3 or MP4 file")
    reader = _READERS[container]
    digest, raw = reader(media)
    return FoundLabel(container=container, content_sha256=digest, fields=None if raw is None else parse_label(raw))


def parse_label(raw: str) -> dict[str, str]:
    """The AIGC JSON object: the seven fields of Annex E, each a string, nothing else."""
    if len(raw) > _MAX_LABEL_CHARS:
        raise MalformedLabel("the AIGC value is too long")
    try:
        value = json.loads(raw, object_pairs_hook=_unique_members)
    except (ValueError, RecursionError) as exc:
        raise MalformedLabel("the AIGC value is not a JSON object without duplicate members") from exc
    if not isinstance(value, dict):
        raise MalformedLabel("the AIGC value is not a JSON object")
    if set(value) != set(FIELDS):
        raise MalformedLabel(f"the AIGC object must have exactly the members {list(FIELDS)}")
    if not all(isinstance(v, str) for v in value.values()):
        raise MalformedLabel("every AIGC member is a string")
    return value


def verify_label(media: IO[bytes], jwks: Mapping[str, Any], *, issuer: str) -> VerifiedLabel:
    """Return the verified label, or raise a :class:`LabelError` saying what is wrong."""
    return verify_found(read_label(media), jwks, issuer=issuer)


def verify_found(found: FoundLabel, jwks: Mapping[str, Any], *, issuer: str) -> VerifiedLabel:
    """:func:`verify_label` on what :func:`read_label` (or a writer that hashed as it wrote) found."""
    if found.fields is None:
        raise LabelNotFound(f"this {found.container} file has no AIGC label")
    header_segment, signature_segment = _split(found.fields[SIGNATURE_FIELD])
    header = _json_object(_b64url_decode(header_segment))
    if "crit" in header:
        raise MalformedLabel("critical header extensions are not supported")
    if header.get("alg") != "EdDSA":
        raise AlgorithmNotAllowed(f"alg {header.get('alg')!r} is not allowed; only EdDSA")
    if header.get("typ") != LABEL_TYPE:
        raise WrongType(f"typ {header.get('typ')!r} is not {LABEL_TYPE}")
    kid, content, edit, issued_at = header.get("kid"), header.get("content"), header.get("edit"), header.get("iat")
    if not isinstance(kid, str):
        raise MalformedLabel("the header's kid is missing or not a string")
    if not (isinstance(content, dict) and isinstance(content.get("container"), str)
            and isinstance(content.get("sha256"), str)):
        raise MalformedLabel("the header's content must name the container and its sha256")
    if not isinstance(edit, dict) or not isinstance(issued_at, int) or isinstance(issued_at, bool):
        raise MalformedLabel("the header needs an edit object and an integer iat")
    key = _key(jwks, kid)
    signed = f"{header_segment}.{_b64url(signing_payload(found.fields, content['container'], content['sha256']))}"
    try:
        key.verify(_b64url_decode(signature_segment), signed.encode("ascii"))
    except InvalidSignature as exc:
        raise BadSignature("the signature does not match the label (a field or the header was altered)") from exc
    if header.get("iss") != issuer:
        raise WrongIssuer(f"iss {header.get('iss')!r} is not {issuer!r}")
    if content["container"] != found.container or content["sha256"] != found.content_sha256:
        raise ContentMismatch("the label was signed for other content: the media were changed after labelling, "
                              "or the label was copied from another file")
    return VerifiedLabel(container=found.container, content_sha256=found.content_sha256, fields=found.fields,
                         kid=kid, issuer=issuer, issued_at=issued_at, edit=edit)


# --- containers ------------------------------------------------------------------------------------


def _png(media: IO[bytes]) -> tuple[str, str | None]:
    digest = hashlib.sha256(media.read(8))
    packet: bytes | None = None
    while head := media.read(8):
        if len(head) < 8:
            raise MalformedLabel("a PNG chunk header is cut off")
        length, kind = struct.unpack(">I4s", head)
        if length > 0x7FFFFFFF:
            raise MalformedLabel("a PNG chunk is longer than 2^31 - 1 bytes")
        if kind == b"iTXt" and length <= _MAX_CARRIER:
            data = _exactly(media, length)
            crc = _exactly(media, 4)
            text = _png_xmp(data)
            if text is not None:
                packet = _only(packet, text, "XMP iTXt chunk")
                continue
            digest.update(head + data + crc)
        else:
            digest.update(head)
            _hash_span(media, length + 4, digest)
        if kind == b"IEND":
            break
    _hash_rest(media, digest)
    return digest.hexdigest(), None if packet is None else _xmp_label(packet)


def _png_xmp(data: bytes) -> bytes | None:
    keyword, sep, rest = data.partition(b"\x00")
    if not sep or keyword != XMP_PNG_KEYWORD:
        return None
    if len(rest) < 2:
        raise MalformedLabel("the XMP iTXt chunk is cut off")
    compressed, rest = rest[0], rest[2:]
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    if compressed:
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(text, _MAX_CARRIER)
        except zlib.error as exc:
            raise MalformedLabel("the XMP iTXt chunk does not inflate") from exc
        if inflater.unconsumed_tail:
            raise MalformedLabel("the XMP packet is too large")
    return text


def _jpeg(media: IO[bytes]) -> tuple[str, str | None]:  # noqa: PLR0912 - one marker at a time reads best as one loop
    digest = hashlib.sha256()
    packet: bytes | None = None
    if media.read(2) != b"\xff\xd8":
        raise MalformedLabel("not a JPEG file")
    digest.update(b"\xff\xd8")
    while True:
        byte = media.read(1)
        if not byte:
            break
        if byte != b"\xff":
            raise MalformedLabel("a JPEG marker was expected")
        marker = media.read(1)
        while marker == b"\xff":  # fill bytes
            marker = media.read(1)
        if not marker:
            raise MalformedLabel("a JPEG marker is cut off")
        code = marker[0]
        if code == 0xD9 or 0xD0 <= code <= 0xD8 or code == 0x01:  # EOI, RSTn, SOI, TEM: no length
            digest.update(b"\xff" + marker)
            if code == 0xD9:
                break
            continue
        size_bytes = _exactly(media, 2)
        (size,) = struct.unpack(">H", size_bytes)
        if size < 2:
            raise MalformedLabel("a JPEG segment length is below 2")
        if code == 0xE1 and size - 2 >= len(XMP_JPEG_HEADER):
            payload = _exactly(media, size - 2)
            if payload.startswith(XMP_JPEG_HEADER):
                packet = _only(packet, payload[len(XMP_JPEG_HEADER):], "XMP APP1 segment")
                continue
            digest.update(b"\xff" + marker + size_bytes + payload)
        else:
            digest.update(b"\xff" + marker + size_bytes)
            _hash_span(media, size - 2, digest)
        if code == 0xDA:  # start of scan: entropy-coded data and the rest of the file follow
            break
    _hash_rest(media, digest)
    return digest.hexdigest(), None if packet is None else _xmp_label(packet)


def _wav(media: IO[bytes]) -> tuple[str, str | None]:
    header = _exactly(media, 12)
    digest = hashlib.sha256(header[8:12])
    tag: bytes | None = None
    while head := media.read(8):
        if len(head) < 8:
            raise MalformedLabel("a RIFF chunk header is cut off")
        kind, size = head[:4], struct.unpack("<I", head[4:])[0]
        padded = size + (size & 1)
        if kind in ID3_CHUNK_IDS:
            if size > _MAX_CARRIER:
                raise MalformedLabel("the ID3 chunk is too large")
            data = _exactly(media, size)
            media.read(padded - size)
            tag = _only(tag, data, "ID3 chunk")
            continue
        digest.update(head)
        _hash_span(media, padded, digest, allow_short=padded != size)
    return digest.hexdigest(), None if tag is None else _id3_label(tag)


def _mp3(media: IO[bytes]) -> tuple[str, str | None]:
    head = media.read(10)
    tag: bytes | None = None
    if head.startswith(b"ID3") and len(head) == 10:
        size = _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
        if size > _MAX_CARRIER:
            raise MalformedLabel("the ID3v2 tag is too large")
        tag = head + _exactly(media, size)
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha256(head)
    _hash_rest(media, digest)
    return digest.hexdigest(), None if tag is None else _id3_label(tag)


def _mp4(media: IO[bytes]) -> tuple[str, str | None]:
    digest = hashlib.sha256()
    label: str | None = None
    for kind, payload_at, payload_size in _boxes(media, 0, None):
        if kind == b"mdat":
            media.seek(payload_at)
            _hash_span(media, payload_size, digest)
        elif kind == b"moov" and label is None:
            if payload_size > _MAX_MOOV:
                raise MalformedLabel("the moov box is too large")
            media.seek(payload_at)
            label = _mp4_label(_exactly(media, payload_size))
    return digest.hexdigest(), label


def _boxes(media: IO[bytes], start: int, end: int | None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload offset, payload size) of the boxes between ``start`` and ``end`` (None: EOF)."""
    if end is None:
        end = media.seek(0, 2)
    offset = start
    while offset + 8 <= end:
        media.seek(offset)
        size, kind = struct.unpack(">I4s", _exactly(media, 8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", _exactly(media, 8))
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise MalformedLabel(f"the MP4 box {kind!r} does not fit its parent")
        yield kind, offset + header, size - header
        offset += size


def _children(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        header = 8
        if size == 1 and offset + 16 <= len(data):
            (size,) = struct.unpack(">Q", data[offset + 8:offset + 16])
            header = 16
        elif size == 0:
            size = len(data) - offset
        if size < header or offset + size > len(data):
            raise MalformedLabel(f"the MP4 box {kind!r} does not fit its parent")
        yield kind, data[offset + header:offset + size]
        offset += size


def _mp4_label(moov: bytes) -> str | None:
    for kind, udta in _children(moov):
        if kind != b"udta":
            continue
        for meta_kind, meta in _children(udta):
            if meta_kind != b"meta":
                continue
            # ISO meta is a full box (version and flags); QuickTime's is not: it starts with a box.
            body = meta if meta[4:8] in (b"hdlr", b"ilst", b"keys") else meta[4:]
            for list_kind, ilst in _children(body):
                if list_kind == b"ilst":
                    found = _freeform(ilst)
                    if found is not None:
                        return found
    return None


def _freeform(ilst: bytes) -> str | None:
    for kind, item in _children(ilst):
        if kind != b"----":
            continue
        parts: dict[bytes, bytes] = {}
        for part_kind, part in _children(item):
            parts.setdefault(part_kind, part)
        mean, name, data = parts.get(b"mean", b""), parts.get(b"name", b""), parts.get(b"data", b"")
        if mean[4:] == MP4_FREEFORM_MEAN.encode() and name[4:] == AIGC_KEY.encode() and len(data) >= 8:
            try:
                return data[8:].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise MalformedLabel("the MP4 AIGC item is not UTF-8") from exc
    return None


_READERS = {"png": _png, "jpeg": _jpeg, "wav": _wav, "mp3": _mp3, "mp4": _mp4}


def _only(found: bytes | None, another: bytes, carrier: str) -> bytes:
    """The one label carrier of a file. A second would be left out of the content digest like the first,
    so it could carry any label beside a valid one, and readers differ in which of the two they show."""
    if found is not None:
        raise MalformedLabel(f"more than one {carrier}: a reader could show either label")
    return another


# --- XMP and ID3 ---------------------------------------------------------------------------------


def _xmp_label(packet: bytes) -> str | None:
    """The AIGC property of the TC260 namespace in an XMP packet (as an element or an attribute)."""
    if b"<!DOCTYPE" in packet or b"<!ENTITY" in packet:
        raise MalformedLabel("XMP packets with a DTD are refused")
    try:
        # DTDs are refused above and Python's expat bounds entity expansion; defusedxml is not in the
        # standard library, which this file must stay within.
        root = ElementTree.fromstring(packet)  # noqa: S314
    except ElementTree.ParseError as exc:
        raise MalformedLabel("the XMP packet is not well-formed XML") from exc
    name = f"{{{AIGC_NAMESPACE}}}{AIGC_KEY}"
    for element in root.iter():
        if element.tag == name:
            return element.text or ""
        if name in element.attrib:
            return element.attrib[name]
    return None


def _id3_label(tag: bytes) -> str | None:  # noqa: PLR0912 - the ID3v2.3/2.4 flag cases, side by side
    """The value of the ``TXXX`` frame described ``AIGC`` in an ID3v2.3 or v2.4 tag."""
    if len(tag) < 10 or not tag.startswith(b"ID3"):
        raise MalformedLabel("not an ID3v2 tag")
    version, flags = tag[3], tag[5]
    if version not in (3, 4):
        return None
    body = tag[10:10 + _syncsafe(tag[6:10])]
    if flags & 0x80 and version == 3:
        body = body.replace(b"\xff\x00", b"\xff")
    offset = 0
    if flags & 0x40:  # extended header
        offset = _syncsafe(body[:4]) if version == 4 else 4 + struct.unpack(">I", body[:4])[0]
    while offset + 10 <= len(body):
        frame_id, raw_size = body[offset:offset + 4], body[offset + 4:offset + 8]
        frame_flags = body[offset + 8:offset + 10]
        if frame_id == b"\x00\x00\x00\x00":
            break  # padding
        size = _syncsafe(raw_size) if version == 4 else struct.unpack(">I", raw_size)[0]
        data = body[offset + 10:offset + 10 + size]
        offset += 10 + size
        if frame_id != b"TXXX":
            continue
        if version == 4:
            if frame_flags[1] & 0x0C:
                raise MalformedLabel("compressed or encrypted TXXX frames are not supported")
            if frame_flags[1] & 0x01:  # data length indicator
                data = data[4:]
            if frame_flags[1] & 0x02 or flags & 0x80:
                data = data.replace(b"\xff\x00", b"\xff")
        elif frame_flags[1] & 0xC0:
            raise MalformedLabel("compressed or encrypted TXXX frames are not supported")
        description, value = _txxx(data)
        if description == AIGC_KEY:
            return value
    return None


def _txxx(data: bytes) -> tuple[str, str]:
    if not data:
        return "", ""
    encoding, text = data[0], data[1:]
    codec, terminator = {0: ("latin-1", b"\x00"), 1: ("utf-16", b"\x00\x00"), 2: ("utf-16-be", b"\x00\x00"),
                         3: ("utf-8", b"\x00")}.get(encoding, ("", b""))
    if not codec:
        raise MalformedLabel("unknown ID3 text encoding")
    step = len(terminator)
    cut = next((i for i in range(0, len(text) - step + 1, step) if text[i:i + step] == terminator), len(text))
    try:
        description = text[:cut].decode(codec)
        value = text[cut + step:].decode(codec)
    except UnicodeDecodeError as exc:
        raise MalformedLabel("the TXXX frame is not valid text") from exc
    return description, value.split("\x00")[0]


# --- helpers -------------------------------------------------------------------------------------


def _mpeg_audio_sync(head: bytes) -> bool:
    # Frame sync (11 bits), an MPEG version other than "reserved" and a layer other than "reserved".
    return len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x18 != 0x08 \
        and head[1] & 0x06 != 0


def _syncsafe(raw: bytes) -> int:
    return (raw[0] & 0x7F) << 21 | (raw[1] & 0x7F) << 14 | (raw[2] & 0x7F) << 7 | (raw[3] & 0x7F)


def _exactly(media: IO[bytes], size: int) -> bytes:
    data = media.read(size)
    if len(data) != size:
        raise MalformedLabel("the file is cut off")
    return data


def _hash_span(media: IO[bytes], size: int, digest: Any, *, allow_short: bool = False) -> None:
    left = size
    while left > 0:
        chunk = media.read(min(left, _READ))
        if not chunk:
            if allow_short and left == 1:
                return  # a missing pad byte at the very end, which many writers leave out
            raise MalformedLabel("the file is cut off")
        digest.update(chunk)
        left -= len(chunk)


def _hash_rest(media: IO[bytes], digest: Any) -> None:
    while chunk := media.read(_READ):
        digest.update(chunk)


def _split(signature: str) -> tuple[str, str]:
    parts = signature.split(".")
    if len(parts) != 3 or parts[1] != "" or not parts[0] or not parts[2]:
        raise MalformedLabel("ReservedCode1 is not a compact JWS with a detached payload (header..signature)")
    return parts[0], parts[2]


def _key(jwks: Mapping[str, Any], kid: str) -> Ed25519PublicKey:
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        raise UnknownKey("the JWKS has no 'keys' array")
    for jwk in entries:
        if (isinstance(jwk, Mapping) and jwk.get("kid") == kid and jwk.get("kty") == "OKP"
                and jwk.get("crv") == "Ed25519" and jwk.get("use", "sig") == "sig" and "d" not in jwk
                and isinstance(jwk.get("x"), str)):
            try:
                return Ed25519PublicKey.from_public_bytes(_b64url_decode(jwk["x"]))
            except (MalformedLabel, ValueError) as exc:
                raise UnknownKey(f"the JWKS key {kid!r} is not a valid Ed25519 public key") from exc
    raise UnknownKey(f"no Ed25519 signature key {kid!r} in the JWKS")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _b64url_decode(segment: str) -> bytes:
    if not _B64URL.fullmatch(segment):
        raise MalformedLabel("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedLabel("not unpadded base64url") from exc


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_unique_members)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedLabel("the JWS header is not UTF-8 JSON without duplicate members") from exc
    if not isinstance(value, dict):
        raise MalformedLabel("the JWS header is not a JSON object")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member")
    return members


def main(argv: list[str] | None = None) -> int:
    """``python verifier.py FILE --jwks JWKS.json --issuer URL``: exit 0 and print the label if valid."""
    import argparse

    parser = argparse.ArgumentParser(description="Verify the AIGC label of a file from a Consent Gateway.")
    parser.add_argument("file")
    parser.add_argument("--jwks", required=True, help="the gateway's /.well-known/jwks.json, saved to a file")
    parser.add_argument("--issuer", required=True, help="the gateway's issuer URL")
    args = parser.parse_args(argv)
    with open(args.jwks, "rb") as handle:
        jwks = json.load(handle)
    try:
        with open(args.file, "rb") as media:
            label = verify_label(media, jwks, issuer=args.issuer)
    except LabelError as exc:
        print(json.dumps({"valid": False, "error": {"code": exc.code, "detail": str(exc)}}, indent=2))
        return 1
    print(json.dumps({"valid": True, "container": label.container, "kid": label.kid, "issued_at": label.issued_at,
                      "decision_id": label.decision_id, "client_id": label.client_id, "edit": label.edit,
                      "label": label.fields, "content_sha256": label.content_sha256}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
