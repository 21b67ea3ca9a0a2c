"""Decoding image files into batches at a backbone's input size, on the GPU where it can.

A batch of files becomes a uint8 ``(N, 3, H, W)`` tensor on the device, resized and centre-
cropped as timm's evaluation transform does (shorter side to ``size / crop_pct``, then a centre
crop; the geometry is :func:`._images.resize_plan`'s), with the EXIF orientation applied.

Two back-ends, chosen per batch by :func:`decode_images`:

``"tensor"``
    JPEG files are decoded together by ``torchvision.io.decode_jpeg`` on the target device
    (nvJPEG on CUDA, libjpeg-turbo on the CPU) and resized there (:func:`._images.
    resize_crop_tensor`). Files it cannot take -- PNG, WebP, CMYK JPEGs, anything it refuses
    -- fall back to the host back-end one by one; the rest of the batch stays on the device.
``"pil"``
    Files are decoded in the worker threads with PIL (JPEGs at the smallest DCT scale that
    leaves them ``draft`` times the resized size, ``Image.draft``), resized with PIL and
    written into one pinned host buffer, copied to the device in one transfer.

:func:`iter_decoded` decodes the batches in a background thread, ``prefetch`` batches ahead of
the consumer, so that reading and decoding files overlap the forward pass.

A file that cannot be decoded raises a ValueError naming its index and path, or, with
``on_error="skip"``, is left out of the batch and listed in :attr:`Decoded.skipped`.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..utils._threads import pool
from ..utils._torch import import_torch
from ._images import resize_crop_pil, resize_crop_tensor, resize_plan

ON_ERROR = ("raise", "skip")
BACKENDS = ("auto", "tensor", "pil")
_JPEG_MAGIC = b"\xff\xd8\xff"
_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # orientations that exchange width and height
# A JPEG is decoded at a DCT scale that leaves it at least this many times the resized size.
# Measured against timm's transform on full decodes of photographs (tests/test_decode.py): a
# margin of 1 errs by up to 53/255 on a pixel (2.9/255 on average over an image), 2 by 9/255
# (0.55/255), and still decodes a 1500 px photo for a 224 px model at a quarter of its size.
# At 64 px on a 2-core CPU, 1 decodes 300-800 px photographs about twice as fast as 2.
DRAFT = 2


@dataclass
class Decoded:
    """One decoded batch.

    Attributes
    ----------
    images : torch.Tensor of shape (n_decoded, 3, H, W) and dtype uint8
        The images, on the device asked for.
    index : ndarray of shape (n_decoded,)
        The position in the input of each image in ``images``.
    skipped : list of (int, str, str)
        ``(position, path, reason)`` of each file left out (``on_error="skip"`` only).
    ready : object or None
        A CUDA event the consumer's stream must wait for before reading ``images``.
    """

    images: Any
    index: np.ndarray
    skipped: list = field(default_factory=list)
    ready: Any = None


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}; got {on_error!r}.")
    return on_error


def _error(index: int, path: Any, exc: BaseException) -> ValueError:
    return ValueError(
        f"Cannot read the image file X[{index}] = {os.fspath(path)!r}: {type(exc).__name__}: {exc}"
    )


def _orientation(img: Any) -> int:
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block: the pixels may still be fine
        return 1


def decode_pil(path: Any, cfg: dict, draft: float = DRAFT) -> np.ndarray:
    """One file -> (H, W, 3) uint8 at the input size, EXIF orientation applied (PIL).

    With ``draft`` > 0, a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that
    leaves it at least ``draft`` times the resized size (0: a full decode), then resized to
    the size planned from its full resolution: a scaled
    decode rounds its size up, and planning from that size would move the crop.
    """
    from PIL import Image, ImageOps

    with Image.open(os.fspath(path)) as img:
        swap = _orientation(img) in _SWAPS_AXES
        h, w = (img.width, img.height) if swap else (img.height, img.width)
        (nh, nw), (top, left, oh, ow) = resize_plan(h, w, cfg)
        if draft and img.format == "JPEG":
            size = (nh, nw) if swap else (nw, nh)
            img.draft(None, tuple(math.ceil(draft * v) for v in size))
        img.load()
        img = ImageOps.exif_transpose(img)
        if img.size == (w, h):
            return resize_crop_pil(img, cfg)
        # Drafted to ceil(w / s) x ceil(h / s): resize the part that is the w x h image.
        s = 1 << round(np.log2(w / img.width))
        resample = getattr(Image.Resampling, cfg.get("interpolation", "bilinear").upper(), None)
        img = img.convert("RGB").resize(
            (nw, nh), resample or Image.Resampling.BILINEAR, box=(0, 0, w / s, h / s)
        )
        return np.asarray(img.crop((left, top, left + ow, top + oh)), dtype=np.uint8)


def _host_decode(paths, index, cfg, out, draft, num_workers, on_error) -> list:
    """Decode ``paths`` into ``out`` (a uint8 (N, H, W, 3) array) in worker threads; the
    ``(row, position, path, reason)`` of each failure, or a raised ValueError."""

    def work(k: int):
        try:
            out[k] = decode_pil(paths[k], cfg, draft)
        except Exception as exc:
            if on_error == "raise":
                raise _error(index[k], paths[k], exc) from exc
            return (k, int(index[k]), os.fspath(paths[k]), f"{type(exc).__name__}: {exc}")
        return None

    return [f for f in pool(num_workers).map(work, range(len(paths))) if f is not None]


def _probe(path: Any) -> tuple[Any, int] | None:
    """The bytes of a JPEG the tensor back-end can take, as a CPU uint8 tensor, and its EXIF
    orientation; None for any other file (the host back-end takes it, and names its errors)."""
    torch = import_torch()
    from PIL import Image

    try:
        data = np.fromfile(os.fspath(path), dtype=np.uint8)
        if data[:3].tobytes() != _JPEG_MAGIC or b"\xff\xd9" not in data[-16:].tobytes():
            return None  # not a JPEG, or one cut short (which nvJPEG might not notice)
        with Image.open(io.BytesIO(data)) as img:
            if img.mode not in ("RGB", "L"):  # CMYK, YCCK
                return None
            orientation = _orientation(img)
    except Exception:
        return None
    return torch.from_numpy(data), orientation


def orient(x: Any, orientation: int) -> Any:
    """Apply an EXIF orientation to a (C, H, W) tensor, as ``PIL.ImageOps.exif_transpose``."""
    torch = import_torch()
    if orientation == 2:
        return x.flip(-1)
    if orientation == 3:
        return x.flip(-2, -1)
    if orientation == 4:
        return x.flip(-2)
    if orientation == 5:
        return x.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(x, -1, (-2, -1))
    if orientation == 7:
        return x.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return torch.rot90(x, 1, (-2, -1))
    return x


def _tensor_decode(datas: list, device: str) -> list:
    """Decode JPEG byte tensors on ``device``: all at once, or, where the batch fails, one by
    one (None for each file the decoder refuses)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return list(decode_jpeg(datas, mode=ImageReadMode.RGB, device=device))
    except Exception:
        out = []
        for data in datas:
            try:
                out.append(decode_jpeg([data], mode=ImageReadMode.RGB, device=device)[0])
            except Exception:
                out.append(None)
        return out


