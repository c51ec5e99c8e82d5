"""Explicit marks: the visible image mark (size, place, pixels) and the audible cue before WAV audio."""

from __future__ import annotations

import array
import io
import math
import wave
from collections.abc import Callable

import pytest
from flask import Flask
from PIL import Image, ImageFont

from gateway.labels import marks
from tests.gateway.labels import media
from tests.gateway.labels.conftest import label_with

CJK_FONT = marks.find_cjk_font()
needs_cjk_font = pytest.mark.skipif(CJK_FONT is None, reason="no CJK font (Debian: apt-get install fonts-wqy-zenhei)")


def _blank(size: tuple[int, int], fmt: str = "PNG", colour: tuple[int, ...] = (255, 255, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB" if len(colour) == 3 else "RGBA", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def _dark_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    return image.convert("L").point(lambda v: 255 if v < 60 else 0).getbbox()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_the_mark_is_drawn_in_the_configured_corner(configured: Callable[..., Flask], fmt: str) -> None:
    for corner in marks.CORNERS:
        app = configured(LABEL_MARK_CORNER=corner)
        labelled = label_with(app, _blank((400, 300), fmt))
        image = Image.open(io.BytesIO(labelled)).convert("RGB")
        box = _dark_box(image)
        assert box is not None, corner
        left, top, _right, _bottom = box
        assert (left < 200) == corner.endswith("left")
        assert (top < 150) == corner.startswith("top")
        # White text on the dark box: the mark is legible, not just a rectangle.
        region = image.crop(box).convert("L")
        assert region.getextrema()[1] > 200
        assert image.getpixel((200, 150)) == pytest.approx((255, 255, 255), abs=3)  # the rest untouched


@needs_cjk_font
def test_the_text_is_at_least_five_per_cent_of_the_shorter_side_and_bilingual(app: Flask) -> None:
    for width, height in [(400, 300), (300, 1000), (1600, 900), (64, 64)]:
        mark = marks.ImageMark(font_path=CJK_FONT)
        assert mark.lines == ("AI生成", "AI-generated")
        _box, size = marks.mark_box(width, height, mark)
        font = ImageFont.truetype(CJK_FONT, size)
        _left, top, _right, bottom = font.getbbox("AI生成")
        assert bottom - top >= 0.05 * min(width, height), (width, height)


def test_without_a_cjk_font_the_mark_still_says_ai_generated() -> None:
    mark = marks.ImageMark(font_path=None)
    assert mark.lines == ("AI-generated",)
    out = io.BytesIO()
    marks.mark_image(io.BytesIO(_blank((300, 200))), "png", out, mark=mark, max_pixels=10**8)
    box = _dark_box(Image.open(io.BytesIO(out.getvalue())))
    assert box is not None
    _box, size = marks.mark_box(300, 200, mark)
    _left, top, _right, bottom = ImageFont.load_default(size=size).getbbox("AI")
    assert bottom - top >= 0.05 * 200


@pytest.mark.parametrize("size", [(64, 400), (400, 64), (64, 64), (1200, 900)])
def test_the_mark_box_always_lies_wholly_inside_the_image(app: Flask, size: tuple[int, int]) -> None:
    # Moved here from the demo upstream's tests, which drew their own label before the gateway did.
    labelled = label_with(app, _blank(size))
    image = Image.open(io.BytesIO(labelled))
    box = _dark_box(image)
    assert box is not None
    left, top, right, bottom = box
    assert left > 0
    assert right < image.width
    assert top > image.height // 2
    assert bottom < image.height


def test_a_transparent_png_keeps_its_alpha_and_an_upright_jpeg_is_marked_as_shown(app: Flask) -> None:
    labelled = label_with(app, _blank((300, 200), colour=(10, 200, 10, 0)))
    image = Image.open(io.BytesIO(labelled))
    assert image.mode == "RGBA"
    assert image.getpixel((150, 100))[3] == 0
    assert image.getpixel((image.width - 10, image.height - 10))[3] > 150  # the mark's box is opaque enough

    # A portrait stored sideways (Exif orientation 6): the mark lands bottom-right as a viewer shows it.
    sideways = Image.new("RGB", (400, 300), (255, 255, 255))
    exif = sideways.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    sideways.save(buffer, "JPEG", exif=exif.tobytes())
    shown = Image.open(io.BytesIO(label_with(app, buffer.getvalue())))
    assert shown.size == (300, 400)
    assert shown.getexif().get(0x0112) in (None, 1)
    box = _dark_box(shown)
    assert box is not None
    assert box[2] > 150
    assert box[3] > 200


def test_images_beyond_the_pixel_limit_are_refused(configured: Callable[..., Flask]) -> None:
    from gateway.labels.errors import LabelRefused

    app = configured(LABEL_MAX_IMAGE_PIXELS=100 * 100)
    with pytest.raises(LabelRefused, match="at most 10000 pixels"):
        label_with(app, _blank((101, 100)))


# --- audio ---------------------------------------------------------------------------------------


def _power(samples: list[int], rate: int, frequency: float) -> float:
    coefficient = 2 * math.cos(2 * math.pi * frequency / rate)
    previous = before = 0.0
    for sample in samples:
        previous, before = sample + coefficient * previous - before, previous
    return (previous**2 + before**2 - coefficient * previous * before) / max(1, len(samples)) ** 2


def _channel(data: bytes) -> tuple[list[int], int, int]:
    with wave.open(io.BytesIO(data)) as reader:
        rate, channels, width = reader.getframerate(), reader.getnchannels(), reader.getsampwidth()
        samples = array.array({1: "B", 2: "h", 4: "i"}[width], reader.readframes(reader.getnframes()))
    return [s - (128 if width == 1 else 0) for s in samples[::channels]], rate, channels


@pytest.mark.parametrize(("width", "channels"), [(2, 1), (1, 2), (4, 1)])
def test_wav_output_starts_with_the_audible_cue_then_the_edit(app: Flask, width: int, channels: int) -> None:
    original = media.wav(frequency=220, rate=16000, seconds=1.0, width=width, channels=channels)
    labelled = label_with(app, original)
    samples, rate, got_channels = _channel(labelled)
    assert got_channels == channels
    cue = round(0.3 * rate)
    assert len(samples) == cue + rate  # 0.3 s longer, nothing of the edit lost
    head, rest = samples[:cue], samples[cue:]
    assert _power(head, rate, 1000) > 100 * _power(head, rate, 220)
    assert _power(rest, rate, 220) > 100 * _power(rest, rate, 1000)
    assert rest == _channel(original)[0]


def test_the_cue_length_is_configurable(configured: Callable[..., Flask]) -> None:
    app = configured(LABEL_AUDIO_CUE_SECONDS=1.0)
    samples, rate, _channels = _channel(label_with(app, media.wav(rate=8000, seconds=0.5)))
    assert len(samples) == round(1.5 * rate)


def test_an_output_decompression_bomb_is_refused_before_it_is_decoded(app: Flask) -> None:
    """A small PNG that declares 64 megapixels: refused from its header (LABEL_MAX_IMAGE_PIXELS), never inflated."""
    import resource
    import struct
    import zlib

    from gateway.labels.errors import LabelRefused

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    side = 8_000
    deflate = zlib.compressobj(9)
    rows = b"".join(deflate.compress(bytes(side + 1)) for _ in range(side)) + deflate.flush()
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    assert len(bomb) < 1024 * 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(LabelRefused, match="at most 50000000 pixels") as refused:
        label_with(app, bomb)
    assert refused.value.code == "label_failed"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100 * 1024  # KiB: nothing inflated


def test_an_unreadable_image_is_refused_without_naming_our_objects(app: Flask) -> None:
    from gateway.labels.errors import LabelRefused

    with pytest.raises(LabelRefused, match="cannot be read as an image") as refused:
        label_with(app, b"\x89PNG\r\n\x1a\nGARBAGE" * 4)
    assert refused.value.code == "label_failed"
    # The detail reaches the app: no "<tempfile.SpooledTemporaryFile object at 0x…>" in it.
    assert " at 0x" not in str(refused.value)
    assert "object" not in str(refused.value)
