"""Writing the ``AIGC`` label into each container the gateway labels.

* PNG: an ``iTXt`` chunk ``XML:com.adobe.xmp`` (the XMP specification's carrier in PNG) right after
  ``IHDR``; JPEG: an APP1 XMP segment after the JFIF/Exif segments. The XMP packet holds one property,
  ``AIGC`` in the namespace ``http://www.tc260.org.cn/ns/AIGC/1.0/`` (prefix ``TC260``). No library writes
  XMP into both, so these two are small writers that follow the XMP specification (part 3); the tests
  read them back with exiftool and Pillow. Any XMP packet the upstream wrote is replaced.
* WAV and MP3: an ID3v2.4 frame ``TXXX`` described ``AIGC`` (mutagen; WAV keeps it in an ``id3 ``
  chunk), other frames kept.
* MP4/M4A: the freeform item ``----:com.apple.iTunes:AIGC`` in ``moov/udta/meta/ilst`` (mutagen), which
  ffprobe and exiftool show as ``AIGC``.

Every writer leaves the bytes the label's content digest covers (gateway.labels.verifier) unchanged. The
PNG and JPEG writers copy the file to insert the carrier and hash the content on the way (the verifier's
digest, without a second read); :func:`rewrite_carrier` then swaps the placeholder label for the signed one
in place.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any
from xml.sax.saxutils import escape

from gateway.labels._optional import import_optional
from gateway.labels.errors import LabelRefused
from gateway.labels.verifier import (
    AIGC_KEY,
    AIGC_NAMESPACE,
    MP4_FREEFORM_MEAN,
    XMP_JPEG_HEADER,
    XMP_PNG_KEYWORD,
)

NewFile = Callable[[], IO[bytes]]

_COPY = 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MP4_KEY = f"----:{MP4_FREEFORM_MEAN}:{AIGC_KEY}"


@dataclass(frozen=True)
class Carrier:
    """A labelled file, and for PNG and JPEG where the label's carrier is and the content digest taken while
    the file was written (the file without that carrier, as gateway.labels.verifier defines it)."""

    container: str
    media: IO[bytes]
    content_sha256: str | None = None
    offset: int = -1
    size: int = 0


def write_label(container: str, media: IO[bytes], value: str, new_file: NewFile) -> IO[bytes]:
    """The labelled file: ``media`` itself (changed in place) or a new file from ``new_file``."""
    return write_carrier(container, media, value, new_file).media


def write_carrier(container: str, media: IO[bytes], value: str, new_file: NewFile) -> Carrier:
    """:func:`write_label`, keeping what :func:`rewrite_carrier` needs to put another value in the same place."""
    media.seek(0)
    with _refusing(container):
        if container == "png":
            return _png(media, value, new_file)
        if container == "jpeg":
            return _jpeg(media, value, new_file)
        if container in ("wav", "mp3"):
            _id3(container, media, value)
            return Carrier(container, media)
        if container == "mp4":
            _mp4(media, value)
            return Carrier(container, media)
    raise ValueError(f"no writer for {container!r}")


def rewrite_carrier(carrier: Carrier, value: str) -> None:
    """Replace the label of a :func:`write_carrier` file by ``value`` of the same length, in place.

    PNG and JPEG: only the carrier's bytes are written again (the file is not copied), so the content
    digest taken while writing still holds. The others: their tag writer again, in place.
    """
    if carrier.offset < 0:
        write_carrier(carrier.container, carrier.media, value, lambda: carrier.media)
        return
    raw = _png_chunk(value) if carrier.container == "png" else _jpeg_segment(value)
    if len(raw) != carrier.size:
        raise LabelRefused("the label changed its length between the placeholder and the signature")
    carrier.media.seek(carrier.offset)
    carrier.media.write(raw)


@contextmanager
def _refusing(container: str) -> Iterator[None]:
    try:
        yield
    except LabelRefused:
        raise
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise LabelRefused(f"the {container} output cannot be labelled: {exc}") from exc
    except Exception as exc:
        # mutagen's own errors (MutagenError and format-specific ones) mean the same: unreadable.
        if type(exc).__module__.startswith("mutagen"):
            raise LabelRefused(f"the {container} output cannot be labelled: {exc}") from exc
        raise


def mp4_sample_sizes(media: IO[bytes]) -> list[int]:
    """The payload size of each top-level ``mdat`` box, in file order: the boxes the content digest covers."""
    end = media.seek(0, 2)
    offset, sizes = 0, []
    while offset + 8 <= end:
        media.seek(offset)
        size, kind = struct.unpack(">I4s", media.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", media.read(8))
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise LabelRefused(f"the MP4 box {kind!r} does not fit the file")
        if kind == b"mdat":
            sizes.append(size - header)
        offset += size
    return sizes


def xmp_packet(value: str) -> bytes:
    """An XMP packet with the single property ``TC260:AIGC`` (its value as element text)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'  <rdf:Description rdf:about="" xmlns:TC260="{AIGC_NAMESPACE}">\n'
        f"   <TC260:{AIGC_KEY}>{escape(value)}</TC260:{AIGC_KEY}>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


# --- PNG and JPEG (XMP) -------------------------------------------------------------------------


def _png_chunk(value: str) -> bytes:
    # iTXt: keyword, NUL, compression flag 0, method 0, empty language tag and translated keyword.
    data = XMP_PNG_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp_packet(value)
    return struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data))


