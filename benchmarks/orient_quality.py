"""How well `curate orient` stands the kept images upright, against messy sets' ground truth.

For each set (a seed of curate.messy's builder over N real FracAtlas radiographs), runs the
stages up to dups (kept in --keep DIR/seed-S when given, so a second run reuses them), the keep
split, then orient on the kept rows (cold: no skew cache), and prints per set:
- the first figure: kept turned copies (the truth says turned by a right or any angle) whose
  group holds an upright member (truth angle 0: the original or a copy of it that was not
  turned) that stand upright within 5 degrees after their `rotation` (they can be turned onto
  that member), split by right and any angle;
- apart, the other kept turned copies: their group holds no upright member (dups left their
  original in another group, or the set lacks it), so only their own wedges can tell;
- kept upright images (truth angle 0) turned by more than 3 degrees (the second figure: the
  worst outcome, a user's good image turned), and how many kept rows were flagged;
- seconds of the orient step;
- the first figure again over many more cases ("as if kept"): every turned copy whose group
  holds an upright member, each in turn the one row of its group orient is asked about (up to
  --as-kept rounds per group; the kept ones are a few per set, too few to measure 95%); of its
  misses, those turned wrongly (not left as they were); and apart, how many turned copies are in
  groups with no upright member (nothing to restore them from: not in the figure).
Then the calibration of a skew from one image alone (estimate_skew on every turned copy and
every original of the sets): for each confidence threshold, the turns it would apply that are
right (within 2 degrees) and wrong (a straight image turned, or a turned one turned wrongly).

    /work/venv/bin/python benchmarks/orient_quality.py --seeds 1,2,1:kaggle --fresh 7,7:kaggle --keep /tmp/om
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.errors import ImageError  # noqa: E402
from curate.imageio import decode  # noqa: E402
from curate.messy import build_messy, read_truth  # noqa: E402
from curate.orient import SKEW_CONFIDENCE, orient  # noqa: E402
from curate.parallel import map_files  # noqa: E402
from curate.pipeline import through_dups  # noqa: E402
from curate.skew import skew_confidence, skew_file  # noqa: E402
from curate.split import assign_splits  # noqa: E402
import fracatlas  # noqa: E402  (benchmarks/fracatlas.py: where FracAtlas is)

FRACATLAS = fracatlas.FRACATLAS
UPRIGHT_WITHIN = 5.0  # degrees: a kept turned copy counts as upright
TURNED_OVER = 3.0  # degrees: a kept upright image turned by more counts as wrongly turned


def angle_error(a, b) -> np.ndarray:
    return np.abs((np.asarray(a, float) - np.asarray(b, float) + 180) % 360 - 180)


def sources(n: int, seed: int) -> list[tuple[Path, str]]:
    found = [(p, "fractured") for p in sorted((fracatlas.require(FRACATLAS) / "images" / "Fractured").glob("*.jpg"))]
    found += [(p, "not fractured") for p in sorted((FRACATLAS / "images" / "Non_fractured").glob("*.jpg"))]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(found))
    picked = []
    for i in order:  # a few FracAtlas files are truncated: the builder needs clean bases
        try:
            decode(found[i][0])
        except ImageError:
            continue
        picked.append(found[i])
        if len(picked) == n:
            break
    return sorted(picked)


def build(work: Path, n: int, seed: int, copy_fraction: float, workers: int,
          profile: str | None) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    """The messy set and its table through dups; reused from `work` when already there (delete
    dups.pkl to redo the stages after a change to them: the set itself is kept)."""
    root, truth_csv, table_pkl = work / "messy", work / "truth.csv", work / "dups.pkl"
    if table_pkl.is_file():
        return root, read_truth(truth_csv), pd.read_pickle(table_pkl)
    if truth_csv.is_file():
        truth = read_truth(truth_csv)
    else:
        extra = {"profile": profile} if profile else {"copy_fraction": copy_fraction}
        truth = build_messy(sources(n, seed), root, seed=seed, truth_path=truth_csv, **extra)
    table = through_dups(root, workers=workers, cache_dir=work / "cache")
    table.to_pickle(table_pkl)
    return root, truth, table


def share(mask) -> str:
    mask = np.asarray(mask, bool)
    return f"{mask.sum()}/{mask.size} = {100 * mask.mean():.1f}%" if mask.size else "n/a"


def one_set(work: Path, args, seed: int, profile: str | None, fresh: bool = False) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """The set's two figures, and its rows (with truth) and estimate_skew on turned copies and originals."""
    work.mkdir(parents=True, exist_ok=True)
    n = args.kaggle_n if profile == "kaggle" else args.n
    root, truth, table = build(work, n, seed, args.copy_fraction, args.workers, profile)
    table = assign_splits(table, "keep")
    t = time.perf_counter()
    table = orient(table, root, workers=args.workers)  # cold: every skew estimated afresh
    seconds = time.perf_counter() - t
    rows = table.merge(truth.rename(columns={"file": "path", "split": "truth_split", "label": "truth_label"}),
                       on="path", how="left")
    rows["err"] = angle_error(rows["rotation"], -rows["angle"].fillna(0))
    kept = rows[rows["keep"] & (rows["status"] == "ok")]
    turned, upright = kept[kept["angle"].fillna(0) != 0], kept[kept["angle"].fillna(0) == 0]
    arbitrary = turned["angle"] % 90 != 0
    # point 1 is about kept copies whose group holds a member that stands upright (the original or
    # a plain copy of it): the rest have nothing to be turned onto (the set lacks their original)
    upright_groups = set(rows.loc[(rows["status"] == "ok") & (rows["angle"].fillna(0) == 0), "group"])
    anchored = turned["group"].isin(upright_groups)
    figures = {
        "files": len(rows), "kept": len(kept), "seconds": seconds,
        "anchored": share(turned.loc[anchored, "err"] <= UPRIGHT_WITHIN),
        "right_angle": share(turned.loc[anchored & ~arbitrary, "err"] <= UPRIGHT_WITHIN),
        "any_angle": share(turned.loc[anchored & arbitrary, "err"] <= UPRIGHT_WITHIN),
        "lone": share(turned.loc[~anchored, "err"] <= UPRIGHT_WITHIN),
        "upright_turned": share(angle_error(upright["rotation"], 0) > TURNED_OVER),
        "flagged": share(kept["orient_flag"].str.contains("low-confidence")),
    }
    if args.as_kept:
        cases = as_if_kept(table, root, rows, args)
        arb = cases["angle"] % 90 != 0
        figures["as_kept"] = share(cases["err"] <= UPRIGHT_WITHIN)
        figures["as_kept_right"] = share(cases.loc[~arb, "err"] <= UPRIGHT_WITHIN)
        figures["as_kept_any"] = share(cases.loc[arb, "err"] <= UPRIGHT_WITHIN)
        # the worse miss: turned, but not onto upright (a sibling taken for the original, a wrong pose)
        figures["as_kept_wrong"] = str(int(((cases["err"] > UPRIGHT_WITHIN) & (cases["rotation"] != 0)).sum()))
        # turned copies whose group holds no upright member (the set lacks it, or dups left it in
        # another group): nothing to be turned onto, so not in the figure; counted apart
        ok = (rows["status"] == "ok") & rows["group"].notna()
        figures["as_kept_none"] = str(int((ok & (rows["angle"].fillna(0) != 0) & ~rows["group"].isin(upright_groups)).sum()))
        if args.show and not fresh and len(cases):
            bad = cases[cases["err"] > UPRIGHT_WITHIN]
            print(f"\nseed {seed}{' ' + profile if profile else ''}: as if kept, not upright (first {args.show}):")
            print(bad[["path", "kind", "border", "zoom", "angle", "rotation", "orient_source", "orient_flag",
                       "representative"]].head(args.show).to_string(index=False))
    if args.show and not fresh:  # a never-tuned set's rows are not looked at
        cols = ["path", "kind", "border", "angle", "rotation", "orient_source", "orient_confidence", "orient_flag",
                "relation"]
        turned = turned.assign(upright_in_group=anchored)
        cols.append("upright_in_group")
        bad = pd.concat([turned[turned["err"] > UPRIGHT_WITHIN],
                         upright[angle_error(upright["rotation"], 0) > TURNED_OVER]])
        if len(bad):
            print(f"\nseed {seed}{' ' + profile if profile else ''}: kept rows not upright (first {args.show}):")
            print(bad[cols].head(args.show).to_string(index=False))
    if not args.curve:
        return figures, rows, pd.DataFrame(columns=["truth", "angle", "score"])
    ok = rows["status"] == "ok"
    lone = rows[ok & ((rows["kind"] == "original") | (rows["angle"].fillna(0) % 90 != 0))]
    est = pd.DataFrame(map_files(skew_file, [root / p for p in lone["path"]], workers=args.workers), index=lone.index)
    est["truth"] = -lone["angle"].fillna(0)
    return figures, rows, est


