"""Exact merging of estimators fitted on disjoint rows: the reduce step of any map-reduce.

:func:`merge_models` is the public entry; :mod:`._dask` and :mod:`._torch_dist` reduce with
the same helpers (statistics merged, class sets unioned, one solve at first use).
"""

from __future__ import annotations

from functools import reduce

import numpy as np
from sklearn.base import clone

from . import targets as _targets
from .solvers import resolve_backend
from .utils._content_key import Unkeyable, content_key

# Parameters that place the computation but do not change the model: ranks of a process
# group each name their own GPU (device="cuda:1"...), workers may batch differently.
_PLACEMENT = frozenset({"device", "batch_size", "verbose"})

# Fitted state that a merge recomputes; everything else must agree between the models.
_MERGED = ("stats_", "n_samples_seen_", "classes_", "_class_embedding", "_solution")


def _same_value(a, b) -> bool:
    if a is b:
        return True
    try:
        return content_key(_by_value(a)) == content_key(_by_value(b))
    except Unkeyable:
        return repr(a) == repr(b)


def _by_value(v):
    """``v`` with numbers as floats and numeric sequences as arrays of floats, recursively:
    ``1``, ``1.0`` and ``np.float64(1.0)``, a list and an array of equal values compare equal."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        a = np.asarray(v)
        if a.dtype.kind in "iuf":
            return np.asarray(a, dtype=np.float64)
        return [_by_value(x) for x in v]
    if isinstance(v, dict):
        return {_by_value(k): _by_value(x) for k, x in v.items()}
    return v


def check_params(first, other, where: str, first_name: str = "the first") -> None:
    """Raise if two estimators differ in class or in a parameter other than ``_PLACEMENT``
    (named in the message)."""
    if type(other) is not type(first):
        raise TypeError(
            f"Cannot merge a {type(other).__name__} ({where}) into a {type(first).__name__}."
        )
    p, q = first.get_params(deep=False), other.get_params(deep=False)
    if p.get("class_weight") == "balanced":
        raise ValueError(
            "Cannot merge models fitted with class_weight='balanced': its factors come from "
            "the class counts of all the rows. Pass class_weight as a dict computed from them "
            "(sklearn.utils.class_weight.compute_class_weight)."
        )
    for name in p:
        if name in _PLACEMENT:
            continue
        if not _same_value(p[name], q[name]):
            raise ValueError(
                f"Cannot merge models fitted with different parameters: {where} has "
                f"{name}={q[name]!r}, {first_name} has {name}={p[name]!r}."
            )


def check_compatible(first, other, where: str, first_name: str = "the first") -> None:
    """Raise a ValueError naming what differs between two fitted estimators' configurations
    (``where`` names ``other``, ``first_name`` names ``first``)."""
    check_params(first, other, where, first_name)
    a, b = first.__dict__, other.__dict__
    if a["n_features_in_"] != b["n_features_in_"]:
        raise ValueError(
            f"Cannot merge models of different feature widths: {where} was fitted on "
            f"{b['n_features_in_']} features, {first_name} on {a['n_features_in_']}."
        )
    names = [np.asarray(d.get("feature_names_in_", [])).tolist() for d in (a, b)]
    if names[0] != names[1]:
        raise ValueError(
            f"Cannot merge models fitted on different feature names: {where} has "
            f"{names[1][:5]}..., {first_name} {names[0][:5]}...."
        )
    if "_multilabel" in a:  # classifier targets
        if a["_multilabel"] != b["_multilabel"]:
            kinds = ["multilabel" if d["_multilabel"] else "class-label" for d in (a, b)]
            raise ValueError(
                f"Cannot merge a model fitted on {kinds[1]} targets ({where}) with one fitted "
                f"on {kinds[0]} targets."
            )
        if a["_multilabel"] and len(a["classes_"]) != len(b["classes_"]):
            raise ValueError(
                f"Cannot merge multilabel models with different label counts: {where} has "
                f"{len(b['classes_'])}, {first_name} {len(a['classes_'])}."
            )
        if not a["_multilabel"]:
            kinds = [np.asarray(d["classes_"]).dtype.kind in "biuf" for d in (a, b)]
            if kinds[0] != kinds[1]:
                raise ValueError(
                    f"Cannot merge models with labels of different types: {where} has "
                    f"{b['classes_'].dtype} labels, {first_name} {a['classes_'].dtype}."
                )
    if "_y_1d" in a:  # regressor targets
        shapes = [(d["stats_"].n_targets, d["_y_1d"]) for d in (a, b)]
        if shapes[0] != shapes[1]:
            raise ValueError(
                f"Cannot merge regressors with different targets: {where} was fitted on "
                f"{shapes[1][0]} target(s) ({'1-D' if shapes[1][1] else '2-D'} y), {first_name} on "
                f"{shapes[0][0]} ({'1-D' if shapes[0][1] else '2-D'} y)."
            )


def union_of_classes(states: list[dict]) -> np.ndarray | None:
    """Sorted union of the ``classes_`` of classifier states (None for regressors/multilabel)."""
    if states[0].get("_multilabel", True):
        return None
    return reduce(lambda c, s: _targets.union_classes(c, s["classes_"])[0], states, None)


def reindexed(state: dict, classes: np.ndarray | None):
    """The state's statistics with target columns re-indexed onto the ``classes`` union."""
    stats = state["stats_"]
    if classes is None or np.array_equal(classes, state["classes_"]):
        return stats
    return stats.with_targets(len(classes), np.searchsorted(classes, state["classes_"]))


