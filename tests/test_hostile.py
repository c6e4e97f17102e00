"""Hostile input and faults (issue 16): each case is a small generated dataset; nothing may crash,
hang, write inside ROOT or lose a file. A case gives a per-file status or one clear line."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from curate.cli import app
from curate.manifest import read_manifest
from tests.conftest import tree_digest

SAMPLE = Path(__file__).resolve().parents[1] / "curate" / "sample"
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})


def mk(root: Path) -> Path:
    """The issue's small set: two fractured train images, one 'not fractured' test image."""
    for rel, src in (("train/fractured/IMG0000144.jpg", "fractured/IMG0000144.jpg"),
                     ("train/fractured/IMG0000190.jpg", "fractured/IMG0000190.jpg"),
                     ("test/not fractured/IMG0000036.jpg", "not_fractured/IMG0000036.jpg")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SAMPLE / src, root / rel)
    return root


class Hung(BaseException):
    """Not an OSError (as TimeoutError is), so no per-file handler can swallow it."""


@contextmanager
def deadline(seconds: int):
    """Fail (rather than hang the suite) when the block takes longer than `seconds`."""
    def stop(signum, frame):
        raise Hung(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def one_line_error(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: "), result.stderr
    return errors[0]


def rows(workdir: Path, name: str, csv: str = "manifest.csv") -> pd.DataFrame:
    return read_manifest(workdir / "manifests" / name / csv)


# ---- 1. a file name that is not valid UTF-8 ------------------------------------------------------


def test_case01_name_not_utf8_gets_a_row_and_round_trips(tmp_path):
    root = mk(tmp_path / "A")
    bad = os.fsdecode(b"caf\xe9.jpg")  # what Python makes of the raw bytes
    shutil.copyfile(SAMPLE / "fractured" / "IMG0000261.jpg", root / "train" / "fractured" / bad)
    before = tree_digest(root)
    result = cli("run", root, "--workdir", tmp_path / "w", "-q", "--workers", "1")
    assert result.exit_code == 0, result.output
    text = (tmp_path / "w" / "manifests" / "A" / "manifest.csv").read_bytes().decode("utf-8")  # valid UTF-8
    assert "train/fractured/caf\\xe9.jpg" in text
    table = rows(tmp_path / "w", "A").set_index("path")
    row = table.loc[f"train/fractured/{bad}"]  # read back as the name on disk
    assert row["status"] == "ok" and "name-not-utf8" in row["flags"] and row["keep"]
    assert cli("verify", tmp_path / "w" / "manifests" / "A" / "manifest.csv").exit_code == 0
    assert cli("export", tmp_path / "w" / "manifests" / "A" / "manifest.csv", tmp_path / "out").exit_code == 0
    assert len(pd.read_csv(tmp_path / "out" / "export.csv")) == 4
    assert tree_digest(root) == before


# ---- 2. link loops; 3. FIFOs and devices -----------------------------------------------------------


def test_case02_link_loops_are_one_unreadable_row_each(tmp_path):
    root = mk(tmp_path / "B")
    (root / "train" / "fractured" / "l.jpg").symlink_to("l.jpg")  # a link to itself
    (root / "train" / "fractured" / "up").symlink_to("..")  # a folder link back up the tree
    result = cli("run", root, "--workdir", tmp_path / "w", "-q", "--workers", "1")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "w", "B").set_index("path")
    assert len(table) == 5  # three images, the loop, the folder link: each once
    assert (table.loc["train/fractured/l.jpg", "status"], table.loc["train/fractured/l.jpg", "detail"]) == \
        ("unreadable", "link loop")
    assert table.loc["train/fractured/up", "status"] == "unreadable"


def test_case03_fifo_and_device_are_never_opened(tmp_path):
    root = mk(tmp_path / "C")
    os.mkfifo(root / "train" / "fractured" / "p.jpg")  # opening it for reading would block forever
    (root / "train" / "fractured" / "z.jpg").symlink_to("/dev/zero")  # reading it never ends
    with deadline(60):
        result = cli("run", root, "--workdir", tmp_path / "w", "-q", "--workers", "1")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "w", "C").set_index("path")
    assert table.loc["train/fractured/p.jpg", "detail"] == "a FIFO, not a regular file: never opened"
    assert table.loc["train/fractured/z.jpg", "detail"] == "a device, not a regular file: never opened"
    assert "outside-root" in table.loc["train/fractured/z.jpg", "flags"]
    assert not table.loc[["train/fractured/p.jpg", "train/fractured/z.jpg"], "keep"].any()


