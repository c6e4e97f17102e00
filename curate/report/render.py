"""The report a reviewer reads: one self-contained HTML file and the same sections in Markdown.

Every section is computed once from the table (one row per file, columns as in docs/TABLE.md)
and rendered twice: HTML with inline thumbnails and SVG charts, Markdown as plain tables.
The HTML needs no network and no JavaScript: CSS is inline, images are base64 `data:` URIs and
a Content-Security-Policy forbids scripts and outside resources, so a hostile file name can
at worst show up as text. Everything taken from the data is escaped on the way out.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

import curate
from curate.errors import CurateError, InputError
from curate.imageio import decode, rotate
from curate.manifest import read_manifest
from curate.report import charts
from curate.workspace import write_atomic, write_json

# Caps that keep a report of a huge dataset readable and small ("N more" is said for the rest).
MAX_GROUPS = 60  # duplicate groups shown as strips
MAX_MEMBERS = 12  # thumbnails per group strip
MAX_BROKEN = 40  # broken and odd files listed
MAX_ORIENT = 24  # orientation fixes shown before/after
MAX_CONFLICTS = 30  # label-conflict groups shown
MAX_SAMPLE = 24  # sample grid
MAX_LABELS = 10  # classes drawn in the charts; the rest are summed as "other"
THUMB_PX = 120
IMAGE_BUDGET = 14_000_000  # bytes of inline images; past it thumbnails become placeholders
JPEG_QUALITY = 72

SPLIT_ORDER = ("train", "val", "test")
# Okabe-Ito: told apart by colour-blind readers too.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#999999", "#6A3D9A", "#B15928")

# summary.json fields, how a reviewer should read them, and which values are bad news.
SUMMARY_FIELDS = (
    ("files", "Files found", "every file under the dataset folder", None),
    ("images_ok", "Usable images", "decoded without error", None),
    ("corrupt", "Corrupt", "truncated or undecodable image files", "bad"),
    ("not_images", "Not images", "text, HTML or other non-image files", "warn"),
    ("exact_duplicate_groups", "Exact duplicate groups", "byte- or pixel-identical copies", "warn"),
    ("near_duplicate_groups", "Near-duplicate groups", "re-encoded, resized, rotated or mirrored copies", "warn"),
    ("duplicates_removed", "Duplicates removed", "copies dropped from the curated set", None),
    ("leaked_files", "Leaked files (before)", "val/test files with a copy in another split", "bad"),
    ("label_conflicts", "Label conflicts", "one radiograph found under two labels", "bad"),
    ("reoriented", "Reoriented", "images given a rotation to stand upright", None),
    ("residual_leaks", "Residual leaks (after)", "must be 0: copies still shared between splits", "must0"),
    ("seconds", "Seconds", "wall time of the run", None),
)


# ----------------------------------------------------------------------------- table helpers


def _as_bool(series: pd.Series) -> pd.Series:
    """Booleans as the table has them, or as manifest.csv writes them ("true"/"false")."""
    if series.dtype == bool:
        return series
    return series.map(lambda v: str(v).strip().lower() in ("true", "1", "1.0", "yes"))


def _prepare(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with every column the report reads, typed, whatever stages ran (or CSV strings)."""
    t = table.copy().reset_index(drop=True)
    for name in ("path", "label", "orig_split", "split", "reason", "status", "detail", "flags", "relation",
                 "sha256", "orient_source", "orient_flag", "format"):
        if name not in t:
            t[name] = "ok" if name == "status" else ""
        col = t[name]
        if name == "flags":  # audit may hand over lists; the manifest has ';'-joined text
            col = col.map(lambda v: ";".join(v) if isinstance(v, (list, tuple)) else v)
        t[name] = col.fillna("").astype(str).replace({"nan": "", "None": "", "<NA>": ""})
    t.loc[t["status"] == "", "status"] = "ok"
    if "keep" in t:
        t["keep"] = _as_bool(t["keep"])
    else:
        t["keep"] = t["status"] == "ok"
    for name, default in (("rotation", 0.0), ("dup_angle", 0.0), ("dup_score", np.nan),
                          ("orient_confidence", np.nan), ("size", np.nan), ("width", np.nan), ("height", np.nan)):
        t[name] = pd.to_numeric(t[name], errors="coerce") if name in t else default
        if name in ("rotation", "dup_angle"):
            t[name] = t[name].fillna(0.0)
    group = pd.to_numeric(t["group"], errors="coerce") if "group" in t else pd.Series(np.nan, index=t.index)
    # a file without a group is its own group: give it an id no real group uses
    first_spare = int(group.max()) + 1 if group.notna().any() else 0
    spare = pd.Series(range(first_spare, first_spare + len(t)), index=t.index)
    t["group"] = group.fillna(spare).astype(int)
    if "representative" in t:
        t["representative"] = _as_bool(t["representative"])
    else:
        t["representative"] = ~t.duplicated("group")
    t["mirrored"] = _as_bool(t["mirrored"]) if "mirrored" in t else False
    return t


def _split_names(values) -> list[str]:
    """Known splits in train/val/test order, then any others, then the empty one."""
    present = {v for v in values}
    names = [s for s in SPLIT_ORDER if s in present]
    names += sorted(v for v in present if v not in SPLIT_ORDER and v)
    if "" in present:
        names.append("")
    return names


def _split_title(name: str) -> str:
    return name if name else "(no split)"


