"""Active liveness for the enrolment selfie: a short video in which the person turns their head as asked.

The portal shows a random :func:`new_challenge` (e.g. left, right, left); the person records a selfie
video doing it; :func:`check_liveness` follows the head's yaw through sampled frames and gives back the
face to enrol from the same video. A still photo held to the camera has no yaw change and is refused.
What this does *not* stop (a replayed or injected video, a mask, a skilled hand moving a print) is in
docs/BINDING.md, "Active liveness (optional)".

Yaw comes from the 5 landmarks the engine already aligns faces with (dlib's 5-point model: four eye
corners and the base of the nose); pitch ("up", "down") does not, see :data:`TURNS`.
"""

from __future__ import annotations

import itertools
import os
import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, ClassVar, Final

from gateway.biometrics import video
from gateway.biometrics.faces import (
    DEFAULT_THRESHOLD,
    MIN_ENROLMENT_SHARPNESS,
    MIN_ENROLMENT_SIZE,
    EnrolmentRefused,
    Face,
    FaceBlurry,
    FaceTooSmall,
    Landmarks,
    NoFace,
    SeveralFaces,
    distance,
)
from gateway.biometrics.video import UnreadableVideo

# Only yaw. With 5 points, pitch would be the nose base's distance below the eye line over the eye
# distance, which is 0.58-0.89 across the frontal test photos (faces differ), so "up" cannot be told from
# a long nose without a per-video baseline; worse, tilting a printed photo back and forth squashes it
# vertically and moves that ratio as a real nod would. Tilting a print about its vertical axis squashes
# the eye distance and the nose offset alike, so yaw, a ratio along the eye line, does not move.
TURNS: Final = ("left", "right")

# |yaw| beyond this is a turn. Measured with :func:`yaw` on tests/data/faces (photo | its mirror image):
# faces looking at the camera -0.04..+0.05 (obama_1, biden_2, kit_harington_1, rose_leslie_*,
# alex_lacamoire_*); slightly turned, about 10-15°, ±0.08..0.11 (lin_manuel_miranda_1, biden_1, obama_3);
# turned about 20°, -0.13 | +0.14 (obama_2) and -0.17 | +0.17 (kit_harington_2). In video frames made from
# them the same faces measure up to 0.03 apart (scale, compression), obama_3 up to 0.128. With the angles
# judged by eye that is about 0.35·tan(angle), so a turn of 30°, what people do when asked, is 0.2. A
# print held close to the camera and swung about its vertical axis (a keystone, far edge 0.6 of the near
# one) measured 0.143. 0.15 is above both and below a real turn; it has not been calibrated on recorded
# head turns (see the tests).
YAW_THRESHOLD = 0.15

# A turn must be held for this many consecutive samples with a face (0.2 s at the default 0.1 s): one
# frame beyond the threshold is landmark jitter, not a turn.
MIN_HOLD = 2

# Longest stretch, between the first and the last sample with a face, in which no face is found. A
# strong turn can lose the (frontal) detector for a moment; longer gaps hide what the camera saw.
MAX_GAP_SECONDS = 0.5


class LivenessFailed(EnrolmentRefused):
    """The head did not turn as asked (or never looked straight at the camera)."""

    code: ClassVar[str] = "liveness_failed"


class LivenessUnreadable(EnrolmentRefused, UnreadableVideo):
    """Both, like :class:`faces.EnrolmentUnreadable`: an enrolment caller catches :class:`EnrolmentRefused`."""

    code: ClassVar[str] = "unreadable_video"


@dataclass(frozen=True)
class LivenessResult:
    face: Face  # the most frontal sharp face: its embedding is the template to enrol
    frontal_at: float  # seconds into the video of that face's frame
    turns: tuple[str, ...]  # the turns seen, in order (equal to the challenge)
    yaw_trace: tuple[tuple[float, float | None], ...]  # (seconds, yaw) per sample; None: no face found


