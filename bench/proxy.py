"""The edit proxy's time against calling the upstream directly, labelled and unlabelled, with peak memory.

    python bench/proxy.py [--repeat 7] [--backend sqlite|postgresql]
                          [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Each medium is sent, one request at a time, (a) straight to ``bench/echo_upstream.py``, (b) through
``POST /v1/edits`` as a file the gateway labels (a 5 MB PNG: visible mark, re-encoded, XMP label; a
50 MB WAV: audible cue, ID3 label; a 50 MB MP4 when PyAV is installed: MP4 label only), and (c) through
the gateway as the same bytes with the first one changed, a format the gateway cannot label, which it
passes through unlabelled (``LABEL_UNSUPPORTED=pass``): the proxy exactly as it was before labels, in
the same run, on the same server. Both gateway runs use gunicorn with the gateway's options; the upstream
streams the media back, so each byte crosses the proxy twice. The three are interleaved (one of each per
round). Reported: median wall time of each, the ratio proxy/direct (target <= 1.3), what labelling costs
(the median of each round's labelled minus unlabelled, in ms and in per cent; targets: <= 10 % for the
5 MB image, <= 5 % for the 50 MB video), and the gateway worker's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from _harness import Server, database, free_port, gateway_app, gateway_server, timed, wsgi_server
from PIL import Image

from tests.factories import make_app_client, make_consent, register_algorithm

FILING = "BENCH-PROXY-0001"
MiB = 1024 * 1024


def _png(path: Path, size: int) -> Path:
    # Noise does not compress, so the PNG is as large as its pixels.
    side = int((size / 3) ** 0.5)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG", compress_level=0)
    path.write_bytes(buffer.getvalue())
    return path


def _wav(path: Path, size: int) -> Path:
    # 16-bit mono PCM at 48 kHz, noise: what a long voice edit weighs.
    frames = size // 2
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(48000)
        for _ in range(frames // (MiB // 2)):
            writer.writeframes(os.urandom(MiB))
    return path


def _mp4(path: Path, size: int) -> Path | None:
    try:
        import av
    except ImportError:
        return None
    # Noise frames at a bit rate high enough that the file reaches ``size`` in a few dozen frames.
    with av.open(str(path), "w", format="mp4") as output:
        stream = output.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.bit_rate = 400_000_000
        index = written = 0
        while written < size:
            picture = Image.frombytes("RGB", (1280, 720), os.urandom(1280 * 720 * 3))
            frame = av.VideoFrame.from_image(picture)
            frame.pts = index
            index += 1
            for packet in stream.encode(frame):
                written += packet.size
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return path


def _unlabellable(path: Path) -> Path:
    """The same bytes but two (the 1st and the 5th, where the formats' signatures are): no longer a format
    the gateway labels, so it passes unlabelled."""
    twin = path.with_name("unlabelled-" + path.name)
    with path.open("rb") as source, twin.open("wb") as target:
        head = bytearray(source.read(8))
        head[0] ^= 0xFF
        head[4] ^= 0xFF
        target.write(head)
        while chunk := source.read(MiB):
            target.write(chunk)
    return twin


def _send(url: str, path: Path, content_type: str, headers: dict[str, str], request_part: str | None,
          *, labelled: bool = False) -> float:
    """One edit, its answer read to the end; returns when the answer's head arrived (``time.perf_counter``)."""
    files: dict[str, Any] = {}
    if request_part is not None:
        files["request"] = (None, request_part, "application/json")
    with path.open("rb") as media:
        files["source"] = (path.name, media, content_type)
        with httpx.stream("POST", url, files=files, headers=headers, timeout=300) as response:
            head = time.perf_counter()
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.read()[:300]!r}")
            received = sum(len(chunk) for chunk in response.iter_raw(256 * 1024))
    # A labelled answer is larger (label, mark, cue); anything else must come back byte for byte.
    if received != path.stat().st_size and not labelled:
        raise RuntimeError(f"{url}: got {received} bytes back for {path.stat().st_size}")
    return head


