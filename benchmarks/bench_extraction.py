"""End-to-end feature throughput against the pure forward pass of the same backbone.

Three numbers for one backbone, measured in one run on one device:

* ``forward``: the network alone on a preprocessed batch already on the device (the ceiling);
* ``extract``: ``FeatureExtractor.transform`` from host uint8 arrays (N, H, W, 3) -- pinned
  host copies, device-side resize and normalisation, autocast, row hashing for the cache
  (cold cache) -- and the same with ``cache=False``;
* ``fit``: ``FAASTClassifier(backbone=...).fit(X, y)`` on those arrays, cold cache, and
  ``GridSearchCV(FAASTClassifier(backbone=...), {"alpha": 10 values}, cv=5)``, cold cache,
  where the backbone sees each image once (``grid_backbone_samples``); the rest of its cost
  is scikit-learn copying the image rows of each fold (``grid_fold_copies_s``, timed alone)
  and the cache hashing them again (one run: it is long). The same search on
  ``LazyRows(X)`` (``lazyrows_*``; wrapping, a copy of X, timed with it), whose folds are
  views keyed by row number. Medians of ``--repeats`` runs of
  fit and search on 28 x 28 grey arrays resized on the device (``grey28_*``), on features
  extracted once, as NumPy (``grid_on_features_s``) or as a tensor on the device
  (``grid_on_device_features_s``), and with ``--paths`` on PNG files (``paths_*``).

Random weights (``pretrained=False``) are used: throughput does not depend on the values.
Targets from issue 3: extract/fit throughput >= 0.9 x forward; grid search <= 1.5 x fit.

Examples
--------
CPU smoke (tiny ViT at 32 px, a few seconds)::

    python benchmarks/bench_extraction.py --smoke

GPU, ViT-B/16 at 224 px, bf16::

    python benchmarks/bench_extraction.py --device cuda --backbone vit_base --image-size 224 \\
        --n-images 8192 --batch-size 256 --precision bfloat16 \\
        --out benchmarks/results/extraction-vit_base-224-bf16-h100.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faast_sklearn import clear_cache as clear_feature_cache  # noqa: E402
from faast_sklearn.backbones import BackboneSpec, load_backbone  # noqa: E402
from faast_sklearn.features import (  # noqa: E402
    FeatureExtractor,
    LazyRows,
    extraction_stats,
    reset_extraction_stats,
)
from faast_sklearn.features._forward import resolve_precision  # noqa: E402
from faast_sklearn.utils._torch import import_torch, resolve_device  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--backbone", default="vit_base", help="registered name or timm:<model>")
    p.add_argument("--image-size", type=int, default=224, help="host image and model input size")
    p.add_argument("--n-images", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument(
        "--precision", default="bfloat16", choices=["auto", "float32", "bfloat16", "float16"]
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    p.add_argument("--n-classes", type=int, default=10)
    p.add_argument("--no-fit", action="store_true", help="skip the FAASTClassifier timings")
    p.add_argument(
        "--paths",
        action="store_true",
        help="also time fit and grid search on the images saved as PNG files",
    )
    p.add_argument(
        "--smoke",
        action="store_true",
        help="CPU-sized run: ViT at 32 px, 64 images, float32, 1 repeat",
    )
    p.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/...)")
    args = p.parse_args(argv)
    if args.smoke:
        args.image_size, args.n_images, args.batch_size = 32, 64, 16
        args.precision, args.repeats = "float32", 1
    return args


def _sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_time(fn, repeats, before=None):
    """Best wall time of ``fn()`` over ``repeats`` runs (``before()`` untimed, each time)."""
    times = []
    for _ in range(repeats):
        if before is not None:
            before()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), times


def time_forward(torch, backbone, args, device, precision):
    model = backbone.model
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    n_batches = max(1, args.n_images // args.batch_size)
    dtype = getattr(torch, precision)

    def run():
        with (
            torch.inference_mode(),
            torch.autocast(torch.device(device).type, dtype=dtype, enabled=precision != "float32"),
        ):
            for _ in range(n_batches):
                model(x)
        _sync(torch, device)

    run()  # warm-up: kernels selected, memory pools filled
    best, times = best_time(run, args.repeats)
    return n_batches * args.batch_size / best, times


def time_grid(estimator, X, y, repeats=1, wrap=None):
    """Median seconds of GridSearchCV over 10 alphas x 5 folds from a cold feature cache, and
    the number of images the backbone saw (in the last run). ``wrap(X)`` (LazyRows) is timed
    with the search."""
    times = []
    for _ in range(repeats):
        clear_feature_cache()
        reset_extraction_stats()
        start = time.perf_counter()
        data = X if wrap is None else wrap(X)
        GridSearchCV(estimator, {"alpha": np.logspace(-3, 3, 10)}, cv=5).fit(data, y)
        times.append(time.perf_counter() - start)
    return float(np.median(times)), extraction_stats()["samples"]


def time_fold_copies(X, y):
    """Seconds GridSearchCV spends copying X for its 50 (alpha, fold) fits and scores alone:
    the floor of any search on in-memory arrays, whatever the estimator does."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.utils import _safe_indexing

    start = time.perf_counter()
    for _ in range(10):
        for train, test in StratifiedKFold(5).split(X, y):
            _safe_indexing(X, train), _safe_indexing(X, test)
    return time.perf_counter() - start


