"""Decoding image files into batches at a backbone's input size, on the GPU where it can.

A batch of files becomes a uint8 ``(N, 3, H, W)`` tensor on the device, resized and centre-
cropped as timm's evaluation transform does (shorter side to ``size / crop_pct``, then a centre
crop; the geometry is :func:`._images.resize_plan`'s), with the EXIF orientation applied.

Each file's bytes are read and its JPEG header scanned (:func:`._jpeg.scan_jpeg`, no PIL)
first: for a GPU in worker processes (in threads, that Python would hold the GIL that the
forward pass's kernel launches wait for), on the host in the worker threads. Then, by
``backend``:

``"auto"``
    On CUDA, the plain JPEG files (8-bit, Huffman-coded, not progressive) of the common
    chroma layouts (grey, 4:4:4, 4:2:0, 4:2:2) are decoded together on the GPU and resized
    there, while the worker threads decode the rest on the host at the same time. Where
    NVIDIA's nvImageCodec is installed and the GPU has hardware JPEG engines
    (:func:`jpeg_engine`), the engines take them, with libjpeg's "fancy" chroma upsampling
    (H200: libjpeg-turbo's pixels to within one level, 3.5x nvJPEG with the rebuild below);
    a file the engines refuse goes to the host. Otherwise nvJPEG does
    (``torchvision.io.decode_jpeg`` on the device), which repeats subsampled chroma where
    libjpeg (and so PIL and timm) interpolates it; :func:`._chroma.libjpeg_chroma` turns its
    output into libjpeg's pixels on the device (on photographs, H100: 97.6 % of the pixels
    exact, 0.03 levels off on average; after the resize 0.17, at most 15).
    On the host (and on CPU devices), plain JPEG files are decoded by libjpeg-turbo
    (``torchvision.io.decode_jpeg``) and resized by torch's uint8 antialiased resize, both
    outside the GIL, unless PIL's DCT scaling decodes them at half their size or less (small
    models); every other file (PNG, WebP, CMYK, cut short...) by PIL.
``"pil"``
    Every file decoded by PIL (JPEGs at the smallest DCT scale that leaves them ``draft``
    times the resized size, ``Image.draft``) and resized by PIL.

Host-decoded images go into one pinned buffer, copied to the device in one transfer.

:func:`iter_decoded` decodes the batches in a background thread, ``prefetch`` batches ahead of
the consumer, so that reading and decoding files overlap the forward pass.

A file that cannot be decoded raises a ValueError naming its index and path, or, with
``on_error="skip"``, is left out of the batch and listed in :attr:`Decoded.skipped`.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..utils._threads import pool
from ..utils._torch import import_torch, to_device
from ._chroma import libjpeg_chroma
from ._host_decode import DRAFT, _host_work, _turbo_ok, orient, read_files
from ._images import resize_crop_tensor

ON_ERROR = ("raise", "skip")
BACKENDS = ("auto", "pil")
# Chroma layouts whose nvJPEG output is libjpeg's, or :func:`libjpeg_chroma` makes it so.
_NVJPEG_SAMPLING = ((1, 1), (2, 2), (2, 1))
# Pixels rebuilt at once: bounds the padded chunk and its temporaries (about 40 bytes a pixel).
_CHUNK_PIXELS = 1 << 24


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


def _tensor_decode(datas: list, device: str) -> list:
    """Decode JPEG files' bytes (uint8 arrays) with torchvision on ``device``: all at once,
    or, where the batch fails, one by one (None for each file the decoder refuses)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    datas = [import_torch().from_numpy(d) for d in datas]
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


