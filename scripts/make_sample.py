"""Make the bundled sample (curate/sample/) from a FracAtlas copy.

    .venv/bin/python scripts/make_sample.py /work/shared/data/fracatlas curate/sample

Picks images per (class, body region) quota with a fixed seed, keeps only files that decode
fully, skips any that look like a copy of one already picked (so the sample's images are
distinct radiographs and the messy builder's ground truth holds), downscales to a longest
side of 256 px and saves greyscale JPEG (quality 90, no EXIF). Writes sample.csv beside them.
Re-running with the same FracAtlas copy gives the same files.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from curate.errors import ImageError  # noqa: E402
from curate.imageio import decode, fit  # noqa: E402

SEED = 20230521
LONGEST_SIDE = 256
QUALITY = 90
REGIONS = ["hand", "leg", "hip", "shoulder"]
# (fractured, region) -> how many to take. Hip and shoulder fractures are rare in FracAtlas (10 each).
QUOTAS = {
    (1, "hand"): 40, (1, "leg"): 40, (1, "hip"): 8, (1, "shoulder"): 8, (1, "mixed"): 14,
    (0, "hand"): 40, (0, "leg"): 40, (0, "hip"): 12, (0, "shoulder"): 12, (0, "mixed"): 16,
}
# Two images closer than this (phash bits, over all 8 rotations/flips) count as the same radiograph.
SAME_IMAGE_BITS = 6


def region_of(row: pd.Series) -> str:
    flags = [r for r in REGIONS if row[r] == 1]
    return flags[0] if len(flags) == 1 and row["mixed"] != 1 else "mixed"


def dihedral_hashes(pixels: np.ndarray) -> list[imagehash.ImageHash]:
    out = []
    for img in (pixels, np.fliplr(pixels)):
        for k in range(4):
            out.append(imagehash.phash(Image.fromarray(np.ascontiguousarray(np.rot90(img, k)))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fracatlas", type=Path)
    ap.add_argument("dest", type=Path)
    args = ap.parse_args()

    table = pd.read_csv(args.fracatlas / "dataset.csv")
    table["region"] = table.apply(region_of, axis=1)
    rng = np.random.default_rng(SEED)
    picked: list[dict] = []
    hashes: list[imagehash.ImageHash] = []
    skipped: dict[str, list[str]] = {"undecodable": [], "look-alike": []}
    for (fractured, region), quota in QUOTAS.items():
        pool = table[(table.fractured == fractured) & (table.region == region)].sort_values("image_id")
        order = rng.permutation(len(pool))
        taken = 0
        for i in order:
            if taken == quota:
                break
            row = pool.iloc[i]
            folder = "Fractured" if fractured else "Non_fractured"
            try:
                pixels = fit(decode(args.fracatlas / "images" / folder / row.image_id).pixels, LONGEST_SIDE)
            except ImageError:
                skipped["undecodable"].append(row.image_id)
                continue
            mine = imagehash.phash(Image.fromarray(pixels))
            if any(min(mine - h for h in hs) <= SAME_IMAGE_BITS for hs in hashes):
                skipped["look-alike"].append(row.image_id)
                continue
            hashes.append(dihedral_hashes(pixels))
            name = f"{'fractured' if fractured else 'not_fractured'}/{row.image_id}"
            out = args.dest / name
            out.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            Image.fromarray(pixels, "L").save(buf, "JPEG", quality=QUALITY, optimize=False)
            out.write_bytes(buf.getvalue())
            picked.append({
                "file": name, "fractured": int(fractured), "region": region,
                "frontal": int(row.frontal), "lateral": int(row.lateral), "oblique": int(row.oblique),
                "width": pixels.shape[1], "height": pixels.shape[0], "image_id": row.image_id,
            })
            taken += 1
        if taken < quota:
            raise SystemExit(f"only {taken} usable images for {(fractured, region)}, wanted {quota}")
    sample = pd.DataFrame(picked).sort_values("file")
    sample.to_csv(args.dest / "sample.csv", index=False)
    size = sum(p.stat().st_size for p in args.dest.rglob("*.jpg"))
    print(f"{len(sample)} images, {size / 1e6:.2f} MB; skipped {skipped}")
    print(sample.groupby(["fractured", "region"]).size().to_string())


if __name__ == "__main__":
    main()
