"""Metrics with 95% bootstrap intervals, and the pictures that go with them.

METRICS (INTERFACE.md): n, n_pos, n_neg, accuracy, balanced_accuracy, auc, precision,
recall, f1, each rate with `<name>_ci: [lo, hi]`. A metric whose formula has nothing to
divide by is null, never a made-up number:
  accuracy           needs n > 0
  recall             needs a positive image          (TP / (TP + FN))
  precision          needs both classes and a positive prediction (TP / (TP + FP)); with one
                     class it could only be 0 or 1 by construction
  f1                 needs precision and recall
  balanced_accuracy  needs both classes
  auc                needs both classes

Predictions may come from several seeds (an S x n matrix): a metric is then the mean over
seeds, and each bootstrap resample draws test images once and scores every seed on them,
so the interval is about the test set, and `spread` reports how much the seeds disagree.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

RATES = ("accuracy", "balanced_accuracy", "auc", "precision", "recall", "f1")
N_BOOT = 1000
MIN_VALID = 0.5  # an interval needs at least half the resamples to be computable


def _rates(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Every rate for a batch of (resampled) sets at once.

    y: R x n labels (0/1); p: R x S x n probabilities. Returns R x S arrays, NaN = undefined.
    """
    y = y[:, None, :].astype(bool)
    pred = p >= threshold
    pos = y.sum(-1).astype(float)  # R x 1
    n = y.shape[-1]
    neg = n - pos
    tp = (pred & y).sum(-1).astype(float)
    fp = (pred & ~y).sum(-1).astype(float)
    tn = (~pred & ~y).sum(-1).astype(float)
    fn = (~pred & y).sum(-1).astype(float)
    S = p.shape[1]

    def div(a, b):
        a, b = np.broadcast_arrays(a, b)
        out = np.full(a.shape, np.nan)
        np.divide(a, b, out=out, where=b > 0)
        return out

    recall = div(tp, np.broadcast_to(pos, tp.shape))
    specificity = div(tn, np.broadcast_to(neg, tn.shape))
    both = (pos > 0) & (neg > 0)
    precision = np.where(both, div(tp, tp + fp), np.nan)
    f1 = div(2 * tp, 2 * tp + fp + fn)
    f1[np.isnan(recall) | np.isnan(precision)] = np.nan
    # AUC by the rank-sum (Mann-Whitney) formula; ties get average ranks, as in roc_auc_score.
    ranks = rankdata(p, axis=-1) if n else np.zeros_like(p)
    rank_sum = (ranks * y).sum(-1)
    auc = div(rank_sum - pos * (pos + 1) / 2, np.broadcast_to(pos * neg, rank_sum.shape))
    return {
        "accuracy": div(tp + tn, np.full((y.shape[0], S), float(n))),
        "balanced_accuracy": np.where(both, (recall + specificity) / 2, np.nan),
        "auc": np.where(both, auc, np.nan),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _clean(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def _as_matrix(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return p[None, :] if p.ndim == 1 else p


def _interval(values: np.ndarray) -> list[float] | None:
    """Percentile 95% interval of per-resample values (NaN = undefined resample)."""
    good = values[np.isfinite(values)]
    if len(good) < MIN_VALID * len(values) or len(good) == 0:
        return None
    lo, hi = np.percentile(good, [2.5, 97.5])
    return [_clean(lo), _clean(hi)]


def _boot_rates(y, p, threshold, n_boot, rng, chunk=200) -> dict[str, np.ndarray]:
    """Per-resample seed-mean rates: n_boot values per metric (NaN where undefined)."""
    n = len(y)
    out = {k: [] for k in RATES}
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        r = _rates(y[idx], np.transpose(p[:, idx], (1, 0, 2)), threshold)
        for k in RATES:
            out[k].append(r[k].mean(axis=1))  # mean over seeds; NaN if any seed undefined
    return {k: np.concatenate(v) if v else np.array([]) for k, v in out.items()}


def metrics(y, p, *, threshold: float = 0.5, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """METRICS for labels y (0/1) and probabilities p (n, or seeds x n), with 95% intervals."""
    y = np.asarray(y, dtype=int)
    p = _as_matrix(p)
    n, n_pos = len(y), int(y.sum())
    out: dict = {"n": n, "n_pos": n_pos, "n_neg": n - n_pos}
    if n == 0:
        for k in RATES:
            out[k], out[f"{k}_ci"] = None, None
        return out
    point = _rates(y[None, :], p[None, :, :], threshold)
    boot = _boot_rates(y, p, threshold, n_boot, np.random.default_rng(seed))
    for k in RATES:
        value = _clean(point[k][0].mean())
        out[k] = value
        out[f"{k}_ci"] = _interval(boot[k]) if value is not None else None
    if p.shape[0] > 1:
        out["seeds"] = p.shape[0]
        out["spread"] = {
            k: {
                "std": _clean(np.std(point[k][0], ddof=1)),
                "min": _clean(np.min(point[k][0])),
                "max": _clean(np.max(point[k][0])),
                "per_seed": [_clean(v) for v in point[k][0]],
            }
            for k in RATES
        }
    return out


def difference(y_a, p_a, y_b, p_b, *, threshold: float = 0.5, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Metric on set A minus metric on set B, each with a 95% bootstrap interval.

    A and B are treated as independent samples: each resample draws A and B separately.
    (When A and B share images the interval is wider than it needs to be: conservative.)
    """
    y_a, y_b = np.asarray(y_a, dtype=int), np.asarray(y_b, dtype=int)
    p_a, p_b = _as_matrix(p_a), _as_matrix(p_b)
    out: dict = {}
    if len(y_a) == 0 or len(y_b) == 0:
        for k in RATES:
            out[k], out[f"{k}_ci"] = None, None
        return out
    rng = np.random.default_rng(seed)
    pa = _rates(y_a[None, :], p_a[None, :, :], threshold)
    pb = _rates(y_b[None, :], p_b[None, :, :], threshold)
    ba = _boot_rates(y_a, p_a, threshold, n_boot, rng)
    bb = _boot_rates(y_b, p_b, threshold, n_boot, rng)
    for k in RATES:
        value = _clean(pa[k][0].mean() - pb[k][0].mean())
        out[k] = value
        out[f"{k}_ci"] = _interval(ba[k] - bb[k]) if value is not None else None
    if p_a.shape[0] > 1 and p_a.shape[0] == p_b.shape[0]:  # the same seeds on both sides
        per_seed = {k: pa[k][0] - pb[k][0] for k in RATES}
        out["spread"] = {
            k: {"std": _clean(np.std(v, ddof=1)), "per_seed": [_clean(x) for x in v]} for k, v in per_seed.items()
        }
    return out


def per_class(y, p, names: tuple[str, str], **kw) -> dict:
    """Accuracy within each class ({negative name: ..., positive name: ...}): recall of each class."""
    y = np.asarray(y, dtype=int)
    p = _as_matrix(p)
    out = {}
    for cls, name in enumerate(names):
        m = metrics(y[y == cls], p[:, y == cls], **kw)
        out[name] = {"n": m["n"], "accuracy": m["accuracy"], "accuracy_ci": m["accuracy_ci"]}
    return out


# ---- pictures (matplotlib, imported only when drawing) -------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def confusion(y, p, threshold: float = 0.5) -> np.ndarray:
    """2 x 2 counts, rows = true class (negative, positive), columns = predicted."""
    y = np.asarray(y, dtype=int)
    pred = (np.asarray(p, dtype=float) >= threshold).astype(int)
    cm = np.zeros((2, 2), dtype=int)
    np.add.at(cm, (y, pred), 1)
    return cm


def plot_confusion(cm: np.ndarray, names: tuple[str, str], path, title: str = "") -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 3.6), dpi=100)
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks([0, 1], names)
    ax.set_yticks([0, 1], names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_curves(history, path) -> None:
    """Accuracy and loss per epoch (train and val) from a history table."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    for ax, key in zip(axes, ("accuracy", "loss")):
        for col, style in ((key, "-"), (f"val_{key}", "--")):
            if col in history:
                ax.plot(history["epoch"], history[col], style, marker="o", label=col)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_compare(bars: dict[str, dict | None], path, keys=("accuracy", "balanced_accuracy", "auc"), title: str = "") -> None:
    """Grouped bars with 95% intervals: one group per metric, one bar per (model, test set)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.4), dpi=100)
    names = [n for n, m in bars.items() if m]
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        m = bars[name]
        xs, ys, errs = [], [], [[], []]
        for j, k in enumerate(keys):
            if m.get(k) is None:
                continue
            xs.append(j + (i - (len(names) - 1) / 2) * width)
            ys.append(m[k])
            ci = m.get(f"{k}_ci") or [m[k], m[k]]
            errs[0].append(m[k] - ci[0])
            errs[1].append(ci[1] - m[k])
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=name)
    ax.set_xticks(range(len(keys)), keys)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax.set_ylabel("score (95% bootstrap interval)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=len(names), frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
