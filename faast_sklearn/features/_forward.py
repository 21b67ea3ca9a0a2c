"""The device forward pass: batches to the device through a copy stream, normalisation and
autocast, the model, and on CUDA out-of-memory a halved batch; plus the progress bar."""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from typing import Any

import numpy as np

from ..backbones import Backbone
from ..utils._cache import STORE
from ..utils._torch import import_torch, is_tensor
from ._images import to_nchw_float
from ._store import count_forward


def resolve_precision(precision: str, device: str) -> str:
    """Resolve ``precision="auto"``: bfloat16 on CUDA (float16 where unsupported), else float32."""
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        torch = import_torch()
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def progress_bar(total: int, verbose: int, desc: str) -> Any:
    """A tqdm bar counting the rows done, with their rate; disabled when ``verbose`` is 0."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not verbose)


def callable_compute(fn: Any, source: Any, device: str):
    torch = import_torch()

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


def backbone_compute(
    source: Any,
    backbone: Backbone,
    device: str,
    precision: str,
    compiled: dict | None = None,
):
    """``compute(idx, state)``: features of rows ``idx`` of ``source``. Its set-up (the
    normalisation constants on the device, a copy stream, the compiled model) is made at the
    first call: a call whose rows all come from the cache (each fold of a grid search) needs
    none. ``compiled`` is the entry of :func:`compiled_model`, or None (eager)."""
    parts = None

    def compute(idx: np.ndarray, state: dict):
        nonlocal parts
        if parts is None:
            parts = _compute_parts(source, backbone, device, precision, compiled)
        return parts(idx, state)

    return compute


def _compute_parts(
    source: Any, backbone: Backbone, device: str, precision: str, compiled: dict | None
):
    """The set-up of :meth:`_backbone_compute`, and its batch function."""
    torch = import_torch()
    dev = torch.device(device)
    channels_last = use_channels_last(backbone, device)
    model = compiled["model"] if compiled is not None else backbone.model
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
            x, scale = to_nchw_float(raw, layout, sized, cfg)
            # Broadcasting also turns grey (N, 1, H, W) into 3 channels here.
            x = torch.addcmul(shift, x, gains[scale])
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            elif compiled is not None:  # one memory layout, whatever the input's: no recompile
                x = x.contiguous()
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
        n = len(idx)
        with torch.inference_mode():
            if compiled is None or backbone.modality != "image":
                return _forward(run, raw, n, state)
            # One batch shape, so the model compiles once: the last batch is padded.
            size = max(n, state["batch_size"])
            if size > n:
                raw = torch.cat([raw, raw.new_zeros((size - n, *raw.shape[1:]))])
            if compiled["warmup_s"] is None:  # the first call compiles: timed, reported
                start = time.perf_counter()
                out = _forward(run, raw, size, state)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                compiled["warmup_s"] = time.perf_counter() - start
            else:
                out = _forward(run, raw, size, state)
            # A copy: CUDA graphs ("reduce-overhead") reuse their output buffers.
            return out[:n].clone()

    return compute


def use_channels_last(backbone: Backbone, device: str) -> bool:
    """Channels-last memory for a convolutional image network on CUDA, where cuDNN's
    NHWC kernels (tensor cores) make it faster; its module is converted once, in place.
    A network with at most one 2-D convolution (a ViT's patch embedding) is left as it is."""
    if backbone.modality != "image" or not str(device).startswith("cuda"):
        return False
    torch = import_torch()
    model = backbone.model
    if getattr(model, "_faast_channels_last", None) is None:
        convs = sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        model._faast_channels_last = convs > 1
        if convs > 1:
            model.to(memory_format=torch.channels_last)
    return model._faast_channels_last


def _forward(run, raw, n: int, state: dict):
    """Forward one batch; on CUDA out-of-memory, halve it and retry with a warning."""
    torch = import_torch()
    try:
        out = run(raw).float()
        count_forward(n)
        return out
    except torch.OutOfMemoryError:
        if n == 1:
            raise
        # Cached features on this device are only a cache: memory for the model first.
        STORE.evict(str(raw_device(raw)))
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
            [_forward(run, p, m, state) for p, m in zip(parts, (half, n - half), strict=True)]
        )


def _slice(raw: Any, a: int, b: int) -> Any:
    if isinstance(raw, dict):
        return {k: v[a:b] for k, v in raw.items()}
    return raw[a:b]


def raw_device(raw: Any) -> Any:
    return next(iter(raw.values())).device if isinstance(raw, dict) else raw.device


MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
_COMPILE_LOCK = threading.Lock()


def compiled_model(backbone: Backbone, device: str, mode: str) -> dict:
    """``{"model": compiled module, "warmup_s": seconds of the compiling call or None}``:
    ``torch.compile`` of this loaded backbone in ``mode``, made once and kept on it, so that
    every later call and fit reuses it until :func:`~faast_sklearn.backbones.clear_backbone_cache`
    (it shares the network's parameters; batches are padded to one shape so that it compiles
    once, and the compiling call is timed)."""
    torch = import_torch()
    use_channels_last(backbone, device)  # before compiling: it changes the weights' strides
    with _COMPILE_LOCK:
        entries = backbone.__dict__.setdefault("_faast_compiled", {})
        entry = entries.get(mode)
        if entry is None:
            model = torch.compile(backbone.model, mode=mode, dynamic=False)
            entry = entries[mode] = {"model": model, "warmup_s": None}
    return entry
