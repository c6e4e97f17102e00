"""Which rows to keep and in which split, so that no radiograph appears in two splits.

Three policies over duplicate groups (the `group` column of the dups stage):

- auto (default): keep, when after curation every split still holds at least half of the distinct
  radiographs (groups) it had and every class; otherwise regroup.
  The one line saying which and why is in the table's attrs["split"] and `split_report`'s notes.
- keep: the dataset's own splits stay, but each group goes wholly to one split:
  train if any member was found in train, else val, else test. The group keeps its
  representative (the original, see curate.original) wherever it was found, moved to that split;
  another member found in another split is dropped as `leak`, one found in the group's split
  as `duplicate`.
- regroup: a fresh split of whole groups, stratified by label (the folds of scikit-learn's
  StratifiedGroupKFold, computed here: see group_folds); a val or test split left without a
  class takes a radiograph of it from train when train has two or more.

Under both, groups that share a value of `group_by` (a patient id from the labels CSV, a
--path-pattern's group, DICOM's patient_id) are linked and travel as one: under keep, a patient
found in two splits stays in the first and its files elsewhere are dropped as `leak`.

When the layout has no split at all, `keep` has nothing to keep and behaves like regroup
(`split_report` says so). Every row stays in the table; dropped rows get keep=False and a reason.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd

from curate.errors import UsageError
from curate.layout import SUBJECT

SPLITS = ("train", "val", "test")
POLICIES = ("auto", "keep", "regroup")
# auto keeps the dataset's splits only if each still holds this share of the radiographs it had
AUTO_KEEP_SHARE = 0.5
# A class with fewer kept images than this in val or test cannot be measured on: warn.
MIN_CLASS_PER_SPLIT = 10
# Warn when a split keeps less than this share of a class it had before curation.
LOSS_WARNING = 0.5


def parse_ratios(ratios) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' or a 3-sequence -> three shares summing to 1, train > 0."""
    if isinstance(ratios, str):
        try:
            ratios = [float(x) for x in ratios.split(",")]
        except ValueError:
            raise UsageError(f"--ratios {ratios!r}: expected three numbers like 0.8,0.1,0.1") from None
    ratios = tuple(float(x) for x in ratios)
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0 or abs(sum(ratios) - 1) > 1e-6:
        raise UsageError(f"--ratios {ratios}: need train,val,test shares >= 0 that sum to 1 (train > 0)")
    return ratios


def assign_splits(
    table: pd.DataFrame,
    policy: str = "auto",
    ratios=(0.8, 0.1, 0.1),
    seed: int = 0,
    keep_copies: bool = False,
    group_by: str | None = None,
    drop_conflicts: bool = True,
) -> pd.DataFrame:
    """Add `split`, `keep` and `reason` to the table (needs status, label, orig_split, group).

    keep_copies: keep every member of a train group (augmented copies), not just one;
    val and test always keep one image per group so copies do not weigh twice in a score.
    group_by: a column whose equal values must share a split (regroup, and groups that have
    no original split under keep).
    """
    if policy not in POLICIES:
        raise UsageError(f"--split {policy!r}: choose {', '.join(POLICIES)}")
    if policy == "auto":
        return _auto(table, ratios=ratios, seed=seed, keep_copies=keep_copies, group_by=group_by,
                     drop_conflicts=drop_conflicts)
    ratios = parse_ratios(ratios)
    for col in ("status", "label", "orig_split", "group"):
        if col not in table.columns:
            raise ValueError(f"assign_splits needs the {col!r} column (run the earlier stages)")
    if group_by is None and SUBJECT in table.columns and (table[SUBJECT].fillna("") != "").any():
        group_by = SUBJECT  # a --path-pattern's group (a patient): what it was given for
    if group_by is not None and group_by not in table.columns:
        raise UsageError(f"--group-by {group_by!r}: no such column (columns of the labels CSV, a --path-pattern's "
                         f"named groups and DICOM's patient_id / study_id can be named)")

    out = table.copy()
    status = out["status"].astype(str)
    label = out["label"].fillna("").astype(str)
    reason = pd.Series("", index=out.index, dtype=object)
    reason[status != "ok"] = status[status != "ok"]
    reason[(reason == "") & (label == "")] = "no-label"

    # Label conflicts: one radiograph, two labels. Dropped (all of it) unless asked to keep.
    eligible = reason == ""
    labels_per_group = label[eligible].groupby(out.loc[eligible, "group"]).nunique()
    conflict_groups = set(labels_per_group[labels_per_group > 1].index)
    in_conflict = eligible & out["group"].isin(conflict_groups)
    if drop_conflicts:
        reason[in_conflict] = "label-conflict"
    out["label_conflict"] = out["group"].isin(conflict_groups)

    eligible = reason == ""
    # The unit that travels to one split: a group, or (conflicts kept) a group's rows of one label.
    unit = out["group"].astype(str)
    if not drop_conflicts:
        unit = unit + "|" + label
    group_split = _unit_splits(out, eligible, unit, label, policy, ratios, seed, group_by)

    split, reason = _keep_one_per_unit(out, eligible, unit, group_split, policy, keep_copies, reason)

    out["split"] = split
    out["keep"] = reason == ""
    out["reason"] = reason
    # Keep the dtypes plain: strings as object is what the CSV writer expects.
    out["split"] = out["split"].astype(object)
    out["reason"] = out["reason"].astype(object)
    return out


