"""Face binding on the labelled test photos: errors at the threshold, speed on one core, and memory.

    python bench/binding.py [--threshold T] [--video-seconds-each S] [--all-cores]

Every same-person and different-person pair of tests/data/faces (label = file name without ``_n``;
skimage's astronaut too when scikit-image is installed) gives a distance; false accepts (different
people within the threshold) and false rejects (one person beyond it) are counted at the gateway's
threshold and at dlib's 0.6. Then: enrolment sharpness of the photos and of blurred copies, seconds per
512-px image and per second of 720p video (a slideshow of the photos made with PyAV), and the peak RSS
of a fresh process that loads the models and matches one 12-megapixel photo, downscaled as the gateway
does and not. Figures only: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.biometrics import faces
from gateway.biometrics.faces import DEFAULT_THRESHOLD, EnrolmentRefused, distance
from gateway.biometrics.video import faces_in_video

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "data" / "faces"
DLIB_THRESHOLD = 0.6


def labelled() -> dict[str, bytes]:
    """File stem -> bytes of every one-person photo (the stem's part before the last ``_`` is the person)."""
    photos = {path.stem: path.read_bytes() for path in sorted(PHOTOS.glob("*.jpg"))
              if not path.stem.startswith("two_people")}
    try:
        from skimage import data  # optional: shipped inside the wheel, nothing downloaded
    except ImportError:
        return photos
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG", quality=90)
    photos["eileen_collins_1"] = buffer.getvalue()
    return photos


def person(stem: str) -> str:
    return stem.rsplit("_", 1)[0]


def jpeg(picture: Any, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def pairs(photos: dict[str, bytes]) -> tuple[list[tuple[float, str, str]], list[tuple[float, str, str]]]:
    embeddings = {}
    for stem, data in photos.items():
        found = faces.faces_in_image(data)
        if len(found) != 1:
            print(f"  {stem}: {len(found)} faces, left out of the pairs")
            continue
        embeddings[stem] = found[0].embedding
    same, different = [], []
    for a, b in itertools.combinations(sorted(embeddings), 2):
        pair = (distance(embeddings[a], embeddings[b]), a, b)
        (same if person(a) == person(b) else different).append(pair)
    return sorted(same), sorted(different)


def errors(same: list[tuple[float, str, str]], different: list[tuple[float, str, str]], threshold: float) -> str:
    false_accepts = sum(1 for d, _, _ in different if d <= threshold)
    false_rejects = sum(1 for d, _, _ in same if d > threshold)
    return (f"threshold {threshold:.2f}: false accepts {false_accepts}/{len(different)}, "
            f"false rejects {false_rejects}/{len(same)}")


def sharpness(photos: dict[str, bytes]) -> None:
    from PIL import Image, ImageFilter

    sharp: list[float] = []
    blurred: dict[int, list[float]] = {2: [], 3: []}
    verdicts = []
    for stem, data in photos.items():
        try:
            face = faces.enrolment_face(data)
            verdicts.append(f"{stem} ok")
            sharp.append(face.sharpness)
        except EnrolmentRefused as refused:
            verdicts.append(f"{stem} {refused.code}")
            continue
        with Image.open(io.BytesIO(data)) as opened:
            picture = opened.convert("RGB")
        for radius, values in blurred.items():
            found = faces.faces_in_image(jpeg(picture.filter(ImageFilter.GaussianBlur(radius))))
            values.extend(f.sharpness for f in found[:1])
    print(f"enrolment: {', '.join(verdicts)}")
    print(f"sharpness (Laplacian variance of the aligned chip): accepted photos {min(sharp):.0f}-{max(sharp):.0f}; "
          + "; ".join(f"Gaussian blur r={r} {min(v):.0f}-{max(v):.0f}" for r, v in blurred.items())
          + f"; refused below {faces.MIN_ENROLMENT_SHARPNESS:.0f}")


def image_speed(photos: dict[str, bytes], rounds: int) -> None:
    from PIL import Image

    small = []
    for data in photos.values():
        with Image.open(io.BytesIO(data)) as opened:
            picture = opened.convert("RGB")
        picture.thumbnail((512, 512))
        small.append(jpeg(picture))
    faces.faces_in_image(small[0])  # models loaded and warm before timing
    times = []
    for _ in range(rounds):
        for data in small:
            started = time.perf_counter()
            faces.faces_in_image(data)
            times.append(time.perf_counter() - started)
    print(f"512-px image (decode, detect, embed): median {statistics.median(times) * 1000:.0f} ms, "
          f"mean {statistics.fmean(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {len(times)} runs")


def slideshow(photos: dict[str, bytes], seconds_each: float, fps: int = 25) -> tuple[bytes, float]:
    import av
    from PIL import Image

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=fps)
        stream.width, stream.height = 1280, 720
        stream.pix_fmt = "yuv420p"
        for data in photos.values():
            with Image.open(io.BytesIO(data)) as opened:
                picture = opened.convert("RGB")
            picture.thumbnail((1280, 720))
            canvas = Image.new("RGB", (1280, 720), (20, 20, 20))
            canvas.paste(picture, ((1280 - picture.width) // 2, (720 - picture.height) // 2))
            frame = av.VideoFrame.from_image(canvas)
            for _ in range(round(seconds_each * fps)):
                output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue(), len(photos) * seconds_each


def video_speed(photos: dict[str, bytes], seconds_each: float) -> None:
    video, seconds = slideshow(photos, seconds_each)
    for every in (0.5, 1.0):
        started = time.perf_counter()
        samples = faces_in_video(io.BytesIO(video), every_seconds=every)
        elapsed = time.perf_counter() - started
        found = sum(len(f) for _, f in samples)
        print(f"720p H.264 video, {seconds:.0f} s, a frame every {every} s ({len(samples)} frames, {found} faces): "
              f"{elapsed:.2f} s, {elapsed / seconds:.3f} s per video second")


def twelve_megapixels(path: Path) -> int:
    """Writes obama_1 enlarged to 3000x4000 (run in its own process: see ``main``)."""
    from PIL import Image

    with Image.open(PHOTOS / "obama_1.jpg") as opened:
        big = opened.convert("RGB").resize((3000, 4000))
    path.write_bytes(jpeg(big))
    return 0


def peak_rss(path: Path, max_side: int) -> tuple[float, float]:
    """MB: a fresh interpreter that loads the models and matches one photo (getrusage, and VmHWM)."""
    out = subprocess.run([sys.executable, __file__, "--rss-probe", str(path), "--max-side", str(max_side)],
                         check=True, capture_output=True, text=True)
    figures = json.loads(out.stdout)
    return float(figures["peak_rss_mb"]), float(figures["vm_hwm_mb"])


def probe(path: Path, max_side: int) -> int:
    found = faces.faces_in_image(path.read_bytes(), max_side=max_side)
    status = Path("/proc/self/status")
    hwm = next((int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmHWM:")),
               0) if status.exists() else 0
    print(json.dumps({"faces": len(found), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "vm_hwm_mb": hwm / 1024}))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--video-seconds-each", type=float, default=1.0, help="seconds each photo is shown")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes over the 512-px photos")
    parser.add_argument("--all-cores", action="store_true", help="do not pin the process to one CPU")
    parser.add_argument("--rss-probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--max-side", type=int, default=1024, help=argparse.SUPPRESS)
    parser.add_argument("--make-photo", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    # One core means one thread: OpenMP and BLAS pools read these when they load, and gateway.biometrics
    # loads dlib, numpy and Pillow lazily, on first use, so this is still early enough.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    if args.rss_probe:
        return probe(args.rss_probe, args.max_side)
    if args.make_photo:
        return twelve_megapixels(args.make_photo)
    if not faces.available():
        raise SystemExit("the [face] extra is not installed: pip install -e '.[face]'")
    if not args.all_cores and hasattr(os, "sched_setaffinity"):
        # The thread variables above cover OpenMP and BLAS; pinning also covers dlib's own thread pool
        # and FFmpeg's decoder threads, whatever the build uses.
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"model {faces.FACE_MODEL}; {cores} core(s); OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")

    photos = labelled()
    # Measured first: Linux carries a parent's peak RSS into ru_maxrss of the child it forks, so the
    # probes must start while this process is still small (VmHWM, reset at exec, cross-checks it).
    memory = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "12mp.jpg"
        subprocess.run([sys.executable, __file__, "--make-photo", str(big)], check=True)
        for max_side in (1024, 4000):
            memory.append((max_side, *peak_rss(big, max_side)))

    people = sorted({person(stem) for stem in photos})
    print(f"labelled set: {len(photos)} photos of {len(people)} people ({', '.join(people)})")
    same, different = pairs(photos)
    for threshold in sorted({args.threshold, DLIB_THRESHOLD}):
        print(errors(same, different, threshold))
    print(f"same person: {len(same)} pairs, {same[0][0]:.3f}-{same[-1][0]:.3f} (farthest: {same[-1][1]} "
          f"vs {same[-1][2]})")
    print(f"different people: {len(different)} pairs, {different[0][0]:.3f}-{different[-1][0]:.3f} (closest: "
          + ", ".join(f"{a} vs {b} {d:.3f}" for d, a, b in different[:3]) + ")")

    sharpness(photos)
    image_speed(photos, args.rounds)
    video_speed(photos, args.video_seconds_each)
    for max_side, rusage, hwm in memory:
        print(f"peak RSS of a process that loaded the models and matched one 12-MP photo at max_side={max_side}: "
              f"{rusage:.0f} MB (getrusage; VmHWM {hwm:.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
