"""Streaming multipart uploads for the edit proxy.

Each media part is written to a temporary file while it is hashed, in chunks, so the gateway's memory
does not grow with the upload. The temporary files are unlinked the moment they are created: only the
open descriptor keeps them alive, so they vanish when :meth:`Upload.close` closes them, when the
process dies, or when anything in between fails; the upload folder never holds a named file.

The size limit is applied to the request itself (Flask 3.1's per-request ``max_content_length``): a
declared ``Content-Length`` above it is refused before a byte of the body is read, and a chunked body
is cut off as soon as it passes it.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, ClassVar

from flask import Request
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData
from werkzeug.utils import secure_filename

from gateway.core.errors import GatewayError

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "REQUEST_PART",
    "MalformedUpload",
    "MediaPart",
    "NotMultipart",
    "StorageFull",
    "Upload",
    "UploadError",
    "receive",
]

# The JSON part that says what to do with the media parts; every other part is a media part.
REQUEST_PART = "request"
_ROLE = re.compile(r"[a-z][a-z0-9_]{0,31}")  # same shape as a ticket's media roles
# The media type is passed on to the upstream in a header line of our own making; anything but a plain
# type/subtype (parameters, quotes, line breaks) is replaced rather than copied.
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,63}")
# Reads from the server are large (gunicorn's body reader costs per call, so 64 KiB reads halve the
# throughput); the decoder is fed small slices (its buffer handling costs grow with the slice size).
_READ = 1024 * 1024
_FEED = 64 * 1024
_MAX_REQUEST_PART = 64 * 1024
_MAX_PARTS = 16
# Media parts an edit may carry: the most a decision names (POST /v1/decisions), well below _MAX_PARTS.
MAX_MEDIA_PARTS = 8
# Bound on what the decoder buffers between two boundaries' worth of reads; file data is streamed
# out of it chunk by chunk, so it never holds a whole part.
_MAX_DECODER_BUFFER = 1024 * 1024


class UploadError(GatewayError):
    code: ClassVar[str] = "malformed_upload"


class NotMultipart(UploadError):
    code = "unsupported_media_type"


class MalformedUpload(UploadError):
    code = "malformed_upload"


class StorageFull(UploadError):
    """The upload folder has no room (disk or quota full): nothing was decided, retry later."""

    code = "insufficient_storage"


# A full disk or quota is the operator's problem and temporary, not a broken request or a bug.
_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class _HashingFile(io.FileIO):
    """A file that hashes everything written to it, so the digest costs no second pass."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, "r+b", closefd=True)
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: ReadableBuffer, /) -> int:
        view = memoryview(data).cast("B")
        # A raw file may accept fewer bytes than offered; every byte must land, or the digest would
        # name bytes the upstream never receives.
        written = 0
        while written < len(view):
            try:
                count = super().write(view[written:])
            except OSError as exc:
                if exc.errno in _NO_ROOM:
                    raise StorageFull("the gateway has no room for the upload now; retry later") from exc
                raise
            if count is None:  # pragma: no cover - only non-blocking files return None
                raise BlockingIOError("temporary file would block")
            written += count
        self.hash.update(view)
        self.size += written
        return written


@dataclass
class MediaPart:
    role: str
    filename: str  # sanitised: never a path, safe to hand to an upstream
    content_type: str
    file: io.FileIO
    size: int
    sha256: str


@dataclass
class Upload:
    request_json: bytes | None
    parts: dict[str, MediaPart]

    @property
    def digests(self) -> dict[str, str]:
        return {role: part.sha256 for role, part in self.parts.items()}

    def close(self) -> None:
        """Close (and so delete) every temporary file; safe to call more than once."""
        for part in self.parts.values():
            part.file.close()

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def receive(
    request: Request,
    *,
    upload_dir: str | os.PathLike[str],
    max_bytes: int,
    on_request_part: Callable[[bytes], object] | None = None,
) -> Upload:
    """Parse the multipart body of ``request`` into temporary files, hashing each media part.

    ``on_request_part`` is called with the JSON part as soon as it is complete; when clients send it
    first (as httpx, requests and ``curl -F`` in argument order do), a refusal it raises stops the
    upload before the media are read. Raises :class:`UploadError`, or werkzeug's
    ``RequestEntityTooLarge`` when the body exceeds ``max_bytes``.
    """
    if request.mimetype != "multipart/form-data":
        raise NotMultipart("send the edit as multipart/form-data")
    boundary = request.mimetype_params.get("boundary", "").encode("latin-1")
    if not boundary:
        raise MalformedUpload("the multipart body has no boundary")
    request.max_content_length = max_bytes
    Path(upload_dir).mkdir(parents=True, exist_ok=True)
    upload = Upload(request_json=None, parts={})
    try:
        _parse(request.stream, boundary, upload, upload_dir, on_request_part)
    except BaseException:
        upload.close()
        raise
    return upload


