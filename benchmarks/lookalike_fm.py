"""Can a global registration test tell a copy from a look-alike before keypoint verification?

Issue 14 (session 20): nine in ten candidate pairs on FracAtlas are look-alikes (other
radiographs of the same body part) that ORB verification rejects at 1-6 ms each. A Fourier-Mellin
test costs an FFT and a log-polar resample per file and one small correlation per pair: the
magnitude spectrum ignores a shift, and on log-polar axes a turn and a zoom are shifts, so two
files' log-polar spectra correlate at some shift whether one is turned or zoomed (mirrored: the
angle axis reversed). This measures whether that peak separates the pairs verification accepts
from those it rejects; it is not built into curate (it does not: see the README's speed section).

Per set it runs find_duplicates as `curate dups` does, recording every verification (the pair,
its Match, its CPU ms), then scores each verified pair (a put-off near miss's refinement counts
with its pair: accepted if it passes) with these variants of the test:

- the frame: `eq` (verification's equalised pixels) or `flat` (its background-flattened frame);
- the peak: `xc` (normalised cross-correlation of the log-polar log-magnitude spectra, each less
  its Gaussian-smoothed self and its mean per radius: what all radiographs share) or `pc` (phase
  correlation of the same maps, whitened);
- the windows: `1` (a raised-cosine disc inscribed in each frame) or `5` (discs of 1, 1/1.15 and
  1/1.3 of that radius, the best of five pairings: a crop or a grown canvas shows the other's
  content in a smaller disc); both mirror ways, the better one.

Prints per set and variant the accepted and rejected pairs' percentiles, the share of rejected
pairs (and of their recorded CPU seconds) under the lowest accepted score, and the same under one
threshold that keeps every accepted pair of every set given (the lowest accepted score overall);
then the same for the test as a gate on the near misses' refinement after the rounds alone
(rescued against failed refinements: a refinement rescues only near-identical frames).

    .venv/bin/python benchmarks/lookalike_fm.py [NAME=]DIR [[NAME=]DIR ...] [--workers 2]
    .venv/bin/python benchmarks/lookalike_fm.py fracatlas=$CURATE_FRACATLAS/images k150s1=SET messy600=SET
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate import dedup, verify  # noqa: E402
from curate.audit import audit  # noqa: E402
from curate.hashing import hash_images  # noqa: E402
from curate.layout import scan  # noqa: E402

SIDE = 128  # px: the frame's canvas for the spectrum
ANGLES, RADII = 128, 64  # log-polar bins
WINDOWS = (1.0, 1 / 1.15, 1 / 1.3)  # disc radii, of the inscribed one
PAIRINGS = ((0, 0), (0, 1), (1, 0), (0, 2), (2, 0))  # (a's disc, b's disc) tried for `5`
VARIANTS = [f"{frame} {peak} {n}" for frame, peak, n in itertools.product(("eq", "flat"), ("xc", "pc"), (1, 5))]


def record(root: Path, workers: int) -> tuple:
    """find_duplicates on root, with every verification it ran: [(Pair, Match, CPU ms)]."""
    done = []
    verify_pairs, verify_pair = dedup.verify_pairs, verify.verify_pair

    def timed(fa, fb, p):  # runs in the workers (forked after this is set)
        t = time.process_time()
        m = verify_pair(fa, fb, p)
        object.__setattr__(m, "_ms", 1000 * (time.process_time() - t))
        return m

    def kept(pairs, paths, **kw):
        out = verify_pairs(pairs, paths, **kw)
        done.extend((p, m, getattr(m, "_ms", math.nan)) for p, m in zip(pairs, out))
        return out

    dedup.verify_pairs, verify.verify_pair = kept, timed  # (where find_duplicates and verify_pairs read them)
    try:
        table = hash_images(audit(scan(root), root, workers=workers), root, workers=workers)
        dedup.find_duplicates(table, root, workers=workers)
    finally:
        dedup.verify_pairs, verify.verify_pair = verify_pairs, verify_pair
    return table, done


_yy, _xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) - (SIDE - 1) / 2
_RADIUS = np.hypot(_xx, _yy)
_RADIAL = np.hanning(RADII).astype(np.float32)


def _spectrum_map(canvas: np.ndarray, radius: float) -> np.ndarray:
    """The log-polar map of canvas's log-magnitude spectrum under a disc of this radius, standardised."""
    r = _RADIUS / radius
    disc = np.where(r < 1, 0.5 * (1 + np.cos(np.pi * np.minimum(r, 1))), 0).astype(np.float32)
    mag = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(canvas * disc)))).astype(np.float32)
    mag -= cv2.GaussianBlur(mag, (0, 0), 2.0)  # the spectrum's fine structure: its smooth fall is every radiograph's
    lp = cv2.warpPolar(mag, (RADII, ANGLES), (SIDE / 2, SIDE / 2), SIDE / 2, cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR)
    lp = (lp - lp.mean(axis=0, keepdims=True)) * _RADIAL[None, :]
    return (lp - lp.mean()) / (lp.std() + 1e-6)


