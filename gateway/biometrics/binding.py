"""Biometric binding: templates enrolled at grant time, and each edit's media checked against them.

A consent granted with a template of a modality (its ``bindings``) may only be used on media in
which every face belongs to a subject whose consent the request names. The check runs in proxy mode,
before the decision takes a use: its result is a :class:`~consent.policy.BindingCheck` that the
decision policy turns into an allow or a stable deny reason. In decision mode nobody sees the media,
and the policy denies (``binding_requires_media``).

Fail closed: a model that is not installed raises :class:`BiometricsUnavailable` (503), never an
unchecked allow; a part that cannot be decoded finds no face.

Templates are sensitive personal data: only the embedding is kept, sealed under the master key, and
deleted (with an audit entry) as soon as no active consent names it any more.
"""

from __future__ import annotations

import os
import secrets
import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from typing import IO, Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from consent.journal import SYSTEM, Journal, Party
from consent.lifecycle import TemplateEvidence
from consent.models import CONSENT_ACTIVE, Consent
from consent.operations import OPERATIONS
from consent.policy import BindingCheck, DenyReason
from gateway.biometrics import faces as face_engine
from gateway.biometrics import kinds, matching
from gateway.biometrics import video as video_engine
from gateway.biometrics.faces import BiometricsUnavailable, Face
from gateway.biometrics.models import BiometricTemplate
from gateway.core.db import standalone
from gateway.core.errors import GatewayError
from gateway.keys.contacts import Vault

__all__ = [
    "BindingSettings",
    "BiometricsUnavailable",
    "MediaFile",
    "SelfieNeeded",
    "bound_modalities",
    "check_media",
    "delete_templates",
    "shred_unused",
    "store_face_template",
    "templates_of",
]

FACE = "face"
VOICE = "voice"
_DIMENSIONS = 128
# An image part is read whole to find its faces; larger ones are refused (a photo is a few MB).
MAX_IMAGE_BYTES = 64 * 1024 * 1024


class SelfieNeeded(GatewayError):
    """Face operations were approved without a photo to make the template from."""

    code = "selfie_needed"


@dataclass(frozen=True)
class BindingSettings:
    """Which modalities need a template, and how close a face must be to one (configuration)."""

    modalities: frozenset[str]
    face_threshold: float
    video_every_seconds: float
    video_max_frames: int
    liveness: bool = False  # enrol from a head-turn video instead of a still selfie
    liveness_yaw: float = 0.15
    liveness_max_seconds: float = 8.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BindingSettings:
        return cls(modalities=frozenset(config["BINDING_MODALITIES"]),
                   face_threshold=float(config["BINDING_FACE_THRESHOLD"]),
                   video_every_seconds=float(config["BINDING_VIDEO_EVERY_SECONDS"]),
                   video_max_frames=int(config["BINDING_VIDEO_MAX_FRAMES"]),
                   liveness=bool(config["BINDING_FACE_LIVENESS"]),
                   liveness_yaw=float(config["BINDING_LIVENESS_YAW"]),
                   liveness_max_seconds=float(config["BINDING_LIVENESS_MAX_SECONDS"]))


@dataclass(frozen=True)
class MediaFile:
    """One uploaded media part as the check reads it (the proxy's spooled file, rewound here)."""

    role: str
    file: IO[bytes]


def bound_modalities(operations: Iterable[str], settings: BindingSettings) -> list[str]:
    """The modalities among ``operations`` that need a template before a consent to them is granted."""
    wanted = {OPERATIONS[name].modality.value for name in operations if name in OPERATIONS}
    return sorted(wanted & settings.modalities)


# --- enrolment ----------------------------------------------------------------------------------------


def template_bytes(embedding: Sequence[float]) -> bytes:
    """The canonical bytes of a face template (little-endian float64): what is sealed and hashed."""
    if len(embedding) != _DIMENSIONS:
        raise ValueError(f"a face template has {_DIMENSIONS} numbers")
    return struct.pack(f"<{_DIMENSIONS}d", *embedding)


def store_face_template(session: Session, vault: Vault, subject_id: str, face: Face, *, journal: Journal,
                        now: datetime, liveness: Mapping[str, Any] | None = None) -> TemplateEvidence:
    """Seal and keep the subject's face template, made from their selfie's one face
    (:func:`~gateway.biometrics.faces.enrolment_face`). The photo itself is never stored."""
    plain = template_bytes(face.embedding)
    digest = sha256(plain).hexdigest()
    row_id = "tpl_" + secrets.token_urlsafe(18)
    session.add(BiometricTemplate(id=row_id, subject_id=subject_id, modality=FACE, model=face_engine.FACE_MODEL,
                                  sha256=digest, sealed=vault.seal_template(plain, row_id), created_at=now))
    journal.record("biometric.enrolled", Party("subject", subject_id), subject=subject_id,
                   detail={"modality": FACE, "model": face_engine.FACE_MODEL, "template_sha256": digest,
                           **({"liveness": dict(liveness)} if liveness else {})})
    return TemplateEvidence(model=face_engine.FACE_MODEL, sha256=digest)


