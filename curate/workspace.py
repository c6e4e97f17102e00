"""Where a run's results go: DIR/manifests/NAME/, DIR/reports/NAME/, and the per-file cache."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from curate.errors import UsageError
from curate.safe_text import printable, spreadsheet


@dataclass(frozen=True)
class Workspace:
    name: str
    workdir: Path

    @classmethod
    def for_root(cls, root: str | Path, name: str | None = None, workdir: str | Path | None = None) -> "Workspace":
        """NAME defaults to ROOT's folder name, DIR to the current directory; never inside ROOT."""
        root = Path(root).resolve()
        workdir = Path(workdir or ".").resolve()
        if workdir == root or root in workdir.parents:
            raise UsageError(f"--workdir {workdir} is inside the dataset {root}: results are never written into ROOT")
        name = name or root.name or "dataset"
        if "/" in name or "\x00" in name or name in (".", ".."):
            raise UsageError(f"--name {name!r}: must be a plain folder name")
        ws = cls(name=name, workdir=workdir)
        for results in (ws.manifests, ws.reports, ws.cache):  # a ROOT named manifests, reports or .cache
            if results == root or root in results.parents:
                raise UsageError(f"results would go to {results}, inside the dataset {root}: "
                                 "pass --workdir DIR outside it")
        return ws

    @property
    def manifests(self) -> Path:
        return self.workdir / "manifests" / self.name

    @property
    def reports(self) -> Path:
        return self.workdir / "reports" / self.name

    @property
    def cache(self) -> Path:
        return self.workdir / ".cache" / "curate"


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write to a temporary file beside `path`, then rename: readers never see half a file.
    Text is UTF-8; a file name's undecodable bytes in it are written as \\xNN (safe_text)."""
    path = Path(path)
    if isinstance(data, str):
        data = printable(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8", "newline": ""})) as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj) -> Path:
    return write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_csv(path: str | Path, table) -> Path:
    """A DataFrame as CSV, atomically, with stable formatting: no index, '\\n' line ends,
    booleans as true/false (what INTERFACE.md promises for `keep`), text cells a spreadsheet
    will not run as formulas (safe_text.spreadsheet)."""
    import pandas as pd

    out = table.copy()
    for col in out.columns:
        if out[col].dtype == bool:
            out[col] = out[col].map({True: "true", False: "false"})
        elif out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = [spreadsheet(v) if isinstance(v, str) else v for v in out[col].tolist()]  # (a list: no per-cell lookup)
    return write_atomic(path, out.to_csv(index=False, lineterminator="\n"))
