"""The proxy's output transform that labels every edited output before the app gets any of it.

``gateway.proxy.upstream.init_app`` installs it (first, so later transforms see the labelled output).
For each answer of an upstream:

1. the first bytes say the container (:func:`gateway.labels.verifier.sniff`); a format the gateway cannot
   label is refused (502 ``label_unsupported``, the edit recorded ``failed``) unless ``LABEL_UNSUPPORTED``
   is ``pass``: then it streams through unlabelled as before, with an ``output.unlabelled`` audit entry;
2. the whole answer is spooled to a temporary file (in memory up to 1 MiB, then under ``UPLOAD_DIR``),
   because the signature covers all of it;
3. the explicit mark is drawn (images; video frames where ``LABEL_VIDEO_MARK_SECONDS`` is set) or played (WAV,
   MP3) unless the app is one of ``LABEL_UNMARKED_CLIENTS``; an output without one gets an ``output.unmarked``
   audit entry saying why;
4. the label is written with a placeholder signature of the final length, the content digest is taken
   on the settled file, the label is signed and written again, and the result is verified (a label that
   would not verify is never sent). Where the gateway produced the bytes, the digest is taken while
   they are written (PNG, JPEG) or spooled (MP4) and the signature is checked against it, instead of
   reading the whole file twice more (docs/LABELS.md, "How the gateway writes it");
5. the labelled file streams to the app; the proxy hashes what leaves for the outcome's ``output_sha256``.
"""

from __future__ import annotations

import base64
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any

import httpx
from flask import Flask, current_app, g, has_request_context
from sqlalchemy.exc import SQLAlchemyError

from consent.journal import SYSTEM
from gateway.auditing.trail import AuditJournal
from gateway.core.clock import utcnow
from gateway.core.config import ConfigError
from gateway.core.db import db
from gateway.keys import keyring
from gateway.keys.store import KeyStoreError, Signer
from gateway.labels import aigc, av_marks, containers, isobmff, marks
from gateway.labels._optional import available, import_optional
from gateway.labels.errors import LabelRefused, LabelUnavailable, LabelUnsupported
from gateway.labels.verifier import FoundLabel, LabelError, parse_label, read_label, sniff, verify_found, verify_label
from gateway.proxy import upstream

log = logging.getLogger(__name__)

__all__ = ["LabelPolicy", "init_app", "label_output"]

UNSUPPORTED_POLICIES = ("refuse", "pass")
_EXT = "consent_gateway.labels"
_SPOOL_IN_MEMORY = 1024 * 1024
_STREAM_CHUNK = 256 * 1024
_SNIFF_BYTES = 16
_UNKNOWN_DIGEST = "0" * 64
# A visible mark shorter than this is not worth a full re-encode (the "at least the first 2 seconds").
_MIN_VIDEO_MARK_SECONDS = 2.0


