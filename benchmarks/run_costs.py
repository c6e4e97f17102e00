"""Where a cold `curate run` spends its CPU: seconds per component, in one process.

run_speed.py times the steps on the wall clock; this says what inside them costs, to weigh a
speed target against the work the run does. The run is the same as `curate run` (the pipeline
in this process, `--workers 1`, OpenCV on one thread as a worker has it); chosen functions are
wrapped with a CPU timer, and each second is charged to the innermost component running (a
component marked whole keeps what it calls: a refinement's scores are the refinement's).

    .venv/bin/python benchmarks/run_costs.py --sets fracatlas
    .venv/bin/python benchmarks/run_costs.py --sets messy600 --data /tmp/run-speed

Sets as in run_speed.py (built there on first use). The wrappers cost nothing measurable: on
messy600 this whole process took 25.2 and 25.8 CPU s, `curate run --workers 1` 26.4 and 27.1
(back to back, idle). The last row divides by 2: the wall seconds two workers would need at
best, as run_speed.py's targets are on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import run_speed  # benchmarks/run_speed.py: its sets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# (module, function, component, whole): the component a function's CPU is charged to, wrapped in the
# module that calls it (one function called from two modules is listed for each). whole: what it
# calls counts to it too. Listed outermost first; anything outside them is "the rest".
COMPONENTS = (
    ("audit", "audit", "audit: decode every file, checksum", True),
    ("hashing", "hash_images", "hash: 76 codes a file", True),
    ("dedup", "find_duplicates", "dups: grouping, which file to keep", False),
    ("dedup", "candidate_pairs", "dups: candidate search", True),
    ("dedup", "features_of", "dups: decode, equalise, ORB keypoints", True),
    ("verify", "features_of", "dups: decode, equalise, ORB keypoints", True),
    ("dedup", "traces_of", "dups: traces (which file is derived)", True),
    ("dedup", "verify_pairs", "dups: verification, the rest", False),
    ("verify", "_matches_from_larger", "dups: keypoint matching", True),
    ("verify", "_score", "dups: alignment scores (correlations)", True),
    ("verify", "_refined", "dups: near misses refined (ECC)", True),
    ("verify", "_taken_up", "dups: near misses refined (ECC)", True),
    ("verify", "_centred_match", "dups: kin pairs' pose search", True),
    ("orient", "orient", "orient: pair tests, frames, the rest", False),
    ("orient", "estimate_skew", "orient: lone-image skew search", True),
)
RANSAC = "dups: RANSAC"
MIRRORED = "dups: mirrored and plain keypoints"
REST = "scan, split, manifests, report"


class Ledger:
    """CPU seconds per component: each interval goes to the innermost one open."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.seconds: dict[str, float] = {}
        self.stack = [(REST, False)]
        self.mark = time.process_time()

    def _charge(self) -> None:
        now = time.process_time()
        label = self.stack[-1][0]
        self.seconds[label] = self.seconds.get(label, 0.0) + now - self.mark
        self.mark = now

    def wrap(self, func, label: str, whole: bool):
        def timed(*args, **kwargs):
            if self.stack[-1][1]:  # inside a whole component: it keeps this call
                return func(*args, **kwargs)
            self._charge()
            self.stack.append((label, whole))
            try:
                return func(*args, **kwargs)
            finally:
                self._charge()
                self.stack.pop()
        return timed

    def close(self) -> None:
        self._charge()


def instrument(ledger: Ledger) -> None:
    """Wrap the components where their callers look them up (module globals, imported at call time)."""
    import importlib

    import cv2

    from curate import verify

    for module, name, label, whole in COMPONENTS:
        mod = importlib.import_module(f"curate.{module}")
        setattr(mod, name, ledger.wrap(getattr(mod, name), label, whole))

    class _Cv2:  # verify's cv2, its two RANSAC estimators timed
        estimateAffinePartial2D = staticmethod(ledger.wrap(cv2.estimateAffinePartial2D, RANSAC, True))
        estimateAffine2D = staticmethod(ledger.wrap(cv2.estimateAffine2D, RANSAC, True))

        def __getattr__(self, key):
            return getattr(cv2, key)

    verify.cv2 = _Cv2()
    # keypoints made lazily: of the mirrored frame, and of the unequalised one
    verify.Features.mirrored = property(ledger.wrap(verify.Features.mirrored.fget, MIRRORED, True))
    verify.Features.plain_keypoints = ledger.wrap(verify.Features.plain_keypoints, MIRRORED, True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="fracatlas")
    ap.add_argument("--data", type=Path, default=Path("/tmp/run-speed"), help="where built sets are kept")
    ap.add_argument("--kaggle-bases", type=int, default=540)
    args = ap.parse_args()

    import cv2

    from curate.pipeline import run_pipeline
    from curate.workspace import Workspace

    cv2.setNumThreads(1)
    ledger = Ledger()
    instrument(ledger)
    for name in args.sets.split(","):
        root = run_speed.build_set(name, args.data, args.kaggle_bases)
        ledger.reset()
        wall = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="run-costs-") as work:
            run_pipeline(root, Workspace.for_root(root, "set", work), workers=1)
        ledger.close()
        wall = time.perf_counter() - wall
        total = sum(ledger.seconds.values())
        print(f"\n{name}: one process, {wall:.1f} s wall, {total:.1f} CPU s")
        print(f"{'component':42s} {'CPU s':>7s} {'share':>6s}")
        for label, s in sorted(ledger.seconds.items(), key=lambda kv: -kv[1]):
            print(f"{label:42s} {s:7.1f} {100 * s / total:5.1f}%")
        print(f"{'all of it, on 2 cores at best':42s} {total / 2:7.1f} s wall")


if __name__ == "__main__":
    main()
