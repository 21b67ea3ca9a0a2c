"""Machinery shared by the estimators: the fit path and the prediction.

A fit reads top to bottom (:meth:`_BaseFAAST._fit_batch`): features -> validated arrays ->
statistics (:func:`._fit.fit_statistics`) -> spectrum -> solve -> fitted attributes, assigned
last: a call that fails leaves the estimator as it was. ``partial_fit`` only accumulates
statistics; the solve runs at the first use of the model afterwards.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    check_consistent_length,
    check_is_fitted,
)

from ._dask import fit_dask
from ._fit import FitEntry, batch_statistics, fit_statistics, weighted_rows
from ._guards import check_rows, check_statistics, estimator_lock
from ._validation import validate_features, validate_weights
from ._version import PICKLE_KEY, __version__, pop_pickled_version
from .solvers import (
    Statistics,
    fit_flops,
    host_threads,
    no_rows_solution,
    resolve_backend,
    solve,
)
from .utils._dask import is_dask_collection
from .utils._params import ParamsMixin
from .utils._torch import import_torch, is_tensor, resolve_device, to_host

# Paper's default prior strength: N0 = 40 examples per class (N0 = 400 on CIFAR-10).
_PRIOR_PER_OUTPUT = 40.0


def _n_items(X) -> int | None:
    """The number of rows of ``X`` where it has a length (None for a string or no length)."""
    if isinstance(X, (str, bytes)):
        return None
    try:
        return len(X)
    except TypeError:
        return None


def _fitted_property(name: str, doc: str) -> property:
    """A fitted attribute read from the solution's field ``name`` (``alpha_``: ``alpha``)."""

    def getter(self):
        self._require_fitted(name)
        return getattr(self._ensure_solution()["solution"], name.removesuffix("_"))

    return property(getter, doc=doc)