def descriptor(img: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per disc of WINDOWS: the FFT of the frame's log-polar spectrum map, as is and mirrored."""
    h, w = img.shape
    s = SIDE / max(h, w)
    small = cv2.resize(img.astype(np.float32), (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    h2, w2 = small.shape
    canvas = np.zeros((SIDE, SIDE), np.float32)
    canvas[(SIDE - h2) // 2:(SIDE - h2) // 2 + h2, (SIDE - w2) // 2:(SIDE - w2) // 2 + w2] = small - small.mean()
    out = []
    for f in WINDOWS:
        lp = _spectrum_map(canvas, f * min(h2, w2) / 2)
        mirrored = np.ascontiguousarray(np.roll(lp[::-1], 1, axis=0))  # a mirror reverses the angle axis
        out.append((np.fft.rfft2(lp), np.fft.rfft2(mirrored)))
    return out


def peaks(fa: np.ndarray, fb: np.ndarray) -> tuple[float, float]:
    """(xc, pc) peaks of two maps' correlation over every turn and zoom shift."""
    x = fa * np.conj(fb)
    xc = np.fft.irfft2(x, s=(ANGLES, RADII)).max() / (ANGLES * RADII)
    pc = np.fft.irfft2(x / (np.abs(x) + 1e-9), s=(ANGLES, RADII)).max()
    return float(xc), float(pc)


def scores(da: dict, db: dict) -> dict[str, float]:
    """Every variant's score of a pair: the better mirror way, the best of its disc pairings."""
    out = {}
    for frame in ("eq", "flat"):
        got = {(ca, cb): [peaks(da[frame][ca][0], db[frame][cb][k]) for k in (0, 1)] for ca, cb in PAIRINGS}
        for j, peak in enumerate(("xc", "pc")):
            for n in (1, 5):
                out[f"{frame} {peak} {n}"] = max(v[j] for c in PAIRINGS[:n] for v in got[c])
    return out


def measure(name: str, root: Path, workers: int) -> dict:
    """One set's verified pairs: accepted or not, their verification's CPU ms, every variant's score."""
    t = time.perf_counter()
    table, done = record(root, workers)
    print(f"{root}: {len(table)} files, {len(done)} verifications ({time.perf_counter() - t:.0f} s)", flush=True)
    accepted, spent = {}, {}  # per pair: passed at any try; CPU ms of all its tries (what a skip saves)
    refined = {}  # pairs refined after the rounds: (rescued, the refinement's CPU ms)
    for p, m, cost in done:
        accepted[(p.a, p.b)] = accepted.get((p.a, p.b), False) or m.ok
        spent[(p.a, p.b)] = spent.get((p.a, p.b), 0.0) + cost
        if p.start is not None:
            refined[(p.a, p.b)] = (m.ok, cost)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # (the scoring below runs in this process, timed as one core's work)
    paths = [str(root / p) for p in table["path"]]
    small = verify.small_rows(table)
    rows = sorted({i for p, _, _ in done for i in (p.a, p.b)})
    t = time.process_time()
    desc = {}
    for i in rows:
        f = verify.features(paths[i], bool(small[i]))
        if f is not None:
            desc[i] = {"eq": descriptor(f.pixels), "flat": descriptor(f.flat)}
    per_file = (time.process_time() - t) / max(len(rows), 1)
    ms, ok, score, late = [], [], {v: [] for v in VARIANTS}, []
    t = time.process_time()
    for a, b in dict.fromkeys((p.a, p.b) for p, _, _ in done):
        if a not in desc or b not in desc:
            continue  # (a file that does not decode: verification fails it at once)
        ms.append(spent[(a, b)])
        ok.append(accepted[(a, b)])
        late.append(refined.get((a, b), (None, 0.0)))
        for v, x in scores(desc[a], desc[b]).items():
            score[v].append(x)
    per_pair = (time.process_time() - t) / max(len(ok), 1)
    cv2.setNumThreads(threads)
    print(f"  features and descriptors {1000 * per_file:.1f} ms a file; every variant {1000 * per_pair:.2f} ms a pair")
    return {"name": name, "ok": np.array(ok), "ms": np.array(ms), "score": {v: np.array(x) for v, x in score.items()},
            "refined": np.array([r is not None for r, _ in late]), "rescued": np.array([r is True for r, _ in late]),
            "refine_ms": np.array([c for _, c in late])}


def report(sets: list[dict]) -> None:
    print("\nEvery verified pair: accepted (copies) against rejected (look-alikes and the rest)\n")
    print("| variant | set | accepted | rejected | accepted min / p1 / p5 / median | rejected median / p90 / p99 "
          "| rejected under the set's lowest accepted (their CPU s) | under the lowest of every set's |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for v in VARIANTS:
        floor = min(s["score"][v][s["ok"]].min() for s in sets if s["ok"].any())
        for s in sets:
            x, ok, ms = s["score"][v], s["ok"], s["ms"]
            acc, rej = x[ok], x[~ok]
            lo = acc.min() if len(acc) else math.inf
            a = " / ".join(f"{q:.3f}" for q in np.percentile(acc, [0, 1, 5, 50])) if len(acc) else "-"
            r = " / ".join(f"{q:.3f}" for q in np.percentile(rej, [50, 90, 99]))
            cells = [f"{(rej < t).mean():.1%} ({ms[~ok][rej < t].sum() / 1000:.1f} of {ms[~ok].sum() / 1000:.1f})"
                     for t in (lo, floor)]
            print(f"| {v} | {s['name']} | {ok.sum()} | {(~ok).sum()} | {a} | {r} | {cells[0]} | {cells[1]} (< {floor:.3f}) |")
    print("\nAs a gate on the near misses' refinement after the rounds: rescued against failed refinements\n")
    print("| variant | set | refined | rescued | rescued min | failed median / p90 "
          "| failed under every set's lowest rescued (their CPU s) | with a margin of 0.05 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for v in VARIANTS:
        floor = min((s["score"][v][s["rescued"]].min() for s in sets if s["rescued"].any()), default=math.inf)
        for s in sets:
            x, done, ok, ms = s["score"][v], s["refined"], s["rescued"], s["refine_ms"]
            failed = done & ~ok
            if not done.any():
                continue
            low = f"{x[ok].min():.3f}" if ok.any() else "-"
            r = " / ".join(f"{q:.3f}" for q in np.percentile(x[failed], [50, 90])) if failed.any() else "-"
            cells = [f"{(x[failed] < t).mean():.1%} ({ms[failed][x[failed] < t].sum() / 1000:.1f} of "
                     f"{ms[failed].sum() / 1000:.1f})" for t in (floor, floor - 0.05)]
            print(f"| {v} | {s['name']} | {done.sum()} | {ok.sum()} | {low} | {r} | {cells[0]} (< {floor:.3f}) | {cells[1]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sets", nargs="+", help="image folders (FracAtlas's images, built sets), each NAME=DIR or DIR")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    named = [s.split("=", 1) if "=" in s else (Path(s).name, s) for s in args.sets]
    report([measure(name, Path(root).resolve(), args.workers) for name, root in named])


if __name__ == "__main__":
    main()
