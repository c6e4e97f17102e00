"""The layouts real X-ray sets come in: YOLO exports, path patterns (MURA-style trees), labels
CSVs with named columns, patients kept in one split, DICOM files (written here with pydicom)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.audit import audit
from curate.errors import UsageError
from curate.layout import scan
from curate.manifest import export, read_manifest
from curate.split import assign_splits, residual_leaks
from curate.yolo import turn_labels
from tests.conftest import radiograph, save


# ---- YOLO / Roboflow -------------------------------------------------------------------------


def yolo_export(root, n_per_split=3):
    """A Roboflow-style export: data.yaml, <split>/images + <split>/labels, one empty label file
    per split, one image without a label file, one label file without an image."""
    (root).mkdir(parents=True)
    (root / "data.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 2\nnames: ['elbow', 'fracture']\n")
    (root / "README.roboflow.txt").write_text("exported from roboflow")
    n = 0
    for split in ("train", "valid"):
        for i in range(n_per_split):
            n += 1
            save(root / split / "images" / f"img{n}.jpg", radiograph(n))
            boxes = ["", "1 0.5 0.5 0.2 0.3\n", "0 0.3 0.3 0.1 0.1\n1 0.5 0.5 0.2 0.2\n"][i % 3]
            (root / split / "labels").mkdir(parents=True, exist_ok=True)
            (root / split / "labels" / f"img{n}.txt").write_text(boxes)
    save(root / "train" / "images" / "unlabelled.jpg", radiograph(50))
    (root / "valid" / "labels" / "orphan.txt").write_text("1 0.5 0.5 0.1 0.1\n")
    return root


def test_yolo_export_is_read_as_images_with_boxes(tmp_path):
    root = yolo_export(tmp_path / "rf")
    table = audit(scan(root), root, workers=1).set_index("path")
    assert table.loc["train/images/img1.jpg", ["label", "orig_split", "annotation", "status"]].tolist() == [
        "no-boxes", "train", "train/labels/img1.txt", "ok"]  # an empty label file: no boxes
    assert table.loc["train/images/img2.jpg", "label"] == "fracture"  # class names from data.yaml
    assert table.loc["valid/images/img6.jpg", ["label", "orig_split", "boxes"]].tolist() == ["elbow+fracture", "val", 2]
    assert table.loc["train/images/unlabelled.jpg", ["label", "annotation"]].tolist() == ["no-boxes", ""]
    labels = [p for p in table.index if "/labels/" in p] + ["data.yaml"]
    assert set(table.loc[labels, "status"]) == {"annotation"}  # never corrupt / not-image
    assert table.loc["README.roboflow.txt", "status"] == "not-image"
    warnings = " ".join(scan(root).attrs["warnings"])
    assert "1 image(s) have no label file" in warnings and "1 label file(s) have no image" in warnings


def test_yolo_export_writes_images_and_labels_and_turns_boxes(tmp_path):
    from curate.pipeline import run_pipeline
    from curate.workspace import Workspace

    root = tmp_path / "rf"
    (root / "train" / "labels").mkdir(parents=True)
    (root / "data.yaml").write_text("names: ['fracture']\n")
    for i in range(4):  # a bright box at a known place in each image (x 20-40 of 160, y 10-30 of 80)
        px = (radiograph(i, (80, 160)) // 3).astype(np.uint8)
        px[10:30, 20:40] = 255
        save(root / "train" / "images" / f"a{i}.png", px)
        (root / "train" / "labels" / f"a{i}.txt").write_text("0 0.1875 0.25 0.125 0.25\n")
    ws = Workspace.for_root(root, "rf", tmp_path / "work")
    table, *_ = run_pipeline(root, ws, split="keep", report=False)
    manifest = ws.manifests / "manifest.csv"
    rows = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    rows.loc[rows["path"] == "train/images/a0.png", "rotation"] = "90"  # as if orient had said so
    rows.to_csv(manifest, index=False)

    export(manifest, tmp_path / "out", apply_rotation=True)
    out = tmp_path / "out"
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    images = [f for f in files if "/images/" in f]
    assert len(images) == 4 and all(f.startswith("train/images/fracture_") for f in images)
    assert sorted(f for f in files if "/labels/" in f) == sorted(
        f.replace("/images/", "/labels/").rsplit(".", 1)[0] + ".txt" for f in images)
    assert "names:\n- fracture" in (out / "data.yaml").read_text()
    log = pd.read_csv(out / "export.csv", dtype=str).set_index("path")
    turned = log.loc["train/images/a0.png"]
    assert turned["rotated"] == "true"
    from curate.imageio import decode

    px = decode(out / turned["file"]).pixels  # now 160 tall, 80 wide
    cls, cx, cy, w, h = (out / turned["annotation"]).read_text().split()
    x0, y0 = round((float(cx) - float(w) / 2) * px.shape[1]), round((float(cy) - float(h) / 2) * px.shape[0])
    x1, y1 = round((float(cx) + float(w) / 2) * px.shape[1]), round((float(cy) + float(h) / 2) * px.shape[0])
    assert px.shape == (160, 80) and px[y0:y1, x0:x1].min() == 255  # the box still covers the bright patch
    kept = log.loc["train/images/a1.png"]
    assert (out / kept["annotation"]).read_text() == "0 0.1875 0.25 0.125 0.25\n"  # unturned: copied as is


def test_turned_boxes_come_back_after_four_quarter_turns():
    text = "0 0.2 0.3 0.1 0.2\n3 0.1 0.1 0.4 0.1 0.4 0.5\n"
    once = turn_labels(text, 90, 100, 50)
    assert once.splitlines()[0] == "0 0.300000 0.800000 0.200000 0.100000"
    back = once
    for size in ((50, 100), (100, 50), (50, 100)):
        back = turn_labels(back, 90, *size)
    assert np.allclose(np.array(back.split(), float), np.array(text.split(), float))
    tilted = turn_labels("0 0.5 0.5 0.2 0.2\n", 45, 100, 100).split()
    assert np.allclose([float(v) for v in tilted[1:]], [0.5, 0.5, 0.2 * 2 ** 0.5, 0.2 * 2 ** 0.5])


# ---- --path-pattern and --group-by ---------------------------------------------------------------

MURA = r"XR_(?P<body>[A-Z]+)/(?P<group>patient\d+)/study\d+_(?P<label>positive|negative)/"


def mura_tree(root):
    n = 0
    for split, patient, study in [("train", 1, "positive"), ("train", 2, "negative"), ("valid", 1, "negative"),
                                  ("valid", 3, "positive"), ("train", 4, "negative")]:
        for k in range(2):
            n += 1
            save(root / split / "XR_WRIST" / f"patient{patient:05d}" / f"study{k + 1}_{study}" / "image1.png",
                 radiograph(n))
    save(root / "train" / "XR_WRIST" / "loose.png", radiograph(77))
    return root


def test_path_pattern_reads_label_group_and_more(tmp_path):
    root = mura_tree(tmp_path / "mura")
    table = scan(root, path_pattern=MURA).set_index("path")
    row = table.loc["valid/XR_WRIST/patient00001/study2_negative/image1.png"]
    assert (row["label"], row["orig_split"], row["subject"], row["body"]) == ("negative", "val", "patient00001", "WRIST")
    assert table.loc["train/XR_WRIST/loose.png", "label"] == ""  # missed by the pattern: no label, never a guess
    assert "1 of 11 files do not match --path-pattern" in " ".join(table.attrs["warnings"])


def test_a_bad_path_pattern_is_one_clear_error(tmp_path):
    save(tmp_path / "a" / "x.png", radiograph(1))
    with pytest.raises(UsageError, match="not a regular expression"):
        scan(tmp_path, path_pattern="(?P<label>[")
    with pytest.raises(UsageError, match="name at least one group"):
        scan(tmp_path, path_pattern="a/.*")


def _split_table(rows):
    """A table as the dups stage leaves it: every file its own duplicate group."""
    t = pd.DataFrame(rows, columns=["path", "label", "orig_split", "patient"])
    t["status"], t["group"] = "ok", [str(i) for i in range(len(t))]
    return t


def test_keep_policy_keeps_a_patient_in_one_split(tmp_path):
    t = _split_table([("a", "x", "train", "p1"), ("b", "y", "test", "p1"), ("c", "x", "val", "p1"),
                      ("d", "y", "test", "p2"), ("e", "x", "test", "")])
    out = assign_splits(t, "keep", group_by="patient").set_index("path")
    assert out["split"].to_dict() == {"a": "train", "b": "", "c": "", "d": "test", "e": "test"}
    assert out.loc[["b", "c"], "reason"].tolist() == ["leak", "leak"]
    assert residual_leaks(out.reset_index(), "patient") == 0
    plain = assign_splits(t, "keep").set_index("path")  # without --group-by the patient spans three splits
    assert residual_leaks(plain.reset_index(), "patient") == 1
    auto = assign_splits(t, "auto", group_by="patient")  # whichever policy auto picks, the patient stays together
    assert residual_leaks(auto, "patient") == 0 and auto["keep"].any()


def test_regroup_policy_keeps_a_patient_in_one_split():
    rows = [(f"f{i}", "xy"[i % 2], "", f"p{i // 4}") for i in range(80)]
    out = assign_splits(_split_table(rows), "regroup", group_by="patient", seed=3)
    assert out.groupby("patient")["split"].nunique().max() == 1
    assert set(out["split"]) == {"train", "val", "test"}


def test_a_fresh_split_of_few_images_per_class_does_not_fail():
    # 11 units, 5 and 6 per class: more units than folds, but no class with one per fold
    rows = [(f"f{i}", "xy"[i < 5], "", f"p{i}") for i in range(11)]
    out = assign_splits(_split_table(rows), "regroup", group_by="patient")
    assert out["keep"].all() and (out["split"] == "train").any()


def test_run_with_a_path_pattern_keeps_each_patient_in_one_split(tmp_path):
    from curate.cli import app

    root = mura_tree(tmp_path / "mura")
    # --split keep: the dataset's own splits (auto would regroup: patient 1's leaks empty val of 'negative')
    result = CliRunner().invoke(app, ["run", str(root), "--path-pattern", MURA, "--workdir", str(tmp_path / "w"),
                                      "--json", "-w", "1", "--split", "keep"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["residual_leaks"] == 0
    manifest = read_manifest(tmp_path / "w" / "manifests" / "mura" / "manifest.csv").set_index("path")
    # patient 1 is in train and valid: its valid studies are leaks, kept out
    assert manifest.loc["valid/XR_WRIST/patient00001/study1_negative/image1.png", "reason"] == "leak"
    kept = manifest[manifest["keep"]]
    assert kept.groupby("subject")["split"].nunique().max() == 1
    assert manifest.loc["train/XR_WRIST/loose.png", "reason"] == "no-label"
    assert "do not match --path-pattern" in result.stderr


# ---- labels CSV with named columns -----------------------------------------------------------------


def test_labels_csv_named_columns_and_what_does_not_match_is_counted(tmp_path):
    root = tmp_path / "xr"
    for i, name in enumerate(["a", "b", "c", "d"]):
        save(root / "imgs" / f"{name}.png", radiograph(i))
    save(root / "e.png", radiograph(9))  # no row, no folder to take a label from
    csv = tmp_path / "labels.csv"
    csv.write_text("Image Index,Finding,patient\nimgs/a.png,fracture,p1\nb.png,normal,p2\nb.png,normal,p2\n"
                   "c.png,fracture,p3\nc.png,normal,p3\ngone.png,normal,p4\n")
    table = scan(root, labels_csv=csv, path_column="Image Index", label_column="Finding").set_index("path")
    assert table["label"].to_dict() == {"imgs/a.png": "fracture", "imgs/b.png": "normal", "imgs/c.png": "",
                                        "imgs/d.png": "imgs", "e.png": ""}
    warnings = " ".join(table.attrs["warnings"])
    assert "1 row(s) of labels.csv match no file" in warnings and "'gone.png'" in warnings
    assert "1 file(s) are listed in labels.csv with different labels" in warnings  # c; b's repeat agrees
    assert "2 file(s) under ROOT have no row in labels.csv (e.g. 'e.png'): 1 keep their folder's label, 1 have none" in warnings
    with pytest.raises(UsageError, match="no column 'Label'"):
        scan(root, labels_csv=csv, path_column="Image Index", label_column="Label")


def test_manifest_command_says_what_the_labels_csv_left_unsaid(tmp_path):
    from curate.cli import app

    root = tmp_path / "xr"
    for i in range(6):
        save(root / f"img{i}.png", radiograph(i))
    csv = tmp_path / "labels.csv"
    csv.write_text("Image Index,Finding\n" + "".join(f"img{i}.png,{'ab'[i % 2]}\n" for i in range(5)) + "gone.png,a\n")
    result = CliRunner().invoke(app, ["manifest", str(root), "--labels-csv", str(csv), "--path-column", "Image Index",
                                      "--label-column", "Finding", "--workdir", str(tmp_path / "w"), "--json", "-w", "1"])
    assert result.exit_code == 0, result.output
    said = ["1 row(s) of labels.csv match no file under ROOT (e.g. 'gone.png').",
            "1 file(s) under ROOT have no row in labels.csv (e.g. 'img5.png'): 0 keep their folder's label, "
            "1 have none (reason no-label)."]
    assert json.loads(result.stdout)["warnings"][:2] == said
    assert json.loads((tmp_path / "w" / "manifests" / "xr" / "manifest.json").read_text())["warnings"][:2] == said
    assert result.stderr.count("match no file") == 1  # said once
    assert read_manifest(tmp_path / "w" / "manifests" / "xr" / "manifest.csv").set_index("path").loc[
        "img5.png", "reason"] == "no-label"


# ---- DICOM -----------------------------------------------------------------------------------------

pydicom = pytest.importorskip("pydicom", reason="pydicom is not installed: pip install 'curate[dicom]'")


def write_dicom(path, pixels, *, photometric="MONOCHROME2", bits=12, window=None, patient="P1", study="1.2.3",
                preamble=True):
    """A minimal DX-style DICOM file written with pydicom (one frame, or a stack of frames)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # digital X-ray
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientID, ds.StudyInstanceUID, ds.Modality = patient, study, "DX"
    frames = pixels if pixels.ndim == 3 else pixels[None]
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = frames.astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=preamble)
    return path


