"""Metrics with bootstrap intervals: right numbers, null where nothing can be computed."""

import numpy as np
import pytest
from sklearn import metrics as sk

from curate.trainer.evaluate import RATES, confusion, difference, metrics, per_class


@pytest.fixture
def scored():
    """300 labels and probabilities from a decent, imperfect classifier."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + 0.7 * rng.random(300), 0, 1)
    return y, p


def test_point_values_match_scikit_learn(scored):
    y, p = scored
    m = metrics(y, p)
    pred = (p >= 0.5).astype(int)
    assert (m["n"], m["n_pos"], m["n_neg"]) == (300, int(y.sum()), 300 - int(y.sum()))
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred), abs=1e-4)
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y, pred), abs=1e-4)
    assert m["auc"] == pytest.approx(sk.roc_auc_score(y, p), abs=1e-4)
    assert m["precision"] == pytest.approx(sk.precision_score(y, pred), abs=1e-4)
    assert m["recall"] == pytest.approx(sk.recall_score(y, pred), abs=1e-4)
    assert m["f1"] == pytest.approx(sk.f1_score(y, pred), abs=1e-4)


def test_every_rate_has_a_95_percent_interval_around_it(scored):
    m = metrics(*scored)
    for k in RATES:
        lo, hi = m[f"{k}_ci"]
        assert lo <= m[k] <= hi and hi - lo < 0.2, k


def test_a_set_with_one_class_gives_null_not_made_up_numbers():
    only_negatives = metrics(np.zeros(10, int), np.linspace(0, 1, 10))
    assert only_negatives["accuracy"] == 0.5
    for k in ("balanced_accuracy", "auc", "precision", "recall", "f1"):
        assert only_negatives[k] is None and only_negatives[f"{k}_ci"] is None, k
    only_positives = metrics(np.ones(10, int), np.linspace(0, 1, 10))
    assert only_positives["recall"] == 0.5  # sensitivity still means something
    assert only_positives["auc"] is None and only_positives["precision"] is None


def test_an_empty_set_gives_counts_of_zero_and_null_rates():
    m = metrics([], [])
    assert m["n"] == 0 and all(m[k] is None for k in RATES)


def test_several_seeds_give_the_mean_and_the_spread(scored):
    y, p = scored
    worse = np.where(np.arange(300) < 30, 1 - p, p)  # the second seed flips 30 predictions
    m = metrics(y, np.stack([p, worse]))
    a, b = metrics(y, p)["accuracy"], metrics(y, worse)["accuracy"]
    assert m["accuracy"] == pytest.approx((a + b) / 2, abs=1e-4)
    assert m["spread"]["accuracy"]["per_seed"] == [a, b]


def test_the_difference_interval_covers_a_real_gap_and_excludes_zero():
    rng = np.random.default_rng(2)
    y_a, y_b = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    p_a = np.where(rng.random(400) < 0.9, y_a, 1 - y_a).astype(float)  # ~90% right
    p_b = np.where(rng.random(400) < 0.7, y_b, 1 - y_b).astype(float)  # ~70% right
    d = difference(y_a, p_a, y_b, p_b)
    lo, hi = d["accuracy_ci"]
    assert 0 < lo < d["accuracy"] < hi
    assert d["accuracy"] == pytest.approx(metrics(y_a, p_a)["accuracy"] - metrics(y_b, p_b)["accuracy"], abs=1e-3)


def test_per_class_accuracy_is_the_recall_of_each_class(scored):
    y, p = scored
    by_class = per_class(y, p, ("not fractured", "fractured"))
    pred = (p >= 0.5).astype(int)
    assert by_class["fractured"]["accuracy"] == pytest.approx(sk.recall_score(y, pred), abs=1e-4)
    assert by_class["not fractured"]["accuracy"] == pytest.approx(sk.recall_score(1 - y, 1 - pred), abs=1e-4)


def test_confusion_counts_rows_true_columns_predicted():
    assert confusion([0, 0, 1, 1, 1], [0.1, 0.9, 0.8, 0.7, 0.2]).tolist() == [[1, 1], [1, 2]]
