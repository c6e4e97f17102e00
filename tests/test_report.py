"""The report: one self-contained HTML page (and a Markdown twin) a reviewer can read.

Each test builds a tiny dataset in tmp_path (generated images, a broken file, a hostile file
name) and a hand-made table with the columns of docs/TABLE.md, so the report is tested on its
own, without running the other stages.
"""

from __future__ import annotations

import base64
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from curate.errors import InputError
from curate.manifest import to_csv_text
from curate.report import leakage_matrix, render_report, report_from_disk, summary_from_table

XSS = "<img src=x onerror=alert(1)>.jpg"
XSS_LABEL = "<script>alert(2)</script>"


def radiograph(seed: int, size=(96, 64)) -> Image.Image:
    """A dark frame with a few bright 'bones': different seeds give different images."""
    rng = np.random.default_rng(seed)
    im = Image.new("L", size, 10)
    draw = ImageDraw.Draw(im)
    for _ in range(4):
        x0, y0 = rng.integers(0, size[0] - 20), rng.integers(0, size[1] - 20)
        draw.ellipse([x0, y0, x0 + rng.integers(8, 30), y0 + rng.integers(8, 40)], fill=int(rng.integers(120, 250)))
    return im


def row(path, label, orig_split, group, **cols) -> dict:
    base = dict(path=path, label=label, orig_split=orig_split, split=orig_split, keep=True, reason="", group=group,
                sha256=f"{group:064x}", rotation=0, status="ok", detail="", flags="", representative=True,
                relation="representative", size=1234)
    base.update(cols)
    return base


@pytest.fixture
def dataset(tmp_path):
    """ROOT with 8 images, a leaked rotated copy, a label conflict, a corrupt file, a text file,
    a skewed scan and a file with a hostile name; returns (root, table, summary)."""
    root = tmp_path / "xrays"
    rows = []
    for i in range(8):
        split = ("train", "train", "train", "train", "val", "val", "test", "test")[i]
        label = ("fracture", "normal")[i % 2]
        path = f"{split}/{label}/img{i}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        radiograph(i).save(root / path)
        rows.append(row(path, label, split, group=i))
    # group 0: a rotated copy found in test (leak), dropped
    radiograph(0).rotate(90, expand=True).save(root / "test/fracture/copy_of_img0.png")
    rows.append(row("test/fracture/copy_of_img0.png", "fracture", "test", 0, keep=False, split="", reason="leak",
                    representative=False, relation="rotated 90", dup_angle=270))
    # group 1: the same radiograph under another label (conflict), both dropped
    radiograph(1).save(root / "train/fracture/also_img1.png")
    rows[1].update(keep=False, split="", reason="label-conflict")
    rows.append(row("train/fracture/also_img1.png", "fracture", "train", 1, keep=False, split="",
                    reason="label-conflict", representative=False, relation="exact"))
    # a scan rotated by 17 degrees that orient wants straightened
    radiograph(20).rotate(-17).save(root / "train/normal/skewed.png")
    rows.append(row("train/normal/skewed.png", "normal", "train", 20, rotation=17, orient_source="skew",
                    orient_confidence=0.9))
    # broken files keep their rows
    (root / "train/fracture/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    rows.append(row("train/fracture/broken.png", "fracture", "train", 30, keep=False, split="", reason="corrupt",
                    status="corrupt", detail="PNG header but undecodable data"))
    (root / "train/notes.txt").write_text("not an image")
    rows.append(row("train/notes.txt", "", "train", 31, keep=False, split="", reason="not-image", status="not-image",
                    detail="text or HTML, not an image"))
    # a hostile name (and label) in a duplicate group, flagged as odd
    (root / "train" / XSS_LABEL.replace("/", "_")).mkdir(parents=True)
    hostile = f"train/{XSS_LABEL.replace('/', '_')}/{XSS}"
    radiograph(2).save(root / hostile, format="PNG")
    rows.append(row(hostile, XSS_LABEL, "train", 2, keep=False, split="", reason="duplicate", representative=False,
                    relation="re-encoded", flags="ext-mismatch"))
    table = pd.DataFrame(rows)
    summary = {"files": 1301, "images_ok": 1297, "corrupt": 3, "not_images": 1, "exact_duplicate_groups": 17,
               "near_duplicate_groups": 23, "duplicates_removed": 45, "leaked_files": 67, "label_conflicts": 8,
               "reoriented": 9, "residual_leaks": 0, "seconds": 101.5}
    return root, table, summary


