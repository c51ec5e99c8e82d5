from __future__ import annotations

import pytest

from consent import operations
from consent.errors import UnknownOperation
from consent.operations import Modality


def test_catalogue_lists_the_six_operations_face_first() -> None:
    assert list(operations.OPERATIONS) == [
        "face_swap",
        "face_reenactment",
        "face_attribute_edit",
        "voice_clone",
        "voice_conversion",
        "voice_edit",
    ]


@pytest.mark.parametrize(
    ("name", "modality", "scope"),
    [
        ("face_swap", Modality.FACE, "edit:face"),
        ("face_reenactment", Modality.FACE, "edit:face"),
        ("face_attribute_edit", Modality.FACE, "edit:face"),
        ("voice_clone", Modality.VOICE, "edit:voice"),
        ("voice_conversion", Modality.VOICE, "edit:voice"),
        ("voice_edit", Modality.VOICE, "edit:voice"),
    ],
)
def test_each_operation_has_a_modality_and_the_modality_a_scope(name: str, modality: Modality, scope: str) -> None:
    assert operations.modality_of(name) is modality
    assert operations.scope_for(modality) == scope


@pytest.mark.parametrize("name", ["", "FACE_SWAP", "lip_sync", "face_swap "])
def test_unknown_operations_are_refused_with_a_stable_code(name: str) -> None:
    with pytest.raises(UnknownOperation) as info:
        operations.modality_of(name)
    assert info.value.code == "unknown_operation"


@pytest.mark.parametrize("name", list(operations.OPERATIONS))
def test_every_operation_is_described_in_english_and_simplified_chinese(name: str) -> None:
    entry = operations.operation(name)
    for locale in operations.LOCALES:
        assert entry.label(locale).strip()
        assert entry.description(locale).strip()
    assert entry.description("en").isascii()
    assert any("\u4e00" <= ch <= "\u9fff" for ch in entry.description("zh-CN"))
    assert "您" in entry.description("zh-CN")  # addressed to the subject, politely


def test_labels_and_descriptions_are_distinct_per_operation() -> None:
    for locale in operations.LOCALES:
        labels = [op.label(locale) for op in operations.OPERATIONS.values()]
        descriptions = [op.description(locale) for op in operations.OPERATIONS.values()]
        assert len(set(labels)) == len(labels)
        assert len(set(descriptions)) == len(descriptions)


def test_an_unsupported_locale_falls_back_to_english() -> None:
    entry = operations.operation("voice_clone")
    assert entry.description("fr") == entry.description("en")
    assert entry.label("fr") == "Voice cloning"
