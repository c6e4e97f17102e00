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

RATES = ("accuracy", "balanced_accuracy", "auc", "precision", "recall", "f1")
N_BOOT = 1000
MIN_VALID = 0.5  # an interval needs at least half the resamples to be computable


def _rates(y: np.ndarray, p: np.ndarray, w: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Every rate for a batch of resamples at once, each resample given as weights.

    y: n labels (0/1); p: S x n probabilities; w: R x n weights (how often resample r drew each
    image; all ones is the set itself). Returns R x S arrays, NaN = undefined.
    """
    y = np.asarray(y).astype(bool)
    w = np.asarray(w, dtype=float)
    pred = p >= threshold
    pos = (w * y).sum(-1)[:, None]  # R x 1
    neg = (w * ~y).sum(-1)[:, None]
    tp, fp = w @ (pred & y).T, w @ (pred & ~y).T  # R x S weighted counts
    tn, fn = w @ (~pred & ~y).T, w @ (~pred & y).T

    def div(a, b):
        a, b = np.broadcast_arrays(a, b)
        out = np.full(a.shape, np.nan)
        np.divide(a, b, out=out, where=b > 0)
        return out

    recall = div(tp, pos)
    specificity = div(tn, neg)
    both = (pos > 0) & (neg > 0)
    precision = np.where(both, div(tp, tp + fp), np.nan)
    f1 = div(2 * tp, 2 * tp + fp + fn)
    f1[np.isnan(recall) | np.isnan(precision)] = np.nan
    return {
        "accuracy": div(tp + tn, pos + neg),
        "balanced_accuracy": np.where(both, (recall + specificity) / 2, np.nan),
        "auc": np.where(both, div(_auc_pairs(y, p, w), pos * neg), np.nan),
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def _auc_pairs(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """R x S weighted count of (positive, negative) pairs ranked right, a tie counting half:
    the Mann-Whitney numerator of AUC (as roc_auc_score) with each image counted w times."""
    out = np.zeros((w.shape[0], p.shape[0]))
    if p.shape[1] == 0:
        return out
    for s, ps in enumerate(p):
        order = np.argsort(ps, kind="stable")
        sp = ps[order]
        starts = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1]])  # runs of tied scores
        neg = np.add.reduceat((w * ~y)[:, order], starts, axis=1)  # R x runs
        pos = np.add.reduceat((w * y)[:, order], starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg  # negatives scored lower than the run
        out[:, s] = (pos * (below + 0.5 * neg)).sum(1)
    return out


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


def _resamples(codes: list[np.ndarray], n_groups: int, n_boot: int, rng, chunk: int = 200):
    """Bootstrap over groups: each resample draws n_groups groups with replacement and takes
    every image of each drawn group. Yields, per chunk, one R x n weight matrix per set (an
    image's weight is how often its group was drawn). Sets that share a group share its draw."""
    for start in range(0, n_boot, chunk):
        counts = rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=min(chunk, n_boot - start))
        yield [counts[:, c].astype(float) for c in codes]


def _group_codes(*sets: tuple[int, object]) -> tuple[list[np.ndarray], int]:
    """Integer codes over the union of the sets' group ids, from (n, groups) per set;
    groups None = each of the set's n images is its own group, shared with no other set."""
    keys = [np.asarray(g).astype(str) if g is not None else np.array([f"\0{i}:{j}" for j in range(n)], dtype=str)
            for i, (n, g) in enumerate(sets)]
    uniq, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    bounds = np.cumsum([0] + [len(k) for k in keys])
    return [inverse[lo:hi] for lo, hi in zip(bounds[:-1], bounds[1:])], len(uniq)


def _boot_rates(y, p, w_chunks, threshold) -> dict[str, np.ndarray]:
    """Per-resample seed-mean rates for one set from its weight chunks (NaN where undefined)."""
    out = {k: [] for k in RATES}
    for w in w_chunks:
        r = _rates(y, p, w, threshold)
        for k in RATES:
            out[k].append(r[k].mean(axis=1))  # mean over seeds; NaN if any seed undefined
    return {k: np.concatenate(v) if v else np.array([]) for k, v in out.items()}


def metrics(y, p, *, groups=None, threshold: float = 0.5, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """METRICS for labels y (0/1) and probabilities p (n, or seeds x n), with 95% intervals.

    groups: a group id per image (copies of one radiograph, one patient): the bootstrap then
    resamples groups, not images, so copies do not pass for independent evidence.
    """
    y = np.asarray(y, dtype=int)
    p = _as_matrix(p)
    n, n_pos = len(y), int(y.sum())
    out: dict = {"n": n, "n_pos": n_pos, "n_neg": n - n_pos}
    if groups is not None:
        out["n_groups"] = int(len(set(map(str, groups))))
    if n == 0:
        for k in RATES:
            out[k], out[f"{k}_ci"] = None, None
        return out
    point = _rates(y, p, np.ones((1, n)), threshold)
    (codes,), n_groups = _group_codes((n, groups))
    rng = np.random.default_rng(seed)
    boot = _boot_rates(y, p, (w for (w,) in _resamples([codes], n_groups, n_boot, rng)), threshold)
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


def difference(y_a, p_a, y_b, p_b, *, groups_a=None, groups_b=None, threshold: float = 0.5,
               n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Metric on set A minus metric on set B, each with a 95% bootstrap interval.

    Each resample draws groups from the union of both sets' groups, so a group in both sets
    is drawn for both at once (paired) and the interval is not widened by their overlap.
    Without groups every image is its own group, and the two sets share none.
    """
    y_a, y_b = np.asarray(y_a, dtype=int), np.asarray(y_b, dtype=int)
    p_a, p_b = _as_matrix(p_a), _as_matrix(p_b)
    out: dict = {}
    if len(y_a) == 0 or len(y_b) == 0:
        for k in RATES:
            out[k], out[f"{k}_ci"] = None, None
        return out
    rng = np.random.default_rng(seed)
    pa = _rates(y_a, p_a, np.ones((1, len(y_a))), threshold)
    pb = _rates(y_b, p_b, np.ones((1, len(y_b))), threshold)
    codes, n_groups = _group_codes((len(y_a), groups_a), (len(y_b), groups_b))
    chunks = list(_resamples(codes, n_groups, n_boot, rng))
    ba = _boot_rates(y_a, p_a, (w[0] for w in chunks), threshold)
    bb = _boot_rates(y_b, p_b, (w[1] for w in chunks), threshold)
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


def per_class(y, p, names: tuple[str, str], *, groups=None, **kw) -> dict:
    """Accuracy within each class ({negative name: ..., positive name: ...}): recall of each class."""
    y = np.asarray(y, dtype=int)
    p = _as_matrix(p)
    out = {}
    for cls, name in enumerate(names):
        m = metrics(y[y == cls], p[:, y == cls], groups=None if groups is None else np.asarray(groups)[y == cls], **kw)
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
    """Accuracy and loss per epoch (train and val) from a history table (one line per fold
    when it has a `fold` column)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=100)
    runs = history.groupby("fold") if "fold" in history else [(None, history)]
    for ax, key in zip(axes, ("accuracy", "loss")):
        for fold, h in runs:
            for col, style in ((key, "-"), (f"val_{key}", "--")):
                if col in h:
                    tag = f" fold {fold}" if fold is not None else ""
                    ax.plot(h["epoch"], h[col], style, marker="o", label=col + tag)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_title(key)
        ax.legend(fontsize=7 if "fold" in history else None)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_compare(bars: dict[str, dict | None], path, keys=("accuracy", "balanced_accuracy", "auc"), title: str = "",
                 gap: dict | None = None, gap_label: str = "naive - curated") -> None:
    """Grouped bars with 95% intervals: one group per metric, one bar per (model, test set);
    with `gap` (a `difference`), a panel beside them with that difference and its interval."""
    plt = _pyplot()
    if gap:
        fig, (ax, side) = plt.subplots(1, 2, figsize=(10, 4.4), dpi=100, gridspec_kw={"width_ratios": [3, 1.1]})
    else:
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
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=min(len(names), 3), frameon=False)
    if gap:
        shown = [k for k in keys if gap.get(k) is not None]
        for j, k in enumerate(shown):
            ci = gap.get(f"{k}_ci") or [gap[k], gap[k]]
            side.errorbar(gap[k], j, xerr=[[gap[k] - ci[0]], [ci[1] - gap[k]]], fmt="o", color="#D55E00", capsize=4)
            side.annotate(f"{gap[k]:+.3f}", (gap[k], j), textcoords="offset points", xytext=(0, 7), ha="center",
                          fontsize=8)
        side.axvline(0, color="grey", lw=0.8)
        side.set_yticks(range(len(shown)), shown, fontsize=8)
        side.set_ylim(-0.6, len(shown) - 0.4)
        side.invert_yaxis()
        side.set_title(f"inflation: {gap_label}", fontsize=9)
        side.set_xlabel("difference (95% interval)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