@contextlib.contextmanager
def proxy_stack(backend: str, pg_url: str, uploads: Path, **config: Any
                ) -> Iterator[tuple[Server, Server, dict[str, str], str]]:
    """The echo upstream, the gateway in front of it (one worker) and an app's token and ``request`` part.

    Yields (upstream, gateway, authorization header, request part). Shared by bench/proxy.py and
    bench/proxy_link.py, so both measure the same set-up.
    """
    with database(backend, pg_url) as url, wsgi_server("bench.echo_upstream:app", free_port()) as up:
        port = free_port()
        app = gateway_app(url, f"http://127.0.0.1:{port}")
        edit_app = make_app_client(app, scope="edit:face", name="Bench App")
        register_algorithm(app, FILING, operations=("face_swap",), upstream_url=f"{up.url}/edit")
        consent_id = make_consent(app, edit_app.client_id)
        request_part = json.dumps({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]})
        with gateway_server(url, port, workers=1, UPLOAD_DIR=uploads, LABEL_UNSUPPORTED="pass",
                            **config) as gateway:
            token = httpx.post(f"{gateway.url}/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(edit_app.client_id, edit_app.secret)).json()["access_token"]
            yield up, gateway, {"Authorization": f"Bearer {token}"}, request_part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cg-bench-proxy-") as folder:
        work = Path(folder)
        media = [("5 MB image (PNG)", _png(work / "portrait.png", 5 * MiB), "image/png"),
                 ("50 MB audio (WAV)", _wav(work / "voice.wav", 50 * MiB), "audio/wav")]
        video = _mp4(work / "clip.mp4", 50 * MiB)
        if video is not None:
            media.append(("50 MB video (MP4)", video, "video/mp4"))
        uploads = work / "uploads"
        uploads.mkdir()
        with proxy_stack(args.backend, args.pg_url, uploads) as (up, gateway, auth, request_part):
            edits = f"{gateway.url}/v1/edits"
            rows = []
            # Warm both paths (imports, connection pools) before anything is timed or measured.
            _send(f"{up.url}/edit", media[0][1], media[0][2], {}, None)
            _send(edits, media[0][1], media[0][2], auth, request_part, labelled=True)
            _send(edits, _unlabellable(media[0][1]), media[0][2], auth, request_part)
            rss_before = gateway.peak_rss_mib()
            for label, path, content_type in media:
                twin = _unlabellable(path)
                # Interleaved, one of each per round, so a neighbour's load (a shared machine) weighs on
                # all three alike; the labelling cost is the median of each round's own difference.
                direct, unlabelled, labelled = [], [], []
                for _ in range(args.repeat):
                    direct += timed(lambda p=path, c=content_type: _send(f"{up.url}/edit", p, c, {}, None), 1)
                    unlabelled += timed(lambda p=twin, c=content_type: _send(edits, p, c, auth, request_part), 1)
                    labelled += timed(lambda p=path, c=content_type: _send(edits, p, c, auth, request_part,
                                                                           labelled=True), 1)
                d, u, lab = (round(statistics.median(t) * 1000, 1) for t in (direct, unlabelled, labelled))
                added = statistics.median(x / y - 1 for x, y in zip(labelled, unlabelled, strict=True))
                rows.append({"media": label, "direct_ms": d, "unlabelled_ms": u, "labelled_ms": lab,
                             "unlabelled_ratio": round(u / d, 2), "labelled_ratio": round(lab / d, 2),
                             "labelling_cost_ms": round(statistics.median(
                                 (x - y) * 1000 for x, y in zip(labelled, unlabelled, strict=True)), 1),
                             "labelling_adds_percent": round(100 * added, 1)})
            rss_after = gateway.peak_rss_mib()
        leftovers = list(uploads.iterdir())
    print(json.dumps({"machine": {"cpus": os.cpu_count()}, "backend": args.backend, "repeat": args.repeat,
                      "results": rows, "gateway_peak_rss_mib": {"before": round(rss_before, 1),
                                                               "after": round(rss_after, 1)},
                      "temporary_files_left": len(leftovers)}, indent=2))
    print()
    print("| media | direct (median ms) | gateway, unlabelled | ratio | gateway, labelled | ratio | labelling costs "
          "| labelling adds |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['media']} | {row['direct_ms']} | {row['unlabelled_ms']} | {row['unlabelled_ratio']} "
              f"| {row['labelled_ms']} | {row['labelled_ratio']} | {row['labelling_cost_ms']} ms "
              f"| {row['labelling_adds_percent']} % |")
    print(f"\ngateway worker peak RSS: {rss_before:.1f} MiB after warm-up, {rss_after:.1f} MiB after all runs")


if __name__ == "__main__":
    main()
