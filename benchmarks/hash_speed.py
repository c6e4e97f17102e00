"""Hashing speed: curate's hash_file vs a plain `imagehash.phash(Image.open(p))` loop.

Same files, same run, single process; then curate's hash_images with 1 and 2 processes.
Prints a table; not a timed test. The machine is shared, so run it more than once.

    .venv/bin/python benchmarks/hash_speed.py --files 1500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.hashing import hash_file, hash_images  # noqa: E402

FRACATLAS = Path(__file__).resolve().parents[2] / "shared" / "data" / "fracatlas"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1500)
    ap.add_argument("--root", type=Path, default=FRACATLAS / "images")
    args = ap.parse_args()
    files = sorted(args.root.rglob("*.jpg"))[: args.files]

    import imagehash
    from PIL import Image

    def plain():
        for p in files:
            try:
                imagehash.phash(Image.open(p))
            except OSError:
                pass

    def ours():
        for p in files:
            hash_file(p)

    rows = []
    for name, fn in (("imagehash.phash(Image.open(p)) loop", plain), ("curate hash_file loop", ours)):
        t = time.perf_counter()
        fn()
        rows.append((name, len(files) / (time.perf_counter() - t)))
    table = pd.DataFrame({"path": [p.relative_to(args.root).as_posix() for p in files]})
    for workers in (1, 2):
        t = time.perf_counter()
        hash_images(table, args.root, workers=workers)  # no cache: every file hashed
        rows.append((f"curate hash_images, {workers} process(es)", len(files) / (time.perf_counter() - t)))
    base = rows[0][1]
    print(f"{len(files)} FracAtlas files")
    print(f"{'method':42s} {'images/s':>9s} {'x imagehash':>12s}")
    for name, rate in rows:
        print(f"{name:42s} {rate:9.0f} {rate / base:12.2f}")
    print(f"2 processes / 1 process: {rows[3][1] / rows[2][1]:.2f}x")


if __name__ == "__main__":
    main()