def ramp12(h=64, w=96):
    return np.tile(np.linspace(0, 4095, w), (h, 1)).astype(np.uint16)


def test_dicom_12_bit_is_scaled_to_its_range_and_windowed(tmp_path):
    from curate.imageio import decode

    plain = decode(write_dicom(tmp_path / "plain.dcm", ramp12())).pixels
    assert (plain.min(), plain.max()) == (0, 255)  # 12-bit spread over 0-255, not /257 into 0-16
    win = decode(write_dicom(tmp_path / "win.dcm", ramp12(), window=(1024, 1024))).pixels
    row = win[0]
    assert row[row.size // 2:].min() == 255  # above the window (centre + width / 2 = 1536): white
    assert np.all(np.diff(row.astype(int)) >= 0) and 0 < row[12] < 255  # inside it: a ramp


def test_dicom_voi_lut_maps_values_through_its_table(tmp_path):
    from pydicom.dataset import Dataset

    from curate.imageio import decode

    path = write_dicom(tmp_path / "lut.dcm", ramp12())
    ds = pydicom.dcmread(path)
    item = Dataset()  # 4096 entries from 0, 8-bit output: a curve, not a straight window
    item.LUTDescriptor = [4096, 0, 8]
    lut = [int(round(100 + 100 * (v / 4095) ** 2)) for v in range(4096)]  # outputs 100..200
    item.add_new(0x00283006, "US", lut)  # LUTData
    ds.VOILUTSequence = [item]
    ds.save_as(path)
    row = decode(path).pixels[0]
    expected = np.round((np.array(lut)[ramp12()[0]] - 100) * 255 / 100)
    assert np.abs(row.astype(int) - expected).max() <= 1  # the LUT's own range 100-200 maps onto 0-255


def test_dicom_monochrome1_is_inverted_and_multi_frame_gives_its_first_frame(tmp_path):
    from curate.imageio import decode

    m2 = decode(write_dicom(tmp_path / "m2.dcm", ramp12())).pixels
    m1 = decode(write_dicom(tmp_path / "m1.dcm", ramp12(), photometric="MONOCHROME1")).pixels
    assert np.array_equal(m1, 255 - m2)
    stack = np.stack([ramp12(), ramp12()[:, ::-1]])
    img = decode(write_dicom(tmp_path / "mf.dcm", stack))
    assert img.frames == 2 and np.array_equal(img.pixels, m2)


def test_dicom_audit_statuses_and_patient_columns(tmp_path):
    root = tmp_path / "dcm"
    write_dicom(root / "fractured" / "a.dcm", ramp12(), patient="P1", study="1.1")
    write_dicom(root / "fractured" / "IM0001", radiograph(3).astype(np.uint16) * 16, patient="P2")  # no extension
    write_dicom(root / "normal" / "mf.dcm", np.stack([ramp12(), ramp12()]), patient="P1", study="1.2")
    broken = (root / "fractured" / "a.dcm").read_bytes()
    (root / "normal" / "cut.dcm").write_bytes(broken[: len(broken) - 3000])  # pixel data cut short
    (root / "normal" / "junk.dcm").write_bytes(b"not a dicom file at all" * 10)
    table = audit(scan(root), root, workers=1).set_index("path")
    assert table.loc[["fractured/a.dcm", "fractured/IM0001", "normal/mf.dcm"], "status"].tolist() == ["ok"] * 3
    assert table.loc["fractured/IM0001", "format"] == "DICOM"
    assert "multi-frame" in table.loc["normal/mf.dcm", "flags"]
    assert table.loc[["normal/cut.dcm", "normal/junk.dcm"], "status"].tolist() == ["corrupt", "corrupt"]
    assert table.loc["normal/mf.dcm", ["patient_id", "study_id"]].tolist() == ["P1", "1.2"]
    out = assign_splits(table.reset_index().assign(group=lambda t: t["path"]), "regroup", group_by="patient_id")
    assert out[out["keep"]].groupby("patient_id")["split"].nunique().max() == 1


def test_dicom_without_pydicom_is_one_clear_line(tmp_path, monkeypatch):
    import sys

    from curate.audit import dicom_warnings

    root = tmp_path / "dcm"
    write_dicom(root / "x" / "a.dcm", ramp12())
    save(root / "x" / "b.png", radiograph(1))
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if it were not installed
    table = audit(scan(root), root, workers=1).set_index("path")
    assert table.loc["x/a.dcm", "status"] == "unreadable"
    assert dicom_warnings(table.reset_index()) == [
        "1 DICOM file(s) not read: DICOM needs pydicom, which is not installed: pip install 'curate[dicom]'."]
