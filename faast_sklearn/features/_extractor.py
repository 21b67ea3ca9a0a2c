"""FeatureExtractor: a frozen backbone as a scikit-learn transformer, batched and cached."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import sys
import time
import warnings
from numbers import Integral
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_memory

from ..backbones import Backbone, BackboneSpec, load_backbone
from ..backbones._registry import model_key
from ..utils._params import ParamsMixin
from ..utils._torch import import_torch, is_tensor, resolve_device
from ._cache import (
    BLOCK_MEMO,
    FEATURE_CACHE,
    OUTPUT_MEMO,
    count_forward,
    gather,
    gather_to_device,
)
from ._inputs import ArraySource, TextSource, make_source

# Bumped whenever preprocessing changes, so that stale disk caches are not served.
_CACHE_VERSION = "features-v1"
_PRECISIONS = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}
# A call that spends this long keying an array's rows only to find every one cached (a fold
# that scikit-learn copied, typically) points to LazyRows, once per process.
_HINT_SECONDS = 1.0
_hinted = False


def _hint_lazyrows(source: Any, seconds: float) -> None:
    global _hinted
    if _hinted or seconds < _HINT_SECONDS or not isinstance(source, ArraySource):
        return
    _hinted = True
    # Point at the user's line: the first caller outside this package, scikit-learn (its
    # search, its output wrappers) and joblib.
    import joblib
    import sklearn

    roots = tuple(
        os.path.dirname(m.__file__)
        for m in (sys.modules[__package__.split(".")[0]], sklearn, joblib)
    )
    frame, level = sys._getframe(0), 1  # stacklevel 1: this function
    while frame is not None and frame.f_code.co_filename.startswith(roots):
        frame, level = frame.f_back, level + 1
    warnings.warn(
        f"Every one of the {source.n} rows of X was in the feature cache already, but "
        f"finding them took {seconds:.1f} s of hashing X. If X is a fold of a "
        "cross-validation (GridSearchCV, cross_val_score...) or is passed again and again, "
        "wrap the whole data in faast_sklearn.LazyRows(X): scikit-learn then indexes views "
        "instead of copying the pixels, and each row is keyed once (a ViT-B/16 grid search "
        "over 10 alphas x 5 folds on 8,192 images of 224 px: 1.3 single fits instead of 26). "
        "Shown once per process.",
        UserWarning,
        stacklevel=level,
    )


def _is_callable_backbone(backbone: Any) -> bool:
    """Whether ``backbone`` is a callable batch -> features; refuses module instances."""
    if not callable(backbone) or isinstance(backbone, (str, BackboneSpec, type)):
        return False
    module = import_torch().nn.Module
    if isinstance(backbone, module) or isinstance(getattr(backbone, "__self__", None), module):
        # clone() would deep-copy its weights for every fold and grid point, and every
        # pickle of the estimator would carry them.
        what = type(getattr(backbone, "__self__", backbone)).__name__
        raise TypeError(
            f"backbone cannot be a torch.nn.Module or its method (got one of a {what}): "
            "scikit-learn copies parameters for every clone, fold and pickle. Pass a name "
            "('timm:<model>' with weights=<file>), or register_backbone(name, factory) and "
            "pass the name, or a module-level function of a batch that runs a module it loads "
            "once (functions are pickled by name)."
        )
    return True


def resolve_precision(precision: str, device: str) -> str:
    """Resolve ``precision="auto"``: bfloat16 on CUDA (float16 where unsupported), else float32."""
    if precision != "auto":
        return _PRECISIONS[precision]
    if device.startswith("cuda"):
        torch = import_torch()
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


class _Progress:
    """tqdm when installed, else one refreshed stderr line; silent when verbose is 0."""

    def __init__(self, total: int, verbose: int, desc: str):
        self.total, self.done, self.verbose = total, 0, verbose
        self.start = self.last = time.perf_counter()
        self.bar = None
        if verbose:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit="img", leave=True)
            except ImportError:
                self.desc = desc

    def update(self, n: int) -> None:
        self.done += n
        if not self.verbose:
            return
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if now - self.last > 1.0 or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            end = "\n" if self.done >= self.total else ""
            print(
                f"\r{self.desc}: {self.done}/{self.total} ({rate:.0f} images/s)",
                end=end,
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


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
        Reuse features of inputs seen before in this process (bounded, least recently used).
        On CUDA, the tensors of recent calls whose every row was cached are also kept on the
        device (within 5% of its memory): a grid search's folds come back without a host
        round trip. :func:`~faast_sklearn.features.clear_feature_cache` frees both.
    memory : str, joblib.Memory or None, default=None
        Also cache the features of each call on disk with :class:`joblib.Memory`, shared across
        processes and sessions (named backbones and specs only, not callables).
    num_workers : int, default=0
        Threads decoding files, PIL images and dataset items and hashing inputs. 0 means
        ``min(8, os.cpu_count())`` (decoding scaled no further on a 16-core host).
    verbose : int, default=0
        Show a progress bar (tqdm if installed) with the throughput in images/s.

    Attributes
    ----------
    n_features_out_ : int
        Feature dimension (set by ``fit``).
    device_ : str
        The resolved device (set by ``fit``).

    See Also
    --------
    as_extractor : Build a FeatureExtractor from a backbone parameter, or pass one through.
    extraction_stats : Count backbone forward calls and cache hits.

    Notes
    -----
    Images follow the backbone's pretrained configuration (timm's data config): shorter side
    resized to ``size / crop_pct``, centre crop, mean/std normalisation. Arrays and tensors of
    one shape are resized on the device; PIL images, files and dataset items on the host, in
    worker threads (large JPEG files are decoded at a reduced DCT scale, 1/2 to 1/8, no
    smaller than the resize target). uint8 images are read as 0-255, floating point images as
    0-1; grey images are repeated to 3 channels and alpha channels dropped.

    The cache is keyed per row: SHA-256 of the bytes of each image (arrays, tensors, PIL
    images, decoded dataset items) or string, and path + size + modification time for image
    files, together with the backbone, its weights and the precision. A fold of a
    cross-validation is a subset of rows seen before, so ``GridSearchCV`` runs the backbone
    once per distinct input. Hashing costs far less than a forward pass but is not free
    (about 1-2 GB/s per worker thread); CUDA tensors are copied to the host once for it.
    ``cache=False`` skips it. The in-memory cache holds up to 2 GiB of features per process
    (least recently used rows go first); see :func:`extraction_stats` for its counters. The
    rows of a :class:`LazyRows` are keyed once, however many folds hold them, and its folds
    are views: wrap large image arrays in it before a grid search.

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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False  # transform works on a fresh instance: nothing is learned
        # A model reads images or strings; a callable gets any rows as they are.
        callable_backbone = _is_callable_backbone(self.backbone)
        tags.input_tags.two_d_array = callable_backbone
        tags.input_tags.three_d_array = not callable_backbone
        tags.input_tags.string = not callable_backbone
        tags.transformer_tags.preserves_dtype = []  # always float32, whatever the input
        return tags

    # ------------------------------------------------------------------ public API

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
        if _is_callable_backbone(self.backbone):
            if X is not None:  # the callable's output width, from one sample (then cached)
                first = make_source(X, "any", None, self.num_workers).raw(np.zeros(1, np.int64))
                self.n_features_out_ = int(self.extract(first).shape[1])
        else:
            self.n_features_out_ = self._load(self.device_).n_features
        return self

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

    def extract(self, X, *, as_tensor=False):
        """Features of X, as NumPy or as a torch tensor on the extractor's device.

        Parameters
        ----------
        X : array-like, tensor, list, torch Dataset or LazyRows
            Images (arrays, tensors, PIL images, file paths, dataset items) or strings; see
            the class docstring.
        as_tensor : bool, default=False
            Return a float32 :class:`torch.Tensor` on the resolved device (no host round trip
            when nothing comes from the cache) instead of a NumPy array.

        Returns
        -------
        features : ndarray or torch.Tensor of shape (n_samples, n_features), float32
        """
        self._check_params()
        device = resolve_device(self.device)
        if _is_callable_backbone(self.backbone):
            source = make_source(X, "any", None, self.num_workers)
            namespace = self._callable_namespace()
            compute = self._callable_compute(source, device)
            return self._run(source, compute, namespace, device, as_tensor)
        backbone = self._load(device)
        precision = resolve_precision(self.precision, device)
        source = make_source(X, backbone.modality, backbone.data_config, self.num_workers)
        self._check_range(source)
        namespace = None
        if self.cache or self.memory is not None:
            key = model_key(self.backbone, pretrained=self.pretrained, weights=self.weights)
            namespace = _namespace(key, precision)
        compute = self._backbone_compute(source, backbone, device, precision)
        if self.memory is None:
            return self._run(source, compute, namespace, device, as_tensor)
        # Disk cache: one entry per call, keyed by the row keys (cheap to hash), so a call
        # on the same inputs in another process or session skips extraction entirely.
        keys = source.keys(np.arange(source.n))
        cached = check_memory(self.memory).cache(_disk_extract, ignore=["job"])
        feats = cached(
            namespace,
            np.array(keys, dtype=f"S{len(keys[0])}"),
            job=(self, source, compute, namespace, device, keys),
        )
        if as_tensor:
            return import_torch().from_numpy(feats).to(device)
        return feats

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
            if _is_callable_backbone(self.backbone):
                raise ValueError(
                    "The feature dimension of a callable backbone is known only after fit(X)."
                )
            n = self._load(resolve_device(self.device)).n_features
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(n)], dtype=object)

    # ------------------------------------------------------------------ internals

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

    def _callable_namespace(self) -> str | None:
        if not self.cache:
            return None
        try:
            return joblib_hash(("callable", self.backbone, _CACHE_VERSION))
        except Exception:  # noqa: BLE001 - unpicklable callables (lambdas): per-object key
            return f"callable-{id(self.backbone)}"

    def _callable_compute(self, source: Any, device: str):
        torch = import_torch()
        fn = self.backbone

        def compute(idx: np.ndarray, _state: dict):
            batch = source.raw(idx)
            with torch.inference_mode():  # a callable that runs a module builds no graph
                out = fn(batch)
                out = (
                    out.detach().to(device)
                    if is_tensor(out)
                    else torch.from_numpy(np.asarray(out, dtype=np.float32)).to(device)
                )
            count_forward(len(idx))
            if out.ndim != 2 or out.shape[0] != len(idx):
                raise ValueError(
                    f"The backbone callable returned shape {tuple(out.shape)} for a batch of "
                    f"{len(idx)}; it must return (batch size, n_features)."
                )
            return out.float()

        return compute

    def _backbone_compute(self, source: Any, backbone: Backbone, device: str, precision: str):
        """``compute(idx, state)``: features of rows ``idx`` of ``source``. Its set-up (the
        normalisation constants on the device, a copy stream) is made at the first call: a
        call whose rows all come from the cache (each fold of a grid search) needs none."""
        parts = None

        def compute(idx: np.ndarray, state: dict):
            nonlocal parts
            if parts is None:
                parts = self._compute_parts(source, backbone, device, precision)
            return parts(idx, state)

        return compute

    def _compute_parts(self, source: Any, backbone: Backbone, device: str, precision: str):
        """The set-up of :meth:`_backbone_compute`, and its batch function."""
        torch = import_torch()
        dev = torch.device(device)
        model = backbone.model
        autocast = (
            torch.autocast(dev.type, dtype=getattr(torch, precision))
            if precision != "float32"
            else contextlib.nullcontext()
        )
        if backbone.modality == "image":
            cfg = backbone.data_config
            # Created once per call: a per-batch tensor from a Python list would be a blocking
            # host-to-device copy that stalls the pipeline.
            mean = torch.tensor(cfg["mean"], dtype=torch.float64).view(1, -1, 1, 1)
            std = torch.tensor(cfg["std"], dtype=torch.float64).view(1, -1, 1, 1)
            # (x * scale - mean) / std as one fused x * gain + shift, per input scale.
            shift = (-mean / std).float().to(dev)
            gains = {s: (s / std).float().to(dev) for s in (1.0, 1.0 / 255.0)}
            layout, sized = source.layout, source.sized

            def prepare(idx):
                return source.load(idx, device)

            def run(raw):
                x, scale = _to_nchw_float(raw, layout, sized, cfg)
                # Broadcasting also turns grey (N, 1, H, W) into 3 channels here.
                x = torch.addcmul(shift, x, gains[scale])
                with autocast:
                    return model(x)

        else:
            tokenizer = backbone.tokenizer

            def prepare(idx):
                tokens = tokenizer(source.raw(idx))
                return {k: v.to(dev, non_blocking=True) for k, v in tokens.items()}

            def run(raw):
                with autocast:
                    return model(**raw)

        # On CUDA, host-to-device copies go through a side stream so that copying batch k+1
        # overlaps the forward pass of batch k instead of queueing behind it.
        copy_stream = torch.cuda.Stream(dev) if dev.type == "cuda" else None
        if copy_stream is not None:
            # CUDA inputs may still be in the making on the current stream: wait for them.
            copy_stream.wait_stream(torch.cuda.current_stream(dev))

        def compute(idx: np.ndarray, state: dict):
            if copy_stream is None:
                raw = prepare(idx)
            else:
                with torch.cuda.stream(copy_stream):
                    raw = prepare(idx)
                current = torch.cuda.current_stream(dev)
                current.wait_stream(copy_stream)
                for t in raw.values() if isinstance(raw, dict) else (raw,):
                    # Allocated on the copy stream, used on this one: keep the caching
                    # allocator from recycling the memory before the forward pass is done.
                    t.record_stream(current)
            with torch.inference_mode():
                return self._forward(run, raw, len(idx), state)

        return compute

    def _forward(self, run, raw, n: int, state: dict):
        """Forward one batch; on CUDA out-of-memory, halve it and retry with a warning."""
        torch = import_torch()
        try:
            out = run(raw).float()
            count_forward(n)
            return out
        except torch.OutOfMemoryError:
            if n == 1:
                raise
            # Memoised outputs and block copies are only caches: memory for the model first.
            OUTPUT_MEMO.clear()
            BLOCK_MEMO.clear()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = n // 2
            state["batch_size"] = max(1, min(state["batch_size"], half))
            warnings.warn(
                f"Out of memory on a batch of {n}; retrying in batches of {half}. Pass a "
                f"smaller batch_size (e.g. batch_size={half}) to avoid the retry.",
                RuntimeWarning,
                stacklevel=2,
            )
            parts = [_slice(raw, 0, half), _slice(raw, half, n)]
            return torch.cat(
                [
                    self._forward(run, p, m, state)
                    for p, m in zip(parts, (half, n - half), strict=True)
                ]
            )

    def _run(self, source, compute, namespace, device, as_tensor, keys=None):
        """The extraction loop: keys -> cache lookup -> batched forward of the misses."""
        torch = import_torch()
        n = source.n
        state = {"batch_size": int(self.batch_size)}
        use_cache = namespace is not None and (self.cache or keys is not None)
        text = isinstance(source, TextSource)
        # Inputs are keyed and looked up chunk by chunk: hashing chunk k+1 on the host overlaps
        # the device's work on chunk k, whose kernels were queued asynchronously.
        chunk = n if text else max(4 * state["batch_size"], 1024)
        memo_key = None
        hit_pos: list[np.ndarray] = []
        hit_handles: list[np.ndarray] = []
        blocks: dict = {}
        dups: list[tuple[int, int]] = []
        first: dict[bytes, int] = {}
        pending: list[int] = []
        pending_keys: dict[int, bytes] = {}
        computed: list[tuple[np.ndarray, Any]] = []
        progress = _Progress(n, self.verbose, f"features ({_name(self.backbone)})")
        key_seconds = 0.0  # spent keying rows: a LazyRows hint when all were found

        def flush(count: int) -> None:
            take = np.asarray(pending[:count], dtype=np.int64)
            del pending[:count]
            computed.append((take, compute(take, state)))
            progress.update(len(take))

        try:
            for start in range(0, n, chunk):
                idx = np.arange(start, min(n, start + chunk))
                if use_cache:
                    t0 = time.perf_counter()
                    ks = keys[start : start + len(idx)] if keys is not None else source.keys(idx)
                    if self.cache:
                        handles, found = FEATURE_CACHE.lookup(namespace, ks)
                        blocks.update(found)
                    else:
                        handles = np.full(len(ks), -1, dtype=np.int64)
                    key_seconds += time.perf_counter() - t0
                    hit = handles >= 0
                    if start == 0 and hit.all() and as_tensor and device.startswith("cuda"):
                        # A warm call (a fold of a grid search, say): key every row now and
                        # look the whole output up on the device.
                        if keys is None and source.cheap_keys:
                            t0 = time.perf_counter()
                            keys = ks + source.keys(np.arange(len(idx), n))
                            key_seconds += time.perf_counter() - t0
                        if keys is not None or len(idx) == n:
                            digest = hashlib.sha256(b"".join(keys or ks)).digest()
                            memo_key = (namespace, device, digest)
                            memo = OUTPUT_MEMO.get(memo_key)
                            if memo is not None:
                                FEATURE_CACHE.record_hits(n - len(idx))
                                progress.update(n)
                                _hint_lazyrows(source, key_seconds)
                                return memo.clone()
                    hit_pos.append(idx[hit])
                    hit_handles.append(handles[hit])
                    n_hit = int(hit.sum())
                    for j in np.flatnonzero(~hit).tolist():
                        i, k = start + j, ks[j]
                        if k in first:  # the same input twice in X: compute it once
                            dups.append((i, first[k]))
                            n_hit += 1
                        else:
                            first[k] = i
                            pending.append(i)
                            pending_keys[i] = k
                    progress.update(n_hit)
                else:
                    pending.extend(idx.tolist())
                if text:
                    # Length-sorted batches pad less (as sentence-transformers does).
                    pending.sort(key=lambda i: len(source.X[i]))
                while len(pending) >= state["batch_size"] or (pending and start + chunk >= n):
                    flush(state["batch_size"])
                if hasattr(source, "drop_memo"):
                    source.drop_memo()
        finally:
            progress.close()
        if use_cache and self.cache and not computed and not dups:
            _hint_lazyrows(source, key_seconds)
        hits = (
            np.concatenate(hit_pos) if hit_pos else np.empty(0, np.int64),
            np.concatenate(hit_handles) if hit_handles else np.empty(0, np.int64),
            blocks,
        )
        out = self._assemble(
            n, hits, dups, computed, pending_keys, namespace, use_cache, device, as_tensor, torch
        )
        if memo_key is not None:
            OUTPUT_MEMO.put(memo_key, out.clone())
        return out

    def _assemble(
        self, n, hits, dups, computed, pending_keys, namespace, use_cache, device, as_tensor, torch
    ):
        hit_pos, hit_handles, blocks = hits
        pos = np.concatenate([p for p, _ in computed]) if computed else np.empty(0, np.int64)
        feats = torch.cat([f for _, f in computed]) if computed else None
        host_feats = None
        if feats is not None and (use_cache or not as_tensor or len(hit_pos) or dups):
            host_feats = feats.cpu().numpy()  # one device-to-host copy for the whole call
        if use_cache and self.cache and host_feats is not None:
            # host_feats is this call's own copy, only read below: the cache keeps it as is.
            block = FEATURE_CACHE.put_many(
                namespace, [pending_keys[i] for i in pos.tolist()], host_feats, owned=True
            )
            if block is not None and feats.is_cuda:  # the new block's rows, on their device
                BLOCK_MEMO.put((block, str(feats.device)), feats)
        if as_tensor and device.startswith("cuda"):
            # Assembled on the device: computed rows are there already, cached ones are
            # gathered from device copies of their blocks.
            d = feats.shape[1] if feats is not None else next(iter(blocks.values())).shape[1]
            out = torch.empty((n, d), dtype=torch.float32, device=device)
            if feats is not None:
                out[torch.as_tensor(pos, device=out.device)] = feats.to(out.device)
            if len(hit_pos):
                gather_to_device(hit_handles, blocks, out, hit_pos)
            if dups:
                pairs = torch.as_tensor(dups, dtype=torch.int64, device=out.device)
                out[pairs[:, 0]] = out[pairs[:, 1]]
            return out
        if as_tensor and not len(hit_pos) and not dups:
            out = torch.empty((n, feats.shape[1]), dtype=torch.float32, device=feats.device)
            out[torch.as_tensor(pos, device=feats.device)] = feats
            return out
        d = host_feats.shape[1] if host_feats is not None else next(iter(blocks.values())).shape[1]
        out = np.empty((n, d), dtype=np.float32)
        if host_feats is not None:
            out[pos] = host_feats
        gather(hit_handles, blocks, out, hit_pos)
        for i, j in dups:
            out[i] = out[j]
        return torch.from_numpy(out).to(device) if as_tensor else out


def _disk_extract(namespace: str, keys: np.ndarray, job: tuple) -> np.ndarray:
    """joblib.Memory target: ``namespace`` and the row ``keys`` identify the result."""
    extractor, source, compute, namespace, device, key_list = job
    return extractor._run(source, compute, namespace, device, False, keys=key_list)


def _to_nchw_float(raw: Any, layout: str, sized: bool, cfg: dict) -> tuple[Any, float]:
    """A raw device batch as float (N, 1 or 3, H, W) at the model's size, and its pixel scale.

    Pixels stay in their input range (0-255 for uint8) so that the scaling folds into the
    normalisation: one pass over the batch fewer. Grey images stay one channel through the
    resize (a third of the work) and become three channels in the normalisation.
    """
    torch = import_torch()
    from ._inputs import resize_crop_tensor

    if layout == "NHW":
        x = raw.unsqueeze(1)
    elif layout == "NHWC":
        x = raw.permute(0, 3, 1, 2)
    else:
        x = raw
    if x.shape[1] == 4:
        x = x[:, :3]  # alpha dropped, as PIL's convert("RGB") does
    scale = 1.0 / 255.0 if x.dtype == torch.uint8 else 1.0
    x = x.float()
    if not sized:
        x = resize_crop_tensor(x, cfg, max_value=1.0 / scale)
    return x, scale


def _slice(raw: Any, a: int, b: int) -> Any:
    if isinstance(raw, dict):
        return {k: v[a:b] for k, v in raw.items()}
    return raw[a:b]


def _name(backbone: Any) -> str:
    if isinstance(backbone, str):
        return backbone
    if isinstance(backbone, BackboneSpec):
        return backbone.name
    return getattr(backbone, "__name__", type(backbone).__name__)


@functools.lru_cache(maxsize=64)
def _namespace(key: tuple, precision: str) -> str:
    """The feature cache's namespace of a network and precision (a joblib hash, remembered:
    every extraction call of a grid search asks for it)."""
    return joblib_hash((key, precision, _CACHE_VERSION))


def joblib_hash(obj: Any) -> str:
    import joblib

    return joblib.hash(obj)


def as_extractor(backbone, *, device="auto", batch_size=64, verbose=0) -> FeatureExtractor:
    """Return ``backbone`` if it is a FeatureExtractor, else a FeatureExtractor around it.

    Estimators call this with their own ``backbone``, ``device``, ``batch_size`` and
    ``verbose`` parameters. A FeatureExtractor passed as ``backbone`` is returned unchanged
    (its own settings win), so a user-configured extractor survives ``clone``.

    Parameters
    ----------
    backbone : str, BackboneSpec, callable or FeatureExtractor
        See :class:`FeatureExtractor`.
    device : str, default="auto"
    batch_size : int, default=64
    verbose : int, default=0

    Returns
    -------
    extractor : FeatureExtractor
    """
    if isinstance(backbone, FeatureExtractor):
        return backbone
    return FeatureExtractor(backbone, device=device, batch_size=batch_size, verbose=verbose)
