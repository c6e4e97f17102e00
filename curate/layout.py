"""ROOT -> one row per file: path, label, orig_split.

Layouts read without options:
  ROOT/<split>/<label>/...   split names train / val / valid / validation / test, any case
  ROOT/<label>/...           no split
  YOLO / Roboflow exports    a data.yaml, or images/ + labels/ folder pairs (either way round
                             with the split folders): an image's label comes from its boxes
Deeper folders inside a label folder belong to that label. `path_pattern` (a regex with named
groups label / split / group) reads them from each relative path instead. `labels_csv` reads
labels from a CSV (a path or file-name column and a label column); where a file's folder names
another of the CSV's labels, the CSV wins and the row is flagged `label_mismatch`.

What a layout cannot tell (files a pattern misses, CSV rows that match no file, ...) is counted
into `table.attrs["warnings"]`: plain sentences for the caller to show.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from curate.errors import InputError, UsageError

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val",
               "validation": "val", "dev": "val", "test": "test", "testing": "test"}
PATH_COLUMNS = ("path", "file", "filename", "file_name", "image", "image_id", "image_path", "filepath")
LABEL_COLUMNS = ("label", "class", "target", "category", "y")
PATTERN_GROUPS = ("label", "split", "group")
# the column a path pattern's `group` goes to (the `group` column is the duplicate group)
SUBJECT = "subject"
# YOLO: an image without boxes (an empty or missing label file) is a class of its own
NO_BOXES = "no-boxes"
YOLO_META = {"data.yaml", "data.yml", "classes.txt", "dataset.yaml"}


def check_root(root: str | Path) -> Path:
    """A usable dataset folder, or one clear InputError."""
    root = Path(root)
    if not root.exists():
        raise InputError(f"{root}: no such folder")
    if not root.is_dir():
        raise InputError(f"{root}: is a file, not a dataset folder")
    return root


def walk(root: Path) -> list[str]:
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


def compile_pattern(path_pattern: str | None) -> re.Pattern | None:
    """--path-pattern as a regex with at least one of the named groups label, split, group."""
    if not path_pattern:
        return None
    try:
        pattern = re.compile(path_pattern)
    except re.error as exc:
        raise UsageError(f"--path-pattern {path_pattern!r}: not a regular expression ({exc})") from None
    if not set(pattern.groupindex) & set(PATTERN_GROUPS):
        raise UsageError(f"--path-pattern {path_pattern!r}: name at least one group, e.g. (?P<label>[^/]+): "
                         f"label, split or group")
    return pattern


def scan(root: str | Path, *, labels_csv: str | Path | None = None, path_pattern: str | None = None,
         path_column: str | None = None, label_column: str | None = None) -> pd.DataFrame:
    """One row per file under ROOT, hidden files and OS junk included.

    path_pattern: a regex searched in each relative path; its named groups label, split and
    group (e.g. a patient id, to the `subject` column) override what the folders say, and
    other named groups become columns of their own. path_column / label_column: the labels
    CSV's columns (default: the first of PATH_COLUMNS / LABEL_COLUMNS it has).
    """
    root = check_root(root)
    pattern = compile_pattern(path_pattern)
    try:
        os.listdir(root)
    except OSError as exc:
        raise InputError(f"{root}: cannot list the folder ({exc.strerror})") from None
    paths = walk(root)
    if not paths:
        raise InputError(f"{root}: the folder is empty (no files under it)")
    top_dirs = {p.split("/")[0] for p in paths if "/" in p}
    has_splits = any(d.lower() in SPLIT_NAMES for d in top_dirs)
    warnings: list[str] = []

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
    from curate.yolo import apply_yolo, is_yolo  # a layout of its own, in its own module

    if is_yolo(paths):
        table = apply_yolo(table, root, warnings)
    if pattern is not None:
        table = apply_path_pattern(table, pattern, warnings)
    table["csv_label"] = ""
    table["label_mismatch"] = False
    if labels_csv is not None:
        table = apply_labels_csv(table, labels_csv, path_column=path_column, label_column=label_column,
                                 warnings=warnings)
    elif path_column or label_column:
        raise UsageError("--path-column / --label-column name columns of --labels-csv: pass the CSV too")
    table.attrs["warnings"] = warnings
    return table


def apply_path_pattern(table: pd.DataFrame, pattern: re.Pattern, warnings: list[str]) -> pd.DataFrame:
    """Label, split and group (and any other named group) from each relative path."""
    table = table.copy()
    names = list(pattern.groupindex)
    found = [pattern.search(p) for p in table["path"]]
    hit = pd.Series([m is not None for m in found], index=table.index)
    values = {n: pd.Series([(m.group(n) or "") if m else "" for m in found], index=table.index) for n in names}
    if "label" in values:  # a file the pattern misses has no label (reason no-label): never a guess
        table["label"] = values["label"]
        table["label_source"] = values["label"].map(lambda v: "pattern" if v else "")
    if "split" in values:
        raw = values["split"]
        table["orig_split"] = raw.str.lower().map(SPLIT_NAMES).fillna("")
        table["split_folder"] = raw
        odd = sorted(set(raw[(raw != "") & (table["orig_split"] == "")]))
        if odd:
            warnings.append(f"--path-pattern: split value(s) {', '.join(map(repr, odd[:5]))} are not a split name "
                            f"(train / val / test ...): those files have no original split.")
    if "group" in values:
        table[SUBJECT] = values["group"]
    for n in names:
        if n not in PATTERN_GROUPS and n not in table.columns:
            table[n] = values[n]
    missed = int((~hit).sum())
    if missed:
        example = table.loc[~hit, "path"].iloc[0]
        warnings.append(f"{missed:,} of {len(table):,} files do not match --path-pattern (e.g. {example!r}): "
                        f"no label from it, reason no-label.")
    return table


def _pick(columns: list[str], wanted: tuple[str, ...], what: str, csv_path: Path, given: str | None = None) -> str:
    if given is not None:
        if given in columns:
            return given
        raise UsageError(f"{csv_path}: no column {given!r} (it has: {', '.join(columns)})")
    lower = {c.lower().strip(): c for c in columns}
    for name in wanted:
        if name in lower:
            return lower[name]
    raise InputError(f"{csv_path}: no {what} column (expected one of: {', '.join(wanted)}; "
                     f"or name it with --{'path' if 'path' in what else 'label'}-column)")


def read_labels_csv(csv_path: str | Path, path_column: str | None = None) -> tuple[pd.DataFrame, str, pd.Series]:
    """(the CSV as strings, its path column, each row's key: a relative path or a file name)."""
    csv_path = Path(csv_path)
    try:
        csv = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{csv_path}: cannot read the labels CSV ({exc})") from None
    path_col = _pick(list(csv.columns), PATH_COLUMNS, "path or file-name", csv_path, path_column)
    keys = csv[path_col].str.replace("\\", "/", regex=False).str.strip().str.lstrip("./")
    return csv, path_col, keys


def match_rows(paths: pd.Series, keys: pd.Series) -> pd.Series:
    """For each file, the CSV row (index into keys) that names it: by relative path, else by
    file name where that name is on one row only; -1 where none does."""
    keys = keys.reset_index(drop=True)
    first = keys.drop_duplicates()  # the first row of each key
    by_path = dict(zip(first, first.index))
    names = first.str.rsplit("/", n=1).str[-1]
    unique = names[~names.duplicated(keep=False)]  # a name two different keys share matches neither
    by_name = dict(zip(unique, unique.index))
    out = [by_path.get(p, by_name.get(p.rsplit("/", 1)[-1], -1)) for p in paths]
    return pd.Series(out, index=paths.index, dtype=int)


def apply_labels_csv(table: pd.DataFrame, csv_path: str | Path, *, path_column: str | None = None,
                     label_column: str | None = None, warnings: list[str] | None = None) -> pd.DataFrame:
    """Labels from a CSV: matched on the relative path, else on the file name when unique.

    A key listed twice with different labels labels nothing (its files get no label); rows that
    match no file, such conflicts and files no row labels are counted into `warnings`."""
    warnings = [] if warnings is None else warnings
    csv, _, keys = read_labels_csv(csv_path, path_column)
    label_col = _pick(list(csv.columns), LABEL_COLUMNS, "label", Path(csv_path), label_column)
    labels = csv[label_col].str.strip()

    per_key = labels.groupby(keys.to_numpy()).nunique()
    conflicting = set(per_key[per_key > 1].index)
    table = table.copy()
    row = match_rows(table["path"], keys)
    key_of = keys.to_numpy()
    label_of = labels.to_numpy()
    csv_label = ["" if r < 0 or key_of[r] in conflicting else label_of[r] for r in row]
    table["csv_label"] = csv_label
    has_csv = table["csv_label"] != ""
    has_folder = table["label"] != ""
    # A mismatch only where the folder names another of the CSV's classes: folders such as
    # images/ or batch1/ are no label, so the CSV's vocabulary decides what a folder can say.
    folder, vocabulary = table["label"].str.lower(), set(labels.str.lower()) - {""}
    table["label_mismatch"] = (has_csv & has_folder & folder.isin(vocabulary)
                               & (table["csv_label"].str.lower() != folder))
    table.loc[has_csv, "label"] = table.loc[has_csv, "csv_label"]
    table.loc[has_csv, "label_source"] = "csv"
    in_conflict = pd.Series([r >= 0 and key_of[r] in conflicting for r in row], index=table.index)
    table.loc[in_conflict, "label"] = ""
    table.loc[in_conflict, "label_source"] = "csv-conflict"

    name = Path(csv_path).name
    matched_keys = {key_of[r] for r in row if r >= 0}
    unmatched = sorted(set(key_of) - matched_keys - {""})
    if unmatched:
        warnings.append(f"{len(unmatched):,} row(s) of {name} match no file under ROOT (e.g. {unmatched[0]!r}).")
    by_name_only = [(key_of[r], p) for p, r in zip(table["path"], row) if r >= 0 and "/" in key_of[r] and key_of[r] != p]
    if by_name_only:  # the row's path is not under ROOT; its file name is
        warnings.append(f"{len(by_name_only):,} file(s) matched a row of {name} by file name only, the row's path "
                        f"not being under ROOT (e.g. {by_name_only[0][0]!r} -> {by_name_only[0][1]!r}).")
    if conflicting:
        warnings.append(f"{len(conflicting):,} file(s) are listed in {name} with different labels "
                        f"(e.g. {sorted(conflicting)[0]!r}): left unlabelled (reason no-label).")
    files = table["role"] != "annotation" if "role" in table else pd.Series(True, index=table.index)
    no_row = table[(row < 0) & files]
    if len(no_row):
        by_folder = int((no_row["label"] != "").sum())
        warnings.append(f"{len(no_row):,} file(s) under ROOT have no row in {name} (e.g. {no_row['path'].iloc[0]!r}): "
                        f"{by_folder:,} keep their folder's label, {len(no_row) - by_folder:,} have none (reason no-label).")
    return table
