"""Per-file results kept between runs, keyed by (absolute path, size, mtime_ns).

A re-run looks each file up here and only computes what is new or changed. The cache is one
`.npz` file of plain columns (no pickle), written atomically, under the workdir's cache folder,
never inside a dataset ROOT. A cache written by another version of an algorithm is ignored
(the version is part of the file name). A stage whose whole input is unchanged takes its
last result back at once (StageCache).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

KEY_COLUMNS = ("key_path", "key_size", "key_mtime_ns")


class FileCache:
    """A table of results keyed by file identity; load once, look up many, save once."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # a loaded entry is its row number in _loaded until asked for (most of a large cache
        # is looked up once, or not at all)
        self._rows: dict[tuple[str, int, int], dict | int] = {}
        self._loaded: dict[str, list] = {}
        self._columns: list[str] = []
        self._known: set[str] = set()  # _columns as a set: put() asks it of every value of every row
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
        self._known = set(self._columns)
        self._loaded = {c: cols[c].tolist() for c in self._columns}
        self._rows = {key: i for i, key in enumerate(zip(cols["key_path"].tolist(), cols["key_size"].tolist(),
                                                            cols["key_mtime_ns"].tolist()))}

    def __len__(self) -> int:
        return len(self._rows)

    def _row(self, entry: dict | int) -> dict:
        return entry if isinstance(entry, dict) else {c: v[entry] for c, v in self._loaded.items()}

    def get(self, path: str, size: int, mtime_ns: int) -> dict | None:
        entry = self._rows.get((str(path), int(size), int(mtime_ns)))
        return None if entry is None else self._row(entry)

    def put(self, path: str, size: int, mtime_ns: int, values: dict) -> None:
        self._rows[(str(path), int(size), int(mtime_ns))] = dict(values)
        for c in values:
            if c not in self._known:
                self._columns.append(c)
                self._known.add(c)

    def keep_only(self, paths: set[str]) -> None:
        """Forget entries for files not in `paths` (old versions of changed files included)."""
        self._rows = {k: v for k, v in self._rows.items() if k[0] in paths}

    def save(self) -> None:
        """Write atomically: a temp file beside the cache, then rename."""
        keys = list(self._rows)
        arrays = {
            "key_path": np.array([k[0] for k in keys], dtype=str),
            "key_size": np.array([k[1] for k in keys], dtype=np.int64),
            "key_mtime_ns": np.array([k[2] for k in keys], dtype=np.int64),
        }
        rows = [self._row(self._rows[k]) for k in keys]
        for c in self._columns:
            arrays[c] = _column([r.get(c) for r in rows])
        _save_npz(self.path, arrays)


def _save_npz(path: Path, arrays: dict) -> None:
    """Write atomically: a temp file beside the target, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.npz")
    os.close(fd)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _column(values: list) -> np.ndarray:
    """A list of Python values as a typed array that loads without pickle. (The checks go by the
    values' types, each type once: per value they were most of saving a 10,000-file hash cache.)"""
    kinds = set(map(type, values))
    if values and all(issubclass(k, (bool, np.bool_)) for k in kinds):
        return np.array(values, dtype=bool)
    if values and all(issubclass(k, (int, np.integer)) and not issubclass(k, bool) for k in kinds):
        ints = [int(v) for v in values]
        return np.array(ints, dtype=np.uint64 if max(ints) > np.iinfo(np.int64).max else np.int64)
    if values and all(issubclass(k, (int, float, np.integer, np.floating)) for k in kinds):
        return np.array(values, dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values], dtype=str)


# ---- a whole stage's result, for a re-run whose input table did not change -------------------


def code_digest(module) -> str:
    """A digest of a stage module's source and of every module of its package it imports, directly
    or through others, at the top or inside a function: the stage's code version, which no one
    has to bump and no list of modules can leave one out of."""
    package = module.__name__.split(".")[0]
    sources: dict[str, bytes] = {}
    todo = [module.__name__]
    while todo:
        name = todo.pop()
        spec = None if name in sources else importlib.util.find_spec(name)
        if spec is None or not spec.has_location:  # seen, or a name that is not a module (a function)
            continue
        sources[name] = Path(spec.origin).read_bytes()
        todo.extend(_imported(sources[name], package))
    h = hashlib.sha256()
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name])
    return h.hexdigest()


def _imported(source: bytes, package: str) -> set[str]:
    """The modules of `package` a source imports (`import p.m`, `from p.m import x`, `from p import m`).
    A regular expression, not ast: a tenth of the time, and a false hit only adds a file."""
    text, names = source.decode("utf-8", "replace"), set()
    p = re.escape(package)
    names.update(re.findall(rf"^[ \t]*(?:from|import)[ \t]+({p}\.[\w.]+)", text, re.M))
    for listed in re.findall(rf"^[ \t]*from[ \t]+{p}[ \t]+import[ \t]+(\([^)]*\)|.*)", text, re.M):
        for item in listed.strip("()").split(","):
            if item.split():
                names.add(f"{package}.{item.split()[0]}")
    return names


def table_digest(table: pd.DataFrame, *extra) -> str | None:
    """A digest of everything in the table (each file's path, size and mtime_ns among it,
    with the columns earlier stages added) and of `extra`; None when a column cannot be hashed."""
    try:
        rows = pd.util.hash_pandas_object(table, index=False).to_numpy()
    except (TypeError, ValueError):
        return None
    h = hashlib.sha256(rows.tobytes())
    for item in (list(table.columns), [str(t) for t in table.dtypes], *extra):
        h.update(repr(item).encode())
    return h.hexdigest()


class StageCache:
    """The columns one stage added to a table, kept with the digest of its input (table_digest
    and the code's code_digest): a re-run with the same input takes them back and does no
    work. One file per stage holds the last result only."""

    def __init__(self, cache_dir: str | Path, stage: str):
        self.path = Path(cache_dir) / f"{stage}-result.npz"

    def get(self, key: str | None, table: pd.DataFrame, columns) -> pd.DataFrame | None:
        """The table with the stored columns added, or None when they were made from another input."""
        if key is None:
            return None
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if str(data["key"]) != key or any(c not in data.files for c in columns):
                    return None
                cols = {c: data[c] for c in columns}
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
            return None
        if any(len(v) != len(table) for v in cols.values()):
            return None
        out = table.copy()
        for c, v in cols.items():
            out[c] = v.astype(object) if v.dtype.kind == "U" else v
        return out

    def put(self, key: str | None, table: pd.DataFrame, columns) -> None:
        """Keep the table's `columns` under key (written atomically; not at all when key is None
        or a column does not store as a plain array)."""
        if key is None:
            return
        arrays = {"key": np.array(key)}
        for c in columns:
            v = table[c].to_numpy()
            if v.dtype == object:
                if not all(isinstance(x, str) for x in v):
                    return
                v = np.array(v.tolist(), dtype=str)
            arrays[c] = v
        _save_npz(self.path, arrays)
