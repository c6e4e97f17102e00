"""Shared fixtures: small generated images and datasets (no ../shared needed)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def radiograph(seed: int, size: tuple[int, int] = (96, 128)) -> np.ndarray:
    """A fake radiograph: dark background, a few bright blurred 'bones'. Different seeds differ."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = size
    img = np.zeros((h, w), np.float32)
    for _ in range(4):
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p2 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p1, p2, float(rng.uniform(120, 230)), int(rng.integers(4, 12)))
    img = cv2.GaussianBlur(img, (0, 0), 2.0) + rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def save(path: Path, pixels: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, **kwargs)
    return path


def tree_digest(root: Path) -> dict[str, str]:
    """path -> sha256 of every file under root: to prove a run changed nothing."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def split_dataset(tmp_path: Path) -> Path:
    """ROOT/<split>/<label>/ with two labels, a space in one, and a nested folder."""
    root = tmp_path / "xrays"
    n = 0
    for split in ("train", "val", "test"):
        for label in ("fractured", "not fractured"):
            for i in range(2):
                n += 1
                save(root / split / label / f"img{i}.png", radiograph(n))
    save(root / "train" / "fractured" / "hand" / "deep.png", radiograph(99))
    return root