def _parse(
    stream: IO[bytes],
    boundary: bytes,
    upload: Upload,
    upload_dir: str | os.PathLike[str],
    on_request_part: Callable[[bytes], object] | None,
) -> None:
    decoder = MultipartDecoder(boundary, max_form_memory_size=_MAX_DECODER_BUFFER, max_parts=_MAX_PARTS)
    parts = _Parts(upload, upload_dir, on_request_part)
    try:
        for chunk in _chunks(stream):
            decoder.receive_data(chunk)
            event = decoder.next_event()
            while not isinstance(event, Epilogue | NeedData):
                if isinstance(event, Field | File):
                    parts.start(event)
                elif isinstance(event, Data):
                    parts.receive(event)
                event = decoder.next_event()
    except ValueError as exc:
        raise MalformedUpload(f"the multipart body cannot be parsed: {exc}") from exc
    finally:
        parts.abandon_unfinished()


class _Parts:
    """Routes decoder events: the request part to memory (it is small), media parts to files."""

    def __init__(
        self, upload: Upload, upload_dir: str | os.PathLike[str], on_request_part: Callable[[bytes], object] | None
    ) -> None:
        self._upload = upload
        self._dir = upload_dir
        self._on_request_part = on_request_part
        self._json: list[bytes] | None = None
        self._json_size = 0
        self._file: _HashingFile | None = None
        self._event: File | None = None

    def start(self, event: Field | File) -> None:
        if event.name == REQUEST_PART:
            if self._upload.request_json is not None or self._json is not None:
                raise MalformedUpload("the request part is sent once")
            self._json = []
        elif isinstance(event, File):
            self._file, self._event = _start_media(event, self._upload, self._dir), event
        else:
            raise MalformedUpload(f"part {event.name!r} has no filename; media parts are files, named by role")

    def receive(self, event: Data) -> None:
        if self._json is not None:
            self._json.append(event.data)
            self._json_size += len(event.data)
            if self._json_size > _MAX_REQUEST_PART:
                raise MalformedUpload(f"the request part is larger than {_MAX_REQUEST_PART} bytes")
            if not event.more_data:
                self._upload.request_json, self._json = b"".join(self._json), None
                if self._on_request_part is not None:
                    self._on_request_part(self._upload.request_json)
        elif self._file is not None and self._event is not None:
            self._file.write(event.data)
            if not event.more_data:
                _finish_media(self._file, self._event, self._upload)
                self._file, self._event = None, None

    def abandon_unfinished(self) -> None:
        # A part cut off mid-way is not in ``upload.parts``, so Upload.close would not see it.
        if self._file is not None:
            self._file.close()
            self._file = None


def _chunks(stream: IO[bytes]) -> Iterator[bytes | None]:
    while True:
        data = stream.read(_READ)
        if not data:
            break
        view = memoryview(data)
        for start in range(0, len(view), _FEED):
            yield bytes(view[start:start + _FEED])
    # None tells the decoder the body has ended, so a truncated body is an error, not a short part.
    yield None


def _start_media(event: File, upload: Upload, upload_dir: str | os.PathLike[str]) -> _HashingFile:
    # A part without a name (Content-Disposition with a filename only, or ``attachment``) has none.
    if not event.name or not _ROLE.fullmatch(event.name):
        raise MalformedUpload(f"media part {event.name!r}: a role is a short lowercase name like 'source'")
    if event.name in upload.parts:
        raise MalformedUpload(f"media role {event.name!r} is sent twice")
    if len(upload.parts) >= MAX_MEDIA_PARTS:
        raise MalformedUpload(f"at most {MAX_MEDIA_PARTS} media parts, as in a decision's media")
    try:
        fd, path = tempfile.mkstemp(prefix="cg-upload-", dir=upload_dir)
    except OSError as exc:
        if exc.errno in _NO_ROOM:
            raise StorageFull("the gateway has no room for the upload now; retry later") from exc
        raise
    # Unlinked at once: the open descriptor is the only reference, so no failure path can leave the
    # media on disk, and no other process can open it by name.
    os.unlink(path)
    return _HashingFile(fd)


def _media_type(declared: str) -> str:
    media_type = declared.split(";", 1)[0].strip()
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else "application/octet-stream"


def _finish_media(file: _HashingFile, event: File, upload: Upload) -> None:
    file.seek(0)
    upload.parts[event.name] = MediaPart(
        role=event.name,
        filename=secure_filename(event.filename) or event.name,
        content_type=_media_type(event.headers.get("content-type", "")),
        file=file,
        size=file.size,
        sha256=file.hash.hexdigest(),
    )
