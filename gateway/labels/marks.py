"""Explicit marks (GB 45438-2025 §4): what a person sees or hears, beside the implicit label.

* Images (PNG, JPEG): the text "AI生成 / AI-generated" on a dark box in a configured corner, its text
  height at least 5 % of the image's shorter side (the standard's minimum), in a CJK font from the
  system (Debian's ``fonts-wqy-zenhei`` or ``fonts-noto-cjk``). Without one, "AI-generated" alone is
  drawn, in Pillow's own font, and the gateway says so in its log at start.
* WAV (PCM): a short tone (1 kHz, -12 dBFS, faded in and out) before the first sample.

Both rewrite the media, so they run before the implicit label is written and signed. Video frames and
MP3 (or non-PCM WAV) audio get the same mark and the same tone through FFmpeg (gateway.labels.av_marks).
"""

from __future__ import annotations

import array
import logging
import math
import os
import re
import sys
import warnings
import wave
import zlib
from dataclasses import dataclass
from typing import IO, Any

from gateway.labels._optional import import_optional
from gateway.labels.errors import LabelRefused

log = logging.getLogger(__name__)

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
MARK_TEXT = ("AI生成", "AI-generated")
MARK_TEXT_LATIN = ("AI-generated",)
# GB 45438-2025 4.2: the text of an image's explicit label is at least 5 % of its shorter side high.
MIN_TEXT_SHARE = 0.05
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
CUE_FREQUENCY = 1000.0
CUE_LEVEL = 0.25  # -12 dBFS
_CUE_FADE_SECONDS = 0.005
_FRAMES_PER_COPY = 64 * 1024
# zlib run-length strategy at level 1: on a 5 MB photo 30 % faster than the default strategy at level 3
# and 5 % smaller (filtered photo rows are short repeats, not long matches); on noise, 30 % faster and
# as large (docs/PERFORMANCE.md, "Output labels").
_PNG_COMPRESS_LEVEL = 1
_PNG_COMPRESS_TYPE = zlib.Z_RLE
_JPEG_QUALITY = 95


@dataclass(frozen=True)
class ImageMark:
    """Where the mark goes and the font it is written in (None: no CJK font, "AI-generated" only)."""

    corner: str = "bottom-right"
    font_path: str | None = None

    @property
    def lines(self) -> tuple[str, ...]:
        return MARK_TEXT if self.font_path else MARK_TEXT_LATIN


def find_cjk_font(configured: str = "") -> str | None:
    """The configured font file, else the first CJK font of :data:`FONT_CANDIDATES` that exists."""
    if configured:
        return configured if os.path.isfile(configured) else None
    return next((path for path in FONT_CANDIDATES if os.path.isfile(path)), None)


def mark_image(media: IO[bytes], container: str, out: IO[bytes], *, mark: ImageMark, max_pixels: int) -> None:
    """Draw the mark on the PNG or JPEG ``media`` and write the result, same format, to ``out``."""
    image_module: Any = import_optional("PIL.Image")
    ops: Any = import_optional("PIL.ImageOps")
    media.seek(0)
    try:
        with warnings.catch_warnings():
            # Pillow only warns about very large images; the refusal must not depend on warning filters.
            warnings.simplefilter("error", image_module.DecompressionBombWarning)
            with image_module.open(media) as opened:
                if opened.width * opened.height > max_pixels:
                    raise LabelRefused(f"images of at most {max_pixels} pixels are labelled "
                                       f"(CONSENT_GATEWAY_LABEL_MAX_IMAGE_PIXELS); this one has "
                                       f"{opened.width * opened.height}")
                # The mark goes in the corner as the image is shown, so Exif orientation is applied first;
                # in place, so the pixels are decoded once and not copied.
                ops.exif_transpose(opened, in_place=True)
                opened.load()
                upright = opened
    except LabelRefused:
        raise
    except (OSError, ValueError, SyntaxError, image_module.DecompressionBombWarning,
            image_module.DecompressionBombError) as exc:
        # Pillow names the file object it was given ("<SpooledTemporaryFile object at 0x…>"): not for the app.
        reason = re.sub(r"\s*<[^<>]* at 0x[0-9a-f]+>", "", str(exc))
        raise LabelRefused(f"the {container} output cannot be read as an image: {reason}") from exc
    has_alpha = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    keep_alpha = has_alpha and container == "png"
    wanted = "RGBA" if keep_alpha else "RGB"
    canvas = upright if upright.mode == wanted else upright.convert(wanted)
    canvas.info = dict(upright.info)
    _draw(canvas, mark)
    if container == "png":
        canvas.save(out, "PNG", compress_level=_PNG_COMPRESS_LEVEL, compress_type=_PNG_COMPRESS_TYPE)
    else:
        exif = canvas.getexif()
        canvas.save(out, "JPEG", quality=_JPEG_QUALITY, icc_profile=canvas.info.get("icc_profile"),
                    exif=exif.tobytes() if len(exif) else b"")


def mark_box(width: int, height: int, mark: ImageMark) -> tuple[tuple[int, int, int, int], int]:
    """Where the mark's box goes, and the font size: for tests and the docs as much as for drawing."""
    box, size, _lines = _layout(width, height, mark)
    return box, size


