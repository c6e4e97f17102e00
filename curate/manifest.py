"""The manifest: write it (curated and naive), read it, verify it, export it.

manifest.csv is the one thing the trainer and the user rely on, so it is deterministic:
rows sorted by path, fixed number formatting, booleans as true/false, nothing that changes
from run to run (no times, no mtimes). The same input and options give the same bytes, and
manifest.json records that file's sha256 with the provenance (version, ROOT, options, counts).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from curate import __version__
from curate.errors import InputError, UsageError
from curate.hashing import CHANNEL_COLUMNS  # dozens of codes per file: the cache keeps them, not the CSV
from curate.safe_text import from_printable, printable, spreadsheet, unspreadsheet
from curate.split import SPLITS, class_counts, parse_ratios, residual_leaks
from curate.workspace import write_atomic, write_json

FIRST_COLUMNS = ["path", "label", "orig_split", "split", "keep", "reason", "group", "sha256", "rotation"]
# Columns that describe this machine or this run rather than the data: never in the CSV.
VOLATILE_COLUMNS = {"mtime_ns"}
BOOL_COLUMNS = {"keep", "label_mismatch", "representative", "mirrored", "colour", "label_conflict"}
# The formats keras.utils.image_dataset_from_directory reads; others are exported as PNG.
KERAS_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}


# ---- naive manifest -------------------------------------------------------------------------


def naive_table(table: pd.DataFrame, ratios=(0.8, 0.1, 0.1), seed: int = 0) -> tuple[pd.DataFrame, str]:
    """What a notebook would train on: every decodable, labelled image, original splits, no
    deduplication, no rotation. Returns (table, how the split was made).

    When the layout has no splits, a notebook splits files at random; so does this (seeded,
    stratified by label, file by file: copies of one radiograph land in different splits).
    """
    out = table.copy()
    status = out["status"].astype(str)
    label = out["label"].fillna("").astype(str)
    reason = np.where(status != "ok", status, np.where(label == "", "no-label", ""))
    out["keep"] = reason == ""
    out["reason"] = reason
    out["split"] = np.where(out["keep"], out["orig_split"].fillna("").astype(str), "")
    out["rotation"] = 0.0
    how = "original folders"
    unsplit = out["keep"] & (out["split"] == "")
    if unsplit.any():
        how = "random file-level split (the layout has none), seeded, stratified by label"
        out.loc[unsplit, "split"] = _random_file_split(out.loc[unsplit, "path"], label[unsplit], ratios, seed)
    return out, how


def _random_file_split(paths: pd.Series, labels: pd.Series, ratios, seed: int) -> list[str]:
    ratios = parse_ratios(ratios)
    rng = np.random.default_rng(seed)
    split = pd.Series("", index=paths.index, dtype=object)
    for lab in sorted(labels.unique()):
        idx = sorted(paths.index[labels == lab], key=lambda i: paths[i])
        rng.shuffle(idx)
        n = len(idx)
        n_test, n_val = int(round(n * ratios[2])), int(round(n * ratios[1]))
        for k, i in enumerate(idx):
            split[i] = "test" if k < n_test else "val" if k < n_test + n_val else "train"
    return list(split)


def unlabelled_message(table: pd.DataFrame) -> str | None:
    """One line when images were found but none has a label (so nothing can be kept), else None."""
    images = table["status"].astype(str) == "ok"
    if not images.any() or (table.loc[images, "label"].fillna("").astype(str) != "").any():
        return None
    return (f"none of the {int(images.sum()):,} images has a label: expected ROOT/<label>/... or "
            "ROOT/<split>/<label>/..., or labels from --labels-csv or --path-pattern (the manifest keeps nothing)")


# ---- writing --------------------------------------------------------------------------------


def _fmt_float(x) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return ""
    text = f"{float(x):.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def to_csv_text(table: pd.DataFrame) -> str:
    """The manifest's exact bytes: columns in contract order, rows by path, stable formatting."""
    cols = [c for c in FIRST_COLUMNS if c in table.columns]
    cols += [c for c in table.columns if c not in cols and c not in VOLATILE_COLUMNS and c not in CHANNEL_COLUMNS]
    out = table[cols].copy()
    for c in cols:
        s = out[c]
        values = s.tolist()  # a list: no per-cell lookup of the column's own type
        if c in BOOL_COLUMNS or pd.api.types.is_bool_dtype(s):
            out[c] = [("true" if bool(v) else "false") if not pd.isna(v) else "" for v in values]
        elif pd.api.types.is_float_dtype(s):
            out[c] = [_fmt_float(v) for v in values]
        elif pd.api.types.is_integer_dtype(s):
            out[c] = [str(int(v)) if not pd.isna(v) else "" for v in values]
        else:  # text: a spreadsheet must not run it as a formula (read_manifest undoes this)
            out[c] = ["" if pd.isna(v) else spreadsheet(str(v)) for v in values]
    out = out.sort_values("path", kind="stable")
    return printable(out.to_csv(index=False, lineterminator="\n"))  # a name's bad bytes as \\xNN


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_manifests(table: pd.DataFrame, naive: pd.DataFrame, out_dir: str | Path, *, root: str | Path,
                    options: dict, report: dict, naive_split: str = "original folders") -> dict:
    """Write manifest.csv, naive.csv and manifest.json into out_dir; return their paths and hash."""
    out_dir = Path(out_dir)
    text = to_csv_text(table)
    naive_text = to_csv_text(naive)
    manifest_csv = write_atomic(out_dir / "manifest.csv", text)
    naive_csv = write_atomic(out_dir / "naive.csv", naive_text)
    kept = table["keep"].astype(bool)
    naive_kept = naive["keep"].astype(bool)
    counts = {
        "files": int(len(table)),
        "kept": int(kept.sum()),
        "dropped": int((~kept).sum()),
        "by_reason": {k: int(v) for k, v in table.loc[~kept, "reason"].value_counts().sort_index().items()},
        "kept_by_split": {s: int(((table["split"] == s) & kept).sum()) for s in SPLITS},
        "naive_by_split": {s: int(((naive["split"] == s) & naive_kept).sum()) for s in SPLITS},
        "class_counts_before": report.get("class_counts_before", {}),
        "class_counts_after": report.get("class_counts_after", {}),
        "naive_class_counts": class_counts(naive, "split", naive_kept),
        "dropped_by_split": report.get("dropped_by_split", {}),
        "leak_groups_by_split": report.get("leak_groups_by_split", {}),
        "reoriented": int((kept & (table.get("rotation", 0) != 0)).sum()) if "rotation" in table else 0,
        "residual_leaks": residual_leaks(table),
    }
    provenance = {
        "tool": "curate",
        "version": __version__,
        "root": str(Path(root).resolve()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "options": options,
        "naive_split": naive_split,
        "counts": counts,
        "notes": report.get("notes", []),
        "warnings": report.get("warnings", []),
        "manifest_csv": manifest_csv.name,
        "manifest_sha256": sha256_text(text),
        "naive_csv": naive_csv.name,
        "naive_sha256": sha256_text(naive_text),
    }
    manifest_json = write_json(out_dir / "manifest.json", provenance)
    return {"manifest_csv": manifest_csv, "naive_csv": naive_csv, "manifest_json": manifest_json,
            "manifest_sha256": provenance["manifest_sha256"], "counts": counts}


# ---- reading ----------------------------------------------------------------------------------


def read_manifest(path: str | Path) -> pd.DataFrame:
    """manifest.csv (or naive.csv) -> DataFrame: strings stay strings, keep is bool, rotation float."""
    path = Path(path)
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the manifest ({exc})") from None
    missing = [c for c in FIRST_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{path}: not a curate manifest (missing columns: {', '.join(missing)})")
    table = exact_values(table)
    for c in BOOL_COLUMNS & set(table.columns):
        table[c] = table[c].str.lower() == "true"
    table["rotation"] = pd.to_numeric(table["rotation"], errors="coerce").fillna(0.0)
    return table


def exact_values(table: pd.DataFrame) -> pd.DataFrame:
    """A manifest CSV's strings as curate wrote them from: formula guards taken off text cells,
    and a name-not-utf8 row's path back to the name on disk."""
    table = table.copy()
    for c in table.columns:
        table[c] = [unspreadsheet(v) if isinstance(v, str) else v for v in table[c]]
    if "flags" in table.columns:
        bad_name = table["flags"].str.contains("name-not-utf8", regex=False, na=False)
        table.loc[bad_name, "path"] = table.loc[bad_name, "path"].map(from_printable)
    return table


def manifest_root(manifest_path: str | Path, root: str | Path | None = None) -> Path:
    """The dataset folder a manifest describes: given, else from the manifest.json beside it."""
    if root is not None:
        return Path(root)
    meta = Path(manifest_path).with_name("manifest.json")
    try:
        return Path(json.loads(meta.read_text(encoding="utf-8"))["root"])
    except (OSError, ValueError, KeyError):
        raise InputError(f"{manifest_path}: no manifest.json beside it to say where ROOT is; pass --root") from None


# ---- verify -----------------------------------------------------------------------------------


def verify_manifest(manifest_path: str | Path, root: str | Path | None = None) -> dict:
    """Compare the files under ROOT with the manifest: missing, changed (sha256) and new files."""
    from curate.audit import sha256_of
    from curate.layout import check_root, walk

    table = read_manifest(manifest_path)
    root = check_root(manifest_root(manifest_path, root))
    on_disk = set(walk(root))
    listed = dict(zip(table["path"], table["sha256"]))
    missing = sorted(p for p in listed if p not in on_disk)
    new = sorted(p for p in on_disk if p not in listed)
    changed = []
    for p, digest in sorted(listed.items()):
        if p in on_disk and digest:
            try:
                if sha256_of(root / p) != digest:
                    changed.append(p)
            except OSError:
                changed.append(p)
    return {"root": str(root.resolve()), "files": len(listed), "missing": missing, "changed": changed,
            "new": new, "ok": not (missing or changed or new)}


# ---- export -----------------------------------------------------------------------------------


def slug(text: str) -> str:
    """A label as a safe file/folder name: 'Non fractured/2' -> 'non-fractured-2'. A long one is
    cut to 60 characters plus 8 of its hash (a file name holds at most 255 bytes)."""
    name = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    if len(name) > 70:
        name = f"{name[:60].rstrip('-')}-{hashlib.sha256(str(text).encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
    return name or "unlabelled"


def _safe_source(root: Path, rel: str) -> Path:
    """root/rel, refusing a path that leaves ROOT (absolute, '..', or a link pointing out)."""
    if "\x00" in rel:
        raise InputError(f"manifest path {rel!r} holds a NUL byte: refused")
    if not rel or rel.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", rel) or ".." in re.split(r"[\\/]", rel):
        raise InputError(f"manifest path {rel!r} leaves the dataset folder: refused")
    real_root = os.path.realpath(root)
    real = os.path.realpath(root / rel)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise InputError(f"manifest path {rel!r} is a link to {real}, outside {real_root}: refused")
    return Path(real)


def _verified_bytes(src: Path, sha256: str) -> bytes:
    """The source's bytes, or ImageError when they are not the ones the manifest names."""
    from curate.errors import ImageError
    from curate.imageio import open_regular

    try:
        with open_regular(src) as fh:
            data = fh.read()
    except OSError as exc:
        raise ImageError("unreadable", exc.strerror or type(exc).__name__) from None
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ImageError("changed", "changed since the manifest (sha256 differs)")
    return data


def export(manifest_path: str | Path, dest: str | Path, *, root: str | Path | None = None,
           apply_rotation: bool = False) -> dict:
    """Copy the kept images to DEST/<split>/<label>/<label>_<sha256[:12]>.<ext>; a detection set
    (YOLO) to DEST/<split>/images/ with each image's label file in DEST/<split>/labels/ (its boxes
    turned with it under apply_rotation) and a data.yaml.

    Names are reproducible and say what the file is. Two kept files with the same bytes (kept
    copies) get -2, -3, ... in path order. apply_rotation writes rotated (and EXIF-rotated)
    images upright as PNG; formats keras cannot read (TIFF, WebP, ...) are written as PNG too.
    Writes DEST/export.csv: which source path became which file.

    Only the bytes the manifest names are exported: a kept file that is gone, unreadable or
    changed since (its sha256 differs) is refused and listed in the result's `refused`. The
    tree is built beside DEST and renamed into place at the end, so a failed export leaves
    DEST as it was.
    """
    import tempfile

    import cv2

    from curate.errors import ImageError
    from curate.imageio import decode_bytes, rotate
    from curate.yolo import class_names, data_yaml, turn_labels

    table = read_manifest(manifest_path)
    root = manifest_root(manifest_path, root)
    if not root.is_dir():
        raise InputError(f"{root}: the dataset folder of this manifest is not there (pass --root)")
    dest = Path(dest)
    real_root, real_dest = root.resolve(), dest.resolve()
    if real_dest == real_root or real_root in real_dest.parents:
        raise UsageError(f"{dest} is inside the dataset {real_root}: export never writes into ROOT")
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} is a file: export into a new or empty folder")
    if dest.exists() and any(dest.iterdir()):
        raise UsageError(f"{dest} is not empty: export into a new or empty folder")

    kept = table[table["keep"]].sort_values("path", kind="stable")
    sources = {p: _safe_source(root, p) for p in kept["path"]}  # refuse before writing anything
    bad_split = kept[~kept["split"].isin(SPLITS)]
    if len(bad_split):
        raise InputError(f"{manifest_path}: kept row {bad_split['path'].iloc[0]!r} has no split")

    # a detection export (YOLO): DEST/<split>/images/ + labels/, each image's boxes beside it
    detection = "annotation" in table.columns and "role" in table.columns and (table["role"] == "image").any()
    if detection:
        for p in kept["annotation"]:
            if p:
                sources[p] = _safe_source(root, p)

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.partial-"))
    try:
        taken: set[str] = set()
        rows, refused = [], []
        for r in kept.itertuples(index=False):
            ext = Path(r.path).suffix.lower()
            exif = str(getattr(r, "exif_orientation", "1") or "1") not in ("0", "1", "")
            upright = apply_rotation and (float(r.rotation) % 360 != 0 or exif)
            as_png = upright or ext not in KERAS_EXTENSIONS
            try:
                data = _verified_bytes(sources[r.path], r.sha256)
                if as_png:
                    pixels = decode_bytes(data, r.path).pixels
                    height, width = pixels.shape[:2]
                    if upright:
                        pixels = rotate(pixels, float(r.rotation))
                    data = cv2.imencode(".png", pixels)[1].tobytes()
                boxes_text = ""
                if detection and r.annotation:  # no label file is YOLO's "no boxes": an empty one
                    boxes_text = _verified_bytes(sources[r.annotation], "").decode("utf-8", errors="replace")
            except ImageError as exc:
                refused.append({"path": r.path, "reason": exc.detail})
                continue
            ext = ".png" if as_png else ext
            label = slug(r.label)
            stem = f"{label}_{(r.sha256 or hashlib.sha256(r.path.encode('utf-8', 'surrogateescape')).hexdigest())[:12]}"
            folder = f"{r.split}/images" if detection else f"{r.split}/{label}"
            rel = f"{folder}/{stem}{ext}"
            n = 2
            while rel in taken:
                rel = f"{folder}/{stem}-{n}{ext}"
                n += 1
            taken.add(rel)
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            row = {"file": rel, "path": r.path, "split": r.split, "label": r.label, "sha256": r.sha256,
                   "rotation": float(r.rotation), "rotated": bool(upright)}
            if detection:
                if upright:
                    boxes_text = turn_labels(boxes_text, float(r.rotation), width, height)
                boxes = Path(rel.replace(f"{r.split}/images/", f"{r.split}/labels/", 1)).with_suffix(".txt").as_posix()
                write_atomic(staging / boxes, boxes_text)
                row["annotation"] = boxes
            rows.append(row)
        columns = ["file", "path", "split", "label", "sha256", "rotation", "rotated"] + (["annotation"] if detection else [])
        log = pd.DataFrame(rows, columns=columns)
        if detection:
            names = class_names(root, list(table.loc[table["role"] == "annotation", "path"]), [])
            write_atomic(staging / "data.yaml", data_yaml(names, [s for s in SPLITS if (log["split"] == s).any()]))
        write_atomic(staging / "export.csv", to_csv_text_plain(log))
        if dest.exists():
            dest.rmdir()  # empty (checked above)
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    by_split = {s: int((log["split"] == s).sum()) for s in SPLITS}
    return {"dest": str(real_dest), "files": len(log), "by_split": by_split,
            "rotated": int(log["rotated"].sum()) if len(log) else 0, "refused": refused}


def to_csv_text_plain(table: pd.DataFrame) -> str:
    out = table.copy()
    for c in out.columns:
        if pd.api.types.is_bool_dtype(out[c]):
            out[c] = out[c].map({True: "true", False: "false"})
        elif pd.api.types.is_float_dtype(out[c]):
            out[c] = [_fmt_float(v) for v in out[c]]
        else:
            out[c] = [spreadsheet(v) if isinstance(v, str) else v for v in out[c]]
    return out.to_csv(index=False, lineterminator="\n")


# ---- the whole way from ROOT to the manifests ---------------------------------------------------


def group_by_column(table: pd.DataFrame, labels_csv: str | Path | None, column: str, *,
                    path_column: str | None = None) -> pd.DataFrame:
    """Bring a labels-CSV column (e.g. a patient id) into the table, matched like the labels."""
    from curate.layout import match_rows, read_labels_csv

    if column in table.columns:
        return table
    if labels_csv is None:
        raise UsageError(f"--group-by {column}: no such column; name a labels-CSV column (with --labels-csv), "
                         f"a --path-pattern group, or DICOM's patient_id / study_id")
    csv, _, keys = read_labels_csv(labels_csv, path_column)
    if column not in csv.columns:
        raise UsageError(f"--group-by {column}: no such column in {labels_csv}")
    row = match_rows(table["path"], keys)
    values = csv[column].to_numpy()
    out = table.copy()
    out[column] = ["" if r < 0 else values[r] for r in row]
    return out


def assign_splits_checked(table, policy, ratios, seed, keep_copies, group_by, drop_conflicts):
    from curate.split import assign_splits

    from curate.layout import SUBJECT

    out = assign_splits(table, policy, ratios=ratios, seed=seed, keep_copies=keep_copies,
                        group_by=group_by, drop_conflicts=drop_conflicts)
    leaks = residual_leaks(out, group_by or (SUBJECT if SUBJECT in out.columns else None))
    if leaks:  # an invariant, not a user error: fail loudly rather than write a leaky manifest
        raise AssertionError(f"{leaks} kept duplicate group(s) or --group-by value(s) span two splits")
    return out
