"""The edit proxy's time against calling the upstream directly, with the gateway's peak memory.

    python bench/proxy.py [--repeat 7] [--backend sqlite|postgresql]
                          [--pg-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

A 5 MB PNG and a 50 MB video-sized file are sent, one request at a time, (a) straight to
``bench/echo_upstream.py`` and (b) through ``POST /v1/edits`` on the gateway, both under gunicorn with
the gateway's options; the upstream streams the media back, so each byte crosses the proxy twice.
Reported: median wall time of each, their ratio (target <= 1.3), and the gateway worker's peak RSS
(VmHWM) before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import httpx
from _harness import database, free_port, gateway_app, gateway_server, timed, wsgi_server
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


def _video(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        for _ in range(size // MiB):
            handle.write(os.urandom(MiB))
    return path


def _send(url: str, path: Path, content_type: str, headers: dict[str, str], request_part: str | None) -> None:
    files: dict[str, Any] = {}
    if request_part is not None:
        files["request"] = (None, request_part, "application/json")
    with path.open("rb") as media:
        files["source"] = (path.name, media, content_type)
        with httpx.stream("POST", url, files=files, headers=headers, timeout=300) as response:
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.read()[:300]!r}")
            received = sum(len(chunk) for chunk in response.iter_raw(256 * 1024))
    if received != path.stat().st_size:
        raise RuntimeError(f"{url}: got {received} bytes back for {path.stat().st_size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL",
                                                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cg-bench-proxy-") as folder:
        work = Path(folder)
        media = [("5 MB image", _png(work / "portrait.png", 5 * MiB), "image/png"),
                 ("50 MB video", _video(work / "clip.mp4", 50 * MiB), "video/mp4")]
        uploads = work / "uploads"
        uploads.mkdir()
        with database(args.backend, args.pg_url) as url, wsgi_server("bench.echo_upstream:app", free_port()) as up:
            port = free_port()
            app = gateway_app(url, f"http://127.0.0.1:{port}")
            edit_app = make_app_client(app, scope="edit:face", name="Bench App")
            register_algorithm(app, FILING, operations=("face_swap",), upstream_url=f"{up.url}/edit")
            consent_id = make_consent(app, edit_app.client_id)
            request_part = json.dumps({"operation": "face_swap", "algorithm": FILING, "consents": [consent_id]})
            with gateway_server(url, port, workers=1, UPLOAD_DIR=uploads) as gateway:
                token = httpx.post(f"{gateway.url}/oauth/token", data={"grant_type": "client_credentials"},
                                   auth=(edit_app.client_id, edit_app.secret)).json()["access_token"]
                auth = {"Authorization": f"Bearer {token}"}
                rows = []
                # Warm both paths (imports, connection pools) before anything is timed or measured.
                _send(f"{up.url}/edit", media[0][1], media[0][2], {}, None)
                _send(f"{gateway.url}/v1/edits", media[0][1], media[0][2], auth, request_part)
                rss_before = gateway.peak_rss_mib()
                for label, path, content_type in media:
                    direct = timed(lambda p=path, c=content_type: _send(f"{up.url}/edit", p, c, {}, None),
                                   args.repeat)
                    proxied = timed(lambda p=path, c=content_type: _send(f"{gateway.url}/v1/edits", p, c, auth,
                                                                         request_part), args.repeat)
                    rows.append({"media": label, "direct_ms": round(statistics.median(direct) * 1000, 1),
                                 "proxy_ms": round(statistics.median(proxied) * 1000, 1),
                                 "ratio": round(statistics.median(proxied) / statistics.median(direct), 3)})
                rss_after = gateway.peak_rss_mib()
            leftovers = list(uploads.iterdir())
    print(json.dumps({"machine": {"cpus": os.cpu_count()}, "backend": args.backend, "repeat": args.repeat,
                      "results": rows, "gateway_peak_rss_mib": {"before": round(rss_before, 1),
                                                               "after": round(rss_after, 1)},
                      "temporary_files_left": len(leftovers)}, indent=2))
    print()
    print("| media | direct (median ms) | through the gateway (median ms) | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {row['media']} | {row['direct_ms']} | {row['proxy_ms']} | {row['ratio']} |")
    print(f"\ngateway worker peak RSS: {rss_before:.1f} MiB after warm-up, {rss_after:.1f} MiB after all runs")


if __name__ == "__main__":
    main()