# --- matching at edit time ----------------------------------------------------------------------------


def check_media(session: Session, vault: Vault, *, operation: str, consent_ids: Sequence[str],
                media: Sequence[MediaFile], settings: BindingSettings) -> BindingCheck | None:
    """Check what every part is, then compare every face in ``media`` with the templates of the named
    consents' subjects.

    None when no named consent requires binding for the operation's modality and every part is media
    the operation edits (nothing is matched; the ticket says so). The consents are read again by the
    decision, which also denies a consent that is not usable for other reasons first.
    """
    modality = OPERATIONS[operation].modality.value
    # Standalone reads: matching takes seconds, and on SQLite nothing may hold the write lock meanwhile.
    rows = session.execute(standalone(
        select(Consent.id, Consent.subject_id, Consent.bindings).where(Consent.id.in_(list(consent_ids))))).all()
    bound = any(modality in (row.bindings or {}) for row in rows)
    if bound and modality != FACE:
        # No voice model ships in a PyPI package without PyTorch (docs/DEPARTURES.md): fail closed.
        raise BiometricsUnavailable(f"{modality} binding is not available in this installation")
    # Unbound, the parts must still be what the operation edits: a voice consent must not carry a
    # stranger's face to the upstream. Bound, a part the gateway cannot read shows no face it could check.
    found = [kinds.kind_of(part.file) for part in media]
    refused = _kinds_refused(operation, media, found,
                             unreadable=DenyReason.NO_FACE_FOUND if bound else DenyReason.UNREADABLE_MEDIA)
    if refused is not None or not bound:
        return refused
    templates: list[Sequence[float]] = []
    for row in sorted(rows, key=lambda r: consent_ids.index(r.id)):
        digest = (row.bindings or {}).get(FACE)
        template = None if digest is None else _unsealed(session, vault, row.subject_id, digest)
        if template is None:
            return BindingCheck(FACE, DenyReason.BIOMETRIC_NOT_ENROLLED, row.id,
                                "the consent's subject has no face template (granted without one, or deleted)")
        templates.append(template)
    pictures = [(part, kind) for part, kind in zip(media, found, strict=True)
                if kind is not None and kind is not kinds.MediaKind.AUDIO]
    return _match(pictures, templates, settings)


def _accepted_kinds(operation: str) -> frozenset[kinds.MediaKind]:
    """What an operation edits: a voice operation sound; a face operation pictures, and a reenactment
    also the speech that drives the face."""
    if OPERATIONS[operation].modality.value == VOICE:
        return frozenset({kinds.MediaKind.AUDIO})
    if operation == "face_reenactment":
        return frozenset(kinds.MediaKind)
    return frozenset({kinds.MediaKind.IMAGE, kinds.MediaKind.VIDEO})


def _kinds_refused(operation: str, media: Sequence[MediaFile], found: Sequence[kinds.MediaKind | None], *,
                   unreadable: DenyReason) -> BindingCheck | None:
    """A deny for the first part that is no readable media, or media the operation does not edit."""
    modality = OPERATIONS[operation].modality.value
    accepted = _accepted_kinds(operation)
    for part, kind in zip(media, found, strict=True):
        if kind is None:
            return BindingCheck(modality, unreadable, None,
                                f"part {part.role!r} is not an image, video or audio file the gateway can read, "
                                "so what it shows cannot be checked")
        if kind not in accepted:
            return BindingCheck(modality, DenyReason.MEDIA_NOT_COVERED, None,
                                f"part {part.role!r} is {kind.value}: {operation} edits "
                                f"{' and '.join(sorted(k.value for k in accepted))} only")
    return None


def _unsealed(session: Session, vault: Vault, subject_id: str, digest: str) -> Sequence[float] | None:
    # The consent's own subject's template only: a digest alone must never lend one person's face to another.
    row = session.scalars(standalone(select(BiometricTemplate).where(
        BiometricTemplate.sha256 == digest, BiometricTemplate.subject_id == subject_id,
        BiometricTemplate.modality == FACE))).first()
    if row is None:
        return None
    plain = vault.unseal_template(row.sealed, row.id)
    if sha256(plain).hexdigest() != digest:
        return None  # a row that does not hold what the record names proves nothing
    return struct.unpack(f"<{_DIMENSIONS}d", plain)


