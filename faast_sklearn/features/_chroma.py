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
"""

from __future__ import annotations

from typing import Any

from ..utils._torch import import_torch

# FIX(x) = round(x * 2**16): libjpeg's fixed-point colour conversion constants.
_CR_R, _CB_B, _CR_G, _CB_G, _HALF = 91881, 116130, 46802, 22554, 1 << 15
# RGB -> (Cb, Cr) - 128, JFIF's full-range BT.601.
_TO_CBCR = ((-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))


def _offsets(cb: Any, cr: Any) -> Any:
    """What libjpeg adds to the luma for R, G and B (``jdcolor.c``'s tables), from int32
    chroma planes centred on 0: stacked on a new axis 1."""
    torch = import_torch()
    r = (_CR_R * cr + _HALF) >> 16
    g = (-_CB_G * cb - _CR_G * cr + _HALF) >> 16
    b = (_CB_B * cb + _HALF) >> 16
    return torch.stack([r, g, b], dim=1)


def _shifted(x: Any, dim: int, step: int) -> Any:
    """``x`` moved one sample along ``dim``, its edge sample repeated (libjpeg's edges)."""
    torch = import_torch()
    n = x.shape[dim]
    if step < 0:  # each sample's previous one
        return torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim=dim)
    return torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim=dim)


def _upsample(c: Any, sampling: tuple[int, int]) -> Any:
    """libjpeg's fancy upsampling (``jdsample.c``: h2v2 for 4:2:0, h2v1 for 4:2:2) of int32
    (N, 2, h, w) chroma planes: (N, 2, S, h, w), one plane per position in a chroma sample's
    block (row-major)."""
    torch = import_torch()
    if sampling == (2, 2):  # a block's upper row: 3 x its chroma row + the row above; lower: below
        rows, bias, shift = [3 * c + _shifted(c, 2, -1), 3 * c + _shifted(c, 2, 1)], (8, 7), 4
    else:
        rows, bias, shift = [c], (1, 2), 2
    return torch.stack(
        [
            (3 * v + _shifted(v, 3, step) + b) >> shift
            for v in rows
            for step, b in zip((-1, 1), bias, strict=True)
        ],
        dim=2,
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
    hc, wc = hp // sy, wp // sx
    dev = images.device
    # Planes at the chroma's resolution, one per position in a chroma sample's block: every
    # step below runs on contiguous planes (a block layout's inner axes of 2 are slow).
    planes = images.view(n, 3, hc, sy, wc, sx).permute(0, 1, 3, 5, 2, 4)
    planes = planes.reshape(n, 3, sy * sx, hc, wc)
    rows = torch.arange(hc, device=dev)[:, None] * sy + torch.arange(sy, device=dev)  # (hc, sy)
    cols = torch.arange(wc, device=dev)[:, None] * sx + torch.arange(sx, device=dev)
    inside = (rows.T[None, :, None, :, None] < sizes[:, 0, None, None, None, None]) & (
        cols.T[None, None, :, None, :] < sizes[:, 1, None, None, None, None]
    )
    inside = inside.reshape(n, sy * sx, hc, wc)
    free = (planes - 1) < 254  # 0 < v < 255 (uint8 wraps 0 to 255): not clipped
    # Each chroma sample from its block's pixels that no channel clips (all its pixels inside
    # the image where every one clips). For those, R - G and B - G depend on the chroma alone:
    # the sample is the one next to JFIF's estimate whose libjpeg tables give those differences.
    weight = (free.all(1) & inside).float() + 1e-6 * inside
    total = weight.sum(1).clamp_(min=1e-9)
    rgb = (planes.float() * weight[:, None]).sum(2) / total[:, None]  # (N, 3, hc, wc)
    guess = torch.einsum("kc,nchw->nkhw", torch.tensor(_TO_CBCR, device=dev), rgb)
    guess = guess.round_().to(torch.int32)
    diff = (rgb[:, 0::2] - rgb[:, 1:2]).round_().to(torch.int32)[..., None]  # R - G, B - G
    steps = torch.tensor([(a, b) for a in (0, -1, 1) for b in (0, -1, 1)], device=dev).T
    cand = guess[..., None] + steps[None, :, None, None, :]  # (N, 2, hc, wc, 9)
    off = _offsets(cand[:, 0], cand[:, 1])
    match = (off[:, 0] - off[:, 1] == diff[:, 0]) & (off[:, 2] - off[:, 1] == diff[:, 1])
    pick = match.int().argmax(-1, keepdim=True)  # the first that matches; the estimate if none
    chroma = cand.gather(-1, pick[:, None].expand(-1, 2, -1, -1, -1))[..., 0].clamp_(-128, 127)
    # Each image's last chroma row and column repeated into the padding, as libjpeg's edges.
    crow = torch.minimum(torch.arange(hc, device=dev), (sizes[:, :1] + sy - 1) // sy - 1)
    ccol = torch.minimum(torch.arange(wc, device=dev), (sizes[:, 1:] + sx - 1) // sx - 1)
    chroma = chroma.gather(2, crow[:, None, :, None].expand(-1, 2, -1, wc))
    chroma = chroma.gather(3, ccol[:, None, None, :].expand(-1, 2, hc, -1))
    # The luma: exact, given the chroma, from a channel that does not clip (G first).
    y = planes.to(torch.int32) - _offsets(chroma[:, 0], chroma[:, 1])[:, :, None]
    y = torch.where(
        free[:, 1],
        y[:, 1],
        torch.where(free[:, 0], y[:, 0], torch.where(free[:, 2], y[:, 2], y[:, 1])),
    )
    up = _upsample(chroma, sampling)
    out = (y[:, None] + _offsets(up[:, 0], up[:, 1])).clamp_(0, 255).to(torch.uint8)
    out = out.view(n, 3, sy, sx, hc, wc).permute(0, 1, 4, 2, 5, 3)
    return out.reshape(n, 3, hp, wp)