@functools.cache
def jpeg_engine(device_index: int) -> Any:
    """nvImageCodec's JPEG decoder on GPU ``device_index``: the GPU's hardware JPEG engines
    with libjpeg's "fancy" chroma upsampling (libjpeg-turbo's pixels to within a level).
    None where nvImageCodec is not installed, cannot start, or the GPU has no such engines
    (nvJPEG's hybrid decoder, its other back-end, is 3 levels off and would take a share of a
    batch that depends on the batch). One per device and process, with the lock that keeps
    its calls one at a time."""
    try:
        from nvidia import nvimgcodec as nv
        from torchvision.io import encode_jpeg

        torch = import_torch()
        decoder = nv.Decoder(
            device_id=device_index,
            backends=[nv.Backend(nv.BackendKind.HW_GPU_ONLY)],
            options=":fancy_upsampling=1",
        )
        probe = encode_jpeg(torch.zeros((3, 16, 16), dtype=torch.uint8))
        if not [x for x in decoder.decode([nv.CodeStream(probe.numpy())]) if x is not None]:
            return None
        return decoder, threading.Lock()
    except Exception:  # not installed, or no CUDA device it can use
        return None


def _engine_decode(engine: Any, datas: list, device: str) -> list:
    """Decode JPEG files' bytes (uint8 arrays) with nvImageCodec on ``device``'s current
    stream: (3, h, w) uint8 images, None for each file it refuses."""
    from nvidia import nvimgcodec as nv

    torch = import_torch()
    params = nv.DecodeParams(apply_exif_orientation=False, color_spec=nv.ColorSpec.SRGB)
    stream = torch.cuda.current_stream(device).cuda_stream
    decoder, lock = engine
    try:
        streams = [nv.CodeStream(d) for d in datas]
        with lock:
            images = decoder.decode(streams, params=params, cuda_stream=stream)
    except Exception:  # a file it cannot parse: the host decodes (and names) them all
        images = []
    if len(images) != len(datas):  # or some releases leave out the images they fail on
        return [None] * len(datas)
    # DLPack, not the CUDA array interface: the consumer's stream waits for the decode.
    return [None if x is None else torch.from_dlpack(x).permute(2, 0, 1) for x in images]


def _as_libjpeg(images: list, samplings: list) -> list:
    """nvJPEG's images -> libjpeg's: those with subsampled chroma rebuilt, in padded chunks of
    images of one layout and similar sizes."""
    torch = import_torch()
    out = list(images)
    for sampling in {s for s in samplings if s in _NVJPEG_SAMPLING[1:]}:
        rows = sorted(
            (k for k, s in enumerate(samplings) if s == sampling),
            # By height, then width: images of similar shapes padded together (on photographs
            # of 300-800 px, 0.62 of a padded chunk is image against 0.51 sorted by area).
            key=lambda k: tuple(images[k].shape[-2:]),
        )
        while rows:
            chunk, hp, wp = [], 0, 0
            for k in rows:
                h, w = images[k].shape[-2:]
                h2, w2 = max(hp, h + h % 2), max(wp, w + w % 2)
                if chunk and (len(chunk) + 1) * h2 * w2 > _CHUNK_PIXELS:
                    break
                chunk, hp, wp = chunk + [k], h2, w2
            rows = rows[len(chunk) :]
            pad = torch.empty((len(chunk), 3, hp, wp), dtype=torch.uint8, device=images[0].device)
            for j, k in enumerate(chunk):
                pad[j, :, : images[k].shape[-2], : images[k].shape[-1]] = images[k]
            sizes = [tuple(images[k].shape[-2:]) for k in chunk]
            done = libjpeg_chroma(pad, to_device(sizes, pad.device), sampling)
            for j, (k, (h, w)) in enumerate(zip(chunk, sizes, strict=True)):
                out[k] = done[j, :, :h, :w]
    return out


