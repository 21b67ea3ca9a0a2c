"""Label encodings: class codes, classes that arrive mid-stream, and user class embeddings.

Classifier statistics are kept in one-hot class space whatever the targets regressed: a class
embedding ``E`` (one row per class) turns them into the embedded targets ``Y @ E`` at solve
time (see :func:`faast_sklearn.solvers.spectrum`), so classes can be added to a stream and
embeddings can cover classes never seen in training (the zero-shot case).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import column_or_1d

from .utils._torch import is_tensor

_CLASSIFICATION_TARGETS = (
    "binary", "multiclass", "multiclass-multioutput", "multilabel-indicator",
    "multilabel-sequences",
)  # fmt: skip
# NumPy kinds of labels that type_of_target always finds discrete when 1-D: bool, signed and
# unsigned integers, strings.
_DISCRETE_KINDS = "biuU"


def as_labels(y) -> tuple[np.ndarray, bool]:
    """Classification targets as an array, and whether they are a multilabel indicator.

    Raises a ValueError naming the label type for continuous (regression) targets.
    """
    if is_tensor(y):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    if y.ndim == 1 and y.dtype.kind in _DISCRETE_KINDS:
        return y, False  # always "binary" or "multiclass"
    with warnings.catch_warnings():
        # One example per class is this estimator's home ground (one-shot learning), not a
        # sign that y is continuous: scikit-learn's "more than 50% unique classes" warning
        # would fire on every one-shot fit.
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        kind = type_of_target(y, input_name="y")
    if kind not in _CLASSIFICATION_TARGETS:
        raise ValueError(
            f"Unknown label type: {kind}. Maybe you are trying to fit a classifier, which "
            "expects discrete classes on a regression target with continuous values."
        )
    if kind == "multilabel-indicator":
        return y, True
    return column_or_1d(y), False


def union_classes(classes: np.ndarray | None, labels) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted union of known classes and new labels.

    Returns the new classes and, when ``classes`` was given, the position of each old class in
    the new array (to re-index statistics kept so far).
    """
    labels = np.unique(np.asarray(labels))
    if classes is None:
        return labels, None
    if not labels.size:  # a batch of zero rows: its labels have no type to compare
        return classes, np.arange(len(classes))
    # np.union1d would silently turn [0, 1] and ["a"] into strings: compare kinds first.
    numeric = [a.dtype.kind in "biuf" for a in (classes, labels)]
    try:
        if numeric[0] != numeric[1]:
            raise TypeError("numbers and strings")
        merged = np.union1d(classes, labels)
    except TypeError as exc:
        raise ValueError(
            f"Labels of different types cannot be mixed: the estimator was fitted on "
            f"{classes.dtype} labels and got {labels.dtype} labels ({exc})."
        ) from exc
    return merged, np.searchsorted(merged, classes)


def embedding_classes(class_embeddings, labels, classes) -> np.ndarray | None:
    """The classes defined by ``class_embeddings`` (None for one-hot targets)."""
    if class_embeddings is None:
        return None
    if isinstance(class_embeddings, Mapping):
        try:
            return np.unique(np.asarray(list(class_embeddings.keys())))
        except TypeError as exc:
            raise ValueError(f"class_embeddings keys must be comparable labels: {exc}") from exc
    return np.unique(np.asarray(labels if classes is None else classes))


def embedding_matrix(class_embeddings, classes: np.ndarray) -> np.ndarray:
    """Row-normalised (n_classes, D) float64 embedding, rows in the order of ``classes``.

    Rows are L2-normalised: predictions are compared with them by cosine similarity, as the
    paper does with CLIP text embeddings.
    """
    if isinstance(class_embeddings, Mapping):
        rows = [np.asarray(class_embeddings[c], dtype=np.float64).ravel() for c in classes]
        dims = {r.shape[0] for r in rows}
        if len(dims) != 1:
            raise ValueError(f"class_embeddings vectors must all have one length; got {dims}.")
        E = np.stack(rows)
    else:
        E = np.asarray(class_embeddings, dtype=np.float64)
        if E.ndim != 2:
            raise ValueError(
                f"class_embeddings must be a mapping label -> vector or a 2-D array of shape "
                f"(n_classes, n_dims); got an array of shape {E.shape}."
            )
        if E.shape[0] != len(classes):
            raise ValueError(
                f"class_embeddings has {E.shape[0]} rows but there are {len(classes)} classes "
                f"({classes[:10].tolist()}...): rows must follow the sorted class labels, or "
                "pass a mapping label -> vector."
            )
    if not np.all(np.isfinite(E)):
        raise ValueError("class_embeddings contains NaN or infinity.")
    norms = np.linalg.norm(E, axis=1)
    if np.any(norms == 0):
        raise ValueError(
            f"class_embeddings has all-zero rows for classes {classes[norms == 0][:10].tolist()}."
        )
    return E / norms[:, None]


def prior_scores(prior, X, classes: np.ndarray) -> np.ndarray:
    """A classifier prior's scores of ``classes`` on ``X``: a fitted estimator's
    ``predict_proba`` columns of those classes (its ``classes_`` must cover them), a
    callable's output, or ``predict``'s."""
    if hasattr(prior, "predict_proba"):
        proba = prior.predict_proba(X)
        if isinstance(proba, list):  # a multilabel scikit-learn classifier's: one per label
            raise ValueError(
                "The prior's predict_proba returned a list (a multilabel classifier's); a prior "
                "must give one (n_samples, n_classes) array of class scores."
            )
        theirs = np.asarray(prior.classes_)
        order = np.argsort(theirs, kind="stable")  # their classes_ need not be sorted
        pos = order[np.minimum(np.searchsorted(theirs[order], classes), len(theirs) - 1)]
        if np.any(theirs[pos] != classes):
            raise ValueError("The prior's classes_ do not cover this estimator's classes_.")
        return proba[:, pos]
    if callable(prior):
        return prior(X)
    return prior.predict(X)
