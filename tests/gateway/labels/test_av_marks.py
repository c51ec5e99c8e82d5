"""Explicit marks made with FFmpeg: the visible mark on a video's first seconds, the cue before MP3 and float WAV.

Real files in, and the outputs read back by other readers than the writer's: PyAV decodes the frames and
the audio, mutagen and ffprobe read the label, the gateway's verifier checks it.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image

from gateway.core.config import ConfigError
from gateway.labels import av_marks, marks
from gateway.labels.transform import policy_of
from gateway.labels.verifier import MP4_FREEFORM_MEAN, verify_label
from tests.conftest import ISSUER
from tests.factories import audit_entries
from tests.gateway.labels import media
from tests.gateway.labels.conftest import CONTEXT, gateway_jwks, label_with

av = pytest.importorskip("av", reason="PyAV (the [labels] extra) makes and reads the media")
np = pytest.importorskip("numpy", reason="numpy (the dev extra) measures the pixels and the cue")
mutagen_mp4 = pytest.importorskip("mutagen.mp4")
mutagen_id3 = pytest.importorskip("mutagen.id3")

CHUNK = 64 * 1024
MARK_SECONDS = 2
# A corner that the codec merely re-encoded differs by a few levels; one with the mark by a hundred or so.
CODEC_NOISE = 6.0
MARKED = 40.0


def _frames(data: bytes) -> list[tuple[float, Any]]:
    """Every frame as (seconds from the first, RGB array), in the order shown."""
    with av.open(io.BytesIO(data)) as container:
        frames = [(float(frame.time), frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]
    first = frames[0][0]
    return [(at - first, pixels) for at, pixels in frames]


def _streams(data: bytes) -> dict[str, Any]:
    with av.open(io.BytesIO(data)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        return {
            "video": (video.codec_context.name, video.codec_context.width, video.codec_context.height,
                      video.average_rate, video.frames, float(video.duration * video.time_base)),
            "audio": (audio.codec_context.name, audio.codec_context.sample_rate, audio.frames,
                      float(audio.duration * audio.time_base)),
            "audio_packets": [bytes(packet) for packet in container.demux(audio) if packet.size],
        }


def _mark_region(app: Flask, width: int, height: int) -> tuple[int, int, int, int]:
    box, _size = marks.mark_box(width, height, policy_of(app).mark)
    return box


def _difference(a: Any, b: Any, box: tuple[int, int, int, int]) -> float:
    left, top, right, bottom = box
    region = (slice(top, bottom), slice(left, right))
    return float(np.abs(a[region].astype(int) - b[region].astype(int)).mean())


@pytest.mark.parametrize("corner", ["bottom-right", "top-left"])
def test_the_first_two_seconds_of_a_video_carry_the_mark_and_the_rest_is_as_it_was(
    configured: Callable[..., Flask], corner: str
) -> None:
    app = configured(LABEL_VIDEO_MARK_SECONDS=MARK_SECONDS, LABEL_MARK_CORNER=corner)
    original = media.clip(seconds=4, size=(320, 240))
    labelled = label_with(app, original, chunk=CHUNK)

    before, after = _frames(original), _frames(labelled)
    assert len(after) == len(before) == 100
    box = _mark_region(app, 320, 240)
    away = (0, 0, 100, 80) if corner == "bottom-right" else (220, 160, 320, 240)
    for (at, source), (shown_at, marked) in zip(before, after, strict=True):
        assert shown_at == pytest.approx(at, abs=1e-6)  # same time stamps, so the same frame rate
        if at < MARK_SECONDS:
            assert _difference(source, marked, box) > MARKED, at
            region = marked[box[1]:box[3], box[0]:box[2]].mean(axis=2)
            assert (region < 60).mean() > 0.5, at  # the dark box...
            assert region.max() > 200, at  # ...with white text on it
        else:
            assert _difference(source, marked, box) < CODEC_NOISE, at
        assert _difference(source, marked, away) < CODEC_NOISE, at  # the rest: codec noise only

    found, expected = _streams(labelled), _streams(original)
    assert found["video"][:5] == expected["video"][:5]  # codec (H.264 again), size, rate, frame count
    assert found["video"][5] == pytest.approx(expected["video"][5], abs=0.05)
    assert found["audio"] == expected["audio"]
    assert found["audio_packets"] == expected["audio_packets"]  # copied, not encoded again
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).container == "mp4"
    assert audit_entries(app, "output.unmarked") == []


def test_the_label_of_a_marked_video_is_read_back_by_mutagen_and_ffprobe(
    configured: Callable[..., Flask], tmp_path: Path
) -> None:
    app = configured(LABEL_VIDEO_MARK_SECONDS=MARK_SECONDS)
    labelled = label_with(app, media.clip(seconds=3), chunk=CHUNK)
    path = tmp_path / "marked.mp4"
    path.write_bytes(labelled)

    tags = mutagen_mp4.MP4(str(path)).tags
    value = bytes(tags[f"----:{MP4_FREEFORM_MEAN}:AIGC"][0]).decode("utf-8")
    assert json.loads(value)["ProduceID"] == CONTEXT.decision_id
    if shutil.which("ffprobe") is None:
        pytest.skip("ffprobe is not installed (Debian: apt-get install -y ffmpeg)")
    probed = json.loads(subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_format", str(path)],
                                       capture_output=True, check=True).stdout)
    assert probed["format"]["tags"]["AIGC"] == value
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).decision_id == CONTEXT.decision_id


def test_a_rotated_video_keeps_its_rotation_and_the_mark_is_in_the_corner_as_shown(
    configured: Callable[..., Flask]
) -> None:
    app = configured(LABEL_VIDEO_MARK_SECONDS=MARK_SECONDS, LABEL_MARK_CORNER="bottom-right")
    labelled = label_with(app, media.clip(seconds=2, rotation=90), chunk=CHUNK)
    with av.open(io.BytesIO(labelled)) as container:
        frame = next(container.decode(video=0))
        assert frame.rotation == 90
        # As a player shows it: turned 90° counter-clockwise, so 240 wide and 320 high.
        shown = frame.to_image().transpose(Image.Transpose.ROTATE_90)
    assert shown.size == (240, 320)
    dark = shown.convert("L").point(lambda v: 255 if v < 40 else 0).getbbox()
    assert dark is not None
    assert dark[0] > 120  # the bottom-right of the picture as shown
    assert dark[1] > 160
    assert dark[2:] == pytest.approx(_mark_region(app, 240, 320)[2:], abs=2)


def test_video_without_a_video_stream_gets_the_label_and_an_audit_entry(configured: Callable[..., Flask]) -> None:
    app = configured(LABEL_VIDEO_MARK_SECONDS=MARK_SECONDS)
    original = media.m4a()
    labelled = label_with(app, original, chunk=CHUNK)
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).container == "mp4"
    [entry] = audit_entries(app, "output.unmarked")
    assert entry["reason"] == "mark_unsupported"
    assert "no video stream" in entry["detail"]


def test_without_an_encoder_the_video_goes_as_it_was_with_the_label_and_an_audit_entry(
    configured: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(av_marks, "_has_encoder", lambda _av, _name: False)
    app = configured(LABEL_VIDEO_MARK_SECONDS=MARK_SECONDS)
    original = media.clip(seconds=2)
    labelled = label_with(app, original, chunk=CHUNK)
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).container == "mp4"
    assert _streams(labelled)["audio_packets"] == _streams(original)["audio_packets"]
    assert [bytes(p) for p in av.open(io.BytesIO(labelled)).demux(video=0)] == \
        [bytes(p) for p in av.open(io.BytesIO(original)).demux(video=0)]
    [entry] = audit_entries(app, "output.unmarked")
    assert entry["reason"] == "mark_unsupported"
    assert "no video encoder for 'h264'" in entry["detail"]


def test_an_app_allowed_unmarked_output_gets_its_video_as_it_was(configured: Callable[..., Flask]) -> None:
    app = configured(LABEL_VIDEO_MARK_SECONDS=MARK_SECONDS, LABEL_UNMARKED_CLIENTS=[CONTEXT.client_id])
    original = media.clip(seconds=2)
    labelled = label_with(app, original, chunk=CHUNK)
    assert [bytes(p) for p in av.open(io.BytesIO(labelled)).demux(video=0)] == \
        [bytes(p) for p in av.open(io.BytesIO(original)).demux(video=0)]
    [entry] = audit_entries(app, "output.unmarked")
    assert entry["reason"] == "mark_waived"


@pytest.mark.parametrize("seconds", [1, -1, 1.99])
def test_a_video_mark_shorter_than_two_seconds_is_a_configuration_error(
    configured: Callable[..., Flask], seconds: float
) -> None:
    with pytest.raises(ConfigError, match="LABEL_VIDEO_MARK_SECONDS"):
        configured(LABEL_VIDEO_MARK_SECONDS=seconds)


# --- the audible cue ---------------------------------------------------------------------------


def _pcm(data: bytes) -> tuple[Any, int, int, int]:
    """The decoded samples (mono mix, floats), sample rate, channels and bit rate."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        context = stream.codec_context
        samples = np.concatenate([frame.to_ndarray().reshape(context.channels, -1).mean(axis=0)
                                  if frame.format.is_planar else
                                  frame.to_ndarray().reshape(-1, context.channels).mean(axis=1)
                                  for frame in container.decode(stream)])
        return samples.astype(float), context.sample_rate, context.channels, context.bit_rate