def _match(pictures: Sequence[tuple[MediaFile, kinds.MediaKind]], templates: Sequence[Sequence[float]],
           settings: BindingSettings) -> BindingCheck:
    """Every image and video part must show a face, and every face found must match a template."""
    for part, kind in pictures:
        found = _faces_of(part, kind, settings)
        if found is None:
            # Fail closed: a part the gateway cannot look into may show anyone to an upstream that can.
            return BindingCheck(FACE, DenyReason.NO_FACE_FOUND, None,
                                f"part {part.role!r} is not an image or video the gateway can read, so the faces "
                                "in it cannot be checked")
        for at, in_frame in found:
            for face, nearest in matching.unmatched(in_frame, templates, settings.face_threshold):
                where = f"part {part.role!r}" + ("" if at is None else f", frame at {at:.2f} s")
                return BindingCheck(
                    FACE, DenyReason.BIOMETRIC_MISMATCH, None,
                    f"{where}: a face at {list(face.box)} matches no named subject "
                    f"(nearest distance {_shown(nearest)}, threshold {settings.face_threshold:.3f})")
        if not any(in_frame for _at, in_frame in found):
            # Each picture must show someone: in a swap, a target whose face the detector misses would
            # otherwise go unchecked beside a source that matched.
            return BindingCheck(FACE, DenyReason.NO_FACE_FOUND, None, f"no face found in part {part.role!r}")
    if not pictures:
        return BindingCheck(FACE, DenyReason.NO_FACE_FOUND, None, "no image or video part to find a face in")
    return BindingCheck(FACE)


def _shown(distance: float | None) -> str:
    return "none: no template" if distance is None else f"{distance:.3f}"


def _faces_of(part: MediaFile, kind: kinds.MediaKind,
              settings: BindingSettings) -> list[tuple[float | None, list[Face]]] | None:
    """Faces of an image part, or of frames sampled from a video part; None for one that cannot be read.

    ``kind`` is what the bytes are (:func:`kinds.kind_of`), not the part's declared type: an image that
    says it is a video is still read as an image.
    """
    part.file.seek(0)
    try:
        if kind is kinds.MediaKind.IMAGE:
            if os.fstat(part.file.fileno()).st_size > MAX_IMAGE_BYTES:
                return None  # not decoded whole into memory; refused rather than waved through
            try:
                return [(None, face_engine.faces_in_image(part.file.read()))]
            except face_engine.UnreadableImage:
                return None
        try:
            frames = video_engine.faces_in_video(part.file, every_seconds=settings.video_every_seconds,
                                                 max_frames=settings.video_max_frames)
            return [(at, found) for at, found in frames]
        except video_engine.UnreadableVideo:
            return None
    finally:
        part.file.seek(0)


# --- deletion -----------------------------------------------------------------------------------------


def templates_of(session: Session, subject_id: str) -> list[BiometricTemplate]:
    return list(session.scalars(select(BiometricTemplate).where(BiometricTemplate.subject_id == subject_id)
                                .order_by(BiometricTemplate.created_at)))


def shred_unused(session: Session, *, journal: Journal, now: datetime, subject_ids: Collection[str] | None = None,
                 actor: Party | None = None) -> int:
    """Delete every template that no active consent names any more (of ``subject_ids``, or everyone's).

    Deleting the sealed row is the crypto-shredding: nothing else holds the embedding. Each deletion
    is an audit entry naming the digest, never the template.
    """
    query = select(BiometricTemplate)
    if subject_ids is not None:
        query = query.where(BiometricTemplate.subject_id.in_(list(subject_ids)))
    candidates = list(session.scalars(query))
    if not candidates:
        return 0
    active = session.execute(select(Consent.bindings).where(
        Consent.subject_id.in_({t.subject_id for t in candidates}), Consent.status == CONSENT_ACTIVE,
        Consent.expires_at > now, Consent.bindings.is_not(None))).scalars()
    named = {digest for bindings in active for digest in (bindings or {}).values()}
    unused = [t for t in candidates if t.sha256 not in named]
    for template in unused:
        _delete(session, template, journal=journal, actor=actor or SYSTEM,
                reason="no active consent needs it")
    return len(unused)


def delete_templates(session: Session, subject_id: str, *, journal: Journal, now: datetime) -> int:
    """The subject deletes all their templates (the consents that need them must end first)."""
    removed = templates_of(session, subject_id)
    for template in removed:
        _delete(session, template, journal=journal, actor=Party("subject", subject_id), reason="deleted by the subject")
    return len(removed)


def _delete(session: Session, template: BiometricTemplate, *, journal: Journal, actor: Party, reason: str) -> None:
    session.execute(delete(BiometricTemplate).where(BiometricTemplate.id == template.id))
    journal.record("biometric.deleted", actor, subject=template.subject_id,
                   detail={"modality": template.modality, "model": template.model,
                           "template_sha256": template.sha256, "reason": reason})
