"""The naive-vs-curated experiment: how much of a notebook's score was leakage?

Two protocols, the same model, settings and seeds:
  naive    train on naive.csv's train split, test on its test split (what a notebook reports);
  curated  train on manifest.csv's train split, test on its test split (leakage-free);
           with folds=K, K-fold cross-validation over all kept radiographs instead, so a
           dataset with few distinct radiographs is not judged on a test split of a few dozen.
Like for like by default: the curated run also trains on every copy of its train groups
(rows dropped as `duplicate`/`leak` whose group is in curated train), so both runs see about
the same amount of data and class mix and the main difference left is leakage.

Both models are also scored on the clean test set: curated test images whose duplicate
group has no member in either training set. Groups come from the curated manifest (joined
by file), since that is where dedup wrote them; groups that share a patient are one unit.
Bootstrap intervals resample units, not files: 18 copies of one radiograph are one draw.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from curate.errors import UsageError
from curate.workspace import Workspace, write_json
from . import evaluate
from .data import find_positive, kept, load_pixels, read_manifest, targets
from .fit import best_epoch, cross_validate, fit_model, free_memory, precision_for, predict, progress_callback
from .folds import recorded_group_by, units

COPY_REASONS = ("duplicate", "leak")  # dropped rows that are copies of a kept image
COPIES = ("all", "none")


def _frame(man, rows: pd.DataFrame, group_of: dict[str, str], unit_of: dict[str, str]) -> pd.DataFrame:
    """Rows with an absolute file path, the curated manifest's group id and unit (the group
    joined with its patient's other groups: what folds and bootstrap intervals resample)."""
    out = rows[["path", "label", "rotation", "sha256"]].copy()
    out["file"] = [str((man.root / p).resolve()) for p in rows["path"]]
    own = rows["group"].astype(str).to_numpy()
    out["group"] = [group_of.get(f, f"own:{g}") for f, g in zip(out["file"], own)]
    out["unit"] = [unit_of.get(f, g) for f, g in zip(out["file"], out["group"])]
    return out.reset_index(drop=True)


def _copies(ct: pd.DataFrame, kept_rows: pd.DataFrame) -> pd.DataFrame:
    """Rows dropped as copies of one of `kept_rows`' groups and carrying that group's label
    (a copy filed under the other class is no copy)."""
    group_label = dict(zip(kept_rows["group"].astype(str), kept_rows["label"]))
    copies = ct[~ct["keep"] & ct["reason"].isin(COPY_REASONS) & ct["group"].astype(str).isin(set(group_label))]
    return copies[[group_label.get(g) == lab for g, lab in zip(copies["group"].astype(str), copies["label"])]]


def plan(naive, curated, curated_copies: str = "all", folds: int | None = None) -> dict[str, pd.DataFrame]:
    """The image sets of the experiment, from two read manifests (see module docstring).

    folds=K: the curated protocol is K-fold cross-validation, so `curated_test` is every kept
    radiograph of every split (each is tested once, out of fold) and `curated_copies` the
    copies that train with their group; there is no single curated train or val set.
    """
    if curated_copies not in COPIES:
        raise UsageError(f"--curated-copies must be one of {', '.join(COPIES)}, not {curated_copies!r}")
    ct = curated.table
    files = [str((curated.root / p).resolve()) for p in ct["path"]]
    group_of = {f: f"g:{g}" for f, g in zip(files, ct["group"].astype(str))}
    unit_of = dict(zip(files, units(ct, recorded_group_by(curated.csv))))
    sets = {
        f"{proto}_{split}": _frame(man, kept(man.table, split), group_of, unit_of)
        for proto, man in (("naive", naive), ("curated", curated))
        for split in ("train", "val", "test")
    }
    if folds:
        pooled = pd.concat([kept(ct, s) for s in ("train", "val", "test")], ignore_index=True)
        sets["curated_test"] = _frame(curated, pooled, group_of, unit_of)
        del sets["curated_train"], sets["curated_val"]
        copies = _copies(ct, pooled) if curated_copies == "all" else ct.iloc[:0]
        sets["curated_copies"] = _frame(curated, copies, group_of, unit_of)
        trained_on = set(sets["naive_train"]["unit"])  # each curated prediction is out of fold
    else:
        if curated_copies == "all":
            extra = _frame(curated, _copies(ct, kept(ct, "train")), group_of, unit_of)
            sets["curated_train"] = pd.concat([sets["curated_train"], extra], ignore_index=True)
        trained_on = set(sets["naive_train"]["unit"]) | set(sets["curated_train"]["unit"])
    test = sets["curated_test"]
    sets["clean_test"] = test[~test["unit"].isin(trained_on)].reset_index(drop=True)
    leaked = sets["naive_test"]["group"].isin(set(sets["naive_train"]["group"]))
    sets["naive_test_leaked"] = sets["naive_test"][leaked].reset_index(drop=True)
    sets["naive_test_clean"] = sets["naive_test"][~leaked].reset_index(drop=True)
    return sets


