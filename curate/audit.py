"""Decode every file fully and give it a status, a reason and flags.

Pillow's `verify()` passes truncated JPEGs, so every file is decoded to the last pixel.
Statuses are errors (corrupt, not-image, unreadable, too-large); flags are not errors
(ext-mismatch, exif-rotated, 16-bit, colour, blank, tiny, multi-frame, label-mismatch, hidden,
outside-root: reached through a link leading out of ROOT; name-not-utf8: its bad bytes written as \\xNN).
FIFOs, devices, sockets and folders that could not be listed are `unreadable`, never opened.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import cv2
import pandas as pd

from curate.cache import FileCache
from curate.dicom import MISSING
from curate.errors import ImageError
from curate.imageio import EXTENSION_FORMATS, IMAGE_EXTENSIONS, decode, open_regular
from curate.parallel import Progress, map_files
from curate.safe_text import printable

STATUSES = ("ok", "corrupt", "not-image", "unreadable", "too-large", "annotation")
BLANK_STD = 2.0  # grey levels: an image this flat shows nothing
TINY_SIDE = 64  # px: too small to show a fracture
OS_JUNK = {".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".directory"}

DICOM_COLUMNS = ("patient_id", "study_id")
AUDIT_COLUMNS = ("status", "detail", "format", "mode", "width", "height", "bit_depth", "frames",
                 "exif_orientation", "colour", "mean", "std", "sha256", "flags")


def sha256_of(path: Path) -> str:
    """sha256 of a regular file's bytes (ImageError for a FIFO, device, socket or folder)."""
    h = hashlib.sha256()
    with open_regular(path) as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _blank_row(status: str) -> dict:
    return {"status": status, "detail": "", "format": "", "mode": "", "width": 0, "height": 0,
            "bit_depth": 0, "frames": 0, "exif_orientation": 0, "colour": False,
            "mean": float("nan"), "std": float("nan"), "sha256": "", "flags": []}


def audit_file(path: str | Path) -> dict:
    """Audit one file: a dict of the audit columns (flags as a list). Never raises."""
    path = Path(path)
    row = _blank_row("ok")
    try:
        row["sha256"] = sha256_of(path)
    except ImageError as exc:  # a special file: never opened
        row.update(status=exc.reason, detail=exc.detail)
        if os.path.isdir(path):  # the layout lists a folder only when it did not walk it
            row["detail"] = "a folder not walked: it cannot be listed, or it is a link to a folder walked elsewhere"
        return row
    except OSError as exc:
        row.update(status="unreadable", detail=_os_detail(path, exc))
        return row
    if path.name.lower() in OS_JUNK:
        row.update(status="not-image", detail="operating-system junk file")
        return row
    try:
        img = decode(path)
    except ImageError as exc:
        row.update(status=exc.reason, detail=exc.detail)
        return row
    except Exception as exc:  # a decoder bug must not end the audit: record it on the file
        row.update(status="corrupt", detail=f"decoder error: {type(exc).__name__}: {exc}")
        return row

    px = img.pixels
    row["meta"] = img.meta
    row.update(format=img.format, mode=img.mode, width=img.width, height=img.height,
               bit_depth=img.bit_depth, frames=img.frames, exif_orientation=img.exif_orientation,
               colour=img.colour)
    mean, std = cv2.meanStdDev(px)  # one pass in C; numpy's std is ~5x slower on big images
    row.update(mean=round(float(mean[0, 0]), 3), std=round(float(std[0, 0]), 3))
    flags = row["flags"]
    expected = EXTENSION_FORMATS.get(path.suffix.lower())
    if expected and expected != img.format and not (expected == "PPM" and img.format in ("PPM", "PGM", "PBM")):
        flags.append("ext-mismatch")
    if img.exif_orientation != 1:
        flags.append("exif-rotated")
    if img.bit_depth == 16:
        flags.append("16-bit")
    if img.colour:
        flags.append("colour")
    if row["std"] < BLANK_STD:
        flags.append("blank")
    if min(img.width, img.height) < TINY_SIDE:
        flags.append("tiny")
    if img.frames > 1:
        flags.append("multi-frame")
    return row


def _os_detail(path: Path, exc: OSError) -> str:
    if os.path.islink(path) and not os.path.exists(path):
        return "link loop" if exc.errno == errno.ELOOP else "broken link: its target is missing"
    return exc.strerror or type(exc).__name__


def annotation_file(path: str | Path) -> dict:
    """A label file or class list of a detection export: status annotation, never decoded."""
    row = _blank_row("annotation")
    row["detail"] = "labels of a detection export"
    try:
        row["sha256"] = sha256_of(Path(path))
    except ImageError as exc:  # a special file: never opened
        row.update(status=exc.reason, detail=exc.detail)
    except OSError as exc:
        row.update(status="unreadable", detail=_os_detail(Path(path), exc))
    return row


def _audit_item(item: tuple[Path, bool]) -> dict:
    path, is_annotation = item
    return annotation_file(path) if is_annotation else audit_file(path)


