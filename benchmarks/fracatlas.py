"""Where the benchmarks find FracAtlas (the 4,083 radiographs they build their sets from).

CURATE_FRACATLAS if set; else shared/data/fracatlas beside the repository (/work/main ->
/work/shared) or beside a git worktree's parent folder (/work/wt/NAME -> /work/shared).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def fracatlas_dir() -> Path:
    if os.environ.get("CURATE_FRACATLAS"):
        return Path(os.environ["CURATE_FRACATLAS"])
    beside = [p / "shared" / "data" / "fracatlas" for p in (_REPO.parent, _REPO.parent.parent)]
    return next((p for p in beside if p.is_dir()), beside[0])


def require(path: Path) -> Path:
    """`path` if it holds FracAtlas's images/ folder, else exit with one line saying what to set."""
    if not (path / "images").is_dir():
        sys.exit(f"{path}: no FracAtlas images/ folder here; set CURATE_FRACATLAS (or the script's option)")
    return path


FRACATLAS = fracatlas_dir()
