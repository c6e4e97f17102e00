"""`curate demo`: a messy, leaky dataset built from the bundled real sample, ready to curate."""

from __future__ import annotations

from pathlib import Path

from curate.messy import build_messy, default_truth_path

DEMO_SEED = 7
# Per builder profile: the dataset's folder name and the builder's settings. The kaggle set is kept
# small (about 500 files from 90 of the 230 sample radiographs) so that run + training fit in minutes.
DEMO_PROFILES = {
    "kaggle": ("xray-kaggle", {"median_files": 2.0}),
    "default": ("xray-messy", {}),
}
DEMO_NAME = DEMO_PROFILES["default"][0]


def prepare_demo(directory: str | Path, *, seed: int = DEMO_SEED, profile: str = "kaggle") -> tuple[Path, Path, bool]:
    """(ROOT, truth CSV, built_now). Builds DIR/<name> once; a later demo reuses it,
    since the builder is deterministic and the dataset must never be rewritten under a run."""
    from curate.errors import UsageError

    if profile not in DEMO_PROFILES:
        raise UsageError(f"--profile {profile!r}: choose {', '.join(DEMO_PROFILES)}")
    name, settings = DEMO_PROFILES[profile]
    directory = Path(directory)
    root = directory / name
    truth = default_truth_path(root)
    if root.is_dir() and truth.is_file():
        return root, truth, False
    directory.mkdir(parents=True, exist_ok=True)
    build_messy(None, root, profile=profile, seed=seed, truth_path=truth, **settings)
    return root, truth, True