def audit(table: pd.DataFrame, root: str | Path, *, workers: int | None = None,
          progress: Progress | None = None, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Add the audit columns to the table (one decode per file, over `workers` processes).
    Rows the layout gave the role `annotation` (YOLO label files) are hashed, not decoded.
    With `cache_dir`, results are kept keyed by (absolute path, size, mtime_ns): a re-run
    decodes only new or changed files (and unreadable ones, and DICOM without pydicom)."""
    root = Path(root)
    roles = table["role"] if "role" in table else pd.Series("", index=table.index)
    items = [(root / p, r == "annotation") for p, r in zip(table["path"], roles)]
    cache, keys = None, [None] * len(items)
    if cache_dir is not None and {"size", "mtime_ns"} <= set(table.columns):
        cache = FileCache(Path(cache_dir) / f"audit-v{AUDIT_VERSION}.npz")
        absolute = root.resolve()
        keys = [(str(absolute / p), int(sz), int(mt)) if sz >= 0 and r != "annotation" else None
                for p, r, sz, mt in zip(table["path"], roles, table["size"], table["mtime_ns"])]
    results: list[dict | None] = [_from_cache(cache.get(*k)) if k is not None else None for k in keys] \
        if cache is not None else [None] * len(items)
    todo = [i for i, r in enumerate(results) if r is None]
    if progress and len(todo) < len(items):
        progress(len(items) - len(todo))  # cached files count as done
    for i, row in zip(todo, map_files(_audit_item, [items[i] for i in todo], workers=workers, progress=progress)):
        results[i] = row
        if cache is not None and keys[i] is not None and _lasting(row):
            cache.put(*keys[i], _to_cache(row))
    if cache is not None and todo:
        cache.save()
    out = table.copy()
    outside = outside_root(root, out["path"])
    for col in AUDIT_COLUMNS:
        values = [r[col] for r in results]
        if col == "flags":
            values = [_flags(r["flags"], path, mismatch, out_)
                      for r, path, mismatch, out_ in zip(results, out["path"], out["label_mismatch"], outside)]
        out[col] = values
    for col in DICOM_COLUMNS:  # patients and studies: what --group-by keeps in one split
        values = [r.get("meta", {}).get(col, "") for r in results]
        if any(values):
            out[col] = values
    return out


AUDIT_VERSION = "1"  # bump when audit_file's columns change meaning: old caches are then ignored


def _lasting(row: dict) -> bool:
    """Whether a result holds as long as the bytes do (not so a permission, or a missing decoder)."""
    return row["status"] in ("ok", "corrupt", "not-image", "too-large") and row["detail"] != MISSING


def _to_cache(row: dict) -> dict:
    """An audit_file row as plain cache columns (flags joined, DICOM ids as text)."""
    out = {c: row[c] for c in AUDIT_COLUMNS if c != "flags"}
    out["flags"] = ";".join(row["flags"])
    for col in DICOM_COLUMNS:
        out[f"meta_{col}"] = str(row.get("meta", {}).get(col, "") or "")
    return out


def _from_cache(hit: dict | None) -> dict | None:
    if hit is None:
        return None
    row = {c: hit[c] for c in AUDIT_COLUMNS if c != "flags"}
    row["flags"] = [f for f in str(hit["flags"]).split(";") if f]
    row["colour"] = bool(row["colour"])
    row["meta"] = {col: hit[f"meta_{col}"] for col in DICOM_COLUMNS if hit.get(f"meta_{col}")}
    return row


def outside_root(root: str | Path, paths) -> list[bool]:
    """Which paths lead out of ROOT (a link, or a link on the way, pointing elsewhere)."""
    real_root = os.path.realpath(root)
    real_dirs: dict[str, str] = {}  # a folder's real path, looked up once per folder
    out = []
    for rel in paths:
        folder, _, name = rel.rpartition("/")
        if folder not in real_dirs:
            real_dirs[folder] = os.path.realpath(os.path.join(root, folder))
        real = os.path.join(real_dirs[folder], name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        out.append(not (real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)))
    return out


def dicom_warnings(table: pd.DataFrame) -> list[str]:
    """One line when DICOM files went unread for want of pydicom."""
    n = int((table["detail"] == MISSING).sum()) if "detail" in table else 0
    return [f"{n:,} DICOM file(s) not read: {MISSING}."] if n else []


def _flags(flags: list[str], rel_path: str, label_mismatch: bool, outside: bool = False) -> str:
    flags = list(flags)
    if label_mismatch:
        flags.append("label-mismatch")
    if any(part.startswith(".") for part in rel_path.split("/")):
        flags.append("hidden")
    if outside:
        flags.append("outside-root")
    if printable(rel_path) != rel_path:
        flags.append("name-not-utf8")
    return ";".join(flags)


def audit_summary(table: pd.DataFrame) -> dict:
    """Counts by status, by detail of the broken files, and by flag."""
    statuses = {s: int((table["status"] == s).sum()) for s in STATUSES}
    if not statuses["annotation"]:  # only detection exports have them
        del statuses["annotation"]
    broken = table[~table["status"].isin(["ok", "annotation"])]
    flags = pd.Series([f for fl in table["flags"] for f in fl.split(";") if f])
    return {
        "files": int(len(table)),
        "images_ok": statuses["ok"],
        "corrupt": statuses["corrupt"],
        "not_images": statuses["not-image"],
        "unreadable": statuses["unreadable"],
        "too_large": statuses["too-large"],
        "annotations": statuses.get("annotation", 0),
        # broken: meant to be an image and is not (OS junk and stray text files are not broken)
        "broken": int(broken["status"].isin(["corrupt", "unreadable", "too-large"]).sum()
                      + ((broken["status"] == "not-image") & broken["path"].map(_has_image_ext).astype(bool)).sum()),
        "by_status": statuses,
        "broken_details": {k: int(v) for k, v in broken["detail"].map(_detail_kind).value_counts().items()},
        "flags": {k: int(v) for k, v in flags.value_counts().sort_index().items()},
    }


def _has_image_ext(rel_path: str) -> bool:
    return Path(rel_path).suffix.lower() in IMAGE_EXTENSIONS


def _detail_kind(detail: str) -> str:
    """Group free-text details into kinds for the summary (truncated, bad checksum, ...)."""
    return detail.split(":")[0].strip() if detail else "unknown"
