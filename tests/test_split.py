"""Which rows are kept and where: no radiograph in two splits, every row accounted for."""

from __future__ import annotations

import pandas as pd
import pytest

from curate.errors import UsageError
from curate.split import assign_splits, parse_ratios, residual_leaks, split_report


def table(rows):
    """Rows of (path, label, orig_split, group[, status]) as the earlier stages would give them."""
    out = []
    for r in rows:
        path, label, split, group, *rest = r
        out.append({"path": path, "label": label, "orig_split": split, "group": group,
                    "status": rest[0] if rest else "ok", "representative": False})
    t = pd.DataFrame(out)
    first = t.groupby("group").head(1).index
    t.loc[first, "representative"] = True
    return t


def by_path(t):
    return {r.path: (r.keep, r.split, r.reason) for r in t.itertuples()}


def test_keep_policy_pulls_a_leaked_group_into_train_and_names_the_reasons():
    t = table([
        ("train/a.png", "frac", "train", 1),
        ("test/a_copy.png", "frac", "test", 1),  # a test copy of a train image: leak
        ("train/a_again.png", "frac", "train", 1),  # a second copy inside train: duplicate
        ("val/b.png", "frac", "val", 2),
        ("test/b_copy.png", "frac", "test", 2),  # val beats test
        ("test/c.png", "ok", "test", 3),
    ])
    got = by_path(assign_splits(t, "keep"))
    assert got["train/a.png"] == (True, "train", "")
    assert got["test/a_copy.png"] == (False, "", "leak")
    assert got["train/a_again.png"] == (False, "", "duplicate")
    assert got["val/b.png"] == (True, "val", "")
    assert got["test/b_copy.png"] == (False, "", "leak")
    assert got["test/c.png"] == (True, "test", "")


def test_keep_copies_keeps_augmented_copies_in_train_only():
    t = table([("train/a1.png", "frac", "train", 1), ("train/a2.png", "frac", "train", 1),
               ("test/b1.png", "frac", "test", 2), ("test/b2.png", "frac", "test", 2)])
    got = by_path(assign_splits(t, "keep", keep_copies=True))
    assert got["train/a1.png"][0] and got["train/a2.png"][0]
    assert [got["test/b1.png"][0], got["test/b2.png"][0]].count(True) == 1  # one per group in test


def test_broken_unlabelled_and_conflicting_rows_get_their_reason():
    t = table([
        ("train/x.jpg", "frac", "train", 1, "corrupt"),
        ("train/readme.txt", "", "train", 2, "not-image"),
        ("loose.png", "", "", 3),
        ("train/y.png", "frac", "train", 4),
        ("train/y_as_ok.png", "ok", "train", 4),  # same radiograph, other label
    ])
    got = by_path(assign_splits(t, "keep"))
    assert got["train/x.jpg"] == (False, "", "corrupt")
    assert got["train/readme.txt"] == (False, "", "not-image")
    assert got["loose.png"] == (False, "", "no-label")
    assert got["train/y.png"] == (False, "", "label-conflict")
    assert got["train/y_as_ok.png"] == (False, "", "label-conflict")
    kept = by_path(assign_splits(t, "keep", drop_conflicts=False))
    assert kept["train/y.png"][0] and kept["train/y_as_ok.png"][0]  # one per label when kept


def many_groups(n=200, copies=3):
    """n groups of `copies` files each, scattered over the splits: the leaky layout."""
    rows = []
    for g in range(n):
        label = "frac" if g % 4 == 0 else "ok"
        for c in range(copies):
            split = ("train", "val", "test")[(g + c) % 3]
            rows.append((f"{split}/{label}/g{g}_c{c}.png", label, split, g))
    return table(rows)


@pytest.mark.parametrize("policy", ["keep", "regroup"])
def test_every_row_stays_and_no_kept_group_spans_two_splits(policy):
    t = many_groups()
    out = assign_splits(t, policy, seed=3)
    assert len(out) == len(t) and list(out["path"]) == list(t["path"])
    assert residual_leaks(out) == 0
    assert (out["keep"] == (out["reason"] == "")).all()
    assert (out.loc[out["keep"], "split"].isin(["train", "val", "test"])).all()
    assert out.loc[out["keep"]].groupby("group").size().max() == 1  # one image per radiograph


def test_regroup_is_stratified_close_to_the_ratios_and_reproducible():
    t = many_groups(400)
    out = assign_splits(t, "regroup", ratios=(0.8, 0.1, 0.1), seed=1)
    kept = out[out["keep"]]
    share = kept["split"].value_counts(normalize=True)
    assert abs(share["train"] - 0.8) < 0.03 and abs(share["test"] - 0.1) < 0.03
    frac_share = kept.groupby("split")["label"].apply(lambda s: (s == "frac").mean())
    assert (abs(frac_share - 0.25) < 0.05).all()  # each split keeps the class balance
    again = assign_splits(t.sample(frac=1, random_state=0), "regroup", ratios=(0.8, 0.1, 0.1), seed=1)
    assert again.set_index("path")["split"].sort_index().equals(out.set_index("path")["split"].sort_index())


def test_regroup_group_by_keeps_a_patient_in_one_split():
    t = many_groups(100, copies=1)
    t["patient"] = [f"p{g // 5}" for g in t["group"]]  # 5 radiographs per patient
    out = assign_splits(t, "regroup", group_by="patient", seed=0)
    assert (out[out["keep"]].groupby("patient")["split"].nunique() == 1).all()
    with pytest.raises(UsageError):
        assign_splits(t, "regroup", group_by="no_such_column")


