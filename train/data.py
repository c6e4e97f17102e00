"""Manifest -> decoded uint8 arrays (decoded once, cached on disk) -> tf.data with augmentation.

This half of the project reads manifests only, never folder layouts: the rows say which file
(`path`, relative to ROOT), which class (`label`), which split (`split`, for kept rows) and
how far to turn it upright (`rotation`). ROOT comes from the manifest.json beside the CSV
(its "root" key) unless the caller names it.

Images are decoded by the toolkit's one loader (`curate.imageio.load_grey`: EXIF, rotation,
greyscale, resize) and kept as a greyscale uint8 array; the published 3-channel input is
made on the fly by repeating the grey channel, so one cache serves both.
"""

from __future__ import annotations

import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from curate.errors import ImageError, InputError, UsageError
from curate.manifest import exact_values
from curate.imageio import load_grey
from curate.workspace import write_atomic

REQUIRED_COLUMNS = ("path", "label", "split", "keep")

# The published recipe (an ImageDataGenerator in the original notebook), one place for it:
# the tf.data pipeline and the speed benchmark's ImageDataGenerator both read these numbers.
AUGMENT = {
    "rotation_degrees": 20,  # ImageDataGenerator(rotation_range=20)
    "shift": 0.1,  # width_shift_range = height_shift_range = 0.1
    "zoom": 0.1,  # zoom_range=0.1
    "horizontal_flip": True,
    "fill_mode": "nearest",  # ImageDataGenerator's default border
}


@dataclass
class Manifest:
    """A manifest CSV read as strings, with the ROOT its paths are relative to."""

    table: pd.DataFrame
    root: Path
    csv: Path
    digest: str  # sha256 of the CSV's bytes


def read_manifest(csv: str | Path, root: str | Path | None = None) -> Manifest:
    """Read a manifest CSV; ROOT is `root` if given, else manifest.json's "root" beside it."""
    csv = Path(csv)
    if not csv.is_file():
        raise InputError(f"manifest not found: {csv}")
    data = csv.read_bytes()
    try:
        table = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{csv}: not a readable manifest CSV ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(f"{csv}: manifest lacks the column(s) {', '.join(missing)}")
    table = exact_values(table)  # formula guards off, names that are not UTF-8 back as on disk
    table["keep"] = table["keep"].str.strip().str.lower().isin(["true", "1", "yes"])
    table["split"] = table["split"].str.strip().str.lower()
    rotation = table["rotation"] if "rotation" in table.columns else pd.Series("0", index=table.index)
    table["rotation"] = pd.to_numeric(rotation, errors="coerce").fillna(0.0).astype(float)
    if "group" not in table.columns:  # every file its own group when dedup never ran
        table["group"] = table["path"]
    for column in ("sha256", "reason"):
        if column not in table.columns:
            table[column] = ""
    return Manifest(table=table, root=find_root(csv, root), csv=csv, digest=hashlib.sha256(data).hexdigest())


def find_root(csv: Path, root: str | Path | None = None) -> Path:
    """The dataset folder a manifest's paths are relative to."""
    if root is not None:
        root = Path(root)
    else:
        info = csv.parent / "manifest.json"
        if not info.is_file():
            raise InputError(f"{csv}: no manifest.json beside it to say where ROOT is; pass --root DIR")
        try:
            value = json.loads(info.read_text(encoding="utf-8")).get("root")
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            raise InputError(f"{info}: not valid JSON; pass --root DIR") from None
        if not value:
            raise InputError(f"{info} has no \"root\"; pass --root DIR")
        root = Path(value)
        if not root.is_absolute():  # a relative root is relative to the manifest.json
            root = info.parent / root
    if not root.is_dir():
        raise InputError(f"dataset ROOT not found: {root} (pass --root DIR)")
    return root