def new_challenge(rng: random.Random | None = None, length: int = 3) -> tuple[str, ...]:
    """A random sequence of ``length`` turns from :data:`TURNS`, no two neighbours equal.

    Equal neighbours ("left, left") could not be told from one long turn. With two turns this leaves two
    sequences of each length (it alternates): the randomness says which way to start, no more. At least
    two turns, so that every challenge needs both directions, which no still picture has at once.
    """
    if length < 2:
        raise ValueError("a challenge has at least two turns")
    chooser = rng if rng is not None else secrets.SystemRandom()
    turns = [chooser.choice(TURNS)]
    while len(turns) < length:
        turns.append(chooser.choice([turn for turn in TURNS if turn != turns[-1]]))
    return tuple(turns)


def yaw(landmarks: Landmarks) -> float:
    """How far the head is turned: the nose base's offset from the eyes' midpoint along the eye line,
    in eye distances. Positive means the person turned to *their own left*, negative to their right.

    The sign is fixed for frames as a camera records them, not mirrored: the person's left is on the
    image's right, and turning to their left moves the nose towards the image's right. Checked on
    obama_2 (the flag's stars are top left and the pin is on his left lapel, so it is not mirrored): he
    faces the image's left, i.e. his right, and measures -0.20. A selfie preview is usually shown
    mirrored, where the person sees the nose go the way they turn; browsers (getUserMedia with
    MediaRecorder) and phone cameras by default record unmirrored. A recording that is mirrored reads
    every turn reversed and is refused (there is deliberately no "mirrored" switch: with alternating
    challenges it would let one recording answer both).

    Measured along the eye line, so rolling the head (tilting it towards a shoulder) does not count.
    """
    right_eye = _midpoint(landmarks[0], landmarks[1])  # on the image's right
    left_eye = _midpoint(landmarks[2], landmarks[3])
    nose = landmarks[4]
    axis = (right_eye[0] - left_eye[0], right_eye[1] - left_eye[1])
    squared = axis[0] ** 2 + axis[1] ** 2
    if squared == 0:
        return 0.0
    centre = _midpoint(right_eye, left_eye)
    return ((nose[0] - centre[0]) * axis[0] + (nose[1] - centre[1]) * axis[1]) / squared


def check_liveness(
    video_file: str | os.PathLike[str] | IO[bytes],
    challenge: Sequence[str],
    *,
    every_seconds: float = 0.1,
    max_seconds: float = 15.0,
    threshold: float = YAW_THRESHOLD,
    same_person_threshold: float = DEFAULT_THRESHOLD,
) -> LivenessResult:
    """Check that the video shows one person doing ``challenge``'s turns, in order, and nothing else.

    Frames every ``every_seconds`` of the first ``max_seconds`` are analysed (later ones are not decoded).
    Every one must show at most one face, and, between the first and the last with a face, no gap longer
    than :data:`MAX_GAP_SECONDS`. The face that looks most straight at the camera (large and sharp
    enough for an enrolment photo) is the one returned; every other face must be the same person
    (within ``same_person_threshold``), so that a photo of someone else cannot be held up for the
    template while the recorder's own head does the turns.

    A turn is ``yaw`` beyond ±``threshold`` for :data:`MIN_HOLD` consecutive samples with a face (gaps
    skipped). Coming back to the front between turns is not required: going from left straight to
    right passes it in a sample or two. Repeated turns the same way count once. The turns seen must be
    exactly the challenge: extra turns are refused too, or swinging the head back and forth would answer
    every challenge.

    Raises :class:`EnrolmentRefused` subclasses whose message says what to do: :class:`LivenessFailed`
    (``liveness_failed``), :class:`faces.NoFace`, :class:`faces.SeveralFaces`, :class:`faces.FaceTooSmall`,
    :class:`faces.FaceBlurry` and :class:`LivenessUnreadable`.
    """
    _check_challenge(challenge)
    try:
        samples = video.faces_with_landmarks_in_video(video_file, every_seconds=every_seconds,
                                                      max_seconds=max_seconds)
    except UnreadableVideo as exc:
        raise LivenessUnreadable("This file is not a video we can read. Record the video again with your "
                                 "phone's or computer's camera.") from exc
    seen = _one_face_per_frame(samples)
    trace = tuple((at, None if found is None else yaw(found[1])) for at, found in seen)
    frontal_at, frontal = _most_frontal(seen, threshold)
    for at, found in seen:
        if found is not None and distance(found[0].embedding, frontal.embedding) > same_person_threshold:
            raise SeveralFaces(f"The video shows more than one person (at {at:.1f} s). Record it again with "
                               "only yourself in the picture.")
    turns = _turns([value for _, value in trace if value is not None], threshold)
    if turns != tuple(challenge):
        raise LivenessFailed(f"Turn your head {_as_words(challenge)}, as shown, holding each turn for a "
                             "moment, then look at the camera again.")
    return LivenessResult(face=frontal, frontal_at=frontal_at, turns=turns, yaw_trace=trace)


