"""Decompression bombs: the gateway never inflates anything, the reference upstream refuses bombs.

The gateway only hashes and forwards media (and never decodes a request's Content-Encoding), so a
bomb costs it the compressed size. The reference upstream decodes images with Pillow; it must refuse
a PNG whose pixels or text chunks inflate far beyond the bytes sent, with a 415 the gateway turns
into a 502 and a failed outcome, and must keep serving afterwards. (Path traversal in part file
names: tests/gateway/proxy/test_edits.py::test_part_filenames_never_become_paths.)
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import httpx
import pytest

from tests.factories import audit_entries
from tests.gateway.demo.test_demo_upstream import SOURCE
from tests.security.conftest import FILING, ProxyStack

pytestmark = pytest.mark.e2e


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, idat: bytes, extra: bytes = b"") -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _black_rows(height: int, width: int) -> bytes:
    deflate = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels, all zero: about 1000:1
    return b"".join(deflate.compress(row) for _ in range(height)) + deflate.flush()


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


BOMBS = {
    # 144 million pixels in 140 KB: decoded as RGB it would take 432 MB.
    "pixels": lambda: _png(12000, 12000, _black_rows(12000, 12000)),
    # A header claiming 2.5 billion pixels, with hardly any data behind it.
    "header": lambda: _png(50000, 50000, _black_rows(4, 64)),
    # A valid 64x64 image with a compressed comment that inflates to 50 MB.
    "text": lambda: _png(64, 64, _black_rows(64, 64), _chunk(
        b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(50_000_000), 9))),
}


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_png_decompression_bomb_is_refused_and_costs_little(proxy_stack: ProxyStack, kind: str) -> None:
    bomb = BOMBS[kind]()
    assert len(bomb) < 200_000
    before = _peak_rss_mib()
    consent_id = proxy_stack.consent(operations=("face_attribute_edit",))
    response = proxy_stack.edit({"operation": "face_attribute_edit", "algorithm": FILING, "consents": [consent_id]},
                                {"target": ("bomb.png", bomb, "image/png")})
    if kind in ("header", "text"):
        # Beyond any image the gateway opens (Pillow's hard pixel limit, its text chunk limit): refused
        # before anything is forwarded.
        assert response.status_code == 403, response.text
        assert response.json()["reason"] == "unreadable_media"
        assert audit_entries(proxy_stack.gateway.app, "decision.allowed") == []
    else:
        # A plausible header: forwarded, and the upstream refuses to decode it.
        assert response.status_code == 502, response.text
        assert response.json()["code"] == "upstream_refused"
        assert response.json()["upstream_status"] == 415
        assert response.json()["upstream_code"] == "unsupported_media"
        [failed] = audit_entries(proxy_stack.gateway.app, "decision.failed")
        assert failed["decision_id"] == response.json()["decision_id"]
    # The gateway and the upstream run in this process: neither decoded the pixels.
    assert _peak_rss_mib() - before < 150

    # Both keep serving: the next, ordinary edit goes through.
    again = proxy_stack.consent(operations=("face_attribute_edit",))
    edited = proxy_stack.edit({"operation": "face_attribute_edit", "algorithm": FILING, "consents": [again]},
                              {"target": ("me.png", SOURCE, "image/png")})
    assert edited.status_code == 200, edited.text


def test_the_gateway_never_inflates_a_request_body(proxy_stack: ProxyStack) -> None:
    # 64 MB of zeros in 64 KB of gzip, declared as such: read as the bytes it is, never inflated.
    bomb = gzip.compress(bytes(64 * 1024 * 1024), 9)
    response = httpx.post(f"{proxy_stack.gateway.url}/v1/consents/verify", content=bomb, timeout=30,
                          headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_json"

    # As a media part it is no image, video or sound: refused unopened, before anything is forwarded.
    consent_id = proxy_stack.consent(operations=("face_attribute_edit",))
    edited = proxy_stack.edit({"operation": "face_attribute_edit", "algorithm": FILING, "consents": [consent_id]},
                              {"target": ("archive.png.gz", bomb, "application/gzip")})
    assert edited.status_code == 403
    assert edited.json()["reason"] == "unreadable_media"
    assert audit_entries(proxy_stack.gateway.app, "decision.allowed") == []
