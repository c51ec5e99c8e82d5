"""The face engine on real photos: enrolment, same and different people, and what is refused."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("dlib")  # the [face] extra; the dev extra installs it, so CI runs these

from PIL import Image, ImageFilter

from gateway.biometrics import faces
from gateway.biometrics.faces import (
    DEFAULT_THRESHOLD,
    BiometricsUnavailable,
    EnrolmentRefused,
    Face,
    UnreadableImage,
    distance,
    enrolment_face,
    faces_in_image,
)
from gateway.biometrics.matching import nearest, unmatched

Photo = Callable[[str], bytes]

SAME = [("obama_1", "obama_2"), ("obama_1", "obama_3"), ("biden_1", "biden_2"),
        ("kit_harington_1", "kit_harington_2"), ("rose_leslie_1", "rose_leslie_2"),
        ("alex_lacamoire_1", "alex_lacamoire_2")]
DIFFERENT = [("obama_1", "biden_2"), ("obama_2", "alex_lacamoire_2"), ("kit_harington_2", "rose_leslie_2"),
             ("lin_manuel_miranda_1", "alex_lacamoire_1"), ("lin_manuel_miranda_1", "obama_1")]


def jpeg(picture: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=90, **params)
    return buffer.getvalue()


def centre(box: tuple[int, int, int, int]) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def the_face(data: bytes) -> Face:
    found = faces_in_image(data)
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize(("first", "second"), SAME)
def test_two_photos_of_one_person_are_within_the_threshold(photo: Photo, first: str, second: str) -> None:
    assert distance(the_face(photo(first)).embedding, the_face(photo(second)).embedding) < DEFAULT_THRESHOLD


@pytest.mark.parametrize(("first", "second"), DIFFERENT)
def test_photos_of_different_people_are_beyond_the_threshold(photo: Photo, first: str, second: str) -> None:
    # With margin: a false accept would let an edit use someone who never consented.
    assert distance(the_face(photo(first)).embedding, the_face(photo(second)).embedding) > DEFAULT_THRESHOLD + 0.1


def test_an_enrolment_photo_gives_one_face_with_a_128_float_embedding(photo: Photo) -> None:
    face = enrolment_face(photo("obama_1"))
    assert len(face.embedding) == 128
    assert all(isinstance(x, float) for x in face.embedding)
    assert face.size >= faces.MIN_ENROLMENT_SIZE
    assert face.sharpness >= faces.MIN_ENROLMENT_SHARPNESS
    left, top, right, bottom = face.box
    assert 0 <= left < right <= 640
    assert 0 <= top < bottom <= 800


def test_a_photo_without_a_face_is_refused_as_no_face() -> None:
    gradient = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_face(jpeg(gradient))
    assert refused.value.code == "no_face"
    assert faces_in_image(jpeg(gradient)) == []


def test_a_photo_of_two_people_is_refused_as_several_faces(photo: Photo) -> None:
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_face(photo("two_people_obama_and_biden"))
    assert refused.value.code == "several_faces"
    assert "only your face" in str(refused.value)


@pytest.mark.parametrize("radius", [2, 3])
def test_a_blurred_photo_is_refused_as_blurry(photo: Photo, radius: int) -> None:
    with Image.open(io.BytesIO(photo("obama_1"))) as opened:
        blurred = opened.convert("RGB").filter(ImageFilter.GaussianBlur(radius))
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_face(jpeg(blurred))
    assert refused.value.code == "face_blurry"


def test_a_face_far_from_the_camera_is_refused_as_too_small(photo: Photo) -> None:
    with Image.open(io.BytesIO(photo("obama_1"))) as opened:
        small = opened.convert("RGB").resize((224, 280))
    # Still found (small images are upsampled for the detector), but too few pixels for a template.
    assert len(faces_in_image(jpeg(small))) == 1
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_face(jpeg(small))
    assert refused.value.code == "face_too_small"
    assert "closer" in str(refused.value)


@pytest.mark.parametrize("data", [b"", b"%PDF-1.7 not an image", b"\xff\xd8\xff\xe0" + b"\x00" * 64,
                                  b"\x89PNG\r\n\x1a\n" + b"garbage" * 10])
def test_bytes_that_are_not_an_image_are_unreadable(data: bytes) -> None:
    with pytest.raises(UnreadableImage):
        faces_in_image(data)
    with pytest.raises(EnrolmentRefused) as refused:
        enrolment_face(data)
    assert refused.value.code == "unreadable_image"
    assert isinstance(refused.value, UnreadableImage)


def test_a_truncated_photo_is_unreadable(photo: Photo) -> None:
    with pytest.raises(UnreadableImage):
        faces_in_image(photo("obama_1")[:5000])


def test_exif_orientation_is_applied_before_detection(photo: Photo) -> None:
    upright = the_face(photo("obama_1"))
    with Image.open(io.BytesIO(photo("obama_1"))) as opened:
        # Stored turned a quarter, with the EXIF tag (6: rotate 90 clockwise to display) a camera writes.
        sideways = opened.convert("RGB").transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    turned = the_face(jpeg(sideways, exif=exif))
    assert turned.box == pytest.approx(upright.box, abs=12)
    assert distance(turned.embedding, upright.embedding) < 0.2


def test_a_large_photo_is_analysed_downscaled_and_boxes_are_in_its_own_pixels(photo: Photo) -> None:
    normal = the_face(photo("obama_1"))
    with Image.open(io.BytesIO(photo("obama_1"))) as opened:
        large = opened.convert("RGB").resize((2560, 3200))
    big = the_face(jpeg(large))
    # HOG's boxes come in steps of scale, so compare where the face is rather than the exact box.
    assert centre(big.box) == pytest.approx(tuple(4 * x for x in centre(normal.box)), abs=64)
    assert 3 * (normal.box[2] - normal.box[0]) < big.box[2] - big.box[0] < 5 * (normal.box[2] - normal.box[0])
    assert big.size <= 1024  # measured in the analysed image, not the 3200-px original
    assert distance(big.embedding, normal.embedding) < 0.2


def test_distance_is_euclidean_and_refuses_embeddings_of_different_models() -> None:
    assert distance([0.0, 3.0], [4.0, 0.0]) == 5.0
    with pytest.raises(ValueError, match="different lengths"):
        distance([0.0] * 128, [0.0] * 512)


def test_unmatched_lists_faces_no_template_covers() -> None:
    near = Face(box=(0, 0, 10, 10), embedding=(0.0, 0.0), size=10, sharpness=100.0)
    far = Face(box=(20, 0, 30, 10), embedding=(1.0, 0.0), size=10, sharpness=100.0)
    [(face, closest)] = unmatched([near, far], [(0.1, 0.0), (0.0, 0.2)], 0.5)
    assert face == far
    assert closest == pytest.approx(0.9)
    assert unmatched([near], [], 0.5) == [(near, None)]
    assert nearest(far, [(0.0, 0.0), (0.7, 0.0)]) == pytest.approx(0.3)


@pytest.fixture
def without_dlib(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    faces._engine.cache_clear()
    monkeypatch.setitem(sys.modules, "dlib", None)  # what a missing package looks like to import
    yield
    faces._engine.cache_clear()


@pytest.mark.usefixtures("without_dlib")
def test_without_the_extra_matching_is_unavailable_not_skipped(photo: Photo) -> None:
    assert not faces.available()
    with pytest.raises(BiometricsUnavailable, match=r"\[face\] extra"):
        faces_in_image(photo("obama_1"))
    with pytest.raises(BiometricsUnavailable):
        enrolment_face(photo("obama_1"))
