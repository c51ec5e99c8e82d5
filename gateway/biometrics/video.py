"""Faces in a video: PyAV decodes it and a frame every so often goes through the still-image engine.

PyAV (FFmpeg inside the wheel) comes from the ``[face]`` extra and is imported lazily, like dlib.
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from typing import IO, Any, ClassVar, TypeVar

from gateway.biometrics import faces
from gateway.biometrics.faces import BiometricsUnavailable, Face, Landmarks
from gateway.core.errors import GatewayError

_T = TypeVar("_T")


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
    return _sample(path_or_file, lambda frame: _faces_in_frame(frame, max_side), every_seconds=every_seconds,
                   max_frames=max_frames, spread=True)


def faces_with_landmarks_in_video(path_or_file: str | os.PathLike[str] | IO[bytes], *, every_seconds: float = 0.1,
                                  max_seconds: float = 15.0,
                                  max_side: int = 800) -> list[tuple[float, list[tuple[Face, Landmarks]]]]:
    """Faces and their landmarks (:func:`faces.faces_with_landmarks`) every ``every_seconds`` of the first
    ``max_seconds``: (timestamp in seconds, faces), in time order.

    Unlike :func:`faces_in_video` the interval never widens: head movement is only seen in closely spaced
    frames, so the bound on the work is the duration looked at, and later frames are not decoded. 800
    px keeps a 16:9 frame's short side (450) above the size below which faces are searched upsampled,
    three to four times slower, which a selfie's large face does not need.
    """
    if every_seconds <= 0 or max_seconds <= 0:
        raise ValueError("every_seconds and max_seconds must be positive")
    max_frames = math.floor(max_seconds / every_seconds + 1e-6) + 1
    return _sample(path_or_file, lambda frame: _landmarked_faces_in_frame(frame, max_side),
                   every_seconds=every_seconds, max_frames=max_frames, spread=False, until=max_seconds)


def _sample(path_or_file: str | os.PathLike[str] | IO[bytes], analyse: Callable[[Any], _T], *,
            every_seconds: float, max_frames: int, spread: bool,
            until: float | None = None) -> list[tuple[float, _T]]:
    if every_seconds <= 0 or max_frames < 1:
        raise ValueError("every_seconds must be positive and max_frames at least 1")
    av = _av()
    faces.load()  # BiometricsUnavailable before any decoding work
    samples: list[tuple[float, _T]] = []
    try:
        with av.open(path_or_file, mode="r") as container:
            if not container.streams.video:
                raise UnreadableVideo("the file has no video stream")
            stream = container.streams.video[0]
            interval = every_seconds
            duration = _duration(av, container, stream) if spread else None
            if duration is not None:
                interval = max(every_seconds, duration / max_frames)
            next_at = 0.0
            for index, frame in enumerate(container.decode(stream)):
                at = _seconds(frame, stream, index)
                if until is not None and at > until + 1e-6:
                    break
                if at + 1e-6 < next_at:
                    continue
                samples.append((round(at, 3), analyse(frame)))
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
    pixels, scale = _upright_pixels(frame, max_side)
    return faces.faces_in_pixels(pixels, scale=scale)


def _landmarked_faces_in_frame(frame: Any, max_side: int) -> list[tuple[Face, Landmarks]]:
    pixels, scale = _upright_pixels(frame, max_side)
    return faces.faces_with_landmarks(pixels, scale=scale)


def _upright_pixels(frame: Any, max_side: int) -> tuple[Any, float]:
    """The frame's RGB pixels, longer side at most ``max_side`` and upright, and the factor back to its size."""
    shrink = min(1.0, max_side / max(frame.width, frame.height))
    # swscale scales and converts to RGB in one pass, cheaper than a full-size RGB frame then Pillow.
    width, height = max(1, round(frame.width * shrink)), max(1, round(frame.height * shrink))
    pixels = frame.to_ndarray(format="rgb24", width=width, height=height)
    # Phone videos are stored sideways with a display rotation; HOG only finds upright faces.
    turns = round(getattr(frame, "rotation", 0) / 90) % 4
    if turns:
        pixels = _np().rot90(pixels, turns)
    # dlib takes only C-contiguous arrays; swscale pads each row to its alignment (a 648 px wide frame
    # comes back with 1968-byte rows), and a rotation is a strided view.
    return _np().ascontiguousarray(pixels), 1 / shrink


def _np() -> Any:
    return importlib.import_module("numpy")
