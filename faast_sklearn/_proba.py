"""Class probabilities from the classifier's log-odds (decision function scores)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, log_expit, log_softmax, softmax


def probabilities(scores: np.ndarray, multilabel: bool, n_classes: int) -> np.ndarray:
    """Softmax of the scores (sigmoid when binary or per label when multilabel)."""
    if multilabel:
        return expit(scores)
    if n_classes == 1:  # a stream that has seen one class so far
        return np.ones((len(scores), 1))
    if scores.ndim == 1:
        p1 = expit(scores)
        return np.column_stack([1.0 - p1, p1])
    return softmax(scores, axis=1)


def log_probabilities(scores: np.ndarray, multilabel: bool, n_classes: int) -> np.ndarray:
    """Logarithm of :func:`probabilities`, computed without underflow."""
    if multilabel:
        return log_expit(scores)
    if n_classes == 1:
        return np.zeros((len(scores), 1))
    if scores.ndim == 1:
        return np.column_stack([log_expit(-scores), log_expit(scores)])
    return log_softmax(scores, axis=1)