def kept(table: pd.DataFrame, split: str) -> pd.DataFrame:
    """The kept rows of one split (`train`, `val` or `test`), in manifest order."""
    names = {"val": ("val", "valid", "validation")}.get(split, (split,))
    return table[table["keep"] & table["split"].isin(names)].reset_index(drop=True)


def find_positive(labels, positive: str | None = None) -> str | None:
    """The label that counts as class 1 ("fractured"), matched case-insensitively.

    Default: the label containing "fract" but not "not"/"non" ("Fractured" yes,
    "Non_fractured" and "not fractured" no). Raises when it is ambiguous or when a manifest
    has more than two labels, because binary metrics would then be silently wrong.
    """
    names = sorted({str(x) for x in labels if str(x) != ""})
    if len(names) > 2:
        raise InputError(f"expected two classes, found {len(names)}: {', '.join(names[:6])}")
    if positive is not None:
        match = [n for n in names if n.lower() == positive.lower()]
        if names and not match:
            raise UsageError(f"--positive-label {positive!r} is not one of the labels: {', '.join(names)}")
        return match[0] if match else positive
    match = [n for n in names if "fract" in n.lower() and not any(w in n.lower() for w in ("not", "non"))]
    if len(match) > 1 or (len(names) == 2 and not match):
        raise UsageError(f"cannot tell which label is positive among {', '.join(names)}; pass --positive-label")
    return match[0] if match else None


def targets(labels: pd.Series, positive: str | None) -> np.ndarray:
    """1 for the positive label, 0 otherwise (case-insensitive)."""
    if positive is None:
        return np.zeros(len(labels), dtype=np.int32)
    return (labels.str.lower() == positive.lower()).to_numpy(dtype=np.int32)


@dataclass
class Pixels:
    """Decoded images for some manifest rows: `images[i]` belongs to the i-th row."""

    images: np.ndarray  # N x size x size uint8
    ok: np.ndarray  # N bools: False where the file no longer decodes (then images[i] is zeros)
    errors: dict[str, str] = field(default_factory=dict)  # path -> "reason: detail"


def cache_key(rows: pd.DataFrame, root: Path, size: int) -> str:
    """What the decoded pixels depend on: ROOT, the size, and each row's file, hash and rotation."""
    h = hashlib.sha256(f"v1|{Path(root).resolve()}|{size}".encode())
    for path, sha, rot in zip(rows["path"], rows["sha256"], rows["rotation"]):
        h.update(f"\n{path}|{sha}|{float(rot):g}".encode())
    return h.hexdigest()[:24]


def _decode_one(job: tuple[Path, float, int]) -> tuple[np.ndarray | None, str | None]:
    path, rotation, size = job
    try:
        return load_grey(path, size=size, rotation=rotation), None
    except ImageError as exc:  # the file changed since the manifest: a status, not a crash
        return None, f"{exc.reason}: {exc.detail}"


def load_pixels(
    rows: pd.DataFrame,
    root: Path,
    size: int,
    *,
    cache_dir: Path | None = None,
    workers: int = 2,
    progress=None,
) -> Pixels:
    """Decode each row's image once (cached in `cache_dir` as .npz keyed by `cache_key`).

    `progress(n)` is called as images are decoded (the CLI passes a rich bar's advance).
    """
    path = Path(cache_dir) / f"pixels-{cache_key(rows, root, size)}.npz" if cache_dir else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            errors = json.loads(str(z["errors"]))
            return Pixels(images=z["images"], ok=z["ok"], errors=errors)

    images = np.zeros((len(rows), size, size), dtype=np.uint8)
    ok = np.zeros(len(rows), dtype=bool)
    errors: dict[str, str] = {}
    jobs = [(Path(root) / p, float(r), size) for p, r in zip(rows["path"], rows["rotation"])]
    # Threads, not processes: Pillow and OpenCV release the GIL while decoding, and a fork
    # after TensorFlow has started its thread pools is asking for trouble.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, (pixels, error) in enumerate(pool.map(_decode_one, jobs)):
            if error is None:
                images[i], ok[i] = pixels, True
            else:
                errors[str(rows["path"].iloc[i])] = error
            if progress:
                progress(1)

    if path is not None:
        buf = io.BytesIO()
        np.savez(buf, images=images, ok=ok, errors=np.array(json.dumps(errors)))
        write_atomic(path, buf.getvalue())
    return Pixels(images=images, ok=ok, errors=errors)


