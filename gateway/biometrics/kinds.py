"""What a media part is, decided by its bytes: an image, a video, audio, or nothing the gateway can read.

An app declares each part's type, and an app that wants an unchecked edit declares whatever passes.
The proxy therefore looks at the bytes before it forwards anything: a voice operation gets audio and
nothing that shows a face, and a part that is no readable media at all is refused (fail closed).

Pillow and PyAV (the ``[labels]`` and ``[face]`` extras, which a proxy deployment installs) read the
file when they are installed; without them the first bytes decide, which still tells a picture from
a sound.
"""

from __future__ import annotations

import importlib
import warnings
from enum import StrEnum
from typing import IO, Any


class MediaKind(StrEnum):
    IMAGE = "image"
    VIDEO = "video"  # at least one stream of moving pictures (cover art in an audio file does not count)
    AUDIO = "audio"


_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"BM")
_AUDIO_MAGIC = (b"ID3", b"fLaC", b"OggS")
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B ")
_HEAD = 32


def _looks_like_image(head: bytes) -> bool:
    return head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _looks_like_audio(head: bytes) -> bool:
    """WAV, MP3 (ID3 tag or a bare frame sync), FLAC, Ogg. Only a hint: a video decodes as a video first."""
    return (head.startswith(_AUDIO_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WAVE")
            or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and not head.startswith(b"\xff\xd8")))


def kind_of(file: IO[bytes]) -> MediaKind | None:
    """The kind of media in ``file`` (read from its start, left rewound), or None for anything else."""
    file.seek(0)
    head = file.read(_HEAD)
    file.seek(0)
    try:
        if _looks_like_image(head):
            return MediaKind.IMAGE if _image_opens(file) else None
        av = _optional("av")
        if av is not None:
            return _probed(av, file)
        return _guessed(head)
    finally:
        file.seek(0)


def _image_opens(file: IO[bytes]) -> bool:
    image = _optional("PIL.Image")
    if image is None:
        return True  # the magic number is all there is to go on
    # The structure is checked, the pixels are never decoded here, so only Pillow's hard limit applies
    # (about 179 megapixels, beyond any camera's photo); below it the warning is the decoder's business.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", image.DecompressionBombWarning)
        try:
            with image.open(file) as opened:
                opened.verify()
        except Exception:  # Pillow raises many types for many kinds of broken file
            return False
    return True


def _probed(av: Any, file: IO[bytes]) -> MediaKind | None:
    try:
        with av.open(file, mode="r") as container:
            pictures = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if pictures:
                return MediaKind.VIDEO
            return MediaKind.AUDIO if container.streams.audio else None
    except (av.FFmpegError, ValueError, OSError):
        return None


def _guessed(head: bytes) -> MediaKind | None:
    if _looks_like_audio(head):
        return MediaKind.AUDIO
    if head[4:8] == b"ftyp":
        return MediaKind.AUDIO if head[8:12] in _AUDIO_BRANDS else MediaKind.VIDEO
    if head.startswith(b"\x1a\x45\xdf\xa3") or (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return MediaKind.VIDEO
    return None


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
