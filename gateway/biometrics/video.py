"""Faces in a video: PyAV decodes it and a frame every so often goes through the still-image engine.

PyAV (FFmpeg inside the wheel) comes from the ``[face]`` extra and is imported lazily, like dlib.
"""

from __future__ import annotations

import importlib
import os
from typing import IO, Any, ClassVar

from gateway.biometrics import faces
from gateway.biometrics.faces import BiometricsUnavailable, Face
from gateway.core.errors import GatewayError


class UnreadableVideo(GatewayError, ValueError):
    """The input is not a video PyAV can decode, or it has no video stream."""

    code: ClassVar[str] = "unreadable_video"


def _av() -> Any:
    try:
        return importlib.import_module("av")
    except ImportError as exc:
        raise BiometricsUnavailable("PyAV is not installed, so faces in videos cannot be matched; install the "
                                    "gateway with its [face] extra") from exc


def faces_in_video(path_or_file: str | os.PathLike[str] | IO[bytes], *, every_seconds: float = 0.5,
                   max_frames: int = 120, max_side: int = 1024) -> list[tuple[float, list[Face]]]:
    """The faces in frames sampled every ``every_seconds``: (timestamp in seconds, faces), in time order.

    At most ``max_frames`` frames are analysed, so the work has a bound whatever the upload. When the
    container states its duration, the interval widens so that those frames span the whole video rather
    than its first minute: an edit may put someone else's face anywhere in it.
    """
    if every_seconds <= 0 or max_frames < 1:
        raise ValueError("every_seconds must be positive and max_frames at least 1")
    av = _av()
    faces.load()  # BiometricsUnavailable before any decoding work
    samples: list[tuple[float, list[Face]]] = []
    try:
        with av.open(path_or_file, mode="r") as container:
            if not container.streams.video:
                raise UnreadableVideo("the file has no video stream")
            stream = container.streams.video[0]
            interval = every_seconds
            duration = _duration(av, container, stream)
            if duration is not None:
                interval = max(every_seconds, duration / max_frames)
            next_at = 0.0
            for index, frame in enumerate(container.decode(stream)):
                at = _seconds(frame, stream, index)
                if at + 1e-6 < next_at:
                    continue
                samples.append((round(at, 3), _faces_in_frame(frame, max_side)))
                if len(samples) >= max_frames:
                    break
                while next_at <= at + 1e-6:
                    next_at += interval
    except av.error.FFmpegError as exc:
        raise UnreadableVideo(f"the video cannot be decoded ({exc})") from exc
    if not samples:
        raise UnreadableVideo("the video has no frame that can be decoded")
    return samples


def _duration(av: Any, container: Any, stream: Any) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return float(container.duration / av.time_base)
    return None


def _seconds(frame: Any, stream: Any, index: int) -> float:
    if frame.time is not None:
        return max(0.0, float(frame.time))
    # Streams without timestamps (some raw or broken containers): count frames at the stated rate.
    rate = stream.average_rate or stream.guessed_rate
    return index / float(rate) if rate else float(index)


def _faces_in_frame(frame: Any, max_side: int) -> list[Face]:
    shrink = min(1.0, max_side / max(frame.width, frame.height))
    # swscale scales and converts to RGB in one pass, cheaper than a full-size RGB frame then Pillow.
    width, height = max(1, round(frame.width * shrink)), max(1, round(frame.height * shrink))
    pixels = frame.to_ndarray(format="rgb24", width=width, height=height)
    # Phone videos are stored sideways with a display rotation; HOG only finds upright faces.
    turns = round(getattr(frame, "rotation", 0) / 90) % 4
    if turns:
        pixels = _np().ascontiguousarray(_np().rot90(pixels, turns))
    return faces.faces_in_pixels(pixels, scale=1 / shrink)


def _np() -> Any:
    return importlib.import_module("numpy")