def _auto(table: pd.DataFrame, **options) -> pd.DataFrame:
    """keep when the dataset's splits survive curation, else regroup; the choice and why in attrs["split"]."""
    usable = (table["status"] == "ok") & (table["label"].fillna("") != "")
    if not (usable & (table["orig_split"].fillna("").astype(str) != "")).any():
        kept, why = None, "the layout has no train/val/test folders"  # (_keep_fails' first answer, without the work)
    else:
        kept = assign_splits(table, "keep", **options)
        why = _keep_fails(kept)
    if why is None:
        out, used = kept, "keep"
        why = "the dataset's splits each keep at least half of their distinct radiographs and every class"
    else:
        out, used = assign_splits(table, "regroup", **options), "regroup"
    ratios = "/".join(f"{r:g}" for r in parse_ratios(options["ratios"]))
    line = (f"--split auto kept the dataset's own splits: {why}" if used == "keep" else
            f"--split auto made a fresh group-aware split ({ratios}, stratified by label): {why}")
    out.attrs["split"] = {"policy": "auto", "used": used, "why": line}
    return out


def _keep_fails(kept: pd.DataFrame) -> str | None:
    """Why the dataset's own splits are not usable after curation (None: they are)."""
    usable = (kept["status"] == "ok") & (kept["label"].fillna("") != "")
    found = kept["orig_split"].fillna("").astype(str)
    if not (usable & (found != "")).any():
        return "the layout has no train/val/test folders"
    labels = sorted(kept.loc[usable, "label"].astype(str).unique())
    on = kept["keep"].astype(bool)
    for s in SPLITS:
        before = kept.loc[usable & (found == s), "group"].nunique()
        if not before:
            continue
        after = kept.loc[on & (kept["split"] == s)]
        if after["group"].nunique() < AUTO_KEEP_SHARE * before:
            return (f"{s} would keep {after['group'].nunique()} of its {before} distinct radiographs "
                    f"(the rest are copies of images in an earlier split, duplicates or unusable)")
        missing = [lab for lab in labels if not (after["label"].astype(str) == lab).any()]
        if missing:
            return f"{s} would keep no '{missing[0]}' image"
    return None


def _keep_one_per_unit(out, eligible, unit, group_split, policy, keep_copies, reason):
    """(split, reason) with each unit's kept rows: its best member (the group's representative,
    then one found in the unit's split, then by path) wherever it was found, moved to the unit's
    split (orig_split keeps where it was); its other rows found there (or anywhere under regroup,
    or with no split of their own) are `duplicate`, the rest `leak`. One sort over all rows, not
    a pandas step per group (4,000 groups took seconds)."""
    split = np.full(len(out), "", dtype=object)
    reason = reason.to_numpy(dtype=object).copy()
    rows = np.flatnonzero(eligible.to_numpy())
    units = unit.to_numpy()[rows]
    dest = np.array([group_split.get(u, "") for u in units], dtype=object)
    found = out["orig_split"].fillna("").astype(str).to_numpy()[rows]
    here = (found == dest) | (policy == "regroup") | (found == "")
    rep = out["representative"].astype(bool).to_numpy()[rows] if "representative" in out.columns else np.zeros(len(rows), bool)
    paths = out["path"].to_numpy(dtype=str)[rows]
    # best first within each unit (units in order of first appearance, as groupby(sort=False) had them)
    unit_id = pd.factorize(units)[0]
    order = np.lexsort((paths, ~here, ~rep, unit_id))
    first = np.ones(len(order), dtype=bool)
    first[1:] = unit_id[order][1:] != unit_id[order][:-1]
    best = np.zeros(len(rows), dtype=bool)
    best[order[first]] = True
    any_here = np.bincount(unit_id, weights=here, minlength=unit_id.max() + 1 if len(rows) else 0)[unit_id] > 0
    kept = any_here & (best | (here & (dest == "train") & keep_copies))  # none kept where no row is here
    split[rows[kept]] = dest[kept]
    reason[rows[~kept & here]] = "duplicate"
    reason[rows[~kept & ~here]] = "leak"
    return pd.Series(split, index=out.index, dtype=object), pd.Series(reason, index=out.index, dtype=object)


