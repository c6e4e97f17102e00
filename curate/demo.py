"""`curate demo`: a messy, leaky dataset built from the bundled real sample, ready to curate."""

from __future__ import annotations

from pathlib import Path

from curate.messy import build_messy, default_truth_path

DEMO_NAME = "xray-messy"
DEMO_SEED = 7


def prepare_demo(directory: str | Path, *, seed: int = DEMO_SEED) -> tuple[Path, Path, bool]:
    """(ROOT, truth CSV, built_now). Builds DIR/xray-messy once; a later demo reuses it,
    since the builder is deterministic and the dataset must never be rewritten under a run."""
    directory = Path(directory)
    root = directory / DEMO_NAME
    truth = default_truth_path(root)
    if root.is_dir() and truth.is_file():
        return root, truth, False
    directory.mkdir(parents=True, exist_ok=True)
    build_messy(None, root, seed=seed, truth_path=truth)
    return root, truth, True
