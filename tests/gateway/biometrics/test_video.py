"""Faces in videos: frames sampled with PyAV from real MP4s made of the test photos."""

from __future__ import annotations

import io
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

pytest.importorskip("dlib")  # the [face] extra; the dev extra installs it, so CI runs these
pytest.importorskip("av")

from gateway.biometrics.faces import DEFAULT_THRESHOLD, distance, enrolment_face
from gateway.biometrics.video import UnreadableVideo, faces_in_video
from tests.gateway.biometrics.conftest import FACES

VideoOf = Callable[..., bytes]
Photo = Callable[[str], bytes]


def test_faces_are_found_at_the_sampled_timestamps(video_of: VideoOf, photo: Photo) -> None:
    obama = enrolment_face(photo("obama_1")).embedding
    biden = enrolment_face(photo("biden_2")).embedding
    samples = faces_in_video(io.BytesIO(video_of(["obama_1", "biden_2"])), every_seconds=0.5)
    assert [at for at, _ in samples] == [0.0, 0.5, 1.0, 1.5]
    assert all(len(found) == 1 for _, found in samples)
    who = [distance(found[0].embedding, obama) < DEFAULT_THRESHOLD for _, found in samples]
    assert who == [True, True, False, False]
    assert all(distance(found[0].embedding, biden) < DEFAULT_THRESHOLD for _, found in samples[2:])


def test_boxes_are_in_the_frames_pixels_when_frames_are_downscaled(video_of: VideoOf, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(video_of(["obama_1"], seconds_each=0.5))
    full = faces_in_video(path)[0][1][0]
    small = faces_in_video(path, max_side=640)[0][1][0]
    assert full.box[2] <= 1280
    assert full.box[3] <= 720
    assert small.box == pytest.approx(full.box, abs=24)


def test_max_frames_spreads_the_samples_over_the_whole_video(video_of: VideoOf) -> None:
    # Bounded work, but no unchecked tail: 2 frames over 3 seconds are 1.5 s apart, not 0.5.
    samples = faces_in_video(io.BytesIO(video_of(["obama_1", "biden_2", "obama_2"])), max_frames=2)
    assert [at for at, _ in samples] == [0.0, 1.5]


def test_a_phone_video_stored_sideways_is_turned_upright() -> None:
    # Made with the FFmpeg command line (PyAV cannot write a display matrix): obama_1 stored a quarter
    # turn clockwise, with the display rotation that players apply (tests/data/faces/README.md).
    samples = faces_in_video(FACES / "obama_1_rotated.mp4")
    assert samples
    assert all(len(found) == 1 for _, found in samples)
    left, top, right, bottom = samples[0][1][0].box
    # In the upright 480x600 picture, the face is in the upper half (sideways it would be at the side).
    assert 0 <= left < right <= 480
    assert 0 <= top < bottom <= 300


def test_bytes_that_are_not_a_video_are_unreadable() -> None:
    with pytest.raises(UnreadableVideo):
        faces_in_video(io.BytesIO(b"not a video at all" * 100))


def test_a_file_without_a_video_stream_is_unreadable() -> None:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(b"\x00\x00" * 8000)
    buffer.seek(0)
    with pytest.raises(UnreadableVideo, match="no video stream"):
        faces_in_video(buffer)


def test_sampling_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="every_seconds"):
        faces_in_video(io.BytesIO(b""), every_seconds=0)