def _unit_splits(table, eligible, unit, label, policy, ratios, seed, group_by) -> dict:
    """unit id -> split name."""
    rows = table[eligible]
    units = unit[eligible]
    found = rows["orig_split"].fillna("").astype(str)
    result: dict = {}
    # units that share a group_by value (a patient) travel together under every policy
    linked = units if group_by is None else _link(units, rows[group_by].fillna("").astype(str))
    if policy == "keep":  # a linked set goes to the first split any member was found in
        rank = found.map({"train": 0, "val": 1, "test": 2})
        best = rank.groupby(linked).min()
        for u, r in zip(units, linked.map(best)):
            if not np.isnan(r):
                result[u] = SPLITS[int(r)]
    todo = ~units.isin(list(result))
    if todo.any():
        result.update(_stratified(units[todo], linked[todo], label[eligible][todo], ratios, seed))
    return result


def _link(units: pd.Series, key: pd.Series) -> pd.Series:
    """Union units that share a non-empty key (a patient seen in two groups): id per row."""
    parent: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for u, k in zip(units, key):
        if k:
            parent[find("u:" + u)] = find("k:" + k)
    return pd.Series([find("u:" + u) for u in units], index=units.index)


def _folds(ratios) -> tuple[int, list[str]]:
    """Number of folds and the split each fold goes to, e.g. 0.8/0.1/0.1 -> 10 folds (1 test, 1 val)."""
    fracs = [Fraction(r).limit_denominator(20) for r in ratios]
    n = int(np.lcm.reduce([f.denominator for f in fracs])) or 1
    n = max(n, 2)
    counts = [round(float(f) * n) for f in fracs]
    counts[0] = n - counts[1] - counts[2]
    return n, ["test"] * counts[2] + ["val"] * counts[1] + ["train"] * counts[0]


def _stratified(units: pd.Series, linked: pd.Series, label: pd.Series, ratios, seed) -> dict:
    """A fresh split of whole linked units, stratified by label. unit id -> split."""
    n_folds, fold_split = _folds(ratios)
    n_linked = linked.nunique()
    # StratifiedGroupKFold refuses when no class has a member per fold (e.g. 11 images, 5 and 6)
    if n_linked < n_folds or label.nunique() < 2 or label.value_counts().max() < n_folds:
        split_of_linked = _small_split(linked, label, ratios, seed)
    else:
        # the fold order depends on the row order: sort so the result depends on the data only.
        order = np.argsort(units.to_numpy(dtype=str), kind="stable")
        y, groups = label.to_numpy()[order], linked.to_numpy()[order]
        names, fold = group_folds(y, groups, n_folds, seed)
        split_of_linked = {g: fold_split[f] for g, f in zip(names, fold)}
    _every_class(split_of_linked, label.groupby(linked).first(), ratios, seed)
    return {u: split_of_linked[g] for u, g in zip(units, linked)}


