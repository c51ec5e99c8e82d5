"""Explicit marks that need FFmpeg (PyAV, imported lazily): the visible mark on a video's first seconds, and
the audible cue before MP3 and non-PCM WAV audio.

Both decode the spooled answer and encode it again into a new spooled file one frame at a time, so memory
stays bounded whatever the length (the most held is the video encoder's look-ahead, a few dozen frames).

* Video (MP4, where ``LABEL_VIDEO_MARK_SECONDS`` > 0): every frame shown before that many seconds gets the
  images' mark (:func:`gateway.labels.marks.draw_mark`: same corner, same ≥ 5 % text height), in the corner
  as the video is shown (its rotation applied first). The whole video stream is encoded again: the later
  frames of an H.264 stream are predicted from the marked ones, so they cannot be copied as they were. Same
  codec where the wheel's FFmpeg has an encoder for it (H.264: libx264, HEVC: libx265, MPEG-4 Part 2, AV1,
  VP9), else H.264; same size, time stamps (so frame rate), pixel format, colour description, key frames
  and rotation. Audio streams are copied packet for packet; other streams (subtitles, timecode) are dropped.
* Audio (MP3; WAV that Python's ``wave`` cannot read, such as IEEE float): the tone of
  :func:`gateway.labels.marks.cue_wav` before the first sample, encoded with the audio (MP3: libmp3lame;
  WAV: its own codec) at its sample rate, channels and bit rate. An MP3's ID3 tag is carried over.

Where a mark cannot be made (no PyAV, no encoder, a stream FFmpeg cannot decode) :class:`MarkUnsupported`
says why, and the output goes with the implicit label only and an audit entry (never silently unmarked).
"""

from __future__ import annotations

import itertools
import math
import struct
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from typing import IO, Any

from gateway.labels import marks
from gateway.labels._optional import import_optional
from gateway.labels.errors import LabelUnavailable

__all__ = ["MarkUnsupported", "cue_audio", "mark_video"]

# Encoders for the codec the upstream used, best first. PyAV's wheels (FFmpeg 8) ship all of these.
_VIDEO_ENCODERS = {
    "h264": ("libx264",),
    "hevc": ("libx265",),
    "mpeg4": ("mpeg4",),
    "av1": ("libsvtav1", "libaom-av1"),
    "vp9": ("libvpx-vp9",),
}
# For any other codec: H.264, which every MP4 player plays; mpeg4 is FFmpeg's own, so always there.
_FALLBACK_VIDEO_ENCODERS = ("libx264", "mpeg4")
# x264/x265 encode to a quality, not a bit rate: CRF 18 is near transparent, so the second generation does
# not show; "veryfast" keeps the re-encode near real time on two cores (docs/PERFORMANCE.md, "Output labels").
_QUALITY_OPTIONS = {"libx264": {"crf": "18", "preset": "veryfast"}, "libx265": {"crf": "20", "preset": "veryfast"}}
_DEFAULT_VIDEO_BIT_RATE = 4_000_000
_AUDIO_ENCODERS = {"mp3": "libmp3lame"}
_DEFAULT_MP3_BIT_RATE = 128_000
_FULL_CIRCLE = 360


class MarkUnsupported(Exception):
    """The explicit mark cannot be made for this output; the message says why (it goes in the audit entry)."""


def mark_video(media: IO[bytes], out: IO[bytes], *, mark: marks.ImageMark, seconds: float) -> None:
    """Write the MP4 ``media`` to ``out`` with the mark on every frame shown in its first ``seconds``."""
    av = _optional("av")
    image = _optional("PIL.Image")
    with _decoding(av, "video"):
        matrix = _display_matrix(av, media)
        transpose = _upright(matrix)
        media.seek(0)
        with av.open(media, "r") as source, av.open(out, "w", format="mp4") as target:
            video = _video_stream(source)
            encoded, pix_fmt = _video_output(av, target, video, matrix)
            copies = {stream.index: target.add_stream_from_template(stream) for stream in source.streams.audio}
            first: float | None = None
            picture_type = av.video.frame.PictureType
            for packet in source.demux(video, *source.streams.audio):
                if packet.stream_index in copies:
                    if packet.dts is not None:  # None: the demuxer's end-of-stream marker, not a sample
                        packet.stream = copies[packet.stream_index]
                        target.mux(packet)
                    continue
                for frame in packet.decode():
                    at = float(frame.time or 0.0)
                    first = at if first is None else first
                    if at - first < seconds:
                        shown = _marked(av, image, frame, mark=mark, transpose=transpose, pix_fmt=pix_fmt)
                    elif frame.format.name != pix_fmt:
                        shown = _retimed(frame, frame.reformat(format=pix_fmt))
                    else:
                        shown = frame
                    # The upstream's key frames stay key frames (the same seek points); the rest the encoder picks.
                    shown.pict_type = picture_type.I if frame.key_frame else picture_type.NONE
                    for encoded_packet in encoded.encode(shown):
                        target.mux(encoded_packet)
            for encoded_packet in encoded.encode(None):
                target.mux(encoded_packet)
            if first is None:
                raise MarkUnsupported("the video stream has no frame that FFmpeg can decode")


