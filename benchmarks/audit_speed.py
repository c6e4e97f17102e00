"""Audit throughput against the loop a user would otherwise write.

    .venv/bin/python benchmarks/audit_speed.py [ROOT]   (default: ../shared/data/fracatlas)

Baseline: `Image.open(p).load()` over every file, one process, exceptions caught — it decodes
but says nothing about why a file failed, and misses nothing `verify()` would. Ours: the full
audit (full decode, EXIF, greyscale, sha256, statistics, flags) with 1 and with all workers.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PIL import Image

from curate.audit import audit
from curate.layout import scan
from curate.parallel import default_workers


def baseline(paths: list[Path]) -> int:
    bad = 0
    for p in paths:
        try:
            with Image.open(p) as im:
                im.load()
        except Exception:
            bad += 1
    return bad


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data/fracatlas")
    table = scan(root)
    paths = [root / p for p in table["path"]]
    n = len(paths)
    rows = []
    t = time.perf_counter()
    bad = baseline(paths)
    base = time.perf_counter() - t
    rows.append(("Image.open(p).load() loop, 1 process", base, bad))
    for workers in sorted({1, default_workers()}):
        t = time.perf_counter()
        out = audit(table, root, workers=workers)
        dt = time.perf_counter() - t
        rows.append((f"curate audit, {workers} process(es)", dt, int((out['status'] != 'ok').sum())))
    print(f"{n:,} files under {root}\n")
    print(f"| {'method':<40} | {'seconds':>8} | {'images/s':>9} | {'vs loop':>7} | {'not ok':>6} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 11}|{'-' * 9}|{'-' * 8}|")
    for name, dt, bad in rows:
        print(f"| {name:<40} | {dt:8.2f} | {n / dt:9.0f} | {base / dt:6.2f}x | {bad:6d} |")


if __name__ == "__main__":
    main()
