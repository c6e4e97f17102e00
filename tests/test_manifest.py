"""The manifest: one row per file, deterministic bytes, provenance, verify and export."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from curate.errors import InputError, UsageError
from curate.manifest import export, naive_table, read_manifest, verify_manifest, write_manifests
from curate.split import assign_splits, split_report
from tests.conftest import radiograph, save


@pytest.fixture
def curated(tmp_path):
    """A tiny dataset, its table as the stages would leave it, and its written manifests."""
    root = tmp_path / "xrays"
    rows = []
    for i, (split, label, group) in enumerate([
        ("train", "fractured", 1), ("test", "fractured", 1),  # a leaked copy
        ("train", "fractured", 2), ("val", "fractured", 3), ("test", "fractured", 4),
        ("train", "not fractured", 5), ("val", "not fractured", 6), ("test", "not fractured", 7),
    ]):
        pixels = radiograph(group)  # same group, same picture
        path = f"{split}/{label}/img{i}.png"
        save(root / path, pixels)
        rows.append({"path": path, "label": label, "orig_split": split, "group": group, "status": "ok",
                     "rotation": 90.0 if i == 2 else 0.0, "mtime_ns": i})
    (root / "train" / "fractured" / "notes.txt").write_text("hello")
    rows.append({"path": "train/fractured/notes.txt", "label": "fractured", "orig_split": "train", "group": 99,
                 "status": "not-image", "rotation": 0.0, "mtime_ns": 0})
    from curate.audit import sha256_of
    table = pd.DataFrame(rows)
    table["sha256"] = [sha256_of(root / p) for p in table["path"]]
    table = assign_splits(table, "keep")
    naive, how = naive_table(table)
    out = write_manifests(table, naive, tmp_path / "out", root=root, options={"split": "keep"},
                          report=split_report(table), naive_split=how)
    return root, table, out


def test_every_file_has_exactly_one_row_in_both_manifests(curated):
    root, table, out = curated
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    for csv in (out["manifest_csv"], out["naive_csv"]):
        m = read_manifest(csv)
        assert sorted(m["path"]) == files and m["path"].is_unique
    naive = read_manifest(out["naive_csv"])
    assert naive["keep"].sum() == 8 and set(naive.loc[naive["keep"], "split"]) == {"train", "val", "test"}


def test_manifest_columns_and_formatting(curated):
    _, _, out = curated
    header, first = out["manifest_csv"].read_text().splitlines()[:2]
    assert header.startswith("path,label,orig_split,split,keep,reason,group,sha256,rotation")
    assert "mtime_ns" not in header  # nothing machine- or run-specific in the CSV
    m = read_manifest(out["manifest_csv"])
    row = m.set_index("path").loc["test/fractured/img1.png"]
    assert (row["keep"], row["split"], row["reason"]) == (False, "", "leak")
    assert m.set_index("path").loc["train/fractured/img2.png", "rotation"] == 90
    assert ",90," in out["manifest_csv"].read_text()  # 90, not 90.0 or 90.0000


def test_same_input_gives_byte_identical_manifest(curated, tmp_path):
    root, table, out = curated
    again = write_manifests(table.sample(frac=1, random_state=1), naive_table(table)[0], tmp_path / "again",
                            root=root, options={"split": "keep"}, report=split_report(table))
    assert again["manifest_csv"].read_bytes() == out["manifest_csv"].read_bytes()
    assert again["manifest_sha256"] == out["manifest_sha256"]


def test_manifest_json_has_provenance_and_class_counts(curated):
    root, _, out = curated
    meta = json.loads(out["manifest_json"].read_text())
    assert meta["root"] == str(root.resolve()) and meta["version"] and meta["created"]
    assert meta["options"] == {"split": "keep"}
    import hashlib
    assert meta["manifest_sha256"] == hashlib.sha256(out["manifest_csv"].read_bytes()).hexdigest()
    counts = meta["counts"]
    assert counts["class_counts_before"]["test"] == {"fractured": 2, "not fractured": 1}
    assert counts["class_counts_after"]["test"] == {"fractured": 1, "not fractured": 1}
    assert counts["residual_leaks"] == 0 and counts["by_reason"] == {"leak": 1, "not-image": 1}


def test_verify_finds_missing_changed_and_new_files(curated):
    root, _, out = curated
    assert verify_manifest(out["manifest_csv"])["ok"]
    (root / "val" / "fractured" / "img3.png").unlink()
    save(root / "test" / "fractured" / "img4.png", radiograph(123))
    (root / "train" / "new.png").write_bytes(b"x")
    result = verify_manifest(out["manifest_csv"])
    assert result["missing"] == ["val/fractured/img3.png"]
    assert result["changed"] == ["test/fractured/img4.png"]
    assert result["new"] == ["train/new.png"] and not result["ok"]


def test_export_names_files_by_label_and_hash_and_can_stand_them_upright(curated, tmp_path):
    root, table, out = curated
    result = export(out["manifest_csv"], tmp_path / "clean", apply_rotation=True)
    assert result["files"] == 7 and result["rotated"] == 1
    files = sorted(p.relative_to(tmp_path / "clean").as_posix() for p in (tmp_path / "clean").rglob("*.*")
                   if p.name != "export.csv")
    sha = dict(zip(table["path"], table["sha256"]))
    assert f"train/fractured/fractured_{sha['train/fractured/img0.png'][:12]}.png" in files
    assert f"val/not-fractured/not-fractured_{sha['val/not fractured/img6.png'][:12]}.png" in files
    from PIL import Image
    turned = Image.open(tmp_path / "clean" / f"train/fractured/fractured_{sha['train/fractured/img2.png'][:12]}.png")
    assert np.array_equal(np.asarray(turned), np.rot90(radiograph(2), 1))  # upright pixels


def test_export_refuses_dest_inside_root_and_paths_leaving_root(curated, tmp_path):
    root, _, out = curated
    with pytest.raises(UsageError):
        export(out["manifest_csv"], root / "export")
    csv = out["manifest_csv"]
    text = csv.read_text()
    for bad in ("../outside.png", "/etc/passwd"):
        csv.write_text(text.replace("train/fractured/img0.png", bad))
        with pytest.raises(InputError):
            export(csv, tmp_path / f"dest{len(bad)}")
    os.symlink(tmp_path / "out" / "manifest.json", root / "train" / "fractured" / "link.png")
    csv.write_text(text.replace("train/fractured/img0.png", "train/fractured/link.png"))
    with pytest.raises(InputError):
        export(csv, tmp_path / "dest-link")


def test_export_loads_with_keras(curated, tmp_path):
    keras = pytest.importorskip("keras")
    _, _, out = curated
    export(out["manifest_csv"], tmp_path / "clean")
    ds = keras.utils.image_dataset_from_directory(tmp_path / "clean" / "train", image_size=(32, 32),
                                                  batch_size=8, verbose=False)
    assert ds.class_names == ["fractured", "not-fractured"]
    assert sum(int(x.shape[0]) for x, _ in ds) == 3