# ---- 5. text the terminal library would read as markup, and escape characters ---------------------


def test_case05_labels_and_paths_are_shown_as_they_are(tmp_path):
    root = mk(tmp_path / "D")
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\ntrain/fractured/IMG0000144.jpg,[/x]\ntrain/fractured/IMG0000190.jpg,[red]y\n")
    for flags in ((), ("-q",), ("--json",)):
        result = cli("run", root, "--workdir", tmp_path / "w", "--labels-csv", labels, "--workers", "1", *flags)
        assert result.exit_code == 0, result.output
    assert "[/x]" in set(rows(tmp_path / "w", "D")["label"])
    shown = cli("run", root, "--workdir", tmp_path / "w", "--labels-csv", labels, "--workers", "1").output
    assert "[/x]" in shown and "[red]y" in shown
    assert "no[/x]: no such folder" in one_line_error(cli("audit", tmp_path / "no[/x]"))
    line = one_line_error(cli("audit", tmp_path / "esc\x1b]0;owned\x07"))
    assert "\x1b" not in line and "\x07" not in line and "esc\\x1b]0;owned\\x07" in line


# ---- 7. export: DEST a file, a source gone or changed, a NUL byte, a very long label --------------


@pytest.fixture
def exported_run(tmp_path):
    root = mk(tmp_path / "E")
    assert cli("run", root, "--workdir", tmp_path / "w", "-q", "--workers", "1").exit_code == 0
    return root, tmp_path / "w" / "manifests" / "E" / "manifest.csv"


def _edit_manifest(csv: Path, old: str, new: str) -> None:
    csv.write_text(csv.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")


@pytest.mark.parametrize("case, damage, code, refused", [
    ("06 replaced", lambda root, csv: shutil.copyfile(SAMPLE / "fractured" / "IMG0000261.jpg",
                                                     root / "train/fractured/IMG0000144.jpg"),
     1, "train/fractured/IMG0000144.jpg: changed since the manifest (sha256 differs)"),
    ("07 deleted", lambda root, csv: (root / "train/fractured/IMG0000190.jpg").unlink(),
     1, "train/fractured/IMG0000190.jpg: No such file or directory"),
    ("07 long label", lambda root, csv: _edit_manifest(csv, ",fractured,train,train,true", f",{'x' * 300},train,train,true"),
     0, None),
])
def test_case06_07_export_copies_the_manifests_bytes_or_refuses_the_file(exported_run, tmp_path, case, damage, code, refused):
    root, csv = exported_run
    damage(root, csv)
    result = cli("export", csv, tmp_path / "out")
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    if refused:
        assert f"refused: {refused}" in result.stderr
    log = pd.read_csv(tmp_path / "out" / "export.csv", dtype=str, keep_default_na=False)
    sha = {p: s for p, s in zip(read_manifest(csv)["path"], read_manifest(csv)["sha256"])}
    for file, path in zip(log["file"], log["path"]):  # every exported file holds the manifest's bytes
        assert tree_digest(tmp_path / "out")[file] == sha[path]
        assert all(len(part.encode()) <= 255 for part in file.split("/"))
    assert len(log) == 3 - (refused is not None)
    assert cli("export", csv, tmp_path / "again").exit_code == code  # nothing half-made blocks a re-run


@pytest.mark.parametrize("case, dest, edit, message", [
    ("07 DEST a file", "a-file", None, "is a file"),
    ("07 NUL byte", "out", ("train/fractured/IMG0000190.jpg", "train/fractured/IMG\x00190.jpg"), "holds a NUL byte"),
])
def test_case07_export_refuses_with_one_line(exported_run, tmp_path, case, dest, edit, message):
    root, csv = exported_run
    (tmp_path / "a-file").write_text("x")
    if edit:
        _edit_manifest(csv, *edit)
    assert message in one_line_error(cli("export", csv, tmp_path / dest))
    assert not any(p.name.startswith(".out.partial") for p in tmp_path.iterdir())


# ---- 10. a workdir that cannot be written ----------------------------------------------------------


def test_case10_unwritable_workdir_and_full_disk_are_one_line(tmp_path, monkeypatch):
    root = mk(tmp_path / "F")
    (tmp_path / "w").write_text("a file where the workdir should be")
    assert "Not a directory" in one_line_error(cli("run", root, "--workdir", tmp_path / "w" / "sub", "-q"))

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkstemp", full)
    assert "No space left on device" in one_line_error(cli("run", root, "--workdir", tmp_path / "w2", "-q", "--workers", "1"))


# ---- 15. usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["run", "x", "--bogus"], "Error: No such option: --bogus"),
    (["audit", "x", "--workers", "0"], "Error: Invalid value for '--workers'"),
])
def test_case15_usage_errors_are_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        app(args, prog_name="curate")
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


