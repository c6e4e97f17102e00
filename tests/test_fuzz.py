"""Property-based fuzzing (hypothesis) of the three doors hostile data comes in by: the image
loader, the layout scan and the labels-CSV reader. Whatever the bytes or names, the answer is a
result or a per-file status (ImageError) or one clear error (CurateError): nothing else escapes,
nothing hangs (each example has a deadline)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from curate.errors import CurateError, ImageError
from curate.imageio import decode_bytes
from curate.layout import apply_labels_csv, scan

FUZZ = settings(deadline=5000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


VALID = {fmt: _encoded(fmt) for fmt in ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")}
NAMES = (".jpg", ".png", ".gif", ".bmp", ".tif", ".webp", ".dcm", ".txt", "")


@st.composite
def damaged_images(draw):
    """A valid image's bytes cut short, with a few bytes changed, or pure noise."""
    how = draw(st.sampled_from(["truncate", "flip", "noise"]))
    if how == "noise":
        return draw(st.binary(max_size=4096))
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    if how == "truncate":
        return bytes(data[:draw(st.integers(0, len(data)))])
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(FUZZ, max_examples=400)
@given(data=damaged_images(), suffix=st.sampled_from(NAMES))
def test_loader_gives_pixels_or_a_status(data, suffix):
    try:
        img = decode_bytes(data, f"x{suffix}")
    except ImageError as exc:
        assert exc.reason in ("corrupt", "not-image", "unreadable", "too-large") and exc.detail
        return
    assert img.pixels.dtype == np.uint8 and img.pixels.ndim == 2 and img.pixels.size > 0


# file names: any bytes but '/' and NUL (what a POSIX file system allows), often not UTF-8
name_bytes = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b"/", b"_").replace(b"\0", b"_")).filter(
    lambda b: b not in (b".", b".."))


@settings(FUZZ, max_examples=60)
@given(tree=st.lists(st.tuples(st.lists(name_bytes, max_size=3), name_bytes), min_size=0, max_size=12))
def test_layout_scan_lists_every_file_once(tree):
    with tempfile.TemporaryDirectory(prefix="curate-fuzz-") as tmp:
        root = Path(tmp)
        made = set()
        for folders, name in tree:
            folder = os.path.join(os.fsencode(tmp), *folders)
            try:
                os.makedirs(folder, exist_ok=True)
                path = os.path.join(folder, name)
                if not os.path.isdir(path):
                    with open(path, "wb") as fh:
                        fh.write(b"x")
                    made.add(os.fsdecode(os.path.relpath(path, os.fsencode(tmp))))
            except OSError:  # a name used as both a file and a folder, too long: not a case
                continue
        try:
            table = scan(root)
        except CurateError as exc:
            assert not made and "empty" in str(exc)
            return
        assert sorted(table["path"]) == sorted(made)  # one row each, none lost, none twice


csv_cells = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(FUZZ, max_examples=150)
@given(raw=st.one_of(st.binary(max_size=600),
                     st.lists(st.tuples(csv_cells, csv_cells), max_size=8).map(
                         lambda rows: pd.DataFrame(rows, columns=["path", "label"]).to_csv(index=False).encode())))
def test_labels_csv_reader_labels_or_says_why_in_one_line(raw):
    with tempfile.TemporaryDirectory(prefix="curate-fuzz-") as tmp:
        csv = Path(tmp) / "labels.csv"
        csv.write_bytes(raw)
        table = pd.DataFrame({"path": ["a/x.jpg", "b/y.png"], "label": ["a", "b"], "orig_split": ["", ""],
                              "csv_label": ["", ""], "label_mismatch": [False, False]})
        try:
            out = apply_labels_csv(table, csv)
        except CurateError as exc:
            assert str(exc)  # the CLI prints it as one line
            return
        assert list(out["path"]) == ["a/x.jpg", "b/y.png"] and out["label"].map(type).eq(str).all()
