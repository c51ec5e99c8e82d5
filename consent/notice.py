# ruff: noqa: RUF001 -- Chinese text is punctuated with full-width marks on purpose.
"""The notice a subject reads before consenting: versioned text in English and Simplified Chinese.

The consent screen shows exactly the strings of a :class:`NoticeText` and nothing else in between,
and the record carries the notice's version and the SHA-256 of :attr:`NoticeText.text`, so anyone
holding the record can re-render the notice for that version and check what the person was told.
A wording change is a new entry in :data:`TEMPLATES` with a new version; old versions stay here for
as long as records that name them exist.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import MappingProxyType

from consent.errors import InvalidTerms
from consent.operations import DEFAULT_LOCALE, LOCALES, OPERATIONS, Modality

CURRENT_VERSION = "2026-11-21"


@dataclass(frozen=True)
class AlgorithmFacts:
    filing_number: str
    name: str
    provider: str


@dataclass(frozen=True)
class NoticeFacts:
    """Everything the notice states; the same facts always render the same text."""

    app_name: str
    operations: tuple[str, ...]
    purpose: str
    algorithms: tuple[AlgorithmFacts, ...] | None  # None = any registered algorithm
    duration_days: int
    max_uses: int | None
    portal_url: str  # where the subject can withdraw later


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class OperationText:
    name: str
    label: str
    description: str


@dataclass(frozen=True)
class NoticeText:
    version: str
    locale: str
    title: str
    intro: str
    operations: tuple[OperationText, ...]
    sections: tuple[Section, ...]

    @property
    def text(self) -> str:
        """The canonical plain text of everything shown; what :attr:`sha256` fingerprints."""
        lines = [self.title, "", self.intro, ""]
        lines += [f"[ ] {op.label} ({op.name}): {op.description}" for op in self.operations]
        for section in self.sections:
            lines += ["", section.heading, *section.paragraphs]
        return "\n".join(lines) + "\n"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


_EN = MappingProxyType({
    "title.face": "{app} asks for your consent to edit your face",
    "title.voice": "{app} asks for your consent to edit your voice",
    "title.face+voice": "{app} asks for your consent to edit your face and voice",
    "intro": (
        "{app} wants to use the editing operations below on your {what}. Each operation needs its own "
        "consent: tick only the ones you agree to. Nothing is ticked for you, and you may decline all."
    ),
    "what.face": "face",
    "what.voice": "voice",
    "what.face+voice": "face and voice",
    "h.purpose": "Why",
    "purpose": "{app} states this purpose: “{purpose}”",
    "h.algorithms": "Which algorithms",
    "algorithms.any": (
        "Any algorithm registered with this gateway for the operations you tick. Every registered "
        "algorithm is filed with the regulator and carries a filing number."
    ),
    "algorithms.intro": "Only these filed algorithms may be used:",
    "algorithm": "{name} by {provider}, filing number {filing_number}",
    "h.duration": "How long",
    "duration": "Your consent lasts {days} days from the moment you approve.",
    "uses.limited": "It can be used for at most {uses} edits.",
    "uses.unlimited": "There is no limit on the number of edits within that time.",
    "h.data": "Your face and voice are sensitive personal information",
    "data": (
        "This gateway never stores your photos or recordings. It keeps only fingerprints (SHA-256) of "
        "the media edited under your consent, so that each use can be checked later."
    ),
    "h.record": "Your record",
    "record": (
        "When you approve, the gateway signs a record of exactly what you agreed to, including this "
        "notice's version and fingerprint. The record and a log of every use are kept for at least three "
        "years. You can download the record at any time."
    ),
    "h.withdraw": "You can withdraw at any time",
    "withdraw": (
        "Withdraw your consent whenever you like at {portal}. It takes effect at once: no edit is allowed "
        "after you withdraw. Edits made before then are not undone."
    ),
})

_ZH = MappingProxyType({
    "title.face": "{app} 请求您同意编辑您的面部",
    "title.voice": "{app} 请求您同意编辑您的声音",
    "title.face+voice": "{app} 请求您同意编辑您的面部和声音",
    "intro": (
        "{app} 希望对您的{what}进行以下编辑操作。每项操作都需要您单独同意：只勾选您同意的操作。"
        "我们不会替您预先勾选任何一项，您也可以全部拒绝。"
    ),
    "what.face": "面部",
    "what.voice": "声音",
    "what.face+voice": "面部和声音",
    "h.purpose": "目的",
    "purpose": "{app} 说明的目的：“{purpose}”",
    "h.algorithms": "使用哪些算法",
    "algorithms.any": "本网关为您勾选的操作登记的任一算法。每个登记的算法均已向监管部门备案，并具有备案编号。",
    "algorithms.intro": "只能使用以下已备案的算法：",
    "algorithm": "{provider} 的 {name}，备案编号 {filing_number}",
    "h.duration": "有效期",
    "duration": "您的同意自您批准之时起 {days} 天内有效。",
    "uses.limited": "最多可用于 {uses} 次编辑。",
    "uses.unlimited": "在有效期内不限编辑次数。",
    "h.data": "您的面部和声音属于敏感个人信息",
    "data": "本网关从不保存您的照片或录音，只保存在您同意下被编辑的媒体的指纹（SHA-256），以便日后核查每一次使用。",
    "h.record": "您的记录",
    "record": (
        "您批准后，网关会对您所同意的内容（包括本告知的版本和指纹）签署一份记录。"
        "该记录以及每次使用的日志将至少保存三年。您可以随时下载该记录。"
    ),
    "h.withdraw": "您可以随时撤回",
    "withdraw": "您可以随时在 {portal} 撤回同意，撤回立即生效：撤回后不再允许任何编辑。撤回前已完成的编辑不会被撤销。",
})

TEMPLATES: MappingProxyType[str, MappingProxyType[str, MappingProxyType[str, str]]] = MappingProxyType({
    CURRENT_VERSION: MappingProxyType({"en": _EN, "zh-CN": _ZH}),
})


def render(facts: NoticeFacts, locale: str, version: str = CURRENT_VERSION) -> NoticeText:
    """The notice for ``facts`` in ``locale`` (English when the locale is not offered)."""
    if version not in TEMPLATES:
        raise InvalidTerms(f"unknown notice version {version!r}")
    locale = locale if locale in LOCALES else DEFAULT_LOCALE
    t = TEMPLATES[version][locale]
    unknown = [name for name in facts.operations if name not in OPERATIONS]
    if unknown or not facts.operations:
        raise InvalidTerms(f"a notice names known operations; not {unknown}")
    ordered = [OPERATIONS[name] for name in OPERATIONS if name in facts.operations]
    modalities = [m.value for m in Modality if any(op.modality is m for op in ordered)]
    kind = "+".join(modalities)
    app = facts.app_name

    if facts.algorithms is None:
        algorithm_lines: tuple[str, ...] = (t["algorithms.any"],)
    else:
        algorithm_lines = (
            t["algorithms.intro"],
            *(t["algorithm"].format(name=a.name, provider=a.provider, filing_number=a.filing_number)
              for a in facts.algorithms),
        )
    uses = (t["uses.unlimited"] if facts.max_uses is None
            else t["uses.limited"].format(uses=facts.max_uses))
    return NoticeText(
        version=version,
        locale=locale,
        title=t[f"title.{kind}"].format(app=app),
        intro=t["intro"].format(app=app, what=t[f"what.{kind}"]),
        operations=tuple(OperationText(op.name, op.label(locale), op.description(locale)) for op in ordered),
        sections=(
            Section(t["h.purpose"], (t["purpose"].format(app=app, purpose=facts.purpose),)),
            Section(t["h.algorithms"], algorithm_lines),
            Section(t["h.duration"], (t["duration"].format(days=facts.duration_days), uses)),
            Section(t["h.data"], (t["data"],)),
            Section(t["h.record"], (t["record"],)),
            Section(t["h.withdraw"], (t["withdraw"].format(portal=facts.portal_url),)),
        ),
    )