def _goertzel(samples: Any, rate: int, frequency: float) -> float:
    """The amplitude of ``frequency`` in ``samples`` (Goertzel's one-bin DFT), 0 to 1 for a full-scale sine."""
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    power = previous * previous + before * before - coefficient * previous * before
    return 2 * math.sqrt(max(power, 0.0)) / len(samples)


def test_mp3_output_starts_with_the_cue_and_keeps_its_format_and_tags(app: Flask) -> None:
    original = io.BytesIO(media.mp3(frequency=440.0))
    tags = mutagen_id3.ID3(original)
    tags.add(mutagen_id3.TIT2(encoding=3, text=["Edited voice"]))
    tags.save(original)
    labelled = label_with(app, original.getvalue(), chunk=CHUNK)

    source, rate, channels, bit_rate = _pcm(original.getvalue())
    cued, cued_rate, cued_channels, cued_bit_rate = _pcm(labelled)
    assert (cued_rate, cued_channels, cued_bit_rate) == (rate, channels, bit_rate)
    cue = round(0.3 * rate)
    assert len(cued) == pytest.approx(len(source) + cue, abs=1152)  # one MP3 frame of encoder padding
    start = cued[round(0.02 * rate):round(0.28 * rate)]  # inside the fades
    assert _goertzel(start, rate, marks.CUE_FREQUENCY) == pytest.approx(marks.CUE_LEVEL, rel=0.15)
    assert _goertzel(start, rate, 440.0) < 0.01
    after = cued[cue + round(0.05 * rate):cue + round(0.3 * rate)]  # the upstream's audio, moved by the cue
    assert _goertzel(after, rate, marks.CUE_FREQUENCY) < 0.01
    assert _goertzel(after, rate, 440.0) > 0.3

    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).container == "mp3"
    read = mutagen_id3.ID3(io.BytesIO(labelled))
    assert json.loads(read["TXXX:AIGC"].text[0])["ProduceID"] == CONTEXT.decision_id
    assert read["TIT2"].text == ["Edited voice"]  # the upstream's own tag is kept
    assert audit_entries(app, "output.unmarked") == []


def test_a_float_wav_gets_the_cue_and_stays_float(app: Flask) -> None:
    rate = 8000
    samples = struct.pack(f"<{rate}f", *(0.5 * math.sin(2 * math.pi * 220 * i / rate) for i in range(rate)))
    fmt = struct.pack("<HHIIHH", 3, 1, rate, 4 * rate, 4, 32)  # WAVE_FORMAT_IEEE_FLOAT, mono, 32-bit
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(samples)) + samples
    labelled = label_with(app, b"RIFF" + struct.pack("<I", len(body)) + body, chunk=CHUNK)

    assert labelled[20:22] == b"\x03\x00"  # still IEEE float
    assert samples in labelled  # the upstream's samples, bit for bit, after the cue
    cued, cued_rate, _channels, _bit_rate = _pcm(labelled)
    assert cued_rate == rate
    assert len(cued) == rate + round(0.3 * rate)
    assert _goertzel(cued[round(0.02 * rate):round(0.28 * rate)], rate, marks.CUE_FREQUENCY) == \
        pytest.approx(marks.CUE_LEVEL, rel=0.05)
    assert verify_label(io.BytesIO(labelled), gateway_jwks(app), issuer=ISSUER).container == "wav"
    assert audit_entries(app, "output.unmarked") == []
