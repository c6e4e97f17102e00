"""Per-file results kept between runs, keyed by (absolute path, size, mtime_ns).

A re-run looks each file up here and only computes what is new or changed. The cache is one
`.npz` file of plain columns (no pickle), written atomically, under the workdir's cache folder,
never inside a dataset ROOT. A cache written by another version of an algorithm is ignored
(the version is part of the file name).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

KEY_COLUMNS = ("key_path", "key_size", "key_mtime_ns")


class FileCache:
    """A table of results keyed by file identity; load once, look up many, save once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._rows: dict[tuple[str, int, int], dict] = {}
        self._columns: list[str] = []
        self._load()

    def _load(self) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                cols = {name: data[name] for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return  # no cache yet, or a damaged one: start afresh
        if not all(k in cols for k in KEY_COLUMNS):
            return
        self._columns = [c for c in cols if c not in KEY_COLUMNS]
        for i, key in enumerate(zip(cols["key_path"].tolist(), cols["key_size"].tolist(),
                                    cols["key_mtime_ns"].tolist())):
            self._rows[key] = {c: cols[c][i].item() for c in self._columns}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, path: str, size: int, mtime_ns: int) -> dict | None:
        return self._rows.get((str(path), int(size), int(mtime_ns)))

    def put(self, path: str, size: int, mtime_ns: int, values: dict) -> None:
        self._rows[(str(path), int(size), int(mtime_ns))] = dict(values)
        for c in values:
            if c not in self._columns:
                self._columns.append(c)

    def keep_only(self, paths: set[str]) -> None:
        """Forget entries for files not in `paths` (old versions of changed files included)."""
        self._rows = {k: v for k, v in self._rows.items() if k[0] in paths}

    def save(self) -> None:
        """Write atomically: a temp file beside the cache, then rename."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = list(self._rows)
        arrays = {
            "key_path": np.array([k[0] for k in keys], dtype=str),
            "key_size": np.array([k[1] for k in keys], dtype=np.int64),
            "key_mtime_ns": np.array([k[2] for k in keys], dtype=np.int64),
        }
        for c in self._columns:
            arrays[c] = _column([self._rows[k].get(c) for k in keys])
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp.npz")
        os.close(fd)
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _column(values: list) -> np.ndarray:
    """A list of Python values as a typed array that loads without pickle."""
    if values and all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.array(values, dtype=bool)
    if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        big = any(int(v) > np.iinfo(np.int64).max for v in values)
        return np.array([int(v) for v in values], dtype=np.uint64 if big else np.int64)
    if values and all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return np.array(values, dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values], dtype=str)