class Tree(HTMLParser):
    """Start tags with their attributes, and the text inside each element with an id."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text_by_id: dict[str, str] = {}
        self._open: list[str | None] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag not in ("img", "meta", "br", "input", "link"):
            self._open.append(attrs.get("id"))
            if attrs.get("id"):
                self.text_by_id[attrs["id"]] = ""

    def handle_endtag(self, tag):
        if tag not in ("img", "meta", "br", "input", "link") and self._open:
            self._open.pop()

    def handle_data(self, data):
        self.text.append(data)
        for ident in self._open:
            if ident:
                self.text_by_id[ident] += data


def parse(path: Path) -> Tree:
    tree = Tree()
    tree.feed(path.read_text(encoding="utf-8"))
    tree.close()
    return tree


def test_report_parses_and_shows_every_summary_count(dataset, tmp_path):
    root, table, summary = dataset
    out = render_report(table, root, summary, out_dir=tmp_path / "out")

    assert set(out) == {"html", "markdown"}  # summary.json belongs to the caller unless asked for
    tree = parse(out["html"])
    assert tree.tags[0][0] == "html"
    ids = {attrs.get("id") for _, attrs in tree.tags}
    for section in ("overview", "classes", "leakage", "duplicates", "conflicts", "orientation", "broken", "sample"):
        assert section in ids
    assert "compare" not in ids  # no compare.json, no section
    # every count of summary.json is on its card, formatted for people
    assert "1,301" in tree.text_by_id["sum-files"]
    assert "1,297" in tree.text_by_id["sum-images_ok"]
    for key in ("corrupt", "not_images", "exact_duplicate_groups", "near_duplicate_groups", "duplicates_removed",
                "leaked_files", "label_conflicts", "reoriented", "residual_leaks"):
        assert str(summary[key]) in tree.text_by_id[f"sum-{key}"], key
    assert "101.5" in tree.text_by_id["sum-seconds"]


def test_report_is_self_contained(dataset, tmp_path):
    root, table, summary = dataset
    tree = parse(render_report(table, root, summary, out_dir=tmp_path)["html"])
    images = [attrs["src"] for tag, attrs in tree.tags if tag == "img"]
    assert images and all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert not [t for t, a in tree.tags if t in ("script", "link", "iframe", "object")]
    assert any(t == "style" for t, _ in tree.tags)  # the CSS is inline


def test_hostile_file_name_and_label_render_inert(dataset, tmp_path):
    root, table, summary = dataset
    out = render_report(table, root, summary, out_dir=tmp_path)
    tree = parse(out["html"])

    # no element was made from the name: every img is one of ours, no tag carries an event handler
    assert not [a for t, a in tree.tags if t == "img" and (a.get("src") == "x" or "onerror" in a)]
    assert not [(t, a) for t, a in tree.tags for k in a if k.startswith("on")]
    assert not [t for t, _ in tree.tags if t == "script"]
    text = "".join(tree.text)
    assert XSS in text and XSS_LABEL in text  # shown to the reader as text
    md = out["markdown"].read_text(encoding="utf-8")
    assert "<img" not in md and "<script" not in md
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in md


def test_leakage_matrix_counts_groups_and_files_per_pair_of_splits():
    table = pd.DataFrame([
        row("a1", "x", "train", 1), row("a2", "x", "test", 1),  # train/test
        row("b1", "x", "train", 2), row("b2", "x", "val", 2), row("b3", "x", "val", 2),  # train/val + in val
        row("c1", "x", "test", 3), row("c2", "x", "test", 3),  # inside test only
        row("d1", "x", "train", 4),
        row("e1", "x", "train", 5), row("e2", "x", "test", 5, status="corrupt"),  # undecodable: not counted
    ])
    from curate.report.render import _prepare

    m = leakage_matrix(_prepare(table), "orig_split")
    assert m["splits"] == ["train", "val", "test"]
    assert m["groups"][("train", "test")] == m["groups"][("test", "train")] == 1
    assert m["files"][("train", "test")] == 2
    assert m["groups"][("train", "val")] == 1 and m["files"][("train", "val")] == 3
    assert m["groups"][("val", "test")] == 0
    assert m["groups"][("val", "val")] == 1 and m["files"][("val", "val")] == 2
    assert m["groups"][("test", "test")] == 1 and m["groups"][("train", "train")] == 0


def test_summary_from_table_when_summary_json_is_missing(dataset):
    _, table, _ = dataset
    s = summary_from_table(table)
    assert s["files"] == len(table) == 14
    assert s["images_ok"] == 12 and s["corrupt"] == 1 and s["not_images"] == 1
    assert s["leaked_files"] == 1  # the test copy of a train image
    assert s["label_conflicts"] == 2  # img1 under two labels; img2 under "fracture" and the hostile label
    assert s["reoriented"] == 1
    assert s["duplicates_removed"] == 2 and s["residual_leaks"] == 0


def _data_uri_size(src: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size


def test_orientation_fix_shows_the_image_before_and_after_rotation(tmp_path):
    root = tmp_path / "root"
    (root / "train" / "a").mkdir(parents=True)
    radiograph(3, size=(80, 40)).save(root / "train/a/sideways.png")
    radiograph(4).rotate(17).save(root / "train/a/skewed.png")
    table = pd.DataFrame([row("train/a/sideways.png", "a", "train", 0, rotation=90, orient_source="group"),
                          row("train/a/skewed.png", "a", "train", 1, rotation=343, orient_source="skew")])
    html = render_report(table, root, {}, out_dir=tmp_path / "out", thumb_px=80)["html"].read_text()
    section = html.split('id="orientation"')[1].split("</section>")[0]
    tree = Tree()
    tree.feed(section)
    # pairs are sorted by path: sideways first, then skewed
    before, after = [a["src"] for t, a in tree.tags if t == "img"][:2]
    assert _data_uri_size(before) == (80, 40)
    assert _data_uri_size(after) == (40, 80)  # turned a quarter
    assert "turn 90° counter-clockwise" in section
    assert "turn 17° clockwise" in section  # 343° CCW, said the short way round


def test_turns_by_exif_group_and_skew_are_shown_with_their_source_and_flagged_ones_apart(tmp_path):
    """A kept image turned by its EXIF tag shows as stored and as used; a dropped copy's turn is
    not listed; a flagged image is shown apart, as found."""
    root = tmp_path / "root"
    (root / "train" / "a").mkdir(parents=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned: the loader turns it 90 degrees clockwise
    radiograph(5, size=(80, 40)).save(root / "train/a/tagged.jpg", exif=exif)
    radiograph(6).save(root / "train/a/copy.png")
    radiograph(7).save(root / "train/a/unsure.png")
    table = pd.DataFrame([
        row("train/a/tagged.jpg", "a", "train", 0, exif_orientation=6, orient_source="exif", orient_confidence=1.0),
        row("train/a/copy.png", "a", "train", 1, keep=False, reason="duplicate", rotation=90, orient_source="group"),
        row("train/a/unsure.png", "a", "train", 2, orient_flag="low-confidence", orient_confidence=0.55)])
    html = render_report(table, root, {}, out_dir=tmp_path / "out", thumb_px=80)["html"].read_text()
    section = html.split('id="orientation"')[1].split("</section>")[0]
    fixes, flagged = section.split("Flagged, left as found")
    tree = Tree()
    tree.feed(fixes)
    before, after = [a["src"] for t, a in tree.tags if t == "img"]
    assert _data_uri_size(before) == (80, 40) and _data_uri_size(after) == (40, 80)
    assert "from exif" in fixes and "confidence 1.00" in fixes and "copy.png" not in section
    assert "1 kept image turned upright (1 by their EXIF tag)" in fixes
    assert "unsure.png" in flagged and "low-confidence, confidence 0.55" in flagged


def test_undecodable_or_missing_images_get_placeholders(dataset, tmp_path):
    root, table, summary = dataset
    # the corrupt file sits in a duplicate group, and one image has vanished since the scan
    table.loc[table["path"] == "train/fracture/broken.png", "group"] = 3
    (root / "train/normal/img3.png").unlink()
    html = render_report(table, root, summary, out_dir=tmp_path)["html"].read_text()
    assert "cannot decode" in html and "no preview" in html
    # and without a ROOT at all the report still renders, all placeholders
    html = render_report(table, None, summary, out_dir=tmp_path / "no_root")["html"].read_text()
    assert "data:image" not in html and "Duplicate groups" in html


def test_big_dataset_is_capped_and_stays_under_20_mb(tmp_path):
    """5,000 files, 400 duplicate groups of 15 noisy images, 1,000 broken files: the page shows
    the first of each with 'N more', inlines thumbnails up to a byte budget, and stays small."""
    root = tmp_path / "root"
    (root / "train").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(60):  # noise compresses badly: the worst case for inline thumbnails
        Image.fromarray(rng.integers(0, 255, (300, 300), dtype=np.uint8)).save(root / f"train/n{i}.png")
    rows = []
    for g in range(400):
        for k in range(15):
            split = ("train", "val", "test")[k % 3]
            rows.append(row(f"train/n{(g + k) % 60}.png", f"class{g % 3}", split, g, representative=k == 0,
                            relation="representative" if k == 0 else "re-encoded", rotation=90 * (k % 2)))
    for i in range(1000):
        rows.append(row(f"train/broken{i}.jpg", "class0", "train", 10_000 + i, status="corrupt", keep=False,
                        split="", reason="corrupt", detail="truncated"))
    table = pd.DataFrame(rows)
    out = render_report(table, root, summary_from_table(table), out_dir=tmp_path / "out", thumb_px=256)

    size = out["html"].stat().st_size
    assert size < 20_000_000
    html = out["html"].read_text()
    assert "340 more groups not shown (showing 60 of 400)" in html
    assert "+3 more" in html  # group strips stop at 12 thumbnails
    assert "not shown (showing 40 of 1,000)" in html
    assert "size limit" in html  # the byte budget, not luck, kept it small
    assert out["markdown"].stat().st_size < 1_000_000


def test_markdown_has_the_same_sections_without_images(dataset, tmp_path):
    root, table, summary = dataset
    out = render_report(table, root, summary, out_dir=tmp_path)
    html_titles = [a for a in out["html"].read_text().split("<h2>")[1:]]
    html_titles = [t.split("</h2>")[0] for t in html_titles]
    md = out["markdown"].read_text()
    md_titles = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert md_titles == html_titles
    assert "data:" not in md and "](" not in md  # no images, no links
    assert "| 1,301 |" in md.replace("| `files` ", "")  # the counts, as a table


def _write_run(tmp_path, root, table, summary, compare=None) -> Path:
    """What `curate run` leaves behind, as INTERFACE.md describes it."""
    work = tmp_path / "work"
    (work / "manifests/xrays").mkdir(parents=True)
    (work / "reports/xrays").mkdir(parents=True)
    (work / "manifests/xrays/manifest.csv").write_text(to_csv_text(table))
    provenance = {"root": str(root), "version": "0.1.0", "manifest_sha256": "ab" * 32,
                  "warnings": ["test keeps 1 of its 3 'fracture' images: use --split regroup."]}
    (work / "manifests/xrays/manifest.json").write_text(json.dumps(provenance))
    (work / "reports/xrays/summary.json").write_text(json.dumps(summary))
    if compare:
        (work / "reports/xrays/compare.json").write_text(json.dumps(compare))
    return work


def metrics(acc, auc):
    """METRICS as compare.json holds them; auc None = could not be computed (one class only)."""
    return {"n": 40, "n_pos": 20, "n_neg": 20, "accuracy": acc, "accuracy_ci": [acc - 0.1, min(1.0, acc + 0.05)],
            "balanced_accuracy": acc, "balanced_accuracy_ci": [acc - 0.1, min(1.0, acc + 0.05)],
            "auc": auc, "auc_ci": None if auc is None else [auc - 0.1, min(1.0, auc + 0.05)]}


def test_report_from_disk_reads_the_manifest_summary_and_compare(dataset, tmp_path):
    root, table, summary = dataset
    compare = {"settings": {"model": "seed-cnn", "epochs": 3},
               "naive": {"on_naive_test": metrics(0.95, 0.98), "on_clean_test": None,
                         "naive_test_breakdown": {"leaked": metrics(1.0, None), "clean": metrics(0.7, 0.75)}},
               "curated": {"on_curated_test": metrics(0.72, 0.8), "on_clean_test": None},
               "inflation": {"accuracy": 0.23, "accuracy_ci": [0.1, 0.35], "auc": 0.18, "auc_ci": [0.05, 0.3]}}
    work = _write_run(tmp_path, root, table, summary, compare)

    out = report_from_disk("xrays", work)

    assert out["html"] == work / "reports/xrays/report.html"
    tree = parse(out["html"])
    assert "1,301" in tree.text_by_id["sum-files"]  # summary.json, not recounted
    compare_text = tree.text_by_id["compare"]
    assert "0.950 [0.850, 1.000]" in compare_text  # naive accuracy with its interval
    assert "+0.230 [0.100, 0.350]" in compare_text  # inflation with its interval
    assert any(t == "svg" for t, _ in tree.tags)
    assert any(a.get("src", "").startswith("data:image/jpeg") for t, a in tree.tags if t == "img")  # found ROOT
    # the kept/dropped booleans came back from "true"/"false"
    assert "dropped: leak" in tree.text_by_id["duplicates"]
    # manifest.json's warnings head the report, its provenance closes it
    assert "test keeps 1 of its 3 'fracture' images" in tree.text_by_id["overview"]
    assert "ab" * 32 in tree.text_by_id["provenance"]


def test_report_from_disk_without_a_manifest_says_what_to_run(tmp_path):
    with pytest.raises(InputError, match="curate run"):
        report_from_disk("nothing", tmp_path)


def test_summary_json_is_written_only_when_asked(dataset, tmp_path):
    root, table, summary = dataset
    out = render_report(table, root, summary, out_dir=tmp_path, write_summary=True)
    assert json.loads(out["summary"].read_text()) == summary


def test_cli_report_renders_what_the_run_wrote(dataset, tmp_path):
    from typer.testing import CliRunner

    from curate.cli import app

    root, table, summary = dataset
    work = _write_run(tmp_path, root, table, summary)
    result = CliRunner().invoke(app, ["report", str(root), "--workdir", str(work), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["html"] == str(work / "reports/xrays/report.html")
    assert Path(written["markdown"]).exists() and written["html_bytes"] > 1000


def test_cli_report_before_any_run_is_one_clear_error(dataset, tmp_path):
    from typer.testing import CliRunner

    from curate.cli import app

    root, _, _ = dataset
    result = CliRunner().invoke(app, ["report", str(root), "--workdir", str(tmp_path / "empty")])
    assert result.exit_code == 2
    assert "no manifest; run `curate run ROOT`" in result.output
    assert "Traceback" not in result.output


def test_many_classes_are_summed_as_other_in_the_chart(tmp_path):
    table = pd.DataFrame([row(f"train/c{i}/x{k}.png", f"class{i:02d}", "train", 100 * i + k)
                          for i in range(15) for k in range(i + 1)])
    html = render_report(table, None, {}, out_dir=tmp_path)["html"].read_text()
    legend = html.split('class="legend">')[1].split("</div>")[0]
    assert legend.count("<span>") == 10  # the nine biggest classes, then "other"
    assert "class14" in legend and "class00" not in legend and legend.endswith("other</span>")
