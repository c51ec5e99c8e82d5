"""Faces in still images: find them, embed them (dlib's ResNet, 128 floats), and judge an enrolment photo.

dlib, its models (the ``face-recognition-models`` sdist), numpy and Pillow come from the ``[face]`` extra and
are imported here, lazily and once, by :func:`_engine`: ``import gateway.biometrics`` works without them,
and a caller that needs a face gets :class:`BiometricsUnavailable` instead, which the gateway answers by
refusing (fail closed): a consent that cannot be bound to a face is not granted.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.core.errors import GatewayError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Pixels = npt.NDArray[np.uint8]

# dlib's 5-point model, (x, y) in the image's pixels as the camera recorded it: 0 and 1 are the outer and
# inner corner of the eye on the image's right (the person's left eye, unless the image is mirrored), 2 and
# 3 the outer and inner corner of the other eye, 4 the base of the nose.
Landmarks = tuple[tuple[float, float], ...]

# Written into signed consent records next to each template, so that a template is only ever compared
# with one made by the same model (distances between different models' embeddings mean nothing).
FACE_MODEL = "dlib-resnet-v1"

# Same person closer than this, different people farther. dlib suggests 0.6 for its model (99.38 % on
# LFW), but a consent gateway must fail towards "not the consenting person": a false reject costs a
# retake, a false accept edits someone who never consented. On our labelled set (bench/binding.py) the
# closest different-person pair is 0.70 and the farthest same-person pair 0.43; the press-photo
# set had no false accept below 0.56. 0.5 keeps a 0.2 margin below our closest impostor pair (and 0.06
# below the press set's) while accepting every same-person pair we have.
DEFAULT_THRESHOLD = 0.5

# An enrolment photo must show a face at least this many pixels on its shorter side (in the analysed,
# downscaled image): below it the 150-px chip the embedder sees is upsampled and the template is poor.
MIN_ENROLMENT_SIZE = 80

# Variance of the Laplacian of the 150x150 aligned face chip (grey levels 0-255). Measured on the test
# photos (bench/binding.py prints it): sharp faces 100-1800, the same photos after a Gaussian blur of
# radius 2 at most 48 (radius 3: at most 22). 60 refuses both blurs and leaves the sharp ones room.
MIN_ENROLMENT_SHARPNESS = 60.0

# HOG finds faces from about 80 px; upsampling small images once finds them from about 40 px. Large
# images are not upsampled: it quadruples the time and memory for faces that are big enough anyway.
_UPSAMPLE_BELOW = 400

_CHIP_SIZE = 150  # what dlib's ResNet embeds; its sharpness is measured on the same pixels


class BiometricsUnavailable(GatewayError):
    """dlib, its models, numpy or Pillow are not installed (the ``[face]`` extra)."""

    code: ClassVar[str] = "binding_unavailable"  # DESIGN.md's stable code


class UnreadableImage(GatewayError, ValueError):
    """The bytes are not an image Pillow can decode (media that lie about their type)."""

    code: ClassVar[str] = "unreadable_image"


class EnrolmentRefused(GatewayError):
    """The photo cannot serve as a consent's face template; ``code`` says why, the message what to do."""

    code: ClassVar[str] = "enrolment_refused"


class NoFace(EnrolmentRefused):
    code: ClassVar[str] = "no_face"


class SeveralFaces(EnrolmentRefused):
    code: ClassVar[str] = "several_faces"


class FaceTooSmall(EnrolmentRefused):
    code: ClassVar[str] = "face_too_small"


class FaceBlurry(EnrolmentRefused):
    code: ClassVar[str] = "face_blurry"


class EnrolmentUnreadable(EnrolmentRefused, UnreadableImage):
    """Both: an enrolment caller catches :class:`EnrolmentRefused`, an image caller :class:`UnreadableImage`."""

    code: ClassVar[str] = "unreadable_image"


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # left, top, right, bottom in the original image's pixels
    embedding: tuple[float, ...]  # FACE_MODEL's 128 floats
    size: int  # shorter side of the box in the analysed (downscaled) image's pixels
    sharpness: float  # variance of the Laplacian of the aligned face chip


@dataclass(frozen=True)
class _Engine:
    np: Any
    image: Any  # PIL.Image
    image_ops: Any  # PIL.ImageOps
    dlib: Any
    detector: Any
    predictor: Any
    embedder: Any
    # dlib's models are not documented as thread-safe; gunicorn's threads share one engine.
    lock: threading.Lock


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise BiometricsUnavailable(
            f"{name.split('.', maxsplit=1)[0]} is not installed, so faces cannot be matched; install the "
            "gateway with its [face] extra (pip install 'biometric-consent-gateway[face]')") from exc


def _models_dir() -> Path:
    # face_recognition_models' own helpers import pkg_resources, which setuptools deprecates (a warning
    # at import, an error under our test settings) and may not be installed at all; the .dat files are
    # plain package data, so find the package without running its __init__.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BiometricsUnavailable("face-recognition-models is not installed, so faces cannot be matched; "
                                    "install the gateway with its [face] extra")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


@functools.cache
def _engine() -> _Engine:
    np = _import("numpy")
    image = _import("PIL.Image")
    image_ops = _import("PIL.ImageOps")
    dlib = _import("dlib")
    models = _models_dir()
    try:
        # The 5-point predictor (9 MB) is the one dlib's own face recognition example aligns with; the
        # 68-point one (100 MB) gives the embedder nothing more and costs ~90 MB more per worker.
        predictor = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
        embedder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))
    except RuntimeError as exc:  # dlib's answer to a missing or corrupt model file
        raise BiometricsUnavailable(f"dlib's face models cannot be loaded ({exc}); reinstall the [face] extra") from exc
    return _Engine(np=np, image=image, image_ops=image_ops, dlib=dlib, detector=dlib.get_frontal_face_detector(),
                   predictor=predictor, embedder=embedder, lock=threading.Lock())