def _fmt(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        return f"{float(v):,.{digits}f}"
    return str(v)


def _n(count: int, word: str) -> str:
    """'1 image', '2,000 images'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _deg(value) -> str:
    """'90°', '17.5°'."""
    return f"{float(value):.1f}".rstrip("0").rstrip(".") + "°"


def _turn(ccw: float) -> str:
    """A counter-clockwise angle said the short way round: '11.1° clockwise' rather than '348.9°'."""
    ccw = float(ccw) % 360
    if ccw > 180:
        return f"{_deg(360 - ccw)} clockwise"
    return f"{_deg(ccw)} counter-clockwise" if ccw != 180 else "180° (upside down)"


def _ci(metrics: dict | None, key: str) -> str:
    """'0.912 [0.880, 0.940]' from a METRICS dict, '–' when it could not be computed."""
    if not metrics or metrics.get(key) is None:
        return "–"
    ci = metrics.get(f"{key}_ci")
    if ci and len(ci) == 2 and ci[0] is not None and ci[1] is not None:
        return f"{metrics[key]:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
    return f"{metrics[key]:.3f}"


def _e(text) -> str:
    """HTML-escape anything that came from the data (quotes too: it may land in an attribute)."""
    return html.escape("" if text is None else str(text), quote=True)


def _md(text) -> str:
    """Escape for a Markdown table cell: no raw HTML, no table breaks, no accidental emphasis."""
    text = html.escape("" if text is None else str(text), quote=False)
    for ch in ("\\", "|", "`", "*", "_", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return text.replace("\n", " ").replace("\r", " ") or " "


def _md_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _html_table(header: list[str], rows: list[list[str]], *, num: set[int] = frozenset(), cls: str = "") -> str:
    """Cells must already be escaped HTML."""
    head = "".join(f'<th class="num">{h}</th>' if i in num else f"<th>{h}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _more(shown: int, total: int, what: str) -> tuple[str, str]:
    if total <= shown:
        return "", ""
    text = f"{total - shown:,} more {what} not shown (showing {shown:,} of {total:,})."
    return f'<p class="more">{_e(text)}</p>', f"\n\n*{text}*"


# ----------------------------------------------------------------------------- thumbnails


class Thumbs:
    """Small JPEG data: URIs of dataset images, within a byte budget; None where not possible."""

    def __init__(self, root: str | Path | None, px: int, budget: int = IMAGE_BUDGET):
        self.root = Path(root) if root else None
        self.px = px
        self.budget = budget
        self.used = 0
        self.skipped = 0  # over budget
        self._cache: dict[tuple[str, float, bool], str | None] = {}

    def _encode(self, path: str, rotation: float, raw: bool = False) -> str | None:
        if self.root is None or not under_root(self.root, path):
            return None  # a tampered path or a link out of ROOT: its image never reaches the page
        try:
            img = decode(self.root / path, max_side=self.px)
            pixels = _undo_exif(img.pixels, img.exif_orientation) if raw else img.pixels
            if rotation:
                pixels = rotate(pixels, rotation)
            buf = io.BytesIO()
            Image.fromarray(pixels).save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
        except (CurateError, OSError, ValueError, MemoryError):
            return None  # the page shows a placeholder; the file's status says why
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def img(self, path: str, rotation: float = 0.0, placeholder: str = "no preview", raw: bool = False) -> str:
        """An <img> with the thumbnail inline, or a placeholder box saying why there is none
        (raw: as stored in the file, before its EXIF orientation)."""
        key = (path, float(rotation) % 360, raw)
        if key not in self._cache:
            self._cache[key] = self._encode(*key)
        uri = self._cache[key]
        if uri is None:
            return f'<div class="ph">{_e(placeholder)}</div>'
        if self.used + len(uri) > self.budget:  # every use is inlined again, so count every use
            self.skipped += 1
            return '<div class="ph">size limit: not inlined</div>'
        self.used += len(uri)
        return f'<img src="{_e(uri)}" alt="{_e(path)}">'


def _undo_exif(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels as stored, before the loader applied EXIF orientation `orientation`."""
    undo = {2: np.fliplr, 3: lambda p: np.rot90(p, 2), 4: np.flipud, 5: np.transpose, 6: lambda p: np.rot90(p, 1),
            7: lambda p: np.rot90(p, 2).T, 8: lambda p: np.rot90(p, -1)}
    return np.ascontiguousarray(undo[orientation](pixels)) if orientation in undo else pixels


def under_root(root: Path, rel: str) -> bool:
    """Whether root/rel is a file under ROOT, links followed: not absolute, no '..', no link out."""
    if not rel or "\x00" in rel or os.path.isabs(rel) or ".." in re.split(r"[\\/]", rel):
        return False
    real_root = os.path.realpath(root)
    return os.path.realpath(os.path.join(root, rel)).startswith(real_root.rstrip(os.sep) + os.sep)


def _figure(thumbs: Thumbs, row, caption: str, *, rep: bool = False, rotation: float = 0.0) -> str:
    """One thumbnail with a caption (caption is escaped HTML)."""
    ph = "cannot decode" if row["status"] != "ok" else "no preview"
    cls = "th" + (" rep" if rep else "") + ("" if row["keep"] else " dropped")
    return (f'<figure class="{cls}" title="{_e(row["path"])}">{thumbs.img(row["path"], rotation, ph)}'
            f'<figcaption>{caption}<br><span class="path">{_e(row["path"])}</span></figcaption></figure>')


def _fate(row) -> str:
    if row["keep"]:
        return f'<span class="tag good">kept → {_e(_split_title(row["split"]))}</span>'
    return f'<span class="tag bad">dropped: {_e(row["reason"] or "not kept")}</span>'


# ----------------------------------------------------------------------------- facts


@dataclass
class Section:
    id: str
    title: str
    html: str
    md: str


def class_counts(t: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Files per split and label: as found (decodable images, original split) and kept (new split)."""
    before = t[t["status"] == "ok"]
    after = t[t["keep"]]
    out = {}
    for name, rows, col in (("before", before, "orig_split"), ("after", after, "split")):
        counts = rows.groupby([col, "label"]).size().unstack(fill_value=0) if len(rows) else pd.DataFrame()
        if len(counts):
            counts = counts.reindex(_split_names(counts.index))
        out[name] = counts
    return out


def leakage_matrix(t: pd.DataFrame, col: str, rows: pd.Series | None = None) -> dict:
    """Duplicate groups (and their files) shared by each pair of splits; the diagonal counts
    groups with two or more files inside one split. {"splits": [...], "groups": {(a, b): n},
    "files": {(a, b): n}}."""
    sub = t[(t["status"] == "ok") if rows is None else rows]
    sub = sub[sub[col] != ""]
    splits = _split_names(sub[col].unique())
    groups: dict[tuple[str, str], int] = {}
    files: dict[tuple[str, str], int] = {}
    per = sub.groupby("group")[col]
    sizes = per.size()
    multi = sizes[sizes > 1].index
    members = sub[sub["group"].isin(multi)]
    where = members.groupby("group")[col].agg(lambda s: s.value_counts().to_dict())
    for a in splits:
        for b in splits:
            groups[(a, b)] = files[(a, b)] = 0
    for counts in where:
        names = [s for s in splits if s in counts]
        for i, a in enumerate(names):
            if counts[a] > 1:
                groups[(a, a)] += 1
                files[(a, a)] += counts[a]
            for b in names[i + 1:]:
                for x, y in ((a, b), (b, a)):
                    groups[(x, y)] += 1
                    files[(x, y)] += counts[a] + counts[b]
    return {"splits": splits, "groups": groups, "files": files}


def conflict_groups(t: pd.DataFrame, conflicts=None) -> list[int]:
    """Groups whose decodable members carry more than one label (or the ones the caller found)."""
    if conflicts is not None:
        if isinstance(conflicts, pd.DataFrame):
            ids = conflicts["group"] if "group" in conflicts else []
        else:
            ids = conflicts
        return sorted({int(g) for g in ids})
    ok = t[(t["status"] == "ok") & (t["label"] != "")]
    n_labels = ok.groupby("group")["label"].nunique()
    return sorted(int(g) for g in n_labels[n_labels > 1].index)


def summary_from_table(t: pd.DataFrame) -> dict:
    """The summary.json counts as far as the table tells them (for a report without summary.json)."""
    t = _prepare(t)
    ok = t[t["status"] == "ok"]
    sizes = ok.groupby("group").size()
    dup_ids = sizes[sizes > 1].index
    dups = ok[ok["group"].isin(dup_ids)]
    n_sha = dups.groupby("group")["sha256"].nunique()
    exact = int((n_sha == 1).sum()) if len(dups) and (dups["sha256"] != "").all() else 0
    spans = ok.groupby("group")["orig_split"].nunique()
    leaked = ok[ok["orig_split"].isin(["val", "test"]) & ok["group"].isin(spans[spans > 1].index)]
    kept = t[t["keep"]]
    kept_spans = kept.groupby("group")["split"].nunique()
    return {
        "files": len(t),
        "images_ok": len(ok),
        "corrupt": int(t["status"].isin(["corrupt", "unreadable", "too-large"]).sum()),
        "not_images": int((t["status"] == "not-image").sum()),
        "exact_duplicate_groups": exact,
        "near_duplicate_groups": len(dup_ids) - exact,
        "duplicates_removed": int(t["reason"].isin(["duplicate", "leak"]).sum()),
        "leaked_files": len(leaked),
        "label_conflicts": len(conflict_groups(t)),
        "reoriented": int((ok["rotation"] % 360 != 0).sum()),
        "residual_leaks": int((kept_spans > 1).sum()),  # groups, as split.residual_leaks counts them
        "seconds": None,
    }


# ----------------------------------------------------------------------------- sections


def _overview(summary: dict, t: pd.DataFrame, warnings: list[str], notes: list[str]) -> Section:
    cards, md_rows = [], []
    for key, title, help_text, kind in SUMMARY_FIELDS:
        value = summary.get(key)
        if isinstance(value, dict):  # per-step times: the total here, the steps below
            value = sum(v for v in value.values() if isinstance(v, (int, float)))
        shown = _fmt(value, 1) if key == "seconds" else _fmt(value)
        cls = ""
        if kind == "must0" and isinstance(value, (int, float)):
            cls = "good" if value == 0 else "bad"
        elif kind and isinstance(value, (int, float)) and value > 0:
            cls = kind
        cards.append(f'<div class="card {cls}" id="sum-{key}"><div class="n">{_e(shown)}</div>'
                     f'<div class="k">{_e(title)}</div><div class="h">{_e(help_text)}</div></div>')
        md_rows.append([_md(title), f"`{key}`", shown, _md(help_text)])
    verdict = _verdict(summary)
    steps = _step_times(summary)
    html_steps = md_steps = ""
    if steps:
        rows = [[_e(k), _e(f"{v:,.1f}")] for k, v in steps.items()]
        html_steps = "<h3>Time per step (seconds)</h3>" + _html_table(["step", "seconds"], rows, num={1})
        md_steps = "\n\n**Time per step (seconds)**\n\n" + _md_table(
            ["step", "seconds"], [[_md(k), f"{v:,.1f}"] for k, v in steps.items()])
    alerts = "".join(f'<p class="alert">⚠ {_e(w)}</p>' for w in warnings)
    alerts += "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    body = f'<p class="verdict">{_e(verdict)}</p>{alerts}<div class="cards">{"".join(cards)}</div>{html_steps}'
    md_alerts = "".join(f"> **Warning:** {_md(w)}\n>\n" for w in warnings) + "".join(f"> {_md(n)}\n>\n" for n in notes)
    md = (f"{_md(verdict)}\n\n" + (md_alerts.rstrip(">\n") + "\n\n" if md_alerts else "")
          + _md_table(["count", "field", "value", "meaning"], md_rows) + md_steps)
    return Section("overview", "Overview", body, md)


def _step_times(summary: dict) -> dict[str, float]:
    for key in ("seconds", "steps", "step_seconds", "timings", "seconds_per_step"):
        value = summary.get(key)
        if isinstance(value, dict):
            found = {}
            for k, v in value.items():
                if isinstance(v, dict):  # {"audit": {"seconds": 1.2, ...}}
                    v = v.get("seconds")
                if isinstance(v, (int, float)):
                    found[str(k)] = float(v)
            if found:
                return found
    return {}


def _verdict(s: dict) -> str:
    """One plain sentence a clinician can repeat."""
    def n(key):
        v = s.get(key)
        return v if isinstance(v, (int, float)) else None
    parts = []
    if n("files") is not None and n("images_ok") is not None:
        parts.append(f"Of {n('files'):,} files, {n('images_ok'):,} are usable images.")
    if n("leaked_files") is not None:
        if n("leaked_files"):
            parts.append(f"Before curation {_n(n('leaked_files'), 'validation/test file')} had a copy in another split "
                         f"(leakage that inflates test scores).")
        else:
            parts.append("No validation/test file had a copy in another split.")
    if n("residual_leaks") is not None:
        parts.append("After curation no copy is shared between splits." if n("residual_leaks") == 0 else
                     f"WARNING: {_n(n('residual_leaks'), 'file')} still share a copy across splits after curation.")
    return " ".join(parts)


def _class_section(t: pd.DataFrame) -> Section:
    counts = class_counts(t)
    totals: dict[str, int] = {}
    for c in counts.values():
        if not c.empty:
            for label, n in c.sum().items():
                totals[label] = totals.get(label, 0) + int(n)
    labels = sorted(totals, key=lambda k: (-totals[k], k))
    if len(labels) > MAX_LABELS:  # many classes: keep the big ones readable, sum the rest
        keep, rest = labels[:MAX_LABELS - 1], labels[MAX_LABELS - 1:]
        for name, c in counts.items():
            if not c.empty:
                c = c.copy()
                c["other"] = c[[r for r in rest if r in c]].sum(axis=1)
                counts[name] = c.drop(columns=[r for r in rest if r in c])
        labels = keep + ["other"]
    colours = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    scale = max([int(c.sum(axis=1).max()) for c in counts.values() if not c.empty] or [1])
    legend = "".join(f'<span><i style="background:{colours[l]}"></i>{_e(l or "(no label)")}</span>' for l in labels)
    figures, md_parts = [], []
    for name, title in (("before", "As found: decodable images by original split"),
                        ("after", "After curation: kept images by new split")):
        c = counts[name]
        table_html = md_table = ""
        if not c.empty:
            cols = [l for l in labels if l in c]
            rows = [[_e(_split_title(s))] + [_e(f"{int(r[l]):,}") for l in cols] + [_e(f"{int(r.sum()):,}")]
                    for s, r in c.iterrows()]
            table_html = _html_table(["split"] + [_e(l or "(no label)") for l in cols] + ["total"], rows,
                                     num=set(range(1, len(cols) + 2)))
            md_table = _md_table(["split"] + [_md(l or "(no label)") for l in cols] + ["total"],
                                 [[_md(_split_title(s))] + [f"{int(r[l]):,}" for l in cols] + [f"{int(r.sum()):,}"]
                                  for s, r in c.iterrows()])
        bars = charts.stacked_bars(c.rename(index=_split_title), colours, scale) if not c.empty else \
            '<p class="more">No images.</p>'
        figures.append(f'<div class="chart"><h3>{_e(title)}</h3>{bars}'
                      f'{table_html}</div>')
        md_parts.append(f"**{title}**\n\n{md_table or '(none)'}")
    body = (f'<p class="lead">Images per class in each split, before and after curation, on one scale. '
            f'A split that loses most of a class after curation was padded with copies.</p>'
            f'<div class="legend">{legend}</div><div class="charts">{"".join(figures)}</div>')
    return Section("classes", "Class distribution per split", body, "\n\n".join(md_parts))


def _sample_section(t: pd.DataFrame, thumbs: Thumbs) -> Section:
    """A stable, stratified sample of kept images, shown upright (after `rotation`)."""
    pool = t[t["keep"] & (t["status"] == "ok")].copy()
    if pool.empty:
        return Section("sample", "Sample images", '<p class="more">No kept images.</p>', "(no kept images)")
    pool["_key"] = pool["sha256"].where(pool["sha256"] != "", pool["path"])
    pool = pool.sort_values(["_key", "path"])
    buckets = [g for _, g in pool.groupby(["split", "label"], sort=True)]
    picked, i = [], 0
    while len(picked) < MAX_SAMPLE and any(i < len(b) for b in buckets):  # round robin over split x label
        picked += [b.iloc[i] for b in buckets if i < len(b)][:MAX_SAMPLE - len(picked)]
        i += 1
    figs = [_figure(thumbs, r, f'<b>{_e(r["label"] or "(no label)")}</b> · {_e(_split_title(r["split"]))}',
                    rotation=r["rotation"]) for r in picked]
    body = (f'<p class="lead">{len(picked)} of {len(pool):,} kept images, a few from every split and class, '
            f'shown upright as the curated set will use them.</p><div class="grid">{"".join(figs)}</div>')
    md = _md_table(["path", "label", "split"], [[_md(r["path"]), _md(r["label"]), _md(r["split"])] for r in picked])
    return Section("sample", "Sample images", body, md)


def _broken_section(t: pd.DataFrame, thumbs: Thumbs) -> Section:
    # a detection export's label files (status annotation) are accounted for in the tally, not listed
    bad = t[((t["status"] != "ok") & (t["status"] != "annotation")) | (t["flags"] != "")].copy()
    bad["_order"] = (bad["status"] == "ok").astype(int)  # errors first, then oddities
    bad = bad.sort_values(["_order", "status", "path"])
    shown = bad.head(MAX_BROKEN)
    rows, md_rows = [], []
    for _, r in shown.iterrows():
        status = f'<span class="tag {"good" if r["status"] == "ok" else "bad"}">{_e(r["status"])}</span>'
        flags = "".join(f'<span class="tag warn">{_e(f)}</span>' for f in r["flags"].split(";") if f)
        size = _fmt(int(r["size"])) if r["size"] == r["size"] else "–"
        preview = thumbs.img(r["path"], 0, "cannot decode") if r["status"] == "ok" else ""
        rows.append([f'<span class="path">{_e(r["path"])}</span>', status, _e(r["detail"]), flags, size,
                     f'<figure class="th mini">{preview}</figure>' if preview else ""])
        md_rows.append([_md(r["path"]), _md(r["status"]), _md(r["detail"]), _md(r["flags"].replace(";", ", ")), size])
    counts = t["status"].value_counts()
    tally = ", ".join(f"{k}: {int(v):,}" for k, v in counts.items())
    n_flagged = int(((t["status"] == "ok") & (t["flags"] != "")).sum())
    lead = f"Status of every file ({tally}); {_n(n_flagged, 'usable image')} with a flag worth a look."
    more_html, more_md = _more(len(shown), len(bad), "files")
    if bad.empty:
        body = f'<p class="lead">{_e(lead)}</p><p class="none">No broken or odd files.</p>'
        return Section("broken", "Broken and odd files", body, f"{_md(lead)}\n\nNo broken or odd files.")
    body = (f'<p class="lead">{_e(lead)}</p>'
            + _html_table(["file", "status", "detail", "flags", "bytes", "preview"], rows, num={4}) + more_html)
    md = f"{_md(lead)}\n\n" + _md_table(["file", "status", "detail", "flags", "bytes"], md_rows) + more_md
    return Section("broken", "Broken and odd files", body, md)


def _relation(r) -> str:
    if r["representative"]:
        return _kept_as(r)
    rel = r["relation"] or "duplicate"
    return rel


def _kept_as(r) -> str:
    """'original' (the file the others were derived from, see curate.original), or, when its own
    corners show a turn's wedges (orient turned it by them), the least-changed copy of a group
    that holds no original."""
    if r["orient_source"] == "skew":
        return "least-changed copy (no original in the group: its own corners show a turn's wedges)"
    return "original"


def _group_order(t: pd.DataFrame, ids, conflicts: set[int]) -> list[int]:
    sub = t[t["group"].isin(ids)]
    spans = sub[sub["orig_split"] != ""].groupby("group")["orig_split"].nunique()
    sizes = sub.groupby("group").size()
    return sorted(ids, key=lambda g: (not spans.get(g, 0) > 1, g not in conflicts, -int(sizes.get(g, 0)), g))


def _strip(t_group: pd.DataFrame, thumbs: Thumbs, head: str, *, leak: bool, label_first: bool = False) -> str:
    members = t_group.assign(_rep=~t_group["representative"]).sort_values(
        ["_rep", "orig_split", "path"], key=lambda s: s.map(
            {n: i for i, n in enumerate(SPLIT_ORDER)}).fillna(9) if s.name == "orig_split" else s)
    figs = []
    for _, r in members.head(MAX_MEMBERS).iterrows():
        rel = _relation(r)
        if label_first:
            cap = (f'<span class="tag warn">{_e(r["label"] or "(no label)")}</span> '
                   f'{_e(_split_title(r["orig_split"]))} · {_e(rel)}<br>{_fate(r)}')
        else:
            star = "★ " if r["representative"] else ""
            cap = (f'<b>{_e(star + rel)}</b><br>{_e(_split_title(r["orig_split"]))} · {_e(r["label"] or "(no label)")}'
                   f'<br>{_fate(r)}')
        figs.append(_figure(thumbs, r, cap, rep=bool(r["representative"])))
    if len(members) > MAX_MEMBERS:
        figs.append(f'<figure class="th more-tile"><div class="ph">+{len(members) - MAX_MEMBERS:,} more</div></figure>')
    return f'<div class="strip{" leak" if leak else ""}"><div class="head">{head}</div>{"".join(figs)}</div>'


def _groups_section(t: pd.DataFrame, thumbs: Thumbs, conflicts: set[int], max_groups: int) -> Section:
    sizes = t.groupby("group").size()
    ids = [int(g) for g in sizes[sizes > 1].index]
    order = _group_order(t, ids, conflicts)
    shown = order[:max_groups]
    strips, md_rows = [], []
    by_group = {g: rows for g, rows in t[t["group"].isin(shown)].groupby("group")}
    for g in shown:
        rows = by_group[g]
        splits = [s for s in _split_names(rows["orig_split"].unique()) if s]
        leak = len(splits) > 1
        labels = sorted(set(rows["label"]))
        head = (f'<b>Group {g}</b> · {len(rows)} files · found in {_e(", ".join(map(_split_title, splits)) or "–")}'
                + (' <span class="tag bad">crosses splits</span>' if leak else "")
                + (' <span class="tag bad">label conflict</span>' if g in conflicts else ""))
        strips.append(_strip(rows, thumbs, head, leak=leak))
        members = "; ".join(
            ("**" if r["representative"] else "") + f'{_md(r["path"])} ({_md(r["orig_split"] or "-")}, '
            f'{_md(r["label"])}, {_md(_relation(r))}{", kept" if r["keep"] else ", dropped: " + _md(r["reason"])})'
            + ("**" if r["representative"] else "")
            for _, r in rows.head(MAX_MEMBERS).iterrows())
        if len(rows) > MAX_MEMBERS:
            members += f"; +{len(rows) - MAX_MEMBERS} more"
        md_rows.append([str(g), str(len(rows)), _md(", ".join(splits)), _md(", ".join(labels)), members])
    lead = (f"{_n(len(ids), 'group')} of files that show the same radiograph "
            f"({int(sizes[sizes > 1].sum()) if ids else 0:,} files). Groups that cross splits come first.")
    key = ("The representative (★, blue frame) is the original of each: the file the others were derived "
           "from (turned, rescaled, re-toned or padded copies show marks it lacks); where a group holds no "
           "original, the least-changed copy, and its caption says so. The green tag "
           "marks the file the curated set keeps, red tags why the others were dropped.")
    more_html, more_md = _more(len(shown), len(ids), "groups")
    if not ids:
        return Section("duplicates", "Duplicate groups", '<p class="none">No duplicates found.</p>',
                       "No duplicates found.")
    body = f'<p class="lead">{_e(lead)} {_e(key)}</p><div class="strips">{"".join(strips)}</div>{more_html}'
    md = _md(lead) + "\n\n" + _md_table(["group", "files", "splits", "labels", "members (representative in bold)"],
                                        md_rows) + more_md
    return Section("duplicates", "Duplicate groups", body, md)


def _matrix_html(m: dict, title: str) -> tuple[str, str]:
    splits = m["splits"]
    if not splits:
        return f"<h3>{_e(title)}</h3><p class=\"more\">No split information.</p>", f"**{title}**\n\n(no splits)"
    rows, md_rows = [], []
    for a in splits:
        cells, md_cells = [f"<b>{_e(_split_title(a))}</b>"], [_md(_split_title(a))]
        for b in splits:
            g, f = m["groups"][(a, b)], m["files"][(a, b)]
            text = f"{_n(g, 'group')} · {_n(f, 'file')}" if g else "0"
            cls = "diag" if a == b else ("hot" if g else "")
            cells.append(f'<td class="{cls}">{_e(text)}</td>')
            md_cells.append(f"{g:,} / {f:,}")
        rows.append(cells)
        md_rows.append(md_cells)
    head = "".join(f"<th>{_e(_split_title(s))}</th>" for s in splits)
    body = "".join("<tr><th>" + r[0] + "</th>" + "".join(r[1:]) + "</tr>" for r in rows)
    table = (f'<div class="scroll"><table class="matrix"><thead><tr><th></th>{head}</tr></thead>'
             f'<tbody>{body}</tbody></table></div>')
    md = f"**{title}** (groups / files; diagonal: duplicates inside one split)\n\n" + _md_table(
        [" "] + [_md(_split_title(s)) for s in splits], md_rows)
    return f"<h3>{_e(title)}</h3>{table}", md


def _leakage_section(t: pd.DataFrame, leakage: dict | None) -> Section:
    usable = isinstance(leakage, dict) and {"splits", "groups", "files"} <= set(leakage)
    before = leakage if usable else leakage_matrix(t, "orig_split")
    after = leakage_matrix(t, "split", rows=t["keep"] & (t["status"] == "ok"))
    h1, m1 = _matrix_html(before, "Before curation (original splits)")
    h2, m2 = _matrix_html(after, "After curation (kept files, new splits)")
    lead = ("Duplicate groups shared between each pair of splits. Off the diagonal, every shared group is "
            "leakage: the model is tested on an image it was trained on. On the diagonal: groups "
            "with copies inside one split.")
    body = (f'<p class="lead">{_e(lead)}</p>'
            f'<div class="charts"><div class="chart">{h1}</div><div class="chart">{h2}</div></div>')
    return Section("leakage", "Leakage between splits", body, f"{_md(lead)}\n\n{m1}\n\n{m2}")


def _conflicts_section(t: pd.DataFrame, thumbs: Thumbs, ids: list[int]) -> Section:
    if not ids:
        return Section("conflicts", "Label conflicts", '<p class="none">No radiograph appears under two labels.</p>',
                       "No radiograph appears under two labels.")
    shown = ids[:MAX_CONFLICTS]
    strips, md_rows = [], []
    for g, rows in t[t["group"].isin(shown)].groupby("group"):
        labels = sorted(set(rows["label"]))
        tags = [f'<span class="tag bad">{_e(label or "(none)")}</span>' for label in labels]
        head = f'<b>Group {g}</b> · labels: ' + " vs ".join(tags)
        strips.append(_strip(rows, thumbs, head, leak=True, label_first=True))
        md_rows.append([str(g), _md(" vs ".join(labels)),
                        "; ".join(f'{_md(r["path"])} ({_md(r["label"])}, {_md(r["orig_split"] or "-")})'
                                  for _, r in rows.head(MAX_MEMBERS).iterrows())])
    more_html, more_md = _more(len(shown), len(ids), "conflicting groups")
    lead = (f"{_n(len(ids), 'radiograph')} found under more than one label. A reader has to decide which label "
            f"is right; by default the curated set drops them.")
    body = f'<p class="lead">{_e(lead)}</p><div class="strips">{"".join(strips)}</div>{more_html}'
    return Section("conflicts", "Label conflicts", body,
                   _md(lead) + "\n\n" + _md_table(["group", "labels", "files"], md_rows) + more_md)


def _exif_turned(t: pd.DataFrame) -> pd.Series:
    if "exif_orientation" in t:
        return ~pd.to_numeric(t["exif_orientation"], errors="coerce").fillna(1).isin([0, 1])
    return t["flags"].fillna("").astype(str).str.contains("exif-rotated", regex=False)


def _orientation_section(t: pd.DataFrame, thumbs: Thumbs) -> Section:
    """Each turn applied to a kept image (EXIF, the group's verified angle, the image's own
    skew), as found and after, with its source and confidence; the flagged ones apart."""
    ok, kept = t["status"] == "ok", t["keep"].astype(bool)
    exif = _exif_turned(t)
    turned = ok & (t["rotation"] % 360 != 0)
    fixes = t[ok & kept & (turned | exif)].sort_values("path")
    flagged = t[ok & kept & t["orient_flag"].str.contains("low-confidence", regex=False)].sort_values("path")
    sources = fixes["orient_source"].replace("", "exif").str.split("+").explode().value_counts()
    by = ", ".join(f"{int(sources[k]):,} {what}" for k, what in (("exif", "by their EXIF tag"),
                   ("group", "onto their group's upright member"), ("skew", "by their own skew"))
                   if k in sources) or "none"
    dropped = int((ok & ~kept & turned).sum())
    lead = (f"{_n(len(fixes), 'kept image')} turned upright ({by}); "
            f"{len(flagged):,} kept {'estimate was' if len(flagged) == 1 else 'estimates were'} too unsure to "
            f"apply and {'is' if len(flagged) == 1 else 'are'} flagged instead, left as found."
            + (f" {dropped:,} dropped {'copy' if dropped == 1 else 'copies'} would need a turn too." if dropped else ""))
    pairs, md_rows = [], []
    for _, r in fixes.head(MAX_ORIENT).iterrows():
        conf = f", confidence {r['orient_confidence']:.2f}" if r["orient_confidence"] == r["orient_confidence"] else ""
        how = " + ".join(filter(None, ["EXIF tag" if exif[r.name] else "",
                                       f"turn {_turn(r['rotation'])}" if r["rotation"] % 360 else ""]))
        source = r["orient_source"] or "exif"
        cap = (f'<b>{_e(how)}</b>{_e(" · from " + source)}{_e(conf)}'
               f'<br><span class="path">{_e(r["path"])}</span>')
        pairs.append(f'<div class="pairbox"><div class="pair"><figure class="th">'
                     f'{thumbs.img(r["path"], 0, raw=bool(exif[r.name]))}</figure>'
                     f'<span class="arrow">→</span><figure class="th">{thumbs.img(r["path"], r["rotation"])}</figure>'
                     f'</div><div class="pair-cap">{cap}</div></div>')
        md_rows.append([_md(r["path"]), _turn(r["rotation"]) if r["rotation"] % 360 else "–", _md(source),
                        _fmt(r["orient_confidence"], 2)])
    more_html, more_md = _more(len(pairs), len(fixes), "turned images")
    unsure_html = unsure_md = ""
    if len(flagged):
        figs = [f'<figure class="th">{thumbs.img(r["path"], 0)}<figcaption>{_e(r["orient_flag"])}'
                f'{_e(", confidence " + _fmt(r["orient_confidence"], 2))}<br><span class="path">{_e(r["path"])}'
                f'</span></figcaption></figure>' for _, r in flagged.head(MAX_ORIENT).iterrows()]
        m_html, m_md = _more(len(figs), len(flagged), "flagged images")
        unsure_html = ("<h3>Flagged, left as found: look at these</h3>"
                       f'<div class="grid">{"".join(figs)}</div>' + m_html)
        unsure_md = "\n\n**Flagged, left as found**\n\n" + _md_table(
            ["file", "flag", "confidence"], [[_md(r["path"]), _md(r["orient_flag"]), _fmt(r["orient_confidence"], 2)]
                                             for _, r in flagged.head(MAX_ORIENT).iterrows()]) + m_md
    body = (f'<p class="lead">{_e(lead)} Left: as found in the file; right: as the curated set uses it.</p>'
            f'<div class="grid">{"".join(pairs)}</div>{more_html}{unsure_html}')
    md = _md(lead)
    if md_rows:
        md += "\n\n" + _md_table(["file", "turn", "source", "confidence"], md_rows)
    return Section("orientation", "Orientation fixes", body, md + more_md + unsure_md)


COMPARE_METRICS = (("accuracy", "Accuracy"), ("balanced_accuracy", "Balanced accuracy"), ("auc", "AUC"))


def _compare_section(compare: dict) -> Section:
    naive, curated = compare.get("naive") or {}, compare.get("curated") or {}
    breakdown = naive.get("naive_test_breakdown") or {}
    folds = (compare.get("settings") or {}).get("folds")
    curated_row = ((f"Curated: {folds}-fold cross-validation, out of fold",
                    "every kept radiograph, tested once by a model that never saw a copy of it") if folds else
                   ("Curated: curated train → curated test", "the leakage-free number"))
    rows = [
        ("Naive: naive train → naive test", "what a notebook would report", "#D55E00", naive.get("on_naive_test")),
        ("Naive model → clean test", "same model, images it never saw a copy of", "#E69F00",
         naive.get("on_clean_test")),
        ("Naive test, leaked images only", "test images with a copy in naive train", "#CC79A7",
         breakdown.get("leaked")),
        ("Naive test, clean images only", "the rest of the naive test", "#999999", breakdown.get("clean")),
        (*curated_row, "#0072B2", curated.get("on_curated_test")),
        ("Curated model → clean test", "images no model saw a copy of", "#56B4E9", curated.get("on_clean_test")),
    ]
    rows = [r for r in rows if r[3] is not None or r[0].startswith(("Naive:", "Curated:"))]
    header = ["protocol", "n (pos/neg)"] + [title + " [95% CI]" for _, title in COMPARE_METRICS]
    html_rows, md_rows = [], []
    for name, note, _, m in rows:
        n = f'{_fmt((m or {}).get("n"))} ({_fmt((m or {}).get("n_pos"))}/{_fmt((m or {}).get("n_neg"))})' if m else "–"
        cells = [_ci(m, k) for k, _ in COMPARE_METRICS]
        html_rows.append([f"<b>{_e(name)}</b><br><small>{_e(note)}</small>", _e(n)] + [_e(c) for c in cells])
        md_rows.append([_md(name), n] + cells)
    infl = compare.get("inflation") or {}
    if infl:
        cells = [_ci(infl, k) if infl.get(k) is not None else "–" for k, _ in COMPARE_METRICS]
        cells = [("+" if c[0].isdigit() else "") + c if c != "–" else c for c in cells]
        against = "curated out of fold" if folds else "curated on its test"
        html_rows.append([f"<b>Inflation</b><br><small>naive on its test minus {against}</small>", ""]
                         + [_e(c) for c in cells])
        md_rows.append(["**Inflation** (naive − curated)", ""] + cells)
    settings = compare.get("settings") or {}
    set_text = ", ".join(f"{k}={v}" for k, v in settings.items() if not isinstance(v, (dict, list)))
    chart = charts.forest([(n, c, m) for n, _, c, m in rows], list(COMPARE_METRICS), _ci)
    lead = ("The same model trained with the same settings twice: on the naive splits as found, and on the curated, "
            "leakage-free splits. The gap is how much leakage inflated the naive score.")
    if folds:
        lead = ("The same model trained with the same settings: once on the naive splits as found, and "
                f"{folds} times in a cross-validation over duplicate groups (and patients), so that every kept "
                "radiograph is scored once by a model that never saw any copy of it. The gap is how much leakage "
                "inflated the naive score.")
    zero = [title for k, title in COMPARE_METRICS if (infl.get("excludes_zero") or {}).get(k)]
    if infl.get("excludes_zero") is not None:
        lead += (f" Intervals resample radiographs, not files; the inflation's interval excludes 0 for "
                 f"{', '.join(zero)}." if zero else
                 " Intervals resample radiographs, not files; no inflation interval excludes 0: the gap cannot be "
                 "told from noise on this many radiographs.")
    body = (f'<p class="lead">{_e(lead)}</p>'
            + _html_table(header, html_rows, num=set(range(1, len(header))))
            + (f'<p class="more">Settings: {_e(set_text)}</p>' if set_text else "")
            + (f'<div class="chart" style="max-width:760px">{chart}</div>' if chart else ""))
    md = _md(lead) + "\n\n" + _md_table(header, md_rows) + (f"\n\nSettings: {_md(set_text)}" if set_text else "")
    return Section("compare", "Naive vs curated training", body, md)


# ----------------------------------------------------------------------------- page


def _provenance_section(p: dict) -> Section:
    """Where the manifest came from: enough to cite it, or to check a copy is the same."""
    keys = (("version", "curate version"), ("root", "dataset folder"), ("created", "manifest written"),
            ("naive_split", "naive split"), ("manifest_sha256", "manifest.csv sha256"),
            ("naive_sha256", "naive.csv sha256"))
    rows = [(title, p[k]) for k, title in keys if p.get(k) not in (None, "")]
    options = p.get("options") or {}
    if options:
        rows.append(("options", ", ".join(f"{k}={v}" for k, v in options.items())))
    body = _html_table(["", ""], [[_e(k), f"<code>{_e(v)}</code>"] for k, v in rows])
    md = _md_table(["", ""], [[_md(k), _md(v)] for k, v in rows])
    return Section("provenance", "Provenance", body, md)


def _css() -> str:
    return resources.files("curate.report").joinpath("report.css").read_text(encoding="utf-8")


def _page(title: str, meta: str, sections: list[Section], thumb_px: int) -> str:
    nav = "".join(f'<a href="#{s.id}">{_e(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{_e(s.title)}</h2>{s.html}</section>' for s in sections)
    # No scripts, nothing from outside: even a name that slipped past escaping could not run.
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{_e(title)}</title><style>{_css()}</style></head>'
            f'<body style="--t:{int(thumb_px)}px"><header><h1>{_e(title)}</h1><div class="meta">{meta}</div></header>'
            f'<nav>{nav}</nav><main>{body}</main>'
            f'<footer>Made by curate {_e(curate.__version__)} · self-contained: no network needed</footer>'
            f'</body></html>\n')


def render_report(table: pd.DataFrame, root: str | Path | None, summary: dict, *, out_dir: str | Path,
                  compare: dict | None = None, leakage: dict | None = None, conflicts=None,
                  max_groups: int = MAX_GROUPS, thumb_px: int = THUMB_PX, name: str | None = None,
                  provenance: dict | None = None, write_summary: bool = False) -> dict[str, Path]:
    """Write out_dir/report.html (self-contained) and out_dir/report.md; out_dir/summary.json
    only when write_summary. Returns {"html": path, "markdown": path[, "summary": path]}.

    table: one row per file (docs/TABLE.md columns; missing ones are tolerated).
    root: the dataset folder the table's paths are relative to (None: no thumbnails).
    leakage: a matrix as `leakage_matrix` returns it (default, or any other shape: computed from the
      table, so the before/after matrices are always counted the same way).
    conflicts: conflicting group ids, or a DataFrame with a `group` column (default: computed).
    provenance: manifest.json's content: its warnings head the report, the rest closes it.
    """
    out_dir = Path(out_dir)
    t = _prepare(table)
    summary = dict(summary or {})
    thumbs = Thumbs(root, thumb_px)
    conflict_ids = conflict_groups(t, conflicts)
    provenance = provenance or {}
    sections = [
        _overview(summary, t, provenance.get("warnings") or [], provenance.get("notes") or []),
        _class_section(t),
        _leakage_section(t, leakage),
    ]
    if compare:
        sections.append(_compare_section(compare))
    # image sections last in priority for the byte budget: the most useful ones claim it first
    sections += [
        _groups_section(t, thumbs, set(conflict_ids), max_groups),
        _conflicts_section(t, thumbs, conflict_ids),
        _orientation_section(t, thumbs),
        _broken_section(t, thumbs),
        _sample_section(t, thumbs),
    ]
    if provenance:
        sections.append(_provenance_section(provenance))
    # the verdict first (counts, then what leakage did to the score), then the evidence
    order = ["overview", "compare", "classes", "leakage", "duplicates", "conflicts", "orientation", "broken", "sample",
             "provenance"]
    sections.sort(key=lambda s: order.index(s.id))
    title = f"Dataset report: {name or (Path(root).name if root else 'dataset')}"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime())
    meta = f"{_e(when)} · dataset <code>{_e(root or '–')}</code> · {len(t):,} files"
    if thumbs.skipped:
        meta += f" · {thumbs.skipped:,} thumbnails not inlined (size limit)"
    page = _page(title, meta, sections, thumb_px)
    md = (f"# {_md(title)}\n\n{_md(when)} · dataset {_md(root or '-')} · {len(t):,} files\n\n"
          + "\n\n".join(f"## {s.title}\n\n{s.md}" for s in sections) + "\n")
    written = {"html": write_atomic(out_dir / "report.html", page),
               "markdown": write_atomic(out_dir / "report.md", md)}
    if write_summary:
        written["summary"] = write_json(out_dir / "summary.json", summary)
    return written


# ----------------------------------------------------------------------------- from disk


def _read_json(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read JSON ({exc})") from None


def report_from_disk(name: str, workdir: str | Path = ".", *, root: str | Path | None = None,
                     **options) -> dict[str, Path]:
    """Render the report from what earlier steps wrote under workdir (manifests/NAME/, reports/NAME/).

    root: where the images are (default: the ROOT recorded in manifest.json).
    """
    workdir = Path(workdir)
    manifests, reports = workdir / "manifests" / name, workdir / "reports" / name
    csv = manifests / "manifest.csv"
    if not csv.exists():
        raise InputError(f"{csv}: no manifest; run `curate run ROOT` (or `curate manifest ROOT`) first")
    table = read_manifest(csv)
    provenance = _read_json(manifests / "manifest.json") or {}
    if root is None and isinstance(provenance.get("root"), str):
        root = provenance["root"]
    summary = _read_json(reports / "summary.json")
    if summary is None:
        summary = summary_from_table(table)
    compare = _read_json(reports / "compare.json")
    return render_report(table, root, summary, out_dir=reports, compare=compare, name=name, provenance=provenance,
                         **options)