@dataclass(frozen=True)
class LabelPolicy:
    """The ``LABEL_*`` configuration, checked once when the app starts."""

    producer: str
    unsupported: str
    mark: marks.ImageMark
    audio_cue_seconds: float
    video_mark_seconds: float
    unmarked_clients: frozenset[str]
    max_image_pixels: int
    max_output_bytes: int
    spool_dir: str | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LabelPolicy:
        unsupported = str(config["LABEL_UNSUPPORTED"])
        if unsupported not in UNSUPPORTED_POLICIES:
            raise ConfigError(f"LABEL_UNSUPPORTED is one of {UNSUPPORTED_POLICIES}, not {unsupported!r}")
        corner = str(config["LABEL_MARK_CORNER"])
        if corner not in marks.CORNERS:
            raise ConfigError(f"LABEL_MARK_CORNER is one of {marks.CORNERS}, not {corner!r}")
        cue = float(config["LABEL_AUDIO_CUE_SECONDS"])
        if not 0.1 <= cue <= 5:
            raise ConfigError("LABEL_AUDIO_CUE_SECONDS is between 0.1 and 5 (to send audio without the cue, "
                              "name the app in LABEL_UNMARKED_CLIENTS)")
        video = float(config["LABEL_VIDEO_MARK_SECONDS"] or 0)
        if video != 0 and not video >= _MIN_VIDEO_MARK_SECONDS:
            raise ConfigError(f"LABEL_VIDEO_MARK_SECONDS is 0 (no visible mark on video) or at least "
                              f"{_MIN_VIDEO_MARK_SECONDS:g}, not {video:g}")
        configured_font = str(config["LABEL_MARK_FONT"] or "")
        font = marks.find_cjk_font(configured_font)
        if configured_font and font is None:
            raise ConfigError(f"LABEL_MARK_FONT {configured_font!r} is not a file")
        clients = config["LABEL_UNMARKED_CLIENTS"] or ()
        if isinstance(clients, str):
            clients = [c.strip() for c in clients.split(",") if c.strip()]
        return cls(
            producer=str(config["LABEL_PRODUCER"] or ""),
            unsupported=unsupported,
            mark=marks.ImageMark(corner=corner, font_path=font),
            audio_cue_seconds=cue,
            video_mark_seconds=video,
            unmarked_clients=frozenset(str(c) for c in clients),
            max_image_pixels=int(config["LABEL_MAX_IMAGE_PIXELS"]),
            max_output_bytes=int(config["LABEL_MAX_OUTPUT_MB"]) * 1024 * 1024,
            spool_dir=str(config["UPLOAD_DIR"] or "") or None,
        )


def init_app(app: Flask) -> None:
    """Check the configuration and register :func:`label_output` on the proxy."""
    policy = LabelPolicy.from_config(app.config)
    app.extensions[_EXT] = policy
    if policy.mark.font_path is None:
        log.warning("no CJK font found (install fonts-wqy-zenhei or fonts-noto-cjk, or set "
                    "CONSENT_GATEWAY_LABEL_MARK_FONT): image marks read 'AI-generated' only, without 'AI生成'")
    missing = [name for name in ("PIL", "mutagen") if not available(name)]
    if missing:
        log.warning("the [labels] extra is not installed (%s missing): edited outputs cannot be labelled and "
                    "are refused (502 label_unavailable)", ", ".join(missing))
    if not available("av"):
        log.warning("PyAV (the [labels] extra) is not installed: MP3 and non-PCM WAV outputs get no audible cue%s, "
                    "only the implicit label and an output.unmarked audit entry",
                    " and MP4 outputs no visible mark" if policy.video_mark_seconds else "")
    upstream.add_output_transform(app, label_output)


def policy_of(app: Flask) -> LabelPolicy:
    policy = app.extensions.get(_EXT)
    if not isinstance(policy, LabelPolicy):
        raise RuntimeError("gateway.labels.transform.init_app was not called for this app")
    return policy


def label_output(context: upstream.EditContext, output: upstream.Output) -> upstream.Output:
    """The labelled output, or a refusal (:class:`~gateway.labels.errors.LabelRefused`)."""
    policy = policy_of(current_app)
    chunks = iter(output.chunks)
    head = _head(chunks)
    container = sniff(head[0][:_SNIFF_BYTES] if len(head) == 1 else b"".join(head)[:_SNIFF_BYTES])
    if container is None:
        refusal = LabelUnsupported(f"the upstream's answer (sent as {output.content_type!r}) is not a PNG, JPEG, "
                                   "WAV, MP3 or MP4/M4A file, the formats the gateway can label")
        # Passed through as the proxy always did: nothing is spooled for an output that is not labelled.
        return _unlabelled(context, output, _Chained(head, chunks), policy, refusal)
    # An MP4's content digest (its samples) is taken while it is spooled: labelling leaves them as they are.
    samples = isobmff.SampleDigest() if container == "mp4" else None
    spool = _spool(head, chunks, policy, samples)
    try:
        labelled, unmarked = _label(context, container, spool, policy, samples)
    except LabelUnavailable as refusal:
        spool.seek(0)
        return _unlabelled(context, output, _SpoolStream(spool), policy, refusal)
    except BaseException:
        spool.close()
        raise
    try:
        if unmarked is not None:
            detail = {"detail": unmarked.detail} if unmarked.detail else {}
            _audit("output.unmarked", context, reason=unmarked.reason, container=container, **detail)
        labelled.seek(0)
    except BaseException:
        labelled.close()
        raise
    return upstream.Output(content_type=output.content_type, chunks=_SpoolStream(labelled), headers=output.headers)