def _device_resize(images: list, cfg: dict) -> Any:
    """(3, h, w) uint8 device images -> one (N, 3, H, W) uint8 batch. Images of one size (a
    camera's photographs) are resized together; each resize goes into one float buffer, which
    is rounded once."""
    torch = import_torch()
    _, oh, ow = cfg["input_size"]
    buf = torch.empty((len(images), 3, oh, ow), dtype=torch.float32, device=images[0].device)
    groups: dict = {}
    for k, x in enumerate(images):
        groups.setdefault(tuple(x.shape), []).append(k)
    for rows in groups.values():
        x = images[rows[0]][None] if len(rows) == 1 else torch.stack([images[k] for k in rows])
        y = resize_crop_tensor(x.float(), cfg, max_value=255.0)
        for i, k in enumerate(rows):
            buf[k] = y[i]
    return buf.round_().clamp_(0, 255).to(torch.uint8)


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
    ``backend`` is ``"auto"`` or ``"pil"`` (see the module's docstring); ``index`` gives the
    positions that errors name (default 0, 1, ...).
    """
    torch = import_torch()
    check_on_error(on_error)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}.")
    index = np.arange(len(paths)) if index is None else np.asarray(index)
    _, oh, ow = cfg["input_size"]
    n = len(paths)
    cuda = str(device).startswith("cuda")
    workers = pool(num_workers)
    if backend == "pil":
        reads = [(None, None)] * n
    else:
        reads = read_files(paths, num_workers, processes=cuda)
    plain = [k for k in range(n) if reads[k][1] is not None]
    on_device = []
    if cuda and backend != "pil":
        # nvJPEG takes the plain JPEG files whose pixels are libjpeg's or are made so, but
        # progressive ones (its hybrid decoder does those on one host thread).
        on_device = [
            k
            for k in plain
            if not reads[k][1].progressive and reads[k][1].sampling in _NVJPEG_SAMPLING
        ]
    host_rows = sorted(set(range(n)).difference(on_device))
    # One pinned buffer, one host-to-device copy; NHWC memory seen as NCHW (channels-last).
    host = torch.empty((n, oh, ow, 3), dtype=torch.uint8, pin_memory=cuda)
    host_np = host.numpy()

    def submit(j: int, k: int):
        turbo = backend != "pil" and _turbo_ok(reads[k][1], cfg, draft)
        args = (paths[k], reads[k], cfg, draft, turbo, j, index[k], host_np, on_error)
        return workers.submit(_host_work, *args)

    futures = [submit(j, k) for j, k in enumerate(host_rows)]
    device_out, device_rows, late = None, [], []
    if on_device:
        datas = [reads[k][0] for k in on_device]
        gpu = torch.device(device).index
        engine = jpeg_engine(torch.cuda.current_device() if gpu is None else gpu)
        decoded = _engine_decode(engine, datas, device) if engine else _tensor_decode(datas, device)
        kept = [(k, img) for k, img in zip(on_device, decoded, strict=True) if img is not None]
        late = [k for k, img in zip(on_device, decoded, strict=True) if img is None]
        if kept:
            device_rows = [k for k, _ in kept]
            images = [img for _, img in kept]
            if engine is None:  # nvJPEG through torchvision: libjpeg's chroma rebuilt
                images = _as_libjpeg(images, [reads[k][1].sampling for k in device_rows])
            images = [
                orient(img, reads[k][1].orientation)
                for k, img in zip(device_rows, images, strict=True)
            ]
            device_out = _device_resize(images, cfg)
    failed = []
    for f in futures:
        failure = f.result()
        failed += [failure] if failure is not None else []
    for j, k in enumerate(late, start=len(host_rows)):  # refused by the device decoder
        failure = submit(j, k).result()
        failed += [failure] if failure is not None else []
    host_rows = host_rows + late
    failed = [(host_rows[f[0]], *f[1:]) for f in failed]
    moved = host[: len(host_rows)].to(device, non_blocking=cuda).permute(0, 3, 1, 2)
    if device_out is None and host_rows == list(range(n)):
        out = moved
    else:
        out = torch.empty((n, 3, oh, ow), dtype=torch.uint8, device=device)
        if host_rows:
            out.index_copy_(0, to_device(host_rows, device), moved)
        if device_out is not None:
            out.index_copy_(0, to_device(device_rows, device), device_out)
    keep = np.setdiff1d(np.arange(n), [f[0] for f in failed])
    if len(keep) < n:
        out = out.index_select(0, to_device(keep, device))
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
                        [paths[i] for i in idx.tolist()],
                        cfg,
                        device=device,
                        index=idx,
                        **kwargs,
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