def _resize_uint8(x: Any, cfg: dict) -> Any:
    """A (3, h, w) uint8 image -> (3, H, W) uint8 at the input size, on its device."""
    y = resize_crop_tensor(x[None].float(), cfg, max_value=255.0)[0]
    return y.round_().clamp_(0, 255).to(x.dtype)


def decode_images(
    paths: Sequence,
    cfg: dict,
    *,
    device: str = "cpu",
    backend: str = "auto",
    index: Sequence[int] | None = None,
    num_workers: int = 0,
    on_error: str = "raise",
    draft: float = DRAFT,
) -> Decoded:
    """Decode a batch of image files to a uint8 (N, 3, H, W) tensor on ``device``.

    ``cfg`` is the backbone's data configuration (timm's ``resolve_data_config``);
    ``backend`` is ``"tensor"``, ``"pil"`` or ``"auto"`` (``"tensor"`` on CUDA, else
    ``"pil"``); ``index`` gives the positions that errors name (default 0, 1, ...).
    """
    torch = import_torch()
    check_on_error(on_error)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
    if backend == "auto":
        backend = "tensor" if str(device).startswith("cuda") else "pil"
    index = np.arange(len(paths)) if index is None else np.asarray(index)
    _, oh, ow = cfg["input_size"]
    n = len(paths)
    cuda = str(device).startswith("cuda")
    on_host = list(range(n))
    out = None
    if backend == "tensor":
        out = torch.empty((n, 3, oh, ow), dtype=torch.uint8, device=device)
        probes = list(pool(num_workers).map(_probe, paths))
        jpegs = [k for k in range(n) if probes[k] is not None]
        decoded = _tensor_decode([probes[k][0] for k in jpegs], device) if jpegs else []
        on_host = [k for k in range(n) if probes[k] is None]
        for k, img in zip(jpegs, decoded, strict=True):
            if img is None:
                on_host.append(k)
            else:
                out[k] = _resize_uint8(orient(img, probes[k][1]), cfg)
        on_host.sort()
    failed = []
    if on_host:
        # One pinned buffer, one host-to-device copy; NHWC memory seen as NCHW (channels-last).
        host = torch.empty((len(on_host), oh, ow, 3), dtype=torch.uint8, pin_memory=cuda)
        args = (index[on_host], cfg, host.numpy(), draft, num_workers, on_error)
        failed = _host_decode([paths[k] for k in on_host], *args)
        failed = [(on_host[f[0]], *f[1:]) for f in failed]
        moved = host.to(device, non_blocking=cuda).permute(0, 3, 1, 2)
        if out is None:
            out = moved
        else:
            out[torch.as_tensor(on_host, device=device)] = moved
    keep = np.setdiff1d(np.arange(n), [f[0] for f in failed])
    if len(keep) < n:
        out = out[torch.as_tensor(keep, device=device)]
    return Decoded(out, index[keep], [f[1:] for f in failed])


