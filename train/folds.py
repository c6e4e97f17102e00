"""Cross-validation folds over whole radiographs: no copy and no patient on both sides.

A unit is what must stay together: a duplicate group, joined with every other group that
shares a patient (or study) id. Units go whole to one of K folds, stratified by label
(scikit-learn's StratifiedGroupKFold), so each fold's model is tested on radiographs none of
whose copies, and none of whose patient's other images, it trained on. Inside the K - 1
training folds a share of the units is held out again as val for early stopping.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from curate.errors import UsageError
from curate.split import _link

VAL_SHARE = 0.1  # of all units: what 0.8/0.1/0.1 gives val, so early stopping sees as much as usual


PATIENT_COLUMNS = ("subject",)  # what --path-pattern's `group` fills; --group-by names its own


def patient_columns(table: pd.DataFrame, group_by: str | None = None) -> list[str]:
    """The manifest's patient/study columns: `subject`, and the run's --group-by column."""
    names = [*PATIENT_COLUMNS, *([group_by] if group_by else [])]
    return [c for c in dict.fromkeys(names) if c in table.columns]


def units(table: pd.DataFrame, group_by: str | None = None, group: str = "group") -> pd.Series:
    """One unit id per row: its duplicate group, joined with the groups that share a non-empty
    patient id in any of the patient columns."""
    unit = "u:" + table[group].astype(str).reset_index(drop=True)
    for col in patient_columns(table, group_by):
        unit = _link(unit, table[col].fillna("").astype(str).reset_index(drop=True))
    return unit


def _split(unit: np.ndarray, y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold 0..k-1 per row: whole units, stratified by label, independent of row order."""
    from sklearn.model_selection import StratifiedGroupKFold

    order = np.lexsort((y, unit))  # sklearn's folds depend on the row order: make it the data's
    fold = np.empty(len(unit), dtype=int)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # "least populated class has only k members": fine here
        warnings.simplefilter("ignore", UserWarning)
        for f, (_, test) in enumerate(cv.split(np.zeros(len(order)), y[order], unit[order])):
            fold[order[test]] = f
    return fold


def assign_folds(unit, y, k: int, seed: int = 0) -> np.ndarray:
    """Fold 0..k-1 for each row, whole units per fold, stratified by label y."""
    unit, y = np.asarray(unit).astype(str), np.asarray(y, dtype=int)
    n_units = len(set(unit))
    if k < 2:
        raise UsageError(f"--folds must be at least 2, not {k}")
    if n_units < k:
        raise UsageError(f"--folds {k}: needs at least {k} distinct radiographs (groups), found {n_units}")
    return _split(unit, y, k, seed)


def inner_val(unit, y, k: int, seed: int = 0) -> np.ndarray:
    """Which training rows to hold out as val: whole units, about VAL_SHARE of all units.

    `unit`, `y`: the rows of the K - 1 training folds. An empty mask when too few units remain.
    """
    unit, y = np.asarray(unit).astype(str), np.asarray(y, dtype=int)
    n_inner = max(2, round((1 - 1 / k) / VAL_SHARE))
    n_inner = min(n_inner, len(set(unit)))
    if n_inner < 2:
        return np.zeros(len(unit), dtype=bool)
    return _split(unit, y, n_inner, seed + 7919) == 0  # a seed apart from the outer folds'


def recorded_group_by(csv) -> str | None:
    """The --group-by column the manifest was made with (manifest.json's options), if any."""
    import json
    from pathlib import Path

    info = Path(csv).parent / "manifest.json"
    try:
        options = json.loads(info.read_text(encoding="utf-8")).get("options") or {}
    except (OSError, ValueError, AttributeError):
        return None
    return options.get("group_by") if isinstance(options, dict) else None
