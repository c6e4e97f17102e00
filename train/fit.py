"""Training: seeds and determinism, class weights, early stopping, and what a run writes.

`train_manifest(csv)` trains one model on a manifest's kept train rows, stops early on val,
and writes reports/NAME/train-<model>-<time>/ (model.keras, history.csv, metrics.json,
classification_report.txt, confusion_matrix.png, curves.png, predictions.csv).
`fit_model` and `predict` are the pieces compare.py reuses.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from curate.errors import InputError, UsageError
from curate.workspace import Workspace, write_csv, write_json
from . import evaluate
from .data import find_positive, kept, load_pixels, make_dataset, read_manifest, targets
from .models import WARMUP_EPOCHS, build

SPLITS = ("train", "val", "test")


@dataclass
class TrainResult:
    model: object  # the trained keras.Model (best val epoch when early stopping fired); with folds, a list
    history: pd.DataFrame  # one row per epoch
    metrics: dict  # what metrics.json holds
    predictions: pd.DataFrame  # path, label, split, p_fractured (val and test rows)
    out_dir: Path


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and TensorFlow; with `deterministic`, also make TF ops reproducible."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        # Same seed, same data -> bit-identical weights, at some cost in speed. Global and
        # one-way for the process, which is what a --deterministic run asks for.
        tf.config.experimental.enable_op_determinism()


def cpu_has_bf16() -> bool:
    """True when the CPU does bfloat16 arithmetic natively (AVX512-BF16 or AMX-BF16).

    Read from /proc/cpuinfo (Linux); elsewhere, or when unsure, False. Without native
    support oneDNN emulates bfloat16 and training gets slower, not faster.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_for(bf16: bool | None) -> str:
    """The compute precision a fit uses: 'bfloat16' or 'float32'.

    bf16=None (the default) is auto: bfloat16 mixed precision when training runs on a CPU
    that has native bfloat16 and no GPU is visible; True/False force it on/off. Measured on
    a 2-core AVX512-BF16 CPU (benchmarks/train_speed.py), seed-cnn trains ~1.5x faster.
    """
    if bf16 is not None:
        return "bfloat16" if bf16 else "float32"
    import tensorflow as tf

    on_cpu = not tf.config.list_physical_devices("GPU")
    return "bfloat16" if on_cpu and cpu_has_bf16() else "float32"


def class_weights(y: np.ndarray, mode: str | None) -> dict[int, float] | None:
    """'balanced': each class weighs n / (2 * n_class), so both classes count equally."""
    if mode is None or mode == "none":
        return None
    if mode != "balanced":
        raise UsageError(f"--class-weight must be 'balanced' or 'none', not {mode!r}")
    y = np.asarray(y, dtype=int)
    counts = np.bincount(y, minlength=2)
    return {c: float(len(y) / (2 * counts[c])) if counts[c] else 0.0 for c in (0, 1)}


def progress_callback(progress, description: str):
    """A Keras callback that drives a rich Progress bar: one task per fit, advanced per batch.

    The caller (the CLI) owns the Progress and its console; the library never prints.
    """
    import keras

    class RichEpochs(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.epochs = self.params.get("epochs") or 1
            self.steps = self.params.get("steps") or 1
            self.task = progress.add_task(f"{description} epoch 1/{self.epochs}", total=self.epochs * self.steps)

        def on_train_batch_end(self, batch, logs=None):
            progress.advance(self.task, 1)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            shown = "  ".join(f"{k} {v:.3f}" for k, v in logs.items() if k in ("loss", "accuracy", "val_loss", "val_accuracy"))
            progress.update(
                self.task,
                completed=(epoch + 1) * self.steps,
                description=f"{description} epoch {epoch + 1}/{self.epochs}  {shown}",
            )

        def on_train_end(self, logs=None):
            progress.update(self.task, completed=self.epochs * self.steps)  # early stop: fill the bar

    return RichEpochs()


def fit_model(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    model: str = "seed-cnn",
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    class_weight: str | None = None,
    patience: int = 3,
    deterministic: bool = False,
    channels: int = 1,
    weights: str | Path | None = None,
    bf16: bool | None = None,
    callbacks: list | None = None,
):
    """Train a fresh model on uint8 images; early stopping on val when val exists.

    Early stopping watches val loss from the end of the model's warm-up
    (models.WARMUP_EPOCHS) and restores the best epoch's weights.

    bf16: bfloat16 mixed precision (None = auto, see `precision_for`).
    Returns (keras model with the best val weights, history table).
    """
    import keras

    if len(x_train) == 0:
        raise InputError("the train split has no images")
    if len(set(np.asarray(y_train).tolist())) < 2:
        raise InputError("the train split has only one class: a classifier needs both")
    if epochs < 1 or batch_size < 1:
        raise UsageError("--epochs and --batch-size must be at least 1")
    seed_everything(seed, deterministic)
    net = build(model, x_train.shape[1], channels, weights, precision=precision_for(bf16))
    from .optimizers import FusedAdam

    net.compile(optimizer=FusedAdam(lr), loss="binary_crossentropy", metrics=["accuracy"])
    train_ds = make_dataset(x_train, y_train, batch_size=batch_size, channels=channels, augment=True, shuffle=True, seed=seed)
    val_ds = None
    cbs = list(callbacks or [])
    if x_val is not None and len(x_val):
        val_ds = make_dataset(x_val, y_val, batch_size=batch_size, channels=channels)
        cbs.append(keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=patience, start_from_epoch=WARMUP_EPOCHS[model], restore_best_weights=True
        ))
    hist = net.fit(
        train_ds,
        validation_data=val_ds,
        epochs=epochs,
        class_weight=class_weights(y_train, class_weight),
        callbacks=cbs,
        shuffle=False,  # tf.data already reshuffles every epoch
        verbose=0,
    )
    history = pd.DataFrame(hist.history)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    return net, history


