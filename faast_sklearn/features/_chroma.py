"""libjpeg's pixels from nvJPEG's, for JPEG files whose colour is stored at half resolution.

nvJPEG (``torchvision.io.decode_jpeg`` on CUDA) decodes luma and chroma as libjpeg does and
converts them to RGB with libjpeg's integer tables, but it enlarges 4:2:0 and 4:2:2 chroma by
repeating each sample, where libjpeg (and so PIL and timm) interpolates ("fancy upsampling").
The repeated samples can be read back: :func:`libjpeg_chroma` recovers the luma and the
stored chroma planes from nvJPEG's RGB (each chroma sample from the pixels of its block that
no channel clips, whose R - G and B - G the tables determine; each luma value, given the
chroma, from a channel that does not clip), then upsamples the chroma and converts to RGB
with libjpeg's own integer arithmetic (``jdsample.c``, ``jdcolor.c``). Where a whole block clips on every channel
the chroma is estimated, so saturated areas can differ by a few levels.

The images of a batch are padded to one size and processed together, with the padding filled
by repeating each image's last row and column, as libjpeg treats its edges.

The work is laid out for memory traffic, which bounds it: the pixels are copied once into
planes of the chroma's resolution (one per position in a chroma sample's block), and the
result once into the output; what is per pixel stays in uint8 and int16 (the luma, -227..482,
and libjpeg's colour offsets, read from its tables by index) but the weights of the estimate
(float32, as they always were); everything else (the estimate, the identification, the
neighbours) is at the chroma's resolution. The chroma sample whose R - G and B - G are given
is read from an inverse table (those differences determine the sample: checked over every
candidate), not searched for among the estimate's neighbours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..utils._torch import import_torch, to_device

# FIX(x) = round(x * 2**16): libjpeg's fixed-point colour conversion constants.
_CR_R, _CB_B, _CR_G, _CB_G, _HALF = 91881, 116130, 46802, 22554, 1 << 15
# RGB -> (Cb, Cr) - 128, JFIF's full-range BT.601.
_TO_CBCR = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
# A pixel's weight in its chroma sample's estimate: no channel clipped, or some (float32).
_CLEAR = float(np.float32(1) + np.float32(1e-6))
_CLIPPED = float(np.float32(1e-6))
# Chroma candidates (the estimate +- 1) span -129..129; their R - G and B - G, -320..320 and
# -368..368, index the inverse table.
_SPAN, _DR, _DB = 129, 320, 368


def _offsets(cb: Any, cr: Any) -> tuple:
    """What libjpeg adds to the luma for R, G and B (``jdcolor.c``'s tables), from int32
    chroma centred on 0."""
    r = (_CR_R * cr + _HALF) >> 16
    g = (-_CB_G * cb - _CR_G * cr + _HALF) >> 16
    b = (_CB_B * cb + _HALF) >> 16
    return r, g, b


def _tables(dev: Any) -> tuple:
    """libjpeg's tables on ``dev``, int16: the R, G and B offsets, indexed by Cr + 128, by
    256 (Cb + 128) + Cr + 128 and by Cb + 128; and the (Cb, Cr) whose R - G and B - G are
    (i - 320, j - 368), at row 737 i + j (one for each: the differences determine it)."""
    torch = import_torch()
    v = torch.arange(-_SPAN, _SPAN + 1, device=dev, dtype=torch.int32)
    r, g, b = _offsets(v[:, None], v[None, :])  # rows Cb, columns Cr
    inner = slice(_SPAN - 128, _SPAN + 128)
    off = (r[0, inner], g[inner, inner].reshape(-1), b[inner, 0])
    off = tuple(t.to(torch.int16) for t in off)
    key = ((r - g + _DR) * (2 * _DB + 1) + b - g + _DB).reshape(-1)
    shape = ((2 * _DR + 1) * (2 * _DB + 1), 2)
    inverse = torch.full(shape, 999, dtype=torch.int16, device=dev)  # none: far from any estimate
    cbcr = torch.stack(torch.broadcast_tensors(v[:, None], v[None, :]), -1).reshape(-1, 2)
    inverse[key] = cbcr.to(torch.int16)
    return off, inverse


def _identify(planes: Any, inside: Any, free: Any, inverse: Any) -> Any:
    """Each chroma sample, (N, 2, h, w) int16, from its block's pixels that no channel clips
    (all its pixels inside the image where every one clips): for those, R - G and B - G depend
    on the chroma alone, and give it where it lies within 1 of JFIF's estimate."""
    torch = import_torch()
    weight = torch.where(inside, torch.where(free.all(2), _CLEAR, _CLIPPED), 0.0)
    total = weight.sum(0).clamp_(min=1e-9)
    rgb = (planes * weight[:, :, None]).sum(0) / total[:, None]  # (N, 3, h, w)
    cbcr = to_device(_TO_CBCR, planes.device, torch.float32)
    guess = torch.einsum("kc,nchw->nkhw", cbcr, rgb).round_().to(torch.int16)
    diff = (rgb[:, 0::2] - rgb[:, 1:2]).round_().to(torch.int32)  # R - G, B - G
    found = inverse[(diff[:, 0] + _DR) * (2 * _DB + 1) + diff[:, 1] + _DB].movedim(-1, 1)
    near = ((found - guess).abs_() <= 1).all(1, keepdim=True)
    return torch.where(near, found, guess).clamp_(-128, 127)


def _bordered(chroma: Any, sizes: Any, sampling: tuple[int, int]) -> Any:
    """``chroma`` with a border of one sample, each image's last row and column repeated
    past its edge (libjpeg's edges): (N, 2, h + 2, w + 2)."""
    torch = import_torch()
    n, _, hc, wc = chroma.shape
    dev = chroma.device
    sx, sy = sampling
    last = (sizes + sizes.new_tensor([sy - 1, sx - 1])) // sizes.new_tensor([sy, sx]) - 1
    rows = torch.minimum(torch.arange(-1, hc + 1, device=dev).clamp(min=0), last[:, :1])
    cols = torch.minimum(torch.arange(-1, wc + 1, device=dev).clamp(min=0), last[:, 1:])
    out = chroma.gather(2, rows[:, None, :, None].expand(n, 2, hc + 2, wc))
    return out.gather(3, cols[:, None, None, :].expand(n, 2, hc + 2, wc + 2))


def _upsampled(ce: Any, sampling: tuple[int, int]) -> Any:
    """libjpeg's fancy upsampling (``jdsample.c``: h2v2 for 4:2:0, h2v1 for 4:2:2) of the
    bordered chroma ``ce``, plus 128 (a table index): (S, N, 2, h, w) int32, one plane per
    position in a chroma sample's block (row-major)."""
    torch = import_torch()
    n, _, hc2, wc2 = ce.shape
    if sampling == (2, 2):  # a block's upper row: 3 x its chroma row + the row above; lower: below
        mid = ce[:, :, 1:-1]
        rows = [torch.add(ce[:, :, :-2], mid, alpha=3), torch.add(ce[:, :, 2:], mid, alpha=3)]
        shift, bias = 4, (8, 7)
    else:
        rows, shift, bias = [ce[:, :, 1:-1]], 2, (1, 2)
    sums = [
        torch.add(side, v[..., 1:-1], alpha=3).add_(b + (128 << shift))
        for v in rows
        for side, b in zip((v[..., :-2], v[..., 2:]), bias, strict=True)
    ]
    out = torch.empty((len(sums), n, 2, hc2 - 2, wc2 - 2), dtype=torch.int32, device=ce.device)
    for k, total in enumerate(sums):
        torch.bitwise_right_shift(total, shift, out=out[k])
    return out


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
    hc, wc, s = hp // sy, wp // sx, sx * sy
    dev = images.device
    off, inverse = _tables(dev)
    # Planes at the chroma's resolution, one per position in a chroma sample's block (S, N,
    # 3, h, w): every step below runs on contiguous planes (a block layout's inner axes of 2
    # are slow).
    blocks = (3, 5, 0, 1, 2, 4)  # (N, 3, h, sy, w, sx) -> (sy, sx, N, 3, h, w)
    planes = images.view(n, 3, hc, sy, wc, sx).permute(blocks).reshape(s, n, 3, hc, wc)
    rows = torch.arange(hp, device=dev).view(hc, sy).T[:, None] < sizes[:, :1]  # (sy, N, h)
    cols = torch.arange(wp, device=dev).view(wc, sx).T[:, None] < sizes[:, 1:]  # (sx, N, w)
    inside = (rows[:, None, :, :, None] & cols[None, :, :, None, :]).view(s, n, hc, wc)
    free = (planes - 1) < 254  # 0 < v < 255 (uint8 wraps 0 to 255): not clipped
    chroma = _identify(planes, inside, free, inverse)
    # The luma: exact, given the chroma, from a channel that does not clip (G first).
    cb, cr = (chroma.to(torch.int32) + 128).unbind(1)
    block = torch.stack([off[0][cr], off[1][cb * 256 + cr], off[2][cb]], 1)
    y = planes - block  # int16
    y = torch.where(
        free[:, :, 1],
        y[:, :, 1],
        torch.where(free[:, :, 0], y[:, :, 0], torch.where(free[:, :, 2], y[:, :, 2], y[:, :, 1])),
    )
    cb, cr = _upsampled(_bordered(chroma, sizes, sampling), sampling).unbind(2)
    rgb = [
        off[c][i].add_(y).clamp_(0, 255)
        for c, i in enumerate((cr, torch.add(cr, cb, alpha=256), cb))
    ]
    out = torch.empty_like(images)
    dest = out.view(n, 3, hc, sy, wc, sx).permute(blocks)  # (sy, sx, N, 3, h, w)
    for c, plane in enumerate(rgb):
        dest[:, :, :, c].copy_(plane.view(sy, sx, n, hc, wc))
    return out
