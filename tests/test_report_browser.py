"""A real browser opens report.html from disk: no console errors, and it draws something.

Headless Chromium (Debian's `chromium`; .ci/run installs it). Any console line counts as an
error: the report has no JavaScript, so the only messages possible are failures such as a
blocked outside resource or a script that should not be there.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw

from curate.report import render_report

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def make_report(tmp_path):
    root = tmp_path / "root"
    rows = []
    for i, (split, label) in enumerate([("train", "fracture"), ("train", "normal"), ("val", "fracture"),
                                        ("test", "normal"), ("test", "fracture")]):
        path = f"{split}/{label}/img{i}.png"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        im = Image.new("L", (90, 120), 15)
        ImageDraw.Draw(im).rectangle([20 + i * 5, 10, 50 + i * 5, 110], fill=200)
        im.save(root / path)
        rows.append(dict(path=path, label=label, orig_split=split, split=split, keep=True, reason="", group=i,
                         representative=True, relation="representative", status="ok", flags="", rotation=0))
    hostile = "train/fracture/<img src=x onerror=alert(1)>.jpg"
    shutil.copy(root / rows[0]["path"], root / hostile)
    rows.append(dict(rows[0], path=hostile, orig_split="test", keep=False, split="", reason="leak",
                     representative=False, relation="exact"))
    (root / "train/fracture/broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rows.append(dict(rows[0], path="train/fracture/broken.png", group=99, status="corrupt", keep=False, split="",
                     reason="corrupt", detail="PNG header but undecodable data"))
    summary = {"files": 7, "images_ok": 6, "corrupt": 1, "not_images": 0, "exact_duplicate_groups": 1,
               "near_duplicate_groups": 0, "duplicates_removed": 1, "leaked_files": 1, "label_conflicts": 0,
               "reoriented": 0, "residual_leaks": 0, "seconds": 0.5}
    return render_report(pd.DataFrame(rows), root, summary, out_dir=tmp_path / "out")["html"]


def test_report_opens_in_headless_chromium_without_console_errors(tmp_path):
    browser = find_browser()
    if browser is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium): cannot run the browser check")
    html = make_report(tmp_path)
    shot = tmp_path / "shot.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: anything fetched from outside would fail
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
           "--window-size=1200,1600", f"--screenshot={shot}", html.as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    assert shot.exists(), f"no screenshot (exit {done.returncode}):\n{done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if re.search(r":CONSOLE|Uncaught", line)]
    assert console == []
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20  # text, cards and thumbnails, not a blank page
    # the dark header band is drawn: the page's CSS was applied
    assert pixels[:40].mean() < 80 < pixels[200:].mean()
