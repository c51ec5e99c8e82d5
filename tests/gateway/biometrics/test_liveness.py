"""Active liveness on videos made with PyAV from the real test photos (no mocks).

What these videos can and cannot show. They are slideshows: a pose jumps to the next with nothing in
between, like a sequence of prints swapped in front of the camera (which this check does not refuse:
docs/BINDING.md). So they test the plumbing — sampling, landmarks, the yaw sign, turn detection and its
order, one face and one person, the returned embedding — and the refusal of a still photo. These need a
real recorded head turn (a phone or browser selfie video, not stored here) and are not tested:

- that :data:`liveness.YAW_THRESHOLD` (0.15) is crossed by a real turn and held for ``MIN_HOLD`` samples;
  the test photos' turns are about 20° and measure 0.13-0.15 in these videos, so the turn tests pass
  ``threshold=0.1``, which keeps obama_1 (within ±0.02) well inside;
- how long the detector loses a strongly turned face (the ``MAX_GAP_SECONDS`` allowance);
- that a browser or phone recording is unmirrored, so that the person's left reads as "left";
- the same-person distance at real turn angles, and the time per frame on phone video.
"""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Sequence

import pytest

pytest.importorskip("dlib")  # the [face] extra; the dev extra installs it, so CI runs these
pytest.importorskip("av")

from PIL import Image, ImageOps

from gateway.biometrics import liveness
from gateway.biometrics.faces import (
    DEFAULT_THRESHOLD,
    EnrolmentRefused,
    NoFace,
    SeveralFaces,
    distance,
    enrolment_face,
    faces_in_image,
)
from gateway.biometrics.liveness import (
    TURNS,
    LivenessFailed,
    LivenessUnreadable,
    check_liveness,
    new_challenge,
)
from gateway.biometrics.video import UnreadableVideo
from tests.gateway.biometrics.conftest import photo_bytes

PLUMBING = 0.1  # the yaw threshold for the test photos' 20° turns (module docstring)
SIZE = (480, 640)  # a portrait selfie
FPS = 10


def head(name: str, *, mirrored: bool = False) -> Image.Image:
    """The photo cropped around its largest face, as a selfie frames it; ``mirrored`` flips it left-right.

    obama_2 is not mirrored (the flag's stars are top left, the pin on his left lapel) and he is turned
    to his right; its mirror image is therefore the same face turned to his left.
    """
    data = photo_bytes(name)
    left, top, right, bottom = faces_in_image(data)[0].box
    centre_x, centre_y, half = (left + right) / 2, (top + bottom) / 2, (right - left) * 1.6
    with Image.open(io.BytesIO(data)) as opened:
        picture = opened.convert("RGB").crop((round(centre_x - half), round(centre_y - half * 1.3),
                                              round(centre_x + half), round(centre_y + half * 1.3)))
    return ImageOps.mirror(picture) if mirrored else picture


def clip(pictures: Sequence[Image.Image], *, seconds_each: float = 0.5) -> io.BytesIO:
    """An H.264 MP4 showing each picture, filling a portrait frame, for ``seconds_each``."""
    av = pytest.importorskip("av")
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        for picture in pictures:
            frame = av.VideoFrame.from_image(ImageOps.fit(picture, SIZE))
            for _ in range(round(seconds_each * FPS)):
                output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    buffer.seek(0)
    return buffer


def poses(challenge: Sequence[str]) -> list[Image.Image]:
    """Frontal, then each turn of ``challenge`` with frontal after it: obama_1, and obama_2 for the turns."""
    front = head("obama_1")
    turned = {"right": head("obama_2"), "left": head("obama_2", mirrored=True)}
    pictures = [front]
    for turn in challenge:
        pictures += [turned[turn], front]
    return pictures


# (1) A still photo held to the camera.

@pytest.mark.parametrize(("challenge", "threshold"), [
    (("left", "right"), liveness.YAW_THRESHOLD), (("right", "left", "right"), liveness.YAW_THRESHOLD),
    (("right", "left"), PLUMBING), (("left", "right", "left"), PLUMBING),
])
def test_a_still_photo_is_refused_whatever_the_challenge(challenge: tuple[str, ...], threshold: float) -> None:
    video = clip([head("obama_1")], seconds_each=3)
    with pytest.raises(LivenessFailed, match="Turn your head to the") as refused:
        check_liveness(video, challenge, every_seconds=0.2, threshold=threshold)
    assert refused.value.code == "liveness_failed"


def test_a_print_turned_and_rotated_in_front_of_the_camera_stays_frontal() -> None:
    # Turning a print about its vertical axis squashes the eye distance and the nose's offset alike, and
    # rotating it in its plane rotates the eye line with the nose: yaw, measured along that line, stays.
    front = head("obama_1")
    moved = [front.resize((round(front.width * squash), front.height)) for squash in (0.8, 0.6, 0.8)]
    moved += [front.rotate(angle, resample=Image.Resampling.BICUBIC) for angle in (-20, 20)]
    video = clip([front, *moved, front], seconds_each=0.4)
    with pytest.raises(LivenessFailed):
        check_liveness(video, ("left", "right"), every_seconds=0.2, threshold=PLUMBING)
    video.seek(0)
    with pytest.raises(LivenessFailed):
        check_liveness(video, ("right", "left"), every_seconds=0.2, threshold=PLUMBING)