# ---- tf.data -------------------------------------------------------------------------------

def augment_batch(xb, rng):
    """The published augmentation (AUGMENT) on a batch, as ONE affine warp per image: a random
    turn, zoom (per axis), shift and left-right flip composed into one matrix, as
    ImageDataGenerator does. Keras's RandomRotation, RandomTranslation and RandomZoom layers
    would warp the batch three times (three resamplings, three times the work).

    rng: a tf.random.Generator; its state advances with every batch and every epoch."""
    import math

    import tensorflow as tf

    a = AUGMENT
    n = tf.shape(xb)[0]
    h, w = tf.cast(tf.shape(xb)[1], tf.float32), tf.cast(tf.shape(xb)[2], tf.float32)
    turn = rng.uniform([n], -1.0, 1.0) * math.radians(a["rotation_degrees"])
    zx, zy = (1.0 + rng.uniform([n], -a["zoom"], a["zoom"]) for _ in range(2))
    tx, ty = rng.uniform([n], -a["shift"], a["shift"]) * w, rng.uniform([n], -a["shift"], a["shift"]) * h
    flip = tf.where(rng.uniform([n]) < 0.5, -1.0, 1.0) if a["horizontal_flip"] else tf.ones([n])
    cos, sin = tf.cos(turn), tf.sin(turn)
    # output pixel p -> input pixel M (p - centre) + centre + shift, with M = flip . zoom . turn
    m00, m01, m10, m11 = flip * zx * cos, -flip * zx * sin, zy * sin, zy * cos
    cx, cy = (w - 1) / 2, (h - 1) / 2
    zero = tf.zeros([n])
    transforms = tf.stack([m00, m01, cx + tx - m00 * cx - m01 * cy,
                           m10, m11, cy + ty - m10 * cx - m11 * cy, zero, zero], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=xb, transforms=transforms, output_shape=tf.shape(xb)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode=a["fill_mode"].upper())


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    channels: int = 1,
    augment: bool = False,
    shuffle: bool = False,
    seed: int = 0,
):
    """uint8 N x H x W arrays -> batches of (float32 in [0, 1], N x H x W x channels; float32 labels).

    Shuffling draws indices and gathers whole batches (no shuffle buffer of images);
    augmentation runs per batch on the grey image, before the channel repeat (3x cheaper).
    """
    import tensorflow as tf

    if channels not in (1, 3):
        raise UsageError(f"--channels must be 1 or 3, not {channels}")
    x = tf.constant(images[..., None])
    y = tf.constant(np.asarray(labels, dtype=np.float32))
    ds = tf.data.Dataset.range(len(images))
    if shuffle:
        ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    from keras import layers

    rng = tf.random.Generator.from_seed(seed) if augment else None
    rescale = layers.Rescaling(1.0 / 255.0)  # the published rescale=1./255

    def gather(idx):
        return tf.cast(tf.gather(x, idx), tf.float32), tf.gather(y, idx)

    def finish(xb, yb):
        xb = rescale(xb)
        if channels == 3:
            xb = tf.repeat(xb, 3, axis=-1)
        return xb, yb

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if rng is not None:
        # One batch at a time, on purpose: the generator's state is a tf.Variable that each
        # call reads, then advances. Parallel calls would race on it, so two batches could get
        # the same draw and a seed would not replay. In order, every batch gets its own draw.
        ds = ds.map(lambda xb, yb: (augment_batch(xb, rng), yb))
    ds = ds.map(finish, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)