# ---- 12. labels a spreadsheet would run as formulas -----------------------------------------------


def test_case12_csv_outputs_neutralise_formulas_and_read_back_exactly(tmp_path):
    root = mk(tmp_path / "G")
    labels = tmp_path / "labels.csv"
    evil = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1+1)"]
    pd.DataFrame({"path": ["train/fractured/IMG0000144.jpg", "train/fractured/IMG0000190.jpg",
                           "test/not fractured/IMG0000036.jpg"], "label": evil}).to_csv(labels, index=False)
    result = cli("run", root, "--workdir", tmp_path / "w", "--labels-csv", labels, "-q", "--workers", "1")
    assert result.exit_code == 0, result.output
    out = tmp_path / "w" / "manifests" / "G"
    for csv in ("manifest.csv", "naive.csv", "audit.csv"):
        cells = pd.read_csv(out / csv, dtype=str, keep_default_na=False)["label"]
        assert set(cells) == {"'" + label for label in evil}, csv  # what a spreadsheet shows as text
    assert set(rows(tmp_path / "w", "G")["label"]) == set(evil)  # curate reads back the exact values
    assert cli("export", out / "manifest.csv", tmp_path / "out").exit_code == 0
    exported = pd.read_csv(tmp_path / "out" / "export.csv", dtype=str, keep_default_na=False)["label"]
    assert set(exported) <= {"'" + label for label in evil} and len(exported)


@pytest.mark.parametrize("cell, written", [
    ("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("'quoted", "''quoted"), ("-90", "-90"), ("+1.5", "+1.5"), ("fractured", "fractured"), ("", ""),
])
def test_case12_spreadsheet_guard_is_exactly_reversible(cell, written):
    from curate.safe_text import spreadsheet, unspreadsheet

    assert spreadsheet(cell) == written and unspreadsheet(written) == cell


# ---- 8. links leaving ROOT and tampered manifest paths ---------------------------------------------


def test_case08_links_out_of_root_are_flagged_and_never_shown(tmp_path):
    root = mk(tmp_path / "H")
    secret = tmp_path / "secret"
    secret.mkdir()
    shutil.copyfile(SAMPLE / "fractured" / "IMG0000261.jpg", secret / "s.jpg")
    (root / "train" / "fractured" / "out.jpg").symlink_to(secret / "s.jpg")
    (root / "train" / "fractured" / "passwd.jpg").symlink_to("/etc/passwd")
    result = cli("run", root, "--workdir", tmp_path / "w", "-q", "--workers", "1")
    assert result.exit_code == 0, result.output
    table = rows(tmp_path / "w", "H").set_index("path")
    for name in ("out.jpg", "passwd.jpg"):
        assert "outside-root" in table.loc[f"train/fractured/{name}", "flags"]
    from curate.report.render import Thumbs

    thumbs = Thumbs(root, 64)
    assert thumbs._encode("train/fractured/IMG0000144.jpg", 0) is not None
    for path in ("train/fractured/out.jpg", "../secret/s.jpg", str(secret / "s.jpg")):  # a link out, tampered paths
        assert thumbs._encode(path, 0) is None, path
    html = (tmp_path / "w" / "reports" / "H" / "report.html").read_text()
    assert 'alt="train/fractured/out.jpg"' not in html and 'alt="train/fractured/IMG0000144.jpg"' in html
