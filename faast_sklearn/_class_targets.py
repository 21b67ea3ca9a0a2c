"""Labels -> the classifier's targets: class codes or a multilabel matrix, and zero rows."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import targets as _targets


def encode_targets(est, y, w, *, first, partial, classes):
    """``(codes or label matrix, n_targets, columns, state)`` of the labels ``y``: class codes
    into the union of the classes seen, declared and embedded (or a multilabel indicator
    matrix); ``columns`` re-indexes the earlier targets, ``state`` the attributes to set."""
    y_arr, multilabel = _targets.as_labels(y)
    if multilabel:
        return _encode_multilabel(est, y_arr, first=first)
    if not first and est._multilabel:
        raise ValueError("The estimator was fitted on multilabel targets; got 1-D labels.")
    old = None if first else est.classes_
    ce = est._text_class_embeddings(old, y_arr, classes)
    declared = _targets.embedding_classes(ce, y_arr, classes)
    if declared is None and classes is not None:
        declared = np.unique(np.asarray(classes))
    new_classes, columns = _targets.union_classes(old, y_arr)
    if declared is not None:
        new_classes, _ = _targets.union_classes(declared, new_classes)
        if old is not None:
            columns = np.searchsorted(new_classes, old)
    if ce is not None and isinstance(ce, Mapping):
        missing = np.setdiff1d(new_classes, declared)
        if len(missing):
            raise ValueError(f"class_embeddings has no vector for labels {missing[:10].tolist()}.")
    # Every label is one of new_classes (a union with the labels seen): its sorted
    # position is its code (np.unique's return_inverse costs a one-shot fit twice this).
    codes = new_classes.searchsorted(y_arr)
    if not partial:
        # Classes with positive weight (weights are non-negative).
        class_weights = np.bincount(codes, weights=w, minlength=len(new_classes))
        if np.count_nonzero(class_weights) < 2:
            present = np.flatnonzero(class_weights)
            raise ValueError(
                f"{type(est).__name__} needs samples of at least 2 classes with positive "
                f"weight to fit; got 1 class ({new_classes[present].tolist()}). Use "
                "partial_fit to start a stream with one class."
            )
    state = {"classes_": new_classes, "_multilabel": False, "_label_dtype": y_arr.dtype}
    if est.class_embeddings is not None:
        state["_class_embedding"] = _targets.embedding_matrix(ce, new_classes)
    return codes, len(new_classes), (None if first else columns), state


def _encode_multilabel(est, y, *, first):
    if est.class_embeddings is not None:
        raise ValueError("class_embeddings cannot be combined with multilabel targets.")
    n_labels = y.shape[1]
    if not first:
        if not est._multilabel or n_labels != len(est.classes_):
            raise ValueError(
                f"y has {n_labels} label columns; the estimator was fitted on "
                f"{len(est.classes_)} {'labels' if est._multilabel else 'classes'}."
            )
    state = {"classes_": np.arange(n_labels), "_multilabel": True, "_label_dtype": y.dtype}
    return np.asarray(y, dtype=np.float64), n_labels, None, state


def check_no_rows(est, *, partial, first, classes):
    """Raise unless a zero-row batch can start this stream (predicting from the prior)."""
    # Zero rows: the prior alone predicts (r = 0), e.g. CLIP's zero-shot classifier.
    name = type(est).__name__
    if not partial:
        raise ValueError(
            f"Found array with 0 sample(s) while a minimum of 1 is required by {name}.fit. "
            "To predict before any training row (zero-shot, from the prior alone), start "
            "a stream instead: partial_fit(X[:0], y[:0], classes=[...]) with a prior."
        )
    if est.prior is None:
        raise ValueError(
            f"Found array with 0 sample(s): {name} can predict before any training row "
            "only from a prior, and prior=None. Pass prior='identity' with "
            "class_embeddings (CLIP zero-shot from class names: class_embeddings='text'), "
            "or a callable or fitted estimator."
        )
    if first and classes is None and not isinstance(est.class_embeddings, Mapping):
        raise ValueError(
            "Found array with 0 sample(s) and no classes are known: pass classes=[...] to "
            "partial_fit (or class_embeddings as a mapping label -> name or vector)."
        )