class _BaseFAAST(ParamsMixin, BaseEstimator):
    """Common parameters and the fit / partial_fit / predict flow."""

    _parameter_constraints: dict = {
        "backbone": "no_validation",  # checked by features.as_extractor on use
        "alpha": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left"), "array-like"],
        "rtol": [None, StrOptions({"paper"}), Interval(Real, 0, 1, closed="left")],
        "fit_intercept": ["boolean"],
        "prior": [None, StrOptions({"identity"}), callable, HasMethods(["predict"])],
        "prior_strength": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "solver": [StrOptions({"auto", "torch", "scipy"})],
        "device": "no_validation",  # resolved (and checked) by utils._torch.resolve_device
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "verbose": ["verbose"],
    }

    def _fit_batch(self, X, y, sample_weight, *, partial: bool, classes) -> None:
        """Fit (or, with ``partial``, add to the statistics of) one batch, under the
        estimator's lock; on any error the estimator is restored whole."""
        previous = dict(self.__dict__)
        first = not partial or "stats_" not in previous
        try:
            self._validated_alpha()
            self._check_prior_fitted()
            if y is None:
                raise ValueError(
                    f"{type(self).__name__} requires y to be passed, but the target y is None."
                )
            empty = _n_items(X) == 0
            if empty:  # only a stream that can predict without rows may start so
                self._check_no_rows(partial=partial, first=first, classes=classes)
            X, x_key = self._features(X, empty=empty)
            if self.backbone is not None:  # image files skipped on request: rows and y out
                from .features._skip import drop_skipped

                X, y, sample_weight, x_key = drop_skipped(self.backbone, X, y, sample_weight, x_key)
            # NaN and infinity are checked where the statistics are computed: see check_rows
            X = validate_features(self, X, reset=first, finite=False, empty=empty)
            check_consistent_length(X, y)
            w = validate_weights(sample_weight, X)
            targets, n_targets, columns, state = self._encode_targets(
                y, w, first=first, partial=partial, classes=classes
            )
            w = self._target_weights(targets, w, state, partial=partial)
            backend = resolve_backend(self.solver, self.device, X)
            if partial:
                check_rows(X, targets, w)
                stats = self._accumulate(
                    backend, X, targets, w, n_targets, first=first, columns=columns, state=state
                )
                entry = FitEntry(stats)
                check_statistics(entry.stats, "statistics merged with this batch")
            else:
                entry = fit_statistics(backend, X, x_key, targets, n_targets, w)
            state.update(
                stats_=entry.stats,
                solver_=backend.name,
                device_=backend.device,
                n_samples_seen_=(0 if first else self.n_samples_seen_) + int(X.shape[0]),
                _solution=None,
            )
            self.__dict__.update(state)
            if not partial:  # the rows' targets and weights as the statistics hold them
                host = weighted_rows(w, targets)
                self._solution = self._solve(backend, entry, host_rows=host)
        except BaseException:
            # Restored in place (never an empty __dict__ that a predict could see).
            for key in [k for k in self.__dict__ if k not in previous]:
                del self.__dict__[key]
            self.__dict__.update(previous)
            raise

    def _check_no_rows(self, *, partial: bool, first: bool, classes) -> None:
        """Raise unless a batch of zero rows is accepted (see the classifier's zero-shot)."""
        raise ValueError(
            f"Found array with 0 sample(s) while a minimum of 1 is required by "
            f"{type(self).__name__}."
        )

    def _features(self, X, *, empty: bool = False):
        """``(features, key or None)``: the backbone's features of ``X`` (on a GPU, a tensor
        there), or ``X`` itself without a backbone. ``empty``: ``X`` has no rows (an accepted
        zero-row batch), whose features are a (0, n_features) array."""
        if self.backbone is None:
            return X, None
        from .features import as_extractor

        extractor = as_extractor(
            self.backbone, device=self.device, batch_size=self.batch_size, verbose=self.verbose
        )
        if empty:
            n_features = len(extractor.get_feature_names_out())
            return np.zeros((0, n_features), dtype=np.float32), None
        on_gpu = self.solver != "scipy" and resolve_device(extractor.device) != "cpu"
        X, key = extractor.extract(X, as_tensor=on_gpu, return_key=True)
        if is_tensor(X) and X.device.type == "cpu":
            X = X.numpy()
        return X, key

    def _validate_X(self, X, *, reset: bool):
        """Features of ``X``, validated (for prediction)."""
        return validate_features(self, self._features(X)[0], reset=reset)

    def _target_weights(self, targets, w: np.ndarray, state: dict, *, partial: bool):
        """The row weights the statistics use: ``sample_weight`` (the classifier multiplies
        in its class weights)."""
        return w

    def _accumulate(
        self, backend, X, targets, w, n_targets: int, *, first: bool, columns, state: dict
    ) -> Statistics:
        """The statistics kept so far (moved to this batch's back-end) and this batch's,
        merged exactly; ``columns`` re-indexes the targets kept so far (new classes).
        Subclasses may keep more of a stream in ``state`` (fitted attributes)."""
        batch = batch_statistics(backend, X, targets, w, n_targets)
        check_statistics(batch, "statistics of this batch")
        if first:
            return Statistics.empty(batch.n_features, batch.n_targets).merge(batch)
        stats = self.stats_.map(backend.to_device)
        if columns is not None:
            stats = stats.with_targets(batch.n_targets, columns)
        return stats.merge(batch)

    def _fit(self, X, y, sample_weight, *, partial: bool, classes=None):
        """``fit`` (or ``partial_fit``): Dask collections are fitted where their partitions
        live; anything else in this process, under the estimator's lock."""
        self._check_params()
        if is_dask_collection(X, y, sample_weight):
            return fit_dask(self, X, y, sample_weight, partial=partial, classes=classes)
        with estimator_lock(self):
            self._fit_batch(X, y, sample_weight, partial=partial, classes=classes)
        return self

    def _resolved_rtol(self, n: float):
        if self.rtol == "paper":
            return float(n) ** -0.8  # the paper's rule for images
        return self.rtol

    def _check_prior_fitted(self) -> None:
        """An estimator prior must be fitted; clone() (in cross_val_score, GridSearchCV)
        returns an unfitted copy unless it is wrapped in a FrozenEstimator."""
        if not callable(getattr(self.prior, "get_params", None)):
            return
        try:
            check_is_fitted(self.prior)
        except NotFittedError:
            raise ValueError(
                f"prior={type(self.prior).__name__}(...) is not fitted. If it was, note that "
                "clone() (used by cross_val_score, GridSearchCV and Pipeline) returns an "
                "unfitted copy of an estimator parameter: pass "
                "sklearn.frozen.FrozenEstimator(fitted_prior) so that it stays fitted."
            ) from None

    def _validated_alpha(self):
        alpha = self.alpha
        if isinstance(alpha, str):
            return alpha
        a = np.asarray(alpha, dtype=np.float64)
        if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a < 0) or a.ndim > 1:
            raise ValueError(
                f"alpha must be 'auto', a non-negative float or a 1-D array of non-negative "
                f"floats; got {alpha!r}."
            )
        return a if a.ndim else float(a)

    def _solve(self, backend, entry: FitEntry | None = None, host_rows=None) -> dict:
        """Solve from ``stats_``; returns the raw solution (coefficients in target space).

        ``entry`` (from the fit cache) memoises the spectrum, which depends on the data, the
        intercept and the class embedding, but not on ``alpha`` or ``rtol``. ``host_rows``:
        the targets and weights of ``stats_``'s rows as NumPy, where the fit has them (no
        wait for a GPU to count the rows, no copy from it for the criterion).
        """
        stats = self.stats_
        n_rows = stats.n_rows if host_rows is None else int(np.count_nonzero(host_rows[1] > 0))
        if n_rows == 0:  # a zero-row stream: the prior alone (r = 0)
            E = self._embedding()
            D = stats.n_targets if E is None else E.shape[1]
            sol = no_rows_solution(stats.n_features, D, self._validated_alpha())
            return {"solution": sol, "blend": self._blend_ratio(0)}
        entry = FitEntry(stats) if entry is None else entry
        with host_threads(fit_flops(stats.count, stats.n_features), backend.device):
            spec = entry.spectrum(
                backend, fit_intercept=self.fit_intercept, embedding=self._embedding()
            )
            criterion = self._criterion(stats, backend, host_rows)
            alpha, rtol = self._validated_alpha(), self._resolved_rtol(spec.n_rows)
            sol = solve(spec, backend, alpha=alpha, rtol=rtol, criterion=criterion)
            out = {"solution": sol, "blend": self._blend_ratio(spec.n_rows)}
            return out if criterion is None else {**out, **self._after_solve(sol, criterion)}

    def _criterion(self, stats: Statistics, backend, host_rows=None):
        """A ``criterion`` choosing ``alpha`` for :func:`~.solvers.solve`, or None (GCV);
        ``host_rows``: ``stats.rows``' targets and weights as NumPy, or None."""
        return None

    def _after_solve(self, solution, criterion) -> dict:
        """More solved state from ``criterion`` (kept with the solution, not pickled)."""
        return {}

    def _ensure_solution(self) -> dict:
        check_is_fitted(self)
        solution = self.__dict__.get("_solution")
        if solution is not None:
            return solution
        with estimator_lock(self):  # one solve, never of statistics being merged
            if self.__dict__.get("_solution") is None:
                # After partial_fit (or unpickling such a model elsewhere): resolve the
                # back-end anew, so that a model streamed on a GPU machine still solves on a
                # laptop.
                self._solution = self._solve(resolve_backend(self.solver, self.device))
            return self._solution

    def _embedding(self):
        return None

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _blend_ratio(self, n: float) -> float:
        """r = N / (N0 + N): weight of the fast weights against the prior.

        ``N`` counts the rows with a positive weight (as N0 counts examples), never the total
        sample weight: scaling every weight leaves the blend as it is. With no rows, r = 0:
        the prior alone, whatever N0.
        """
        if self.prior is None:
            return 1.0
        n0 = (
            _PRIOR_PER_OUTPUT * self._n_outputs()
            if isinstance(self.prior_strength, str)
            else float(self.prior_strength)
        )
        return float(n / (n0 + n)) if n > 0 else 0.0

    def _prior_share(self, X) -> np.ndarray | None:
        """``(1 - r) prior(X)`` in the output space, for a callable or estimator prior."""
        if self.prior is None or isinstance(self.prior, str):
            return None
        Xh = to_host(X)
        raw = np.asarray(self._call_prior(Xh), dtype=np.float64)
        if raw.ndim == 1:
            raw = raw[:, None]
        if raw.shape[0] != Xh.shape[0]:
            raise ValueError(f"The prior returned {raw.shape[0]} rows for {Xh.shape[0]} samples.")
        if not np.isfinite(raw).all():
            row = int(np.flatnonzero(~np.isfinite(raw).all(axis=1))[0])
            raise ValueError(f"The prior returned NaN or infinity (first in row {row}).")
        return (1.0 - self._ensure_solution()["blend"]) * self._prior_to_outputs(raw)

    def _linear_targets(self):
        """(coef (d, D), intercept (D,)) of the blended linear part of the prediction."""
        sol = self._ensure_solution()
        s, r = sol["solution"], sol["blend"]
        coef, intercept = r * s.coef, r * s.intercept
        if self.prior == "identity":
            d, D = coef.shape
            if d != D:
                raise ValueError(
                    f"prior='identity' needs features and targets in one space, but there "
                    f"are {d} features and {D} target dimensions."
                )
            coef = coef + (1.0 - r) * np.eye(d)
        return coef, intercept

    def _predict_linear(self, X, coef, intercept) -> np.ndarray:
        """``X @ coef + intercept`` plus the user prior's share, on X's device, as NumPy."""
        if is_tensor(X):
            torch = import_torch()
            out = X @ torch.as_tensor(coef, dtype=X.dtype, device=X.device)
            out = out + torch.as_tensor(intercept, dtype=X.dtype, device=X.device)
            out = out.cpu().numpy().astype(np.float64)
        else:
            # Products in the input's precision: float32 features need no float64 copy.
            with host_threads(float(np.prod(X.shape)) * coef.shape[1]):
                out = (X @ coef.astype(X.dtype, copy=False)).astype(np.float64) + intercept
        share = self._prior_share(X)
        return out if share is None else out + share

    def _require_fitted(self, name: str) -> None:
        # Fitted attributes are properties (solved lazily after partial_fit); before fit they
        # must not exist at all, as scikit-learn's hasattr-based checks expect.
        if "stats_" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r} before fit.")

    def __sklearn_is_fitted__(self) -> bool:
        return "stats_" in self.__dict__

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    alpha_ = _fitted_property("alpha_", "Regularisation strength used (chosen by GCV if searched).")
    alphas_ = _fitted_property("alphas_", "Strengths searched (absolute values).")
    gcv_scores_ = _fitted_property(
        "gcv_scores_", "Generalised cross-validation score of each value in ``alphas_``."
    )
    rank_ = _fitted_property("rank_", "Number of spectral components used by the solution.")

    def __getstate__(self) -> dict:
        # The version travels with every pickle, so that one from another version warns; the
        # lock stays behind (a copy gets its own, at first use).
        state = dict(super().__getstate__(), **{PICKLE_KEY: __version__})
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(pop_pickled_version(state, type(self).__name__))
