"""Classification metrics for binary probabilities; undefined values come back as None with a reason."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

# Probabilities are clipped before log loss so a confident miss costs a large but finite amount.
EPSILON = 1e-6


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float | int | None | str]:
    """ROC-AUC, PR-AUC, Brier, log loss, base rate and mean prediction of one sample.

    ROC-AUC and PR-AUC are None when the sample holds one class only (``status`` says so).
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    result: dict[str, float | int | None | str] = {
        "n_rows": int(y.size),
        "base_rate": None,
        "mean_prediction": None,
        "roc_auc": None,
        "pr_auc": None,
        "brier": None,
        "log_loss": None,
        "status": "ok",
    }
    if y.size == 0:
        result["status"] = "no_labels"
        return result
    result["base_rate"] = float(y.mean())
    result["mean_prediction"] = float(p.mean())
    result["brier"] = float(brier_score_loss(y, p))
    result["log_loss"] = float(log_loss(y, np.clip(p, EPSILON, 1 - EPSILON), labels=[0, 1]))
    if np.unique(y).size < 2:
        result["status"] = "single_class"
        return result
    result["roc_auc"] = float(roc_auc_score(y, p))
    result["pr_auc"] = float(average_precision_score(y, p))
    return result


def max_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold that maximises F1 on (y, p)."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    true_pos = np.cumsum(y_sorted)
    predicted = np.arange(1, y.size + 1)
    f1 = 2 * true_pos / (predicted + y.sum())
    # Only cut where the score changes, so ties fall on one side of the threshold.
    last_of_tie = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    best = int(np.argmax(np.where(last_of_tie, f1, -1.0)))
    return float(p_sorted[best])


def decision_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of the decision ``p >= threshold``."""
    decided = p >= threshold
    true_pos = float(np.sum(decided & (y == 1)))
    precision = true_pos / max(float(decided.sum()), 1.0)
    recall = true_pos / max(float(np.sum(y == 1)), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def min_cost_threshold(y: np.ndarray, p: np.ndarray, false_positive_cost: float, false_negative_cost: float) -> float:
    """The probability threshold with the lowest total cost of false positives and false negatives."""
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    true_pos = np.cumsum(y_sorted)
    false_pos = np.arange(1, y.size + 1) - true_pos
    false_neg = y.sum() - true_pos
    cost = false_positive_cost * false_pos + false_negative_cost * false_neg
    last_of_tie = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    best = int(np.argmin(np.where(last_of_tie, cost, np.inf)))
    # Flagging nothing can be cheapest too: then the threshold sits just above the highest score.
    if false_negative_cost * y.sum() < cost[best]:
        return float(np.nextafter(p_sorted[0], np.inf))
    return float(p_sorted[best])


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int) -> list[dict]:
    """Equal-width probability bins: rows, mean prediction and observed rate per non-empty bin."""
    index = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append(
                {
                    "bin": b,
                    "lower": b / bins,
                    "upper": (b + 1) / bins,
                    "n_rows": int(mask.sum()),
                    "mean_prediction": float(p[mask].mean()),
                    "observed_rate": float(y[mask].mean()),
                }
            )
    return rows


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    """ECE: the row-weighted mean gap between mean prediction and observed rate over equal-width bins."""
    table = reliability_table(y, p, bins)
    return float(sum(r["n_rows"] * abs(r["mean_prediction"] - r["observed_rate"]) for r in table) / max(y.size, 1))


def estimated_metrics(p: np.ndarray, threshold: float) -> dict[str, float | None]:
    """Confidence-based performance estimation (NannyML's CBPE) from calibrated probabilities, no labels.

    If the probabilities are calibrated, row i is positive with probability p_i. The expected confusion
    matrix at ``threshold`` is then E[TP] = sum of p over the flagged rows, E[FP] = sum of 1 - p over them,
    E[FN] = sum of p over the others, and precision and recall are estimated as E[TP] / E[flagged] and
    E[TP] / E[positives]. The expected ROC curve has, at each cut, TPR = (sum of p above the cut) / sum(p)
    and FPR = (sum of 1 - p above the cut) / sum(1 - p); its area is the ROC-AUC of every row counted once as
    a positive with weight p_i and once as a negative with weight 1 - p_i (ties count half), which is how it
    is computed here. None where a figure is undefined (no rows, or every p is 0 or 1).
    """
    p = np.asarray(p, dtype=np.float64)
    result: dict[str, float | None] = {"roc_auc": None, "precision": None, "recall": None, "base_rate": None}
    if p.size == 0:
        return result
    positives = float(p.sum())
    flagged = p >= threshold
    expected_true_pos = float(p[flagged].sum())
    result["base_rate"] = positives / p.size
    result["precision"] = expected_true_pos / float(flagged.sum()) if flagged.any() else None
    result["recall"] = expected_true_pos / positives if positives > 0 else None
    if 0 < positives < p.size:
        labels = np.r_[np.ones(p.size), np.zeros(p.size)]
        result["roc_auc"] = float(roc_auc_score(labels, np.r_[p, p], sample_weight=np.r_[p, 1 - p]))
    return result
