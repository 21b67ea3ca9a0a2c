"""libjpeg's pixels from nvJPEG's, for JPEG files whose colour is stored at half resolution.

nvJPEG (``torchvision.io.decode_jpeg`` on CUDA) decodes luma and chroma as libjpeg does and
converts them to RGB with libjpeg's integer tables, but it enlarges 4:2:0 and 4:2:2 chroma by
repeating each sample, where libjpeg (and so PIL and timm) interpolates ("fancy upsampling").
The repeated samples can be read back: :func:`libjpeg_chroma` recovers the luma and the
stored chroma planes from nvJPEG's RGB (each chroma sample is the mean over its block of the
pixels that no channel clips, rounded; each luma value is exact given the chroma, from a
channel that does not clip), then upsamples the chroma and converts to RGB with libjpeg's own
integer arithmetic (``jdsample.c``, ``jdcolor.c``). Where a whole block clips on every channel
the chroma is estimated, so saturated areas can differ by a few levels.

The images of a batch are padded to one size and processed together, with the padding filled
by repeating each image's last row and column, as libjpeg treats its edges.
"""

from __future__ import annotations

from typing import Any

from ..utils._torch import import_torch

# FIX(x) = round(x * 2**16): libjpeg's fixed-point colour conversion constants.
_CR_R, _CB_B, _CR_G, _CB_G, _HALF = 91881, 116130, 46802, 22554, 1 << 15


def _ycc_to_rgb(y: Any, cb: Any, cr: Any) -> Any:
    """libjpeg's YCbCr -> RGB on int32 planes: (..., 3, H, W) uint8."""
    torch = import_torch()
    cb, cr = cb - 128, cr - 128
    r = y + ((_CR_R * cr + _HALF) >> 16)
    g = y + ((-_CB_G * cb - _CR_G * cr + _HALF) >> 16)
    b = y + ((_CB_B * cb + _HALF) >> 16)
    return torch.stack([r, g, b], dim=-3).clamp_(0, 255).to(torch.uint8)


def _shifted(x: Any, dim: int, step: int) -> Any:
    """``x`` moved one sample along ``dim``, its edge sample repeated (libjpeg's edges)."""
    torch = import_torch()
    n = x.shape[dim]
    if step < 0:  # the previous sample
        return torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim=dim)
    return torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim=dim)


def _interleave(even: Any, odd: Any, dim: int) -> Any:
    torch = import_torch()
    out = torch.stack([even, odd], dim=dim + 1 if dim >= 0 else dim)
    shape = list(even.shape)
    shape[dim] *= 2
    return out.reshape(shape)


def _fancy_upsample(c: Any, sampling: tuple[int, int]) -> Any:
    """libjpeg's h2v2 (4:2:0) and h2v1 (4:2:2) fancy upsampling of int32 (..., h, w) planes."""
    if sampling == (2, 2):
        col = 3 * c
        s = _interleave(col + _shifted(c, -2, -1), col + _shifted(c, -2, 1), -2)
        this = 3 * s
        return _interleave(
            (this + _shifted(s, -1, -1) + 8) >> 4, (this + _shifted(s, -1, 1) + 7) >> 4, -1
        )
    this = 3 * c
    return _interleave(
        (this + _shifted(c, -1, -1) + 1) >> 2, (this + _shifted(c, -1, 1) + 2) >> 2, -1
    )


def libjpeg_chroma(images: Any, sizes: Any, sampling: tuple[int, int]) -> Any:
    """nvJPEG's RGB -> libjpeg's RGB, for a padded batch of images of one chroma sampling.

    Parameters
    ----------
    images : torch.Tensor of shape (N, 3, H, W) and dtype uint8
        nvJPEG's output, image ``k`` in ``images[k, :, :h_k, :w_k]``; H and W even.
    sizes : torch.Tensor of shape (N, 2) and dtype int64
        ``(h_k, w_k)`` of each image, on the images' device.
    sampling : (2, 2) or (2, 1)
        Luma samples per chroma sample, across and down (:attr:`._jpeg.JpegInfo.sampling`).

    Returns
    -------
    torch.Tensor of shape (N, 3, H, W) and dtype uint8
        The pixels libjpeg gives, in the same places (the padding is left undefined).
    """
    torch = import_torch()
    n, _, hp, wp = images.shape
    sx, sy = sampling
    dev = images.device
    rows = torch.arange(hp, device=dev)
    cols = torch.arange(wp, device=dev)
    inside = (rows[None, :, None] < sizes[:, 0, None, None]) & (
        cols[None, None, :] < sizes[:, 1, None, None]
    )
    rgb = images.float()
    r, g, b = rgb.unbind(1)
    unclipped = ((rgb > 0) & (rgb < 255)).all(1)
    trust = (unclipped & inside).float()
    # Chroma of each pixel (BT.601 full range, as JFIF), averaged over each block's trusted
    # pixels (all its pixels inside the image where none is trusted).
    ycc = torch.stack(
        [
            -0.168736 * r - 0.331264 * g + 0.5 * b + 128.0,
            0.5 * r - 0.418688 * g - 0.081312 * b + 128.0,
        ],
        dim=1,
    )
    pool = torch.nn.functional.avg_pool2d
    kernel = (sy, sx)
    wsum = pool(trust[:, None], kernel) * (sx * sy)
    csum = pool(ycc * trust[:, None], kernel) * (sx * sy)
    fallback = pool(ycc * inside[:, None], kernel) / pool(inside[:, None].float(), kernel).clamp_(
        min=1e-6
    )
    chroma = torch.where(wsum > 0, csum / wsum.clamp(min=1), fallback).round_().clamp_(0, 255)
    chroma = chroma.to(torch.int32)
    # Repeat each image's last chroma row and column into the padding.
    hc = (sizes[:, 0] + sy - 1) // sy
    wc = (sizes[:, 1] + sx - 1) // sx
    crow = torch.minimum(torch.arange(chroma.shape[-2], device=dev)[None], hc[:, None] - 1)
    ccol = torch.minimum(torch.arange(chroma.shape[-1], device=dev)[None], wc[:, None] - 1)
    chroma = chroma.gather(2, crow[:, None, :, None].expand(-1, 2, -1, chroma.shape[-1]))
    chroma = chroma.gather(3, ccol[:, None, None, :].expand(-1, 2, chroma.shape[-2], -1))
    # Luma: exact from any channel that does not clip, given the block's chroma.
    rep = chroma.repeat_interleave(sy, dim=-2).repeat_interleave(sx, dim=-1)[..., :hp, :wp]
    cb, cr = rep[:, 0] - 128, rep[:, 1] - 128
    rgb_i = images.to(torch.int32)
    y_r = rgb_i[:, 0] - ((_CR_R * cr + _HALF) >> 16)
    y_g = rgb_i[:, 1] - ((-_CB_G * cb - _CR_G * cr + _HALF) >> 16)
    y_b = rgb_i[:, 2] - ((_CB_B * cb + _HALF) >> 16)
    free = (images > 0) & (images < 255)
    y = (0.299 * r + 0.587 * g + 0.114 * b).round_().to(torch.int32)
    y = torch.where(free[:, 2], y_b, y)
    y = torch.where(free[:, 0], y_r, y)
    y = torch.where(free[:, 1], y_g, y).clamp_(0, 255)
    up = _fancy_upsample(chroma, sampling)[..., :hp, :wp]
    return _ycc_to_rgb(y, up[:, 0], up[:, 1])
