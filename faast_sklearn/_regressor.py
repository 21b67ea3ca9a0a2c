"""FAASTRegressor: closed-form fast weights for (multi-output) regression."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils.validation import check_array

from ._base import _BaseFAAST
from .utils._dask import partitionwise
from .utils._torch import to_host


class FAASTRegressor(RegressorMixin, _BaseFAAST):
    """Multi-output regressor whose weights are solved in closed form from features.

    Regularised least squares (ridge and/or truncated spectrum) from sufficient statistics,
    with the strength chosen by generalised cross-validation by default. ``partial_fit`` over
    any split of the rows gives the same model as ``fit`` on all of them.

    Parameters
    ----------
    backbone : None, str, BackboneSpec, FeatureExtractor or callable, default=None
        Frozen feature extractor applied to ``X`` (images or texts): a registered name such
        as ``"efficientnet_lite0"`` (see :ref:`backbones`), ``"timm:<model>"``,
        ``"hf:<text model>"``, a :class:`~faast_sklearn.features.FeatureExtractor` or a
        callable. ``None``: ``X`` is a 2-D feature matrix (NumPy, pandas or a torch tensor).
    alpha : "auto", float or array-like of floats, default="auto"
        Ridge strength; ``"auto"`` or an array: chosen by GCV (one strength for all targets).
    rtol : None, "paper" or float in [0, 1), default=None
        Drop directions whose singular value is below ``rtol`` times the largest
        (``"paper"``: ``rtol = N ** -0.8``).
    fit_intercept : bool, default=True
    prior : None, "identity", callable or fitted regressor, default=None
        Blended as ``(1 - r) prior(X) + r (X W + b)``, ``r = N / (N0 + N)``; ``"identity"``
        needs as many features as targets. A fitted regressor stays fitted through ``clone``
        wrapped in :class:`sklearn.frozen.FrozenEstimator`.
    prior_strength : "auto" or float >= 0, default="auto"
        ``N0``; ``"auto"``: 40 per target.
    solver : {"auto", "torch", "scipy"}, default="auto"
    device : str, default="auto"
    batch_size : int, default=256
    verbose : int, default=0

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_targets, n_features)
    intercept_ : float or ndarray of shape (n_targets,)
    alpha_, alphas_, gcv_scores_, rank_, error_variance_ :
        As in :class:`FAASTClassifier`.
    n_features_in_, feature_names_in_, n_samples_seen_, stats_, solver_, device_ :
        As in :class:`FAASTClassifier`.

    Examples
    --------
    >>> from sklearn.datasets import load_diabetes
    >>> from faast_sklearn import FAASTRegressor
    >>> X, y = load_diabetes(return_X_y=True)
    >>> reg = FAASTRegressor().fit(X[:300], y[:300])
    >>> round(reg.score(X[300:], y[300:]), 2)
    0.51
    """

    def __init__(
        self,
        backbone=None,
        *,
        alpha="auto",
        rtol=None,
        fit_intercept=True,
        prior=None,
        prior_strength="auto",
        solver="auto",
        device="auto",
        batch_size=256,
        verbose=0,
    ):
        self.backbone = backbone
        self.alpha = alpha
        self.rtol = rtol
        self.fit_intercept = fit_intercept
        self.prior = prior
        self.prior_strength = prior_strength
        self.solver = solver
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Fit on features ``X`` and targets ``y`` of shape (n_samples,) or (n_samples, n_targets).

        Dask arrays and dataframes are fitted where their partitions live (see :ref:`scaling`).

        Returns
        -------
        self : FAASTRegressor
        """
        return self._fit(X, y, sample_weight, partial=False)

    def partial_fit(self, X, y, sample_weight=None):
        """Add a batch of rows to the statistics (the solve is deferred to first use).

        Returns
        -------
        self : FAASTRegressor
        """
        return self._fit(X, y, sample_weight, partial=True)

    @partitionwise
    def predict(self, X):
        """Predicted targets, shape (n_samples,) or (n_samples, n_targets); a lazy Dask
        collection for a Dask ``X``."""
        self._ensure_solution()
        X = self._validate_X(X, reset=False)
        coef, intercept = self._linear_targets()
        out = self._predict_linear(X, coef, intercept)
        return out.ravel() if self._y_1d else out

    @property
    def coef_(self):
        """Coefficients, shape (n_features,) or (n_targets, n_features)."""
        self._require_fitted("coef_")
        coef = self._linear_targets()[0].T
        return coef.ravel() if self._y_1d else coef

    @property
    def intercept_(self):
        """Intercept, float or shape (n_targets,)."""
        self._require_fitted("intercept_")
        intercept = self._linear_targets()[1]
        return float(intercept[0]) if self._y_1d else intercept

    @property
    def error_variance_(self):
        """GCV estimate of the squared prediction error of each target at ``alpha_``."""
        self._require_fitted("error_variance_")
        var = self._ensure_solution()["solution"].error_variance
        return float(var[0]) if self._y_1d else var

    def _n_outputs(self) -> int:
        return self.stats_.n_targets

    def _encode_targets(self, y, w, *, first, partial, classes):
        y = check_array(to_host(y), ensure_2d=False, dtype=np.float64, input_name="y")
        y_1d = y.ndim == 1
        Y = y[:, None] if y_1d else y
        if not first and (Y.shape[1] != self.stats_.n_targets or y_1d != self._y_1d):
            raise ValueError(
                f"y has {Y.shape[1]} target(s) "
                f"({'1-D' if y_1d else '2-D'}); the estimator was fitted on "
                f"{self.stats_.n_targets} ({'1-D' if self._y_1d else '2-D'})."
            )
        return Y, Y.shape[1], None, {"_y_1d": y_1d}

    def _call_prior(self, X):
        return self.prior(X) if callable(self.prior) else self.prior.predict(X)

    def _prior_to_outputs(self, prior):
        if prior.shape[1] != self.stats_.n_targets:
            raise ValueError(
                f"The prior returned {prior.shape[1]} columns for {self.stats_.n_targets} targets."
            )
        return prior

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
