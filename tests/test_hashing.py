"""Hashes: one DCT gives all 8 rotations/flips; tone and size changes barely move them; the
per-file cache is reused and invalidated when a file changes."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from curate.hashing import (HASH_COLUMNS, dct_hash, dct_hashes, dihedral, equalise, frame_hash, hamming,
                            hash_file, hash_images, trimmed, window_hashes)


def xray(seed: int, h: int = 200, w: int = 160) -> np.ndarray:
    """A fake radiograph: dark background, a long bright 'bone', blurred blobs and lines."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w), 12, np.float32)
    cv2.ellipse(img, (w // 2, h // 2), (w // 6, h // 3), float(rng.uniform(-20, 20)), 0, 360, 150, -1)
    for _ in range(14):
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(img, c, int(rng.integers(3, 14)), float(rng.uniform(40, 240)), -1)
    for _ in range(6):
        p, q = (int(rng.integers(0, w)), int(rng.integers(0, h))), (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p, q, float(rng.uniform(60, 255)), int(rng.integers(1, 5)))
    img = cv2.GaussianBlur(img, (0, 0), 1.5) + rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def scan_like(root: Path) -> pd.DataFrame:
    """The columns hash_images needs from layout.scan, without depending on it."""
    rows = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            rows.append({"path": p.relative_to(root).as_posix(), "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    return pd.DataFrame(rows)


def test_the_8_variants_come_from_one_hash():
    eq = equalise(xray(1))
    variants = dihedral(np.array([frame_hash(eq)], dtype=np.uint64))[0]
    for k in range(4):
        for m in range(2):
            img = np.ascontiguousarray(np.rot90(np.fliplr(eq) if m else eq, k))
            # the hash of the actually turned image equals the bit-operation variant
            assert frame_hash(img) == variants[2 * k + m]
    assert len(set(variants.tolist())) == 8


def test_tone_and_size_changes_keep_the_hash_close_and_other_images_far():
    img = xray(2)
    base = frame_hash(equalise(img))
    toned = np.clip((img.astype(float) / 255) ** 1.3 * 255 * 1.1 + 10, 0, 255).astype(np.uint8)
    small = cv2.resize(img, (96, 120), interpolation=cv2.INTER_AREA)
    assert hamming(base, frame_hash(equalise(toned))) <= 6
    assert hamming(base, frame_hash(equalise(small))) <= 6
    assert hamming(base, frame_hash(equalise(xray(3)))) > 10


def test_the_batched_dct_hash_is_the_single_one():
    stack = np.random.default_rng(0).random((20, 32, 32)).astype(np.float32)
    assert dct_hashes(stack).tolist() == [dct_hash(x) for x in stack]


def shift(img: np.ndarray, dx: int, dy: int, zoom: float = 1.0) -> np.ndarray:
    h, w = img.shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 0, zoom)
    m[:, 2] += (dx, dy)
    return cv2.warpAffine(img, m, (w, h))  # black where the frame moved in


def test_a_shifted_or_zoomed_copy_matches_one_of_the_originals_windows():
    img = xray(4)
    windows = window_hashes(equalise(img))
    for dx, dy, zoom in ((14, -18, 1.0), (-8, 10, 1.0), (0, 0, 0.92), (0, 0, 1.08), (-9, 12, 0.93)):
        centre = window_hashes(equalise(shift(img, dx, dy, zoom)))[0]  # the copy's centred window
        assert hamming(windows, centre).min() <= 8, (dx, dy, zoom)
        assert hamming(window_hashes(equalise(xray(5))), centre).min() > 10  # another image: far


def test_trimming_takes_off_the_flat_fill_a_shift_leaves_and_nothing_else():
    img = xray(5)
    assert trimmed(img).shape == img.shape  # noisy edges: nothing to trim
    shifted = np.zeros_like(img)
    shifted[16:, 12:] = img[:-16, :-12]  # moved down and right into a black fill
    np.testing.assert_array_equal(trimmed(shifted), img[:-16, :-12])  # the fill, exactly
    white = np.full((50, 40), 255, np.uint8)
    assert trimmed(white).shape == (26, 20)  # a flat image loses at most a quarter per side


def test_dark_share_counts_what_a_fill_or_a_clipping_tone_change_flattened_to_black(tmp_path):
    img = xray(5)
    shifted = np.zeros_like(img)
    shifted[30:, 24:] = img[:-30, :-24]  # a quarter of the frame becomes black fill
    clipped = np.clip(img.astype(int) * 2 - 120, 0, 255).astype(np.uint8)  # darks crushed to 0
    share = {}
    for name, pixels in (("original", img), ("shifted", shifted), ("clipped", clipped)):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        share[name] = hash_file(tmp_path / f"{name}.png")["dark_share"]
    assert share["original"] < 0.02  # a noisy background: few pixels at the very darkest level
    assert share["shifted"] > 0.2 and share["clipped"] > 0.5


def test_a_darkened_copy_whose_background_went_black_matches_at_its_clip_floor(tmp_path):
    from curate.hashing import CLIP_FLOORS, LHASH_COLUMNS

    img = xray(6)
    darkened = np.clip(img * 1.2 - 120, 0, 255).astype(np.uint8)  # background and soft tissue go to 0
    rows = {}
    for name, pixels in (("original", img), ("darkened", darkened), ("other", xray(7))):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
        rows[name] = hash_file(tmp_path / f"{name}.png")
    share = rows["darkened"]["dark_share"]
    assert share > 0.65
    column = LHASH_COLUMNS[int(np.searchsorted(CLIP_FLOORS, share + 0.02))]  # its clip floor
    assert hamming(rows["darkened"]["phash"], rows["original"]["phash"]) > 3  # the plain hash drifts
    assert hamming(rows["darkened"][column], rows["original"][column]) <= 2
    assert hamming(rows["other"][column], rows["original"][column]) > 10


def test_the_trimmed_frames_window_differs_from_the_centred_one_only_when_strips_were_cut(tmp_path):
    img = xray(5)
    for name, pixels in (("original", img), ("shifted", shift(img, 12, -15))):
        Image.fromarray(pixels).save(tmp_path / f"{name}.png")
    original, shifted = (hash_file(tmp_path / f"{n}.png") for n in ("original", "shifted"))
    assert original["twhash"] == original["whash_0"]  # noisy edges: nothing trimmed
    assert shifted["twhash"] != shifted["whash_0"]  # the black fill was cut off first


def test_a_file_that_does_not_decode_gets_a_status_not_an_exception(tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    row = hash_file(bad)
    assert row["hash_status"] == "corrupt" and row["phash"] == 0


def test_cache_is_reused_and_a_changed_file_is_hashed_again(tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    for i in range(3):
        Image.fromarray(xray(10 + i)).save(root / f"{i}.png")
    cache = tmp_path / "work" / ".cache"
    first = hash_images(scan_like(root), root, workers=1, cache_dir=cache)
    assert set(HASH_COLUMNS) <= set(first.columns) and (first["hash_status"] == "ok").all()
    assert list(cache.glob("*.npz")) and not list(root.glob("*.npz"))  # never inside ROOT

    hashed = []
    import curate.hashing as hashing
    real = hashing.hash_with_sha
    monkeypatch.setattr(hashing, "hash_with_sha", lambda p, sha="": hashed.append(Path(p).name) or real(p, sha))
    again = hash_images(scan_like(root), root, workers=1, cache_dir=cache)
    assert hashed == []  # everything came from the cache
    pd.testing.assert_frame_equal(again, first)

    Image.fromarray(xray(99)).save(root / "1.png")  # a changed file: new bytes, new mtime
    os.utime(root / "1.png", ns=(10**18, 10**18))
    third = hash_images(scan_like(root), root, workers=1, cache_dir=cache)
    assert hashed == ["1.png"]
    assert third.loc[1, "phash"] != first.loc[1, "phash"]
    assert third.loc[0, "phash"] == first.loc[0, "phash"]


def test_a_file_the_audit_hashed_is_not_read_again_for_its_sha256(tmp_path, monkeypatch):
    # The audit has read every file's bytes for its sha256; the hash step takes it from the table
    # (and keeps it in its cache for `curate hash`, which runs no audit), reading only the others.
    from curate.audit import sha256_of

    root = tmp_path / "data"
    root.mkdir()
    for i in range(3):
        Image.fromarray(xray(20 + i)).save(root / f"{i}.png")
    table = scan_like(root)
    table["sha256"] = [sha256_of(root / "0.png"), "", sha256_of(root / "2.png")]  # 1.png: the audit could not
    import curate.hashing as hashing
    read = []
    real = hashing._sha256
    monkeypatch.setattr(hashing, "_sha256", lambda p: read.append(Path(p).name) or real(p))
    cache = tmp_path / "work" / ".cache"
    out = hash_images(table, root, workers=1, cache_dir=cache)
    assert read == ["1.png"]
    assert out["sha256"].tolist() == table["sha256"].tolist()
    again = hash_images(scan_like(root), root, workers=1, cache_dir=cache)  # no audit: from the cache
    assert again["sha256"].tolist() == [sha256_of(root / f"{i}.png") for i in range(3)] and read == ["1.png"]


def test_a_copy_turned_and_zoomed_about_the_centre_keeps_its_ring_hash_close():
    # Kaggle-style augmentation: a turn and a zoom about the centre on the fixed canvas, corners
    # filled white. The ring hashes (the best of the moved windows against the middle one) of
    # such a copy sit within RING_RADIUS of the original's, nearer than any of ten other fake
    # radiographs'.
    from curate.candidates import RING_RADIUS
    from curate.hashing import ring_hashes

    def turned(img, angle, zoom):
        m = cv2.getRotationMatrix2D((111.5, 111.5), angle, zoom)
        return cv2.warpAffine(img, m, (224, 224), borderMode=cv2.BORDER_CONSTANT, borderValue=255)

    def rings(img):
        return np.array(ring_hashes(cv2.resize(img, (128, 128), interpolation=cv2.INTER_AREA)), dtype=np.uint64)

    def distance(x, y):
        k = len(x) // 2
        return int(min(np.bitwise_count(x ^ y[k]).min(), np.bitwise_count(y ^ x[k]).min()))

    others = [rings(xray(s, 224, 224)) for s in range(20, 30)]
    for seed in (5, 9):
        original = xray(seed, 224, 224)
        for angle, zoom in ((15, 1.1), (-20, 0.88), (25, 1.2)):
            copy = rings(turned(original, angle, zoom))
            near = distance(rings(original), copy)
            assert near <= RING_RADIUS
            assert near < min(distance(other, copy) for other in others)
