"""ROOT -> one row per file: path, label, orig_split.

Layouts read without options:
  ROOT/<split>/<label>/...   split names train / val / valid / validation / test, any case
  ROOT/<label>/...           no split
Deeper folders inside a label folder belong to that label. `labels_csv` reads labels from a
CSV (a path or file-name column and a label column); where a file's folder says otherwise,
the CSV wins and the row is flagged `label_mismatch`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from curate.errors import InputError

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test"}
PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "image_id", "image_path", "filepath")
LABEL_COLUMNS = ("label", "class", "target", "category", "y")


def check_root(root: str | Path) -> Path:
    """A usable dataset folder, or one clear InputError."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: is a file, not a dataset folder")
    return root


def _walk(root: Path) -> list[str]:
    """Every entry under root (relative, forward slashes) that gets a row. Links are followed
    (datasets are often built from them), each real folder walked once: a link loop, or a second
    link to a folder already walked, is one entry, and so is a folder that cannot be listed."""
    found: list[str] = []
    seen = {_identity(root)}

    def unlisted(exc: OSError) -> None:
        if exc.filename and Path(exc.filename) != root:
            found.append(Path(exc.filename).relative_to(root).as_posix())

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlisted, followlinks=True):
        rel_dir = Path(dirpath).relative_to(root)
        entries = list(filenames)
        for name in list(dirnames):
            key = _identity(Path(dirpath) / name)
            if key is None or key in seen:
                dirnames.remove(name)
                entries.append(name)
            else:
                seen.add(key)
        dirnames.sort()
        for name in sorted(entries):
            found.append((rel_dir / name).as_posix())
    return found


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _split_and_label(parts: tuple[str, ...], has_splits: bool) -> tuple[str, str, str]:
    """(orig_split, split_folder, label) of a path's parts."""
    if has_splits:
        if len(parts) >= 2 and parts[0].lower() in SPLIT_NAMES:
            split_folder = parts[0]
            label = parts[1] if len(parts) >= 3 else ""
            return SPLIT_NAMES[split_folder.lower()], split_folder, label
        return "", "", parts[0] if len(parts) >= 2 else ""
    return "", "", parts[0] if len(parts) >= 2 else ""


def scan(root: str | Path, *, labels_csv: str | Path | None = None) -> pd.DataFrame:
    """One row per file under ROOT, hidden files and OS junk included."""
    root = check_root(root)
    try:
        os.listdir(root)
    except OSError as exc:
        raise InputError(f"{root}: cannot list the folder ({exc.strerror})") from None
    paths = _walk(root)
    if not paths:
        raise InputError(f"{root}: the folder is empty (no files under it)")
    top_dirs = {p.split("/")[0] for p in paths if "/" in p}
    has_splits = any(d.lower() in SPLIT_NAMES for d in top_dirs)

    rows = []
    for rel in paths:
        parts = tuple(rel.split("/"))
        orig_split, split_folder, label = _split_and_label(parts, has_splits)
        try:
            st = os.stat(root / rel)  # follows a link; a dangling link has no size
            size, mtime_ns = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime_ns = -1, 0
        rows.append({"path": rel, "label": label, "orig_split": orig_split,
                     "split_folder": split_folder, "size": size, "mtime_ns": mtime_ns,
                     "label_source": "folder" if label else ""})
    table = pd.DataFrame(rows)
    table["csv_label"] = ""
    table["label_mismatch"] = False
    if labels_csv is not None:
        table = apply_labels_csv(table, labels_csv)
    return table


def _pick(columns: list[str], wanted: tuple[str, ...], what: str, csv_path: Path) -> str:
    lower = {c.lower().strip(): c for c in columns}
    for name in wanted:
        if name in lower:
            return lower[name]
    raise InputError(f"{csv_path}: no {what} column (expected one of: {', '.join(wanted)})")


def apply_labels_csv(table: pd.DataFrame, csv_path: str | Path) -> pd.DataFrame:
    """Labels from a CSV: matched on the relative path, else on the file name when unique."""
    csv_path = Path(csv_path)
    try:
        labels = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{csv_path}: cannot read the labels CSV ({exc})") from None
    path_col = _pick(list(labels.columns), PATH_COLUMNS, "path or file-name", csv_path)
    label_col = _pick(list(labels.columns), LABEL_COLUMNS, "label", csv_path)

    keys = labels[path_col].str.replace("\\", "/", regex=False).str.strip().str.lstrip("./")
    by_path = dict(zip(keys, labels[label_col].str.strip()))
    names = keys.str.rsplit("/", n=1).str[-1]
    unique_names = names[~names.duplicated(keep=False)]
    by_name = dict(zip(unique_names, labels[label_col].str.strip()[unique_names.index]))

    table = table.copy()
    csv_label = [by_path.get(p, by_name.get(p.rsplit("/", 1)[-1], "")) for p in table["path"]]
    table["csv_label"] = csv_label
    has_csv = table["csv_label"] != ""
    has_folder = table["label"] != ""
    table["label_mismatch"] = has_csv & has_folder & (table["csv_label"] != table["label"])
    table.loc[has_csv, "label"] = table.loc[has_csv, "csv_label"]
    table.loc[has_csv, "label_source"] = "csv"
    return table