def iter_decoded(
    paths: Sequence,
    cfg: dict,
    *,
    batch_size: int | None = None,
    batches: Sequence[np.ndarray] | None = None,
    device: str = "cpu",
    prefetch: int = 2,
    **kwargs: Any,
) -> Iterator[Decoded]:
    """Decode ``paths`` batch by batch in a background thread, ``prefetch`` batches ahead.

    The batches are consecutive runs of ``batch_size`` paths, or the positions listed in
    ``batches`` (one index array per batch, in order). Takes :func:`decode_images`' keyword
    arguments. An error in the background thread is raised here, at the batch it belongs to;
    leaving the loop early (or closing the generator) stops the thread.
    """
    torch = import_torch()
    check_on_error(kwargs.get("on_error", "raise"))
    paths = list(paths)
    if batches is None:
        if not batch_size:
            raise ValueError("iter_decoded needs batch_size or batches.")
        batches = [
            np.arange(a, min(a + batch_size, len(paths))) for a in range(0, len(paths), batch_size)
        ]
    batches = [np.asarray(b, dtype=np.int64) for b in batches]
    cuda = str(device).startswith("cuda")
    q: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        stream = torch.cuda.Stream(device=device) if cuda else None
        try:
            for idx in batches:
                with torch.cuda.stream(stream) if cuda else contextlib.nullcontext():
                    batch = decode_images(
                        [paths[i] for i in idx.tolist()], cfg, device=device, index=idx, **kwargs
                    )
                    if cuda:
                        batch.ready = torch.cuda.Event()
                        batch.ready.record(stream)
                if not put(batch):
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)
            return
        put(None)

    thread = threading.Thread(target=produce, name="faast-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if item.ready is not None:
                current = torch.cuda.current_stream(device)
                current.wait_event(item.ready)
                item.images.record_stream(current)
            yield item
    finally:
        stop.set()
        thread.join()
