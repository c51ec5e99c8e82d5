"""The content digest of an MP4 (ISO BMFF) file taken while it streams by, so the gateway never re-reads it.

The label's ``content.sha256`` for ``mp4`` is the SHA-256 of the payloads of the top-level ``mdat`` boxes
in file order (gateway.labels.verifier). Writing the ``AIGC`` item changes ``moov`` only, so the digest
of the upstream's answer, taken here while it is spooled, is the digest of the labelled file: the 50 MB
of samples are hashed once, on the way in, instead of twice more after labelling.
"""

from __future__ import annotations

import hashlib
import struct

__all__ = ["SampleDigest"]


class SampleDigest:
    """Fed the file's bytes in order (:meth:`update`); then :meth:`result` gives the digest and the
    ``mdat`` payload sizes, or None where the verifier would not read the file the same way (cut off,
    a box larger than its file): the caller then hashes the file as the verifier does, and refuses it."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._header = bytearray()
        self._left = 0  # bytes of the current box's payload still to come; -1: the box runs to the end
        self._in_mdat = False
        self._sizes: list[int] = []
        self._to_end = 0  # payload bytes seen of a box that runs to the end of the file
        self._broken = False

    def update(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view and not self._broken:
            if self._left == 0:
                view = self._read_header(view)
                continue
            taken = view if self._left < 0 else view[:self._left]
            if self._in_mdat:
                self._digest.update(taken)
            if self._left > 0:
                self._left -= len(taken)
            else:
                self._to_end += len(taken)
            view = view[len(taken):]

    def result(self) -> tuple[str, list[int]] | None:
        # Fewer than 8 bytes after the last box are not a box to the verifier either; more are a cut-off one.
        if self._broken or self._left > 0 or len(self._header) >= 8:
            return None
        sizes = self._sizes + ([self._to_end] if self._left < 0 and self._in_mdat else [])
        return self._digest.hexdigest(), sizes

    def _read_header(self, view: memoryview) -> memoryview:
        wanted = 16 if len(self._header) >= 8 and self._header[:4] == b"\x00\x00\x00\x01" else 8
        taken = view[:wanted - len(self._header)]
        self._header += taken
        view = view[len(taken):]
        if len(self._header) < wanted:
            return view
        size, kind = struct.unpack(">I4s", self._header[:8])
        if size == 1 and wanted == 8:
            return view  # a 64-bit size follows
        header = wanted
        if size == 1:
            (size,) = struct.unpack(">Q", self._header[8:16])
        self._header.clear()
        self._in_mdat = kind == b"mdat"
        if size == 0:  # the box runs to the end of the file; its size is known only then
            self._left = -1
            return view
        if size < header:
            self._broken = True
            return view
        self._left = size - header
        if self._in_mdat:
            self._sizes.append(self._left)
        if self._left == 0:
            self._in_mdat = False
        return view