def group_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(group names, the fold of each): scikit-learn's StratifiedGroupKFold(n_splits,
    shuffle=True, random_state=seed) to the fold, without importing scikit-learn (a second
    and more of every run) or its per-fold Python loop. Groups are shuffled, taken in order of
    falling spread of their class counts, and each goes to the fold that keeps the classes'
    shares most even (ties: the fold with fewer rows, then the first)."""
    _, y_inv, y_cnt = np.unique(y, return_inverse=True, return_counts=True)
    names, groups_inv = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(names), len(y_cnt)))
    np.add.at(counts, (groups_inv, y_inv), 1)
    perm = np.arange(len(names))
    np.random.RandomState(seed).shuffle(perm)
    counts = counts[perm]
    per_fold = np.zeros((n_splits, len(y_cnt)))
    fold_of = np.empty(len(names), dtype=np.int64)
    eye = np.eye(n_splits)[:, :, None]
    for g in np.argsort(-np.std(counts, axis=1), kind="stable"):
        # every fold tried at once: fold i's counts with the group added, the others as they are
        trial = per_fold[None, :, :] + eye * counts[g][None, None, :]
        evals = np.std(trial / y_cnt, axis=1).mean(axis=1)
        sizes = per_fold.sum(axis=1)
        best, best_eval, best_size = 0, evals[0], sizes[0]
        for i in range(1, n_splits):  # sklearn's order of comparisons, ties within np.isclose
            # (its formula written out: np.isclose on two scalars took 1.5 s of a 4,083-file run)
            close = abs(evals[i] - best_eval) <= 1e-8 + 1e-5 * abs(best_eval)
            if evals[i] < best_eval or (close and sizes[i] < best_size):
                best, best_eval, best_size = i, evals[i], sizes[i]
        per_fold[best] += counts[g]
        fold_of[perm[g]] = best
    return names, fold_of


def _every_class(split_of_linked: dict, label_of: pd.Series, ratios, seed) -> None:
    """A val or test split (ratio > 0) that got no unit of a class takes one from train, if train keeps one.

    Folds stratify by rows, so a class of few radiographs can miss a small split; a score on a split
    without a class is no score."""
    rng = np.random.default_rng(seed)
    for s, share in (("test", ratios[2]), ("val", ratios[1])):
        if share <= 0:
            continue
        for lab in sorted(label_of.unique()):
            ids = label_of.index[label_of == lab]
            if any(split_of_linked[g] == s for g in ids):
                continue
            in_train = sorted(g for g in ids if split_of_linked[g] == "train")
            if len(in_train) >= 2:
                split_of_linked[in_train[int(rng.integers(len(in_train)))]] = s


def _small_split(linked: pd.Series, label: pd.Series, ratios, seed) -> dict:
    """Too few groups for k folds: shuffle the linked units of each label and cut by the ratios."""
    rng = np.random.default_rng(seed)
    first_label = label.groupby(linked).first()
    result = {}
    for lab in sorted(first_label.unique()):
        ids = sorted(first_label.index[first_label == lab])
        rng.shuffle(ids)
        n = len(ids)
        n_test = int(round(n * ratios[2]))
        n_val = int(round(n * ratios[1]))
        if n - n_test - n_val < 1:  # train gets at least one
            n_test = max(0, n_test - 1) if n_test >= n_val else n_test
            n_val = n - n_test - 1 if n - n_test - n_val < 1 else n_val
        for i, g in enumerate(ids):
            result[g] = "test" if i < n_test else "val" if i < n_test + n_val else "train"
    return result


# ---- what the split did --------------------------------------------------------------------


def class_counts(table: pd.DataFrame, split_col: str, mask) -> dict:
    """{split: {label: n}} over the rows in mask, splits and labels sorted."""
    rows = table[mask]
    counts: dict = {}
    for (s, lab), n in rows.groupby([rows[split_col].fillna("").astype(str), rows["label"].astype(str)]).size().items():
        counts.setdefault(s or "unsplit", {})[lab] = int(n)
    return {s: dict(sorted(counts[s].items())) for s in sorted(counts, key=_split_order)}


def _split_order(name: str):
    return (SPLITS.index(name) if name in SPLITS else len(SPLITS), name)


def residual_leaks(table: pd.DataFrame, group_by: str | None = None) -> int:
    """Kept duplicate groups (and group_by values) whose rows sit in more than one split. Must be 0."""
    kept = table[table["keep"].astype(bool)]
    leaks = int((kept.groupby("group")["split"].nunique() > 1).sum())
    if group_by is not None and group_by in kept.columns:
        keyed = kept[kept[group_by].fillna("").astype(str) != ""]
        leaks += int((keyed.groupby(group_by)["split"].nunique() > 1).sum())
    return leaks


def _why_lost(reasons: pd.Series, split: str, policy: str) -> str:
    """Why a split lost most of a class, from the reasons of the rows it lost: the commonest one."""
    reason = reasons.value_counts().index[0] if len(reasons) else ""
    if reason == "leak":
        return ("most had a copy (or their patient) kept in another split: leakage"
                + ("; measure on a fair split with --split regroup" if policy == "keep" else ""))
    if reason == "duplicate":
        return (f"most were copies of other {split} images (one image per group is kept"
                + ("; --keep-copies keeps train's copies)" if split == "train" else ")"))
    if reason == "label-conflict":
        return "most had copies under another label (--keep-conflicts keeps them)"
    return f"most were dropped as {reason}" if reason else "most were dropped"


def split_report(table: pd.DataFrame, policy: str = "keep") -> dict:
    """Per-split class counts before (found) and after (kept), dropped rows, and warnings.

    Warnings are plain strings for the caller to show; they name `--split regroup` when the
    keep policy left a split without most of a class or too small to measure on.
    """
    decided = table.attrs.get("split", {})
    if policy == "auto":  # what auto chose stands in for it, and the one line saying why goes first
        policy = decided.get("used", "keep")
    usable = (table["status"] == "ok") & (table["label"].fillna("") != "")
    before = class_counts(table, "orig_split", usable)
    after = class_counts(table, "split", table["keep"].astype(bool))
    had_splits = bool((table.loc[usable, "orig_split"].fillna("") != "").any())
    notes = [decided["why"]] if decided.get("why") else []
    if policy == "keep" and not had_splits:
        notes.append("the layout has no train/val/test folders: --split keep made a fresh "
                     "group-aware split (as --split regroup does)")

    dropped = table[~table["keep"].astype(bool)]
    dropped_by_split = {}
    for (s, r), n in dropped.groupby([dropped["orig_split"].fillna("").astype(str), dropped["reason"]]).size().items():
        dropped_by_split.setdefault(s or "unsplit", {})[r] = int(n)
    kept = table[table["keep"].astype(bool)]
    moved = kept[(kept["orig_split"].fillna("") != "") & (kept["split"] != kept["orig_split"])]

    leak_groups = dropped[dropped["reason"] == "leak"]
    leak_groups_by_split = {s or "unsplit": int(n) for s, n in
                            leak_groups.groupby(leak_groups["orig_split"].astype(str))["group"].nunique().items()}

    warn, warned = [], set()
    if had_splits:
        for s in SPLITS:
            for lab, n_before in before.get(s, {}).items():
                n_after = after.get(s, {}).get(lab, 0)
                if n_before and n_after < LOSS_WARNING * n_before:
                    warned.add((s, lab))
                    lost = dropped[(dropped["orig_split"] == s) & (dropped["label"] == lab)]["reason"]
                    warn.append(f"{s} keeps {n_after} of its {n_before} '{lab}' images: "
                                f"{_why_lost(lost, s, policy)}.")
    labels = sorted({lab for counts in before.values() for lab in counts})
    for s in ("val", "test"):
        if had_splits and policy == "keep" and s not in before:  # no such folder: nothing was lost
            warn.append(f"the layout has no {s} folder, so the curated set has no {s} split: "
                        "--split regroup makes train, val and test from whole groups.")
            continue
        for lab in labels:
            n_after = after.get(s, {}).get(lab, 0)
            if n_after == 0 and policy == "regroup" and (s, lab) not in warned:
                warn.append(f"{s} has no '{lab}' image even after a fresh split: too few distinct '{lab}' "
                            f"radiographs to give every split one; scores on {s} say nothing about '{lab}'.")
            elif n_after < MIN_CLASS_PER_SPLIT and (s, lab) not in warned:
                hint = ("use --split regroup for a fresh split of whole groups" if policy == "keep" and had_splits
                        else "the dataset is too small for a reliable score on this class")
                warn.append(f"{s} has only {n_after} '{lab}' image(s) after curation: {hint}.")
    return {
        "policy": decided.get("policy", policy),
        "policy_used": policy,
        "class_counts_before": before,
        "class_counts_after": after,
        "dropped_by_split": {s: dict(sorted(v.items())) for s, v in sorted(dropped_by_split.items(), key=lambda kv: _split_order(kv[0]))},
        "moved_files": int(len(moved)),
        "moved_groups": int(moved["group"].nunique()),
        "leak_groups_by_split": leak_groups_by_split,
        "reasons": {k: int(v) for k, v in table.loc[~table["keep"].astype(bool), "reason"].value_counts().sort_index().items()},
        "residual_leaks": residual_leaks(table),
        "notes": notes,
        "warnings": warn,
    }
