"""Grouped cross-validation: folds keep radiographs and patients whole, every kept radiograph is
scored once by a model that never saw a copy of it, and intervals resample groups, not files."""

import numpy as np
import pandas as pd
import pytest

from curate.errors import UsageError
from curate.trainer import evaluate
from curate.trainer.folds import assign_folds, inner_val, units


def table(n_groups=60, copies=3, seed=0):
    """Duplicate groups of 1..copies files; every fifth pair of groups shares a patient."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_groups):
        for c in range(1 + rng.integers(0, copies)):
            rows.append({"group": f"G{g}", "label": "fractured" if g % 3 == 0 else "normal",
                         "subject": f"P{g // 2}" if g % 10 < 2 else ""})
    return pd.DataFrame(rows)


def test_folds_never_split_a_group_or_a_patient_and_keep_the_class_mix():
    t = table()
    y = (t["label"] == "fractured").to_numpy(int)
    fold = assign_folds(units(t), y, k=5, seed=1)
    t["fold"] = fold
    assert (t.groupby("group")["fold"].nunique() == 1).all()
    patients = t[t["subject"] != ""]
    assert (patients.groupby("subject")["fold"].nunique() == 1).all()
    assert set(fold) == set(range(5))
    share = t.groupby("fold")["label"].apply(lambda s: (s == "fractured").mean())
    assert share.between(0.15, 0.55).all()  # about a third everywhere (stratified)


def test_a_patient_links_groups_even_through_a_second_patient_column():
    t = pd.DataFrame({"group": ["a", "b", "c", "d"], "subject": ["p", "p", "", ""], "study": ["", "s", "s", ""]})
    u = units(t, group_by="study")
    assert u[0] == u[1] == u[2] != u[3]


def test_folds_do_not_depend_on_row_order():
    t = table()
    y = (t["label"] == "fractured").to_numpy(int)
    fold = assign_folds(units(t), y, k=4, seed=2)
    perm = np.random.default_rng(3).permutation(len(t))
    shuffled = assign_folds(units(t.iloc[perm]), y[perm], k=4, seed=2)
    assert (shuffled == fold[perm]).all()


def test_inner_val_holds_out_whole_units_about_a_tenth():
    t = table(n_groups=200)
    y = (t["label"] == "fractured").to_numpy(int)
    u = units(t).to_numpy()
    held = inner_val(u, y, k=5, seed=0)
    assert set(u[held]).isdisjoint(u[~held])
    assert 0.07 < len(set(u[held])) / len(set(u)) < 0.16


def test_too_few_radiographs_for_k_folds_is_a_clear_error():
    with pytest.raises(UsageError, match="at least 5 distinct"):
        assign_folds(["a", "a", "b", "c"], [0, 0, 1, 1], k=5)


def test_every_kept_radiograph_is_scored_once_by_a_model_that_never_saw_a_copy(monkeypatch):
    """cross_validate with the model replaced by a recorder: each image's pixels stand for its
    radiograph, so a copy of a test image in a fold's training or val set would show up."""
    import curate.trainer.fit as fit

    t = table(n_groups=40)
    y = (t["label"] == "fractured").to_numpy(int)
    u = units(t).to_numpy()
    gid = t["group"].str[1:].astype(int).to_numpy()
    images = np.repeat(gid[:, None, None], 2, axis=1).repeat(2, axis=2).astype(np.uint8)  # pixels = group id
    kept = t.groupby("group").head(1).index.to_numpy()  # one kept file per group
    copies = np.setdiff1d(np.arange(len(t)), kept)
    seen = []

    def fake_fit(x, y_, x_val, y_val, **kw):
        seen.append((set(x[:, 0, 0]), set(x_val[:, 0, 0])))
        return object(), pd.DataFrame({"val_loss": [1.0]})

    monkeypatch.setattr(fit, "fit_model", fake_fit)
    monkeypatch.setattr(fit, "free_memory", lambda: None)
    monkeypatch.setattr(fit, "predict", lambda net, x, **kw: x[:, 0, 0] / 100.0)
    cv = fit.cross_validate(images, kept, y[kept], u[kept], k=4, seed=0, copies=(copies, y[copies], u[copies]))
    np.testing.assert_allclose(cv.p, gid[kept] / 100.0)  # every kept radiograph scored, by its own fold
    assert sorted(np.bincount(cv.fold)) == sorted(f["test"] for f in cv.folds) and sum(np.bincount(cv.fold)) == 40
    for f, (trained, validated) in enumerate(seen):
        tested = set(gid[kept][cv.fold == f])
        assert tested.isdisjoint(trained) and tested.isdisjoint(validated) and trained.isdisjoint(validated)
        assert len(tested | trained | validated) == 40
    assert any(len(trained) > 0 for trained, _ in seen)
    copies_trained = sum(f["train"] for f in cv.folds) - sum(len(tr) for tr, _ in seen)
    assert copies_trained > 0  # a training group's copies train with it


def test_intervals_resample_groups_not_files():
    """Ten copies of each of 60 radiographs are 60 pieces of evidence, not 600."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    p = np.where(rng.random(60) < 0.75, y, 1 - y).astype(float)
    width = lambda m: m["accuracy_ci"][1] - m["accuracy_ci"][0]  # noqa: E731
    once = evaluate.metrics(y, p)
    ten_y, ten_p, ten_g = np.repeat(y, 10), np.repeat(p, 10), np.repeat(np.arange(60), 10)
    by_group = evaluate.metrics(ten_y, ten_p, groups=ten_g)
    by_file = evaluate.metrics(ten_y, ten_p)
    assert by_group["accuracy"] == once["accuracy"] and by_group["n_groups"] == 60
    assert width(by_group) == pytest.approx(width(once), rel=0.25)
    assert width(by_file) < 0.5 * width(by_group)


def test_weighted_resamples_score_as_the_repeated_images_would():
    """A resample is weights (how often each image was drawn); AUC with ties included."""
    from sklearn import metrics as sk

    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 50)
    p = np.round(rng.random(50), 1)  # many ties
    w = rng.integers(0, 4, 50)
    r = evaluate._rates(y, p[None, :], w[None, :].astype(float), 0.5)
    yy, pp = np.repeat(y, w), np.repeat(p, w)
    assert r["auc"][0, 0] == pytest.approx(sk.roc_auc_score(yy, pp))
    assert r["accuracy"][0, 0] == pytest.approx(sk.accuracy_score(yy, pp >= 0.5))
    assert r["f1"][0, 0] == pytest.approx(sk.f1_score(yy, pp >= 0.5))


def test_a_difference_between_sets_that_share_groups_is_resampled_paired():
    """The same predictions on two sets that share every group: each resample's difference is 0."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 80)
    p = rng.random(80)
    g = np.arange(80)
    paired = evaluate.difference(y, p, y, p, groups_a=g, groups_b=g)
    assert paired["accuracy"] == 0 and paired["accuracy_ci"] == [0, 0]
    apart = evaluate.difference(y, p, y, p)
    assert apart["accuracy_ci"][0] < -0.05 < 0.05 < apart["accuracy_ci"][1]