def kept_instead(table: pd.DataFrame, x: int) -> pd.DataFrame:
    """The table as if the dups stage had kept x as its group's representative: the group's
    dup_angle and mirrored re-based onto x (rotate(mirror^m(y), a_y) == x for each member y),
    dup_scale likewise, x's derived marks cleared (the stage clears its representative's)."""
    g = table["group"].to_numpy() == table["group"].iloc[x]
    out = table.copy()
    a = out["dup_angle"].to_numpy(float).copy()
    m = out["mirrored"].to_numpy(bool).copy()
    ax, mx = a[x], m[x]
    turned = a[g] - ax
    a[g] = [((-d if mx else d) + 180) % 360 - 180 for d in turned]
    m[g] = m[g] != mx
    out["dup_angle"], out["mirrored"] = a, m
    rep = np.zeros(len(out), bool)
    rep[g] = False
    rep[~g] = out["representative"].to_numpy(bool)[~g]
    rep[x] = True
    out["representative"] = rep
    if "dup_scale" in out:
        sc = out["dup_scale"].to_numpy(float).copy()
        sc[g] = sc[g] / sc[x]
        out["dup_scale"] = sc
    out.loc[out.index[x], "derived"] = ""
    out.loc[out.index[x], "dup_score"] = 1.0
    return out


