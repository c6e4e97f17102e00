"""The `curate` command line: thin commands that parse options, call one library function,
and render the result with rich. Library errors become one red line and exit code 2.

TensorFlow is imported only inside `train`, `compare` and `demo`, so everything else starts fast.
"""

from __future__ import annotations

import functools
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from curate import __version__
from curate.errors import CurateError
from curate.safe_text import terminal

try:  # typer >= 0.20 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException


class OneLineErrors(typer.Typer):
    """A usage error (an unknown option, --workers 0) is one line on stderr and exit 2, like the
    library's errors, rather than rich's boxed panel."""

    def __call__(self, *args, **kwargs):
        if kwargs.get("standalone_mode", True) is False:
            return super().__call__(*args, **kwargs)
        try:
            code = super().__call__(*args, standalone_mode=False, **kwargs)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # `curate` alone: the help
                typer.echo(exc.ctx.get_help())
                code = 0
            else:
                hint = f" (see {exc.ctx.command_path} --help)" if getattr(exc, "ctx", None) else ""
                fail(exc.format_message() + hint, exc.exit_code)
                code = exc.exit_code
        except typer.Abort:
            code = 130
        sys.exit(code if isinstance(code, int) else 0)


class SafeConsole(Console):
    """Shows text from the data as it is: no markup ('[/x]' is a label, not a tag) and control
    characters (an ESC in a file name) escaped rather than sent to the terminal."""

    def render_str(self, text: str, **kwargs):
        return super().render_str(terminal(text), **kwargs)


app = OneLineErrors(
    name="curate",
    help="Turn a raw, messy X-ray dataset into a clean, leakage-free one, and prove the difference.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = SafeConsole(markup=False)
err_console = SafeConsole(stderr=True, markup=False)


def _flags_show_no_type() -> None:
    """Typer (0.2x) prints a type after every option, flags too (`--quiet <bool>`, `--help <bool>`),
    though a flag takes no value (`--keep-copies true` is an error): print nothing after a flag."""
    from typer.core import TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)  # older Typer prints no types at all
    if shown is None or getattr(shown, "flags_show_no_type", False):
        return

    def display_type_rich(self, ctx):
        return None if self.is_flag else shown(self, ctx)

    display_type_rich.flags_show_no_type = True
    TyperOption.display_type_rich = display_type_rich


_flags_show_no_type()

# ---- shared options (one definition, used by every command) -------------------------------

RootArg = Annotated[Path, typer.Argument(help="Dataset folder: ROOT/<split>/<label>/... or ROOT/<label>/...", show_default=False)]
NameOpt = Annotated[str | None, typer.Option("--name", help="Name of this dataset's results \\[default: ROOT's folder name].", rich_help_panel="Output")]
WorkdirOpt = Annotated[Path | None, typer.Option("--workdir", help="Results go to DIR/manifests/NAME and DIR/reports/NAME \\[default: current directory].", rich_help_panel="Output")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", min=1, help="Processes to decode with \\[default: all cores].", rich_help_panel="Speed")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables; errors only.", rich_help_panel="Output")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the machine-readable summary on stdout instead of tables.", rich_help_panel="Output")]
LabelsCsvOpt = Annotated[Path | None, typer.Option("--labels-csv", help="CSV with a path or file-name column and a label column; overrides folder labels.", rich_help_panel="Input")]
ClusterOpt = Annotated[str | None, typer.Option("--cluster", metavar="ADDRESS", envvar="CURATE_CLUSTER", show_envvar=True, help="Run the per-file and per-pair work on the dask.distributed scheduler at ADDRESS (e.g. tcp://host:8786); every worker must read ROOT at the same path. Needs the dask extra.", rich_help_panel="Speed")]
PathPatternOpt = Annotated[str | None, typer.Option("--path-pattern", help="Regex searched in each relative path; its named groups label, split and group (a patient, a study) override the folders, e.g. '(?P<group>patient\\d+)/study\\d+_(?P<label>[a-z]+)/'.", rich_help_panel="Input")]
PathColumnOpt = Annotated[str | None, typer.Option("--path-column", help="The labels CSV's path or file-name column \\[default: path, file, filename, image, ...].", rich_help_panel="Input")]
LabelColumnOpt = Annotated[str | None, typer.Option("--label-column", help="The labels CSV's label column \\[default: label, class, target, ...].", rich_help_panel="Input")]
GroupByOpt = Annotated[str | None, typer.Option("--group-by", help="A column whose values (a patient id) must share a split under every policy: a labels-CSV column, a --path-pattern group, DICOM's patient_id or study_id \\[default: the pattern's group].", rich_help_panel="Split")]
FailOnOpt = Annotated[list[str] | None, typer.Option("--fail-on", metavar="a,b", help="Exit 1 when this holds: corrupt, leakage, conflict (repeat or comma-separate).", rich_help_panel="Exit code")]