def _png(media: IO[bytes], value: str, new_file: NewFile) -> Carrier:
    if media.read(8) != _PNG_SIGNATURE:
        raise LabelRefused("not a PNG file")
    chunk = _png_chunk(value)
    out = new_file()
    # Everything written but our chunk is the content the label's digest covers: hashed on the way.
    digest = hashlib.sha256(_PNG_SIGNATURE)
    offset = -1
    try:
        out.write(_PNG_SIGNATURE)
        while head := media.read(8):
            if len(head) < 8:
                raise LabelRefused("a PNG chunk header is cut off")
            length, kind = struct.unpack(">I4s", head)
            if kind == b"iTXt" and length <= 4 * 1024 * 1024:
                body = media.read(length + 4)
                if body.startswith(XMP_PNG_KEYWORD + b"\x00"):
                    continue  # the upstream's XMP packet: replaced by ours
                _write(out, digest, head + body)
            else:
                _write(out, digest, head)
                _copy(media, out, length + 4, digest)
            if kind == b"IHDR" and offset < 0:
                offset = out.tell()
                out.write(chunk)
            if kind == b"IEND":
                break
        _copy_rest(media, out, digest)
    except BaseException:
        out.close()
        raise
    if offset < 0:
        out.close()
        raise LabelRefused("a PNG without IHDR")
    return Carrier("png", out, digest.hexdigest(), offset, len(chunk))


def _jpeg_segment(value: str) -> bytes:
    payload = XMP_JPEG_HEADER + xmp_packet(value)
    if len(payload) + 2 > 0xFFFF:
        raise LabelRefused("the label does not fit one JPEG segment")
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _jpeg(media: IO[bytes], value: str, new_file: NewFile) -> Carrier:  # noqa: PLR0912 - one marker at a time
    if media.read(2) != b"\xff\xd8":
        raise LabelRefused("not a JPEG file")
    segment = _jpeg_segment(value)
    out = new_file()
    digest = hashlib.sha256(b"\xff\xd8")  # as for PNG: all but our segment, hashed as it is written
    offset = -1
    try:
        out.write(b"\xff\xd8")
        while True:
            marker = media.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                raise LabelRefused("a JPEG marker was expected")
            code = marker[1]
            while code == 0xFF:  # fill bytes before a marker
                fill = media.read(1)
                if not fill:
                    raise LabelRefused("a JPEG marker is cut off")
                code = fill[0]
            marker = bytes((0xFF, code))
            # The markers without a length, as the verifier reads them (SOI included).
            if code == 0xD9 or 0xD0 <= code <= 0xD8 or code == 0x01:
                if offset < 0:
                    offset = out.tell()
                    out.write(segment)
                _write(out, digest, marker)
                if code == 0xD9:
                    break
                continue
            size_bytes = media.read(2)
            (size,) = struct.unpack(">H", size_bytes)
            if size < 2:
                raise LabelRefused("a JPEG segment length is below 2")
            body = media.read(size - 2)
            if code == 0xE1 and body.startswith(XMP_JPEG_HEADER):
                continue  # the upstream's XMP packet: replaced by ours
            # XMP goes after the JFIF (APP0) and Exif (APP1) segments that readers expect first.
            leading = code == 0xE0 or (code == 0xE1 and body.startswith(b"Exif\x00"))
            if not leading and offset < 0:
                offset = out.tell()
                out.write(segment)
            _write(out, digest, marker + size_bytes + body)
            if code == 0xDA:
                break
        _copy_rest(media, out, digest)
    except BaseException:
        out.close()
        raise
    return Carrier("jpeg", out, digest.hexdigest(), offset, len(segment))


# --- WAV, MP3, MP4 (mutagen) ---------------------------------------------------------------------


def _id3(container: str, media: IO[bytes], value: str) -> None:
    id3: Any = import_optional("mutagen.id3")
    if container == "wav":
        wave: Any = import_optional("mutagen.wave")
        audio = wave.WAVE(media)
    else:
        mp3: Any = import_optional("mutagen.mp3")
        audio = mp3.MP3(media)
    if audio.tags is None:
        audio.add_tags()
    audio.tags.setall(f"TXXX:{AIGC_KEY}", [id3.TXXX(encoding=id3.Encoding.UTF8, desc=AIGC_KEY, text=[value])])
    media.seek(0)
    # ID3v2.4; an ID3v1 tag at the end of an MP3 is left as it is (v1=0 would remove it).
    audio.save(media, v2_version=4, v1=1)


def _mp4(media: IO[bytes], value: str) -> None:
    mp4: Any = import_optional("mutagen.mp4")
    audio = mp4.MP4(media)
    if audio.tags is None:
        audio.add_tags()
    audio.tags[_MP4_KEY] = [mp4.MP4FreeForm(value.encode("utf-8"), dataformat=mp4.AtomDataType.UTF8)]
    media.seek(0)
    audio.save(media)


def _write(target: IO[bytes], digest: Any, data: bytes) -> None:
    digest.update(data)
    target.write(data)


def _copy(source: IO[bytes], target: IO[bytes], size: int, digest: Any) -> None:
    left = size
    while left > 0:
        chunk = source.read(min(left, _COPY))
        if not chunk:
            raise LabelRefused("the file is cut off")
        _write(target, digest, chunk)
        left -= len(chunk)


def _copy_rest(source: IO[bytes], target: IO[bytes], digest: Any) -> None:
    while chunk := source.read(_COPY):
        _write(target, digest, chunk)