def as_if_kept(table: pd.DataFrame, root: Path, rows: pd.DataFrame, args) -> pd.DataFrame:
    """Each turned copy whose group holds an upright member (truth), oriented as if the dups stage
    had kept it (see kept_instead): round r re-bases each such group onto its r-th turned copy (in
    path order; one orient run per round, every group at once). Returns those rows with their
    rotation and error."""
    assert (rows.index == np.arange(len(table))).all()  # rows is table merged with the truth, row for row
    ok = (rows["status"] == "ok") & rows["group"].notna()
    truth_angle = rows["angle"].fillna(0)
    upright_groups = set(rows.loc[ok & (truth_angle == 0), "group"])
    turned = rows[ok & (truth_angle != 0) & rows["group"].isin(upright_groups)].sort_values("path")
    out = []
    for r in range(args.as_kept):
        pick = turned.groupby("group").nth(r)
        if not len(pick):
            break
        t = table
        for x in pick.index:
            t = kept_instead(t, int(x))
        needed = t["representative"].to_numpy(bool) & t["group"].isin(set(pick["group"])).to_numpy()
        done = orient(t, root, needed=needed, workers=args.workers)
        found = pick.copy()
        for c in ("rotation", "orient_source", "orient_flag"):
            found[c] = done.loc[pick.index, c].to_numpy()
        found["err"] = angle_error(found["rotation"], -found["angle"])
        out.append(found)
    return pd.concat(out) if out else turned.head(0).assign(err=[])


