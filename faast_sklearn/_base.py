"""Machinery shared by the estimators: validate -> (extract) -> accumulate -> solve -> predict.

Every public method validates first and assigns fitted state last, so a call that fails leaves
the estimator exactly as it was. ``fit`` solves at once; ``partial_fit`` only accumulates
statistics (O(batch d^2)) and the solve runs at the first use of the model afterwards.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from .solvers import (
    Statistics,
    fit_flops,
    host_threads,
    resolve_backend,
    solve,
    spectrum,
)
from .solvers._cache import FIT_CACHE
from .utils._params import ParamsMixin
from .utils._torch import import_torch, is_tensor, resolve_device

# Paper's default prior strength: N0 = 40 examples per class (N0 = 400 on CIFAR-10).
_PRIOR_PER_OUTPUT = 40.0

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# Host fits smaller than this (in fit_flops) skip the fit cache: their spectrum costs about
# what the cache's fingerprint, lookup and copy do (at d = 768, 10 rows: a 0.16 ms fit, of
# which the cache takes 0.02 ms warm and 0.08 ms with cold CPU caches; a hit saves 0.03 ms).
_CACHE_MIN_FLOPS = 2**18

# Largest NumPy X moved to a torch back-end's device whole (see _placed): the fit cache keeps
# copies up to this size. Larger ones stream to the device block by block (Backend.moments),
# so that device memory stays bounded by a block whatever the number of rows.
_PLACE_MAX_BYTES = FIT_CACHE.max_bytes // 4


def _placed(X, backend):
    """``X`` where the solver reads it, checked for NaN and infinity there.

    A NumPy ``X`` with more rows than features (and at most ``_PLACE_MAX_BYTES``) goes to a
    torch back-end's device once, in its own dtype: the statistics pass, the fit cache's
    private copy and the check then all run on the device (on an H200 host, checking and
    copying 2560 x 1280 float32 features on the CPU took 6 ms). Fewer rows are kept on the
    host as they are (the statistics copy them there), and the kernel-side solve moves them
    once. A tensor was checked by :meth:`_BaseFAAST._validate_unnamed`.
    """
    if is_tensor(X):
        return X
    if backend.name == "torch" and X.shape[0] > X.shape[1] and X.nbytes <= _PLACE_MAX_BYTES:
        X = backend.to_device(X)
    _check_finite(X)
    return X


def _check_finite(X) -> None:
    """The NaN and infinity check of a NumPy array or a tensor, where it lives.

    A tensor takes one reduction and one sync. An array's float64 sum is finite exactly when
    every entry is (no temporary), unless finite entries overflow it: only then are the
    entries tested one by one.
    """
    if is_tensor(X):
        finite = bool(import_torch().isfinite(X).all())
    else:
        total = np.add.reduce(X, axis=None, dtype=np.float64)
        finite = bool(np.isfinite(total) or np.isfinite(X).all())
    if not finite:
        raise ValueError("Input X contains NaN or infinity.")


def _fitted_property(name: str, doc: str) -> property:
    def getter(self):
        self._require_fitted(name)
        return self._public_solution()[name]

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

    # ------------------------------------------------------------------ input validation
    def _validate_X(self, X, *, reset: bool, finite: bool = True):
        """2-D float features as a NumPy array or a torch tensor (kept on its device).

        With a backbone, ``X`` is raw input (images, texts...) and its features are extracted
        first (cached across clones, folds and grid points by the extractor); on a GPU they
        stay there as a tensor for the torch solver. ``finite=False`` leaves the NaN and
        infinity check of a NumPy ``X`` to the caller (:func:`_placed`, for fit).
        """
        if self.backbone is not None:
            from .features import as_extractor

            extractor = as_extractor(
                self.backbone,
                device=self.device,
                batch_size=self.batch_size,
                verbose=self.verbose,
            )
            on_gpu = self.solver != "scipy" and resolve_device(extractor.device) != "cpu"
            X = extractor.extract(X, as_tensor=on_gpu)
            if is_tensor(X) and X.device.type == "cpu":
                X = X.numpy()
        ndim = getattr(X, "ndim", None)
        if ndim is not None and ndim >= 3:
            raise ValueError(
                f"X has {ndim} dimensions (shape {tuple(X.shape)}): without a backbone, "
                f"{type(self).__name__} expects a 2-D feature matrix (n_samples, n_features). "
                "Pass backbone=... (for example backbone='efficientnet_lite0') to fit on images."
            )
        if is_tensor(X) or (
            type(X) is np.ndarray and X.ndim == 2 and X.size and X.dtype in _FLOAT_DTYPES
        ):
            return self._validate_unnamed(X, reset=reset, finite=finite)
        return validate_data(
            self,
            X,
            reset=reset,
            dtype=[np.float64, np.float32],
            ensure_min_samples=1,
            ensure_all_finite=finite,
        )

    def _validate_unnamed(self, X, *, reset: bool, finite: bool):
        """``validate_data`` for a container without feature names: a torch tensor, or a
        non-empty 2-D float NumPy array (which ``check_array`` would return as it is).

        Such X carries no column names, so the feature-name bookkeeping reduces to forgetting
        them on reset (and scikit-learn's warning otherwise); skipping the dataframe probes of
        ``validate_data`` is a quarter of a one-shot fit, most of it after the caches went cold.
        """
        name = type(self).__name__
        if is_tensor(X):
            torch = import_torch()
            if X.ndim != 2:
                raise ValueError(
                    f"Expected a 2-D tensor (n_samples, n_features), got shape {tuple(X.shape)}."
                )
            if X.shape[0] == 0:
                raise ValueError(
                    f"Found array with 0 sample(s) (shape={tuple(X.shape)}) while a "
                    f"minimum of 1 is required by {name}."
                )
            if X.shape[1] == 0:
                raise ValueError(
                    f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a "
                    f"minimum of 1 is required by {name}."
                )
            if X.is_complex():
                raise ValueError("Complex data not supported.")
            if X.dtype not in (torch.float32, torch.float64):
                X = X.float()
            finite = True  # a tensor is checked here, where it lives
        if finite:
            _check_finite(X)
        if reset:
            self.n_features_in_ = int(X.shape[1])
            self.__dict__.pop("feature_names_in_", None)
            return X
        if X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {name} is expecting "
                f"{self.n_features_in_} features as input."
            )
        if "feature_names_in_" in self.__dict__:
            warnings.warn(
                f"X does not have valid feature names, but {name} was fitted with feature names",
                UserWarning,
                stacklevel=3,
            )
        return X

    def _validate_weights(self, sample_weight, X) -> np.ndarray:
        if sample_weight is None:  # what _check_sample_weight returns, at a tenth of its cost
            return np.ones(X.shape[0])
        if is_tensor(sample_weight):
            sample_weight = sample_weight.detach().cpu().numpy()
        w = _check_sample_weight(
            sample_weight, np.empty((X.shape[0], 0)), dtype=np.float64, ensure_non_negative=True
        )
        if w.sum() == 0:
            raise ValueError(
                "sample_weight is zero for every sample: at least one sample needs a positive "
                "weight."
            )
        return w

    # ------------------------------------------------------------------ fit flow
    def _accumulate(self, X, y, sample_weight, *, partial: bool, classes=None):
        """Validate one batch and return the new fitted state as a dict (nothing assigned).

        Subclasses encode ``y`` in :meth:`_encode_targets`, which returns the batch targets
        (dense float array or class codes), their column count, the re-indexing of the
        targets kept so far (or None) and subclass state to assign.
        """
        first = not partial or "stats_" not in self.__dict__
        self._validated_alpha()
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        saved = {
            k: self.__dict__[k]
            for k in ("n_features_in_", "feature_names_in_")
            if k in self.__dict__
        }
        try:
            X = self._validate_X(X, reset=first, finite=False)
            if getattr(y, "ndim", 0) == 0 or y.shape[0] != X.shape[0]:
                check_consistent_length(X, y)  # lists, and scikit-learn's error otherwise
            w = self._validate_weights(sample_weight, X)
            targets, n_targets, columns, state = self._encode_targets(
                y, w, first=first, partial=partial, classes=classes
            )
            w = self._target_weights(targets, w, state, partial=partial)
            backend = resolve_backend(self.solver, self.device, X)
            entry = None
            cached = not partial and (
                backend.device != "cpu" or fit_flops(X.shape[0], X.shape[1]) >= _CACHE_MIN_FLOPS
            )
            if cached:
                # A clone fitted on these very rows before (GridSearchCV over alpha or rtol):
                # reuse its statistics, and below its eigendecomposition. X is looked up where
                # the caller has it: a NumPy X is compared on the host with the cache's host
                # copy, and a hit never travels to the device (nor is checked again: the copy
                # was checked when it was stored).
                key = np.append(targets, n_targets)
                tag = f"{backend.name}:{backend.device}"
                fingerprint = FIT_CACHE.fingerprint(tag, X, key, w)
                entry = FIT_CACHE.lookup(tag, X, key, w, fingerprint)
            if entry is not None:
                stats = entry.stats
            else:
                given, X = X, _placed(X, backend)
                batch = self._batch_statistics(backend, X, targets, w, n_targets)
                if not partial:
                    stats = batch
                elif first:
                    stats = Statistics.empty(X.shape[1], n_targets).merge(batch)
                else:
                    stats = self.stats_
                    if columns is not None:
                        stats = stats.with_targets(n_targets, columns)
                    stats = stats.merge(batch)
                if cached:
                    # Kept rows are a private copy of a NumPy X already: the cache shares it.
                    own = None if is_tensor(given) or stats.rows is None else stats.rows[0]
                    entry = FIT_CACHE.put(tag, given, key, w, stats, fingerprint, private=own)
                if partial:
                    state.update(self._stream_state(backend, X, targets, w, n_targets, columns))
        except BaseException:
            # validate_data assigns n_features_in_ on reset: restore the previous state.
            for k in ("n_features_in_", "feature_names_in_"):
                self.__dict__.pop(k, None)
            self.__dict__.update(saved)
            raise
        state.update(
            stats_=stats,
            solver_=backend.name,
            device_=backend.device,
            n_samples_seen_=(0 if first else self.n_samples_seen_) + int(X.shape[0]),
        )
        return state, backend, entry

    def _target_weights(self, targets, w, state, *, partial: bool) -> np.ndarray:
        """The row weights the statistics use (subclasses: ``sample_weight`` times class
        weights)."""
        return w

    def _stream_state(self, backend, X, targets, w, n_targets, columns) -> dict:
        """Extra fitted state a ``partial_fit`` batch adds (subclasses)."""
        return {}

    def _solve_statistics(self) -> Statistics:
        """The statistics the model is solved from (subclasses may combine others)."""
        return self.stats_

    @staticmethod
    def _batch_statistics(backend, X, targets, w, n_targets) -> Statistics:
        d = X.shape[1]
        if X.shape[0] <= d:
            # Few rows: keep them for the kernel-side solve, as a private host copy in their
            # own precision (exact; the solve computes in float64). A back-end that holds
            # them on its device already solves from that copy.
            if is_tensor(X):
                Xh = X.detach().to("cpu", copy=True).numpy()
                backend.remember(Xh, X)
            else:
                Xh = np.array(X, copy=True)
            if targets.ndim == 1:
                Y = np.zeros((len(targets), n_targets))
                Y[np.arange(len(targets)), targets] = 1.0
            else:
                Y = np.asarray(targets, dtype=np.float64)
            return Statistics(d, n_targets, d, rows=(Xh, Y, w))
        return Statistics(d, n_targets, d, moments=backend.moments(X, targets, w, n_targets))

    def _set_state(self, state: dict, backend, entry=None, *, solve_now: bool) -> None:
        # The solve reads the new state; should it fail, the estimator is restored whole.
        previous = dict(self.__dict__)
        self.__dict__.update(state)
        self._solution = None
        if solve_now:
            try:
                self._solution = self._solve(backend, entry)
            except BaseException:
                self.__dict__.clear()
                self.__dict__.update(previous)
                raise

    def fit(self, X, y, sample_weight=None):
        self._check_params()
        state, backend, entry = self._accumulate(X, y, sample_weight, partial=False)
        self._set_state(state, backend, entry, solve_now=True)
        return self

    def _partial_fit(self, X, y, sample_weight, classes=None):
        self._check_params()
        state, backend, _ = self._accumulate(X, y, sample_weight, partial=True, classes=classes)
        self._set_state(state, backend, solve_now=False)
        return self

    # ------------------------------------------------------------------ solve
    def _resolved_rtol(self, n: float):
        if self.rtol == "paper":
            return float(n) ** -0.8  # the paper's rule for images
        return self.rtol

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

    def _solve(self, backend, entry=None) -> dict:
        """Solve from ``stats_``; returns the raw solution (coefficients in target space).

        ``entry`` (from the fit cache) memoises the spectrum, which depends on the data, the
        intercept and the class embedding, but not on ``alpha`` or ``rtol``.
        """
        stats = self._solve_statistics()
        embedding = self._embedding()
        memo_key = (self.fit_intercept, None if embedding is None else embedding.tobytes())
        spec = entry.spectra.get(memo_key) if entry is not None else None
        with host_threads(fit_flops(stats.count, stats.n_features), backend.device):
            if spec is None:
                spec = spectrum(
                    stats, backend, fit_intercept=self.fit_intercept, embedding=embedding
                )
                if entry is not None:
                    entry.spectra[memo_key] = spec
            criterion = self._criterion(stats, backend)
            sol = solve(
                spec,
                backend,
                alpha=self._validated_alpha(),
                rtol=self._resolved_rtol(stats.weight),
                criterion=criterion,
            )
        return {
            "solution": sol,
            "blend": self._blend_ratio(stats.weight),
            **self._after_solve(sol, criterion),
        }

    def _criterion(self, stats, backend):
        """A ``criterion`` for :func:`solve` (subclasses), or None: GCV."""
        return None

    def _after_solve(self, solution, criterion) -> dict:
        """Extra solved state from the criterion (subclasses)."""
        return {}

    def _ensure_solution(self) -> dict:
        check_is_fitted(self)
        if self.__dict__.get("_solution") is None:
            # After partial_fit (or unpickling such a model elsewhere): resolve the back-end
            # anew, so that a model streamed on a GPU machine still solves on a laptop.
            self._solution = self._solve(resolve_backend(self.solver, self.device))
        return self._solution

    def _embedding(self):
        return None

    # ------------------------------------------------------------------ prior
    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _blend_ratio(self, n: float) -> float:
        """r = N / (N0 + N): weight of the fast weights against the prior."""
        if self.prior is None:
            return 1.0
        n0 = (
            _PRIOR_PER_OUTPUT * self._n_outputs()
            if isinstance(self.prior_strength, str)
            else float(self.prior_strength)
        )
        return float(n / (n0 + n)) if n0 + n > 0 else 1.0

    def _prior_share(self, X) -> np.ndarray | None:
        """``(1 - r) prior(X)`` in the output space, for a callable or estimator prior."""
        if self.prior is None or isinstance(self.prior, str):
            return None
        Xh = X.detach().cpu().numpy() if is_tensor(X) else X
        raw = np.asarray(self._call_prior(Xh), dtype=np.float64)
        if raw.ndim == 1:
            raw = raw[:, None]
        if raw.shape[0] != Xh.shape[0]:
            raise ValueError(f"The prior returned {raw.shape[0]} rows for {Xh.shape[0]} samples.")
        return (1.0 - self._ensure_solution()["blend"]) * self._prior_to_outputs(raw)

    # ------------------------------------------------------------------ prediction
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

    # ------------------------------------------------------------------ fitted attributes
    alpha_ = _fitted_property("alpha_", "Regularisation strength used (chosen by GCV if searched).")
    alphas_ = _fitted_property("alphas_", "Strengths searched (absolute values).")
    gcv_scores_ = _fitted_property(
        "gcv_scores_", "Generalised cross-validation score of each value in ``alphas_``."
    )
    rank_ = _fitted_property("rank_", "Number of spectral components used by the solution.")

    def _public_solution(self) -> dict:
        s = self._ensure_solution()["solution"]
        return {
            "alpha_": s.alpha,
            "alphas_": s.alphas,
            "gcv_scores_": s.gcv_scores,
            "rank_": s.rank,
        }