def _check_challenge(challenge: Sequence[str]) -> None:
    # A malformed challenge is the caller's bug, not the person's: ValueError, not a refusal.
    if len(challenge) < 2 or any(turn not in TURNS for turn in challenge):
        # One turn could be answered by a still photo of a turned face, with a frontal one before it.
        raise ValueError(f"a challenge is at least two turns from {TURNS}, not {tuple(challenge)!r}")
    if any(a == b for a, b in itertools.pairwise(challenge)):
        raise ValueError("a challenge has no two equal neighbours: they cannot be told from one turn")


def _one_face_per_frame(
    samples: list[tuple[float, list[tuple[Face, Landmarks]]]],
) -> list[tuple[float, tuple[Face, Landmarks] | None]]:
    """Each sample's one face (None: none found), or a refusal for several faces or a long gap."""
    for at, found in samples:
        if len(found) > 1:
            raise SeveralFaces(f"The video shows {len(found)} faces (at {at:.1f} s). Record it again with only "
                               "your face in the picture.")
    with_face = [at for at, found in samples if found]
    if not with_face:
        raise NoFace("No face was found in the video. Record your face from the front, in good light, "
                     "and keep it in the picture.")
    # Before the first face and after the last, the recording may simply not have framed the person yet.
    for before, after in itertools.pairwise(with_face):
        if after - before > MAX_GAP_SECONDS + 1e-6:
            raise NoFace(f"Your face could not be seen for a while (at {before:.1f} s). Keep your whole face "
                         "in the picture and turn your head only as far as shown.")
    return [(at, found[0] if found else None) for at, found in samples]


def _most_frontal(seen: list[tuple[float, tuple[Face, Landmarks] | None]],
                  threshold: float) -> tuple[float, Face]:
    """The face nearest to frontal among those good enough for an enrolment photo, and its time."""
    frontal: list[tuple[float, float, Face]] = []  # (|yaw|, seconds, face)
    for at, found in seen:
        if found is not None and abs(turned := yaw(found[1])) < threshold:
            frontal.append((abs(turned), at, found[0]))
    if not frontal:
        raise LivenessFailed("Look straight at the camera for a moment before and after you turn your head.")
    good = [entry for entry in frontal
            if entry[2].size >= MIN_ENROLMENT_SIZE and entry[2].sharpness >= MIN_ENROLMENT_SHARPNESS]
    if not good:
        if all(face.size < MIN_ENROLMENT_SIZE for _, _, face in frontal):
            raise FaceTooSmall("Your face is too small in the video. Hold the camera closer, so that your "
                               "face fills much of the picture.")
        raise FaceBlurry("Your face is blurred in the video. Hold the camera still and record again in good "
                         "light.")
    _, at, face = min(good, key=lambda entry: (entry[0], entry[1]))
    return at, face


def _turns(yaws: Sequence[float], threshold: float) -> tuple[str, ...]:
    """The held turns in a yaw trace, repeats of the same turn merged."""
    turns: list[str] = []
    run: str | None = None
    length = 0
    for value in yaws:
        direction = "left" if value > threshold else "right" if value < -threshold else None
        length = length + 1 if direction == run else 1
        run = direction
        if run is not None and length == MIN_HOLD and (not turns or turns[-1] != run):
            turns.append(run)
    return tuple(turns)


def _as_words(challenge: Sequence[str]) -> str:
    return ", then ".join(f"to the {turn}" for turn in challenge)


def _midpoint(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