def compare(
    naive_csv: str | Path,
    curated_csv: str | Path,
    *,
    root: str | Path | None = None,
    model: str = "seed-cnn",
    epochs: int = 10,
    batch_size: int = 32,
    img_size: int = 224,
    lr: float = 1e-3,
    seed: int = 0,
    repeats: int = 1,
    class_weight: str | None = None,
    patience: int = 3,
    deterministic: bool = False,
    channels: int = 1,
    weights: str | Path | None = None,
    bf16: bool | None = None,
    curated_copies: str = "all",
    positive_label: str | None = None,
    name: str | None = None,
    workdir: str | Path = ".",
    n_boot: int = evaluate.N_BOOT,
    folds: int | None = None,
    progress=None,
) -> dict:
    """Train naive and curated `repeats` times each; write reports/NAME/compare.json and compare.png.

    folds=K: the curated protocol is K-fold cross-validation over duplicate groups and
    patients, stratified by label (K trainings per repeat, each repeat its own partition):
    every kept radiograph is scored once by the model that never saw a copy of it, and the
    out-of-fold predictions are scored together as `curated.on_curated_test`.
    Returns the compare.json dict. NAME defaults to the curated manifest's folder name.
    """
    started = time.time()
    if repeats < 1:
        raise UsageError("--repeats must be at least 1")
    if folds is not None and folds < 2:
        raise UsageError(f"--folds must be at least 2, not {folds}")
    naive, curated = read_manifest(naive_csv, root), read_manifest(curated_csv, root)
    ws = Workspace.for_root(curated.root, name=name or curated.csv.resolve().parent.name, workdir=workdir)
    sets = plan(naive, curated, curated_copies, folds)

    # Decode every image any set needs exactly once: one array, each set indexes into it.
    union = pd.concat(sets.values(), ignore_index=True).drop_duplicates(["file", "rotation"], ignore_index=True)
    union = union.assign(path=union["file"])  # absolute paths, so ROOT is "/"
    pos = find_positive(union["label"], positive_label)
    if pos is None:
        raise UsageError("no label looks like the positive class (\"fractured\"); pass --positive-label")
    others = sorted({x for x in union["label"] if x.lower() != pos.lower() and x})
    names = (others[0] if others else f"not {pos}", pos)
    task = progress.add_task("decoding", total=len(union)) if progress is not None else None
    pixels = load_pixels(
        union, Path("/"), img_size, cache_dir=ws.workdir / ".cache" / "train",
        progress=(lambda n: progress.advance(task, n)) if task is not None else None,
    )
    where = {key: i for i, key in enumerate(zip(union["file"], union["rotation"]))}
    index = {}
    for key, rows in sets.items():
        idx = np.array([where[k] for k in zip(rows["file"], rows["rotation"])], dtype=int)
        good = pixels.ok[idx] if len(idx) else np.zeros(0, bool)
        sets[key], index[key] = rows[good].reset_index(drop=True), idx[good]

    y = {k: targets(rows["label"], pos) for k, rows in sets.items()}

    def x(key: str) -> np.ndarray:  # copied out only when needed: the union can be large
        return pixels.images[index[key]]

    seeds = [seed + k for k in range(repeats)]
    probs: dict[str, list[np.ndarray]] = {}
    epochs_run = {p: {"epochs_run": [], "best_epoch": []} for p in ("naive", "curated")}  # one per seed
    fold_runs = []  # with folds: per seed, per fold
    fit_args = dict(model=model, epochs=epochs, lr=lr, class_weight=class_weight, patience=patience,
                    deterministic=deterministic, weights=weights, bf16=bf16)
    unit = {k: rows["unit"].to_numpy(dtype=str) for k, rows in sets.items()}
    clean_in_test = np.isin(unit["curated_test"], unit["clean_test"])  # with folds: clean rows of the pooled test
    for s in seeds:
        protocols = ("naive", "curated") if not folds else ("naive",)
        for proto in protocols:
            tests = (f"{proto}_test", "clean_test")
            cbs = [progress_callback(progress, f"{proto} seed {s}")] if progress is not None else []
            net, history = fit_model(x(f"{proto}_train"), y[f"{proto}_train"], x(f"{proto}_val"), y[f"{proto}_val"],
                                     seed=s, callbacks=cbs, batch_size=batch_size, channels=channels, **fit_args)
            # Early stopping may end a run before --epochs, and restores the best val epoch.
            epochs_run[proto]["epochs_run"].append(int(len(history)))
            epochs_run[proto]["best_epoch"].append(best_epoch(history, model))
            for t in tests:
                p = predict(net, x(t), batch_size=batch_size, channels=channels)
                probs.setdefault(f"{proto}_on_{t}", []).append(p)
            del net
            free_memory()
        if folds:
            cv = cross_validate(pixels.images, index["curated_test"], y["curated_test"], unit["curated_test"],
                                k=folds, seed=s, copies=(index["curated_copies"], y["curated_copies"],
                                                         unit["curated_copies"]),
                                batch_size=batch_size, channels=channels, progress=progress,
                                description=f"curated seed {s} fold", **fit_args)
            probs.setdefault("curated_on_curated_test", []).append(cv.p)
            probs.setdefault("curated_on_clean_test", []).append(cv.p[clean_in_test])
            epochs_run["curated"]["epochs_run"].append([f["epochs_run"] for f in cv.folds])
            epochs_run["curated"]["best_epoch"].append([f["best_epoch"] for f in cv.folds])
            fold_runs.append({"seed": s, "folds": cv.folds})

    P = {k: np.stack(v) for k, v in probs.items()}
    kw = dict(n_boot=n_boot, seed=seed)
    leaked = sets["naive_test"]["group"].isin(set(sets["naive_train"]["group"])).to_numpy()

    def score(key: str, pred: str, mask=None) -> dict:  # METRICS with intervals over units
        m = slice(None) if mask is None else mask
        return evaluate.metrics(y[key][m], P[pred][:, m], groups=unit[key][m], **kw)

    def part(mask):
        m = score("naive_test", "naive_on_naive_test", mask)
        m["per_class"] = evaluate.per_class(y["naive_test"][mask], P["naive_on_naive_test"][:, mask], names,
                                            groups=unit["naive_test"][mask], **kw)
        return m

    def gap(a: str, pa: str, b: str, pb: str) -> dict:
        return evaluate.difference(y[a], P[pa], y[b], P[pb], groups_a=unit[a], groups_b=unit[b], **kw)

    clean_y = y["clean_test"]
    clean_ok = 0 < clean_y.sum() < len(clean_y)
    clean_note = None if clean_ok else (
        f"the clean test set has {len(clean_y)} image(s), {int(clean_y.sum())} {names[1]!r}: "
        "it needs both classes, so models are not scored on it"
    )
    result = {
        "settings": {
            "model": model, "epochs": epochs, "batch_size": batch_size, "img_size": img_size, "lr": lr,
            "seed": seed, "seeds": seeds, "repeats": repeats, "class_weight": class_weight, "patience": patience,
            "deterministic": deterministic, "channels": channels, "weights": str(weights) if weights else None,
            "precision": precision_for(bf16), "curated_copies": curated_copies, "positive_label": pos,
            "labels": list(names), "n_boot": n_boot, "folds": folds, "bootstrap": "over duplicate groups and patients",
            "naive_manifest": str(naive.csv), "curated_manifest": str(curated.csv), "root": str(curated.root),
        },
        "counts": {k: {"n": len(v), "n_pos": int(y[k].sum()), "groups": len(set(unit[k]))} for k, v in sets.items()},
        "training": epochs_run,  # per protocol, one entry per seed (with folds: a list per fold)
        "skipped": pixels.errors,
        "naive": {
            "on_naive_test": score("naive_test", "naive_on_naive_test"),
            "on_clean_test": score("clean_test", "naive_on_clean_test") if clean_ok else None,
            "naive_test_breakdown": {"leaked": part(leaked), "clean": part(~leaked)},
        },
        "curated": {
            "protocol": (f"{folds}-fold cross-validation over duplicate groups and patients, stratified by label; "
                         "on_curated_test is every kept radiograph, out of fold") if folds else "the curated split",
            "on_curated_test": score("curated_test", "curated_on_curated_test"),
            "on_clean_test": score("clean_test", "curated_on_clean_test") if clean_ok else None,
        },
        "clean_test": {"n": len(clean_y), "n_pos": int(clean_y.sum()), "note": clean_note},
        "inflation": gap("naive_test", "naive_on_naive_test", "curated_test", "curated_on_curated_test"),
        # The naive model on its own test split minus on the clean set (shared groups are
        # resampled together, so their overlap does not widen the interval).
        "naive_own_minus_clean": gap("naive_test", "naive_on_naive_test", "clean_test", "naive_on_clean_test")
        if clean_ok else None,
    }
    # Whether each metric's inflation interval lies wholly on one side of 0 (a gap, not noise).
    result["inflation"]["excludes_zero"] = {
        k: bool(ci[0] > 0 or ci[1] < 0) for k in evaluate.RATES if (ci := result["inflation"].get(f"{k}_ci"))
    }
    if folds:
        result["curated"]["folds"] = fold_runs
    result["notes"] = reading_notes(y, P, names)
    result["seconds"] = round(time.time() - started, 1)

    write_json(ws.reports / "compare.json", result)
    _chart(result, ws.reports / "compare.png")
    return result


