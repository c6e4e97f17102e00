"""The `curate` command line: thin commands that parse options, call one library function,
and render the result with rich. Library errors become one red line and exit code 2.

TensorFlow is imported only inside `train`, `compare` and `demo`, so everything else starts fast.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from curate import __version__
from curate.errors import CurateError

app = typer.Typer(
    name="curate",
    help="Turn a raw, messy X-ray dataset into a clean, leakage-free one, and prove the difference.",
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

# ---- shared options (one definition, used by every command) -------------------------------

RootArg = Annotated[Path, typer.Argument(help="Dataset folder: ROOT/<split>/<label>/... or ROOT/<label>/...", show_default=False)]
NameOpt = Annotated[str | None, typer.Option("--name", help="Name of this dataset's results [default: ROOT's folder name].", rich_help_panel="Output")]
WorkdirOpt = Annotated[Path | None, typer.Option("--workdir", help="Results go to DIR/manifests/NAME and DIR/reports/NAME [default: current directory].", rich_help_panel="Output")]
WorkersOpt = Annotated[int | None, typer.Option("--workers", "-w", min=1, help="Processes to decode with [default: all cores].", rich_help_panel="Speed")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or tables; errors only.", rich_help_panel="Output")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the machine-readable summary on stdout instead of tables.", rich_help_panel="Output")]
LabelsCsvOpt = Annotated[Path | None, typer.Option("--labels-csv", help="CSV with a path or file-name column and a label column; overrides folder labels.", rich_help_panel="Input")]
FailOnOpt = Annotated[list[str] | None, typer.Option("--fail-on", help="Exit 1 when this holds: corrupt, leakage, conflict (repeat or comma-separate).", rich_help_panel="Exit code")]


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
    err_console.print(f"[red]Error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def handle_errors(func: Callable) -> Callable:
    """Library errors become one line and exit 2; Ctrl-C exits 130 without a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except CurateError as exc:
            raise fail(str(exc), exc.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None

    return wrapper


@contextmanager
def progress_bar(description: str, total: int, *, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A rich bar on stderr (so --json stdout stays clean); yields advance(n)."""
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


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def counts_table(title: str, counts: dict, *, key: str = "what", value: str = "files") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(key)
    table.add_column(value, justify="right")
    for k, v in counts.items():
        table.add_row(str(k), f"{v:,}" if isinstance(v, int) else str(v))
    return table


# ---- audit --------------------------------------------------------------------------------


@app.command()
@handle_errors
def audit(
    root: RootArg,
    name: NameOpt = None,
    workdir: WorkdirOpt = None,
    labels_csv: LabelsCsvOpt = None,
    workers: WorkersOpt = None,
    fail_on: FailOnOpt = None,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Decode every file under ROOT; report corrupt, unreadable, not-an-image and odd files.

    Writes DIR/manifests/NAME/audit.csv: one row per file with status, detail and flags.
    """
    from curate.audit import audit as run_audit, audit_summary
    from curate.layout import scan
    from curate.workspace import Workspace, write_csv

    fail_on_set = parse_fail_on(fail_on, {"corrupt"})
    ws = Workspace.for_root(root, name, workdir)
    table = scan(root, labels_csv=labels_csv)
    with progress_bar("audit", len(table), quiet=quiet or json_out) as advance:
        table = run_audit(table, root, workers=workers, progress=advance)
    out = write_csv(ws.manifests / "audit.csv", table)
    if not (table["status"] == "ok").any():
        raise fail(f"{root}: no readable images among {len(table):,} files (details in {out})")
    summary = audit_summary(table)
    summary["audit_csv"] = str(out)
    if json_out:
        print_json(summary)
    elif not quiet:
        console.print(counts_table(f"audit of {root}", summary["by_status"], key="status"))
        if summary["broken_details"]:
            console.print(counts_table("broken files by reason", summary["broken_details"], key="reason"))
        if summary["flags"]:
            console.print(counts_table("flags (not errors)", summary["flags"], key="flag"))
        console.print(f"wrote {out}")
    if "corrupt" in fail_on_set and summary["broken"]:
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
