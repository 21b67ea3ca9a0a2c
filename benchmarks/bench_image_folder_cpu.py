"""fit from a folder of real-size JPEG photographs against fit from the same images as arrays,
on the CPU (issue 16's CPU target: EfficientNet-Lite0 at 64 px, at least 0.95).

* ``fit_folder``: ``FAASTClassifier(backbone=FeatureExtractor(BackboneSpec("efficientnet_lite0",
  image_size=64))).fit(paths, y)``: files decoded by PIL in host threads at a reduced JPEG DCT
  scale (``Image.draft``, no smaller than twice the resize target), resized to the model's
  input and fed to the forward pass while the next batch decodes;
* ``fit_arrays``: the same fit from the same photographs already decoded at full size and
  held in memory as a list of (H, W, 3) uint8 arrays of their own sizes (what a user who
  loaded the files with PIL would pass; resized per image in host threads).

Both with a cold feature cache (``clear_cache`` before each fit), alternated, ``--repeats``
times each after one warm-up of each; the medians are reported. Also the tolerance of the
folder path against timm's eval transform (``timm.data.create_transform`` on the full decode)
on the same photographs: the max and mean absolute pixel difference (0-255) and the cosine
between the features of the two inputs.

Usage::

    python benchmarks/bench_image_folder_cpu.py --n 320 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_photo_folder import make_photo_folder  # noqa: E402

from faast_sklearn import FAASTClassifier, clear_cache  # noqa: E402
from faast_sklearn.backbones import BackboneSpec  # noqa: E402
from faast_sklearn.datasets import load_image_folder  # noqa: E402
from faast_sklearn.features import FeatureExtractor  # noqa: E402
from faast_sklearn.features._decode import decode_images  # noqa: E402


def tolerance(ext, paths, cfg) -> dict:
    """Our decode against timm's eval transform on the full decode, pixels and features."""
    import torch
    from PIL import Image, ImageOps
    from timm.data import create_transform

    t = create_transform(**{**cfg, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)})
    ref = []
    for p in paths:
        with Image.open(p) as img:
            ref.append(t(ImageOps.exif_transpose(img).convert("RGB")))
    ref = torch.stack(ref)  # (N, 3, H, W) in [0, 1]
    ours = decode_images(paths, cfg, backend="pil").images.float()
    err = (ours - ref * 255.0).abs().flatten(1)
    f_ours = ext.transform(ours.permute(0, 2, 3, 1).round().to(torch.uint8).numpy())
    f_ref = ext.transform(ref.permute(0, 2, 3, 1).contiguous().numpy())
    cos = (f_ours * f_ref).sum(1) / np.linalg.norm(f_ours, axis=1) / np.linalg.norm(f_ref, axis=1)
    return {
        "n_photos": len(paths),
        "pixel_max_abs_diff": float(err.max()),
        "pixel_mean_abs_diff": float(err.mean()),
        "pixel_mean_abs_diff_worst_image": float(err.mean(1).max()),
        "feature_cosine_min": float(cos.min()),
        "feature_cosine_mean": float(cos.mean()),
    }


def main(argv=None):
    import torch
    from PIL import Image, ImageOps

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=320)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "image-folder-cpu-2core")
    )
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        make_photo_folder(folder, args.n, n_jobs=os.cpu_count())
        made = time.perf_counter() - start
        paths, y = load_image_folder(folder, return_X_y=True)
        arrays = []
        for path in paths:
            with Image.open(path) as img:
                arrays.append(np.asarray(ImageOps.exif_transpose(img).convert("RGB")))
        ext = FeatureExtractor(
            BackboneSpec("efficientnet_lite0", image_size=args.image_size),
            device="cpu",
            batch_size=args.batch_size,
        )
        cfg = ext._load("cpu").data_config

        def fit(X):
            clear_cache()
            start = time.perf_counter()
            FAASTClassifier(backbone=ext).fit(X, y)
            return time.perf_counter() - start

        fit(paths), fit(arrays)  # warm-up: the model loaded, threads started, files cached
        times = {"fit_folder": [], "fit_arrays": []}
        for _ in range(args.repeats):
            times["fit_folder"].append(fit(paths))
            times["fit_arrays"].append(fit(arrays))
            print({k: round(v[-1], 3) for k, v in times.items()}, flush=True)
        rates = {k: len(paths) / statistics.median(v) for k, v in times.items()}
        tol = tolerance(ext, paths[:64], cfg)
        mean_kib = float(np.mean([os.path.getsize(q) for q in paths]) / 1024)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "backbone": f"efficientnet_lite0 at {args.image_size} px",
        "n_images": len(paths),
        "mean_file_kib": mean_kib,
        "mean_pixels": float(np.mean([a.shape[0] * a.shape[1] for a in arrays])),
        "folder_made_s": made,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "times_s": times,
        "images_per_s": rates,
        "ratio_folder_to_arrays": rates["fit_folder"] / rates["fit_arrays"],
        "tolerance_vs_timm": tol,
        "arrays": "the same photographs decoded at full size (PIL, EXIF applied) as a list of "
        "(H, W, 3) uint8 arrays of their own sizes",
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(results, f, indent=1)
    md = (
        f"# fit from an image folder vs from arrays, CPU ({results['host']})\n\n"
        f"{results['n_images']} JPEG photographs (mean {results['mean_file_kib']:.1f} KiB, "
        f"{results['mean_pixels'] / 1e3:.0f} kpixels), {results['backbone']}, batch "
        f"{args.batch_size}, median of {args.repeats} alternated cold-cache fits; load average "
        f"{results['load_average_1min_at_end']:.1f} at the end (a shared machine: both fits "
        "saw it).\n"
        f"Arrays: {results['arrays']}.\n\n"
        "| input | images/s | median s |\n|---|---:|---:|\n"
        + "".join(f"| {k} | {rates[k]:,.0f} | {statistics.median(times[k]):.3f} |\n" for k in rates)
        + f"\nfolder / arrays: **{results['ratio_folder_to_arrays']:.3f}** (target >= 0.95)\n\n"
        f"Against timm's eval transform on the full decode ({tol['n_photos']} photographs): "
        f"max abs pixel diff {tol['pixel_max_abs_diff']:.1f}/255, mean "
        f"{tol['pixel_mean_abs_diff']:.2f}/255 (worst image {tol['pixel_mean_abs_diff_worst_image']:.2f}); "
        f"feature cosine min {tol['feature_cosine_min']:.4f}, mean {tol['feature_cosine_mean']:.4f}.\n"
    )
    with open(args.out + ".md", "w") as f:
        f.write(md)
    print(md)
    return results


if __name__ == "__main__":
    main()
