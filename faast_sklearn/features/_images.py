"""Image geometry and decoding, shared by the host (PIL) and device (torch) paths so that both
follow timm's evaluation transform: resize the shorter side to size / crop_pct, then
centre-crop to size."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..utils._torch import import_torch, is_tensor


def is_pil(x: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:
        return False
    return isinstance(x, Image.Image)


def resize_plan(h: int, w: int, cfg: dict) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """((new_h, new_w), (top, left, crop_h, crop_w)) for an (h, w) image under ``cfg``."""
    out_h, out_w = cfg["input_size"][1:]
    crop_pct = cfg.get("crop_pct") or 1.0
    scale_h, scale_w = math.floor(out_h / crop_pct), math.floor(out_w / crop_pct)
    if cfg.get("crop_mode") == "squash" or scale_h < out_h or scale_w < out_w:
        new = (scale_h, scale_w) if scale_h >= out_h and scale_w >= out_w else (out_h, out_w)
    elif scale_h == scale_w:  # torchvision Resize(int): shorter side to scale, keep aspect
        if h <= w:
            new = (scale_h, int(scale_h * w / h))
        else:
            new = (int(scale_w * h / w), scale_w)
    else:
        new = (scale_h, scale_w)
    top = int(round((new[0] - out_h) / 2.0))
    left = int(round((new[1] - out_w) / 2.0))
    return new, (top, left, out_h, out_w)


def resize_crop_tensor(x: Any, cfg: dict, max_value: float = 1.0) -> Any:
    """Resize + centre-crop a float (N, C, H, W) batch on its device, like timm's eval transform.

    ``max_value`` is the top of the pixel range (1 for [0, 1] images, 255 for uint8 ones).
    """
    torch = import_torch()
    (nh, nw), (top, left, oh, ow) = resize_plan(x.shape[-2], x.shape[-1], cfg)
    if (nh, nw) != tuple(x.shape[-2:]):
        mode = cfg.get("interpolation", "bilinear")
        mode = mode if mode in {"bilinear", "bicubic", "nearest"} else "bilinear"
        kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
        x = torch.nn.functional.interpolate(x, size=(nh, nw), mode=mode, **kwargs)
        if mode == "bicubic":  # bicubic overshoots; PIL clamps to the pixel range
            x = x.clamp_(0.0, max_value)
    return x[..., top : top + oh, left : left + ow]


def resize_crop_pil(img: Any, cfg: dict) -> np.ndarray:
    """Decode-side resize + centre-crop of a PIL image to a (H, W, 3) uint8 array."""
    from PIL import Image

    resample = {
        "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR,
        "nearest": Image.Resampling.NEAREST,
        "lanczos": Image.Resampling.LANCZOS,
    }.get(cfg.get("interpolation", "bilinear"), Image.Resampling.BILINEAR)
    if img.mode.startswith("I"):  # 16-bit grey (I;16*, or I from a 16-bit PNG): to 8 bits
        # (PIL's convert("RGB") clips at 255: every pixel above 255 / 65535 would be white)
        grey = np.asarray(img).astype(np.float64)
        img = Image.fromarray(np.rint(np.clip(grey, 0, 65535) / 257.0).astype(np.uint8))
    img = img.convert("RGB")  # grey -> 3 channels, alpha dropped (as PIL does)
    w, h = img.size
    (nh, nw), (top, left, oh, ow) = resize_plan(h, w, cfg)
    if (nh, nw) != (h, w):
        img = img.resize((nw, nh), resample=resample)
    img = img.crop((left, top, left + ow, top + oh))
    return np.asarray(img, dtype=np.uint8)


def image_layout(shape: tuple[int, ...], *, prefer_channels_first: bool) -> str:
    """Infer "NHW", "NHWC" or "NCHW" from a batch shape, or raise a ValueError saying why."""
    if len(shape) == 3:
        if shape[-1] in (3, 4) and shape[1] > 4:
            raise ValueError(
                f"X has shape {shape}: a 3-D array is read as a batch of grey images (N, H, W), "
                "but its last axis looks like colour channels. For one colour image pass "
                "X[None] (shape (1, H, W, C))."
            )
        return "NHW"
    if len(shape) != 4:
        raise ValueError(
            f"Image arrays must be (N, H, W), (N, H, W, C) or (N, C, H, W); got shape {shape}."
        )
    last, second = shape[-1] in (1, 3, 4), shape[1] in (1, 3, 4)
    if last and second:
        return "NCHW" if prefer_channels_first else "NHWC"
    if last:
        return "NHWC"
    if second:
        return "NCHW"
    raise ValueError(
        f"X has shape {shape}: no axis has 1, 3 or 4 colour channels. Image arrays must be "
        "(N, H, W), (N, H, W, C) or (N, C, H, W) with C in (1, 3, 4)."
    )


def image_dtype_error(dtype: Any) -> TypeError:
    """The error for image pixels of a dtype other than uint8 and floating point."""
    return TypeError(
        "Image arrays must be uint8 (0-255) or floating point (0-1); got dtype "
        f"{str(dtype).removeprefix('torch.')}. Convert with X.astype(np.uint8) or X / 255."
    )


def array_item_to_uint8(item: Any, cfg: dict) -> np.ndarray:
    """One dataset item (array or tensor, HW / HWC / CHW) -> resized (H, W, 3) uint8."""
    torch = import_torch()
    if is_tensor(item):
        x = item.detach().cpu()
    else:
        with warnings.catch_warnings():  # a read-only array (of a PIL image): never written
            warnings.simplefilter("ignore", UserWarning)
            x = torch.from_numpy(np.asarray(item))
    if x.ndim == 2:
        x = x[None]
    elif x.ndim == 3:
        layout = image_layout((1, *x.shape), prefer_channels_first=True)
        x = x.permute(2, 0, 1) if layout == "NHWC" else x
    else:
        raise ValueError(
            f"A dataset item must be one image (2-D or 3-D); got shape {tuple(x.shape)}."
        )
    if x.dtype != torch.uint8 and not x.dtype.is_floating_point:
        raise image_dtype_error(x.dtype)
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    if not bool(torch.isfinite(x).all()):
        raise ValueError("X contains NaN or infinity; image pixels must be finite.")
    if x.dtype.is_floating_point and (x.min() < -1e-3 or x.max() > 1 + 1e-3):
        warnings.warn(
            "Floating point images are read as values in [0, 1]; an image of X spans "
            "beyond that, so its features will be distorted. Scale the images to [0, 1] "
            "(e.g. x / 255) or pass uint8 images.",
            UserWarning,
            stacklevel=2,
        )
    x = x[:3] if x.shape[0] == 4 else x.expand(3, -1, -1) if x.shape[0] == 1 else x
    x = resize_crop_tensor(x[None].clamp(0.0, 1.0), cfg)[0]
    return (x * 255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


def to_nchw_float(raw: Any, layout: str, sized: bool, cfg: dict) -> tuple[Any, float]:
    """A raw device batch as float (N, 1 or 3, H, W) at the model's size, and its pixel scale.

    Pixels stay in their input range (0-255 for uint8) so that the scaling folds into the
    normalisation: one pass over the batch fewer. Grey images stay one channel through the
    resize (a third of the work) and become three channels in the normalisation.
    """
    torch = import_torch()

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
