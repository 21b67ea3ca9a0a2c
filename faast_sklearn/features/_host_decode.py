"""Decoding one image file on the host (a worker thread): libjpeg-turbo through torchvision for
plain JPEG files, PIL for the rest; the EXIF orientation applied; errors name the file.

Used by :func:`._decode.decode_images`, which reads the files and picks the decoder."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..utils._threads import n_threads, pool
from ..utils._torch import import_torch
from ._images import resize_crop_pil, resize_plan
from ._jpeg import JpegInfo, scan_jpeg

_TORCH_MODES = ("bilinear", "bicubic", "nearest")
_EXIF_ORIENTATION = 0x0112
_SWAPS_AXES = (5, 6, 7, 8)  # orientations that exchange width and height
# A JPEG is decoded at a DCT scale that leaves it at least this many times the resized size.
# Measured against timm's transform on full decodes of photographs (tests/test_decode.py): a
# margin of 1 errs by up to 53/255 on a pixel (2.9/255 on average over an image), 2 by 9/255
# (0.55/255), and still decodes a 1500 px photo for a 224 px model at a quarter of its size.
# At 64 px on a 2-core CPU, 1 decodes 300-800 px photographs about twice as fast as 2.
DRAFT = 2


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


def _decode_turbo(data: Any, info: JpegInfo, cfg: dict) -> Any:
    """A plain JPEG's bytes -> (H, W, 3) uint8 CPU tensor: torchvision's libjpeg-turbo decode
    and torch's uint8 antialiased resize (both release the GIL; 3x PIL's speed on one core).
    The resize of one image runs on the calling thread (torch parallelises uint8 resizes over
    the batch), so the worker threads need no change to torch's thread count."""
    torch = import_torch()
    from torchvision.io import ImageReadMode, decode_jpeg

    x = orient(decode_jpeg(torch.from_numpy(data), mode=ImageReadMode.RGB), info.orientation)
    (nh, nw), (top, left, oh, ow) = resize_plan(x.shape[-2], x.shape[-1], cfg)
    if (nh, nw) != tuple(x.shape[-2:]):
        mode = cfg.get("interpolation", "bilinear")
        kwargs = {"align_corners": False, "antialias": True} if mode != "nearest" else {}
        x = torch.nn.functional.interpolate(x[None], size=(nh, nw), mode=mode, **kwargs)[0]
    return x[:, top : top + oh, left : left + ow].permute(1, 2, 0)


def _read(path: Any) -> tuple[np.ndarray | None, JpegInfo | None]:
    """A file's bytes (None if unreadable) and, for a complete JPEG file that torchvision's
    decoders take alike (:attr:`JpegInfo.plain`), its header."""
    try:
        with open(os.fspath(path), "rb") as f:  # twice np.fromfile's speed
            data = np.empty(os.fstat(f.fileno()).st_size, dtype=np.uint8)
            data = data[: f.readinto(data)]
    except Exception:
        return None, None  # the PIL decoder names the error
    info = scan_jpeg(data)
    if info is None or not info.plain or b"\xff\xd9" not in data[-16:].tobytes():
        return data, None  # cut short, CMYK, arithmetic-coded...: PIL
    return data, info


def _read_many(paths: list) -> list:
    return [_read(p) for p in paths]


def read_files(paths: Sequence, num_workers: int, processes: bool) -> list:
    """:func:`_read` of each path, in the worker threads or in worker processes. Opening a
    file and scanning its header run Python, which in a thread holds the GIL that a GPU's
    forward pass takes back after every kernel launch: decoding for a GPU reads in processes
    (joblib's reusable loky workers, which exit after 5 idle minutes)."""
    if processes and len(paths) > 1:
        from joblib.externals.loky import get_reusable_executor

        k = n_threads(num_workers)  # the same size every call: a new size restarts them
        chunks = np.array_split(np.asarray(paths, dtype=object), min(k, len(paths)))
        try:
            done = get_reusable_executor(k).map(_read_many, [list(c) for c in chunks])
            return [r for chunk in done for r in chunk]
        except Exception:  # a worker that died, or none could start: the threads read
            pass
    return list(pool(num_workers).map(_read, paths))


def _turbo_ok(info: JpegInfo | None, cfg: dict, draft: float) -> bool:
    """Decode with torchvision on the host, unless PIL's DCT scaling would decode the file
    at half its size or less (a 64 px model reading photographs)."""
    if info is None or cfg.get("interpolation", "bilinear") not in _TORCH_MODES:
        return False
    h, w = (
        (info.width, info.height) if info.orientation in _SWAPS_AXES else (info.height, info.width)
    )
    (nh, nw), _ = resize_plan(h, w, cfg)
    return not draft or min(h / nh, w / nw) < 2 * draft


def _host_work(path, read, cfg, draft, turbo, row, index, out, on_error):
    """Decode one file into ``out[row]``; None, or a failure's (row, position, path, reason)."""
    try:
        if turbo:
            try:
                out[row] = _decode_turbo(read[0], read[1], cfg).numpy()
                return None
            except Exception:  # let PIL try it, and name its error
                pass
        out[row] = decode_pil(path, cfg, draft)
    except Exception as exc:
        if on_error == "raise":
            raise _error(index, path, exc) from exc
        return (row, int(index), os.fspath(path), f"{type(exc).__name__}: {exc}")
    return None


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
