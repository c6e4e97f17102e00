"""`curate run`: scan -> audit -> hash -> dups -> split -> orient -> manifests -> report, timed per step.

The same stage functions as the single commands; this only strings them together, times them
and writes summary.json. `progress(step, total)` returns an advance(n) callback (or None).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from curate.workspace import Workspace, write_csv, write_json


def through_dups(root: str | Path, *, labels_csv=None, path_pattern: str | None = None,
                 path_column: str | None = None, label_column: str | None = None,
                 workers: int | None = None, cache_dir=None,
                 progress: Callable | None = None, seconds: dict | None = None):
    """scan -> audit -> hash (cached) -> dups: the table orient and split need.

    progress(step, total) returns an advance(n) callback (or None); `seconds` collects step times.
    What the layout could not tell (layout.scan's warnings) stays in table.attrs["warnings"]."""
    from curate.audit import audit, dicom_warnings
    from curate.dedup import find_duplicates
    from curate.hashing import hash_images
    from curate.layout import scan

    seconds = {} if seconds is None else seconds
    bar = progress or (lambda step, total: None)

    def timed(step, func, *args, **kwargs):
        start = time.perf_counter()
        out = func(*args, **kwargs)
        seconds[step] = round(time.perf_counter() - start, 2)
        return out

    table = timed("scan", scan, root, labels_csv=labels_csv, path_pattern=path_pattern,
                  path_column=path_column, label_column=label_column)
    warnings = table.attrs.get("warnings", [])
    n = len(table)
    table = timed("audit", audit, table, root, workers=workers, progress=bar("audit", n), cache_dir=cache_dir)
    warnings = warnings + dicom_warnings(table)
    table = timed("hash", hash_images, table, root, workers=workers, progress=bar("hash", n), cache_dir=cache_dir)
    table = timed("dups", find_duplicates, table, root, workers=workers, progress=bar("dups", n), cache_dir=cache_dir)
    table.attrs["warnings"] = warnings
    return table


def run_pipeline(root: str | Path, ws: Workspace, *, labels_csv=None, path_pattern: str | None = None,
                 path_column: str | None = None, label_column: str | None = None, group_by: str | None = None,
                 workers: int | None = None, split: str = "auto", ratios=(0.8, 0.1, 0.1), seed: int = 0,
                 keep_copies: bool = False, keep_conflicts: bool = False, report: bool = True,
                 progress: Callable | None = None) -> tuple:
    """Run every step on ROOT; return (table, summary, split_report, written paths)."""
    from curate.audit import audit_summary
    from curate.dedup import dups_summary, write_duplicates
    from curate.manifest import assign_splits_checked, group_by_column, naive_table, write_manifests
    from curate.orient import orient, orient_summary
    from curate.split import split_report

    root = Path(root)
    seconds: dict[str, float] = {}
    bar = progress or (lambda step, total: None)
    start = time.perf_counter()
    table = through_dups(root, labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column,
                         label_column=label_column, workers=workers, cache_dir=ws.cache,
                         progress=progress, seconds=seconds)
    layout_warnings = table.attrs.get("warnings", [])
    if group_by:
        table = group_by_column(table, labels_csv, group_by, path_column=path_column)
    t = time.perf_counter()
    table = assign_splits_checked(table, split, ratios, seed, keep_copies, group_by, not keep_conflicts)
    split_rep = split_report(table, split)
    manifest_seconds = time.perf_counter() - t
    # orientation after the split: only kept images (and what decides them) are looked at
    t = time.perf_counter()
    table = orient(table, root, workers=workers, cache_dir=ws.cache, progress=bar("orient", None))
    seconds["orient"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter() - manifest_seconds
    naive, how = naive_table(table, ratios, seed)
    options = {"split": split, "split_used": split_rep["policy_used"], "ratios": list(ratios), "seed": seed,
               "group_by": group_by, "keep_copies": keep_copies,
               "keep_conflicts": keep_conflicts, "labels_csv": str(Path(labels_csv).resolve()) if labels_csv else None,
               "path_pattern": path_pattern, "path_column": path_column, "label_column": label_column}
    split_rep["warnings"] = layout_warnings + split_rep["warnings"]
    written = write_manifests(table, naive, ws.manifests, root=root, options=options, report=split_rep, naive_split=how)
    write_csv(ws.manifests / "audit.csv", table)
    write_duplicates(table, ws.manifests / "duplicates.csv")
    seconds["manifest"] = round(time.perf_counter() - t, 2)

    aud, dup, ori = audit_summary(table), dups_summary(table), orient_summary(table)
    summary = {
        "files": aud["files"],
        "images_ok": aud["images_ok"],
        "corrupt": aud["corrupt"] + aud["unreadable"] + aud["too_large"],
        "not_images": aud["not_images"],
        "annotations": aud["annotations"],
        "exact_duplicate_groups": dup["exact_duplicate_groups"],
        "near_duplicate_groups": dup["near_duplicate_groups"],
        "duplicates_removed": int(table["reason"].isin(["duplicate", "leak"]).sum()),
        "leaked_files": dup["leaked_files"],
        "label_conflicts": dup["label_conflicts"],
        "reoriented": ori["reoriented"],
        "residual_leaks": written["counts"]["residual_leaks"],
        "seconds": None,
        "steps": seconds,
        "kept": written["counts"]["kept"],
        "by_reason": written["counts"]["by_reason"],
        "split_used": split_rep["policy_used"],
        "notes": split_rep["notes"],
        "warnings": split_rep["warnings"],
    }
    summary["seconds"] = round(time.perf_counter() - start, 2)  # the report shows the run up to here
    if report:
        from curate.report import render_report

        t = time.perf_counter()
        compare_json = ws.reports / "compare.json"  # from an earlier `curate compare`, if any
        paths = render_report(table, root, summary, out_dir=ws.reports, name=ws.name,
                              provenance=_read_json(written["manifest_json"]),
                              compare=_read_json(compare_json) if compare_json.is_file() else None)
        seconds["report"] = round(time.perf_counter() - t, 2)
        written = {**written, **{f"report_{k}": v for k, v in paths.items()}}
        summary["seconds"] = round(time.perf_counter() - start, 2)
    write_json(ws.reports / "summary.json", summary)
    return table, summary, split_rep, written


def _read_json(path):
    import json

    return json.loads(Path(path).read_text(encoding="utf-8"))
