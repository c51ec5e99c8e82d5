# ruff: noqa: RUF001 -- Chinese text is punctuated with full-width commas on purpose.
"""The catalogue of editing operations a subject can consent to, one by one.

The order of :data:`OPERATIONS` is the order the consent screen lists them and the order records name
them in, so the same choice always yields the same record.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from consent.errors import UnknownOperation

DEFAULT_LOCALE = "en"
LOCALES = ("en", "zh-CN")


class Modality(StrEnum):
    FACE = "face"
    VOICE = "voice"


@dataclass(frozen=True)
class Operation:
    name: str
    modality: Modality
    # locale -> text, one entry for each of LOCALES.
    labels: MappingProxyType[str, str]
    descriptions: MappingProxyType[str, str]

    def label(self, locale: str) -> str:
        """Short name for the checkbox, in ``locale`` (English if it is not one of :data:`LOCALES`)."""
        return self.labels.get(locale, self.labels[DEFAULT_LOCALE])

    def description(self, locale: str) -> str:
        """What the operation does to the subject, in plain words, in ``locale`` (or English)."""
        return self.descriptions.get(locale, self.descriptions[DEFAULT_LOCALE])


def _operation(name: str, modality: Modality, en: tuple[str, str], zh: tuple[str, str]) -> Operation:
    return Operation(
        name=name,
        modality=modality,
        labels=MappingProxyType({"en": en[0], "zh-CN": zh[0]}),
        descriptions=MappingProxyType({"en": en[1], "zh-CN": zh[1]}),
    )


OPERATIONS: MappingProxyType[str, Operation] = MappingProxyType(
    {
        op.name: op
        for op in (
            _operation(
                "face_swap",
                Modality.FACE,
                ("Face swap", "Put your face onto another person's body in a photo or video."),
                ("换脸", "把您的脸替换到其他人的照片或视频中。"),
            ),
            _operation(
                "face_reenactment",
                Modality.FACE,
                (
                    "Face reenactment",
                    "Make your face in a photo or video move, speak or show expressions you did not make.",
                ),
                ("面部驱动", "让照片或视频中您的脸做出您本人没有做过的动作、口型或表情。"),
            ),
            _operation(
                "face_attribute_edit",
                Modality.FACE,
                (
                    "Face attribute edit",
                    "Change how your face looks, such as age, hairstyle, expression or make-up.",
                ),
                ("人脸属性编辑", "改变您面部的外观，例如年龄、发型、表情或妆容。"),
            ),
            _operation(
                "voice_clone",
                Modality.VOICE,
                ("Voice cloning", "Create a synthetic voice that sounds like you and can say new words."),
                ("声音克隆", "生成一个听起来像您的合成声音，并用它说出新的内容。"),
            ),
            _operation(
                "voice_conversion",
                Modality.VOICE,
                ("Voice conversion", "Turn someone else's speech into speech that sounds like your voice."),
                ("声音转换", "把其他人说的话转换成听起来像您的声音。"),
            ),
            _operation(
                "voice_edit",
                Modality.VOICE,
                ("Voice edit", "Change a recording of your voice, such as its pitch, speed or words."),
                ("声音编辑", "修改您的录音，例如音调、语速或说话内容。"),
            ),
        )
    }
)

_SCOPES = MappingProxyType({Modality.FACE: "edit:face", Modality.VOICE: "edit:voice"})


def operation(name: str) -> Operation:
    """The catalogue entry for ``name``."""
    try:
        return OPERATIONS[name]
    except KeyError:
        raise UnknownOperation(f"{name!r} is not an operation; known: {', '.join(OPERATIONS)}") from None


def modality_of(name: str) -> Modality:
    return operation(name).modality


def scope_for(modality: Modality) -> str:
    """The OAuth scope an app needs to edit media of this modality."""
    return _SCOPES[modality]
