"""Audit on a generated corpus of every broken and odd kind."""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest
from PIL import Image

from curate.audit import audit, audit_file, audit_summary
from curate.layout import scan
from tests.conftest import radiograph, save, tree_digest


def jpeg_bytes(pixels: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


@pytest.fixture
def messy_corpus(tmp_path):
    """ROOT/train/fractured/ holding one file of every broken and odd kind; name -> expected."""
    root = tmp_path / "corpus"
    d = root / "train" / "fractured"
    d.mkdir(parents=True)
    good = jpeg_bytes(radiograph(1, (200, 200)), quality=90)
    png = io.BytesIO()
    Image.fromarray(radiograph(2)).save(png, format="PNG")
    png = png.getvalue()
    bad_crc = bytearray(png)
    bad_crc[40] ^= 0xFF  # flip bits inside the first chunk: its CRC no longer matches
    files = {
        "ok.jpg": (good, "ok", ""),
        "truncated.jpg": (good[: len(good) // 2], "corrupt", "truncated"),
        "zero.jpg": (b"", "corrupt", "zero bytes"),
        "garbage.jpg": (np.random.default_rng(0).bytes(3000), "corrupt", "garbage"),  # seeded: random bytes can look like text
        "header-only.jpg": (good[:300], "corrupt", ""),
        "bad-crc.png": (bytes(bad_crc), "corrupt", ""),
        "page.jpg": (b"<html><head><title>Access denied</title></head></html>", "not-image", "HTML"),
        "notes.txt": (b"scanned on tuesday\n", "not-image", ""),
        ".DS_Store": (b"\x00\x00\x00\x01Bud1" + bytes(100), "not-image", "junk"),
        "png-named.jpg": (png, "ok", "ext-mismatch"),
    }
    for name, (data, _, _) in files.items():
        (d / name).write_bytes(data)
    wide = (radiograph(3).astype(np.uint16) * 257)
    Image.fromarray(wide).save(d / "deep16.png")
    Image.fromarray((np.stack([radiograph(4)] * 3, -1) // np.array([1, 2, 3])).astype(np.uint8)).save(d / "colour.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(radiograph(5)).save(d / "exif.jpg", exif=exif)
    save(d / "blank.png", np.full((100, 100), 7, np.uint8))
    save(d / "tiny.png", radiograph(6, (16, 16)))
    expected_flags = {"deep16.png": "16-bit", "colour.png": "colour", "exif.jpg": "exif-rotated",
                      "blank.png": "blank", "tiny.png": "tiny", "png-named.jpg": "ext-mismatch",
                      ".DS_Store": "hidden"}
    return root, files, expected_flags


def test_every_broken_kind_gets_its_reason_and_no_odd_file_is_called_broken(messy_corpus):
    root, files, expected_flags = messy_corpus
    before = tree_digest(root)
    table = audit(scan(root), root, workers=2).set_index("path")
    prefix = "train/fractured/"
    for name, (_, status, hint) in files.items():
        row = table.loc[prefix + name]
        assert row["status"] == status, name
        if status != "ok" and hint:
            assert hint.lower() in row["detail"].lower(), (name, row["detail"])
    for name, flag in expected_flags.items():
        assert flag in table.loc[prefix + name, "flags"].split(";"), name
    for name in expected_flags:  # odd but valid: decodes fine
        if name != ".DS_Store":
            assert table.loc[prefix + name, "status"] == "ok", name
    assert tree_digest(root) == before  # the input tree is byte-for-byte unchanged
    assert len(table) == len(files) + 5  # every file has exactly one row


def test_summary_counts(messy_corpus):
    root, _, _ = messy_corpus
    summary = audit_summary(audit(scan(root), root, workers=1))
    assert summary["files"] == 15
    assert summary["images_ok"] == 7
    assert summary["corrupt"] == 5
    assert summary["not_images"] == 3
    assert summary["broken"] == 6  # the five corrupt and the HTML page pretending to be a .jpg


def test_dangling_link_and_permission_denied_are_unreadable(tmp_path, monkeypatch):
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    assert audit_file(tmp_path / "gone.jpg")["status"] == "unreadable"

    locked = save(tmp_path / "locked.png", radiograph(1))
    real_open = os.open

    def deny(path, *args, **kwargs):  # as root chmod 000 still reads, so refuse here instead
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("os.open", deny)
    row = audit_file(locked)
    assert (row["status"], row["detail"]) == ("unreadable", "Permission denied")


def test_same_result_with_one_or_two_workers(messy_corpus):
    root, _, _ = messy_corpus
    one = audit(scan(root), root, workers=1)
    two = audit(scan(root), root, workers=2)
    assert one.drop(columns=["mean", "std"]).equals(two.drop(columns=["mean", "std"]))


def test_a_rerun_decodes_only_new_or_changed_files(messy_corpus, tmp_path, monkeypatch):
    root, _, _ = messy_corpus
    cache = tmp_path / "cache"
    first = audit(scan(root), root, workers=1, cache_dir=cache)
    decoded = []
    module = sys.modules["curate.audit"]  # (curate.audit is also the function's name)
    real = module.audit_file
    monkeypatch.setattr(module, "audit_file", lambda p: decoded.append(os.path.basename(p)) or real(p))
    again = audit(scan(root), root, workers=1, cache_dir=cache)
    assert decoded == []
    assert again.equals(first)
    changed = root / "train" / "fractured" / "ok.jpg"
    changed.write_bytes(jpeg_bytes(radiograph(9, (120, 90)), quality=80))
    third = audit(scan(root), root, workers=1, cache_dir=cache).set_index("path")
    assert decoded == ["ok.jpg"]
    assert (third.loc["train/fractured/ok.jpg", "width"], third.loc["train/fractured/ok.jpg", "height"]) == (90, 120)
