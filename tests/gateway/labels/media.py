"""Real media files made on the spot: Pillow for images, ``wave`` for WAV, FFmpeg (through PyAV) for MP3/MP4/M4A."""

from __future__ import annotations

import array
import io
import math
import struct
import wave
from fractions import Fraction
from typing import Any

import pytest
from PIL import Image, ImageDraw


def png(size: tuple[int, int] = (320, 240), *, mode: str = "RGB", background: tuple[int, int, int] = (40, 120, 200)
        ) -> bytes:
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    draw.ellipse((size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4), fill=(250, 200, 160))
    buffer = io.BytesIO()
    image.convert(mode).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(size: tuple[int, int] = (320, 240), background: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png(size, background=background))).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def wav(*, frequency: float = 220.0, rate: int = 16000, seconds: float = 1.0, channels: int = 1,
        width: int = 2) -> bytes:
    peak = 2 ** (8 * width - 1) - 1
    offset = 128 if width == 1 else 0
    samples = array.array({1: "B", 2: "h", 4: "i"}[width], (
        round(0.5 * peak * math.sin(2 * math.pi * frequency * i / rate)) + offset
        for i in range(int(rate * seconds)) for _ in range(channels)))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return buffer.getvalue()


def _av() -> Any:
    return pytest.importorskip("av", reason="PyAV (the dev extra) makes the MP3/MP4/M4A test files")


def _encode_audio(container_format: str, codec: str, *, seconds: float = 1.0, rate: int = 44100,
                  frequency: float = 440.0) -> bytes:
    av = _av()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container_format) as output:
        stream = output.add_stream(codec, rate=rate)
        stream.layout = "mono"
        context = stream.codec_context
        frame_size = context.frame_size or 1152
        for start in range(0, int(seconds * rate) // frame_size * frame_size, frame_size):
            frame = av.AudioFrame(format="fltp", layout="mono", samples=frame_size)
            frame.planes[0].update(struct.pack(f"<{frame_size}f", *(
                0.4 * math.sin(2 * math.pi * frequency * (start + i) / rate) for i in range(frame_size))))
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def mp3(frequency: float = 440.0) -> bytes:
    return _encode_audio("mp3", "libmp3lame", frequency=frequency)


def m4a(frequency: float = 440.0) -> bytes:
    return _encode_audio("ipod", "aac", frequency=frequency)


def mp4(*, frames: int = 12, size: tuple[int, int] = (160, 128), shade: int = 30) -> bytes:
    av = _av()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("mpeg4", rate=12)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            picture = Image.new("RGB", size, ((index * 20) % 255, shade, 90))
            ImageDraw.Draw(picture).rectangle((size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4),
                                             fill=(240, 200, 40))
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return buffer.getvalue()


def clip(*, seconds: int = 4, size: tuple[int, int] = (320, 240), fps: int = 25, rotation: int = 0,
         audio: bool = True) -> bytes:
    """An H.264 video (libx264) with an AAC track, a yellow square moving over blue: what a face edit returns."""
    av = _av()
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        video = output.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        if rotation:
            video.set_display_rotation(rotation)
        sound = output.add_stream("aac", rate=44100, layout="mono") if audio else None
        for index in range(seconds * fps):
            picture = Image.new("RGB", size, (60, 120, 180))
            left = (index * 7) % size[0]
            ImageDraw.Draw(picture).rectangle((left, size[1] // 3, left + size[0] // 8, size[1] // 3 + size[0] // 8),
                                             fill=(240, 200, 40))
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            for packet in video.encode(frame):
                output.mux(packet)
        for packet in video.encode(None):
            output.mux(packet)
        if sound is not None:
            frame_size = sound.codec_context.frame_size
            for start in range(0, seconds * 44100, frame_size):
                frame = av.AudioFrame(format="fltp", layout="mono", samples=frame_size)
                frame.planes[0].update(struct.pack(f"<{frame_size}f", *(
                    0.3 * math.sin(2 * math.pi * 440 * (start + i) / 44100) for i in range(frame_size))))
                frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
                for packet in sound.encode(frame):
                    output.mux(packet)
            for packet in sound.encode(None):
                output.mux(packet)
    return buffer.getvalue()
