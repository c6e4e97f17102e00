"""The naive-vs-curated experiment: how much of a notebook's score was leakage?

Two protocols, the same model, settings and seeds:
  naive    train on naive.csv's train split, test on its test split (what a notebook reports);
  curated  train on manifest.csv's train split, test on its test split (leakage-free).
Like for like by default: the curated run also trains on every copy of its train groups
(rows dropped as `duplicate`/`leak` whose group is in curated train), so both runs see about
the same amount of data and class mix and the main difference left is leakage.

Both models are also scored on the clean test set: curated test images whose duplicate
group has no member in either training set. Groups come from the curated manifest (joined
by file), since that is where dedup wrote them.
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
from .fit import best_epoch, fit_model, precision_for, predict, progress_callback

COPY_REASONS = ("duplicate", "leak")  # dropped rows that are copies of a kept image
COPIES = ("all", "none")


def _frame(man, rows: pd.DataFrame, group_of: dict[str, str]) -> pd.DataFrame:
    """Rows with an absolute file path and the curated manifest's group id."""
    out = rows[["path", "label", "rotation", "sha256"]].copy()
    out["file"] = [str((man.root / p).resolve()) for p in rows["path"]]
    own = rows["group"].astype(str).to_numpy()
    out["group"] = [group_of.get(f, f"own:{g}") for f, g in zip(out["file"], own)]
    return out.reset_index(drop=True)


def plan(naive, curated, curated_copies: str = "all") -> dict[str, pd.DataFrame]:
    """The image sets of the experiment, from two read manifests (see module docstring)."""
    if curated_copies not in COPIES:
        raise UsageError(f"--curated-copies must be one of {', '.join(COPIES)}, not {curated_copies!r}")
    ct = curated.table
    group_of = {str((curated.root / p).resolve()): f"g:{g}" for p, g in zip(ct["path"], ct["group"].astype(str))}
    sets = {
        f"{proto}_{split}": _frame(man, kept(man.table, split), group_of)
        for proto, man in (("naive", naive), ("curated", curated))
        for split in ("train", "val", "test")
    }
    if curated_copies == "all":
        train_groups = set(kept(ct, "train")["group"].astype(str))
        copies = ct[~ct["keep"] & ct["reason"].isin(COPY_REASONS) & ct["group"].astype(str).isin(train_groups)]
        # A copy only counts if it carries its group's label (a conflicting one is no copy).
        group_label = dict(zip(kept(ct, "train")["group"].astype(str), kept(ct, "train")["label"]))
        copies = copies[[group_label.get(g) == lab for g, lab in zip(copies["group"].astype(str), copies["label"])]]
        sets["curated_train"] = pd.concat([sets["curated_train"], _frame(curated, copies, group_of)], ignore_index=True)

    trained_on = set(sets["naive_train"]["group"]) | set(sets["curated_train"]["group"])
    test = sets["curated_test"]
    sets["clean_test"] = test[~test["group"].isin(trained_on)].reset_index(drop=True)
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
    progress=None,
) -> dict:
    """Train naive and curated `repeats` times each; write reports/NAME/compare.json and compare.png.

    Returns the compare.json dict. NAME defaults to the curated manifest's folder name.
    """
    started = time.time()
    if repeats < 1:
        raise UsageError("--repeats must be at least 1")
    naive, curated = read_manifest(naive_csv, root), read_manifest(curated_csv, root)
    ws = Workspace.for_root(curated.root, name=name or curated.csv.resolve().parent.name, workdir=workdir)
    sets = plan(naive, curated, curated_copies)

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
    fit_args = dict(model=model, epochs=epochs, batch_size=batch_size, lr=lr, class_weight=class_weight,
                    patience=patience, deterministic=deterministic, channels=channels, weights=weights, bf16=bf16)
    for s in seeds:
        for proto, tests in (("naive", ("naive_test", "clean_test")), ("curated", ("curated_test", "clean_test"))):
            cbs = [progress_callback(progress, f"{proto} seed {s}")] if progress is not None else []
            net, history = fit_model(x(f"{proto}_train"), y[f"{proto}_train"], x(f"{proto}_val"), y[f"{proto}_val"],
                                     seed=s, callbacks=cbs, **fit_args)
            # Early stopping may end a run before --epochs, and restores the best val epoch.
            epochs_run[proto]["epochs_run"].append(int(len(history)))
            epochs_run[proto]["best_epoch"].append(best_epoch(history, model))
            for t in tests:
                p = predict(net, x(t), batch_size=batch_size, channels=channels)
                probs.setdefault(f"{proto}_on_{t}", []).append(p)
            del net
            _free_memory()

    P = {k: np.stack(v) for k, v in probs.items()}
    kw = dict(n_boot=n_boot, seed=seed)
    leaked = sets["naive_test"]["group"].isin(set(sets["naive_train"]["group"])).to_numpy()

    def part(mask):
        m = evaluate.metrics(y["naive_test"][mask], P["naive_on_naive_test"][:, mask], **kw)
        m["per_class"] = evaluate.per_class(y["naive_test"][mask], P["naive_on_naive_test"][:, mask], names, **kw)
        return m

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
            "labels": list(names), "n_boot": n_boot,
            "naive_manifest": str(naive.csv), "curated_manifest": str(curated.csv), "root": str(curated.root),
        },
        "counts": {k: {"n": len(v), "n_pos": int(y[k].sum())} for k, v in sets.items()},
        "training": epochs_run,  # per protocol, one entry per seed
        "skipped": pixels.errors,
        "naive": {
            "on_naive_test": evaluate.metrics(y["naive_test"], P["naive_on_naive_test"], **kw),
            "on_clean_test": evaluate.metrics(clean_y, P["naive_on_clean_test"], **kw) if clean_ok else None,
            "naive_test_breakdown": {"leaked": part(leaked), "clean": part(~leaked)},
        },
        "curated": {
            "on_curated_test": evaluate.metrics(y["curated_test"], P["curated_on_curated_test"], **kw),
            "on_clean_test": evaluate.metrics(clean_y, P["curated_on_clean_test"], **kw) if clean_ok else None,
        },
        "clean_test": {"n": len(clean_y), "n_pos": int(clean_y.sum()), "note": clean_note},
        "inflation": evaluate.difference(
            y["naive_test"], P["naive_on_naive_test"], y["curated_test"], P["curated_on_curated_test"], **kw
        ),
        # The naive model on its own test split minus on the clean set (the sets may share
        # images, so the independent-resampling interval is on the wide side).
        "naive_own_minus_clean": evaluate.difference(
            y["naive_test"], P["naive_on_naive_test"], clean_y, P["naive_on_clean_test"], **kw
        ) if clean_ok else None,
    }
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

    bars = {
        "naive on naive test": result["naive"]["on_naive_test"],
        "naive on clean test": result["naive"]["on_clean_test"],
        "curated on curated test": result["curated"]["on_curated_test"],
        "curated on clean test": result["curated"]["on_clean_test"],
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".compare.", suffix=".png")
    os.close(fd)
    try:
        st = result["settings"]
        seeds = f"mean of {st['repeats']} seeds" if st["repeats"] > 1 else f"seed {st['seed']}"
        evaluate.plot_compare(bars, tmp, title=f"{st['model']}, {st['img_size']} px, {st['epochs']} epochs, {seeds}")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _free_memory() -> None:
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
