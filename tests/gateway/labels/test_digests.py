"""Content digests taken while bytes are written or spooled equal the verifier's, which reads the file again."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from flask import Flask

from gateway.labels import aigc, containers, isobmff
from gateway.labels.errors import LabelRefused
from gateway.labels.verifier import MalformedLabel, read_label, verify_label
from tests.conftest import ISSUER
from tests.gateway.labels import media
from tests.gateway.labels.conftest import CONTEXT, gateway_jwks, label_with


def _box(kind: bytes, payload: bytes, *, large: bool = False, to_end: bool = False) -> bytes:
    if to_end:
        return struct.pack(">I4s", 0, kind) + payload
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def _spooled(data: bytes, chunk: int) -> tuple[str, list[int]] | None:
    digest = isobmff.SampleDigest()
    for start in range(0, len(data), chunk):
        digest.update(data[start:start + chunk])
    return digest.result()


CRAFTED = {
    "two mdat, one with a 64-bit size": _box(b"ftyp", b"isom\0\0\0\0") + _box(b"mdat", b"a" * 300)
    + _box(b"free", b"") + _box(b"mdat", b"b" * 70, large=True) + _box(b"moov", b"\0" * 40),
    "an mdat that runs to the end": _box(b"ftyp", b"isom\0\0\0\0") + _box(b"moov", b"\0" * 12)
    + _box(b"mdat", b"c" * 999, to_end=True),
    "a few stray bytes at the end": _box(b"ftyp", b"isom\0\0\0\0") + _box(b"mdat", b"d" * 64) + b"\0\0\0",
}


@pytest.mark.parametrize("chunk", [1, 7, 4096])
@pytest.mark.parametrize("name", [*CRAFTED, "mp4", "m4a"])
def test_the_samples_hashed_while_spooled_are_what_the_verifier_hashes(name: str, chunk: int) -> None:
    data = CRAFTED.get(name) or {"mp4": media.mp4, "m4a": media.m4a}[name]()

    spooled = _spooled(data, chunk)

    assert spooled is not None
    assert spooled[0] == read_label(io.BytesIO(data)).content_sha256
    assert spooled[1] == containers.mp4_sample_sizes(io.BytesIO(data))


@pytest.mark.parametrize("data", [
    _box(b"ftyp", b"isom\0\0\0\0") + _box(b"mdat", b"e" * 64)[:-1],  # cut off
    _box(b"ftyp", b"isom\0\0\0\0") + struct.pack(">I4s", 4, b"mdat") + b"\0" * 8,  # smaller than its header
    _box(b"ftyp", b"isom\0\0\0\0") + struct.pack(">I4s", 1, b"mdat") + b"\0\0",  # 64-bit size cut off
])
def test_a_file_the_verifier_would_not_read_has_no_spooled_digest(data: bytes) -> None:
    assert _spooled(data, 5) is None


@pytest.mark.parametrize("name", ["png", "jpeg"])
def test_the_image_writers_hash_the_content_as_the_verifier_does(name: str) -> None:
    original = media.png() if name == "png" else media.jpeg()
    # An upstream's XMP packet is dropped, and our own carrier is not part of the content.
    with_xmp = containers.write_label(name, io.BytesIO(original), '{"from":"upstream"}', io.BytesIO)

    carrier = containers.write_carrier(name, with_xmp, _value("A" * 86), io.BytesIO)
    containers.rewrite_carrier(carrier, _value("B" * 86))

    found = read_label(carrier.media)
    assert carrier.content_sha256 == found.content_sha256
    assert carrier.content_sha256 == read_label(io.BytesIO(original)).content_sha256
    assert found.fields is not None
    assert found.fields["ReservedCode1"] == "B" * 86
    with pytest.raises(LabelRefused, match="length"):
        containers.rewrite_carrier(carrier, _value("C" * 87))


def _value(signature: str) -> str:
    provenance = aigc.Provenance(decision_id=CONTEXT.decision_id, client_id=CONTEXT.client_id,
                                 operation=CONTEXT.operation, algorithm=CONTEXT.algorithm, consents=CONTEXT.consents)
    return aigc.label_value(aigc.label_fields(ISSUER, provenance, signature))


def test_an_mp4_with_its_moov_first_is_labelled_without_moving_its_samples(app: Flask, tmp_path: Path) -> None:
    av = pytest.importorskip("av", reason="PyAV (the dev extra) makes the MP4 test file")
    path = tmp_path / "faststart.mp4"  # FFmpeg moves moov to the front in a second pass over a real file
    with av.open(str(path), "w", format="mp4", options={"movflags": "faststart"}) as output:
        stream = output.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(6):
            frame = av.VideoFrame(64, 48, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index * 30 % 255]) * plane.buffer_size)
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    data = path.read_bytes()
    kinds = [kind for kind, _at, _size in _top_level(data)]
    assert kinds.index(b"moov") < kinds.index(b"mdat")

    labelled = label_with(app, data, chunk=4096)

    label = verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER)
    assert label.decision_id == CONTEXT.decision_id
    assert label.content_sha256 == read_label(io.BytesIO(data)).content_sha256


def _top_level(data: bytes) -> list[tuple[bytes, int, int]]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset:offset + 8])
        boxes.append((kind, offset, size))
        offset += size
    return boxes


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        chunks.append(data[offset:offset + length + 12])
        offset += length + 12
    return chunks


def _second_carrier(name: str, labelled: bytes) -> bytes:
    """``labelled`` with its label carrier copied once more, where a reader may find either."""
    if name == "png":
        chunks = _png_chunks(labelled)
        [xmp] = [c for c in chunks if c[4:8] == b"iTXt" and c[8:].startswith(b"XML:com.adobe.xmp\x00")]
        return labelled[:8] + b"".join(chunks[:-1]) + xmp + chunks[-1]
    if name == "jpeg":
        at = labelled.index(b"\xff\xe1")
        (size,) = struct.unpack(">H", labelled[at + 2:at + 4])
        segment = labelled[at:at + 2 + size]
        assert b"http://ns.adobe.com/xap/1.0/\x00" in segment
        return labelled[:at + 2 + size] + segment + labelled[at + 2 + size:]
    at = labelled.index(b"id3 ")
    (size,) = struct.unpack("<I", labelled[at + 4:at + 8])
    chunk = labelled[at:at + 8 + size + (size & 1)]
    doubled = labelled + chunk
    return doubled[:4] + struct.pack("<I", len(doubled) - 8) + doubled[8:]


@pytest.mark.parametrize("name", ["png", "jpeg", "wav"])
def test_a_file_with_two_label_carriers_is_malformed(app: Flask, name: str) -> None:
    # Both carriers are left out of the content digest, so a second one could say anything beside a
    # valid first one; readers differ in which they show (Pillow the last PNG chunk, exiftool both).
    maker, content_type = {"png": (media.png, "image/png"), "jpeg": (media.jpeg, "image/jpeg"),
                           "wav": (media.wav, "audio/wav")}[name]
    labelled = label_with(app, maker(), content_type=content_type)
    assert read_label(io.BytesIO(labelled)).fields is not None
    with pytest.raises(MalformedLabel, match="more than one"):
        read_label(io.BytesIO(_second_carrier(name, labelled)))
