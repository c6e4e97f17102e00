"""Hostile input and faults (issue 16): each case is a small generated dataset; nothing may crash,
hang, write inside ROOT or lose a file. A case gives a per-file status or one clear line."""

from __future__ import annotations

import errno
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


# ---- 13. the pixel budget and the memory a decode near it takes ------------------------------------

BYTES_PER_PIXEL, SLACK_MB = 5, 100  # the stated bound: the decoded image (4 B/px at worst) + its greyscale + strips

_DECODE_IN_A_CHILD = r"""
import resource, struct, sys, zlib

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

path, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
row = b"\x00" + bytes((i * 7) % 256 for i in range(w * 4))  # RGBA rows of a ramp: small on disk
comp = zlib.compressobj(1)
idat = b"".join([comp.compress(row) for _ in range(h)] + [comp.flush()])
with open(path, "wb") as fh:
    fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0))
             + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
del idat, row
from curate.audit import audit_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = audit_file(path)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(result["status"], result["width"] * result["height"], (after - before) * 1024)
"""


def test_case13_a_decode_near_the_pixel_budget_stays_within_the_stated_memory(tmp_path):
    import subprocess
    import sys

    from curate.imageio import MAX_PIXELS

    assert MAX_PIXELS == 120_000_000  # the README's figure
    out = subprocess.run([sys.executable, "-c", _DECODE_IN_A_CHILD, str(tmp_path / "big.png"), "10000", "10000"],
                         capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    status, pixels, grew = out.stdout.split()
    assert (status, int(pixels)) == ("ok", 100_000_000), out.stderr  # 100 MP: under the budget, decoded
    assert int(grew) <= BYTES_PER_PIXEL * int(pixels) + SLACK_MB * 2**20, f"{int(grew) / 2**20:.0f} MB"


def test_case13_over_the_budget_is_refused_before_decoding(tmp_path):
    import struct
    import zlib

    from curate.audit import audit_file

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", 11000, 11000, 8, 6, 0, 0, 0)  # 121 MP, and hardly any pixel data
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b""))
                                        + chunk(b"IEND", b""))
    row = audit_file(tmp_path / "bomb.png")
    assert (row["status"], row["detail"]) == ("too-large", "11000x11000 is over 120,000,000 pixels")


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "I;16", "I", "F", "CMYK"])
def test_case13_strips_give_the_same_pixels_as_one_pass(monkeypatch, mode):
    import numpy as np
    from PIL import Image

    import curate.imageio as imageio

    rng = np.random.default_rng(3)
    if mode in ("I;16", "I", "F"):
        im = Image.fromarray(rng.integers(0, 60000, (37, 53)).astype(np.int32)).convert(mode)
    else:
        im = Image.fromarray(rng.integers(0, 256, (37, 53, 4), dtype=np.uint8), "RGBA").convert(mode)
    whole = imageio._to_grey(im)
    monkeypatch.setattr(imageio, "STRIP_PIXELS", 100)  # about two rows per strip
    strips = imageio._to_grey(im)
    assert np.array_equal(strips[0], whole[0]) and strips[1] == whole[1]


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_case13_exif_orientation_turns_the_pixels_once_as_pillow_does(tmp_path, suffix):
    import numpy as np
    from PIL import Image

    from curate.imageio import decode

    im = Image.fromarray(np.kron(np.arange(12, dtype=np.uint8).reshape(3, 4) * 20, np.ones((8, 8), np.uint8)))
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(tmp_path / f"o{suffix}", exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
        tagged = Image.open(tmp_path / f"o{suffix}")
        want = np.asarray(_turned(im, orientation))
        got = decode(tmp_path / f"o{suffix}")
        assert tagged.getexif().get(0x0112) == orientation
        assert got.exif_orientation == orientation and (got.height, got.width) == want.shape, (suffix, orientation)
        assert np.abs(got.pixels.astype(int) - want).max() <= (2 if suffix == ".jpg" else 0), (suffix, orientation)


def _turned(im, orientation):
    """What EXIF orientation N means, by Pillow's own table."""
    from PIL import Image

    method = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}.get(orientation)
    return im.transpose(method) if method is not None else im


# ---- kill -9 during run, then a re-run -------------------------------------------------------------