def _layout(width: int, height: int, mark: ImageMark) -> tuple[tuple[int, int, int, int], int, list[str]]:
    font_module: Any = import_optional("PIL.ImageFont")
    target = max(1, math.ceil(MIN_TEXT_SHARE * min(width, height)))
    # Text height is measured on the glyphs without descenders: the CJK glyphs, or the capitals "AI".
    reference = mark.lines[0] if mark.font_path else "AI"
    size = 8
    for _ in range(64):
        font = _font(font_module, mark, size)
        _left, top, _right, bottom = font.getbbox(reference)
        if bottom - top >= target:
            break
        size = max(size + 1, math.ceil(size * target / max(1, bottom - top)))
    margin = max(2, round(0.02 * min(width, height)))
    pad = max(2, round(0.4 * target))
    one_line = " / ".join(mark.lines)
    lines = [one_line] if _text_width(font, one_line) + 2 * pad + 2 * margin <= width else list(mark.lines)
    text_width = max(_text_width(font, line) for line in lines)
    line_height = _line_height(font, lines)
    gap = round(0.3 * target)
    box_width = text_width + 2 * pad
    box_height = len(lines) * line_height + (len(lines) - 1) * gap + 2 * pad
    x = margin if mark.corner.endswith("left") else width - margin - box_width
    y = margin if mark.corner.startswith("top") else height - margin - box_height
    return (max(0, x), max(0, y), min(width, x + box_width), min(height, y + box_height)), size, lines


def draw_mark(canvas: Any, mark: ImageMark) -> None:
    """Draw the mark on the PIL image ``canvas`` (RGB or RGBA), in place: a video frame, say."""
    _draw(canvas, mark)


def _draw(canvas: Any, mark: ImageMark) -> None:
    draw_module: Any = import_optional("PIL.ImageDraw")
    font_module: Any = import_optional("PIL.ImageFont")
    image_module: Any = import_optional("PIL.Image")
    box, size, lines = _layout(canvas.width, canvas.height, mark)
    font = _font(font_module, mark, size)
    target = max(1, math.ceil(MIN_TEXT_SHARE * min(canvas.width, canvas.height)))
    pad, gap, line_height = max(2, round(0.4 * target)), round(0.3 * target), _line_height(font, lines)
    # Only the box's region is composited, so a large image is not copied whole for a small mark.
    region = canvas.crop(box).convert("RGBA")
    overlay = image_module.new("RGBA", region.size, (0, 0, 0, 0))
    draw = draw_module.Draw(overlay)
    draw.rectangle((0, 0, region.width - 1, region.height - 1), fill=(0, 0, 0, 220))
    top_of_text = min(font.getbbox(line)[1] for line in lines)
    for index, line in enumerate(lines):
        left = font.getbbox(line)[0]
        draw.text((pad - left, pad - top_of_text + index * (line_height + gap)), line, font=font,
                  fill=(255, 255, 255, 255))
    region.alpha_composite(overlay)
    canvas.paste(region if canvas.mode == "RGBA" else region.convert(canvas.mode), box[:2])


def _font(font_module: Any, mark: ImageMark, size: int) -> Any:
    if mark.font_path:
        return font_module.truetype(mark.font_path, size)
    return font_module.load_default(size=size)


def _text_width(font: Any, text: str) -> int:
    left, _top, right, _bottom = font.getbbox(text)
    return int(right - left)


def _line_height(font: Any, lines: list[str]) -> int:
    tops, bottoms = zip(*((font.getbbox(line)[1], font.getbbox(line)[3]) for line in lines), strict=True)
    return int(max(bottoms) - min(tops))


# --- audio --------------------------------------------------------------------------------------


def is_pcm_wav(media: IO[bytes]) -> bool:
    """Whether ``media`` is a WAV file of integer PCM samples, the kind :func:`cue_wav` can extend."""
    media.seek(0)
    try:
        with wave.open(media, "rb") as reader:
            return reader.getsampwidth() in (1, 2, 3, 4)
    except (wave.Error, EOFError):
        return False
    finally:
        media.seek(0)


def cue_wav(media: IO[bytes], out: IO[bytes], *, seconds: float) -> None:
    """Write ``media`` (PCM WAV) to ``out`` with a tone of ``seconds`` before its first sample.

    Only the format and the samples are kept: other chunks (LIST, an upstream's ID3) are not copied.
    """
    media.seek(0)
    try:
        with wave.open(media, "rb") as reader:
            params = reader.getparams()
            with wave.open(out, "wb") as writer:
                writer.setparams(params)
                writer.writeframes(_tone(params.framerate, params.nchannels, params.sampwidth, seconds))
                while frames := reader.readframes(_FRAMES_PER_COPY):
                    writer.writeframes(frames)
    except (wave.Error, EOFError) as exc:
        raise LabelRefused(f"the WAV output cannot be read to add the audible mark ({exc})") from exc


def cue_samples(rate: int, channels: int, seconds: float) -> bytes:
    """The cue of :func:`cue_wav` as 16-bit signed samples in native byte order, channels interleaved."""
    samples = array.array("h", _tone(rate, channels, 2, seconds))
    if sys.byteorder == "big":  # _tone writes little-endian, as WAV stores it
        samples.byteswap()
    return samples.tobytes()


def _tone(rate: int, channels: int, width: int, seconds: float) -> bytes:
    count = max(1, round(rate * seconds))
    frequency = min(CUE_FREQUENCY, rate / 4)
    fade = max(1, round(rate * _CUE_FADE_SECONDS))
    peak = 2 ** (8 * width - 1) - 1
    values = []
    for i in range(count):
        envelope = min(1.0, i / fade, (count - 1 - i) / fade)
        values.append(round(CUE_LEVEL * peak * envelope * math.sin(2 * math.pi * frequency * i / rate)))
    if width == 1:  # 8-bit WAV is unsigned
        return bytes(v + 128 for v in values for _ in range(channels))
    if width in (2, 4):
        samples = array.array("h" if width == 2 else "i", (v for v in values for _ in range(channels)))
        if sys.byteorder == "big":
            samples.byteswap()
        return samples.tobytes()
    return b"".join(v.to_bytes(width, "little", signed=True) for v in values for _ in range(channels))
