"""The trainer's import name: `curate.trainer`, in a checkout and in a built wheel, never `train`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

IMPORTS = ("import sys; from curate.trainer import train_manifest; import curate.trainer.compare; "
           "print(train_manifest.__module__, 'train' in sys.modules)")


def test_a_users_train_py_does_not_shadow_the_trainer(tmp_path):
    (tmp_path / "train.py").write_text("raise SystemExit('the user train.py was imported')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", IMPORTS], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["curate.trainer.fit", "False"]


def test_the_wheel_installs_the_trainer_as_curate_trainer(tmp_path):
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    for part in ("curate", "train"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / part, source / part)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
                           capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and "setuptools" in built.stderr and "No matching distribution" in built.stderr:
        pytest.skip("pip cannot fetch the build backend here (offline)")
    assert built.returncode == 0, built.stderr
    names = zipfile.ZipFile(next(tmp_path.glob("curate-*.whl"))).namelist()
    trainer = {n for n in names if n.startswith("curate/trainer/")}
    assert {f"curate/trainer/{p.name}" for p in (REPO / "train").glob("*.py")} == trainer
    assert not [n for n in names if n.startswith("train/")]
    # The wheel's curate.trainer is train/__init__.py itself, not the checkout's loader.
    with zipfile.ZipFile(next(tmp_path.glob("curate-*.whl"))) as wheel:
        assert wheel.read("curate/trainer/__init__.py") == (REPO / "train" / "__init__.py").read_bytes()
