"""The `kaggle` profile of the messy builder: a set made the way the popular Kaggle fracture sets were.

`build_kaggle(sources, dest, seed=...)` (or `build_messy(..., profile="kaggle")`) writes
`dest/train/<label>/` and `dest/test/<label>/` (and `dest/val/<label>/` when `val_share` > 0):

- each base radiograph resized to 224x224 greyscale and saved as `<n>.jpg` (n a random number);
- 2-4 generations of augmentation, each working on the previous generation's OUTPUTS: a mirror
  sometimes, a turn of ±5-25° on the fixed canvas (corners black, white or replicated), a zoom of
  0.85-1.25 (crop or pad) and often a brightness/contrast/gamma change, re-saved as JPEG. The
  name records the chain: the 2nd output made from `82-rotated1.jpg` is `82-rotated1-rotated2.jpg`;
- byte copies beside their file, named as Windows and browsers name them (`82 - Copy.jpg`,
  `82-rotated1 (1).jpg`, `82 - Copy - Copy.jpg`);
- heavy-tailed counts per radiograph (log-normal, median `median_files`; the augmented class gets
  `boost` times as many, by default the minority class, as sets "balanced" by augmenting it);
- test (and val) filled mostly with byte copies of train files, plus a few radiographs of their own;
- a few truncated byte copies, and a few augmented outputs saved as PNG or GIF under a .jpg name.

The truth (curate.messy's format) adds, per file: `parent` (the file it was made or copied from),
`generation` (0 = the resized base) and the transform composed from the base: the file is the base
mirrored when `mirrored`, then turned `angle` degrees CCW and scaled by `zoom` about the canvas
centre; `tone` lists the tone steps (brightness;contrast;gamma), oldest first, joined by `|`.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from curate.errors import ImageError, InputError, UsageError
from curate.imageio import decode
from curate.messy import (
    JPEG_QUALITY,
    NEGATIVE,
    POSITIVE,
    jpeg_bytes,
    load_bases,
    png_bytes,
    publish,
    sample_dir,
)

SIZE = 224
# Corner fills of a turn on the fixed canvas: (truth's border word, cv2 border mode, fill value)
_FILLS = (("black", cv2.BORDER_CONSTANT, 0), ("white", cv2.BORDER_CONSTANT, 255), ("replicate", cv2.BORDER_REPLICATE, 0))
# Names a second copy gets from Windows Explorer (" - Copy") and browsers (" (1)"), in the order tried
_COPY_SUFFIXES = (" - Copy", " (1)", " - Copy (2)", " (2)", " - Copy - Copy", " - Copy (3)", " (3)")


def gif_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, "L").save(buf, "GIF")
    return buf.getvalue()


def augment(pixels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """One generation: maybe a mirror, then a turn and a zoom about the centre, then maybe a tone change."""
    mirrored = bool(rng.random() < 0.3)
    angle = round(float(rng.uniform(5, 25)) * (1 if rng.random() < 0.5 else -1), 1)
    zoom = round(float(rng.uniform(0.85, 1.25)), 3)
    border, mode, fill = _FILLS[int(rng.integers(len(_FILLS)))]
    img = np.fliplr(pixels) if mirrored else pixels
    h, w = img.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, zoom)
    img = cv2.warpAffine(np.ascontiguousarray(img), m, (w, h), flags=cv2.INTER_LINEAR, borderMode=mode,
                         borderValue=fill)
    tone = ""
    if rng.random() < 0.6:
        b, c, g = float(rng.uniform(-20, 20)), float(rng.uniform(0.85, 1.15)), float(rng.uniform(0.8, 1.25))
        x = (img.astype(np.float64) / 255.0) ** g * 255.0
        img = np.clip(np.rint((x - 128.0) * c + 128.0 + b), 0, 255).astype(np.uint8)
        tone = f"{b:.1f};{c:.2f};{g:.2f}"
    return img, {"mirrored": mirrored, "angle": angle, "zoom": zoom, "border": border, "tone": tone}


def compose(parent: dict, step: dict) -> dict:
    """The geometry from the base after `step` is applied to a file with `parent`'s geometry.

    A file is Zoom(z) Turn(a) Mirror^m (base); a step Zoom(z') Turn(a') Mirror^m' on top of it gives
    Zoom(z z') Turn(a' ± a) Mirror^(m xor m'), the sign of a flipped when the step mirrors."""
    angle = step["angle"] + (-parent["angle"] if step["mirrored"] else parent["angle"])
    angle = round((angle + 180.0) % 360.0 - 180.0, 1)  # in [-180, 180)
    tone = "|".join(t for t in (parent["tone"], step["tone"]) if t)
    return {"angle": angle, "mirrored": parent["mirrored"] != step["mirrored"],
            "zoom": round(parent["zoom"] * step["zoom"], 4), "tone": tone}


def build_kaggle(
    sources: str | Path | list[tuple[str | Path, str]] | None,
    dest: str | Path,
    *,
    seed: int = 0,
    n_bases: int | None = None,
    median_files: float = 10.5,
    spread: float = 0.9,
    boost: float = 2.0,
    boosted: str | None = None,
    copy_share: float = 0.08,
    test_share: float = 0.05,
    val_share: float = 0.0,
    own_share: float = 0.01,
    n_truncated: int = 3,
    n_png: int = 3,
    n_gif: int = 2,
    truth_path: str | Path | None = None,
) -> pd.DataFrame:
    """Write a Kaggle-style augmented set at `dest` (new or empty folder) and return its ground truth.

    sources: base images (see `curate.messy.load_bases`); None = the bundled sample.
    n_bases: use a random subset of this many bases (None = all).
    median_files / spread: files per train radiograph ~ log-normal(log(median), spread), at least 1
      (defaults: FracAtlas's 540 -> about 10,000 files, median about 12, a few over 150).
    boost / boosted: the `boosted` class (default: the minority class) gets `boost` x the median.
    copy_share: chance that a file gets a byte copy beside it.
    test_share / val_share: byte copies of train files in test / val, as a share of train's files;
      own_share: the share of radiographs held out for each of them (at least 1 each).
    n_truncated / n_png / n_gif: byte copies cut short; outputs saved as PNG / GIF bytes named .jpg.
    """
    from curate.messy import default_truth_path

    dest = Path(dest)
    truth_path = Path(truth_path) if truth_path else default_truth_path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: already exists and is not an empty folder; choose a new DEST")
    if truth_path.resolve().is_relative_to(dest.resolve()):
        raise UsageError(f"{truth_path}: the ground truth must be written outside the dataset folder")
    if median_files < 1 or spread < 0 or boost <= 0 or not 0 <= copy_share < 1:
        raise UsageError("need median_files >= 1, spread >= 0, boost > 0 and 0 <= copy_share < 1")
    if test_share < 0 or val_share < 0 or not 0 <= own_share < 0.5:
        raise UsageError("need test_share, val_share >= 0 and 0 <= own_share < 0.5")

    rng = np.random.default_rng(seed)
    bases = load_bases(sample_dir() if sources is None else sources)
    if n_bases is not None and n_bases < len(bases):
        if n_bases < 3:
            raise UsageError("n_bases: need at least 3 (train, test and their radiographs)")
        bases = sorted((bases[i] for i in rng.choice(len(bases), n_bases, replace=False)), key=lambda b: b.id)
    labels = sorted({b.label for b in bases} | {POSITIVE, NEGATIVE})
    if boosted is None:  # the minority class, as sets "balanced" by augmenting it
        counts = {lab: sum(b.label == lab for b in bases) for lab in labels}
        boosted = min(labels, key=lambda lab: (counts[lab], lab != POSITIVE))
    held = ["test"] + (["val"] if val_share > 0 else [])
    n_own = max(1, round(own_share * len(bases)))
    if len(bases) < n_own * len(held) + 1:
        raise UsageError(f"{len(bases)} bases: too few for train and {n_own} of their own in {', '.join(held)}")
    order = rng.permutation(len(bases))
    home = {bases[i].id: "train" for i in order}
    for k, split in enumerate(held):
        for i in order[k * n_own : (k + 1) * n_own]:
            home[bases[i].id] = split
    numbers = {b.id: int(n) for b, n in zip(bases, rng.permutation(len(bases)) + 1)}

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.building-", dir=dest.parent))
    rows: list[dict] = []
    names: set[str] = set()

    def put(rel: str, data: bytes, row: dict) -> dict:
        names.add(rel)
        (tmp / rel).write_bytes(data)
        row = {"file": rel, "kind": "augment", "transform": "", "border": "", "params": "", "expected_status": "ok",
               "parent": "", "generation": 0, **row}
        row["split"], row["label"] = rel.split("/")[:2]
        rows.append(row)
        return row

    def copy_name(rel: str) -> str:
        stem, ext = os.path.splitext(rel)
        for suffix in _COPY_SUFFIXES:
            if stem + suffix + ext not in names:
                return stem + suffix + ext
        return f"{stem} - Copy ({len(names)}){ext}"

    def radiograph(base, n_aug: int, n_copies: int, split: str) -> list[tuple[dict, bytes]]:
        """The files of one radiograph in `split`: the resized base, its augmentation chains, byte copies."""
        try:
            pixels = decode(base.path).pixels
        except ImageError as exc:
            raise InputError(f"{base.path}: base image does not decode ({exc})") from None
        pixels = cv2.resize(pixels, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        folder = f"{split}/{base.label}"
        common = {"source": base.id, "source_label": base.label, "angle": 0.0, "mirrored": False, "zoom": 1.0,
                  "tone": ""}
        data = jpeg_bytes(pixels)
        first = put(f"{folder}/{numbers[base.id]}.jpg", data,
                    {**common, "kind": "original", "transform": f"resize{SIZE}"})
        made = [(first, data)]
        n_gen = min(n_aug, int(rng.integers(2, 5)))
        if n_gen:  # one file per generation at least, the rest growing with each generation
            sizes = 1 + rng.multinomial(n_aug - n_gen, 2.0 ** np.arange(n_gen) / (2.0 ** n_gen - 1))
            previous = [(first, pixels)]
            for g, size in enumerate(sizes, start=1):
                outputs = []
                for _ in range(size):
                    parent, parent_pixels = previous[int(rng.integers(len(previous)))]
                    parent["children"] = parent.get("children", 0) + 1
                    img, step = augment(parent_pixels, rng)
                    stem = parent["file"].rsplit(".", 1)[0]
                    rel = f"{stem}-rotated{parent['children']}.jpg"
                    kind = formats.get(len(made_aug), "augment")
                    made_aug.append(rel)
                    if kind == "png-as-jpg":
                        data = png_bytes(img)
                    elif kind == "gif-as-jpg":
                        data = gif_bytes(img)
                    else:
                        data = jpeg_bytes(img)
                        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)  # the next works on the file
                    params = (f"mirror={str(step['mirrored']).lower()};turn={step['angle']};zoom={step['zoom']}"
                              + (f";tone={step['tone']}" if step["tone"] else ""))
                    transform = "+".join(["mirror"] * step["mirrored"] + ["turn", "zoom"] + ["tone"] * bool(step["tone"]))
                    row = put(rel, data, {**common, **compose(parent, step), "kind": kind, "transform": transform,
                                          "border": step["border"], "params": params, "parent": parent["file"],
                                          "generation": g})
                    made.append((row, data))
                    outputs.append((row, img))
                previous = outputs
        for _ in range(n_copies):  # a copy of any file so far, copies included
            row, data = made[int(rng.integers(len(made)))]
            copy = put(copy_name(row["file"]), data, {**_geometry(row), "kind": "byte-copy", "transform": "exact",
                                                      "parent": row["file"], "generation": row["generation"]})
            made.append((copy, data))
        return made

    try:
        for split in ["train", *held]:
            for label in labels:
                (tmp / split / label).mkdir(parents=True, exist_ok=True)
        train = [b for b in bases if home[b.id] == "train"]
        median = {lab: median_files * (boost if lab == boosted else 1.0) for lab in labels}
        n_files = [max(1, round(float(rng.lognormal(np.log(median[b.label]), spread)))) for b in train]
        n_copies = [int(rng.binomial(n - 1, copy_share)) for n in n_files]
        n_aug = [n - 1 - c for n, c in zip(n_files, n_copies)]
        # Which augmented outputs are saved as PNG / GIF: drawn ahead, by their order of making.
        odd = rng.choice(max(sum(n_aug), 1), min(n_png + n_gif, sum(n_aug)), replace=False)
        formats = {int(i): "png-as-jpg" if k < n_png else "gif-as-jpg" for k, i in enumerate(odd)}
        made_aug: list[str] = []
        train_files: list[tuple[dict, bytes]] = []
        for base, a, c in zip(train, n_aug, n_copies):
            train_files += radiograph(base, a, c, "train")
        for split, share in zip(held, (test_share, val_share)):
            own = [b for b in bases if home[b.id] == split]
            for base in own:  # a few radiographs of its own: small chains
                radiograph(base, int(rng.poisson(2)), 0, split)
            n_from_train = min(len(train_files), round(share * len(train_files)))
            for i in sorted(rng.choice(len(train_files), n_from_train, replace=False)):
                row, data = train_files[i]
                rel = f"{split}/{row['label']}/{row['file'].split('/', 2)[2]}"
                put(rel, data, {**_geometry(row), "kind": "byte-copy", "transform": "exact", "parent": row["file"],
                                "generation": row["generation"]})
        jpegs = [f for f in train_files if f[1][:3] == b"\xff\xd8\xff"]  # a cut JPEG is surely corrupt
        for i in rng.choice(len(jpegs), min(n_truncated, len(jpegs)), replace=False):
            row, data = jpegs[int(i)]
            cut = int(len(data) * rng.uniform(0.3, 0.8))
            put(copy_name(row["file"]), data[:cut],
                {"source": "", "source_label": "", "angle": 0.0, "mirrored": False, "zoom": 1.0, "tone": "",
                 "kind": "broken-truncated", "transform": "broken-truncated", "expected_status": "corrupt",
                 "params": f"kept {cut} of {len(data)} bytes", "parent": row["file"],
                 "generation": row["generation"]})
        return publish(tmp, dest, rows, truth_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _geometry(row: dict) -> dict:
    """What a byte copy shares with the file it copies."""
    keys = ("source", "source_label", "angle", "mirrored", "zoom", "tone", "border", "params")
    return {k: row[k] for k in keys}


__all__ = ["build_kaggle", "augment", "compose", "SIZE", "JPEG_QUALITY"]