def assemble(template, stats, n_samples: int, classes):
    """A fresh clone of ``template`` holding the merged statistics, solved at first use."""
    model = clone(template)
    drop = _MERGED if classes is not None else ()  # else: the template's classes_ stay
    state = {k: v for k, v in template.__dict__.items() if k not in drop and k != "_lock"}
    if classes is not None:
        state["classes_"] = classes
        if template.get_params().get("class_embeddings") is not None:
            state["_class_embedding"] = _targets.embedding_matrix(
                template.class_embeddings, classes
            )
    backend = resolve_backend(template.solver, template.device)
    state.update(
        stats_=stats,
        n_samples_seen_=int(n_samples),
        solver_=backend.name,
        device_=backend.device,
        _solution=None,
    )
    model.__dict__.update(state)
    return model


def adopt(estimator, fitted):
    """Give ``estimator`` (in place) the fitted state of ``fitted``, dropping its old state."""
    keep = {*estimator.get_params(deep=False), "_lock"}  # each estimator keeps its own lock
    for key in [k for k in estimator.__dict__ if k not in keep]:
        del estimator.__dict__[key]
    estimator.__dict__.update({k: v for k, v in fitted.__dict__.items() if k not in keep})
    return estimator


def merge_models(estimators):
    """Combine estimators fitted on disjoint rows into the model of one fit on all of them.

    Each estimator must be a fitted :class:`~faast_sklearn.FAASTClassifier` or
    :class:`~faast_sklearn.FAASTRegressor` (by ``fit`` or ``partial_fit``) with the same
    parameters, fitted on features of the same width. The result equals a single ``fit`` on
    the concatenated rows up to float64 round-off, whatever the split (see :ref:`scaling`).

    Parameters
    ----------
    estimators : iterable of fitted estimators
        At least one. They are not modified.

    Returns
    -------
    model : estimator
        A new estimator of the same class and parameters. Its solve runs at first use; it can
        take further ``partial_fit`` calls and be merged again.

    Raises
    ------
    ValueError
        If the estimators differ in parameters, feature width or names, or target kind.

    Examples
    --------
    >>> import numpy as np
    >>> from faast_sklearn import FAASTRegressor, merge_models
    >>> rng = np.random.default_rng(0)
    >>> X, y = rng.normal(size=(200, 5)), rng.normal(size=200)
    >>> parts = [FAASTRegressor(alpha=1.0).fit(X[i::2], y[i::2]) for i in range(2)]
    >>> merged = merge_models(parts)
    >>> whole = FAASTRegressor(alpha=1.0).fit(X, y)
    >>> bool(np.allclose(merged.coef_, whole.coef_, rtol=1e-10))
    True
    """
    estimators = list(estimators)
    if not estimators:
        raise ValueError("merge_models needs at least one fitted estimator.")
    for i, est in enumerate(estimators):
        if "stats_" not in getattr(est, "__dict__", {}):
            raise ValueError(
                f"estimator {i} ({type(est).__name__}) is not a fitted FAAST estimator: call "
                "fit or partial_fit on it before merging."
            )
    return combine(
        estimators, ["the first", *(f"estimator {i}" for i in range(1, len(estimators)))]
    )


def combine(estimators: list, names: list[str]):
    """:func:`merge_models` of fitted estimators, named by ``names`` in its errors."""
    first = estimators[0]
    for est, name in zip(estimators[1:], names[1:], strict=True):
        check_compatible(first, est, name, names[0])
    states = [est.__dict__ for est in estimators]
    classes = union_of_classes(states)
    stats = reduce(lambda a, b: a.merge(b), (reindexed(s, classes) for s in states))
    n_samples = sum(s["n_samples_seen_"] for s in states)
    return assemble(first, stats, n_samples, classes)