def time_route(tag, label, ext, X, y, repeats):
    """Median single fit and grid search on one input form, as ``{tag}_*`` results."""
    _, fits = best_time(lambda: make_classifier(ext).fit(X, y), repeats, clear_feature_cache)
    fit_s = float(np.median(fits))
    grid_s, samples = time_grid(make_classifier(ext), X, y, repeats)
    print(
        f"{label}: fit {fit_s:.2f} s, grid {grid_s:.2f} s = {grid_s / fit_s:.2f} x fit; "
        f"backbone saw {samples} images",
        flush=True,
    )
    return {
        f"{tag}_fit_s": fit_s,
        f"{tag}_grid_search_s": grid_s,
        f"{tag}_grid_to_fit_ratio": grid_s / fit_s,
        f"{tag}_grid_backbone_samples": samples,
    }


def write_images(X, folder):
    """Save uint8 (N, H, W, 3) images as PNG files; returns their paths."""
    from PIL import Image

    paths = [os.path.join(folder, f"{i:06d}.png") for i in range(len(X))]
    for path, image in zip(paths, X, strict=True):
        Image.fromarray(image).save(path, compress_level=1)
    return paths


def make_classifier(extractor, alpha=1.0):
    from faast_sklearn import FAASTClassifier

    return FAASTClassifier(backbone=extractor, alpha=alpha)


