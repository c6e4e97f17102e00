"""The report: one self-contained HTML file, the same sections in Markdown (see render.py)."""

from curate.report.render import (
    class_counts,
    conflict_groups,
    leakage_matrix,
    render_report,
    report_from_disk,
    summary_from_table,
)

__all__ = ["class_counts", "conflict_groups", "leakage_matrix", "render_report", "report_from_disk",
           "summary_from_table"]
