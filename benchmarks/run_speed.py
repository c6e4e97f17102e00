"""End-to-end speed of `curate run` against a plain decode loop over the same files.

Per set: a cold `curate run` (fresh workdir, nothing cached) in its own process, the same run
again with nothing changed, and a plain `Image.open(p).load()` loop over the same files (one
process: what a user's own script does first). Prints seconds per step (from the run's
summary.json), the ratio of the cold run to the loop, and the peak memory of the largest
process (the run or one of its workers).

    .venv/bin/python benchmarks/run_speed.py                       # all three sets
    .venv/bin/python benchmarks/run_speed.py --sets fracatlas --workers 2
    .venv/bin/python benchmarks/run_speed.py --rounds 2                   # two rows per set

Sets: `fracatlas` (/work/shared/data/fracatlas/images), `messy600` (the default builder profile
on 600 FracAtlas bases, seed 0) and `kaggle10k` (the Kaggle-style builder profile on 540 bases, seed 0:
about 10,000 files). Built sets are kept under --data (default /tmp/run-speed) and reused.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
import fracatlas  # noqa: E402  (benchmarks/fracatlas.py: where FracAtlas is)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FRACATLAS = fracatlas.FRACATLAS
STEPS = ("scan", "audit", "hash", "dups", "orient", "manifest", "report")


def fracatlas_sources(n: int | None, seed: int) -> list[tuple[Path, str]]:
    """n FracAtlas images (all if None) that decode, in a seeded random order, with their label."""
    import numpy as np

    from curate.errors import ImageError
    from curate.imageio import decode

    files = sorted((fracatlas.require(FRACATLAS) / "images").glob("*/*.jpg"))
    out = []
    for i in np.random.default_rng(seed).permutation(len(files)):
        if n is not None and len(out) == n:
            break
        try:
            decode(files[i])
        except ImageError:
            continue
        out.append((files[i], "fractured" if files[i].parent.name == "Fractured" else "not fractured"))
    return out


def build_set(name: str, data: Path, kaggle_bases: int) -> Path:
    """The set's folder, built under `data` on first use."""
    if name == "fracatlas":
        return fracatlas.require(FRACATLAS) / "images"
    dest = data / name
    if dest.is_dir() and any(dest.iterdir()):
        return dest
    from curate import messy

    t = time.perf_counter()
    if name == "messy600":
        messy.build_messy(fracatlas_sources(600, 0), dest, seed=0, truth_path=data / f"{name}_truth.csv")
    elif name == "kaggle10k":
        messy.build_messy(fracatlas_sources(kaggle_bases, 0), dest, profile="kaggle", seed=0,
                          truth_path=data / f"{name}_truth.csv")
    else:
        sys.exit(f"unknown set {name!r}")
    print(f"built {dest} in {time.perf_counter() - t:.0f} s", flush=True)
    return dest


def image_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def decode_loop(files: list[Path]) -> float:
    """Seconds for `Image.open(p).load()` over the files (those that fail count their attempt)."""
    from PIL import Image

    t = time.perf_counter()
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
        except Exception:
            pass
    return time.perf_counter() - t


def curate_run(root: Path, workdir: Path, workers: int) -> tuple[float, dict, float, float]:
    """(wall seconds, summary.json, peak RSS in GB of the run or any of its workers, CPU seconds
    of the run and its workers: on a shared machine the wall time says more about the load)."""
    cmd = [sys.executable, "-m", "curate.cli", "run", str(root), "--workdir", str(workdir), "--name", "set",
           "--workers", str(workers), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t = time.perf_counter()
    # a fresh child per run, so RUSAGE_CHILDREN's peak is this run's: measured in a forked helper
    helper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
              "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
              "print(u.ru_maxrss, u.ru_utime + u.ru_stime, file=sys.stderr); sys.exit(r.returncode)")
    proc = subprocess.run([sys.executable, "-c", helper, *cmd], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):  # 1: --fail-on found something, not an error
        sys.exit(f"curate run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    peak_kb, cpu = proc.stderr.strip().splitlines()[-1].split()
    summary = json.loads((workdir / "reports" / "set" / "summary.json").read_text())
    return wall, summary, int(peak_kb) / 1024 ** 2, float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="fracatlas,messy600,kaggle10k")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", type=Path, default=Path("/tmp/run-speed"), help="where built sets are kept")
    ap.add_argument("--kaggle-bases", type=int, default=540, help="FracAtlas bases of the Kaggle-style set (540: ~10,000 files)")
    ap.add_argument("--no-rerun", action="store_true", help="skip the re-run with nothing changed")
    ap.add_argument("--rounds", type=int, default=1, help="measure each set this many times (a row each)")
    args = ap.parse_args()

    rows = []
    for name in args.sets.split(","):
        root = build_set(name, args.data, args.kaggle_bases)
        files = image_files(root)
        for r in range(args.rounds):
            label = name if args.rounds == 1 else f"{name}#{r + 1}"
            load = os.getloadavg()[0]
            loop = decode_loop(files)
            with tempfile.TemporaryDirectory(prefix="run-speed-") as work:
                cold, summary, peak, cpu = curate_run(root, Path(work), args.workers)
                rerun = None if args.no_rerun else curate_run(root, Path(work), args.workers)
            rows.append((label, len(files), load, loop, cold, summary["steps"], peak, cpu, rerun))
            print(f"{label}: {len(files)} files, load {load:.2f}, cold {cold:.1f} s ({cpu:.1f} s CPU, peak {peak:.2f} GB; "
                  + ", ".join(f"{s} {summary['steps'].get(s, 0):.1f}" for s in STEPS)
                  + f"), loop {loop:.1f} s" + (f", re-run {rerun[0]:.1f} s" if rerun else ""), flush=True)

    print(f"\n`curate run` cold vs a decode loop ({args.workers} workers; load = 1-min load average at the start)")
    head = f"{'set':11s} {'files':>6s} {'load':>5s} " + " ".join(f"{s:>8s}" for s in STEPS)
    head += f" {'run s':>7s} {'CPU s':>7s} {'loop s':>7s} {'ratio':>6s} {'peak GB':>8s} {'re-run s':>9s}"
    print(head)
    for name, n, load, loop, cold, steps, peak, cpu, rerun in rows:
        line = f"{name:11s} {n:6d} {load:5.2f} " + " ".join(f"{steps.get(s, 0):8.1f}" for s in STEPS)
        line += f" {cold:7.1f} {cpu:7.1f} {loop:7.1f} {cold / loop:5.1f}x {peak:8.2f}"
        line += f" {rerun[0]:9.1f}" if rerun else f" {'-':>9s}"
        print(line)
    for name, *_, rerun in rows:
        if rerun:
            print(f"{name} re-run steps: " + ", ".join(f"{s} {rerun[1]['steps'].get(s, 0):.1f}" for s in STEPS))


if __name__ == "__main__":
    main()