@dataclass
class CrossValidation:
    p: np.ndarray  # out-of-fold p(positive) per scored row: each from the one model that never saw it
    fold: np.ndarray  # the fold (0..K-1) each scored row was tested in
    folds: list[dict]  # per fold: images trained / validated / tested, epochs run, best epoch
    histories: list[pd.DataFrame]  # per fold
    models: list  # per fold, when asked to keep them


def cross_validate(
    images: np.ndarray,
    index: np.ndarray,
    y: np.ndarray,
    unit: np.ndarray,
    *,
    k: int,
    seed: int = 0,
    copies: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    batch_size: int = 32,
    channels: int = 1,
    progress=None,
    description: str = "fold",
    keep_models: bool = False,
    **fit_args,
) -> CrossValidation:
    """K-fold cross-validation over whole units (folds.py): K fresh models, each tested on
    one fold after training on the others (minus an inner val share for early stopping).

    images[index[i]] is scored row i, with label y[i] and unit unit[i]. `copies` = (index, y,
    unit) of images that train with their unit when it is in training folds and are never
    scored nor used as val (a group's other copies, for like-for-like training).
    """
    from .folds import assign_folds, inner_val

    fold = assign_folds(unit, y, k, seed)
    p = np.full(len(index), np.nan)
    out = CrossValidation(p=p, fold=fold, folds=[], histories=[], models=[])
    for f in range(k):
        test = np.flatnonzero(fold == f)
        rest = np.flatnonzero(fold != f)
        held = inner_val(unit[rest], y[rest], k, seed + f)
        train, val = rest[~held], rest[held]
        x_idx, y_tr = index[train], y[train]
        if copies is not None:
            c_idx, c_y, c_unit = copies
            mine = np.isin(c_unit, unit[train])  # copies of a val or test unit stay out
            x_idx, y_tr = np.concatenate([x_idx, c_idx[mine]]), np.concatenate([y_tr, c_y[mine]])
        cbs = [progress_callback(progress, f"{description} {f + 1}/{k}")] if progress is not None else []
        net, history = fit_model(images[x_idx], y_tr, images[index[val]], y[val], seed=seed + f, callbacks=cbs,
                                 batch_size=batch_size, channels=channels, **fit_args)
        p[test] = predict(net, images[index[test]], batch_size=batch_size, channels=channels)
        out.folds.append({"fold": f + 1, "train": int(len(x_idx)), "val": int(len(val)), "test": int(len(test)),
                          "test_pos": int(y[test].sum()), "epochs_run": int(len(history)),
                          "best_epoch": best_epoch(history, fit_args.get("model", "seed-cnn"))})
        out.histories.append(history)
        if keep_models:
            out.models.append(net)
        else:
            del net
            free_memory()
    return out


def free_memory() -> None:
    """Drop Keras's graph state between fits, so K models do not pile up in memory."""
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()


def best_epoch(history: pd.DataFrame, model: str) -> int:
    """The 1-based epoch whose weights early stopping kept (the last one when there was no val)."""
    warmup = WARMUP_EPOCHS[model]
    if "val_loss" not in history or len(history) <= warmup:
        return int(len(history))
    return int(history["val_loss"].iloc[warmup:].idxmin()) + 1


