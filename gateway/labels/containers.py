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

Every writer leaves the bytes the label's content digest covers (gateway.labels.verifier) unchanged.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
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


def write_label(container: str, media: IO[bytes], value: str, new_file: NewFile) -> IO[bytes]:
    """The labelled file: ``media`` itself (changed in place) or a new file from ``new_file``."""
    media.seek(0)
    try:
        if container == "png":
            return _png(media, value, new_file)
        if container == "jpeg":
            return _jpeg(media, value, new_file)
        if container in ("wav", "mp3"):
            _id3(container, media, value)
            return media
        if container == "mp4":
            _mp4(media, value)
            return media
    except LabelRefused:
        raise
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise LabelRefused(f"the {container} output cannot be labelled: {exc}") from exc
    except Exception as exc:
        # mutagen's own errors (MutagenError and format-specific ones) mean the same: unreadable.
        if type(exc).__module__.startswith("mutagen"):
            raise LabelRefused(f"the {container} output cannot be labelled: {exc}") from exc
        raise
    raise ValueError(f"no writer for {container!r}")


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


def _png(media: IO[bytes], value: str, new_file: NewFile) -> IO[bytes]:
    if media.read(8) != _PNG_SIGNATURE:
        raise LabelRefused("not a PNG file")
    # iTXt: keyword, NUL, compression flag 0, method 0, empty language tag and translated keyword.
    data = XMP_PNG_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp_packet(value)
    chunk = struct.pack(">I", len(data)) + b"iTXt" + data + struct.pack(">I", zlib.crc32(b"iTXt" + data))
    out = new_file()
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
                out.write(head + body)
            else:
                out.write(head)
                _copy(media, out, length + 4)
            if kind == b"IHDR":
                out.write(chunk)
            if kind == b"IEND":
                break
        _copy_rest(media, out)
    except BaseException:
        out.close()
        raise
    return out


def _jpeg(media: IO[bytes], value: str, new_file: NewFile) -> IO[bytes]:  # noqa: PLR0912 - one marker at a time
    if media.read(2) != b"\xff\xd8":
        raise LabelRefused("not a JPEG file")
    payload = XMP_JPEG_HEADER + xmp_packet(value)
    if len(payload) + 2 > 0xFFFF:
        raise LabelRefused("the label does not fit one JPEG segment")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    out = new_file()
    try:
        out.write(b"\xff\xd8")
        written = False
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
            if code == 0xD9 or 0xD0 <= code <= 0xD7 or code == 0x01:
                if not written:
                    out.write(segment)
                    written = True
                out.write(marker)
                if code == 0xD9:
                    break
                continue
            size_bytes = media.read(2)
            (size,) = struct.unpack(">H", size_bytes)
            body = media.read(size - 2)
            if code == 0xE1 and body.startswith(XMP_JPEG_HEADER):
                continue  # the upstream's XMP packet: replaced by ours
            # XMP goes after the JFIF (APP0) and Exif (APP1) segments that readers expect first.
            leading = code == 0xE0 or (code == 0xE1 and body.startswith(b"Exif\x00"))
            if not leading and not written:
                out.write(segment)
                written = True
            out.write(marker + size_bytes + body)
            if code == 0xDA:
                break
        _copy_rest(media, out)
    except BaseException:
        out.close()
        raise
    return out


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


def _copy(source: IO[bytes], target: IO[bytes], size: int) -> None:
    left = size
    while left > 0:
        chunk = source.read(min(left, _COPY))
        if not chunk:
            raise LabelRefused("the file is cut off")
        target.write(chunk)
        left -= len(chunk)


def _copy_rest(source: IO[bytes], target: IO[bytes]) -> None:
    while chunk := source.read(_COPY):
        target.write(chunk)