def cue_audio(media: IO[bytes], out: IO[bytes], container: str, *, seconds: float) -> None:
    """Write the MP3 or WAV ``media`` to ``out`` with the cue of ``seconds`` before its first sample."""
    av = _optional("av")
    with _decoding(av, "audio"):
        media.seek(0)
        with av.open(media, "r") as source:
            if not source.streams.audio:
                raise MarkUnsupported("the file has no audio stream")
            audio = source.streams.audio[0]
            decoder = audio.codec_context
            rate, layout = decoder.sample_rate, decoder.layout.name
            with av.open(out, "w", format=container) as target:
                encoder = _audio_output(av, target, container, audio, source)
                fmt = _audio_format(encoder, decoder.format.name)
                cued = _Encoder(av, target, encoder, fmt=fmt, layout=layout, rate=rate)
                cued.feed([_cue_frame(av, rate, layout, seconds)])
                cued.feed(source.decode(audio))
                cued.close()
    if container == "mp3":
        _copy_id3(media, out)


# --- video ----------------------------------------------------------------------------------------


def _video_stream(source: Any) -> Any:
    if not source.streams.video:
        raise MarkUnsupported("the file has no video stream")
    video = source.streams.video[0]
    video.thread_type = "AUTO"
    return video


def _display_matrix(av: Any, media: IO[bytes]) -> tuple[int, ...] | None:
    """The rotation the player applies, read off the first frame (PyAV shows it there, not on the stream);
    a look at the first frame before the output's header is written, which must already carry it."""
    media.seek(0)
    with av.open(media, "r") as source:
        video = _video_stream(source)
        for frame in source.decode(video):
            found = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
            return struct.unpack("=9i", bytes(found)) if found is not None else None
    raise MarkUnsupported("the video stream has no frame that FFmpeg can decode")


def _upright(matrix: tuple[int, ...] | None) -> str | None:
    """The ``PIL.Image.Transpose`` that shows a coded frame as a player does (None: as coded).

    Its ROTATE_90 / 180 / 270 turn counter-clockwise, as FFmpeg's rotation angle does.
    """
    if matrix is None:
        return None
    a, b, _u, c, d = matrix[:5]
    if a * d - b * c < 0:
        raise MarkUnsupported("a mirrored video (display matrix with a flip): the mark would read backwards")
    angle = -round(math.degrees(math.atan2(b, a))) % _FULL_CIRCLE  # FFmpeg's av_display_rotation_get
    if angle % 90:
        raise MarkUnsupported(f"a video rotated by {angle}°, not a multiple of 90°")
    return None if angle == 0 else f"ROTATE_{angle}"


def _video_output(av: Any, target: Any, video: Any, matrix: tuple[int, ...] | None) -> tuple[Any, str]:
    """The output's video stream, set up like the input's; and the pixel format frames go in as."""
    decoder = video.codec_context
    name = _video_encoder(av, decoder.name)
    codec = av.codec.Codec(name, "w")
    formats = {fmt.name for fmt in codec.video_formats or ()}
    pix_fmt = decoder.pix_fmt if not formats or decoder.pix_fmt in formats else "yuv420p"
    rate = video.average_rate or video.guessed_rate or Fraction(25)
    stream = target.add_stream(name, rate=rate, options=dict(_QUALITY_OPTIONS.get(name, {})))
    stream.width, stream.height, stream.pix_fmt = decoder.width, decoder.height, pix_fmt
    # The input's time base, so every frame keeps its own time stamp (variable frame rates too).
    stream.time_base = video.time_base
    stream.codec_context.time_base = video.time_base
    stream.codec_context.thread_type = "AUTO"
    if video.sample_aspect_ratio:
        stream.sample_aspect_ratio = video.sample_aspect_ratio
    for attribute in ("colorspace", "color_range", "color_primaries", "color_trc"):
        setattr(stream.codec_context, attribute, getattr(decoder, attribute))
    if name not in _QUALITY_OPTIONS:
        # A bit rate encoder: the upstream's rate, twice it where the codec changed (an older one, mpeg4).
        source_rate = decoder.bit_rate or video.container.bit_rate or _DEFAULT_VIDEO_BIT_RATE
        stream.bit_rate = source_rate if _VIDEO_ENCODERS.get(decoder.name, ())[:1] == (name,) else 2 * source_rate
    if matrix is not None:
        stream.set_display_matrix(list(matrix))
    return stream, pix_fmt


def _video_encoder(av: Any, codec: str) -> str:
    for name in (*_VIDEO_ENCODERS.get(codec, ()), *_FALLBACK_VIDEO_ENCODERS):
        if _has_encoder(av, name):
            return name
    raise MarkUnsupported(f"no video encoder for {codec!r} in this FFmpeg build")