def predict(net, images: np.ndarray, *, batch_size: int = 64, channels: int = 1) -> np.ndarray:
    """p(positive) for each uint8 image (no augmentation)."""
    if len(images) == 0:
        return np.zeros(0, dtype=float)
    ds = make_dataset(images, np.zeros(len(images)), batch_size=batch_size, channels=channels)
    return net.predict(ds, verbose=0).reshape(-1).astype(float)


def _report_text(y, p, names) -> str:
    from sklearn.metrics import classification_report

    if len(y) == 0:
        return "(no images)\n"
    pred = (np.asarray(p) >= 0.5).astype(int)
    return classification_report(y, pred, labels=[0, 1], target_names=list(names), zero_division=0, digits=3)


def train_manifest(
    manifest: str | Path,
    *,
    root: str | Path | None = None,
    model: str = "seed-cnn",
    epochs: int = 10,
    batch_size: int = 32,
    img_size: int = 224,
    lr: float = 1e-3,
    seed: int = 0,
    class_weight: str | None = None,
    patience: int = 3,
    deterministic: bool = False,
    channels: int = 1,
    weights: str | Path | None = None,
    bf16: bool | None = None,
    positive_label: str | None = None,
    name: str | None = None,
    workdir: str | Path = ".",
    folds: int | None = None,
    progress=None,
) -> TrainResult:
    """Train on a manifest's kept train rows; evaluate on val and test; write the run folder.

    NAME defaults to the manifest's folder name (manifests/NAME/manifest.csv -> NAME).
    `progress` is an optional rich Progress the bars are drawn on.
    folds=K: K-fold cross-validation over the kept rows of every split pooled instead (K
    trainings): every kept row is scored once, by the one model that never saw any copy of it
    (nor its patient). metrics.json then holds `out_of_fold` (METRICS over all kept rows) and
    per-fold counts; predictions.csv and history.csv gain a `fold` column; each fold's model
    goes to fold-K/model.keras.
    """
    started = time.time()
    man = read_manifest(manifest, root)
    ws = Workspace.for_root(man.root, name=name or man.csv.resolve().parent.name, workdir=workdir)
    rows = pd.concat([kept(man.table, s).assign(split=s) for s in SPLITS], ignore_index=True)
    pos = _positive(rows["label"], positive_label)
    names = _names(rows["label"], pos)
    y = targets(rows["label"], pos)

    task = progress.add_task("decoding", total=len(rows)) if progress is not None else None
    pixels = load_pixels(
        rows, man.root, img_size, cache_dir=ws.workdir / ".cache" / "train",
        progress=(lambda n: progress.advance(task, n)) if task is not None else None,
    )
    units_of = _units(man, rows)  # intervals resample radiographs (and patients), not files
    fit_args = dict(model=model, epochs=epochs, lr=lr, class_weight=class_weight, patience=patience,
                    deterministic=deterministic, weights=weights, bf16=bf16)
    settings = {
        "manifest": str(man.csv), "manifest_sha256": man.digest, "root": str(man.root), "model": model,
        "epochs": epochs, "batch_size": batch_size, "img_size": img_size, "lr": lr, "seed": seed,
        "class_weight": class_weight, "patience": patience, "deterministic": deterministic,
        "channels": channels, "weights": str(weights) if weights else None, "precision": precision_for(bf16),
    }
    result_metrics = {"settings": settings, "positive_label": pos, "labels": list(names)}
    if folds:
        settings["folds"] = folds
        ok = np.flatnonzero(pixels.ok)
        cv = cross_validate(pixels.images, ok, y[ok], units_of[ok], k=folds, seed=seed, batch_size=batch_size,
                            channels=channels, progress=progress, description=f"{model} fold", keep_models=True,
                            **fit_args)
        result_metrics.update({
            "protocol": f"{folds}-fold cross-validation over duplicate groups and patients, stratified by label",
            "counts": {"kept": {"n": int(len(ok)), "n_pos": int(y[ok].sum()), "groups": len(set(units_of[ok]))}},
            "params": int(cv.models[0].count_params()),
            "folds": cv.folds,
            "out_of_fold": evaluate.metrics(y[ok], cv.p, groups=units_of[ok], seed=seed),
        })
        predictions = rows.loc[ok, ["path", "label", "split"]].assign(fold=cv.fold + 1, p_fractured=np.round(cv.p, 6))
        history = pd.concat([h.assign(fold=f + 1) for f, h in enumerate(cv.histories)], ignore_index=True)
        nets = {f"fold-{f + 1}/model.keras": net for f, net in enumerate(cv.models)}
        reports = [f"== out of fold ({folds} folds) ==\n{_report_text(y[ok], cv.p, names)}"]
        cm, cm_title = evaluate.confusion(y[ok], cv.p), f"{model}, out of fold ({folds} folds)"
    else:
        use = {s: np.flatnonzero((rows["split"] == s).to_numpy() & pixels.ok) for s in SPLITS}
        callbacks = [progress_callback(progress, model)] if progress is not None else []
        net, history = fit_model(
            pixels.images[use["train"]], y[use["train"]], pixels.images[use["val"]], y[use["val"]],
            seed=seed, batch_size=batch_size, channels=channels, callbacks=callbacks, **fit_args,
        )
        result_metrics.update({
            "counts": {s: {"n": int(len(use[s])), "n_pos": int(y[use[s]].sum())} for s in SPLITS},
            "params": int(net.count_params()),
            "epochs_run": int(len(history)),
            # The weights kept are those of the best val epoch (early stopping restores them).
            "best_epoch": best_epoch(history, model),
        })
        preds, reports = [], []
        for s in ("val", "test"):
            idx = use[s]
            p = predict(net, pixels.images[idx], batch_size=batch_size, channels=channels)
            result_metrics[s] = evaluate.metrics(y[idx], p, groups=units_of[idx], seed=seed)
            preds.append(pd.DataFrame({
                "path": rows["path"].to_numpy()[idx], "label": rows["label"].to_numpy()[idx], "split": s,
                "p_fractured": np.round(p, 6),
            }))
            reports.append(f"== {s} ==\n{_report_text(y[idx], p, names)}")
            if s == "test":
                cm, cm_title = evaluate.confusion(y[idx], p), f"{model} on test"
        predictions = pd.concat(preds, ignore_index=True)
        nets = {"model.keras": net}
    result_metrics["skipped"] = pixels.errors  # kept rows whose file no longer decodes: path -> reason
    result_metrics["seconds"] = round(time.time() - started, 1)

    final = _run_dir(ws.reports, model)
    tmp = Path(tempfile.mkdtemp(dir=ws.reports, prefix=f".{final.name}."))
    try:
        for rel, net in nets.items():
            (tmp / rel).parent.mkdir(exist_ok=True)
            net.save(tmp / rel)
        write_csv(tmp / "history.csv", history)
        write_csv(tmp / "predictions.csv", predictions)
        write_json(tmp / "metrics.json", result_metrics)
        (tmp / "classification_report.txt").write_text("\n".join(reports), encoding="utf-8")
        evaluate.plot_confusion(cm, names, tmp / "confusion_matrix.png", title=cm_title)
        evaluate.plot_curves(history, tmp / "curves.png")
        os.replace(tmp, final)  # the run folder appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    model_out = list(nets.values()) if folds else nets["model.keras"]
    return TrainResult(model=model_out, history=history, metrics=result_metrics, predictions=predictions,
                       out_dir=final)


def _units(man, rows: pd.DataFrame) -> np.ndarray:
    """Each row's unit (folds.units) over the whole manifest: copies link patients too."""
    from .folds import recorded_group_by, units

    unit = dict(zip(man.table["path"], units(man.table, recorded_group_by(man.csv))))
    return np.array([unit[p] for p in rows["path"]], dtype=object)


def _positive(labels: pd.Series, wanted: str | None) -> str:
    pos = find_positive(labels, wanted)
    if pos is None:
        raise InputError("no label looks like the positive class (\"fractured\"); pass --positive-label")
    return pos


def _names(labels: pd.Series, pos: str) -> tuple[str, str]:
    """(negative label, positive label) as they are spelled in the manifest."""
    others = sorted({str(x) for x in labels if str(x).lower() != pos.lower() and str(x) != ""})
    return (others[0] if others else f"not {pos}", pos)


def _run_dir(reports: Path, model: str) -> Path:
    """reports/NAME/train-<model>-<YYYYmmdd-HHMMSS>, with -2, -3 ... if that second is taken."""
    reports.mkdir(parents=True, exist_ok=True)
    base = f"train-{model}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, k = reports / base, 1
    while path.exists():
        k += 1
        path = reports / f"{base}-{k}"
    return path
