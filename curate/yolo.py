"""YOLO / Roboflow detection exports: images/ + labels/ folder pairs, class names in data.yaml.

    ROOT/data.yaml                       ROOT/data.yaml
    ROOT/train/images/a.jpg      or      ROOT/images/train/a.jpg
    ROOT/train/labels/a.txt              ROOT/labels/train/a.txt

An image's label file is its path with the last `images` folder read as `labels` and the
extension as .txt: one line per box, `class cx cy w h` (or a polygon, `class x1 y1 x2 y2 ...`),
coordinates as fractions of the image. An image's label is the names of the classes it has
boxes of (joined by '+'); an empty or missing label file means no boxes (NO_BOXES). Label files
and data.yaml get the role `annotation`: the audit gives them that status, never corrupt.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from curate.layout import NO_BOXES, SPLIT_NAMES, YOLO_META

LABEL_DIR, IMAGE_DIR = "labels", "images"


def label_file_of(rel: str) -> str | None:
    """The label file an image under an images/ folder would have, or None."""
    parts = rel.split("/")
    if IMAGE_DIR not in parts[:-1]:
        return None
    i = len(parts) - 2 - parts[-2::-1].index(IMAGE_DIR)  # the last images/ folder
    stem = parts[-1].rsplit(".", 1)[0] if "." in parts[-1] else parts[-1]
    return "/".join(parts[:i] + [LABEL_DIR] + parts[i + 1:-1] + [stem + ".txt"])


def is_label_file(rel: str) -> bool:
    parts = rel.split("/")
    return LABEL_DIR in parts[:-1] and parts[-1].lower().endswith(".txt")


def is_yolo(paths: list[str]) -> bool:
    """A data.yaml near the top, or an image whose label file is there."""
    if any(p.rsplit("/", 1)[-1].lower() in ("data.yaml", "data.yml") and p.count("/") <= 1 for p in paths):
        return True
    labels = {p for p in paths if is_label_file(p)}
    return bool(labels) and any(label_file_of(p) in labels for p in paths)


def class_names(root: Path, paths: list[str], warnings: list[str]) -> dict[int, str]:
    """Class id -> name from the shallowest data.yaml (or classes.txt); {} when there is none."""
    metas = sorted((p for p in paths if p.rsplit("/", 1)[-1].lower() in YOLO_META), key=lambda p: (p.count("/"), p))
    for rel in metas:
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace")
            if rel.lower().endswith(".txt"):
                return {i: line.strip() for i, line in enumerate(text.splitlines()) if line.strip()}
            import yaml

            names = (yaml.safe_load(text) or {}).get("names")
        except Exception as exc:  # unreadable or malformed YAML: say so, go on with numbers
            warnings.append(f"{rel}: cannot read its class names ({type(exc).__name__}): classes go by number.")
            continue
        if isinstance(names, list):
            return {i: str(n) for i, n in enumerate(names)}
        if isinstance(names, dict):
            return {int(k): str(v) for k, v in names.items() if str(k).lstrip("-").isdigit()}
    return {}


def read_boxes(path: Path) -> tuple[list[int], int]:
    """(class id of each box, lines that are not a box) of one YOLO label file."""
    classes, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if not fields:
            continue
        try:
            cls = int(fields[0])
            coords = [float(x) for x in fields[1:]]
        except ValueError:
            bad += 1
            continue
        if len(coords) == 4 or (len(coords) >= 6 and len(coords) % 2 == 0):
            classes.append(cls)
        else:
            bad += 1
    return classes, bad


def apply_yolo(table: pd.DataFrame, root: Path, warnings: list[str]) -> pd.DataFrame:
    """Label, split, `annotation` (an image's label file), `boxes` and `role` of a YOLO export."""
    paths = table["path"].tolist()
    present = set(paths)
    names = class_names(root, paths, warnings)
    table = table.copy()
    labels, splits, folders, annotation, boxes, role = [], [], [], [], [], []
    missing, bad_files, claimed = 0, 0, set()
    for rel in paths:
        parts = rel.split("/")
        split_folder = next((p for p in parts[:-1] if p.lower() in SPLIT_NAMES), "")
        splits.append(SPLIT_NAMES.get(split_folder.lower(), ""))
        folders.append(split_folder)
        own = label_file_of(rel)
        if parts[-1].lower() in YOLO_META or is_label_file(rel):
            labels.append(""), annotation.append(""), boxes.append(0), role.append("annotation")
        elif own is None:  # a README, a stray file: no label
            labels.append(""), annotation.append(""), boxes.append(0), role.append("")
        elif own not in present:  # YOLO reads an image without a label file as one without boxes
            missing += 1
            labels.append(NO_BOXES), annotation.append(""), boxes.append(0), role.append("image")
        else:
            claimed.add(own)
            try:
                classes, bad = read_boxes(root / own)
            except OSError:
                classes, bad = [], 1
            bad_files += bool(bad)
            found = sorted({names.get(c, str(c)) for c in classes})
            label = "+".join(found) if found else (NO_BOXES if not bad else "")
            labels.append(label), annotation.append(own), boxes.append(len(classes)), role.append("image")
    table["label"] = labels
    table["label_source"] = ["boxes" if lab else "" for lab in labels]
    table["orig_split"] = splits
    table["split_folder"] = folders
    table["annotation"] = annotation
    table["boxes"] = boxes
    table["role"] = role
    orphans = [p for p, r in zip(paths, role) if r == "annotation" and is_label_file(p) and p not in claimed]
    if missing:
        warnings.append(f"{missing:,} image(s) have no label file: read as images without boxes (label {NO_BOXES}).")
    if bad_files:
        warnings.append(f"{bad_files:,} label file(s) have lines that are not boxes (class cx cy w h): those lines "
                        f"are ignored; an image with no readable box has no label.")
    if orphans:
        warnings.append(f"{len(orphans):,} label file(s) have no image (e.g. {orphans[0]!r}): kept as annotation rows.")
    if not names:
        warnings.append("no data.yaml with class names: classes go by number.")
    return table


# ---- export: boxes that turn with their image ----------------------------------------------------


def _turn_points(xy: np.ndarray, degrees: float, width: int, height: int) -> tuple[np.ndarray, int, int]:
    """Pixel points (N x 2) of a width x height image turned `degrees` CCW as imageio.rotate turns
    it: (points in the new frame, new width, new height)."""
    degrees = float(degrees) % 360
    if degrees % 90 == 0:
        for _ in range(int(degrees // 90)):  # a quarter turn CCW: (x, y) -> (y, W - x)
            xy = np.stack([xy[:, 1], width - xy[:, 0]], axis=1)
            width, height = height, width
        return xy, width, height
    import cv2

    m = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, 1.0)  # the frame keeps its size
    return xy @ m[:, :2].T + m[:, 2], width, height


def turn_labels(text: str, degrees: float, width: int, height: int) -> str:
    """A YOLO label file's lines for its image turned `degrees` CCW (width x height before the
    turn). A box becomes the box around its turned corners, cut to the frame; a polygon's points
    turn one by one. Lines that are not boxes are kept as they are; a box turned wholly out of
    the frame is dropped."""
    if float(degrees) % 360 == 0:
        return text
    out = []
    for line in text.splitlines():
        fields = line.split()
        try:
            cls, coords = fields[0], np.array([float(x) for x in fields[1:]])
        except (IndexError, ValueError):
            out.append(line)
            continue
        if len(coords) == 4:
            cx, cy, w, h = coords
            pts = np.array([[cx - w / 2, cy - h / 2], [cx + w / 2, cy - h / 2],
                            [cx + w / 2, cy + h / 2], [cx - w / 2, cy + h / 2]])
        elif len(coords) >= 6 and len(coords) % 2 == 0:
            pts = coords.reshape(-1, 2)
        else:
            out.append(line)
            continue
        xy, nw, nh = _turn_points(pts * [width, height], degrees, width, height)
        xy = np.clip(xy / [nw, nh], 0.0, 1.0)
        if len(coords) == 4:
            (x0, y0), (x1, y1) = xy.min(axis=0), xy.max(axis=0)
            if x1 <= x0 or y1 <= y0:
                continue
            values = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        else:
            values = xy.ravel().tolist()
        out.append(" ".join([cls] + [f"{v:.6f}" for v in values]))
    return "\n".join(out) + ("\n" if out else "")


def data_yaml(names: dict[int, str], splits: list[str]) -> str:
    """data.yaml of an exported set: where each split's images are, and the class names."""
    import yaml

    doc = {"path": ".", **{s: f"{s}/images" for s in splits}, "nc": len(names),
           "names": [names[i] for i in sorted(names)] if names and sorted(names) == list(range(len(names)))
           else {int(k): v for k, v in sorted(names.items())}}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