def curve(est: pd.DataFrame) -> list[tuple[float, int, int, int]]:
    """(threshold, right turns, wrong turns, skewed images) of a skew from one image alone: its
    best hypothesis (-angle) applied when its confidence (skew_confidence of the fit) reaches
    the threshold."""
    skewed = est["truth"] % 90 != 0
    err = angle_error(-est["angle"], est["truth"])
    confidence = est["score"].map(skew_confidence)
    out = []
    for t in np.round(np.arange(0.3, 1.001, 0.05), 2):
        applied = (est["angle"] != 0) & (confidence >= t)
        out.append((float(t), int((applied & skewed & (err <= 2)).sum()),
                    int((applied & ~((err <= 2) & skewed)).sum()), int(skewed.sum())))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="FracAtlas images to build each set from")
    ap.add_argument("--seeds", default="1,2,1:kaggle", help="sets the settings were tuned on: SEED or SEED:PROFILE")
    ap.add_argument("--fresh", default="7,7:kaggle", help="sets never tuned on (reported apart)")
    ap.add_argument("--kaggle-n", type=int, default=80, help="FracAtlas images to build a kaggle-profile set from")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--copy-fraction", type=float, default=0.5)
    ap.add_argument("--show", type=int, default=0, help="list up to this many kept rows left turned, per set")
    ap.add_argument("--no-curve", dest="curve", action="store_false",
                    help="skip the calibration of a skew from one image alone (a search on every turned copy)")
    ap.add_argument("--as-kept", type=int, default=3,
                    help="rounds of the 'as if kept' figure (each turned copy of a group with an upright member, "
                         "asked about alone); 0 skips it")
    ap.add_argument("--keep", type=Path, help="keep the sets and their dups tables here (reused next time)")
    args = ap.parse_args(argv)

    t0 = time.time()
    runs = [(s, "tuned") for s in args.seeds.split(",") if s] + [(s, "fresh") for s in args.fresh.split(",") if s]
    results, skews = [], []
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        for spec, kind in runs:
            seed, _, profile = spec.partition(":")
            name = f"seed-{seed}" + (f"-{profile}" if profile else "")
            n = args.kaggle_n if profile == "kaggle" else args.n
            figures, _, est = one_set(base / f"n{n}-{name}", args, int(seed), profile or None, kind == "fresh")
            results.append((f"{name} ({kind})", figures))
            if len(est):
                skews.append(est.assign(set=name, kind=kind))

    print(f"messy sets from {args.n} FracAtlas images each ({args.kaggle_n} for the kaggle profile); orient on the "
          f"kept rows, cold, {args.workers} workers (2 shared cores; others may be running too)")
    head = ("set", "files", "kept", f"1: kept turned copies, group holds an upright member: upright (<= {UPRIGHT_WITHIN:g} deg)",
            "  right angle", "  any angle", "apart: group holds none: upright",
            f"2: kept upright turned (> {TURNED_OVER:g} deg)", "kept flagged", "orient s",
            "1 as if kept: upright", "  right angle", "  any angle", "  turned wrongly",
            "apart: turned copies, no upright member in group")
    table = [head] + [(name, str(f["files"]), str(f["kept"]), f["anchored"], f["right_angle"], f["any_angle"],
                       f["lone"], f["upright_turned"], f["flagged"], f"{f['seconds']:.1f}",
                       f.get("as_kept", "-"), f.get("as_kept_right", "-"), f.get("as_kept_any", "-"),
                       f.get("as_kept_wrong", "-"), f.get("as_kept_none", "-"))
                      for name, f in results]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))

    for kind in ("tuned", "fresh"):
        est = pd.concat([e for e in skews if e["kind"].iloc[0] == kind]) if any(
            len(e) and e["kind"].iloc[0] == kind for e in skews) else None
        if est is None or not len(est):
            continue
        print(f"\nskew from one image alone, {kind} sets: {int((est['truth'] % 90 != 0).sum())} turned by any angle, "
              f"{int((est['truth'] == 0).sum())} straight; applied from the threshold (now {SKEW_CONFIDENCE})")
        print("threshold  right turns  wrong turns")
        for t, right, wrong, total in curve(est):
            print(f"{t:9.2f}  {right:5d}/{total:<5d}  {wrong:11d}")
    print(f"\n{time.time() - t0:.0f}s in all")


if __name__ == "__main__":
    main()
