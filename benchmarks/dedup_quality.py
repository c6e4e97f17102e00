"""How well `curate dups` finds copies, against a messy set with a ground truth.

Builds a messy set from FracAtlas with `curate.messy.build_messy` (a seed and mix different
from the tests'), runs scan -> audit -> hash -> dups as `curate dups` does, and scores pairwise precision and recall against
the truth (a true pair = two files made from the same source image), overall and per kind of
copy; then plain imagehash pHash at Hamming 4, 8 and 10 on the same files, as pairs and as
groups (connected components), side by side. Prints tables; not a timed test.

    .venv/bin/python benchmarks/dedup_quality.py --bases 1500 --seed 11

`--set NAME=VALUE` (repeatable) overrides one of the dups stage's settings for the run (a constant
of curate.dedup, candidates, verify, original or traces: docs/dedup-constants.md), to measure
what a change costs or buys, e.g. `--set VERIFY_SIDE=160 --set RHASH_TOP=2`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.audit import audit  # noqa: E402
from curate.dedup import find_duplicates  # noqa: E402
from curate.errors import ImageError  # noqa: E402
from curate.imageio import decode  # noqa: E402
from curate.hashing import hash_images  # noqa: E402
from curate.index import HammingIndex  # noqa: E402
from curate.layout import scan  # noqa: E402
from curate.messy import build_messy, load_bases, read_truth, sample_dir  # noqa: E402
import fracatlas  # noqa: E402  (benchmarks/fracatlas.py: where FracAtlas is)

FRACATLAS = fracatlas.FRACATLAS
DEDUP_MODULES = ("dedup", "candidates", "verify", "original", "traces")  # where the dups stage keeps its settings
# A mix unlike the tests' (which use one copy of each kind): every kind, arbitrary angles heavier.
MIX = {"exact": 1, "reencode": 2, "resize": 2, "squash": 2, "tone": 2, "rotate": 2, "mirror": 2,
       "arbitrary": 4, "shift": 2, "zoom": 2, "mirror+rotate": 2, "arbitrary+reencode": 2,
       "mirror+arbitrary": 2}
# --profile: the builder's arguments. benchmark: the mix above, many copies; default: what
# `python -m curate.messy` builds (the builder's own mix and copy rate); kaggle: the Kaggle-style
# profile (chains of augmentation, byte copies; curate.messy_kaggle).
PROFILES = {"benchmark": {"copy_fraction": 0.45, "kinds": MIX}, "default": {}, "kaggle": {"profile": "kaggle"}}
# Files that are their source's original pixels (or a plain re-encode): what a group should keep.
PLAIN_KINDS = {"original", "exact", "reencode", "odd-png-as-jpg", "odd-png16", "odd-unicode-name"}


def pairs_of_groups(groups: dict) -> set[tuple[str, str]]:
    out = set()
    for members in groups.values():
        out.update(itertools.combinations(sorted(members), 2))
    return out


def score(pred: set, true: set) -> tuple[float, float, int, int]:
    hit = len(pred & true)
    return (hit / len(pred) if pred else 1.0), (hit / len(true) if true else 1.0), len(pred), len(true)


def components(paths: list[str], edges: set) -> dict:
    parent = {p: p for p in paths}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        parent[find(a)] = find(b)
    groups = defaultdict(list)
    for p in paths:
        groups[find(p)].append(p)
    return groups


def fragmented(table: pd.DataFrame, source: np.ndarray) -> None:
    """Print how many source radiographs (with 2+ readable files) end in more than one group:
    a fresh split can then put their fragments in train and in test."""
    readable = (table["status"] == "ok").to_numpy() if "status" in table else np.ones(len(table), bool)
    groups = defaultdict(set)
    files = defaultdict(int)
    for s, g, ok in zip(source, table["group"], readable):
        if s and ok:
            groups[s].add(g)
            files[s] += 1
    many = [s for s in groups if files[s] > 1]
    split = [s for s in many if len(groups[s]) > 1]
    worst = sorted(split, key=lambda s: -len(groups[s]))[:5]
    print(f"\nradiographs in more than one group: {len(split)} of {len(many)} with 2+ readable files "
          f"({len(split) / max(len(many), 1):.2%})" + ("; most split: " + ", ".join(
              f"{s} ({files[s]} files, {len(groups[s])} groups)" for s in worst) if worst else ""))


def kept_original(table: pd.DataFrame, source: np.ndarray, kind: np.ndarray, generation: np.ndarray,
                  examples: int, work: Path) -> None:
    """Print in how many duplicate groups that hold a source's original the representative, and
    the file the split policy keeps, is that original or a plain copy of it (PLAIN_KINDS, or a
    byte copy of generation 0)."""
    from curate.split import assign_splits

    split = assign_splits(table)
    keep = split["keep"].to_numpy()
    rep = table["representative"].to_numpy()
    paths = table["path"].to_numpy()
    count = {"representative": [], "kept": []}
    wrong, wrong_groups = defaultdict(list), []
    for _, rows in table.groupby("group").indices.items():
        if len(rows) < 2:
            continue
        originals = {source[i] for i in rows if kind[i] == "original"}
        if not originals:
            continue
        for name, mask in (("representative", rep), ("kept", keep)):
            chosen = [i for i in rows if mask[i]]
            if not chosen:
                continue  # the whole group dropped (a label conflict, no label)
            good = any((kind[i] in PLAIN_KINDS or (kind[i] == "byte-copy" and generation[i] == 0))
                       and source[i] in originals for i in chosen)
            count[name].append(good)
            if not good and name == "kept":
                wrong[kind[chosen[0]]].append(paths[chosen[0]])
                wrong_groups.append(rows)
    print("\nthe original kept (groups of 2+ that hold a source's original: the chosen file is it, or an "
          "exact or re-encoded copy)")
    for name, v in count.items():
        print(f"  {name:15s} {sum(v):5d} of {len(v):5d} groups  {np.mean(v) if v else 1.0:.3f}")
    if wrong:
        print("  kept instead: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(wrong.items(), key=lambda kv: -len(kv[1]))))
        for k, v in sorted(wrong.items()):
            print(f"    e.g. {k}: {', '.join(v[:max(1, examples // 4)])}")
        rows = np.concatenate(wrong_groups)
        cols = [c for c in ("group", "path", "representative", "relation", "derived", "orig_split") if c in table]
        out = table.iloc[rows][cols].assign(kept=keep[rows], kind=kind[rows], source=source[rows])
        out.to_csv(work / "kept_instead.csv", index=False)
        print(f"  their groups: {work / 'kept_instead.csv'}")


def scrambled(dest: Path, truth: pd.DataFrame, out: Path, seed: int) -> tuple[Path, pd.DataFrame]:
    """The set at `dest` again at `out` (hard links, made once) with every file renamed to random
    hex in its own folder, extension kept: what dedup finds when names say nothing (curate.names)."""
    rng = np.random.default_rng(seed)
    new = {f: str(Path(f).parent / (rng.bytes(12).hex() + Path(f).suffix)) for f in truth["file"]}
    if not out.exists():
        tmp = out.with_name(out.name + ".part")
        for f, g in new.items():
            (tmp / g).parent.mkdir(parents=True, exist_ok=True)
            os.link(dest / f, tmp / g)
        tmp.rename(out)
    truth = truth.assign(file=truth["file"].map(new), parent=truth["parent"].map(lambda f: new.get(f, "")))
    return out, truth


def override(setting: str) -> None:
    """NAME=VALUE: set NAME (an existing upper-case setting of the dups stage's modules) to VALUE, a
    number or tuple, in the module that defines it and in every one that imported it (where it is read)."""
    import ast
    import importlib

    modules = [importlib.import_module(f"curate.{m}") for m in DEDUP_MODULES]
    name, _, value = setting.partition("=")
    holders = [m for m in modules if name.isupper() and name in vars(m)]
    if not holders:
        sys.exit(f"--set {setting}: {name!r} is not a setting of {', '.join('curate.' + m for m in DEDUP_MODULES)}")
    try:
        new = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        sys.exit(f"--set {setting}: {value!r} is not a number or tuple")
    print(f"setting {name} = {new!r} (was {getattr(holders[0], name)!r}) in {', '.join(m.__name__ for m in holders)}")
    for m in holders:
        setattr(m, name, new)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bases", type=int, default=1500, help="FracAtlas images to build from")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--profile", choices=sorted(PROFILES), default="benchmark", help="how the set is built")
    ap.add_argument("--sample", action="store_true",
                    help="build from the bundled sample instead of FracAtlas (--profile default --seed 7: the demo)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", type=Path, default=None, help="build (or reuse) the set here")
    ap.add_argument("--examples", type=int, default=8)
    ap.add_argument("--pair-cache", type=Path, default=None,
                    help="keep verified pairs here between runs (for trying grouping changes; the dups time is then not cold)")
    ap.add_argument("--scramble-names", action="store_true",
                    help="score a copy of the set whose files are renamed to random hex (names carry no hint)")
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=VALUE",
                    help="override a dups setting (an upper-case constant of DEDUP_MODULES), e.g. VERIFY_SIDE=160")
    args = ap.parse_args()
    for setting in args.settings:
        override(setting)

    rng = np.random.default_rng(args.seed)
    all_files = [] if args.sample else sorted((fracatlas.require(FRACATLAS) / "images").glob("*/*.jpg"))
    sources = [(b.path, b.label) for b in load_bases(sample_dir())] if args.sample else []
    for i in rng.permutation(len(all_files)):  # a random subset of the ones that decode
        if len(sources) == args.bases:
            break
        try:
            decode(all_files[i])
        except ImageError:
            continue  # FracAtlas holds a few truncated JPEGs
        sources.append((all_files[i], "fractured" if all_files[i].parent.name == "Fractured" else "not fractured"))

    work = args.keep or Path(tempfile.mkdtemp(prefix="dedup-quality-"))
    dest = work / "messy"
    truth_path = work / "truth.csv"
    if not dest.exists():
        t = time.perf_counter()
        build_messy(sources, dest, seed=args.seed, truth_path=truth_path, **PROFILES[args.profile])
        print(f"built {dest} in {time.perf_counter() - t:.1f} s")
    truth = read_truth(truth_path)
    if args.scramble_names:
        dest, truth = scrambled(dest, truth, work / "messy-scrambled", args.seed)
        print(f"names scrambled: {dest}")

    t0 = time.perf_counter()
    # audit as `curate dups` does: its columns (size, EXIF) decide which copy makes a group's core
    table = audit(scan(dest), dest, workers=args.workers)
    table = hash_images(table, dest, workers=args.workers, cache_dir=work / "cache")
    t1 = time.perf_counter()
    pair_cache = args.pair_cache
    if pair_cache is not None and args.settings:  # results verified under other settings are not these
        pair_cache = pair_cache / ("set-" + "-".join(sorted(args.settings)).replace("/", "_"))
    table = find_duplicates(table, dest, workers=args.workers, cache_dir=pair_cache)
    t2 = time.perf_counter()
    print(f"{len(table)} files; audit + hash {t1 - t0:.1f} s, dups {t2 - t1:.1f} s ({args.workers} workers)\n")

    truth = truth.set_index("file")
    # Natural duplicates inside FracAtlas: base images that decode to the very same pixels
    # under two ids are one source (their copies are true pairs too).
    from curate.hashing import hash_file
    same_pixels = defaultdict(list)
    for path, _ in sources:
        same_pixels[hash_file(path)["pixel_hash"]].append(Path(path).stem)
    alias = {sid: min(ids) for ids in same_pixels.values() for sid in ids}
    natural = [ids for ids in same_pixels.values() if len(ids) > 1]
    print(f"natural pixel-identical duplicates among the {len(sources)} bases: {len(natural)} "
          f"groups, e.g. {natural[:3]}")
    # FracAtlas pairs looked at by eye (benchmarks/fracatlas_pairs.csv): one exposure saved twice
    # ("same": a true pair) or two different images that look alike: two exposures of one
    # patient, a left and a right limb ("different": must stay apart)
    looked = pd.read_csv(Path(__file__).with_name("fracatlas_pairs.csv"))
    ids = {Path(p).stem for p, _ in sources}
    for a, b in looked.loc[looked["verdict"] == "same", ["a", "b"]].itertuples(index=False):
        if a in ids and b in ids:
            alias[a] = alias[b] = min(alias.get(a, a), alias.get(b, b))
            print(f"natural duplicate (same exposure, checked by eye): {a} = {b}")
    different = {frozenset(p) for p in looked.loc[looked["verdict"] == "different", ["a", "b"]].itertuples(index=False)}
    truth["source"] = truth["source"].map(lambda s: alias.get(s, s) if s else s)
    source = truth["source"].reindex(table["path"]).fillna("").to_numpy()
    kind = truth["kind"].reindex(table["path"]).fillna("").to_numpy()
    paths = table["path"].tolist()
    by_source = defaultdict(list)
    for p, s in zip(paths, source):
        if s:
            by_source[s].append(p)
    true_pairs = pairs_of_groups(by_source)
    kind_of = dict(zip(paths, kind))

    def pair_kind(pair):
        ka, kb = kind_of[pair[0]], kind_of[pair[1]]
        if ka == "original":
            return kb
        if kb == "original":
            return ka
        return "copy vs copy"

    ours = pairs_of_groups(table.groupby("group")["path"].agg(list).to_dict())

    # the same scoring for plain imagehash pHash on the same files
    import imagehash
    from PIL import Image

    codes, ok_paths = [], []
    t = time.perf_counter()
    for p in paths:
        try:
            codes.append(int(str(imagehash.phash(Image.open(dest / p))), 16))
            ok_paths.append(p)
        except Exception:
            pass
    t_ph = time.perf_counter() - t
    codes = np.array(codes, dtype=np.uint64)
    index = HammingIndex(codes, max_radius=10)
    rows = []
    p_, r_, n_, _ = score(ours, true_pairs)
    rows.append(("curate dups (groups)", p_, r_, n_, "", ""))
    for radius in (4, 8, 10):
        q, c, _ = index.search(codes, radius)
        edges = {tuple(sorted((ok_paths[i], ok_paths[j]))) for i, j in zip(q, c) if i < j}
        pp, pr, pn, _ = score(edges, true_pairs)
        groups = pairs_of_groups(components(ok_paths, edges))
        gp, gr, gn, _ = score(groups, true_pairs)
        rows.append((f"imagehash pHash <= {radius}", pp, pr, pn, f"{gp:.3f} / {gr:.3f}", gn))
    print(f"true pairs: {len(true_pairs)}   (imagehash loop took {t_ph:.1f} s)")
    print(f"{'method':26s} {'precision':>9s} {'recall':>7s} {'pairs':>7s}   {'as groups P / R':>17s} {'pairs':>7s}")
    for name, p, r, npairs, g, gn in rows:
        print(f"{name:26s} {p:9.3f} {r:7.3f} {npairs:7d}   {g:>17s} {gn!s:>7s}")

    print("\nrecall per kind of copy (pairs original-copy, and copy-copy):")
    by_kind = defaultdict(list)
    for pair in true_pairs:
        by_kind[pair_kind(pair)].append(pair in ours)
    print(f"{'kind':28s} {'pairs':>6s} {'recall':>7s}")
    for k in sorted(by_kind):
        v = by_kind[k]
        print(f"{k:28s} {len(v):6d} {np.mean(v):7.3f}")

    fragmented(table, source)

    # angle and mirror of the copies whose representative is their original
    t_idx = table.set_index("path")
    errs, mirror_ok = [], []
    for p, k in zip(paths, kind):
        if k in ("rotate", "mirror", "mirror+rotate", "arbitrary", "arbitrary+reencode", "mirror+arbitrary"):
            row = t_idx.loc[p]
            rep = table[(table["group"] == row["group"]) & table["representative"]]
            if len(rep) and kind_of.get(rep["path"].iloc[0]) == "original" and source[paths.index(rep["path"].iloc[0])] == truth.loc[p, "source"]:
                a, m = truth.loc[p, "angle"], bool(truth.loc[p, "mirrored"])
                expect = a if m else -a
                errs.append(abs((row["dup_angle"] - expect + 180) % 360 - 180))
                mirror_ok.append(bool(row["mirrored"]) == m)
    if errs:
        errs = np.array(errs)
        print(f"\nangle error vs truth (n={len(errs)}): median {np.median(errs):.2f}°, "
              f"<= 2°: {np.mean(errs <= 2):.3f}; mirror flag right: {np.mean(mirror_ok):.3f}")

    generation = truth["generation"].reindex(table["path"]).fillna(-1).to_numpy()
    kept_original(table, source, kind, generation, args.examples, work)

    false = sorted(ours - true_pairs)
    missed = sorted(true_pairs - ours)
    print(f"\nfalse pairs: {len(false)}; missed pairs: {len(missed)}")
    for a, b in false[: args.examples]:
        rb = t_idx.loc[b]
        print(f"  false: {a} ({truth.loc[a, 'source']}, {kind_of[a]}) ~ {b} ({truth.loc[b, 'source']}, {kind_of[b]})"
              f" rel={rb['relation']!r} score={rb['dup_score']}")
    for a, b in missed[: args.examples]:
        print(f"  missed: {pair_kind((a, b))}: {a} ~ {b} ({truth.loc[b, 'transform']} {truth.loc[b, 'params']}"
              f" {truth.loc[b, 'border']})")
    # the same false pairs by the two source images they join: what to look at (and label)
    by_sources = defaultdict(int)
    for a, b in false:
        by_sources[tuple(sorted((truth.loc[a, "source"], truth.loc[b, "source"])))] += 1
    if by_sources:
        out = pd.DataFrame([(x, y, n) for (x, y), n in by_sources.items()], columns=["source_a", "source_b", "false_pairs"])
        out["looked_at"] = ["different images" if frozenset((x, y)) in different else "not yet"
                            for x, y in zip(out["source_a"], out["source_b"])]
        out = out.sort_values("false_pairs", ascending=False)
        out.to_csv(work / "false_sources.csv", index=False)
        seen = out["looked_at"] != "not yet"
        print(f"\nfalse pairs join {len(out)} pairs of source images: {int(seen.sum())} ({int(out.loc[seen, 'false_pairs'].sum())}"
              f" false pairs) were judged different images by eye (benchmarks/fracatlas_pairs.csv: "
              f"second exposures, left and right limbs), "
              f"{int((~seen).sum())} not looked at yet (listed in {work / 'false_sources.csv'})")
    print(f"\nset kept at {work}" if args.keep else "")


if __name__ == "__main__":
    main()
