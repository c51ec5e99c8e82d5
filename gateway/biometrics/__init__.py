"""Face matching: binds a consent to the consenting person's face (issue 12).

The engine: ``faces`` finds faces in images and embeds them with dlib's ResNet (:data:`FACE_MODEL`)
and judges an enrolment photo, ``video`` samples a video's frames through it, ``matching`` says which
faces no template covers, ``liveness`` checks a head-turn video against a random challenge (optional).
It has no web and no database and may import ``gateway.core`` only (an
import-linter contract); ``binding`` and ``models`` build the gateway's templates and checks on it.

dlib, its models, numpy, Pillow and PyAV come from the ``[face]`` extra and are imported lazily;
without it :class:`BiometricsUnavailable` is raised on first use, and the gateway refuses whatever
needs a face matched (fail closed).
"""

from gateway.biometrics.faces import (
    DEFAULT_THRESHOLD,
    FACE_MODEL,
    BiometricsUnavailable,
    EnrolmentRefused,
    Face,
    UnreadableImage,
    available,
    distance,
    enrolment_face,
    faces_in_image,
    load,
)
from gateway.biometrics.matching import unmatched
from gateway.biometrics.video import UnreadableVideo, faces_in_video

__all__ = [
    "DEFAULT_THRESHOLD",
    "FACE_MODEL",
    "BiometricsUnavailable",
    "EnrolmentRefused",
    "Face",
    "UnreadableImage",
    "UnreadableVideo",
    "available",
    "distance",
    "enrolment_face",
    "faces_in_image",
    "faces_in_video",
    "load",
    "unmatched",
]