@dataclass(frozen=True)
class Unmarked:
    """Why an output has no explicit mark: ``reason`` for the audit entry, ``detail`` for a person."""

    reason: str
    detail: str = ""


def _label(context: upstream.EditContext, container: str, spool: IO[bytes], policy: LabelPolicy,
           samples: isobmff.SampleDigest | None = None) -> tuple[IO[bytes], Unmarked | None]:
    """Mark (unless waived), label and sign; the labelled file and why it has no explicit mark (or None)."""
    waived = context.client_id in policy.unmarked_clients
    # Checked before the spool is touched, so a missing extra can still let the output pass (if allowed).
    if container in ("wav", "mp3", "mp4"):
        import_optional("mutagen")
    elif not waived:
        import_optional("PIL")
    signer = _signer()
    current, unmarked = _mark(container, spool, policy, waived=waived)
    if container == "mp4" and current is not spool:
        # Marked frames are new samples: the digest taken while spooling is not theirs.
        samples = _sample_digest(current)
    provenance = aigc.Provenance(decision_id=context.decision_id, client_id=context.client_id,
                                 operation=context.operation, algorithm=context.algorithm,
                                 consents=tuple(context.consents), reference=context.reference)
    fields = aigc.label_fields(policy.producer or signer.issuer, provenance)
    header = aigc.signature_header(signer, provenance, container=container, content_sha256=_UNKNOWN_DIGEST,
                                   now=utcnow())
    spooled = samples.result() if samples is not None else None
    try:
        if spooled is not None:
            return _label_mp4(current, header, fields, signer, spooled=spooled, policy=policy), unmarked
        # The placeholder has the signature's final length, so the container settles its layout now
        # (tag sizes, padding, an MP3's ID3v1) and the digest taken next is the one the label keeps.
        carrier = containers.write_carrier(
            container, current, aigc.label_value(aigc.with_signature(fields, aigc.placeholder(header))),
            lambda: _new_file(policy))
        if carrier.media is not current:
            current.close()
            current = carrier.media
        # C2PA (optional) goes in now: after the label's carrier is settled, before the label's digest, which
        # must cover the manifest; the manifest's own hash leaves the carrier out (c2pa_credentials explains).
        from gateway.labels.c2pa_credentials import add_content_credentials  # here: one edit in a shared file

        carrier = add_content_credentials(current_app, carrier, provenance)
        # PNG and JPEG: hashed while written, by the writer that produced these very bytes; the others
        # are hashed here, the way the verifier hashes them.
        digest = carrier.content_sha256 or read_label(current).content_sha256
        header = {**header, "content": {"container": container, "sha256": digest}}
        value = aigc.label_value(aigc.with_signature(fields, aigc.sign(fields, header, signer)))
        containers.rewrite_carrier(carrier, value)
        if carrier.content_sha256 is None:
            # What any verifier will check, checked before the app gets a byte.
            verify_label(current, _jwks(signer), issuer=signer.issuer)
        else:
            _check(container, digest, value, signer)
    except LabelError as exc:
        current.close()
        raise LabelRefused(f"the labelled {container} output does not verify ({exc.code}: {exc})") from exc
    except BaseException:
        current.close()
        raise
    return current, unmarked


