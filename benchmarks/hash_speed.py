"""Hashing speed: curate's hash_file vs a plain `imagehash.phash(Image.open(p))` loop.

Same files, same run, single process; then curate's hash_images with 1 and 2 processes, the
floor (decoding alone, and decoding plus the frame pHash without the other channels), and
where hash_file's time goes (CPU ms per image, step by step). Prints tables; not a timed test.
The machine is shared, so run it more than once (the load average is printed).

    .venv/bin/python benchmarks/hash_speed.py --files 1500
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate import hashing  # noqa: E402
from curate.hashing import hash_file, hash_images  # noqa: E402
from curate.imageio import decode  # noqa: E402
import fracatlas  # noqa: E402  (benchmarks/fracatlas.py: where FracAtlas is)

FRACATLAS = fracatlas.FRACATLAS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1500)
    ap.add_argument("--root", type=Path, default=FRACATLAS / "images")
    args = ap.parse_args()
    files = sorted(args.root.rglob("*.jpg"))[: args.files]

    import imagehash
    from PIL import Image

    def per_file(step, errors=Exception):  # step(p) on every file; a file that does not decode is skipped
        def run():
            for p in files:
                try:
                    step(p)
                except errors:
                    pass
        return run

    def rate(run) -> float:
        t = time.perf_counter()
        run()
        return len(files) / (time.perf_counter() - t)

    def small(p):
        return decode(p, max_side=hashing.HASH_SIDE).pixels

    table = pd.DataFrame({"path": [p.relative_to(args.root).as_posix() for p in files]})
    rows = [("imagehash.phash(Image.open(p)) loop", rate(per_file(lambda p: imagehash.phash(Image.open(p)), OSError))),
            ("curate hash_file loop", rate(per_file(hash_file)))]
    for workers in (1, 2):  # no cache: every file hashed
        rows.append((f"curate hash_images, {workers} process(es)",
                     rate(lambda: hash_images(table, args.root, workers=workers))))
    # the floor: every hash needs the pixels; and the 8-variant pHash alone, without the
    # any-angle, shift and tone channels
    rows.append(("  decode alone (no hash)", rate(per_file(small))))
    rows.append(("  decode + frame pHash only", rate(per_file(lambda p: hashing.frame_hash(hashing.equalise(small(p)))))))
    base = rows[0][1]
    print(f"{len(files)} FracAtlas files")
    print(f"{'method':42s} {'images/s':>9s} {'x imagehash':>12s}")
    for name, rate in rows:
        print(f"{name:42s} {rate:9.0f} {rate / base:12.2f}")
    print(f"2 processes / 1 process: {rows[3][1] / rows[2][1]:.2f}x")
    print(f"3x the imagehash loop leaves {1000 / (3 * base):.2f} ms per image; decoding alone takes "
          f"{1000 / rows[4][1]:.2f} ms, the frame pHash with it {1000 / rows[5][1]:.2f} ms, everything "
          f"{1000 / rows[1][1]:.2f} ms")
    print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print_breakdown(files)


def print_breakdown(files: list[Path]) -> None:
    """CPU time of each step of hash_file (process time, so other jobs matter less)."""
    steps = {"decode (HASH_SIDE %d)" % hashing.HASH_SIDE: 0.0, "equalise": 0.0, "disc_hashes": 0.0,
             "frame_hash": 0.0, "trimmed frame (thash, twhash)": 0.0, "clip floors (lhash)": 0.0, "window_hashes": 0.0,
             "pixel_hash": 0.0}
    names = list(steps)
    for p in files:
        t = [time.process_time()]
        try:
            pixels = decode(p, max_side=hashing.HASH_SIDE).pixels
        except Exception:
            continue
        t.append(time.process_time())
        eq = hashing.equalise(pixels)
        t.append(time.process_time())
        hashing.disc_hashes(pixels)
        t.append(time.process_time())
        hashing.frame_hash(eq)
        t.append(time.process_time())
        cut = hashing.trimmed(pixels)
        if cut.shape != pixels.shape:
            eq_cut = hashing.equalise(cut)
            hashing.frame_hash(eq_cut)
            hashing.centred_window_hash(eq_cut)
        t.append(time.process_time())
        hashing.clip_hashes(pixels)
        t.append(time.process_time())
        hashing.window_hashes(eq)
        t.append(time.process_time())
        hashing.pixel_hash(pixels)
        t.append(time.process_time())
        for name, a, b in zip(names, t, t[1:]):
            steps[name] += b - a
    total = sum(steps.values())
    print(f"{'hash_file step':30s} {'CPU ms/image':>12s} {'share':>6s}")
    for name, sec in steps.items():
        print(f"{name:30s} {1000 * sec / len(files):12.3f} {sec / total:6.0%}")
    print(f"{'total':30s} {1000 * total / len(files):12.3f}")


if __name__ == "__main__":
    main()
