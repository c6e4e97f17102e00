"""How much leakage inflates a notebook's score, measured with grouped cross-validation.

Builds a messy set from FracAtlas bases (half fractured), runs `curate run` on it, then
`curate compare --folds K` for each model, and prints, per model: the naive model on its own
test split (and its leaked / clean images), the curated models out of fold (every kept
radiograph once), and the inflation with its 95% interval over groups. Prints what it
measured and how long each step took, with the load average.

    /work/venv/bin/python benchmarks/compare_folds.py --profile kaggle --bases 540 --seed 3 \\
        --work /tmp/cv-kaggle-3 --models seed-cnn,compact
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from curate.errors import ImageError
from curate.imageio import decode
from curate.messy import build_messy
import fracatlas  # noqa: E402  (benchmarks/fracatlas.py: where FracAtlas is)

FRACATLAS = fracatlas.FRACATLAS
METRICS = ("accuracy", "balanced_accuracy", "auc")


def bases(n: int, seed: int, fracatlas: Path) -> list[tuple[Path, str]]:
    """n FracAtlas images that decode, half fractured (as the public Kaggle sets are)."""
    rng = np.random.default_rng(seed)
    out = []
    for label, folder in (("fractured", "Fractured"), ("not fractured", "Non_fractured")):
        files = sorted((fracatlas / "images" / folder).glob("*.jpg"))
        want = n // 2 if label == "fractured" else n - n // 2
        picked = []
        for i in rng.permutation(len(files)):
            if len(picked) == want:
                break
            try:
                decode(files[i])
            except ImageError:
                continue  # FracAtlas holds a few truncated JPEGs
            picked.append((files[i], label))
        out += picked
    return out


def curate(*args: str) -> tuple[float, str]:
    """Run the CLI (this checkout first on the path); seconds and stdout."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "curate.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.exit(f"curate {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t, done.stdout


def cell(m: dict | None, k: str) -> str:
    if not m or m.get(k) is None:
        return "-"
    ci = m.get(f"{k}_ci")
    return f"{m[k]:+.3f} [{ci[0]:+.3f}, {ci[1]:+.3f}]" if m.get("signed") else (
        f"{m[k]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{m[k]:.3f}")


def table(result: dict) -> str:
    n, c = result["naive"], result["curated"]
    k = result["settings"]["folds"]
    rows = {
        "naive model on its own test": n["on_naive_test"],
        "  its leaked images": n["naive_test_breakdown"]["leaked"],
        "  its clean images": n["naive_test_breakdown"]["clean"],
        f"curated, out of fold ({k} folds)" if k else "curated model on its test": c["on_curated_test"],
        "inflation (naive - curated)": {**result["inflation"], "signed": True, "n": None},
    }
    head = f"| | n (fractured) groups | {' | '.join(METRICS)} |\n|---|---|{'---|' * len(METRICS)}\n"
    lines = []
    for name, m in rows.items():
        size = f"{m['n']} ({m['n_pos']}) {m.get('n_groups', '')}" if m.get("n") is not None else ""
        lines.append(f"| {name} | {size} | {' | '.join(cell(m, x) for x in METRICS)} |")
    zero = result["inflation"].get("excludes_zero", {})
    return head + "\n".join(lines) + "\ninterval excludes 0: " + ", ".join(f"{x} {zero.get(x)}" for x in METRICS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", help="curate.messy builder profile (default or kaggle)")
    ap.add_argument("--bases", type=int, default=540, help="FracAtlas radiographs to build from")
    ap.add_argument("--seed", type=int, default=3, help="builder seed (and base pick)")
    ap.add_argument("--work", type=Path, required=True, help="folder for the set, manifests and reports")
    ap.add_argument("--models", default="seed-cnn,compact")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--folds", type=int, default=5, help="0: the curated model on its own held-out test split")
    ap.add_argument("--curated-copies", default="all")
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                    help="a builder setting of the profile, e.g. median_files=2 (kaggle)")
    ap.add_argument("--fracatlas", type=Path, default=FRACATLAS, help="the FracAtlas folder")
    ap.add_argument("--extra", default="", help="more `curate compare` options, space-separated")
    args = ap.parse_args()

    dest, name = args.work / "set", f"{args.profile}-{args.seed}"
    if not dest.exists():
        t = time.perf_counter()
        options = {} if args.profile == "default" else {"profile": args.profile}
        for setting in args.settings:
            key, value = setting.split("=", 1)
            options[key] = float(value)
        truth = build_messy(bases(args.bases, args.seed, fracatlas.require(args.fracatlas)), dest, seed=args.seed, truth_path=args.work / "truth.csv",
                            **options)
        print(f"built {dest}: {len(truth)} files from {args.bases} radiographs in {time.perf_counter() - t:.0f} s",
              flush=True)
    manifests = args.work / "manifests" / name
    if not (manifests / "manifest.csv").is_file():
        secs, _ = curate("run", str(dest), "--workdir", str(args.work), "--name", name, "--quiet")
        print(f"curate run: {secs:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
    for model in args.models.split(","):
        load = os.getloadavg()[0]
        report = f"{name}-{model}-k{args.folds}"
        saved = args.work / "reports" / report / "compare.json"
        if saved.is_file():  # measured before: print it again rather than train again
            secs, result = float("nan"), json.loads(saved.read_text())
        else:
            secs, out = curate("compare", "--naive", str(manifests / "naive.csv"), "--curated",
                               str(manifests / "manifest.csv"), "--model", model, "--img-size", str(args.img_size),
                               "--epochs", str(args.epochs), *(["--folds", str(args.folds)] if args.folds else []),
                               "--curated-copies", args.curated_copies, "--workdir", str(args.work), "--name", report,
                               "--json", *args.extra.split())
            result = json.loads(out)
        counts = result["counts"]
        copies = counts["curated_copies"] if "curated_copies" in counts else counts["curated_train"]  # held out: what the curated model trained on
        print(f"\n## {args.profile} seed {args.seed}, {model}, {args.img_size} px, {args.epochs} epochs, "
              f"{f'{args.folds} folds' if args.folds else 'held-out test'}: "
              f"{'saved compare.json' if secs != secs else f'{secs:.0f} s'} "
              f"(load {load:.1f} at start, {os.getloadavg()[0]:.1f} at end)")
        print(f"naive train {counts['naive_train']['n']} files ({counts['naive_train']['groups']} groups); "
              f"curated test {counts['curated_test']['n']} ({counts['curated_test']['groups']} groups), "
              f"curated train {copies['n']}; epochs run {result['training']}")
        print(table(result), flush=True)


if __name__ == "__main__":
    main()
