"""Dataset layouts: split folders in any case, labels with spaces, nesting, no splits, a CSV."""

from __future__ import annotations

import pytest

from curate.errors import InputError
from curate.layout import scan
from tests.conftest import radiograph, save


def test_split_label_layout(split_dataset):
    table = scan(split_dataset).set_index("path")
    assert len(table) == 13
    assert table.loc["val/not fractured/img0.png", ["orig_split", "label"]].tolist() == ["val", "not fractured"]
    # deeper folders inside a label folder belong to that label
    assert table.loc["train/fractured/hand/deep.png", "label"] == "fractured"


@pytest.mark.parametrize("folder, split", [("Train", "train"), ("VALID", "val"), ("Validation", "val"), ("TEST", "test")])
def test_split_names_in_any_case(tmp_path, folder, split):
    save(tmp_path / folder / "cat a" / "x.png", radiograph(1))
    row = scan(tmp_path).iloc[0]
    assert (row["orig_split"], row["split_folder"], row["label"]) == (split, folder, "cat a")


def test_label_only_layout_has_no_split(tmp_path):
    save(tmp_path / "fractured" / "a.png", radiograph(1))
    save(tmp_path / "not fractured" / "b.png", radiograph(2))
    table = scan(tmp_path)
    assert table["orig_split"].tolist() == ["", ""]
    assert table["label"].tolist() == ["fractured", "not fractured"]


def test_junk_unicode_and_hidden_files_get_rows(tmp_path):
    save(tmp_path / "train" / "fractured" / "röntgen bild #1 (copy).png", radiograph(1))
    (tmp_path / "train" / "fractured" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (tmp_path / "train" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "README.txt").write_text("hello")
    paths = set(scan(tmp_path)["path"])
    assert paths == {"train/fractured/röntgen bild #1 (copy).png", "train/fractured/.DS_Store",
                     "train/Thumbs.db", "README.txt"}


def test_labels_csv_overrides_folders_and_flags_disagreement(tmp_path):
    save(tmp_path / "train" / "fractured" / "a.png", radiograph(1))
    save(tmp_path / "train" / "fractured" / "b.png", radiograph(2))
    save(tmp_path / "train" / "unsorted" / "c.png", radiograph(3))
    csv = tmp_path.parent / "labels.csv"
    csv.write_text("filename,class\na.png,fractured\nb.png,not fractured\ntrain/unsorted/c.png,fractured\n")
    table = scan(tmp_path, labels_csv=csv).set_index("path")
    assert table.loc["train/fractured/b.png", "label"] == "not fractured"
    assert table["label_mismatch"].to_dict() == {
        "train/fractured/a.png": False, "train/fractured/b.png": True,
        "train/unsorted/c.png": False}  # 'unsorted' is none of the CSV's labels: no disagreement


def test_labels_csv_without_a_label_column_is_a_clear_error(tmp_path):
    save(tmp_path / "a" / "x.png", radiograph(1))
    csv = tmp_path.parent / "bad.csv"
    csv.write_text("filename,colour\nx.png,red\n")
    with pytest.raises(InputError, match="no label column"):
        scan(tmp_path, labels_csv=csv)


def test_unusable_roots(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        scan(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        scan(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        scan(tmp_path / "empty")