def test_without_splits_keep_acts_like_regroup_and_says_so():
    t = many_groups(50)
    t["orig_split"] = ""
    out = assign_splits(t, "keep")
    assert set(out.loc[out["keep"], "split"]) == {"train", "val", "test"}
    report = split_report(out, "keep")
    assert any("--split keep made a fresh" in n for n in report["notes"])


def test_report_warns_naming_regroup_when_keep_empties_a_class_in_test():
    rows = []
    for g in range(40):  # every fractured test image is an augmented copy of a train image
        rows += [(f"train/frac/g{g}.png", "frac", "train", g), (f"test/frac/g{g}_aug.png", "frac", "test", g)]
    for g in range(40, 80):
        rows.append((f"{('train', 'test')[g % 2]}/ok/g{g}.png", "ok", ("train", "test")[g % 2], g))
    out = assign_splits(table(rows), "keep")
    report = split_report(out, "keep")
    assert report["class_counts_before"]["test"]["frac"] == 40
    assert report["class_counts_after"].get("test", {}).get("frac", 0) == 0
    assert report["reasons"]["leak"] == 40
    assert any("test keeps 0 of its 40 'frac'" in w and "--split regroup" in w for w in report["warnings"])


def test_ratios_are_checked():
    assert parse_ratios("0.7,0.2,0.1") == (0.7, 0.2, 0.1)
    for bad in ("0.8,0.1", "0.5,0.5,0.5", "0,0.5,0.5", "a,b,c"):
        with pytest.raises(UsageError):
            parse_ratios(bad)


# ---- --split auto: keep when the dataset's splits survive curation, else regroup, saying why ----


def healthy(n=60):
    """Three splits of distinct radiographs, both classes in each; a few test copies of train images."""
    rows = []
    for g in range(n):
        split = ("train",) * 8 + ("val", "test")
        s, lab = split[g % 10], ("frac", "ok")[(g // 10) % 2]
        rows.append((f"{s}/{lab}/g{g}.png", lab, s, g))
    rows += [(f"test/frac/g{g}_copy.png", "frac", "test", g) for g in (0, 1)]  # two leaks, nothing to worry
    return table(rows)


def test_auto_keeps_a_healthy_split_and_says_why():
    t = healthy()
    out = assign_splits(t, "auto")
    kept = by_path(out)
    assert kept == by_path(assign_splits(t, "keep"))
    assert out.attrs["split"]["used"] == "keep"
    report = split_report(out, "auto")
    assert report["policy"] == "auto" and report["policy_used"] == "keep"
    assert report["notes"][0].startswith("--split auto kept the dataset's own splits")


def test_auto_regroups_when_test_is_mostly_copies_of_train():
    t = healthy()
    rows = [(f"test/{r.label}/copy{i}.png", r.label, "test", r.group)  # test: copies of 20 train images
            for i, r in enumerate(t[t.orig_split == "train"].head(20).itertuples())]
    t = table([*((r.path, r.label, r.orig_split, r.group) for r in t.itertuples()), *rows])
    out = assign_splits(t, "auto", seed=2)
    assert out.attrs["split"]["used"] == "regroup"
    assert by_path(out) == by_path(assign_splits(t, "regroup", seed=2))
    line = split_report(out, "auto")["notes"][0]
    assert line.startswith("--split auto made a fresh group-aware split (0.8/0.1/0.1, stratified by label)")
    assert "test would keep 6 of its 26 distinct radiographs" in line
    assert residual_leaks(out) == 0


def test_auto_regroups_when_a_class_vanishes_from_a_split():
    t = healthy()
    t = t[~((t.orig_split == "val") & (t.label == "ok"))]  # val holds no 'ok' image at all
    out = assign_splits(t, "auto")
    assert out.attrs["split"]["used"] == "regroup"
    assert "val would keep no 'ok' image" in out.attrs["split"]["why"]
    kept = out[out["keep"]]
    assert kept.groupby("split")["label"].nunique().to_dict() == {"test": 2, "train": 2, "val": 2}


def test_auto_regroups_without_split_folders():
    t = healthy()
    t["orig_split"] = ""
    out = assign_splits(t, "auto")
    assert "no train/val/test folders" in out.attrs["split"]["why"]
    assert set(out.loc[out["keep"], "split"]) == {"train", "val", "test"}


def test_regroup_gives_val_and_test_every_class_when_train_can_spare_one():
    rows = [(f"ok{g}.png", "ok", "", g) for g in range(200)]
    rows += [(f"frac{g}.png", "frac", "", 1000 + g) for g in range(4)]  # four radiographs of a rare class
    out = assign_splits(table(rows), "regroup", seed=0)
    classes = out[out["keep"]].groupby("split")["label"].nunique()
    assert classes.to_dict() == {"test": 2, "train": 2, "val": 2}
    rows = rows[:-2]  # two: train keeps one, test the other, val says so
    out = assign_splits(table(rows), "regroup", seed=0)
    assert any("val has no 'frac' image even after a fresh split" in w for w in split_report(out, "regroup")["warnings"])


def test_group_folds_are_scikit_learns_stratified_group_k_fold():
    import warnings

    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    from curate.split import group_folds

    rng = np.random.default_rng(5)
    for n, k, classes in ((60, 3, 2), (400, 10, 2), (300, 5, 3), (900, 10, 4)):
        y = rng.choice([f"c{i}" for i in range(classes)], n, p=rng.dirichlet(np.ones(classes)))
        groups = rng.integers(0, n // 2, n).astype(str)
        expected = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            cv = StratifiedGroupKFold(k, shuffle=True, random_state=n)
            for fold, (_, test) in enumerate(cv.split(np.zeros(n), y, groups)):
                expected.update({g: fold for g in groups[test]})
        names, fold = group_folds(y, groups, k, n)
        assert dict(zip(names, fold.tolist())) == expected