def available() -> bool:
    """Whether faces can be matched here (the ``[face]`` extra is installed and its models load)."""
    try:
        _engine()
    except BiometricsUnavailable:
        return False
    return True


def load() -> None:
    """Load the models now (about a second and 100 MB) rather than on the first request; raises if unavailable."""
    _engine()


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean distance between two embeddings of the same model."""
    if len(a) != len(b):
        raise ValueError(f"embeddings of different lengths ({len(a)} and {len(b)}) come from different models")
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)))


def faces_in_image(data: bytes, *, max_side: int = 1024) -> list[Face]:
    """Every face in an encoded image (JPEG, PNG, WebP, ... whatever Pillow reads), largest first."""
    engine = _engine()
    pixels, scale = _decode(engine, data, max_side)
    return faces_in_pixels(pixels, scale=scale)


def enrolment_face(data: bytes) -> Face:
    """The one face of an enrolment photo, or :class:`EnrolmentRefused` saying what the person should change."""
    try:
        faces = faces_in_image(data)
    except UnreadableImage as exc:
        raise EnrolmentUnreadable("This file is not a photo we can read. Upload a JPEG or PNG photo of "
                                  "your face.") from exc
    if not faces:
        raise NoFace("No face was found in this photo. Take a photo of your face, from the front, in good light.")
    if len(faces) > 1:
        raise SeveralFaces(f"This photo shows {len(faces)} faces. Take a photo in which only your face can be "
                           "seen.")
    face = faces[0]
    if face.size < MIN_ENROLMENT_SIZE:
        raise FaceTooSmall("Your face is too small in this photo. Take the photo closer, so that your face "
                           "fills much of the picture.")
    if face.sharpness < MIN_ENROLMENT_SHARPNESS:
        raise FaceBlurry("Your face is blurred in this photo. Hold the camera still, focus on your face and "
                         "take the photo again in good light.")
    return face


def _decode(engine: _Engine, data: bytes, max_side: int) -> tuple[Pixels, float]:
    """RGB pixels with the longer side at most ``max_side``, and the factor back to the original's pixels."""
    try:
        with engine.image.open(io.BytesIO(data)) as opened:
            # The longer side, which EXIF rotation does not change, before draft() shrinks the image.
            original_side = max(opened.size)
            # JPEG decodes at 1/2, 1/4 or 1/8 scale for free: a 12-megapixel photo never exists at full size.
            opened.draft("RGB", (max_side, max_side))
            picture = engine.image_ops.exif_transpose(opened).convert("RGB")
    except (OSError, SyntaxError, ValueError, engine.image.DecompressionBombError) as exc:
        # OSError covers UnidentifiedImageError and truncated data; SyntaxError and ValueError are what
        # some of Pillow's plugins raise for malformed headers.
        raise UnreadableImage("the data is not an image that can be decoded") from exc
    if max(picture.size) > max_side:
        picture.thumbnail((max_side, max_side), engine.image.Resampling.BILINEAR)
    pixels: Pixels = engine.np.asarray(picture, dtype=engine.np.uint8)
    return pixels, original_side / max(picture.size)


def faces_in_pixels(pixels: Pixels, *, scale: float = 1.0) -> list[Face]:
    """Faces in an RGB ``uint8`` array (rows, columns, 3); boxes are multiplied by ``scale``, largest first."""
    return [face for face, _ in faces_with_landmarks(pixels, scale=scale)]


def faces_with_landmarks(pixels: Pixels, *, scale: float = 1.0) -> list[tuple[Face, Landmarks]]:
    """Like :func:`faces_in_pixels`, with each face's 5 landmarks (:data:`Landmarks`), scaled like the boxes.

    The landmarks are the ones the embedder was aligned with (the engine's 5-point predictor): getting
    them costs nothing more, and no other landmark model is loaded.
    """
    engine = _engine()
    upsample = 1 if min(pixels.shape[:2]) < _UPSAMPLE_BELOW else 0
    found: list[tuple[Face, Landmarks]] = []
    with engine.lock:
        for rect in engine.detector(pixels, upsample):
            shape = engine.predictor(pixels, rect)
            embedding = engine.embedder.compute_face_descriptor(pixels, shape, 0)
            chip = engine.dlib.get_face_chip(pixels, shape, size=_CHIP_SIZE)
            face = Face(
                box=(round(rect.left() * scale), round(rect.top() * scale), round(rect.right() * scale),
                     round(rect.bottom() * scale)),
                embedding=tuple(float(x) for x in embedding),
                size=int(min(rect.width(), rect.height())),
                sharpness=_sharpness(engine.np, chip),
            )
            points = tuple((shape.part(i).x * scale, shape.part(i).y * scale) for i in range(shape.num_parts))
            found.append((face, points))
    return sorted(found, key=lambda pair: pair[0].size, reverse=True)


def _sharpness(np: Any, chip: Pixels) -> float:
    # Variance of the 4-neighbour Laplacian: blur removes the high frequencies it responds to. Measured
    # on the aligned chip, so a face's sharpness does not depend on how big it was in the photo.
    grey = chip.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    laplacian = (grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4 * grey[1:-1, 1:-1])
    return float(laplacian.var())
