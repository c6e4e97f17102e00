"""Messages that fit the data at hand: split warnings, the label-mismatch flag, and --help."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.layout import scan
from curate.split import assign_splits, split_report
from tests.conftest import radiograph, save
from tests.test_split import table


def test_train_losing_its_own_copies_is_not_told_about_an_earlier_split():
    rows = []
    for g in range(30):  # every train image has two augmented copies inside train
        label = ("frac", "ok")[g % 2]
        rows += [(f"train/{label}/g{g}_c{c}.png", label, "train", g) for c in range(3)]
    for g in range(30, 90):
        label, split = ("frac", "ok")[g % 2], ("val", "test")[g % 3 == 0]
        rows.append((f"{split}/{label}/g{g}.png", label, split, g))
    warnings = split_report(assign_splits(table(rows), "keep"), "keep")["warnings"]
    train = [w for w in warnings if w.startswith("train keeps")]
    assert len(train) == 2 and all("copies of other train images" in w for w in train), warnings
    assert not any("earlier split" in w or "another split" in w for w in warnings)


def test_test_losing_its_leaked_copies_says_so():
    rows = [(f"train/frac/g{g}.png", "frac", "train", g) for g in range(40)]
    rows += [(f"test/frac/g{g}_aug.png", "frac", "test", g) for g in range(40)]
    rows += [(f"{('train', 'test', 'val')[g % 3]}/ok/g{g}.png", "ok", ("train", "test", "val")[g % 3], g)
             for g in range(40, 100)]
    warnings = split_report(assign_splits(table(rows), "keep"), "keep")["warnings"]
    assert any(w.startswith("test keeps 0 of its 40 'frac'") and "kept in another split" in w
               and "--split regroup" in w for w in warnings), warnings


def test_a_layout_without_a_test_folder_is_not_told_test_has_only_0_images():
    rows = [(f"{('train', 'train', 'val')[g % 3]}/{('frac', 'ok')[g % 2]}/g{g}.png", ("frac", "ok")[g % 2],
             ("train", "train", "val")[g % 3], g) for g in range(120)]
    warnings = split_report(assign_splits(table(rows), "keep"), "keep")["warnings"]
    assert not any("has only 0" in w for w in warnings), warnings
    assert [w for w in warnings if "test" in w] == [
        "the layout has no test folder, so the curated set has no test split: "
        "--split regroup makes train, val and test from whole groups."]


def test_label_mismatch_only_where_the_folder_is_one_of_the_csvs_labels(tmp_path):
    root = tmp_path / "root"
    for name in ("images/a.png", "images/b.png", "benign/c.png", "malignant/d.png"):
        save(root / name, radiograph(len(name) + ord(name[-5])))
    csv = tmp_path / "labels.csv"  # the CSV's vocabulary: benign / malignant; 'images' is no label
    csv.write_text("filename,label\na.png,benign\nb.png,malignant\nc.png,malignant\nd.png,Malignant\n")
    flags = scan(root, labels_csv=csv).set_index("path")["label_mismatch"].to_dict()
    assert flags == {"images/a.png": False, "images/b.png": False, "benign/c.png": True, "malignant/d.png": False}


def help_text(command: str) -> str:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", ["audit", "hash", "dups", "orient", "manifest", "run", "report", "verify",
                                     "export", "train", "compare", "demo"])
def test_help_shows_no_type_after_a_flag_and_lists_as_a_b(command):
    text = help_text(command)
    assert "<bool>" not in text and "list[" not in text
    for flag in ("--help", "--quiet", "--json", "--keep-copies", "--deterministic", "--bf16"):
        row = next((line for line in text.splitlines() if re.search(rf"│ {flag}\b", line)), None)
        if row is not None:  # the flag's help follows its name(s), no placeholder between
            assert not re.search(rf"{flag}\s+(-\w\s+|--no-\S+\s+)?<", row), row
    if "--fail-on" in text:
        assert re.search(r"--fail-on\s+a,b\s", text)
