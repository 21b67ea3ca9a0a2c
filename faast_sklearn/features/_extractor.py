"""FeatureExtractor: a frozen backbone as a scikit-learn transformer, batched and cached."""

from __future__ import annotations

import os
import warnings
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from .._config import get_config
from ..backbones import Backbone, load_backbone
from ..utils._content_key import content_key
from ..utils._dask import partitionwise
from ..utils._params import ParamsMixin
from ..utils._torch import resolve_device
from ._dispatch import make_source
from ._forward import MODES, backbone_compute, callable_compute, compiled_model, resolve_precision
from ._loop import disk_extract, extract_rows
from ._namespace import (
    backbone_name,
    backbone_namespace,
    callable_namespace,
    is_callable_backbone,
)
from ._skip import warn_skipped


class FeatureExtractor(ParamsMixin, TransformerMixin, BaseEstimator):
    """Features of a frozen pretrained backbone, as a scikit-learn transformer.

    ``fit`` does nothing but validate and record the feature dimension; ``transform`` returns
    the backbone's features as a float32 NumPy array. The network is loaded once per process
    and device, never stored on the estimator, so clones and pickles are small and a pickled
    extractor reloads its backbone by name. Features are cached per input row, keyed by the
    row's content, so clones, cross-validation folds and grid points reuse them.

    Parameters
    ----------
    backbone : str, BackboneSpec or callable
        A registered name (see :func:`faast_sklearn.backbones.list_backbones`), e.g.
        ``"efficientnet_lite0"``, ``"vit_base"`` or ``"minilm"``; ``"timm:<model>"``;
        ``"hf:<Hugging Face text model or local folder>"``; a
        :class:`~faast_sklearn.backbones.BackboneSpec`; or a callable mapping a batch to an
        ``(n, d)`` array of features: ``X[indices]`` of an array or tensor (any numeric rows),
        or a list of the items of a list or Dataset (the samples of ``(sample, label)``
        items). No preprocessing is applied for callables. Not a ``torch.nn.Module`` instance:
        scikit-learn would copy its weights into every clone and pickle.
    pretrained : bool, default=True
        Use pretrained weights. ``False`` gives random weights (for tests and timing only).
    weights : path-like or None, default=None
        A local weights file (a folder for ``hf:`` backbones) instead of the default weights.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU; or ``"cpu"``, ``"cuda"``,
        ``"cuda:1"``...
    batch_size : int, default=64
        Inputs per forward pass. On CUDA out-of-memory the batch is halved and retried with a
        warning.
    precision : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Autocast precision of the forward pass. ``"auto"`` is bfloat16 on CUDA (float16 where
        bfloat16 is unsupported) and float32 on the CPU. Features are always returned as float32.
    cache : bool, default=True
        Reuse the features of inputs seen before from the package's in-memory cache (see
        :func:`faast_sklearn.set_config`); ``set_config(cache=False)`` also turns it off.
    memory : str, joblib.Memory or None, default=None
        Also cache the features of each call on disk with :class:`joblib.Memory`, shared across
        processes and sessions (named backbones and specs only, not callables).
    num_workers : int, default=0
        Threads decoding files, PIL images and dataset items and hashing inputs (and, on a
        GPU, the worker processes reading image files). 0 means one per CPU core this
        process may use.
    verbose : int, default=0
        Show a progress bar (tqdm) with the throughput in images/s.
    on_error : {"raise", "skip"}, default="raise"
        An image file that cannot be decoded: ``"raise"`` a ValueError naming it; ``"skip"``
        it with a warning, as a NaN row of ``transform`` that the estimators' ``fit`` drops
        with its ``y`` and ``sample_weight``.
    compile : bool or str, default=False
        Run the backbone through ``torch.compile`` (``True``: its default mode, or a mode
        such as ``"reduce-overhead"``), compiled once per process, device and mode; the
        first call pays for it (``compile_warmup_s_``). Ignored for callable backbones.

    Attributes
    ----------
    n_features_out_ : int
        Feature dimension (set by ``fit``).
    device_ : str
        The resolved device (set by ``fit``).
    compile_warmup_s_ : float
        With ``compile``: seconds the compiling call took in this process (set by the first
        extraction that ran the network).

    See Also
    --------
    as_extractor : Build a FeatureExtractor from a backbone parameter, or pass one through.
    extraction_stats : Count backbone forward calls and cache hits.

    Notes
    -----
    Images follow the backbone's pretrained configuration (timm's data config): shorter side
    resized to ``size / crop_pct``, centre crop, mean/std normalisation. uint8 images are read
    as 0-255, floating point ones as 0-1; grey images are repeated to 3 channels. Image files
    are decoded with their EXIF orientation applied (see :ref:`image_folders`).

    Features are cached per row, by content, together with the backbone and the precision
    (see :ref:`caching`). A callable that cannot be keyed is not cached, with a warning once:
    set its ``__faast_key__`` to a key that changes whenever its output would, or register it
    with :func:`~faast_sklearn.backbones.register_backbone`. Wrap large image arrays in
    :class:`LazyRows` before a grid search: its rows are keyed once and its folds are views.

    Examples
    --------
    >>> import numpy as np
    >>> from faast_sklearn.features import FeatureExtractor
    >>> X = np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8)
    >>> ext = FeatureExtractor("test_tiny", device="cpu").fit(X)
    >>> ext.transform(X).shape
    (8, 16)
    """

    _parameter_constraints: dict = {
        "backbone": "no_validation",  # names, specs and callables are checked on use
        "pretrained": ["boolean"],
        "weights": [str, os.PathLike, None],
        "device": "no_validation",  # resolved by utils._torch.resolve_device
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "precision": [StrOptions({"auto", "float32", "bfloat16", "float16"})],
        "cache": ["boolean"],
        "memory": [None, str, os.PathLike, HasMethods(["cache"])],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "verbose": ["verbose"],
        "on_error": [StrOptions({"raise", "skip"})],
        "compile": ["boolean", StrOptions(set(MODES))],
    }

    def __init__(
        self,
        backbone,
        *,
        pretrained=True,
        weights=None,
        device="auto",
        batch_size=64,
        precision="auto",
        cache=True,
        memory=None,
        num_workers=0,
        verbose=0,
        on_error="raise",
        compile=False,
    ):
        self.backbone = backbone
        self.pretrained = pretrained
        self.weights = weights
        self.device = device
        self.batch_size = batch_size
        self.precision = precision
        self.cache = cache
        self.memory = memory
        self.num_workers = num_workers
        self.verbose = verbose
        self.on_error = on_error
        self.compile = compile

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # transform works on a fresh instance: nothing is learned
        # A model reads images or strings; a callable gets any rows as they are.
        callable_backbone = is_callable_backbone(self.backbone)
        tags.input_tags.two_d_array = callable_backbone
        tags.input_tags.three_d_array = not callable_backbone
        tags.input_tags.string = not callable_backbone
        tags.transformer_tags.preserves_dtype = []  # always float32, whatever the input
        return tags

    def fit(self, X=None, y=None):
        """Validate the parameters, load the backbone and record its feature dimension.

        Parameters
        ----------
        X : ignored, default=None
            Only used for callable backbones, to learn the feature dimension from one sample.
        y : ignored
            Not used, present for API consistency.

        Returns
        -------
        self : FeatureExtractor
            The extractor.
        """
        self._check_params()
        self.device_ = resolve_device(self.device)
        if is_callable_backbone(self.backbone):
            if X is not None:  # the callable's output width, from one sample (then cached)
                first = make_source(X, "any", None, self.num_workers).raw(np.zeros(1, np.int64))
                self.n_features_out_ = int(self.extract(first).shape[1])
        else:
            self.n_features_out_ = self._load(self.device_).n_features
        return self

    @partitionwise
    def transform(self, X):
        """Features of X as a float32 NumPy array of shape (n_samples, n_features).

        Parameters
        ----------
        X : array-like, tensor, list, torch Dataset or LazyRows
            Images (arrays, tensors, PIL images, file paths, dataset items) or strings; see
            the class docstring.

        Returns
        -------
        features : ndarray of shape (n_samples, n_features), dtype float32
        """
        return self.extract(X, as_tensor=False)

    def extract(self, X, *, as_tensor=False, return_key=False):
        """Features of X, as NumPy or as a torch tensor on the extractor's device.

        Parameters
        ----------
        X : array-like, tensor, list, torch Dataset or LazyRows
            Images (arrays, tensors, PIL images, file paths, dataset items) or strings; see
            the class docstring.
        as_tensor : bool, default=False
            Return a float32 :class:`torch.Tensor` on the resolved device (features cached
            on that device are gathered there, with no host round trip) instead of a NumPy
            array.
        return_key : bool, default=False
            Also return a key of the features: 16 bytes that are equal only for equal
            features (the backbone's and every row's content key), or None where the
            features are not cached (caching off, or a callable that cannot be keyed).

        Returns
        -------
        features : ndarray or torch.Tensor of shape (n_samples, n_features), float32
        key : bytes or None
            Only with ``return_key=True``.
        """
        self._check_params()
        device = resolve_device(self.device)
        store = bool(self.cache) and get_config()["cache"]
        options = {
            "device": device,
            "as_tensor": as_tensor,
            "batch_size": self.batch_size,
            "verbose": self.verbose,
            "desc": f"features ({backbone_name(self.backbone)})",
        }
        if is_callable_backbone(self.backbone):
            source = make_source(X, "any", None, self.num_workers)
            namespace = callable_namespace(self.backbone) if store else None
            compute = callable_compute(self.backbone, source, device)
            feats, keys = extract_rows(source, compute, namespace=namespace, store=store, **options)
        else:
            backbone = self._load(device)
            precision = resolve_precision(self.precision, device)
            source = make_source(X, backbone.modality, backbone.data_config, self.num_workers)
            if hasattr(source, "on_error"):  # image files
                source.on_error = self.on_error
                source.check_files()
            self._check_range(source)
            namespace = None
            if store or self.memory is not None:
                namespace = backbone_namespace(
                    self.backbone, self.pretrained, self.weights, precision
                )
            mode = "default" if self.compile is True else self.compile or None
            compiled = compiled_model(backbone, device, mode) if mode else None
            compute = backbone_compute(source, backbone, device, precision, compiled)
            if self.memory is None:
                feats, keys = extract_rows(
                    source, compute, namespace=namespace, store=store, **options
                )
            else:
                feats, keys = disk_extract(self.memory, source, compute, namespace, store, options)
            if compiled is not None and compiled["warmup_s"] is not None:
                self.compile_warmup_s_ = compiled["warmup_s"]
            warn_skipped(source)
        if not return_key:
            return feats
        key = content_key(namespace, b"".join(keys)) if store and namespace is not None else None
        return feats, key

    def get_feature_names_out(self, input_features=None):
        """Output feature names: ``featureextractor0``, ``featureextractor1``, ...

        Parameters
        ----------
        input_features : ignored
            Not used, present for API consistency.

        Returns
        -------
        feature_names_out : ndarray of str objects
        """
        n = getattr(self, "n_features_out_", None)
        if n is None:
            if is_callable_backbone(self.backbone):
                raise ValueError(
                    "The feature dimension of a callable backbone is known only after fit(X)."
                )
            n = self._load(resolve_device(self.device)).n_features
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(n)], dtype=object)

    def _load(self, device: str) -> Backbone:
        if isinstance(self.backbone, FeatureExtractor):
            raise TypeError("backbone cannot be a FeatureExtractor; use it directly instead.")
        return load_backbone(
            self.backbone, pretrained=self.pretrained, weights=self.weights, device=device
        )

    def _check_range(self, source: Any) -> None:
        if getattr(source, "sized", True):
            return
        lo_hi = source.check_range()
        if lo_hi is not None and not np.isfinite(lo_hi).all():
            raise ValueError("X contains NaN or infinity; image pixels must be finite.")
        if lo_hi is not None and (lo_hi[0] < -1e-3 or lo_hi[1] > 1 + 1e-3):
            warnings.warn(
                f"Floating point images are read as values in [0, 1]; X spans "
                f"[{lo_hi[0]:.3g}, {lo_hi[1]:.3g}], so the features will be distorted. "
                "Scale X to [0, 1] (e.g. X / X.max()) or pass uint8 images.",
                UserWarning,
                stacklevel=3,
            )


def as_extractor(backbone, *, device="auto", batch_size=64, verbose=0) -> FeatureExtractor:
    """Return ``backbone`` if it is a FeatureExtractor (its own settings win, so a
    user-configured extractor survives ``clone``), else a FeatureExtractor around it with the
    estimator's ``device``, ``batch_size`` and ``verbose``."""
    if isinstance(backbone, FeatureExtractor):
        return backbone
    return FeatureExtractor(backbone, device=device, batch_size=batch_size, verbose=verbose)