def test_kill_9_during_run_then_a_rerun_gives_the_uninterrupted_manifest(tmp_path):
    import subprocess
    import sys
    import time

    from tests.conftest import radiograph, save

    root = mk(tmp_path / "K")
    for i in range(4):
        save(root / "train" / ("fractured" if i % 2 else "not fractured") / f"g{i}.png", radiograph(i))
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}

    def run(workdir: Path, kill_when=None) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "run", str(root), "--workdir", str(workdir),
                                 "-q", "--workers", "1"], env=env, cwd=repo,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kill_when is not None:
            give_up = time.monotonic() + 120
            while not kill_when() and proc.poll() is None and time.monotonic() < give_up:
                time.sleep(0.01)
            proc.kill()  # SIGKILL: no clean-up of any kind
        return proc

    whole = run(tmp_path / "whole")
    assert whole.wait(timeout=300) == 0, whole.stderr.read()
    want = (tmp_path / "whole" / "manifests" / "K" / "manifest.csv").read_bytes()
    w = tmp_path / "killed"
    cache = w / ".cache" / "curate"
    for stage in (lambda: cache.is_dir() and any(cache.iterdir()),  # after the hashes, during dups or orient
                  lambda: (w / "manifests" / "K").is_dir()):  # while the manifests are being written
        assert run(w, stage).wait(timeout=60) == -signal.SIGKILL  # killed mid-run, not after it
    again = run(w)
    assert again.wait(timeout=300) == 0, again.stderr.read()
    assert (w / "manifests" / "K" / "manifest.csv").read_bytes() == want


# ---- 4. a ROOT named like a results folder; 9. a folder that cannot be listed; 11. no labels -------


def test_case04_root_named_reports_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    for name in ("reports", "manifests", ".cache"):
        root = mk(tmp_path / name)
        before = tree_digest(root)
        monkeypatch.chdir(tmp_path)  # the default workdir: the current folder, ROOT's parent
        assert "inside the dataset" in one_line_error(cli("run", name, "-q"))
        assert tree_digest(root) == before and sorted(p.name for p in root.iterdir()) == ["test", "train"]


def test_case09_a_folder_that_cannot_be_listed_gets_a_row(tmp_path, monkeypatch):
    root = mk(tmp_path / "L")
    locked = root / "train" / "fractured" / "locked"
    locked.mkdir()
    (locked / "hidden.jpg").write_bytes(b"x")
    real_scandir = os.scandir

    def deny(path="."):  # as root, chmod 000 still lists: refuse here instead
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", deny)
    result = cli("audit", root, "--workdir", tmp_path / "w", "-q", "--workers", "1")
    assert result.exit_code == 0, result.output
    audit = pd.read_csv(tmp_path / "w" / "manifests" / "L" / "audit.csv", dtype=str, keep_default_na=False)
    row = audit.set_index("path").loc["train/fractured/locked"]
    assert row["status"] == "unreadable" and "folder" in row["detail"]


def test_case11_root_without_label_folders_is_one_line_not_a_silent_empty_manifest(tmp_path):
    root = tmp_path / "M"
    root.mkdir()
    for name in ("IMG0000144.jpg", "IMG0000190.jpg"):
        shutil.copyfile(SAMPLE / "fractured" / name, root / name)
    for command in ("run", "manifest"):
        line = one_line_error(cli(command, root, "--workdir", tmp_path / "w", "-q", "--workers", "1"))
        assert "none of the 2 images has a label" in line


# ---- 14. labels-CSV rows that conflict, match nothing, or match only by file name ------------------


def test_case14_labels_csv_oddities_are_each_one_warning(tmp_path):
    root = mk(tmp_path / "N")
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\ntrain/fractured/IMG0000144.jpg,a\ntrain/fractured/IMG0000144.jpg,b\n"
                      "nowhere/zzz.jpg,a\nelsewhere/IMG0000190.jpg,c\n")
    result = cli("audit", root, "--workdir", tmp_path / "w", "--labels-csv", labels, "-q", "--workers", "1")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert any("with different labels" in w and "IMG0000144.jpg" in w for w in warnings)
    assert any("match no file under ROOT" in w and "nowhere/zzz.jpg" in w for w in warnings)
    assert any("by file name only" in w and "elsewhere/IMG0000190.jpg" in w for w in warnings)