# (2) Head turns (synthetic: real photos of real turns, jumping from pose to pose).

def test_the_turns_asked_for_are_accepted_and_the_frontal_face_is_returned() -> None:
    challenge = ("left", "right", "left")
    result = check_liveness(clip(poses(challenge)), challenge, threshold=PLUMBING)
    assert result.turns == challenge
    selfie = enrolment_face(photo_bytes("obama_1")).embedding
    assert distance(result.face.embedding, selfie) < DEFAULT_THRESHOLD
    # Another photo of him, to show the template is his face and not only that frame's pixels.
    assert distance(result.face.embedding, enrolment_face(photo_bytes("obama_2")).embedding) < DEFAULT_THRESHOLD
    # The template comes from a frontal (obama_1) segment: 0-0.5 s, 1-1.5 s, ...
    assert int(result.frontal_at * 2) % 2 == 0
    # The yaw trace: one sample every 0.1 s, left positive, right negative, frontal near 0.
    assert len(result.yaw_trace) == 35
    assert all(value is not None for _, value in result.yaw_trace)
    by_segment = [[value for at, value in result.yaw_trace if int(at * 2 + 1e-6) == segment] for segment in range(7)]
    assert all(abs(value) < 0.05 for segment in by_segment[0::2] for value in segment if value is not None)
    assert all(value is not None and value > PLUMBING for value in by_segment[1] + by_segment[5])
    assert all(value is not None and value < -PLUMBING for value in by_segment[3])


@pytest.mark.parametrize("shown", [("right", "left", "right"), ("left", "right"), ("left", "right", "left", "right")],
                         ids=["wrong order", "one turn missing", "one turn too many"])
def test_other_turns_than_the_challenge_are_refused(shown: tuple[str, ...]) -> None:
    with pytest.raises(LivenessFailed, match="to the left, then to the right, then to the left"):
        check_liveness(clip(poses(shown)), ("left", "right", "left"), threshold=PLUMBING)


# (3) One face, one person.

def test_two_faces_in_the_frames_are_refused() -> None:
    crowd = clip([head("obama_1"), Image.open(io.BytesIO(photo_bytes("two_people_obama_and_biden"))),
                  head("obama_1")])
    with pytest.raises(SeveralFaces, match="faces") as refused:
        check_liveness(crowd, ("left", "right"), threshold=PLUMBING)
    assert refused.value.code == "several_faces"


def test_someone_elses_photo_for_the_template_while_another_head_turns_is_refused() -> None:
    # biden_2 held up looks straight at the camera, so it would be the template; the turns are Obama's.
    pictures = [head("biden_2"), head("obama_2", mirrored=True), head("obama_2"), head("biden_2")]
    with pytest.raises(SeveralFaces, match="more than one person"):
        check_liveness(clip(pictures), ("left", "right"), threshold=PLUMBING)


def test_a_face_lost_for_long_is_refused() -> None:
    blank = Image.new("RGB", SIZE, (20, 20, 20))
    pictures = poses(("left", "right"))
    with pytest.raises(NoFace, match="could not be seen"):
        check_liveness(clip([*pictures[:2], blank, blank, *pictures[2:]]), ("left", "right"), threshold=PLUMBING)


def test_a_video_without_a_face_is_refused() -> None:
    with pytest.raises(NoFace):
        check_liveness(clip([Image.new("RGB", SIZE, (20, 20, 20))]), ("left", "right"), every_seconds=0.2)


def test_a_file_that_is_not_a_video_is_an_enrolment_refusal() -> None:
    with pytest.raises(LivenessUnreadable) as refused:
        check_liveness(io.BytesIO(b"not a video at all" * 100), ("left", "right"))
    assert isinstance(refused.value, EnrolmentRefused)
    assert isinstance(refused.value, UnreadableVideo)
    assert refused.value.code == "unreadable_video"


# (4) Challenges.

@pytest.mark.parametrize("length", [2, 3, 5])
def test_a_challenge_has_its_length_and_no_two_equal_neighbours(length: int) -> None:
    rng = random.Random(length)
    for _ in range(20):
        challenge = new_challenge(rng, length)
        assert len(challenge) == length
        assert set(challenge) <= set(TURNS)
        assert all(a != b for a, b in itertools.pairwise(challenge))


def test_challenges_start_either_way_and_need_both_turns() -> None:
    seen = {new_challenge() for _ in range(64)}  # the system's randomness: 2^-63 to see only one
    assert {challenge[0] for challenge in seen} == set(TURNS)
    assert all(set(challenge) == set(TURNS) for challenge in seen)


def test_a_seeded_generator_repeats_its_challenges() -> None:
    assert new_challenge(random.Random(7), 4) == new_challenge(random.Random(7), 4)


@pytest.mark.parametrize("challenge", [(), ("left",), ("left", "left"), ("left", "up"), ("Left", "right")])
def test_a_malformed_challenge_is_a_programming_error(challenge: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="challenge"):
        check_liveness(io.BytesIO(b""), challenge)


def test_a_challenge_has_at_least_two_turns() -> None:
    with pytest.raises(ValueError, match="two turns"):
        new_challenge(length=1)