def _mark(container: str, media: IO[bytes], policy: LabelPolicy, *,
          waived: bool) -> tuple[IO[bytes], Unmarked | None]:
    """The media with the explicit mark, or as they are and why they have none."""
    if waived:
        return media, Unmarked("mark_waived")
    if container in ("png", "jpeg"):
        return _rewrite(media, policy, lambda source, out: marks.mark_image(
            source, container, out, mark=policy.mark, max_pixels=policy.max_image_pixels)), None
    if container == "wav" and marks.is_pcm_wav(media):
        return _rewrite(media, policy,
                        lambda source, out: marks.cue_wav(source, out, seconds=policy.audio_cue_seconds)), None
    if container in ("wav", "mp3"):
        return _rewrite_if_possible(media, policy, lambda source, out: av_marks.cue_audio(
            source, out, container, seconds=policy.audio_cue_seconds))
    if not policy.video_mark_seconds:
        # Off by default: marking video frames means encoding the whole video again (docs/LABELS.md).
        reason = ("no explicit mark on MP4/M4A output: LABEL_VIDEO_MARK_SECONDS is 0 (video frames are marked only "
                  "when it is set; MP4 audio gets no cue)")
        log.warning("output sent with the implicit label only, without the explicit mark: %s", reason)
        return media, Unmarked("mark_unsupported", reason)
    return _rewrite_if_possible(media, policy, lambda source, out: av_marks.mark_video(
        source, out, mark=policy.mark, seconds=policy.video_mark_seconds))


def _rewrite_if_possible(media: IO[bytes], policy: LabelPolicy, make: Callable[[IO[bytes], IO[bytes]], None]
                         ) -> tuple[IO[bytes], Unmarked | None]:
    """:func:`_rewrite` where FFmpeg may be unable to: then ``media`` as it was, and why (for the audit entry)."""
    out = _new_file(policy)
    try:
        make(media, out)
    except av_marks.MarkUnsupported as exc:
        out.close()
        log.warning("output sent with the implicit label only, without the explicit mark: %s", exc)
        media.seek(0)
        return media, Unmarked("mark_unsupported", str(exc))
    except BaseException:
        out.close()
        media.close()
        raise
    media.close()
    return out, None


def _sample_digest(media: IO[bytes]) -> isobmff.SampleDigest:
    samples = isobmff.SampleDigest()
    media.seek(0)
    while chunk := media.read(_STREAM_CHUNK):
        samples.update(chunk)
    return samples


def _label_mp4(media: IO[bytes], header: dict[str, Any], fields: dict[str, str], signer: Signer, *,
               spooled: tuple[str, list[int]], policy: LabelPolicy) -> IO[bytes]:
    """An MP4 whose samples were hashed while spooled: signed first, then written once (in place)."""
    digest, sizes = spooled
    header = {**header, "content": {"container": "mp4", "sha256": digest}}
    value = aigc.label_value(aigc.with_signature(fields, aigc.sign(fields, header, signer)))
    labelled = _write("mp4", media, value, policy)
    # The tag writer rewrites moov and may move mdat boxes, never their payloads: the same boxes of the
    # same sizes mean the same samples, without hashing 50 MB again.
    if containers.mp4_sample_sizes(labelled) != sizes:
        raise LabelRefused("writing the MP4 label changed the media boxes")
    _check("mp4", digest, value, signer)
    return labelled


def _check(container: str, digest: str, value: str, signer: Signer) -> None:
    """Verify the label as written against the content digest taken while the content was written."""
    found = FoundLabel(container=container, content_sha256=digest, fields=parse_label(value))
    verify_found(found, _jwks(signer), issuer=signer.issuer)


def _write(container: str, media: IO[bytes], value: str, policy: LabelPolicy) -> IO[bytes]:
    written = containers.write_label(container, media, value, lambda: _new_file(policy))
    if written is not media:
        media.close()
    return written


def _rewrite(media: IO[bytes], policy: LabelPolicy, make: Callable[[IO[bytes], IO[bytes]], None]) -> IO[bytes]:
    """A new file made from ``media`` by ``make(media, out)``; ``media`` is closed either way."""
    out = _new_file(policy)
    try:
        make(media, out)
    except BaseException:
        out.close()
        raise
    finally:
        media.close()
    return out


def _new_file(policy: LabelPolicy) -> IO[bytes]:
    try:
        return tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY, mode="w+b", dir=policy.spool_dir)
    except OSError as exc:
        raise LabelRefused(f"no temporary file for labelling: {exc}") from exc


def _head(chunks: Iterator[bytes]) -> list[bytes]:
    """The first chunks, at least enough bytes to tell the container (fewer only at the end)."""
    head: list[bytes] = []
    size = 0
    try:
        while size < _SNIFF_BYTES:
            chunk = next(chunks, None)
            if chunk is None:
                break
            head.append(chunk)
            size += len(chunk)
    except httpx.HTTPError as exc:
        raise _broken(exc) from exc
    return head or [b""]


