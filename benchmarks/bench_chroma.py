"""nvJPEG with libjpeg's chroma on a GPU: how close, how fast, stage by stage.

On a folder of JPEG photographs (``make_photo_folder.py``; 4:2:0, as most cameras and PIL
write them), batch by batch:

- pixels: nvJPEG's output as is and after :func:`libjpeg_chroma`, against libjpeg-turbo on
  the host (torchvision's CPU decoder: PIL's and timm's pixels), full size, before any resize;
- ``decode_images`` on CUDA (nvJPEG and the rebuild) against ``decode_images`` on the CPU
  (libjpeg-turbo), after resize and crop;
- images/s of each stage: reading the files (worker threads), nvJPEG, the chroma rebuild,
  the resize, and ``decode_images`` end to end.

Usage (on the device machine)::

    python benchmarks/bench_chroma.py --folder /tmp/faast_photos_10240 --out chroma-h100.json

``--baseline FILE`` times another version of ``features/_chroma.py`` side by side with this
one (alternated, same batch), e.g. an older commit's::

    git show <commit>:faast_sklearn/features/_chroma.py > /tmp/chroma_old.py
    python benchmarks/bench_chroma.py --baseline /tmp/chroma_old.py
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_jpeg

from faast_sklearn.features import _decode
from faast_sklearn.features._decode import _as_libjpeg, _device_resize, decode_images
from faast_sklearn.features._host_decode import read_files

CFG = dict(input_size=(3, 224, 224), interpolation="bicubic", crop_pct=0.9, crop_mode="center")


def timed(fn, n_images: int, repeats: int = 3) -> float:
    """Median images/s of ``fn`` over ``repeats`` runs, after one warm-up."""
    return alternated({"fn": fn}, n_images, repeats)["fn"]


def alternated(fns: dict, n_images: int, repeats: int = 5) -> dict:
    """Median images/s of each of ``fns``, run in turn ``repeats`` times after a warm-up."""
    times: dict = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for k, fn in fns.items():
            torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t)
    return {k: round(n_images / float(np.median(v)), 1) for k, v in times.items()}


def rebuilt_with(path: str, images: list, samplings: list):
    """A callable: ``_as_libjpeg`` of ``images`` with the ``libjpeg_chroma`` of file ``path``."""
    name = "faast_sklearn.features._chroma_baseline"  # its relative imports resolve
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def call():
        ours = _decode.libjpeg_chroma
        _decode.libjpeg_chroma = module.libjpeg_chroma
        try:
            return _as_libjpeg(images, samplings)
        finally:
            _decode.libjpeg_chroma = ours

    return call


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default="/tmp/faast_photos_10240")
    p.add_argument("--n-files", type=int, default=1024)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--out", default="chroma.json")
    p.add_argument("--baseline", help="a _chroma.py to time side by side with this one")
    args = p.parse_args(argv)
    paths = sorted(str(f) for f in Path(args.folder).rglob("*.jpg"))[: args.n_files]
    reads = read_files(paths, args.workers, processes=False)
    layouts: dict = {}
    for _, info in reads:
        layouts[str(info.sampling)] = layouts.get(str(info.sampling), 0) + 1
    batch = [torch.from_numpy(d) for d, _ in reads[: args.batch]]
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
    gpu = decode_images(sub, CFG, device="cuda", num_workers=args.workers)
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
    rates["read_threads"] = timed(lambda: read_files(sub, args.workers, False), len(sub))
    rates["read_processes"] = timed(lambda: read_files(sub, args.workers, True), len(sub))
    rates["nvjpeg"] = timed(
        lambda: decode_jpeg(batch, mode=ImageReadMode.RGB, device="cuda"), len(sub)
    )
    rates["rebuild"] = timed(lambda: _as_libjpeg(nv, samplings), len(sub))
    rates["resize"] = timed(lambda: _device_resize(rebuilt, CFG), len(sub))
    rates["decode_images"] = timed(
        lambda: decode_images(sub, CFG, device="cuda", num_workers=args.workers),
        len(sub),
    )
    if args.baseline:  # side by side, alternated: this rebuild against FILE's
        baseline = rebuilt_with(args.baseline, nv, samplings)
        out["baseline"] = args.baseline
        out["rebuild_baseline_pixels_unlike_ours"] = sum(
            int((a != b).sum()) for a, b in zip(baseline(), rebuilt, strict=True)
        )
        fns = {"rebuild_baseline": baseline, "rebuild": lambda: _as_libjpeg(nv, samplings)}
        out["images_per_s_alternated"] = alternated(fns, len(sub))
    print(json.dumps(out, indent=1))
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
