"""Build a messy, leaky fracture dataset with a ground truth, the way public Kaggle sets were made.

`build_messy(sources, dest, seed=...)` takes clean base images (the bundled FracAtlas sample by
default) and writes `dest/{train,val,test}/{fractured,not fractured}/` with random hex file names:

- every base image once, byte for byte, in a random split ("original");
- augmented copies of some of them, each in its own random split, so copies leak across
  train/val/test. The `fractured` class gets more copies, as in the public sets that
  "balanced" their classes by augmenting the minority class;
- a few label conflicts (a copy filed under the other class);
- odd-but-valid files (PNG named .jpg, 16-bit PNG, colour JPEG, EXIF-rotated JPEG, tiny,
  blank, .DS_Store, Thumbs.db, a name with spaces and unicode) and broken ones (truncated,
  zero bytes, garbage, an HTML page, a header-only JPEG).

The ground truth (one row per file, returned and written as CSV OUTSIDE the dataset tree) says
where each file came from. Geometry convention, which the dedup and orientation benchmarks score
against: a file was made from its source by first mirroring (left-right flip) when `mirrored`
is true, THEN rotating by `angle` degrees counter-clockwise (positive = CCW, as
`cv2.getRotationMatrix2D` and `np.rot90(k=1)`). Right-angle rotations are stored as 90/180/270;
arbitrary ones as a signed angle in ±[3, 45]. Arbitrary rotations EXPAND the canvas, so the whole
exposure is kept and the new corners are filled per `border` (constant = black wedges, replicate,
reflect). Undo a file with: rotate by -angle, then mirror if `mirrored`. EXIF-rotated files have
angle 0: they display (and `curate.imageio.decode` returns them) upright.

Same seed, same sources, same library versions -> the same bytes and names.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from curate.errors import ImageError, InputError, UsageError
from curate.imageio import decode, looks_like_text, sniff

SPLITS = ("train", "val", "test")
POSITIVE = "fractured"
NEGATIVE = "not fractured"
JPEG_QUALITY = 92  # for every JPEG we write, except re-encodes (random quality)

# Copy kinds and their default weights (the mix). Keys are the `kind` column of the truth.
DEFAULT_KINDS: dict[str, float] = {
    "exact": 2,
    "reencode": 3,
    "resize": 2,
    "squash": 1,
    "tone": 2,
    "rotate": 3,  # 90, 180 or 270
    "mirror": 2,
    "arbitrary": 3,  # ±3..45°, canvas expanded, border constant/replicate/reflect
    "shift": 1,
    "zoom": 1,
    "mirror+rotate": 1,
    "arbitrary+reencode": 1,
    "mirror+arbitrary": 1,
}
BROKEN_KINDS = ("truncated", "zero-bytes", "garbage", "html", "header-only")
ODD_KINDS = (
    "png-as-jpg", "png16", "rgb", "exif-rotated", "tiny", "blank", "ds-store", "thumbs-db", "unicode-name",
)
# Only these may repeat once every odd kind has appeared (junk files have fixed names).
_REPEATABLE_ODD = ("png-as-jpg", "png16", "rgb", "exif-rotated", "tiny", "blank", "unicode-name")
_UNICODE_NAMES = (
    "Röntgen Bild {i} – Kopie.jpg", "x ray (copy {i}).jpg", "骨折 image {i}.jpeg", "çarpık ÿ {i} .jpg",
)
_BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT}

TRUTH_COLUMNS = [
    "file", "source", "kind", "transform", "angle", "mirrored", "border", "params",
    "split", "label", "source_label", "expected_status",
    # added with the kaggle profile: the file it was made or copied from, its generation from the base,
    # the content's scale on a canvas of the same size, and the tone steps (see curate.messy_kaggle)
    "parent", "generation", "zoom", "tone",
]
PROFILES = ("default", "kaggle")


@dataclass(frozen=True)
class Base:
    """One clean base image: its id (the truth's `source`), file and class."""

    id: str
    path: Path
    label: str


def sample_dir() -> Path:
    """The bundled FracAtlas sample (230 greyscale JPEGs, CC BY 4.0, see ATTRIBUTION.md there)."""
    return Path(str(resources.files("curate") / "sample"))


def load_bases(sources: str | Path | list[tuple[str | Path, str]]) -> list[Base]:
    """Base images from a list of (path, label), a folder with sample.csv, or ROOT/<label>/files."""
    if isinstance(sources, (str, Path)):
        root = Path(sources)
        if not root.is_dir():
            raise InputError(f"{root}: not a folder of base images")
        if (root / "sample.csv").is_file():
            table = pd.read_csv(root / "sample.csv")
            pairs = [
                (root / f, POSITIVE if int(y) == 1 else NEGATIVE) for f, y in zip(table.file, table.fractured)
            ]
        else:
            pairs = [
                (p, folder.name.replace("_", " "))
                for folder in sorted(root.iterdir()) if folder.is_dir()
                for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")
            ]
    else:
        pairs = [(Path(p), str(label)) for p, label in sources]
    bases, seen = [], set()
    for path, label in pairs:
        stem = path.stem
        id_ = stem if stem not in seen else f"{stem}-{len(seen)}"
        seen.add(id_)
        bases.append(Base(id_, path, label))
    if not bases:
        raise InputError(f"{sources}: no base images found")
    return sorted(bases, key=lambda b: b.id)


# ---------------------------------------------------------------- encoders and pixel transforms


def jpeg_bytes(pixels: np.ndarray, quality: int = JPEG_QUALITY, exif: bytes | None = None) -> bytes:
    mode = "L" if pixels.ndim == 2 else "RGB"
    buf = io.BytesIO()
    extra = {"exif": exif} if exif else {}
    Image.fromarray(pixels, mode).save(buf, "JPEG", quality=int(quality), optimize=False, **extra)
    return buf.getvalue()


def png_bytes(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", compress_level=6)
    return buf.getvalue()


def rotate_expand(pixels: np.ndarray, angle: float, border: str = "constant") -> np.ndarray:
    """Rotate `angle` degrees CCW about the centre, enlarging the canvas to keep every pixel."""
    h, w = pixels.shape[:2]
    # cv2 puts pixel centres on integers, so the image centre is ((w-1)/2, (h-1)/2)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    # (the small tolerance keeps float noise such as cos 90° = 6e-17 from adding a pixel)
    nw, nh = int(np.ceil(h * sin + w * cos - 1e-6)), int(np.ceil(h * cos + w * sin - 1e-6))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(pixels, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=_BORDERS[border])


def _affine_same_size(pixels: np.ndarray, m: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    return cv2.warpAffine(pixels, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def _resize(pixels: np.ndarray, fx: float, fy: float) -> np.ndarray:
    h, w = pixels.shape[:2]
    size = (max(8, round(w * fx)), max(8, round(h * fy)))
    interp = cv2.INTER_AREA if fx * fy < 1 else cv2.INTER_LINEAR
    return cv2.resize(pixels, size, interpolation=interp)


def _tone(pixels: np.ndarray, brightness: float, contrast: float, gamma: float) -> np.ndarray:
    x = (pixels.astype(np.float64) / 255.0) ** gamma * 255.0
    x = (x - 128.0) * contrast + 128.0 + brightness
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _signed(rng: np.random.Generator, low: float, high: float) -> float:
    """A magnitude in [low, high] with a random sign (so a change is never negligible)."""
    return float(rng.uniform(low, high)) * (1 if rng.random() < 0.5 else -1)


def _signed_angle(rng: np.random.Generator) -> float:
    return round(_signed(rng, 3, 45), 1)


@dataclass
class _Source:
    """A base image read once: its bytes, extension and decoded pixels."""

    base: Base
    data: bytes
    ext: str
    pixels: np.ndarray


@dataclass
class _Made:
    """One file to write, and what the truth says about it."""

    data: bytes
    ext: str
    transform: str
    angle: float = 0.0
    mirrored: bool = False
    border: str = ""
    params: str = ""


def make_copy(kind: str, src: _Source, rng: np.random.Generator) -> _Made:
    """One augmented copy of a base image. Mirror first, then rotate; re-encode last."""
    if kind == "exact":
        return _Made(src.data, src.ext, "exact")
    steps, angle, mirrored, border, params = [], 0.0, False, "", []
    img = src.pixels
    if kind.startswith("mirror"):
        img, mirrored = np.fliplr(img), True
        steps.append("mirror")
    if kind in ("rotate", "mirror+rotate"):
        k = int(rng.integers(1, 4))
        img, angle = np.rot90(img, k), 90.0 * k
        steps.append(f"rotate{90 * k}")
    if "arbitrary" in kind:
        angle = _signed_angle(rng)
        border = str(rng.choice(list(_BORDERS)))
        img = rotate_expand(img, angle, border)
        steps.append("arbitrary")
    if kind == "resize":
        s = float(rng.uniform(0.5, 1.5))
        img = _resize(img, s, s)
        steps.append("resize")
        params.append(f"scale={s:.3f}")
    if kind == "squash":
        a = float(np.exp(_signed(rng, 0.05, np.log(1.33))))  # width change: 0.75..0.95 or 1.05..1.33
        img = _resize(img, a, 1.0)
        steps.append("squash")
        params.append(f"aspect={a:.3f}")
    if kind == "tone":
        b, c, g = float(rng.uniform(-30, 30)), float(rng.uniform(0.7, 1.3)), float(rng.uniform(0.7, 1.4))
        img = _tone(img, b, c, g)
        steps.append("tone")
        params.append(f"brightness={b:.1f};contrast={c:.2f};gamma={g:.2f}")
    if kind == "shift":
        h, w = img.shape
        dx, dy = round(_signed(rng, 0.02, 0.1) * w), round(_signed(rng, 0.02, 0.1) * h)
        img = _affine_same_size(img, np.float64([[1, 0, dx], [0, 1, dy]]))
        steps.append("shift")
        border = "constant"
        params.append(f"dx={dx};dy={dy}")
    if kind == "zoom":
        h, w = img.shape
        z = 1.0 + _signed(rng, 0.03, 0.1)
        img = _affine_same_size(img, cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0.0, z))
        steps.append("zoom")
        border = "constant"
        params.append(f"zoom={z:.3f}")
    quality = JPEG_QUALITY
    if kind.endswith("reencode"):
        quality = int(rng.integers(30, 96))
        steps.append("reencode")
        params.append(f"quality={quality}")
    if not steps:
        raise UsageError(f"unknown copy kind {kind!r}; known: {', '.join(DEFAULT_KINDS)}")
    data = jpeg_bytes(np.ascontiguousarray(img), quality)
    return _Made(data, ".jpg", "+".join(steps), angle, mirrored, border, ";".join(params))


def make_odd(kind: str, src: _Source | None, rng: np.random.Generator, i: int) -> tuple[_Made, str | None]:
    """An odd-but-valid file (or OS junk); returns it and a fixed file name, if it has one.

    src is None for the kinds made from nothing (tiny, blank, junk)."""
    t = f"odd-{kind}"
    pixels = src.pixels if src else None
    if kind == "png-as-jpg":
        return _Made(png_bytes(pixels), ".jpg", t), None
    if kind == "png16":
        return _Made(png_bytes(pixels.astype(np.uint16) * 257), ".png", t, params="bit_depth=16"), None
    if kind == "rgb":  # a tinted colour export of a greyscale radiograph
        tint = np.stack([pixels, pixels * 0.93, pixels * 0.8], axis=2)
        return _Made(jpeg_bytes(np.rint(tint).astype(np.uint8)), ".jpg", t, params="tint=1.0,0.93,0.8"), None
    if kind == "exif-rotated":
        # Orientation 6 = "rotate 90° clockwise to display": store the pixels turned 90° CCW.
        exif = Image.Exif()
        exif[0x0112] = 6
        stored = np.ascontiguousarray(np.rot90(pixels, 1))
        return _Made(jpeg_bytes(stored, exif=exif.tobytes()), ".jpg", t, params="exif_orientation=6"), None
    if kind == "tiny":
        yy, xx = np.mgrid[0:16, 0:16]
        return _Made(png_bytes(((xx + yy) * 8).astype(np.uint8)), ".png", t, params="16x16"), None
    if kind == "blank":
        return _Made(jpeg_bytes(np.zeros((256, 256), np.uint8)), ".jpg", t, params="all black"), None
    if kind == "ds-store":
        data = b"\x00\x00\x00\x01Bud1" + b"\x00" * 24 + rng.bytes(2000)
        return _Made(data, "", t), ".DS_Store"
    if kind == "thumbs-db":
        data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16 + rng.bytes(4000)
        return _Made(data, ".db", t), "Thumbs.db"
    if kind == "unicode-name":
        template = _UNICODE_NAMES[int(rng.integers(len(_UNICODE_NAMES)))]
        return _Made(src.data, src.ext, t), template.format(i=i + 1)
    raise UsageError(f"unknown odd kind {kind!r}")


def make_broken(kind: str, base_jpeg: bytes, rng: np.random.Generator) -> _Made:
    t = f"broken-{kind}"
    if kind == "truncated":
        cut = int(len(base_jpeg) * rng.uniform(0.3, 0.8))
        return _Made(base_jpeg[:cut], ".jpg", t, params=f"kept {cut} of {len(base_jpeg)} bytes")
    if kind == "zero-bytes":
        return _Made(b"", ".jpg", t)
    if kind == "garbage":
        while True:  # random bytes that happen to start like an image or read as text are rerolled
            data = rng.bytes(int(rng.integers(2000, 20000)))
            if not sniff(data[:64]) and not looks_like_text(data[:64]):
                return _Made(data, ".jpg", t)
    if kind == "html":
        page = (
            "<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n<body><h1>Forbidden</h1>"
            "<p>You don't have permission to access this resource.</p></body></html>\n"
        )
        return _Made(page.encode(), ".jpg", t)
    if kind == "header-only":
        sos = base_jpeg.find(b"\xff\xda")  # start of scan: keep every header segment, no image data
        length = int.from_bytes(base_jpeg[sos + 2 : sos + 4], "big")
        return _Made(base_jpeg[: sos + 2 + length], ".jpg", t)
    raise UsageError(f"unknown broken kind {kind!r}")


EXPECTED_STATUS = {
    **{f"broken-{k}": "corrupt" for k in BROKEN_KINDS},
    "broken-html": "not-image",
    "odd-ds-store": "not-image",
    "odd-thumbs-db": "not-image",
}
# Odd files made from nothing: they show no base image.
_SYNTHETIC = ("tiny", "blank", "ds-store", "thumbs-db")


# ---------------------------------------------------------------- the builder


def default_truth_path(dest: str | Path) -> Path:
    dest = Path(dest)
    return dest.parent / f"{dest.name}_truth.csv"


def build_messy(
    sources: str | Path | list[tuple[str | Path, str]] | None,
    dest: str | Path,
    *,
    profile: str = "default",
    **options,
) -> pd.DataFrame:
    """Write a messy dataset at `dest` with the builder of `profile` and return its ground truth.

    "default": `build_default` (random hex names, every kind of copy and junk file, three splits);
    "kaggle": `curate.messy_kaggle.build_kaggle` (chains of augmentation, byte copies, train + test).
    options go to that builder (seed, truth_path and its own settings)."""
    import inspect

    if profile == "default":
        builder = build_default
    elif profile == "kaggle":
        from curate.messy_kaggle import build_kaggle as builder
    else:
        raise UsageError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    unknown = set(options) - set(inspect.signature(builder).parameters)
    if unknown:
        raise UsageError(f"profile {profile!r} has no setting {', '.join(sorted(unknown))}")
    return builder(sources, dest, **options)


def build_default(
    sources: str | Path | list[tuple[str | Path, str]] | None,
    dest: str | Path,
    *,
    seed: int = 0,
    copy_fraction: float = 0.3,
    fractured_boost: float = 2.0,
    kinds: dict[str, float] | None = None,
    n_broken: int = 5,
    n_odd: int = 9,
    n_conflicts: int = 2,
    split_weights: tuple[float, float, float] = (0.7, 0.15, 0.15),
    truth_path: str | Path | None = None,
) -> pd.DataFrame:
    """Write a messy dataset at `dest` (must not exist or be empty) and return its ground truth.

    sources: base images (see `load_bases`); None = the bundled sample.
    copy_fraction: chance that a `not fractured` image gets augmented copies (1 + Poisson(0.5));
      `fractured` images get `fractured_boost` times the chance and times the extra copies.
    kinds: weights of the copy kinds (keys of DEFAULT_KINDS); a kind left out is not made. Each
      kind with a weight appears at least once when there are at least as many copies as kinds.
    n_broken / n_odd: broken and odd files; the first 5 / 9 are one of each kind, then random.
    n_conflicts: copies filed under the other class (label conflicts).
    truth_path: where the truth CSV goes; default `<dest>_truth.csv` beside dest, never inside.
    """
    dest = Path(dest)
    truth_path = Path(truth_path) if truth_path else default_truth_path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise InputError(f"{dest}: already exists and is not an empty folder; choose a new DEST")
    if truth_path.resolve().is_relative_to(dest.resolve()):
        raise UsageError(f"{truth_path}: the ground truth must be written outside the dataset folder")
    weights = dict(DEFAULT_KINDS if kinds is None else kinds)
    unknown = set(weights) - set(DEFAULT_KINDS)
    if unknown or not weights or min(weights.values()) < 0 or sum(weights.values()) <= 0:
        raise UsageError(f"kinds: need non-negative weights for {', '.join(DEFAULT_KINDS)}; got {weights}")
    if not 0 <= copy_fraction <= 1:
        raise UsageError("copy_fraction must be between 0 and 1")

    bases = load_bases(sample_dir() if sources is None else sources)
    rng = np.random.default_rng(seed)
    labels = sorted({b.label for b in bases} | {POSITIVE, NEGATIVE})
    kind_names = list(weights)
    kind_p = np.array([weights[k] for k in kind_names], dtype=float)
    kind_p /= kind_p.sum()
    split_p = np.array(split_weights, dtype=float) / sum(split_weights)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.building-", dir=dest.parent))
    rows: list[dict] = []
    names: set[str] = set()
    originals: dict[str, str] = {}  # base id -> its original's file

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    def pick_split() -> str:
        return SPLITS[int(rng.choice(3, p=split_p))]

    def put(made: _Made, split: str, label: str, source: Base | None, kind: str, name: str | None = None) -> str:
        if name is None:
            name = rng.bytes(16).hex() + made.ext
        rel = f"{split}/{label}/{name}"
        while rel in names:  # only fixed names (junk) can clash: move to another folder
            split = pick(SPLITS)
            rel = f"{split}/{label}/{name}"
        names.add(rel)
        (tmp / split / label).mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_bytes(made.data)
        rows.append({
            "file": rel, "source": source.id if source else "", "kind": kind, "transform": made.transform,
            "angle": made.angle, "mirrored": made.mirrored, "border": made.border, "params": made.params,
            "split": split, "label": label, "source_label": source.label if source else "",
            "expected_status": EXPECTED_STATUS.get(made.transform, "ok"),
            # every copy and odd file is made from the base, whose byte copy is its original
            "parent": originals.get(source.id, "") if source and kind != "original" else "",
            "generation": int(bool(source) and kind != "original"),
            "zoom": float(made.params.split("zoom=")[1].split(";")[0]) if "zoom=" in made.params else 1.0,
            "tone": ";".join(p.split("=")[1] for p in made.params.split(";")) if made.transform == "tone" else "",
        })
        return rel

    try:
        for split in SPLITS:
            for label in labels:
                (tmp / split / label).mkdir(parents=True, exist_ok=True)
        cache: dict[str, _Source] = {}

        def read(base: Base) -> _Source:
            if base.id not in cache:
                try:
                    pixels = decode(base.path).pixels
                except ImageError as exc:
                    raise InputError(f"{base.path}: base image does not decode ({exc})") from None
                ext = base.path.suffix.lower() or ".jpg"
                cache[base.id] = _Source(base, base.path.read_bytes(), ext, pixels)
            return cache[base.id]

        n_copies = []
        for base in bases:  # originals, each in a random split
            src = read(base)
            originals[base.id] = put(_Made(src.data, src.ext, "original"), pick_split(), base.label, base, "original")
            heavy = fractured_boost if base.label == POSITIVE else 1.0
            copied = rng.random() < min(1.0, copy_fraction * heavy)
            n_copies.append(1 + int(rng.poisson(0.5 * heavy)) if copied else 0)
        # Every kind in the mix once (when there are enough copies), the rest drawn by weight.
        present = [k for k in kind_names if weights[k] > 0]
        total = sum(n_copies)
        first = [present[i] for i in rng.permutation(len(present))][:total]
        drawn = [kind_names[i] for i in rng.choice(len(kind_names), size=total - len(first), p=kind_p)]
        copy_kinds = iter([(first + drawn)[i] for i in rng.permutation(total)])
        for base, n in zip(bases, n_copies):  # copies scattered over the splits
            for _ in range(n):
                kind = next(copy_kinds)
                put(make_copy(kind, read(base), rng), pick_split(), base.label, base, kind)

        for i in range(n_conflicts):
            base = pick(bases)
            other = pick([lab for lab in labels if lab != base.label])
            kind = "reencode" if i % 2 else "exact"
            put(make_copy(kind, read(base), rng), pick_split(), other, base, kind)

        for i in range(n_odd):
            kind = ODD_KINDS[i] if i < len(ODD_KINDS) else pick(_REPEATABLE_ODD)
            base = None if kind in _SYNTHETIC else pick(bases)
            made, name = make_odd(kind, read(base) if base else None, rng, i)
            put(made, pick_split(), base.label if base else pick(labels), base, made.transform, name)

        for i in range(n_broken):
            kind = BROKEN_KINDS[i] if i < len(BROKEN_KINDS) else pick(BROKEN_KINDS)
            src = read(pick(bases))  # truncated and header-only cut a real JPEG
            jpeg = src.data if src.data[:3] == b"\xff\xd8\xff" else jpeg_bytes(src.pixels)
            put(make_broken(kind, jpeg, rng), pick_split(), pick(labels), None, f"broken-{kind}")

        return publish(tmp, dest, rows, truth_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, dest: Path, rows: list[dict], truth_path: str | Path) -> pd.DataFrame:
    """Move a finished build from `tmp` into place whole (dest never holds half a set) and write
    its truth beside it; return the truth."""
    os.chmod(tmp, 0o755)
    if dest.exists():
        dest.rmdir()
    os.replace(tmp, dest)
    truth = pd.DataFrame(rows, columns=TRUTH_COLUMNS).sort_values("file", ignore_index=True)
    write_truth(truth, truth_path)
    return truth


def write_truth(truth: pd.DataFrame, path: str | Path) -> None:
    """Write the truth CSV atomically; booleans as true/false like the manifests."""
    path = Path(path)
    out = truth.copy()
    out["mirrored"] = out["mirrored"].map({True: "true", False: "false"})
    tmp = path.with_name(f".{path.name}.tmp")
    out.to_csv(tmp, index=False)
    os.replace(tmp, path)


def read_truth(path: str | Path) -> pd.DataFrame:
    """Read a truth CSV back with its types (empty strings stay empty, angle is a float)."""
    truth = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column, missing in (("parent", ""), ("generation", "0"), ("zoom", "1.0"), ("tone", "")):
        if column not in truth:  # written before the kaggle profile
            truth[column] = missing
    truth["angle"] = truth["angle"].astype(float)
    truth["mirrored"] = truth["mirrored"] == "true"
    truth["generation"] = truth["generation"].astype(int)
    truth["zoom"] = truth["zoom"].astype(float)
    return truth


def main(argv: list[str] | None = None) -> None:
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m curate.messy", description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", type=Path, help="base images (default: the bundled sample)")
    ap.add_argument("dest", type=Path, help="new folder for the messy dataset")
    ap.add_argument("--profile", choices=PROFILES, default="default",
                    help="default: hex names, every kind of copy and junk; kaggle: augmentation chains (curate.messy_kaggle)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--truth", type=Path, help="truth CSV (default: DEST_truth.csv beside DEST)")
    default = ap.add_argument_group("default profile")
    default.add_argument("--copy-fraction", type=float)
    default.add_argument("--fractured-boost", type=float)
    default.add_argument("--n-broken", type=int)
    default.add_argument("--n-odd", type=int)
    default.add_argument("--n-conflicts", type=int)
    kaggle = ap.add_argument_group("kaggle profile")
    kaggle.add_argument("--n-bases", type=int, help="a random subset of this many bases")
    kaggle.add_argument("--median-files", type=float, help="median files per train radiograph of the less augmented class (10.5)")
    kaggle.add_argument("--boost", type=float, help="the augmented class's median is this many times the other's (2)")
    kaggle.add_argument("--test-share", type=float, help="byte copies of train files in test, share of train (0.05)")
    kaggle.add_argument("--val-share", type=float, help="the same for a val split; 0 = no val (0)")
    args = ap.parse_args(argv)
    settings = ("copy_fraction", "fractured_boost", "n_broken", "n_odd", "n_conflicts", "n_bases", "median_files",
                "boost", "test_share", "val_share")
    options = {k: getattr(args, k) for k in settings if getattr(args, k) is not None}
    try:
        truth = build_messy(args.src, args.dest, profile=args.profile, seed=args.seed, truth_path=args.truth, **options)
    except (InputError, UsageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    counts = truth.groupby(["split", "label"]).size().to_dict()
    print(f"{len(truth)} files in {args.dest}; truth: {args.truth or default_truth_path(args.dest)}")
    print(", ".join(f"{s}/{lab}: {n}" for (s, lab), n in counts.items()))


if __name__ == "__main__":
    main()
