"""What making a copy leaves on one file, measured: `traces` (fine detail against the next
coarser level, the shares at the darkest and brightest grey level, the grey range of the rest)
and `encoding` (how it was saved). curate.original weighs them to tell which member of a group
the others were derived from; `traces_of` keeps them between runs (TRACES_VERSION)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from curate.imageio import decode
from curate.parallel import map_files

TRACE_SIDE = 2048  # px: traces are measured at the file's own resolution, up to this side
TRACES_VERSION = "4"  # bump when traces() changes meaning


def traces(path: str) -> tuple[float, float, float, float, float] | None:
    """(fine detail, black share, grey levels at 2% and 98%, white share) of one file at its
    own resolution; None when it does not decode. Fine detail: mean |Laplacian| over the same
    of the half-size image (resampling blurs the finest level first). Black and white: the
    shares at the darkest and brightest level (a fill, a clipped tone); the grey levels are
    those of the other pixels, so a fill (or the JPEG ringing along its edge) does not move them."""
    try:
        pixels = decode(path, max_side=TRACE_SIDE).pixels
    except Exception:
        return None
    return pixel_traces(pixels)


def pixel_traces(pixels: np.ndarray) -> tuple[float, float, float, float, float] | None:
    """traces() of a file's pixels decoded at TRACE_SIDE."""
    if min(pixels.shape) < 16:
        return None
    f = pixels.astype(np.float32)
    fine = float(np.abs(cv2.Laplacian(f, cv2.CV_32F, ksize=1)).mean())
    coarse = float(np.abs(cv2.Laplacian(cv2.pyrDown(f), cv2.CV_32F, ksize=1)).mean())
    # from the histogram: no full-size masks, no sort of the other pixels (a third of the time)
    hist = np.bincount(pixels.ravel(), minlength=256)
    levels = np.flatnonzero(hist)
    darkest, brightest = hist[levels[0]] / pixels.size, hist[levels[-1]] / pixels.size
    hist[levels[[0, -1]]] = 0
    lo, hi = _percentiles(hist, (2, 98)) if hist.any() else (0.0, 0.0)
    return fine / max(coarse, 1e-6), float(darkest), float(lo), float(hi), float(brightest)


def _percentiles(hist: np.ndarray, qs) -> tuple[float, ...]:
    """np.percentile of the grey levels a 256-bin histogram counts, exactly: a percentile whose
    neighbouring sorted values are one level is that level; otherwise numpy on the levels."""
    n, ends = int(hist.sum()), np.cumsum(hist)
    out = []
    for q in qs:
        at = (n - 1) * q / 100  # (numpy's own position may differ from this by rounding: +-1 is checked)
        first, last = np.searchsorted(ends, [max(int(at) - 1, 0), min(int(at) + 2, n - 1)], side="right")
        if first != last:
            return tuple(float(v) for v in np.percentile(np.repeat(np.arange(256, dtype=np.uint8), hist), qs))
        out.append(float(first))
    return tuple(out)


def encoding(path: str) -> str:
    """How a file was saved (format, mode, JPEG subsampling and quantisation tables), from its
    header: a copy re-saved by an augmentation script is usually saved unlike the dataset's
    own files."""
    from PIL import Image, JpegImagePlugin

    try:
        with Image.open(path) as im:
            tables = getattr(im, "quantization", None) or {}
            sampling = JpegImagePlugin.get_sampling(im) if im.format == "JPEG" else -1
            return f"{im.format}|{im.mode}|{sampling}|{sorted((k, list(v)) for k, v in tables.items())}"
    except Exception:
        return ""


def traces_of(table: pd.DataFrame, paths: list[str], rows: list[int], *, workers=None, cache_dir=None,
              known: dict | None = None) -> list:
    """traces() of the given rows, from the cache where a file is unchanged, else from `known`
    ({row: traces} that features() made), else made here."""
    cache, keys, out = None, {}, {}
    if cache_dir is not None and "size" in table and "mtime_ns" in table:
        from curate.cache import FileCache

        cache = FileCache(Path(cache_dir) / f"traces-v{TRACES_VERSION}.npz")
        sizes, mtimes = table["size"].tolist(), table["mtime_ns"].tolist()  # (a column lookup per row: 0.2 s on kaggle10k)
        for i in rows:
            keys[i] = (paths[i], int(sizes[i]), int(mtimes[i]))
            hit = cache.get(*keys[i])
            if hit is not None:
                out[i] = None if not hit["ok"] else (hit["fine"], hit["black"], hit["lo"], hit["hi"], hit["white"])
    todo = [i for i in rows if i not in out]
    known = {i: known[i] for i in todo if i in (known or {})}
    made = [i for i in todo if i not in known]
    fresh = {**known, **dict(zip(made, map_files(traces, [paths[i] for i in made], workers=workers)))}
    for i, tr in fresh.items():
        out[i] = tr
        if cache is not None:
            fine, black, lo, hi, white = tr or (0.0,) * 5
            cache.put(*keys[i], {"ok": tr is not None, "fine": fine, "black": black, "lo": lo, "hi": hi, "white": white})
    if cache is not None and todo:
        cache.save()
    return [out[i] for i in rows]