ONE_CLASS = 0.95  # a model giving one answer for this share of a test set has learnt little beyond the prior
MIX_GAP = 0.05  # test sets whose positive shares differ by more than this cannot be compared by accuracy


def reading_notes(y: dict[str, np.ndarray], P: dict[str, np.ndarray], names: tuple[str, str]) -> list[str]:
    """Warnings that keep a reader from taking an accuracy gap for leakage when it is not.

    Accuracy moves with a test set's class mix: a model that answers one class everywhere
    scores the share of that class, so two test sets with different mixes give different
    accuracies for a useless model. Balanced accuracy and AUC do not have that problem.
    """
    notes = []
    for key, p in P.items():  # e.g. "naive_on_naive_test": seeds x images
        if p.size == 0:
            continue
        pos_share = float((p >= 0.5).mean())
        share, cls = (pos_share, names[1]) if pos_share >= 0.5 else (1 - pos_share, names[0])
        if share >= ONE_CLASS:
            model, test = key.split("_on_")
            notes.append(f"the {model} model answers {cls!r} for {share:.0%} of the {test.replace('_', ' ')}: its "
                         "accuracy there is the class mix, not skill; read balanced_accuracy and AUC")
    a, b = (float(y[k].mean()) if len(y[k]) else float("nan") for k in ("naive_test", "curated_test"))
    if abs(a - b) > MIX_GAP:
        notes.append(f"the naive test is {a:.0%} {names[1]!r}, the curated test {b:.0%}: an accuracy gap between them "
                     "mixes leakage with class mix; compare balanced_accuracy and AUC")
    return notes


def _chart(result: dict, path: Path) -> None:
    """compare.png: the four scores side by side, written atomically."""
    import os
    import tempfile

    folds = result["settings"].get("folds")
    curated = f"curated out of fold ({folds} folds)" if folds else "curated on curated test"
    bars = {
        "naive on naive test": result["naive"]["on_naive_test"],
        "naive on clean test": result["naive"]["on_clean_test"],
        curated: result["curated"]["on_curated_test"],
        "curated on clean test": result["curated"]["on_clean_test"],
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".compare.", suffix=".png")
    os.close(fd)
    try:
        st = result["settings"]
        seeds = f"mean of {st['repeats']} seeds" if st["repeats"] > 1 else f"seed {st['seed']}"
        evaluate.plot_compare(bars, tmp, title=f"{st['model']}, {st['img_size']} px, {st['epochs']} epochs, {seeds}",
                              gap=result["inflation"], gap_label="naive - curated" + (" out of fold" if folds else ""))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
