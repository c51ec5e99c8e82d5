"""What happens to an output that cannot be labelled or marked: refused by default, passed only with an audit entry."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from gateway.core.config import ConfigError
from gateway.labels import _optional
from gateway.labels.errors import LabelUnavailable, LabelUnsupported
from gateway.labels.verifier import read_label, verify_label
from tests.conftest import ISSUER
from tests.factories import audit_entries
from tests.gateway.labels import media
from tests.gateway.labels.conftest import CONTEXT, MEDIA, gateway_jwks, label_with

JSON_ANSWER = b'{"received": 123}'


def test_a_format_the_gateway_cannot_label_is_refused_by_default(app: Flask) -> None:
    with pytest.raises(LabelUnsupported, match="sent as 'application/json'") as refused:
        label_with(app, JSON_ANSWER, content_type="application/json")
    assert refused.value.code == "label_unsupported"
    assert audit_entries(app, "output.unlabelled") == []


def test_configuration_can_let_it_pass_unlabelled_with_an_audit_entry(configured: Callable[..., Flask]) -> None:
    app = configured(LABEL_UNSUPPORTED="pass")
    assert label_with(app, JSON_ANSWER, content_type="application/json") == JSON_ANSWER
    [entry] = audit_entries(app, "output.unlabelled")
    assert entry["decision_id"] == CONTEXT.decision_id
    assert entry["client_id"] == CONTEXT.client_id
    assert entry["reason"] == "label_unsupported"
    assert entry["content_type"] == "application/json"


def test_an_app_allowed_unmarked_output_gets_the_label_without_the_mark_and_each_is_audited(
    configured: Callable[..., Flask]
) -> None:
    app = configured(LABEL_UNMARKED_CLIENTS=[CONTEXT.client_id])
    original = media.png()
    labelled = label_with(app, original)
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).decision_id == CONTEXT.decision_id
    # Not re-encoded, not marked: the pixels are the upstream's.
    assert Image.open(io.BytesIO(labelled)).tobytes() == Image.open(io.BytesIO(original)).tobytes()
    label_with(app, original)
    entries = audit_entries(app, "output.unmarked")
    assert [e["reason"] for e in entries] == ["mark_waived", "mark_waived"]
    assert entries[0]["container"] == "png"

    other = CONTEXT.__class__(**{**CONTEXT.__dict__, "client_id": "cli_SomeoneElse"})
    marked = label_with(app, original, other)
    assert Image.open(io.BytesIO(marked)).tobytes() != Image.open(io.BytesIO(original)).tobytes()
    assert len(audit_entries(app, "output.unmarked")) == 2


@pytest.mark.parametrize("name", ["m4a", "mp4"])
def test_formats_without_an_explicit_mark_are_labelled_and_audited(app: Flask, name: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    maker, container = MEDIA[name]
    original = maker()
    with caplog.at_level(logging.WARNING, logger="gateway.labels.transform"):
        labelled = label_with(app, original)
    # "Never unmarked silently" (docs/LABELS.md): audited and logged.
    assert any("without the explicit mark" in record.getMessage() for record in caplog.records)
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).container == container
    [entry] = audit_entries(app, "output.unmarked")
    assert entry["reason"] == "mark_unsupported"
    assert entry["container"] == container
    assert "LABEL_VIDEO_MARK_SECONDS is 0" in entry["detail"]  # video marks are off unless configured


def _float_wav() -> tuple[bytes, bytes]:
    import struct

    samples = struct.pack("<800f", *([0.25, -0.25] * 400))
    fmt = struct.pack("<HHIIHH", 3, 1, 8000, 32000, 4, 32)  # WAVE_FORMAT_IEEE_FLOAT, mono, 32-bit
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body, samples


@pytest.mark.parametrize("name", ["mp3", "float-wav", "mp4"])
def test_without_pyav_audio_and_video_get_the_label_without_the_mark_and_are_audited(
    configured: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    app = configured(LABEL_VIDEO_MARK_SECONDS=2)
    original, samples = _float_wav() if name == "float-wav" else (MEDIA[name][0](), b"")
    real = _optional.importlib.import_module

    def without_av(module: str, *args: Any) -> Any:
        if module.split(".", maxsplit=1)[0] == "av":
            raise ImportError("No module named 'av'")
        return real(module, *args)

    monkeypatch.setattr(_optional.importlib, "import_module", without_av)
    labelled = label_with(app, original)
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).decision_id == CONTEXT.decision_id
    assert samples in labelled  # as they were: no cue in front
    [entry] = audit_entries(app, "output.unmarked")
    assert entry["reason"] == "mark_unsupported"
    assert "av is not installed" in entry["detail"]


@pytest.mark.parametrize("missing", ["PIL", "mutagen"])
def test_without_the_labels_extra_the_output_is_refused(app: Flask, monkeypatch: pytest.MonkeyPatch,
                                                       missing: str) -> None:
    real = _optional.importlib.import_module

    def without(name: str, *args: Any) -> Any:
        if name.split(".", maxsplit=1)[0] == missing:
            raise ImportError(f"No module named {name!r}")
        return real(name, *args)

    monkeypatch.setattr(_optional.importlib, "import_module", without)
    data = media.png() if missing == "PIL" else media.wav()
    with pytest.raises(LabelUnavailable, match=r"\[labels\] extra") as refused:
        label_with(app, data)
    assert refused.value.code == "label_unavailable"


def test_without_the_extra_configuration_can_still_let_outputs_pass(
    configured: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = configured(LABEL_UNSUPPORTED="pass")
    real = _optional.importlib.import_module
    monkeypatch.setattr(_optional.importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ImportError(name)) if name == "mutagen" else real(name))
    original = media.wav()
    assert label_with(app, original) == original
    [entry] = audit_entries(app, "output.unlabelled")
    assert entry["reason"] == "label_unavailable"


@pytest.mark.parametrize(("key", "value"), [
    ("LABEL_UNSUPPORTED", "allow"),
    ("LABEL_MARK_CORNER", "centre"),
    ("LABEL_AUDIO_CUE_SECONDS", 0),
    ("LABEL_MARK_FONT", "/nonexistent/font.ttc"),
])
def test_unsafe_or_wrong_configuration_stops_the_gateway(configured: Callable[..., Flask], key: str,
                                                        value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        configured(**{key: value})


def test_the_producer_is_configurable(configured: Callable[..., Flask]) -> None:
    app = configured(LABEL_PRODUCER="91110000MA00000000")
    label = read_label(io.BytesIO(label_with(app, media.png())))
    assert label.fields is not None
    assert label.fields["ContentProducer"] == "91110000MA00000000"