def main(argv=None):
    args = parse_args(argv)
    torch = import_torch()
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    spec = BackboneSpec(args.backbone, image_size=args.image_size)
    backbone = load_backbone(spec, pretrained=False, device=device)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (args.n_images, args.image_size, args.image_size, 3), dtype=np.uint8)
    y = rng.integers(0, args.n_classes, args.n_images)

    def extractor(**kw):
        return FeatureExtractor(
            spec,
            pretrained=False,
            device=device,
            batch_size=args.batch_size,
            precision=args.precision,
            **kw,
        )

    results = {}
    fwd, fwd_times = time_forward(torch, backbone, args, device, precision)
    results["forward_images_per_s"] = fwd
    print(f"forward only          : {fwd:10.1f} images/s", flush=True)

    extractor(cache=False).transform(X[: 2 * args.batch_size])  # warm-up of the full path
    for name, kw in [("extract_cold_cache", {}), ("extract_no_cache", {"cache": False})]:
        ext = extractor(**kw)
        best, times = best_time(lambda e=ext: e.transform(X), args.repeats, clear_feature_cache)
        results[f"{name}_images_per_s"] = args.n_images / best
        results[f"{name}_ratio_to_forward"] = args.n_images / best / fwd
        print(
            f"{name:22s}: {args.n_images / best:10.1f} images/s "
            f"({args.n_images / best / fwd:.2f} x forward)",
            flush=True,
        )
    ext = extractor()
    ext.transform(X)
    best, _ = best_time(lambda: ext.transform(X), args.repeats)
    results["extract_warm_cache_images_per_s"] = args.n_images / best
    print(f"extract_warm_cache    : {args.n_images / best:10.1f} images/s", flush=True)

    if not args.no_fit:
        from faast_sklearn import FAASTClassifier

        ext = extractor()
        fit_best, _ = best_time(
            lambda: make_classifier(ext).fit(X, y), args.repeats, clear_feature_cache
        )
        results["fit_images_per_s"] = args.n_images / fit_best
        results["fit_ratio_to_forward"] = args.n_images / fit_best / fwd
        print(
            f"fit (cold cache)      : {args.n_images / fit_best:10.1f} images/s "
            f"({args.n_images / fit_best / fwd:.2f} x forward)",
            flush=True,
        )
        grid_s, samples = time_grid(make_classifier(ext), X, y)
        results.update(
            grid_search_s=grid_s,
            single_fit_s=fit_best,
            grid_to_fit_ratio=grid_s / fit_best,
            grid_backbone_samples=samples,
        )
        print(
            f"grid search 10x5      : {grid_s:.2f} s = {grid_s / fit_best:.2f} x fit; "
            f"backbone saw {samples} images for {args.n_images}",
            flush=True,
        )
        copies = time_fold_copies(X, y)
        results.update(grid_fold_copies_s=copies, grid_fold_copies_to_fit_ratio=copies / fit_best)
        print(f"  of which sklearn's fold copies alone: {copies:.2f} s", flush=True)
        # The same search on LazyRows(X): folds are views, each row is keyed once; the
        # wrapper's private copy of X is timed with the search.
        lazy_s, samples = time_grid(make_classifier(ext), X, y, args.repeats, wrap=LazyRows)
        results.update(
            lazyrows_grid_search_s=lazy_s,
            lazyrows_grid_to_fit_ratio=lazy_s / fit_best,
            lazyrows_grid_backbone_samples=samples,
        )
        print(
            f"grid search on LazyRows(X): {lazy_s:.2f} s = {lazy_s / fit_best:.2f} x fit; "
            f"backbone saw {samples} images",
            flush=True,
        )
        # Small grey images in memory (Fashion-MNIST's 28 x 28), resized on the device: the
        # same forward passes, 1/192 of the host bytes to copy and hash per fold.
        Xg = rng.integers(0, 256, (args.n_images, 28, 28), dtype=np.uint8)
        results.update(time_route("grey28", "28 px grey arrays", ext, Xg, y, args.repeats))
        # The same search on features extracted once: GridSearchCV then indexes small
        # feature rows instead of copying (and re-hashing) images for each of its 51 fits;
        # as a tensor on the device, the folds are gathered there.
        for tag, as_tensor in (("grid_on_features", False), ("grid_on_device_features", True)):

            def extract_and_search(as_tensor=as_tensor):
                feats = ext.extract(X, as_tensor=as_tensor)
                grid = {"alpha": np.logspace(-3, 3, 10)}
                GridSearchCV(FAASTClassifier(), grid, cv=5).fit(feats, y)

            _, times = best_time(extract_and_search, args.repeats, clear_feature_cache)
            grid_s = float(np.median(times))
            results.update({f"{tag}_s": grid_s, f"{tag}_to_fit_ratio": grid_s / fit_best})
            print(f"extract + {tag}: {grid_s:.2f} s = {grid_s / fit_best:.2f} x fit", flush=True)
        if args.paths:
            # Image files: folds index a list of paths (cheap) and rows are keyed by path, size
            # and modification time, so the search should cost little more than one fit.
            with tempfile.TemporaryDirectory() as folder:
                paths = write_images(X, folder)
                results.update(time_route("paths", "files", ext, paths, y, args.repeats))

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device)
        if device.startswith("cuda")
        else platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "timm": __import__("timm").__version__,
        "numpy": np.__version__,
    }
    config = {k: v for k, v in vars(args).items() if k != "out"}
    config.update(
        resolved_device=device,
        resolved_precision=precision,
        model=backbone.description,
        n_features=backbone.n_features,
    )
    targets = {"extract_or_fit_ratio_to_forward_min": 0.9, "grid_to_fit_ratio_max": 1.5}
    payload = {
        "benchmark": "extraction",
        "machine": info,
        "config": config,
        "targets": targets,
        "results": results,
    }
    out = args.out or (
        Path(__file__).resolve().parent
        / "results"
        / f"extraction-{args.backbone}-{args.image_size}-{precision}-"
        f"{'cuda' if device.startswith('cuda') else 'cpu'}{'-smoke' if args.smoke else ''}.json"
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    return payload


if __name__ == "__main__":
    main()
