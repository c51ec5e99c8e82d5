"""Real, visible media edits for the reference upstream: pure functions from bytes to bytes.

They stand in for a provider's model. There is no face detector here: the "face area" is the
centre-upper disc where a portrait puts the face, which is enough to make every edit plainly visible.
The outputs carry no label of their own: the gateway labels every output it relays (gateway.labels:
the visible "AI生成 / AI-generated" mark and the signed AIGC metadata of GB 45438-2025).
"""

from __future__ import annotations

import array
import io
import math
import sys
import warnings
import wave

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps, UnidentifiedImageError

PNG = "image/png"
WAV = "audio/wav"

# Bounds on the work one request may cause in this single-threaded demo.
MAX_IMAGE_PIXELS = 40_000_000
MIN_IMAGE_SIDE = 64  # the smallest side on which the gateway's mark stays legible
MAX_AUDIO_SAMPLES = 5_000_000  # about a minute of 44.1 kHz mono

_GRAIN_SECONDS = 0.03
# sample width in bytes -> array typecode; 8-bit WAV is unsigned, wider is signed little-endian.
_TYPECODES = {1: "B", 2: "h", 4: "i"}


class UnsupportedMedia(ValueError):
    """The bytes are not an image or WAV file these edits can handle."""

    code = "unsupported_media"


def swap_face(source: bytes, target: bytes, *, opacity: float = 1.0) -> bytes:
    """Paste the face area of ``source`` onto the face area of ``target`` (feathered disc), as PNG."""
    source_image, target_image = _open_image(source), _open_image(target)
    box = _face_box(target_image)
    side = box[2] - box[0]
    face = source_image.crop(_face_box(source_image)).resize((side, side), Image.Resampling.LANCZOS)
    target_image.paste(face, box[:2], _disc_mask(side, opacity))
    return _png(target_image)


def restyle_face(target: bytes) -> bytes:
    """Posterise and over-saturate the face area of ``target``, as PNG."""
    image = _open_image(target)
    box = _face_box(image)
    styled = ImageOps.posterize(ImageEnhance.Color(image.crop(box)).enhance(2.5), 3)
    image.paste(styled, box[:2], _disc_mask(box[2] - box[0], 1.0))
    return _png(image)


def shift_pitch(wav: bytes, semitones: float) -> bytes:
    """Shift the pitch of a PCM WAV file by ``semitones``, keeping its duration and format."""
    try:
        with wave.open(io.BytesIO(wav), "rb") as reader:
            params = reader.getparams()
            frames = reader.readframes(params.nframes)
    except (wave.Error, EOFError) as exc:
        raise UnsupportedMedia(f"not a PCM WAV file: {exc}") from exc
    typecode = _TYPECODES.get(params.sampwidth)
    if typecode is None:
        raise UnsupportedMedia(f"{8 * params.sampwidth}-bit samples are not supported; use 8, 16 or 32-bit PCM")
    samples = array.array(typecode)
    frame_size = params.sampwidth * params.nchannels
    samples.frombytes(frames[: len(frames) - len(frames) % frame_size])
    if len(samples) > MAX_AUDIO_SAMPLES:
        raise UnsupportedMedia(f"at most {MAX_AUDIO_SAMPLES} samples")
    if sys.byteorder == "big":
        samples.byteswap()

    offset = 128 if typecode == "B" else 0
    peak = float(2 ** (8 * params.sampwidth - 1))
    channels = params.nchannels
    grain = max(8, 2 * round(params.framerate * _GRAIN_SECONDS / 2))
    ratio = 2 ** (semitones / 12)
    shifted = [
        _granular_shift([(s - offset) / peak for s in samples[c::channels]], ratio, grain) for c in range(channels)
    ]

    out = array.array(typecode, bytes(len(samples) * params.sampwidth))
    for c, channel in enumerate(shifted):
        out[c::channels] = array.array(typecode, (round(max(-1.0, min(1.0, v)) * (peak - 1)) + offset for v in channel))
    if sys.byteorder == "big":
        out.byteswap()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setparams(params)
        writer.writeframes(out.tobytes())
    return buffer.getvalue()


def _granular_shift(signal: list[float], ratio: float, grain: int) -> list[float]:
    # Hann-windowed grains are read `ratio` times faster than they are written, each starting near
    # where it is written: the pitch moves by `ratio` while the length stays. Each grain's start is
    # nudged (by at most half a grain) to where the input best continues the previous grain (WSOLA);
    # without that, overlapping grains out of phase would cancel each other out.
    hop = grain // 2
    window = [0.5 - 0.5 * math.cos(2 * math.pi * i / grain) for i in range(grain)]  # sums to 1 at 50% overlap
    n = len(signal)
    reach = math.ceil(grain * ratio) + grain  # zero padding: no read can leave the padded signal
    padded = [0.0] * reach + signal + [0.0] * reach
    probes = [round(k * ratio) for k in range(0, hop, max(1, hop // 16))]
    out = [0.0] * n
    read = reach - hop
    for start in range(-hop, n, hop):
        if start > -hop:
            follow = read + round(hop * ratio)
            reference = [(offset, padded[follow + offset]) for offset in probes]
            natural = start + reach
            read = max(
                range(natural - hop, natural + hop + 1),
                key=lambda p: sum(padded[p + offset] * value for offset, value in reference),
            )
        for i in range(max(0, -start), min(grain, n - start)):
            position = read + i * ratio
            j = math.floor(position)
            fraction = position - j
            out[start + i] += window[i] * (padded[j] * (1 - fraction) + padded[j + 1] * fraction)
    return out


def _open_image(data: bytes) -> Image.Image:
    try:
        with warnings.catch_warnings():
            # Pillow only warns about oversized images; a refusal must not depend on warning filters.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise UnsupportedMedia(f"images of at most {MAX_IMAGE_PIXELS} pixels")
                upright = ImageOps.exif_transpose(image).convert("RGB")
    except UnsupportedMedia:
        raise  # our own refusal (a ValueError too) keeps its message
    except (UnidentifiedImageError, OSError, Image.DecompressionBombWarning, Image.DecompressionBombError,
            ValueError) as exc:
        # ValueError: Pillow's refusal of a compressed text chunk that inflates past MAX_TEXT_CHUNK
        # (a zTXt/iTXt decompression bomb); without it the upstream answered 500 instead of 415.
        raise UnsupportedMedia("not an image Pillow can read") from exc
    if min(upright.size) < MIN_IMAGE_SIDE:
        raise UnsupportedMedia(f"images need sides of at least {MIN_IMAGE_SIDE} pixels")
    return upright


def _face_box(image: Image.Image) -> tuple[int, int, int, int]:
    side = min(image.size) // 2
    left = (image.width - side) // 2
    top = max(0, round(image.height * 0.42) - side // 2)
    return left, top, left + side, top + side


def _disc_mask(side: int, opacity: float) -> Image.Image:
    blur = side * 0.04
    # Inset by the blur's reach so the feathered edge fades out inside the square, not at its border.
    inset = math.ceil(2 * blur)
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((inset, inset, side - 1 - inset, side - 1 - inset), fill=round(255 * opacity))
    return mask.filter(ImageFilter.GaussianBlur(blur))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
