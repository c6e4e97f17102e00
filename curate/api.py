"""The Python face of the command line: one function per command, same options, results as DataFrames.

Each function calls the same stage functions as its command and writes the same files; instead of
printing tables it returns them. Options that only shape the terminal output (--quiet, --json,
--fail-on) have no keyword: the result holds what they would have looked at. `cluster=ADDRESS` is
--cluster (CURATE_CLUSTER is read by the command line only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

    from curate.trainer.fit import TrainResult


@dataclass
class RunResult:
    """What `curate.run` found and wrote."""

    manifest: pd.DataFrame  # manifest.csv: one row per file; keep, split, reason, group, rotation
    naive: pd.DataFrame  # naive.csv: the same rows, original splits, every decodable image kept
    duplicates: pd.DataFrame  # duplicates.csv: one row per file in a group of two or more
    audit: pd.DataFrame  # audit.csv: every file with every column the steps added (status, flags, ...)
    summary: dict  # summary.json
    paths: dict[str, Path]  # what was written: manifest_csv, naive_csv, manifest_json, report_html, ...
    notes: list[str] = field(default_factory=list)  # how the split was made
    warnings: list[str] = field(default_factory=list)  # what the CLI prints as warnings


@dataclass
class AuditResult:
    """What `curate.audit` found and wrote."""

    audit: pd.DataFrame  # one row per file: status, detail, format, size, flags, ...
    summary: dict  # counts by status, broken files by reason, flags
    paths: dict[str, Path]
    warnings: list[str] = field(default_factory=list)  # about the layout and the labels


@dataclass
class DuplicatesResult:
    """What `curate.find_duplicates` found and wrote."""

    duplicates: pd.DataFrame  # one row per file in a group of two or more, representative first
    table: pd.DataFrame  # every file with its group columns (dups.csv)
    conflicts: pd.DataFrame  # groups whose copies carry different labels: group, labels, files
    summary: dict  # groups, leakage between splits, label conflicts
    paths: dict[str, Path]
    warnings: list[str] = field(default_factory=list)  # about the layout and the labels


@dataclass
class CompareResult:
    """What `curate.compare` measured and wrote."""

    metrics: pd.DataFrame  # tidy: model, test, metric, value, ci_low, ci_high, n, n_pos
    result: dict  # compare.json as written
    paths: dict[str, Path]


def run(root: str | Path, *, split: str = "auto", ratios: str | tuple = "0.8,0.1,0.1", seed: int = 0,
        keep_copies: bool = False, keep_conflicts: bool = False, group_by: str | None = None,
        labels_csv: str | Path | None = None, path_pattern: str | None = None, path_column: str | None = None,
        label_column: str | None = None, name: str | None = None, workdir: str | Path | None = None,
        workers: int | None = None, cluster: str | None = None) -> RunResult:
    """`curate run ROOT`: audit, hash, duplicates, orientation, both manifests and the report.

    Writes DIR/manifests/NAME/ (manifest.csv, naive.csv, manifest.json, audit.csv, duplicates.csv)
    and DIR/reports/NAME/ (summary.json, report.html); NAME defaults to ROOT's folder name, DIR to
    the current directory. Nothing is written inside ROOT. Raises curate.errors.InputError when no
    image has a label (the manifest would keep nothing).

    >>> result = curate.run("xray-messy", workdir="out")
    >>> result.manifest.query("keep").groupby(["split", "label"]).size()
    """
    from curate.dedup import duplicates_frame
    from curate.errors import InputError
    from curate.manifest import read_manifest, unlabelled_message
    from curate.parallel import local_or_cluster
    from curate.pipeline import run_pipeline
    from curate.split import parse_ratios
    from curate.workspace import Workspace

    ws = Workspace.for_root(root, name, workdir)
    with local_or_cluster(workers, cluster) as where:
        table, summary, split_rep, written = run_pipeline(
            Path(root), ws, labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column,
            label_column=label_column, group_by=group_by, workers=where, split=split,
            ratios=parse_ratios(ratios), seed=seed, keep_copies=keep_copies, keep_conflicts=keep_conflicts)
    unlabelled = unlabelled_message(table)  # as the command: files written, then one clear error
    if unlabelled:
        raise InputError(unlabelled)
    paths = {k: v for k, v in written.items() if isinstance(v, Path)}
    paths.update(audit_csv=ws.manifests / "audit.csv", duplicates_csv=ws.manifests / "duplicates.csv",
                 summary_json=ws.reports / "summary.json")
    return RunResult(manifest=read_manifest(paths["manifest_csv"]), naive=read_manifest(paths["naive_csv"]),
                     duplicates=duplicates_frame(table), audit=table, summary=summary, paths=paths,
                     notes=list(split_rep["notes"]), warnings=list(split_rep["warnings"]))


def audit(root: str | Path, *, labels_csv: str | Path | None = None, path_pattern: str | None = None,
          path_column: str | None = None, label_column: str | None = None, name: str | None = None,
          workdir: str | Path | None = None, workers: int | None = None, cluster: str | None = None) -> AuditResult:
    """`curate audit ROOT`: decode every file; corrupt, unreadable, not-an-image and odd files.

    Writes DIR/manifests/NAME/audit.csv. Raises curate.errors.InputError when no file decodes.

    >>> result = curate.audit("xray-messy", workdir="out")
    >>> result.audit.query("status != 'ok'")[["path", "status", "detail"]]
    """
    from curate.audit import audit as audit_files, audit_summary, dicom_warnings
    from curate.errors import InputError
    from curate.layout import scan
    from curate.parallel import local_or_cluster
    from curate.workspace import Workspace, write_csv

    ws = Workspace.for_root(root, name, workdir)
    table = scan(root, labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column,
                 label_column=label_column)
    warnings = table.attrs.get("warnings", [])
    with local_or_cluster(workers, cluster) as where:
        table = audit_files(table, root, workers=where)
    out = write_csv(ws.manifests / "audit.csv", table)
    if not (table["status"] == "ok").any():
        raise InputError(f"{root}: no readable images among {len(table):,} files (details in {out})")
    return AuditResult(audit=table, summary=audit_summary(table), paths={"audit_csv": out},
                       warnings=[*warnings, *dicom_warnings(table)])


def find_duplicates(root: str | Path, *, labels_csv: str | Path | None = None, path_pattern: str | None = None,
                    path_column: str | None = None, label_column: str | None = None, name: str | None = None,
                    workdir: str | Path | None = None, workers: int | None = None,
                    cluster: str | None = None) -> DuplicatesResult:
    """`curate dups ROOT`: duplicate groups within and across splits, label conflicts, leakage.

    Writes DIR/manifests/NAME/duplicates.csv and dups.csv; hashes are cached in DIR/.cache/curate.

    >>> dups = curate.find_duplicates("xray-messy", workdir="out")
    >>> dups.duplicates.groupby("group").size().describe()
    """
    from curate.dedup import duplicates_frame, dups_summary, label_conflicts, write_duplicates
    from curate.hashing import hex_hashes
    from curate.parallel import local_or_cluster
    from curate.pipeline import through_dups
    from curate.workspace import Workspace, write_csv

    ws = Workspace.for_root(root, name, workdir)
    with local_or_cluster(workers, cluster) as where:
        table = through_dups(Path(root), labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column,
                             label_column=label_column, workers=where, cache_dir=ws.cache)
    paths = {"duplicates_csv": write_duplicates(table, ws.manifests / "duplicates.csv"),
             "dups_csv": write_csv(ws.manifests / "dups.csv", hex_hashes(table))}
    return DuplicatesResult(duplicates=duplicates_frame(table), table=table,
                            conflicts=label_conflicts(table), summary=dups_summary(table), paths=paths,
                            warnings=list(table.attrs.get("warnings", [])))


def train(manifest: str | Path, *, model: str = "seed-cnn", epochs: int = 10, batch_size: int = 32,
          img_size: int = 224, lr: float = 1e-3, seed: int = 0, class_weight: str = "none", patience: int = 3,
          deterministic: bool = False, channels: int = 1, weights: str | Path | None = None,
          bf16: bool | None = None, root: str | Path | None = None, positive_label: str | None = None,
          name: str | None = None, workdir: str | Path | None = None, folds: int | None = None) -> TrainResult:
    """`curate train MANIFEST`: train the bundled CNN on a manifest's kept rows; score val and test.

    Returns the model (what model.keras holds: RGB 0-255 images of any size in, p(positive) out),
    the history and predictions (DataFrames), metrics.json's dict and the run folder
    DIR/reports/NAME/train-MODEL-TIME/. DIR defaults to the workdir the manifest was written to.

    >>> run = curate.train("out/manifests/xray-messy/manifest.csv", model="compact", epochs=5)
    >>> run.metrics["test"]["accuracy"], run.out_dir
    """
    from curate.trainer.fit import train_manifest

    return train_manifest(
        manifest, root=root, model=model, epochs=epochs, batch_size=batch_size, img_size=img_size, lr=lr,
        seed=seed, class_weight=class_weight, patience=patience, deterministic=deterministic, channels=channels,
        weights=weights, bf16=bf16, positive_label=positive_label, name=name, workdir=workdir, folds=folds)


def compare(naive: str | Path, curated: str | Path, *, model: str = "seed-cnn", epochs: int = 10,
            batch_size: int = 32, img_size: int = 224, lr: float = 1e-3, seed: int = 0, repeats: int = 1,
            class_weight: str = "none", patience: int = 3, deterministic: bool = False, channels: int = 1,
            weights: str | Path | None = None, bf16: bool | None = None, curated_copies: str = "all",
            root: str | Path | None = None, positive_label: str | None = None, name: str | None = None,
            workdir: str | Path | None = None, folds: int | None = None) -> CompareResult:
    """`curate compare --naive N --curated C`: train naive vs curated alike; leakage-free scores.

    `metrics` is tidy, one row per model, test set and metric (accuracy, balanced_accuracy, auc,
    precision, recall, f1) with its 95% bootstrap interval; `result` is compare.json.

    >>> cmp = curate.compare("out/manifests/x/naive.csv", "out/manifests/x/manifest.csv", model="compact")
    >>> cmp.metrics.query("metric == 'accuracy'").pivot(index="model", columns="test", values="value")
    """
    from curate.trainer.compare import compare as compare_manifests
    from curate.trainer.data import default_workdir

    result = compare_manifests(
        naive, curated, root=root, model=model, epochs=epochs, batch_size=batch_size, img_size=img_size, lr=lr,
        seed=seed, repeats=repeats, class_weight=class_weight, patience=patience, deterministic=deterministic,
        channels=channels, weights=weights, bf16=bf16, curated_copies=curated_copies,
        positive_label=positive_label, name=name, workdir=workdir, folds=folds)
    reports = Path(workdir or default_workdir(curated)) / "reports" / (name or Path(curated).resolve().parent.name)
    return CompareResult(metrics=tidy_metrics(result), result=result,
                         paths={"compare_json": reports / "compare.json", "compare_png": reports / "compare.png"})


# Which model was scored on which test set, in compare.json.
SCORED = (("naive", "naive_test", ("naive", "on_naive_test")),
          ("naive", "naive_test_leaked", ("naive", "naive_test_breakdown", "leaked")),
          ("naive", "naive_test_clean", ("naive", "naive_test_breakdown", "clean")),
          ("naive", "clean_test", ("naive", "on_clean_test")),
          ("curated", "curated_test", ("curated", "on_curated_test")),
          ("curated", "clean_test", ("curated", "on_clean_test")))


def tidy_metrics(result: dict) -> pd.DataFrame:
    """compare.json's METRICS blocks as one long table: model, test, metric, value, ci_low, ci_high, n, n_pos.

    A test set that could not be scored (e.g. a clean test set lacking a class) has no rows; a metric
    that cannot be computed there has value NaN."""
    import pandas as pd

    from curate.trainer.evaluate import RATES

    rows = []
    for model, test, keys in SCORED:
        block = result
        for key in keys:
            block = (block or {}).get(key)
        if not block:
            continue
        for metric in RATES:
            ci = block.get(f"{metric}_ci") or (None, None)
            rows.append({"model": model, "test": test, "metric": metric, "value": block.get(metric),
                         "ci_low": ci[0], "ci_high": ci[1], "n": block.get("n"), "n_pos": block.get("n_pos")})
    columns = ["model", "test", "metric", "value", "ci_low", "ci_high", "n", "n_pos"]
    return pd.DataFrame(rows, columns=columns).astype({"value": float, "ci_low": float, "ci_high": float})