def _spool(head: list[bytes], chunks: Iterator[bytes], policy: LabelPolicy,
           samples: isobmff.SampleDigest | None = None) -> IO[bytes]:
    spool = _new_file(policy)
    size = 0
    try:
        for chunk in _Chained(head, chunks):
            size += len(chunk)
            if size > policy.max_output_bytes:
                raise LabelRefused(f"outputs of at most {policy.max_output_bytes // (1024 * 1024)} MiB are labelled "
                                   "(CONSENT_GATEWAY_LABEL_MAX_OUTPUT_MB)")
            spool.write(chunk)
            if samples is not None:
                samples.update(chunk)
    except httpx.HTTPError as exc:
        spool.close()
        raise _broken(exc) from exc
    except OSError as exc:
        spool.close()
        raise LabelRefused(f"no room to spool the output for labelling: {exc}") from exc
    except BaseException:
        spool.close()
        raise
    return spool


def _broken(exc: httpx.HTTPError) -> upstream.UpstreamError:
    # Read before anything was sent to the app, so this is an ordinary upstream failure (502).
    if isinstance(exc, httpx.TimeoutException):
        return upstream.UpstreamTimeout(f"the upstream's answer did not arrive in time ({type(exc).__name__})")
    return upstream.UpstreamFailed(f"the upstream's answer broke off ({type(exc).__name__})")


def _unlabelled(context: upstream.EditContext, output: upstream.Output, chunks: Iterable[bytes],
                policy: LabelPolicy, refusal: LabelRefused) -> upstream.Output:
    if policy.unsupported != "pass":
        _close(chunks)
        raise refusal
    try:
        _audit("output.unlabelled", context, reason=refusal.code, detail=str(refusal),
               content_type=output.content_type)
    except BaseException:
        _close(chunks)
        raise
    return upstream.Output(content_type=output.content_type, chunks=chunks, headers=output.headers)


def _audit(action: str, context: upstream.EditContext, **fields: Any) -> None:
    """An entry of its own, committed before the output leaves: no unlabelled or unmarked output goes unrecorded."""
    request_id = g.get("request_id") if has_request_context() else None
    try:
        with db.unit_of_work() as session:
            now = utcnow()
            AuditJournal(session, now, request_id=request_id).record(
                action, SYSTEM, decision_id=context.decision_id, client_id=context.client_id,
                operation=context.operation, algorithm=context.algorithm, consents=list(context.consents),
                **fields)
    except SQLAlchemyError as exc:
        raise LabelRefused(f"the audit entry {action} cannot be written, so the output is not sent") from exc


def _signer() -> Signer:
    try:
        with db.unit_of_work() as session:
            return keyring.signer(session)
    except (KeyStoreError, SQLAlchemyError) as exc:
        raise LabelRefused("the signing key is unavailable, so the output cannot be labelled") from exc


def _jwks(signer: Signer) -> dict[str, list[dict[str, str]]]:
    x = base64.urlsafe_b64encode(signer.public_key_bytes).decode("ascii").rstrip("=")
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": signer.kid, "use": "sig", "alg": "EdDSA"}]}


def _close(chunks: Iterable[bytes]) -> None:
    close = getattr(chunks, "close", None)
    if callable(close):
        close()


class _Chained:
    """The chunks already read, then the rest of the upstream's answer."""

    def __init__(self, head: list[bytes], rest: Iterator[bytes]) -> None:
        self._head = [chunk for chunk in head if chunk]
        self._rest = rest

    def __iter__(self) -> Iterator[bytes]:
        yield from self._head
        yield from self._rest

    def close(self) -> None:
        _close(self._rest)


class _SpoolStream:
    """The labelled file in large chunks; closed (and so deleted) at its end or when the response closes."""

    def __init__(self, media: IO[bytes]) -> None:
        self._media = media

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        chunk = self._media.read(_STREAM_CHUNK)
        if not chunk:
            self.close()
            raise StopIteration
        return chunk

    def close(self) -> None:
        self._media.close()