def _version(value: bool) -> None:
    if value:
        console.print(f"curate {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    """Turn a raw, messy X-ray dataset into a clean, leakage-free one, and prove the difference."""


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red line on stderr; return the Exit to raise."""
    err_console.print(Text("Error:", style="red"), " ".join(message.split("\n")), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def warn(message: str, head: str = "warning:", style: str = "bold yellow", *, to=None) -> None:
    """One yellow line (on stderr unless `to` says otherwise); the message is shown as it is."""
    (to or err_console).print(Text(head, style=style), message, highlight=False, soft_wrap=True)


def handle_errors(func: Callable) -> Callable:
    """Library errors become one line and exit 2, as does a file that cannot be read or written
    (a read-only workdir, a full disk); Ctrl-C exits 130 without a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CurateError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except OSError as exc:
            where = f"{exc.filename}: " if exc.filename else ""
            raise fail(f"{where}{exc.strerror or exc}", 2) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


def on_cluster(func: Callable) -> Callable:
    """Give a command `--cluster ADDRESS`: while it runs, its `workers` is that cluster's
    executor (the stages take either), so local and cluster runs share every code path."""
    from curate.parallel import local_or_cluster

    @functools.wraps(func)
    def wrapper(*args, cluster: str | None = None, workers=None, **kwargs):
        with local_or_cluster(workers, cluster) as where:
            return func(*args, workers=where, **kwargs)

    sig = inspect.signature(func, eval_str=True)
    params = list(sig.parameters.values())
    at = next(i for i, p in enumerate(params) if p.name == "workers") + 1
    params.insert(at, inspect.Parameter("cluster", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None,
                                        annotation=ClusterOpt))
    wrapper.__signature__ = sig.replace(parameters=params)
    return wrapper


@contextmanager
def progress_bar(description: str, total: int | None, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A rich bar on stderr (so --json stdout stays clean); yields advance(n). total None: a count
    with no end (orientation looks at kept rows and at the members that decide them, in rounds)."""
    if quiet:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def parse_fail_on(values: list[str] | None, allowed: set[str]) -> set[str]:
    wanted = {v.strip() for item in (values or []) for v in item.split(",") if v.strip()}
    unknown = wanted - allowed
    if unknown:
        raise fail(f"--fail-on {', '.join(sorted(unknown))}: choose from {', '.join(sorted(allowed))}")
    return wanted


def print_warnings(lines: list[str]) -> None:
    """Loud even with --quiet / --json: on stderr."""
    for line in lines:
        warn(line)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def titled_table(title: str) -> Table:
    """A table whose title stays on one line (rich wraps a title to the table's own width)."""
    return Table(title=title, title_justify="left", min_width=len(title))


def counts_table(title: str, counts: dict, *, key: str = "what", value: str = "files") -> Table:
    table = titled_table(title)
    table.add_column(key)
    table.add_column(value, justify="right")
    for k, v in counts.items():
        table.add_row(str(k), f"{v:,}" if isinstance(v, int) else str(v))
    return table


# ---- audit --------------------------------------------------------------------------------


@app.command()
@handle_errors
@on_cluster
def audit(
    root: RootArg,
    name: NameOpt = None,
    workdir: WorkdirOpt = None,
    labels_csv: LabelsCsvOpt = None,
    path_pattern: PathPatternOpt = None,
    path_column: PathColumnOpt = None,
    label_column: LabelColumnOpt = None,
    workers: WorkersOpt = None,
    fail_on: FailOnOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Decode every file under ROOT; report corrupt, unreadable, not-an-image and odd files.

    Writes DIR/manifests/NAME/audit.csv: one row per file with status, detail and flags.
    """
    from curate.audit import audit as run_audit, audit_summary, dicom_warnings
    from curate.layout import scan
    from curate.workspace import Workspace, write_csv

    fail_on_set = parse_fail_on(fail_on, {"corrupt"})
    ws = Workspace.for_root(root, name, workdir)
    table = scan(root, labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column,
                 label_column=label_column)
    warnings = table.attrs.get("warnings", [])
    with progress_bar("audit", len(table), quiet=quiet or json_out) as advance:
        table = run_audit(table, root, workers=workers, progress=advance)
    warnings = warnings + dicom_warnings(table)
    out = write_csv(ws.manifests / "audit.csv", table)
    if not (table["status"] == "ok").any():
        raise fail(f"{root}: no readable images among {len(table):,} files (details in {out})")
    summary = audit_summary(table)
    summary["audit_csv"] = str(out)
    summary["warnings"] = warnings
    if json_out:
        print_json(summary)
    elif not quiet:
        console.print(counts_table(f"audit of {root}", summary["by_status"], key="status"))
        if summary["broken_details"]:
            console.print(counts_table("broken files by reason", summary["broken_details"], key="reason"))
        if summary["flags"]:
            console.print(counts_table("flags (not errors)", summary["flags"], key="flag"))
        console.print(f"wrote {out}")
    print_warnings(warnings)
    if "corrupt" in fail_on_set and summary["broken"]:
        raise typer.Exit(1)


# ---- hash and dups ------------------------------------------------------------------------


@app.command("hash")
@handle_errors
@on_cluster
def hash_cmd(
    root: RootArg,
    name: NameOpt = None,
    workdir: WorkdirOpt = None,
    labels_csv: LabelsCsvOpt = None,
    path_pattern: PathPatternOpt = None,
    path_column: PathColumnOpt = None,
    label_column: LabelColumnOpt = None,
    workers: WorkersOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Exact and perceptual (rotation- and flip-tolerant) hashes of every image, cached.

    Writes DIR/manifests/NAME/hashes.csv. Results are cached per file in DIR/.cache/curate,
    so a re-run only hashes new or changed files.
    """
    from curate.hashing import hash_images, hash_summary
    from curate.layout import scan
    from curate.workspace import Workspace, write_csv

    ws = Workspace.for_root(root, name, workdir)
    table = scan(root, labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column,
                 label_column=label_column)
    warnings = table.attrs.get("warnings", [])
    with progress_bar("hash", len(table), quiet=quiet or json_out) as advance:
        table = hash_images(table, root, workers=workers, progress=advance, cache_dir=ws.cache)
    out = write_csv(ws.manifests / "hashes.csv", _hex_hashes(table))
    summary = hash_summary(table)
    summary["hashes_csv"] = str(out)
    if json_out:
        print_json(summary)
    elif not quiet:
        console.print(counts_table(f"hashes of {root}", {k: v for k, v in summary.items() if k != "hashes_csv"}))
        console.print(f"wrote {out}")
    print_warnings(warnings)


def _hex_hashes(table):
    from curate.hashing import hex_hashes

    return hex_hashes(table)


@app.command()
@handle_errors
@on_cluster
def dups(
    root: RootArg,
    name: NameOpt = None,
    workdir: WorkdirOpt = None,
    labels_csv: LabelsCsvOpt = None,
    path_pattern: PathPatternOpt = None,
    path_column: PathColumnOpt = None,
    label_column: LabelColumnOpt = None,
    workers: WorkersOpt = None,
    fail_on: FailOnOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Duplicate groups within and across splits, label conflicts, leakage.

    Candidates from the hashes, each pair verified on the images (keypoints + a similarity
    transform + pixel correlation), so look-alike radiographs are not merged. Writes
    DIR/manifests/NAME/duplicates.csv (group, path, split, label, relation, angle, mirrored,
    score) and dups.csv (every file with its group columns).
    """
    from curate.dedup import dups_summary, label_conflicts, write_duplicates
    from curate.workspace import Workspace, write_csv

    fail_on_set = parse_fail_on(fail_on, {"leakage", "conflict"})
    ws = Workspace.for_root(root, name, workdir)
    table = _through_dups(root, ws, dict(labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column, label_column=label_column), workers, quiet or json_out)
    out = write_duplicates(table, ws.manifests / "duplicates.csv")
    write_csv(ws.manifests / "dups.csv", _hex_hashes(table))
    summary = dups_summary(table)
    summary["duplicates_csv"] = str(out)
    conflicts = label_conflicts(table)
    if json_out:
        print_json(summary)
    elif not quiet:
        console.print(counts_table(f"duplicates in {root}", {
            k: summary[k] for k in ("files", "duplicate_groups", "files_in_duplicate_groups", "exact_duplicate_groups",
                                    "near_duplicate_groups", "duplicates_removed", "leaked_files", "label_conflicts")}))
        if summary["relations"]:
            console.print(counts_table("copies by relation to their representative", summary["relations"], key="relation"))
        leak = titled_table("leakage: files of a split (row) with a copy in a split (column)")
        cols = list(summary["leakage"])
        leak.add_column("")
        for c in cols:
            leak.add_column(c, justify="right")
        for r in cols:
            leak.add_row(r, *(f"{summary['leakage'][r][c]['files']:,}" for c in cols))
        console.print(leak)
        for row in conflicts.head(10).itertuples(index=False):
            warn(f"group {row.group} ({row.labels}): {row.files}", "label conflict", "yellow", to=console)
        console.print(f"wrote {out}")
    if ("leakage" in fail_on_set and summary["leaked_files"]) or ("conflict" in fail_on_set and len(conflicts)):
        raise typer.Exit(1)


# ---- orient, manifest, verify, export -----------------------------------------------------


def _through_dups(root: Path, ws, layout: dict, workers: int | None, busy: bool):
    """scan -> audit -> hash (cached) -> dups, with progress bars: what orient and manifest need.
    layout: labels_csv, path_pattern, path_column, label_column. The layout's warnings are printed."""
    from curate.pipeline import through_dups

    with step_bars(busy) as bars:
        table = through_dups(root, **layout, workers=workers, cache_dir=ws.cache, progress=bars)
    print_warnings(table.attrs.get("warnings", []))
    return table


def _orient(table, root: Path, ws, workers: int | None, busy: bool, needed):
    from curate.orient import orient as run_orient

    with progress_bar("orient", None, quiet=busy) as advance:
        return run_orient(table, root, needed=needed, workers=workers, progress=advance, cache_dir=ws.cache)


@app.command()
@handle_errors
@on_cluster
def orient(
    root: RootArg,
    name: NameOpt = None,
    workdir: WorkdirOpt = None,
    labels_csv: LabelsCsvOpt = None,
    path_pattern: PathPatternOpt = None,
    path_column: PathColumnOpt = None,
    label_column: LabelColumnOpt = None,
    workers: WorkersOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Rotation each image needs to stand upright (EXIF, rotated copies, skewed scans).

    Each duplicate group's representative and every lone image are looked at; a copy gets its
    turn from its group. A copy is turned onto its group's upright member (the one not padded
    by a turn's fill wedges); a lone image turned by an arbitrary angle is straightened from
    the fill wedges at its corners. Unsure estimates stay at 0 and are flagged low-confidence.
    Writes DIR/manifests/NAME/orient.csv.
    """
    from curate.orient import orient_summary
    from curate.workspace import Workspace, write_csv

    ws = Workspace.for_root(root, name, workdir)
    busy = quiet or json_out
    table = _through_dups(root, ws, dict(labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column, label_column=label_column), workers, busy)
    table = _orient(table, root, ws, workers, busy, (table["status"] == "ok") & table["representative"])
    out = write_csv(ws.manifests / "orient.csv", _hex_hashes(table))
    summary = orient_summary(table)
    summary["orient_csv"] = str(out)
    if json_out:
        print_json(summary)
    elif not quiet:
        console.print(counts_table(f"orientation of {root}", {
            "reoriented": summary["reoriented"], **{f"  from {k}": v for k, v in summary["by_source"].items()},
            "low confidence (left at 0)": summary["low_confidence"], "mirrored copies": summary["mirrored"]}))
        console.print(f"wrote {out}")


def _class_table(title: str, counts: dict) -> Table:
    labels = sorted({lab for c in counts.values() for lab in c})
    table = titled_table(title)
    table.add_column("split")
    for lab in labels:
        table.add_column(lab, justify="right")
    for split, c in counts.items():
        table.add_row(split, *(f"{c.get(lab, 0):,}" for lab in labels))
    return table


@app.command()
@handle_errors
@on_cluster
def manifest(
    root: RootArg,
    split: Annotated[str, typer.Option("--split", help="auto: keep the dataset's splits if, leaks removed, each still holds half of its distinct radiographs and every class, else regroup; keep: the dataset's splits, each duplicate group wholly in one; regroup: a fresh group-aware split stratified by label.", rich_help_panel="Split")] = "auto",
    ratios: Annotated[str, typer.Option("--ratios", help="train,val,test shares of a fresh split (regroup, auto when it regroups, a layout without splits).", rich_help_panel="Split")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the regroup split.", rich_help_panel="Split")] = 0,
    group_by: GroupByOpt = None,
    keep_copies: Annotated[bool, typer.Option("--keep-copies", help="Keep a group's augmented copies in train (default: one image per group).", rich_help_panel="Split")] = False,
    keep_conflicts: Annotated[bool, typer.Option("--keep-conflicts", help="Keep groups whose copies carry different labels (default: drop them).", rich_help_panel="Split")] = False,
    labels_csv: LabelsCsvOpt = None,
    path_pattern: PathPatternOpt = None,
    path_column: PathColumnOpt = None,
    label_column: LabelColumnOpt = None,
    name: NameOpt = None,
    workdir: WorkdirOpt = None,
    workers: WorkersOpt = None,
    fail_on: FailOnOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write the naive and the curated manifest (manifest.csv, naive.csv, manifest.json).

    Runs the earlier steps as needed (hashes come from the cache). Every file under ROOT gets
    one row; no duplicate group is kept in two splits.
    """
    from curate.manifest import assign_splits_checked, group_by_column, naive_table, write_manifests
    from curate.split import POLICIES, parse_ratios, split_report
    from curate.workspace import Workspace

    fail_on_set = parse_fail_on(fail_on, {"leakage"})
    if split not in POLICIES:
        raise fail(f"--split {split}: choose {', '.join(POLICIES)}")
    ratio_values = parse_ratios(ratios)
    ws = Workspace.for_root(root, name, workdir)
    busy = quiet or json_out
    table = _through_dups(root, ws, dict(labels_csv=labels_csv, path_pattern=path_pattern, path_column=path_column, label_column=label_column), workers, busy)
    layout_warnings = table.attrs.get("warnings", [])  # printed already; manifest.json keeps them too
    if group_by:
        table = group_by_column(table, labels_csv, group_by, path_column=path_column)
    table = assign_splits_checked(table, split, ratio_values, seed, keep_copies, group_by, not keep_conflicts)
    table = _orient(table, root, ws, workers, busy, table["keep"])  # only kept images are looked at
    report_ = split_report(table, split)
    naive, how = naive_table(table, ratio_values, seed)
    options = {"split": split, "split_used": report_["policy_used"], "ratios": list(ratio_values), "seed": seed,
               "group_by": group_by,
               "keep_copies": keep_copies, "keep_conflicts": keep_conflicts,
               "labels_csv": str(labels_csv.resolve()) if labels_csv else None,
               "path_pattern": path_pattern, "path_column": path_column, "label_column": label_column}
    written = write_manifests(table, naive, ws.manifests, root=root, options=options, naive_split=how,
                              report={**report_, "warnings": layout_warnings + report_["warnings"]})
    counts = written["counts"]
    leaked_before = int(table.loc[table["reason"] == "leak"].shape[0])
    if json_out:
        print_json({"manifest_csv": str(written["manifest_csv"]), "naive_csv": str(written["naive_csv"]),
                    "manifest_json": str(written["manifest_json"]), "manifest_sha256": written["manifest_sha256"],
                    **counts, "notes": report_["notes"], "warnings": layout_warnings + report_["warnings"]})
    elif not quiet:
        console.print(counts_table(f"manifest of {root}", {"files": counts["files"], "kept": counts["kept"],
                                                           **{f"  dropped: {k}": v for k, v in counts["by_reason"].items()},
                                                           "residual leaks": counts["residual_leaks"]}))
        console.print(_class_table("class counts before (as found)", counts["class_counts_before"]))
        console.print(_class_table("class counts after (kept)", counts["class_counts_after"]))
        for note in report_["notes"]:
            console.print(f"note: {note}", highlight=False)
        console.print(f"wrote {written['manifest_csv']}, {written['naive_csv'].name}, {written['manifest_json'].name}")
    for warning in report_["warnings"]:  # loud even with --quiet / --json: on stderr
        warn(warning)
    _fail_if_unlabelled(table)
    if "leakage" in fail_on_set and leaked_before:
        raise typer.Exit(1)


@app.command()
@handle_errors
def verify(
    manifest_path: Annotated[Path, typer.Argument(metavar="MANIFEST", help="A manifest.csv written by curate.")],
    root: Annotated[Path | None, typer.Option("--root", help="Dataset folder \\[default: the ROOT in manifest.json].")] = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Check the files behind a manifest still match it: missing, changed (sha256), new. Exit 1 if any."""
    from curate.manifest import verify_manifest

    result = verify_manifest(manifest_path, root)
    if json_out:
        print_json(result)
    elif not quiet:
        for what in ("missing", "changed", "new"):
            for path in result[what][:20]:
                console.print(f"{what:8s} {path}", highlight=False)
            if len(result[what]) > 20:
                console.print(f"{what:8s} ... and {len(result[what]) - 20:,} more", highlight=False)
        console.print(f"{result['files']:,} files in the manifest: {len(result['missing']):,} missing, "
                      f"{len(result['changed']):,} changed, {len(result['new']):,} new" + (" - all match" if result["ok"] else ""))
    if not result["ok"]:
        raise typer.Exit(1)


@app.command()
@handle_errors
def export(
    manifest_path: Annotated[Path, typer.Argument(metavar="MANIFEST", help="A manifest.csv written by curate.")],
    dest: Annotated[Path, typer.Argument(help="New (or empty) folder, outside ROOT.")],
    apply_rotation: Annotated[bool, typer.Option("--apply-rotation", help="Write rotated images upright (as PNG).")] = False,
    root: Annotated[Path | None, typer.Option("--root", help="Dataset folder \\[default: the ROOT in manifest.json].")] = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Write the curated set as DEST/<split>/<label>/<label>_<sha256[:12]>.<ext> (loads with Keras).

    Only the bytes the manifest names are exported: a kept file that is gone or changed since is
    refused (listed on stderr, exit 1) and the rest are exported.
    """
    from curate.manifest import export as run_export

    result = run_export(manifest_path, dest, root=root, apply_rotation=apply_rotation)
    if json_out:
        print_json(result)
    elif not quiet:
        console.print(counts_table(f"exported to {result['dest']}", {**result["by_split"], "stood upright": result["rotated"]}))
    for item in result["refused"][:20]:
        warn(f"{item['path']}: {item['reason']}", "refused:")
    if len(result["refused"]) > 20:
        warn(f"... and {len(result['refused']) - 20:,} more", "refused:")
    if result["refused"]:
        raise typer.Exit(1)


# ---- report -------------------------------------------------------------------------------


@app.command()
@handle_errors
def report(
    root: RootArg,
    name: NameOpt = None,
    workdir: WorkdirOpt = None,
    max_groups: Annotated[int, typer.Option("--max-groups", min=0, help="Duplicate groups shown as thumbnail strips (the rest are counted).", rich_help_panel="Output")] = 60,
    thumb_px: Annotated[int, typer.Option("--thumb-px", min=32, max=512, help="Longest side of the inline thumbnails.", rich_help_panel="Output")] = 120,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """HTML report (and Markdown) from what the earlier steps wrote for ROOT.

    Reads DIR/manifests/NAME/ and DIR/reports/NAME/ (summary.json, compare.json when present);
    writes DIR/reports/NAME/report.html (one self-contained file: opens offline) and report.md.
    """
    from curate.report import report_from_disk
    from curate.workspace import Workspace

    ws = Workspace.for_root(root, name, workdir)
    written = report_from_disk(ws.name, ws.workdir, root=root.resolve(), max_groups=max_groups, thumb_px=thumb_px)
    result = {kind: str(path) for kind, path in written.items()}
    result["html_bytes"] = written["html"].stat().st_size
    if json_out:
        print_json(result)
    elif not quiet:
        console.print(f"wrote {result['html']} ({result['html_bytes'] / 1e6:.1f} MB) and {result['markdown']}")


# ---- train and compare (TensorFlow is imported inside these commands only) -----------------


class ModelName(str, Enum):
    seed_cnn = "seed-cnn"
    compact = "compact"
    mobilenetv2 = "mobilenetv2"


ModelOpt = Annotated[ModelName, typer.Option("--model", help="seed-cnn (the published CNN), compact (small, modern) or mobilenetv2.", rich_help_panel="Model")]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Most epochs to train (early stopping on val may stop sooner).", rich_help_panel="Model")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.", rich_help_panel="Model")]
ImgSizeOpt = Annotated[int, typer.Option("--img-size", min=16, help="Images are resized to N x N.", rich_help_panel="Model")]
LrOpt = Annotated[float, typer.Option("--lr", help="Adam learning rate.", rich_help_panel="Model")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (repeats use seed, seed+1, ...).", rich_help_panel="Model")]
ClassWeightOpt = Annotated[str, typer.Option("--class-weight", help="'balanced' weighs both classes equally; 'none' does not.", rich_help_panel="Model")]
PatienceOpt = Annotated[int, typer.Option("--patience", min=1, help="Epochs without val-loss improvement before stopping (compact: counted after a 3-epoch batch-norm warm-up).", rich_help_panel="Model")]
DeterministicOpt = Annotated[bool, typer.Option("--deterministic", help="Bit-reproducible training (slower).", rich_help_panel="Model")]
ChannelsOpt = Annotated[int, typer.Option("--channels", min=1, max=3, help="1 = greyscale; 3 = the published 3-channel input.", rich_help_panel="Model")]
WeightsOpt = Annotated[Path | None, typer.Option("--weights", help="Local MobileNetV2 no-top ImageNet weights file (never downloaded).", rich_help_panel="Model")]
Bf16Opt = Annotated[bool | None, typer.Option("--bf16/--no-bf16", help="bfloat16 mixed precision (~1.5x faster training on CPUs with AVX512-BF16/AMX) \\[default: on when the CPU has it].", rich_help_panel="Model", show_default=False)]
RootOpt = Annotated[Path | None, typer.Option("--root", help="Dataset folder the manifest's paths are relative to (default: the \"root\" in manifest.json beside it).", rich_help_panel="Input")]
FoldsOpt = Annotated[int | None, typer.Option("--folds", min=2, help="K-fold cross-validation over duplicate groups and patients, stratified by label: every kept radiograph is tested once by a model that never saw a copy of it. Takes K trainings (per repeat) instead of one.", rich_help_panel="Model", show_default=False)]
PositiveOpt = Annotated[str | None, typer.Option("--positive-label", help="The label that counts as positive \\[default: the one containing 'fract' but not 'not'/'non', else the second in sorted order].", rich_help_panel="Input")]
TrainWorkdirOpt = Annotated[Path | None, typer.Option("--workdir", help="Results go to DIR/reports/NAME \\[default: the DIR the manifest was written to (DIR/manifests/NAME/), else the current directory].", rich_help_panel="Output")]


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter (absl lines written straight to fd 2) muted.

    TF_CPP_MIN_LOG_LEVEL cannot silence the lines logged before absl is initialised, so fd 2
    is pointed at /dev/null for the import and the device probe only; errors still raise.
    """
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probe happens here, once
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextmanager
def train_progress(quiet: bool) -> Iterator[Progress | None]:
    """A rich Progress the trainer adds its own bars to (decoding, one per fit); None when quiet."""
    if quiet:
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=False) as bar:
        yield bar


def _cell(m: dict | None, key: str) -> str:
    """'0.712 [0.664, 0.761]', or '-' when the metric cannot be computed."""
    if not m or m.get(key) is None:
        return "-"
    ci = m.get(f"{key}_ci")
    return f"{m[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{m[key]:.3f}"


def _epochs(run) -> str:
    """Epochs run by one seed: '7', or '7+8+6' for the folds of a cross-validation."""
    return "+".join(map(str, run)) if isinstance(run, list) else str(run)


def metrics_table(title: str, rows: dict[str, dict | None], keys=("accuracy", "balanced_accuracy", "auc")) -> Table:
    table = titled_table(title)
    table.add_column("")
    table.add_column("n (pos)", justify="right")
    for k in keys:
        table.add_column(f"{k} [95% CI]", justify="right")
    by_class = any(m and "per_class" in m for m in rows.values())
    if by_class:  # leaked and clean test images differ in class mix: accuracy within each class
        table.add_column("accuracy per class", justify="right")
    for name, m in rows.items():
        n = f"{m['n']} ({m['n_pos']})" if m and "n" in m else "-"
        cells = [_cell(m, k) for k in keys]
        if by_class:
            per = (m or {}).get("per_class", {})
            cells.append(", ".join(f"{c} {_cell(v, 'accuracy').split(' ')[0]}" for c, v in per.items()))
        table.add_row(name, n, *cells)
    return table


@app.command()
@handle_errors
def train(
    manifest: Annotated[Path, typer.Argument(help="A manifest CSV (manifests/NAME/manifest.csv or naive.csv).", show_default=False)],
    model: ModelOpt = ModelName.seed_cnn,
    epochs: EpochsOpt = 10,
    batch_size: BatchOpt = 32,
    img_size: ImgSizeOpt = 224,
    lr: LrOpt = 1e-3,
    seed: SeedOpt = 0,
    class_weight: ClassWeightOpt = "none",
    patience: PatienceOpt = 3,
    deterministic: DeterministicOpt = False,
    channels: ChannelsOpt = 1,
    weights: WeightsOpt = None,
    bf16: Bf16Opt = None,
    root: RootOpt = None,
    positive_label: PositiveOpt = None,
    name: NameOpt = None,
    workdir: TrainWorkdirOpt = None,
    folds: FoldsOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train the bundled CNN on a manifest's kept rows; score it on val and test.

    Writes DIR/reports/NAME/train-MODEL-TIME/: model.keras, history.csv, metrics.json,
    classification_report.txt, confusion_matrix.png, curves.png, predictions.csv.

    With --folds K: K-fold cross-validation over the kept rows of every split instead (K
    trainings); metrics.json scores the out-of-fold predictions of all kept rows together,
    and each fold's model goes to fold-K/model.keras.
    """
    import_tensorflow_quietly()
    from curate.trainer.fit import train_manifest

    with train_progress(quiet or json_out) as bar:
        result = train_manifest(
            manifest, root=root, model=model.value, epochs=epochs, batch_size=batch_size, img_size=img_size,
            lr=lr, seed=seed, class_weight=class_weight, patience=patience, deterministic=deterministic,
            channels=channels, weights=weights, bf16=bf16, positive_label=positive_label, name=name,
            workdir=workdir, folds=folds, progress=bar,
        )
    m = result.metrics
    if json_out:
        print_json({**m, "out_dir": str(result.out_dir)})
    elif not quiet and folds:
        ran = ", ".join(f"{f['epochs_run']}" for f in m["folds"])
        console.print(metrics_table(f"{model.value}, {folds}-fold cross-validation on {manifest} (epochs run per fold: {ran})",
                                    {"out of fold, every kept row": m["out_of_fold"]}))
        console.print(f"wrote {result.out_dir}")
    elif not quiet:
        console.print(m["positive_note"], highlight=False)
        console.print(metrics_table(f"{model.value} trained on {manifest} (epochs run: {m['epochs_run']}, best: {m['best_epoch']})",
                                    {"val": m["val"], "test": m["test"]}))
        if m["skipped"]:
            warn(f"{len(m['skipped'])} kept file(s) no longer decode and were left out", "note:", "yellow", to=console)
        console.print(f"wrote {result.out_dir}")


def gaps(d: dict) -> str:
    """'+0.071 [+0.012, +0.130]' per metric; an interval excluding 0 is a real gap."""
    return ", ".join(
        f"{k} {d[k]:+.3f} [{d[k + '_ci'][0]:+.3f}, {d[k + '_ci'][1]:+.3f}]"
        for k in ("accuracy", "balanced_accuracy", "auc") if d.get(k) is not None and d.get(k + "_ci")
    ) or "not computable"


@app.command()
@handle_errors
def compare(
    naive: Annotated[Path, typer.Option("--naive", help="The naive manifest (manifests/NAME/naive.csv).", rich_help_panel="Input", show_default=False)],
    curated: Annotated[Path, typer.Option("--curated", help="The curated manifest (manifests/NAME/manifest.csv).", rich_help_panel="Input", show_default=False)],
    model: ModelOpt = ModelName.seed_cnn,
    epochs: EpochsOpt = 10,
    batch_size: BatchOpt = 32,
    img_size: ImgSizeOpt = 224,
    lr: LrOpt = 1e-3,
    seed: SeedOpt = 0,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Train each protocol N times (seeds seed..seed+N-1); report mean and spread.", rich_help_panel="Model")] = 1,
    class_weight: ClassWeightOpt = "none",
    patience: PatienceOpt = 3,
    deterministic: DeterministicOpt = False,
    channels: ChannelsOpt = 1,
    weights: WeightsOpt = None,
    bf16: Bf16Opt = None,
    curated_copies: Annotated[str, typer.Option("--curated-copies", help="'all': curated trains on every copy of its train groups (like for like); 'none': representatives only.", rich_help_panel="Input")] = "all",
    folds: FoldsOpt = None,
    root: RootOpt = None,
    positive_label: PositiveOpt = None,
    name: NameOpt = None,
    workdir: TrainWorkdirOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train naive vs curated with the same settings; leakage-free accuracy side by side.

    Writes DIR/reports/NAME/compare.json and compare.png.

    With --folds K the curated protocol is K-fold cross-validation over duplicate groups
    (and patients), stratified by label: every kept radiograph is tested once, so a set with
    few distinct radiographs still gets a tight interval. It takes K curated trainings per
    repeat instead of one; the naive protocol stays the dataset's own split.
    """
    import_tensorflow_quietly()
    from curate.trainer.compare import compare as run_compare

    with train_progress(quiet or json_out) as bar:
        result = run_compare(
            naive, curated, root=root, model=model.value, epochs=epochs, batch_size=batch_size,
            img_size=img_size, lr=lr, seed=seed, repeats=repeats, class_weight=class_weight, patience=patience,
            deterministic=deterministic, channels=channels, weights=weights, bf16=bf16, curated_copies=curated_copies,
            positive_label=positive_label, name=name, workdir=workdir, folds=folds, progress=bar,
        )
    if json_out:
        print_json(result)
        return
    if quiet:
        return
    n, c = result["naive"], result["curated"]
    seeds = f"{repeats} seeds, mean" if repeats > 1 else f"seed {seed}"
    ran = result["training"]
    ran = ", ".join(f"{p} {'/'.join(map(_epochs, ran[p]['epochs_run']))}" for p in ("naive", "curated"))
    counts = result["counts"]
    console.print(result["settings"]["positive_note"], highlight=False)
    curated_train = (f"{folds} folds of {counts['curated_test']['n']} kept + {counts['curated_copies']['n']} copies"
                     if folds else f"{counts['curated_train']['n']} ({counts['curated_train']['n_pos']})")
    console.print(
        f"trained on: naive {counts['naive_train']['n']} images ({counts['naive_train']['n_pos']} {result['settings']['positive_label']}), "
        f"curated {curated_train}, copies: {curated_copies}; "
        f"epochs run (early stopping on val): {ran}; {result['settings']['precision']}", highlight=False)
    curated_row = f"curated models, out of fold ({folds} folds)" if folds else "curated model on curated test"
    console.print(metrics_table(f"naive vs curated: {model.value}, {img_size} px, up to {epochs} epochs, {seeds}", {
        "naive model on naive test": n["on_naive_test"],
        "  on its leaked images": n["naive_test_breakdown"]["leaked"],
        "  on its clean images": n["naive_test_breakdown"]["clean"],
        "naive model on clean test": n["on_clean_test"],
        curated_row: c["on_curated_test"],
        "curated model on clean test": c["on_clean_test"],
    }))

    against = "curated out of fold" if folds else "curated on its test"
    console.print(f"inflation (naive on its test - {against}): {gaps(result['inflation'])}", highlight=False)
    if result.get("naive_own_minus_clean"):
        console.print(f"naive model, its own test - the clean test: {gaps(result['naive_own_minus_clean'])}",
                      highlight=False)
    for note in [result["clean_test"]["note"], *result.get("notes", [])]:
        if note:
            warn(note, "note:", "yellow", to=console)
    from curate.trainer.data import default_workdir

    out = Path(workdir or default_workdir(curated)) / "reports" / (name or curated.resolve().parent.name) / "compare.json"
    console.print(f"wrote {out} and compare.png")


# ---- run and demo -------------------------------------------------------------------------


@contextmanager
def step_bars(quiet: bool) -> Iterator[Callable | None]:
    """One progress display for a whole run: a bar per step, added as the step starts."""
    if quiet:
        yield None
        return
    columns = (TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console) as bars:
        def start(step: str, total: int) -> Callable[[int], None]:
            task = bars.add_task(step, total=total)
            return lambda n: bars.advance(task, n)

        yield start


def _run(root: Path, ws, *, quiet: bool, json_out: bool, **options):
    from curate.pipeline import run_pipeline

    with step_bars(quiet or json_out) as bars:
        table, summary, split_rep, written = run_pipeline(root, ws, progress=bars, **options)
    if json_out:
        print_json(summary)
    elif not quiet:
        shown = {k: summary[k] for k in ("files", "images_ok", "corrupt", "not_images", "exact_duplicate_groups",
                                         "near_duplicate_groups", "duplicates_removed", "leaked_files",
                                         "label_conflicts", "reoriented", "residual_leaks", "kept")}
        console.print(counts_table(f"curate run {root}", shown, value="count"))
        console.print(counts_table("seconds per step", summary["steps"], key="step", value="seconds"))
        console.print(_class_table("class counts before (as found)", written["counts"]["class_counts_before"]))
        console.print(_class_table("class counts after (kept)", written["counts"]["class_counts_after"]))
        for note in split_rep["notes"]:
            console.print(f"note: {note}", highlight=False)
        console.print(f"wrote {written['manifest_csv']}, {written['naive_csv'].name}, {written['manifest_json'].name}")
        if "report_html" in written:
            console.print(f"report: {written['report_html']}")
    for warning in split_rep["warnings"]:
        warn(warning)
    _fail_if_unlabelled(table)
    return summary, written


def _fail_if_unlabelled(table) -> None:
    """ROOT without label folders (and no CSV or pattern giving labels): a manifest that keeps
    nothing is unusable input, said in one line (exit 2) rather than a silent exit 0."""
    from curate.manifest import unlabelled_message

    message = unlabelled_message(table)
    if message:
        raise fail(message)


@app.command()
@handle_errors
@on_cluster
def run(
    root: RootArg,
    split: Annotated[str, typer.Option("--split", help="auto: keep the dataset's splits if, leaks removed, each still holds half of its distinct radiographs and every class, else regroup; keep: the dataset's splits, each duplicate group wholly in one; regroup: a fresh group-aware split stratified by label.", rich_help_panel="Split")] = "auto",
    ratios: Annotated[str, typer.Option("--ratios", help="train,val,test shares of a fresh split (regroup, auto when it regroups, a layout without splits).", rich_help_panel="Split")] = "0.8,0.1,0.1",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the regroup split.", rich_help_panel="Split")] = 0,
    keep_copies: Annotated[bool, typer.Option("--keep-copies", help="Keep a group's augmented copies in train.", rich_help_panel="Split")] = False,
    keep_conflicts: Annotated[bool, typer.Option("--keep-conflicts", help="Keep groups whose copies carry different labels.", rich_help_panel="Split")] = False,
    group_by: GroupByOpt = None,
    labels_csv: LabelsCsvOpt = None,
    path_pattern: PathPatternOpt = None,
    path_column: PathColumnOpt = None,
    label_column: LabelColumnOpt = None,
    name: NameOpt = None,
    workdir: WorkdirOpt = None,
    workers: WorkersOpt = None,
    fail_on: FailOnOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """All steps in one pass: audit, hash, dups, orient, manifests, then the report.

    Writes everything `manifest` writes, plus audit.csv, duplicates.csv, reports/NAME/summary.json
    and report.html. A re-run reuses the hash cache.
    """
    from curate.split import POLICIES, parse_ratios
    from curate.workspace import Workspace

    fail_on_set = parse_fail_on(fail_on, {"corrupt", "leakage", "conflict"})
    if split not in POLICIES:
        raise fail(f"--split {split}: choose {', '.join(POLICIES)}")
    ws = Workspace.for_root(root, name, workdir)
    summary, _ = _run(root, ws, quiet=quiet, json_out=json_out, labels_csv=labels_csv, path_pattern=path_pattern,
                      path_column=path_column, label_column=label_column, group_by=group_by, workers=workers,
                      split=split, ratios=parse_ratios(ratios), seed=seed, keep_copies=keep_copies,
                      keep_conflicts=keep_conflicts)
    held = {"corrupt": summary["corrupt"], "leakage": summary["leaked_files"], "conflict": summary["label_conflicts"]}
    if any(held[k] for k in fail_on_set):
        raise typer.Exit(1)


@app.command()
@handle_errors
def demo(
    directory: Annotated[Path, typer.Argument(help="Folder for the demo dataset and its results.")] = Path("demo"),
    profile: Annotated[str, typer.Option("--profile", help="How the messy set is built: kaggle (augmentation chains, test mostly byte copies of train) or default (every kind of copy and junk file, scattered over three splits).")] = "kaggle",
    seed: Annotated[int, typer.Option("--seed", help="Seed of the messy-dataset builder.")] = 7,
    no_train: Annotated[bool, typer.Option("--no-train", help="Skip the short naive-vs-curated training.")] = False,
    model: Annotated[ModelName, typer.Option("--model", help="Model of the short comparison.")] = ModelName.seed_cnn,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs of the short comparison.")] = 20,
    img_size: Annotated[int, typer.Option("--img-size", min=16, help="Image size of the short comparison.")] = 96,
    workers: WorkersOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Build a messy, leaky dataset from the bundled real sample and run everything on it.

    The dataset goes to DIR/xray-kaggle (--profile default: DIR/xray-messy), its ground truth
    beside it; then `curate run`, a short `curate compare` (the published CNN on small images) and
    the report, all under DIR.
    """
    from curate.demo import prepare_demo
    from curate.workspace import Workspace

    root, truth, built = prepare_demo(directory, seed=seed, profile=profile)
    if not quiet:
        console.print(f"{'built' if built else 'reusing'} the messy dataset {root} (ground truth: {truth})")
    ws = Workspace.for_root(root, None, directory)
    _, written = _run(root, ws, quiet=quiet, json_out=False, workers=workers)
    if not no_train:
        import_tensorflow_quietly()
        from curate.report import report_from_disk
        from curate.trainer.compare import compare as run_compare

        with train_progress(quiet) as bar:
            result = run_compare(written["naive_csv"], written["manifest_csv"], root=root, model=model.value,
                                 epochs=epochs, batch_size=32, img_size=img_size, lr=1e-3, seed=0, repeats=1,
                                 class_weight="balanced", patience=3, deterministic=False, channels=1,
                                 weights=None, curated_copies="all", positive_label=None, name=ws.name,
                                 workdir=ws.workdir, progress=bar)
        report_from_disk(ws.name, ws.workdir, root=root.resolve())
        if not quiet:
            n, c = result["naive"], result["curated"]
            title = f"naive vs curated: {model.value}, {img_size} px, up to {epochs} epochs (a demo, not a result)"
            console.print(metrics_table(title, {
                "naive model on naive test": n["on_naive_test"],
                "  on its leaked images": n["naive_test_breakdown"]["leaked"],
                "  on its clean images": n["naive_test_breakdown"]["clean"],
                "curated model on curated test": c["on_curated_test"],
            }, keys=("accuracy", "auc")))
            console.print(f"inflation (naive on its test - curated on its test): {gaps(result['inflation'])}",
                          highlight=False)
    if not quiet:
        console.print(f"open the report: {ws.reports / 'report.html'}")


def _reflowed(doc: str) -> str:
    """A docstring's paragraphs as single lines: Rich keeps a help text's line breaks, so the
    source's wrapping would otherwise show as ragged lines in a narrower terminal."""
    return "\n\n".join(" ".join(p.split("\n")) for p in inspect.cleandoc(doc).split("\n\n"))


for _info in app.registered_commands:  # each command's help is its reflowed docstring
    if _info.help is None and _info.callback is not None and _info.callback.__doc__:
        _info.help = _reflowed(_info.callback.__doc__)


if __name__ == "__main__":  # pragma: no cover
    app()
