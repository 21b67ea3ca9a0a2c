"""FAASTClassifier: closed-form fast weights for classification."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils._param_validation import StrOptions

from . import _class_weight, _proba
from . import targets as _targets
from ._base import _BaseFAAST
from ._class_targets import check_no_rows, encode_targets
from .backbones import text_class_embeddings
from .solvers import Statistics, _criteria
from .utils._dask import partitionwise
from .utils._torch import resolve_device

# Floor on the error variance, relative to that of a balanced one-hot target (1 / n_targets):
# a model that interpolates its training data (GCV fooled by duplicated rows, say) would
# otherwise give log-odds in the millions, and probabilities that are pure round-off.
_MIN_NOISE = 1e-3


class FAASTClassifier(ClassifierMixin, _BaseFAAST):
    """Classifier whose weights are solved in closed form from labelled features.

    Fits a regularised least-squares map from features to one-hot class indicators (or to
    user-given class embeddings) from sufficient statistics, in one pass over the data, and
    predicts the class whose target is most similar to the prediction. ``partial_fit`` over
    any split of the rows gives the same model as ``fit`` on all of them.

    Parameters
    ----------
    backbone : None, str, BackboneSpec, FeatureExtractor or callable, default=None
        Frozen feature extractor applied to ``X`` (images or texts): a registered name such
        as ``"efficientnet_lite0"`` (see :ref:`backbones`), ``"timm:<model>"``,
        ``"hf:<text model>"``, a :class:`~faast_sklearn.features.FeatureExtractor` or a
        callable. ``None``: ``X`` is a 2-D feature matrix (NumPy, pandas or a torch tensor).
    alpha : "auto", float or array-like of floats, default="auto"
        Ridge strength: ``"auto"`` (56 strengths over 11 decades around the feature scale)
        or an array is searched by ``alpha_criterion``; a float is used as is.
    rtol : None, "paper" or float in [0, 1), default=None
        Drop directions whose singular value is below ``rtol`` times the largest
        (``"paper"``: ``rtol = N ** -0.8``); combines with ``alpha``.
    fit_intercept : bool, default=True
    class_embeddings : None, "text", array-like of shape (n_classes, n_dims) or mapping, \
            default=None
        Targets for each class (L2-normalised, compared by cosine similarity), rows in the
        sorted labels' order, or a mapping ``label -> vector`` (which may name unseen
        classes). ``"text"`` or a mapping ``label -> name``: the names through the text tower
        of a CLIP ``backbone`` (see :ref:`class_embeddings`). ``None``: one-hot targets.
    alpha_criterion : {"loo", "gcv", "loo_error", "loo_log_loss"}, default="loo"
        How ``alpha="auto"`` (or an array) is chosen: while the rows are kept (at most
        ``n_features``), by the exact leave-one-out squared error (as
        :class:`~sklearn.linear_model.RidgeClassifierCV`), classification error or log-loss;
        otherwise, or with ``"gcv"``, by GCV (see :ref:`regularisation`).
    class_weight : None, "balanced" or dict, default=None
        Multiplies ``sample_weight`` as in :class:`~sklearn.linear_model.RidgeClassifier`;
        ``"balanced"`` is exact in ``partial_fit`` (per-class statistics: ``n_classes`` times
        the memory); ``partial_fit`` continues a ``fit`` on at most as many rows as
        features (one on more merges the classes' statistics). Not for multilabel targets.
    prior : None, "identity", callable or fitted estimator, default=None
        Blended as ``(1 - r) prior(X) + r (X W + b)``, ``r = N / (N0 + N)``: ``"identity"``
        (the features are the prediction, as CLIP's: zero-shot), a callable returning class
        scores (n_samples, n_classes), or a fitted classifier's ``predict_proba`` (wrapped in
        :class:`sklearn.frozen.FrozenEstimator` to stay fitted through ``clone``).
    prior_strength : "auto" or float >= 0, default="auto"
        ``N0``, in rows; ``"auto"``: 40 per class, the paper's setting.
    solver : {"auto", "torch", "scipy"}, default="auto"
        ``"auto"``: torch for torch tensors or on a CUDA device, else scipy (the reference).
    device : str, default="auto"
        Device of the torch solver (``"auto"``: the tensor's, else CUDA if present).
    batch_size : int, default=256
        Inputs per forward pass of the backbone.
    verbose : int, default=0
        Show a progress bar during feature extraction.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels (for multilabel targets, ``arange(n_labels)``).
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        Weights of the decision function, ``decision_function(X) = X @ coef_.T + intercept_``
        (with a callable or estimator ``prior``, its share is added on top).
    intercept_ : ndarray of shape (1,) or (n_classes,)
    alpha_ : float
        Ridge strength used.
    alphas_ : ndarray
        Strengths searched, as absolute values.
    gcv_scores_ : ndarray
        GCV score (mean squared error estimate; lower is better) of each of ``alphas_``.
    error_variance_ : float or ndarray of shape (n_labels,)
        GCV estimate of the squared prediction error per target on new rows, at ``alpha_``.
    proba_scale_ : float
        Factor from the linear predictions to the log-odds: ``1 / error_variance_``, or the
        inverse temperature fitted on the leave-one-out predictions (see :ref:`method`).
    rank_ : int
        Spectral components used.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Defined when ``X`` has feature names that are all strings.
    n_samples_seen_ : int
    stats_ : Statistics
        The sufficient statistics the model is solved from (the rows while at most
        ``n_features``, then float64 moments), in the solver's arrays (NumPy in a pickle);
        ``stats_.merge(other)`` combines two models' statistics exactly.
    solver_, device_ : str
        Solver and device used.

    Notes
    -----
    In the terms of the FAAST paper (arXiv 2605.04651), the features are keys, the targets
    values and ``coef_`` the fast weights. ``predict_proba`` is the softmax of
    ``e_c . y_hat / sigma^2`` for unit-norm class targets ``e_c`` (see :ref:`method`).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from faast_sklearn import FAASTClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = FAASTClassifier().fit(X[:1000], y[:1000])
    >>> round(clf.score(X[1000:], y[1000:]), 2)
    0.9
    """

    _parameter_constraints: dict = {
        **_BaseFAAST._parameter_constraints,
        "class_embeddings": [None, StrOptions({"text"}), "array-like", Mapping],
        "class_weight": [None, StrOptions({"balanced"}), dict],
        "alpha_criterion": [StrOptions(set(_criteria.CRITERIA))],
        "prior_strength": [
            StrOptions({"auto"}),
            *_BaseFAAST._parameter_constraints["prior_strength"][1:],
        ],
    }

    def __init__(
        self,
        backbone=None,
        *,
        alpha="auto",
        alpha_criterion="loo",
        rtol=None,
        fit_intercept=True,
        class_embeddings=None,
        class_weight=None,
        prior=None,
        prior_strength="auto",
        solver="auto",
        device="auto",
        batch_size=256,
        verbose=0,
    ):
        self.backbone = backbone
        self.alpha = alpha
        self.alpha_criterion = alpha_criterion
        self.rtol = rtol
        self.fit_intercept = fit_intercept
        self.class_embeddings = class_embeddings
        self.class_weight = class_weight
        self.prior = prior
        self.prior_strength = prior_strength
        self.solver = solver
        self.device = device
        self.batch_size = batch_size
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Fit the fast weights on features ``X`` and labels ``y``.

        Dask arrays and dataframes (``X``, ``y`` and ``sample_weight`` alike) are fitted where
        their partitions live, with one solve on the client (see :ref:`scaling`).

        Parameters
        ----------
        X : array-like, torch.Tensor or Dask collection of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a binary indicator matrix for multilabel targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; not all zero.

        Returns
        -------
        self : FAASTClassifier
        """
        return self._fit(X, y, sample_weight, partial=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Add a batch of labelled rows to the statistics.

        Classes may arrive at any time (a new class has zero statistics for earlier rows);
        ``classes`` declares labels up front. With a ``prior``, a first batch of zero rows
        and declared ``classes`` gives a model that predicts from the prior alone (zero-shot;
        ``alpha_`` is NaN unless ``alpha`` is a float; see :ref:`zero_shot_and_decoders`).

        Parameters
        ----------
        X : array-like, torch.Tensor or Dask collection of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
        classes : array-like of shape (n_classes,), default=None
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : FAASTClassifier
        """
        return self._fit(X, y, sample_weight, partial=True, classes=classes)

    @partitionwise
    def decision_function(self, X):
        """Log-odds of each class (binary: of ``classes_[1]``).

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        X = self._check_X(X)
        coef, intercept = self._decision_coef()
        scores = self._predict_linear(X, coef.T, intercept)
        return scores.ravel() if scores.shape[1] == 1 else scores

    @partitionwise
    def predict(self, X):
        """Predicted class labels (multilabel: an indicator matrix).

        On a Dask array or dataframe, this and the other prediction methods return a lazy
        Dask collection, mapped over ``X``'s partitions.
        """
        scores = self.decision_function(X)
        if self._multilabel:
            return (scores > 0).astype(self._label_dtype)
        if len(self.classes_) == 1:  # a stream that has seen one class so far
            return np.repeat(self.classes_, len(scores))
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(np.intp)]
        return self.classes_[np.argmax(scores, axis=1)]

    @partitionwise
    def predict_proba(self, X):
        """Class probabilities: softmax of :meth:`decision_function` (sigmoid when binary).

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            For multilabel targets, the probability of each label.
        """
        return _proba.probabilities(self.decision_function(X), self._multilabel, len(self.classes_))

    @partitionwise
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`, computed without underflow."""
        scores = self.decision_function(X)
        return _proba.log_probabilities(scores, self._multilabel, len(self.classes_))

    @property
    def coef_(self):
        """Weights of the decision function, shape (n_classes or 1, n_features)."""
        self._require_fitted("coef_")
        return self._decision_coef()[0]

    @property
    def intercept_(self):
        """Intercept of the decision function, shape (n_classes or 1,)."""
        self._require_fitted("intercept_")
        return self._decision_coef()[1]

    @property
    def proba_scale_(self):
        """Factor from the linear predictions to the log-odds (see Attributes)."""
        self._require_fitted("proba_scale_")
        return 1.0 / self._noise()

    @property
    def error_variance_(self):
        """GCV estimate of the squared prediction error per target at ``alpha_``."""
        self._require_fitted("error_variance_")
        return self._error_variance()

    def _check_X(self, X):
        self._ensure_solution()
        return self._validate_X(X, reset=False)

    def _n_outputs(self) -> int:
        return len(self.classes_)

    _encode_targets = encode_targets
    _check_no_rows = check_no_rows

    def _text_class_embeddings(self, old, y, classes):
        """``class_embeddings="text"`` or ``{label: name}``: the names through the CLIP text
        tower paired with ``backbone`` (cached); vectors and None as given."""
        if self.class_embeddings is None:
            return None
        labels = [a for a in (old, y, classes) if a is not None]
        labels = np.unique(np.concatenate([np.asarray(a).ravel() for a in labels]))
        names = isinstance(self.class_embeddings, (str, Mapping))  # only names need a tower
        device = resolve_device(self.device) if names else "cpu"
        return text_class_embeddings(self.backbone, self.class_embeddings, labels, device=device)

    def _target_weights(self, targets, w, state, *, partial):
        state["_class_stats"] = None  # a "balanced" stream's per-class statistics
        # Statistics that fit weighted by class ("balanced"), which a stream may split again.
        state["_balanced_fit"] = not partial and self.class_weight == "balanced"
        out = _class_weight.row_weights(self.class_weight, targets, w, state, partial=partial)
        if out is not w and len(out):  # weighted by class: the checks on sample_weight, again
            kept = np.count_nonzero(np.bincount(np.asarray(targets, dtype=np.intp), weights=out))
            if kept < (1 if partial else 2):
                raise ValueError(
                    f"class_weight={self.class_weight!r} leaves {kept} class(es) with a positive "
                    f"weight; {type(self).__name__} needs {'one' if partial else 'two'} to fit."
                )
        return out

    def _accumulate(self, backend, X, targets, w, n_targets, *, first, columns, state):
        if self.class_weight != "balanced":
            return super()._accumulate(
                backend, X, targets, w, n_targets, first=first, columns=columns, state=state
            )
        old = {} if first else self.__dict__.get("_class_stats")
        if old is None and not first and self.__dict__.get("_balanced_fit"):
            old = _class_weight.split_fitted(backend, self.stats_)  # fit, then partial_fit
        per_class = _class_weight.accumulate(backend, X, targets, w, n_targets, old, columns)
        state["_class_stats"] = per_class
        if not per_class:  # a zero-row batch (zero-shot start): no class has rows yet
            return Statistics.empty(X.shape[1], n_targets)
        return _class_weight.combine(per_class, n_targets)

    def _criterion(self, stats, backend, host_rows=None):
        # Leave-one-out needs the rows (kernel side) and one-hot class targets; it also gives
        # the held-out predictions that calibrate predict_proba.
        if stats.rows is None or self._multilabel or self._embedding() is not None:
            return None
        Y, w = backend.fetch(*stats.rows[1:]) if host_rows is None else host_rows
        unit = _class_weight.row_factors(self.class_weight, Y, self.classes_)
        # None (one shot per class): GCV chooses and scales.
        return _criteria.leave_one_out(Y, w, stats.n_targets, self.alpha_criterion, backend, unit)

    def _after_solve(self, solution, criterion):
        if self.prior is not None:
            return {}
        prior = 1.0 / _floored_variance(solution.error_variance, self._multilabel)
        beta = criterion.inverse_temperature(solution.alpha, prior)
        return {} if beta is None else {"proba_scale": beta}

    def _embedding(self):
        return self.__dict__.get("_class_embedding")

    def _noise(self):
        """The variance dividing the linear predictions (calibrated when possible)."""
        out = self._ensure_solution()
        return 1.0 / out["proba_scale"] if "proba_scale" in out else self._error_variance()

    def _error_variance(self):
        sol = self._ensure_solution()["solution"]
        return _floored_variance(sol.error_variance, self._multilabel)

    def _decision_coef(self):
        """coef (n_out, d) and intercept (n_out,) of the log-odds."""
        coef, intercept = self._linear_targets()  # (d, D), (D,)
        noise = self._noise()
        if self._multilabel:
            # log N(1; s, v) - log N(0; s, v) = (s - 1/2) / v per label.
            return (coef / noise).T, (intercept - 0.5) / noise
        E = self._embedding()
        if E is not None:
            coef, intercept = coef @ E.T, intercept @ E.T
        coef, intercept = coef.T / noise, intercept / noise
        if len(self.classes_) == 2:
            return coef[1:] - coef[:1], intercept[1:] - intercept[:1]
        return coef, intercept

    def _call_prior(self, X):
        return _targets.prior_scores(self.prior, X, self.classes_)

    def _prior_to_outputs(self, prior):
        # Class scores -> the log-odds space of the decision function (see _decision_coef).
        n_cls = len(self.classes_)
        if prior.shape[1] != n_cls:
            raise ValueError(f"The prior returned {prior.shape[1]} columns for {n_cls} classes.")
        # The prior's own class scores, with or without class embeddings (the fast weights'
        # embedded predictions become class scores too, see _decision_coef).
        scores = prior / self._error_variance()
        if n_cls == 2 and not self._multilabel:
            return scores[:, 1:] - scores[:, :1]
        return scores

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


def _floored_variance(var, multilabel: bool):
    """GCV's error variance per label (multilabel) or averaged, floored (see _MIN_NOISE)."""
    # Scale of the floor: the variance of a balanced one-hot target, 1 / n_targets.
    floor = _MIN_NOISE / max(len(var), 1)
    if multilabel:
        return np.maximum(var, floor)
    return float(max(var.mean(), floor))
