"""The AIGC label in every container: written, read back by independent readers, signed, bound to the media."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import mutagen
import pytest
import rfc8785
from flask import Flask
from PIL import Image

from gateway.core.clock import utcnow
from gateway.core.db import db
from gateway.keys.keyring import key_store
from gateway.labels import containers
from gateway.labels.verifier import (
    AIGC_NAMESPACE,
    BadSignature,
    ContentMismatch,
    LabelNotFound,
    UnknownKey,
    UnsupportedFormat,
    WrongIssuer,
    read_label,
    verify_label,
)
from tests.conftest import ISSUER
from tests.gateway.labels import media
from tests.gateway.labels.conftest import CONTEXT, MEDIA, exiftool, gateway_jwks, label_with

CONTAINERS = list(MEDIA)


@pytest.fixture(scope="module")
def originals() -> dict[str, bytes]:
    return {name: make() for name, (make, _container) in MEDIA.items()}


def _aigc(data: bytes) -> dict[str, str]:
    found = read_label(io.BytesIO(data))
    assert found.fields is not None
    return found.fields


@pytest.mark.parametrize("name", CONTAINERS)
def test_the_label_names_the_decision_the_app_and_the_producer(
    app: Flask, originals: dict[str, bytes], name: str
) -> None:
    labelled = label_with(app, originals[name])
    label = verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER)

    assert label.container == MEDIA[name][1]
    assert label.fields["Label"] == "1"
    assert label.fields["ContentProducer"] == ISSUER  # LABEL_PRODUCER's default
    assert label.fields["ProduceID"] == CONTEXT.decision_id
    assert label.fields["ContentPropagator"] == CONTEXT.client_id
    assert label.fields["ReservedCode1"].isascii()
    assert label.fields["ReservedCode1"].isprintable()
    assert label.edit == {"operation": "face_swap", "algorithm": "FN-LABEL-0001",
                          "consents": list(CONTEXT.consents)}


@pytest.mark.parametrize("name", CONTAINERS)
def test_exiftool_reads_the_same_label(app: Flask, originals: dict[str, bytes], name: str, tmp_path: Path) -> None:
    labelled = label_with(app, originals[name])
    path = tmp_path / f"labelled.{name}"
    path.write_bytes(labelled)
    tags = exiftool(str(path))

    values = [value for key, value in tags.items()
              if key.endswith(":Aigc") or key.endswith(":AIGC") or key.endswith(":UserDefinedText")]
    assert len(values) == 1, tags
    value = values[0].removeprefix("(AIGC) ")  # exiftool shows an ID3 TXXX frame as "(description) value"
    assert json.loads(value) == _aigc(labelled)
    if name in ("png", "jpeg"):
        assert any(key.startswith("XMP-") for key in tags if key.endswith(":Aigc"))
    assert not [key for key in tags if key.endswith(":Warning")], tags


def test_pillow_finds_the_xmp_packet_in_png_and_jpeg(app: Flask, originals: dict[str, bytes]) -> None:
    for name in ("png", "jpeg"):
        with Image.open(io.BytesIO(label_with(app, originals[name]))) as image:
            packet = image.info["XML:com.adobe.xmp"] if name == "png" else image.info["xmp"]
            image.load()  # the pixels still decode
        text = packet.decode() if isinstance(packet, bytes) else packet
        assert f'xmlns:TC260="{AIGC_NAMESPACE}"' in text
        assert "<TC260:AIGC>" in text


@pytest.mark.parametrize("name", ["wav", "mp3", "m4a", "mp4"])
def test_mutagen_reads_the_tag(app: Flask, originals: dict[str, bytes], name: str) -> None:
    labelled = label_with(app, originals[name])
    tags = mutagen.File(io.BytesIO(labelled)).tags
    if name in ("wav", "mp3"):
        value = str(tags["TXXX:AIGC"].text[0])
    else:
        value = bytes(tags["----:com.apple.iTunes:AIGC"][0]).decode()
    assert json.loads(value) == _aigc(labelled)


@pytest.mark.parametrize("name", CONTAINERS)
def test_the_signature_verifies_with_pyjwt_and_the_published_jwks(
    app: Flask, originals: dict[str, bytes], name: str
) -> None:
    labelled = label_with(app, originals[name])
    fields = _aigc(labelled)
    header_segment, empty, signature_segment = fields["ReservedCode1"].split(".")
    assert empty == ""  # detached payload (RFC 7515 Appendix F)
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    assert header["typ"] == "aigc-label+jws"
    assert header["iss"] == ISSUER
    # The payload rebuilt as docs/LABELS.md defines it, with an independent JCS implementation.
    payload = rfc8785.dumps({"aigc": {k: v for k, v in fields.items() if k != "ReservedCode1"},
                             "content": {"container": MEDIA[name][1], "sha256": header["content"]["sha256"]}})
    attached = f"{header_segment}.{base64.urlsafe_b64encode(payload).decode().rstrip('=')}.{signature_segment}"
    client = app.test_client()
    [key] = [jwt.PyJWK(k) for k in client.get("/.well-known/jwks.json").get_json()["keys"] if k["kid"] == header["kid"]]
    decoded = jwt.api_jws.decode_complete(attached, key=key, algorithms=["EdDSA"])
    assert json.loads(decoded["payload"])["aigc"]["ProduceID"] == CONTEXT.decision_id


def _png_without_xmp(data: bytes) -> bytes:
    """The PNG's bytes without its XMP iTXt chunk, cut out here independently of the gateway's reader."""
    out, offset = [data[:8]], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        chunk = data[offset:offset + 12 + length]
        if not (chunk[4:8] == b"iTXt" and chunk[8:].startswith(b"XML:com.adobe.xmp\x00")):
            out.append(chunk)
        offset += 12 + length
    return b"".join(out)


def test_the_png_digest_is_the_file_without_its_label(app: Flask, originals: dict[str, bytes]) -> None:
    labelled = label_with(app, originals["png"])
    expected = hashlib.sha256(_png_without_xmp(labelled)).hexdigest()
    assert read_label(io.BytesIO(labelled)).content_sha256 == expected
    header_segment = _aigc(labelled)["ReservedCode1"].split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(header_segment + "=" * (-len(header_segment) % 4)))
    assert header["content"] == {"container": "png", "sha256": expected}


# --- tampering ---------------------------------------------------------------------------------------


def _media_offset(name: str, data: bytes) -> int:
    """A byte the content digest covers: in the image data, the samples, the frames or the mdat box."""
    if name == "png":
        return data.index(b"IDAT") + 10
    if name == "jpeg":
        return len(data) - 20
    if name == "wav":
        return data.index(b"data") + 8 + 100
    if name == "mp3":
        return len(data) - 200
    return data.index(b"mdat") + 4 + 40


@pytest.mark.parametrize("name", CONTAINERS)
def test_one_changed_byte_of_the_media_is_detected(app: Flask, originals: dict[str, bytes], name: str) -> None:
    labelled = bytearray(label_with(app, originals[name]))
    offset = _media_offset(name, labelled)
    labelled[offset] ^= 0x01
    with pytest.raises(ContentMismatch):
        verify_label(io.BytesIO(bytes(labelled)), gateway_jwks(app), issuer=ISSUER)


@pytest.mark.parametrize("name", CONTAINERS)
def test_one_changed_byte_of_the_label_is_detected(app: Flask, originals: dict[str, bytes], name: str) -> None:
    labelled = label_with(app, originals[name])
    original = f'"ProduceID":"{CONTEXT.decision_id}"'.encode()
    assert labelled.count(original) == 1
    altered = labelled.replace(original, original[:-2] + b'2"')  # ...0001 -> ...0002, same length
    with pytest.raises(BadSignature):
        verify_label(io.BytesIO(altered), gateway_jwks(app), issuer=ISSUER)


@pytest.mark.parametrize("name", CONTAINERS)
def test_a_label_copied_onto_another_file_is_refused(app: Flask, originals: dict[str, bytes], name: str) -> None:
    donor = label_with(app, originals[name])
    container = MEDIA[name][1]
    other = label_with(app, OTHERS[name]())  # same kind, other content, labelled for the same decision
    value = json.dumps(_aigc(donor), ensure_ascii=False, separators=(",", ":"))
    grafted = containers.write_label(container, io.BytesIO(other), value, io.BytesIO)
    grafted.seek(0)
    assert _aigc(grafted.read()) == _aigc(donor)
    grafted.seek(0)
    with pytest.raises(ContentMismatch):
        verify_label(grafted, gateway_jwks(app), issuer=ISSUER)


OTHERS: dict[str, Callable[[], bytes]] = {
    "png": lambda: media.png(background=(200, 30, 30)),
    "jpeg": lambda: media.jpeg(background=(200, 30, 30)),
    "wav": lambda: media.wav(frequency=330),
    "mp3": lambda: media.mp3(frequency=330),
    "m4a": lambda: media.m4a(frequency=330),
    "mp4": lambda: media.mp4(shade=160),
}


def test_a_retired_key_still_verifies_and_a_foreign_key_does_not(app: Flask, originals: dict[str, bytes]) -> None:
    labelled = label_with(app, originals["png"])
    with app.app_context(), db.unit_of_work() as session:
        key_store().rotate(session, utcnow())
    keys = gateway_jwks(app)
    assert [k.get("status") for k in keys["keys"]] == ["retired", None]
    assert verify_label(io.BytesIO(labelled), keys, issuer=ISSUER).kid == keys["keys"][0]["kid"]
    with pytest.raises(UnknownKey):
        verify_label(io.BytesIO(labelled), {"keys": keys["keys"][1:]}, issuer=ISSUER)
    with pytest.raises(WrongIssuer):
        verify_label(io.BytesIO(labelled), keys, issuer="https://other-gateway.example")


def test_files_without_a_label_or_of_another_kind_say_so(app: Flask, originals: dict[str, bytes]) -> None:
    with pytest.raises(LabelNotFound):
        verify_label(io.BytesIO(originals["png"]), gateway_jwks(app), issuer=ISSUER)
    with pytest.raises(UnsupportedFormat):
        verify_label(io.BytesIO(b"%PDF-1.7 not media"), gateway_jwks(app), issuer=ISSUER)


def test_an_upstreams_own_xmp_is_replaced_not_duplicated(app: Flask, originals: dict[str, bytes]) -> None:
    with_xmp = containers.write_label("png", io.BytesIO(originals["png"]), '{"from":"upstream"}', io.BytesIO)
    with_xmp.seek(0)
    labelled = label_with(app, with_xmp.read())
    assert labelled.count(b"XML:com.adobe.xmp") == 1
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).decision_id == CONTEXT.decision_id


def test_the_vendorable_verifier_runs_alone_from_a_copy(app: Flask, originals: dict[str, bytes],
                                                        tmp_path: Path) -> None:
    """Copied out of the package and run with only the standard library and cryptography importable."""
    import shutil
    import subprocess
    import sys

    from gateway.labels import verifier

    vendored = tmp_path / "vendor" / "label_verifier.py"
    vendored.parent.mkdir()
    shutil.copy(verifier.__file__, vendored)
    media_path, keys_path = tmp_path / "edited.jpeg", tmp_path / "jwks.json"
    media_path.write_bytes(label_with(app, originals["jpeg"]))
    keys_path.write_text(json.dumps(gateway_jwks(app)))
    probe = ("import runpy, sys; sys.argv = sys.argv[1:]; "
             "runpy.run_path(sys.argv[0], run_name='__main__')")
    result = subprocess.run(
        [sys.executable, "-I", "-c", probe, str(vendored), str(media_path), "--jwks", str(keys_path),
         "--issuer", ISSUER], capture_output=True, text=True, cwd=tmp_path, check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["decision_id"] == CONTEXT.decision_id
    modules = subprocess.run(
        [sys.executable, "-I", "-c", f"import runpy, sys; runpy.run_path({str(vendored)!r}); "
         "print(sorted({m.split('.')[0] for m in sys.modules}))"], capture_output=True, text=True, check=True)
    loaded = set(json.loads(modules.stdout.replace("'", '"')))
    assert not loaded & {"gateway", "flask", "sqlalchemy", "PIL", "mutagen", "rfc8785", "consent"}


