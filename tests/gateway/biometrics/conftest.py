"""Real photos (tests/data/faces, see its README) and videos made from them with PyAV."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

FACES = Path(__file__).resolve().parents[2] / "data" / "faces"


def photo_bytes(name: str) -> bytes:
    return (FACES / f"{name}.jpg").read_bytes()


@pytest.fixture
def photo() -> Callable[[str], bytes]:
    """``photo("obama_1")``: the bytes of a labelled test photo (file name = person_n)."""
    return photo_bytes


def slideshow(names: Sequence[str], *, seconds_each: float = 1.0, fps: int = 10,
              size: tuple[int, int] = (1280, 720)) -> bytes:
    """An H.264 MP4 showing each photo, letterboxed into ``size``, for ``seconds_each``."""
    av = pytest.importorskip("av")
    from PIL import Image

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for name in names:
            with Image.open(io.BytesIO(photo_bytes(name))) as opened:
                picture = opened.convert("RGB")
            picture.thumbnail(size)
            canvas = Image.new("RGB", size, (20, 20, 20))
            canvas.paste(picture, ((size[0] - picture.width) // 2, (size[1] - picture.height) // 2))
            frame = av.VideoFrame.from_image(canvas)
            for _ in range(round(seconds_each * fps)):
                output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


@pytest.fixture
def video_of() -> Callable[..., bytes]:
    return slideshow