def _marked(av: Any, image: Any, frame: Any, *, mark: marks.ImageMark, transpose: str | None, pix_fmt: str) -> Any:
    picture = frame.to_image(src_color_range=frame.color_range or None)
    upright = picture.transpose(image.Transpose[transpose]) if transpose else picture
    marks.draw_mark(upright, mark)
    # Back to the frame as coded: ROTATE_90 and ROTATE_270 undo each other, ROTATE_180 itself.
    back = {"ROTATE_90": "ROTATE_270", "ROTATE_180": "ROTATE_180", "ROTATE_270": "ROTATE_90"}
    coded = upright.transpose(image.Transpose[back[transpose]]) if transpose else upright
    drawn = av.VideoFrame.from_image(coded).reformat(format=pix_fmt, dst_colorspace=frame.colorspace or None,
                                                     dst_color_range=frame.color_range or None)
    return _retimed(frame, drawn)


def _retimed(frame: Any, made: Any) -> Any:
    made.pts, made.time_base = frame.pts, frame.time_base
    made.colorspace, made.color_range = frame.colorspace, frame.color_range
    return made


# --- audio ----------------------------------------------------------------------------------------


def _audio_output(av: Any, target: Any, container: str, audio: Any, source: Any) -> Any:
    decoder = audio.codec_context
    name = _AUDIO_ENCODERS.get(container, decoder.name)
    if not _has_encoder(av, name):
        raise MarkUnsupported(f"no {name} encoder in this FFmpeg build")
    stream = target.add_stream(name, rate=decoder.sample_rate, layout=decoder.layout.name)
    if container == "mp3":
        # The upstream's bit rate (its average, for VBR), the encoder picks the nearest MP3 rate.
        stream.bit_rate = decoder.bit_rate or source.bit_rate or _DEFAULT_MP3_BIT_RATE
    return stream


def _audio_format(encoder: Any, wanted: str) -> str:
    formats = [fmt.name for fmt in encoder.codec_context.codec.audio_formats or ()]
    return wanted if not formats or wanted in formats else formats[0]


class _Encoder:
    """Audio frames of any sample format in; frames of the encoder's format and frame size out, numbered from
    the first sample of the cue (everything after it moved by the cue's length)."""

    def __init__(self, av: Any, target: Any, stream: Any, *, fmt: str, layout: str, rate: int) -> None:
        self._av, self._target, self._stream = av, target, stream
        self._fmt, self._layout, self._rate = fmt, layout, rate
        self._fifo = av.AudioFifo()
        self._size = stream.codec_context.frame_size or 4096  # 0: PCM takes frames of any size
        self._written = 0

    def feed(self, frames: Iterable[Any]) -> None:
        # A resampler per source: PyAV's keeps the sample format of the first frame it was given.
        resampler = self._av.AudioResampler(format=self._fmt, layout=self._layout, rate=self._rate)
        for frame in itertools.chain(frames, [None]):
            for converted in resampler.resample(frame):
                # The FIFO wants one time base throughout; the time stamps are set when frames leave it.
                converted.pts, converted.time_base = None, Fraction(1, self._rate)
                self._fifo.write(converted)
            self._drain(partial=False)

    def close(self) -> None:
        self._drain(partial=True)
        self._mux(None)

    def _drain(self, *, partial: bool) -> None:
        while (chunk := self._fifo.read(self._size, partial=partial)) is not None:
            chunk.pts, chunk.time_base, chunk.sample_rate = self._written, Fraction(1, self._rate), self._rate
            self._written += chunk.samples
            self._mux(chunk)

    def _mux(self, frame: Any | None) -> None:
        for packet in self._stream.encode(frame):
            self._target.mux(packet)


def _cue_frame(av: Any, rate: int, layout: str, seconds: float) -> Any:
    channels = len(av.AudioLayout(layout).channels)
    samples = marks.cue_samples(rate, channels, seconds)
    frame = av.AudioFrame(format="s16", layout=layout, samples=len(samples) // (2 * channels))
    frame.planes[0].update(samples)
    frame.sample_rate = rate
    return frame


def _copy_id3(media: IO[bytes], out: IO[bytes]) -> None:
    """The upstream's ID3 tag (title, pictures…) on the new MP3, in place of the one FFmpeg wrote."""
    id3: Any = import_optional("mutagen.id3")
    media.seek(0)
    try:
        tags = id3.ID3(media)
    except id3.ID3NoHeaderError:
        return
    out.seek(0)
    tags.save(out, v2_version=4)


# --- PyAV -----------------------------------------------------------------------------------------


def _optional(name: str) -> Any:
    # Without PyAV or Pillow the output can still be labelled, only not marked: not a LabelUnavailable.
    try:
        return import_optional(name)
    except LabelUnavailable as exc:
        raise MarkUnsupported(f"{name.split('.', maxsplit=1)[0]} is not installed (the [labels] extra)") from exc


def _has_encoder(av: Any, name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


@contextmanager
def _decoding(av: Any, kind: str) -> Iterator[None]:
    try:
        yield
    except (av.error.FFmpegError, ValueError) as exc:  # ValueError: PyAV refusing a stream's parameters
        raise MarkUnsupported(f"FFmpeg cannot re-encode the {kind} with the mark ({exc})") from exc
