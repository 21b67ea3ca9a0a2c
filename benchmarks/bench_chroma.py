"""nvJPEG with libjpeg's chroma on a GPU: how close, how fast, stage by stage.

On a folder of JPEG photographs (``make_photo_folder.py``; 4:2:0, as most cameras and PIL
write them), batch by batch:

- pixels: nvJPEG's output as is and after :func:`libjpeg_chroma`, against libjpeg-turbo on
  the host (torchvision's CPU decoder: PIL's and timm's pixels), full size, before any resize;
- ``decode_images(backend="tensor")`` on CUDA against ``decode_images`` on the CPU, after
  resize and crop;
- images/s of each stage: reading the files (worker threads), nvJPEG, the chroma rebuild,
  the resize, and ``decode_images`` end to end.

Usage (on the device machine)::

    python benchmarks/bench_chroma.py --folder /tmp/faast_photos_10240 --out chroma-h100.json

``--compile`` also times the rebuild through ``torch.compile`` (``compile_chroma=True``): its
compile time, its pixels against the eager rebuild's, and the graphs compiled (one per chroma
layout when no chunk shape recompiles).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from faast_sklearn.features._decode import _as_libjpeg, _device_resize, decode_images
from faast_sklearn.features._host_decode import _read
from faast_sklearn.utils._threads import pool

CFG = dict(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.9, crop_mode="center")


def timed(fn, n_images: int, repeats: int = 3) -> float:
    """Median images/s of ``fn`` over ``repeats`` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return round(n_images / float(np.median(times)), 1)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default="/tmp/faast_photos_10240")
    p.add_argument("--n-files", type=int, default=1024)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--out", default="chroma.json")
    p.add_argument("--compile", action="store_true", help="also time the rebuild compiled")
    args = p.parse_args(argv)
    paths = sorted(str(f) for f in Path(args.folder).rglob("*.jpg"))[: args.n_files]
    workers = pool(args.workers)
    reads = list(workers.map(_read, paths))
    layouts: dict = {}
    for _, info in reads:
        layouts[str(info.sampling)] = layouts.get(str(info.sampling), 0) + 1
    batch = [d for d, _ in reads[: args.batch]]
    samplings = [info.sampling for _, info in reads[: args.batch]]
    nv = decode_jpeg(batch, mode=ImageReadMode.RGB, device="cuda")
    rebuilt = _as_libjpeg(nv, samplings)
    raw, fixed = [], []
    for data, a, b in zip(batch, nv, rebuilt, strict=True):
        ref = decode_jpeg(data, mode=ImageReadMode.RGB).int()
        raw.append((a.cpu().int() - ref).abs())
        fixed.append((b.cpu().int() - ref).abs())

    def stats(errs):
        flat = torch.cat([e.flatten() for e in errs]).float()
        return {
            "max": int(flat.max()),
            "mean": round(float(flat.mean()), 4),
            "exact_share": round(float((flat == 0).float().mean()), 5),
            "worst_image_mean": round(max(float(e.float().mean()) for e in errs), 4),
        }

    sub = paths[: args.batch]
    gpu = decode_images(sub, CFG, device="cuda", num_workers=args.workers, backend="tensor")
    gpu = gpu.images.cpu()
    cpu = decode_images(sub, CFG, device="cpu", num_workers=args.workers, draft=0).images
    after = (gpu.int() - cpu.int()).abs()
    out = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "files": len(paths),
        "layouts": layouts,
        "pixels_vs_libjpeg_full_size": {"nvjpeg": stats(raw), "rebuilt": stats(fixed)},
        "decode_images_cuda_vs_cpu_224px": stats(list(after)),
        "images_per_s": {},
    }
    rates = out["images_per_s"]
    rates["read_threads"] = timed(lambda: list(workers.map(_read, sub)), len(sub))
    rates["nvjpeg"] = timed(
        lambda: decode_jpeg(batch, mode=ImageReadMode.RGB, device="cuda"), len(sub)
    )
    rates["rebuild"] = timed(lambda: _as_libjpeg(nv, samplings), len(sub))
    rates["resize"] = timed(lambda: _device_resize(rebuilt, CFG), len(sub))
    rates["decode_images"] = timed(
        lambda: decode_images(sub, CFG, device="cuda", num_workers=args.workers, backend="tensor"),
        len(sub),
    )
    if args.compile:  # the rebuild through torch.compile (dynamic shapes), as compile_chroma
        from torch._dynamo.utils import counters

        t = time.perf_counter()
        compiled = _as_libjpeg(nv, samplings, compiled=True)
        torch.cuda.synchronize()
        out["rebuild_compile_s"] = round(time.perf_counter() - t, 1)
        out["rebuild_compiled_pixels_unlike_eager"] = sum(
            int((a != b).sum()) for a, b in zip(compiled, rebuilt, strict=True)
        )
        rates["rebuild_compiled"] = timed(lambda: _as_libjpeg(nv, samplings, True), len(sub))
        rates["decode_images_compiled"] = timed(
            lambda: decode_images(
                sub,
                CFG,
                device="cuda",
                num_workers=args.workers,
                backend="tensor",
                compile_chroma=True,
            ),
            len(sub),
        )
        out["rebuild_compiled_graphs"] = counters["stats"]["unique_graphs"]
    print(json.dumps(out, indent=1))
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
