"""Images/s from a folder of real-size JPEG photographs, against the bare forward pass.

For each model (random weights: throughput does not depend on them), in one run on one card:

* ``forward_eager`` / ``forward_compiled``: the network alone on a normalised batch already on
  the device; ``torch.compile`` (default mode) with its warm-up (first call) timed apart
  (``compile_warmup_s``) and excluded from the figure;
* ``timm_loader``: ``timm.data.create_loader`` over ``timm.data.ImageDataset(folder)`` with the
  model's eval transform (``resolve_data_config``), one worker process per host core, timm's
  device prefetcher, feeding the eager model;
* ``decode_tensor`` / ``decode_pil``: ``faast_sklearn.features._decode.iter_decoded`` (nvJPEG
  decode + device resize, or PIL in host threads into pinned memory), feeding the eager model;
  ``*_only``: the same without the model (the decoder's own ceiling);
* ``fit``: ``FAASTClassifier(backbone=FeatureExtractor(...)).fit(paths, y)`` end to end, cold
  cache (the package's current path reader).

bf16 autocast on CUDA (float32 on the CPU), batch 256, ResNet-50 in channels-last memory. Every figure is the best of
``--repeats`` passes over the files, after one warm-up pass (the page cache then holds the
files, as it would for a folder read twice). Results: ``benchmarks/results/image-folder-<card>
.json`` and ``.md``.

Examples
--------
CPU smoke (tiny timm test models, 8 files, < 1 minute)::

    python benchmarks/bench_image_folder.py --smoke

GPU::

    python benchmarks/bench_image_folder.py --folder /tmp/photos --n-images 10240
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_photo_folder import make_photo_folder  # noqa: E402

from faast_sklearn.datasets import load_image_folder  # noqa: E402
from faast_sklearn.features._decode import iter_decoded  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default=None, help="class_name/xxx.jpg folder (made if absent)")
    p.add_argument("--n-images", type=int, default=10_240)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--models", nargs="+", default=["vit_base_patch16_224", "resnet50"])
    p.add_argument("--device", default="cuda")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--no-fit", action="store_true")
    p.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    p.add_argument("--smoke", action="store_true", help="CPU, tiny models, 8 files")
    args = p.parse_args(argv)
    if args.smoke:
        args.device, args.n_images, args.batch_size, args.repeats = "cpu", 8, 4, 1
        args.models, args.no_compile, args.workers = ["test_resnet", "test_vit"], True, 1
    return args


def card_name(torch, device: str) -> str:
    if not device.startswith("cuda"):
        return "cpu"
    name = torch.cuda.get_device_name(device).lower()
    found = re.search(r"\b([abhlv]\d{2,3}[a-z]?)\b", name)
    return found.group(1) if found else re.sub(r"\W+", "_", name)


def sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def best_of(fn, repeats):
    fn()  # warm-up pass
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


class Runner:
    """A model, its data config and a forward on uint8 or float device batches."""

    def __init__(self, torch, name, device, compiled=False):
        import timm
        from timm.data import resolve_data_config

        self.torch, self.device = torch, device
        model = timm.create_model(name, pretrained=False, num_classes=0).eval().to(device)
        self.channels_last = not name.startswith(("vit", "test_vit"))
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.cfg = resolve_data_config({}, model=model)
        self.model = torch.compile(model) if compiled else model
        self.mean = torch.tensor(self.cfg["mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(self.cfg["std"], device=device).view(1, 3, 1, 1)

    def forward(self, x):
        torch = self.torch
        if x.dtype == torch.uint8:
            x = (x.float() / 255.0 - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        cuda = self.device.startswith("cuda")  # bf16 on the GPU; CPUs without AMX crawl in it
        with (
            torch.inference_mode(),
            torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=cuda),
        ):
            return self.model(x)


def bench_model(torch, name, paths, y, folder, args):
    device, bs, n = args.device, args.batch_size, len(paths)
    out = {}
    eager = Runner(torch, name, device)
    x = torch.randn(bs, 3, *eager.cfg["input_size"][1:], device=device)
    n_batches = max(1, n // bs)

    def forward(runner):
        for _ in range(n_batches):
            runner.forward(x)
        sync(torch, device)

    out["forward_eager"] = n_batches * bs / best_of(lambda: forward(eager), args.repeats)
    if not args.no_compile:
        compiled = Runner(torch, name, device, compiled=True)
        start = time.perf_counter()
        compiled.forward(x)
        sync(torch, device)
        out["compile_warmup_s"] = time.perf_counter() - start
        out["forward_compiled"] = n_batches * bs / best_of(lambda: forward(compiled), 1)

    from timm.data import ImageDataset, create_loader

    cfg = eager.cfg
    cuda = device.startswith("cuda")
    loader = create_loader(
        ImageDataset(folder),
        input_size=cfg["input_size"],
        batch_size=bs,
        interpolation=cfg["interpolation"],
        mean=cfg["mean"],
        std=cfg["std"],
        crop_pct=cfg["crop_pct"],
        crop_mode=cfg["crop_mode"],
        num_workers=args.workers,
        pin_memory=cuda,
        use_prefetcher=cuda,
        device=torch.device(device),
        persistent_workers=True,
    )

    def timm_pass():
        for images, _ in loader:
            eager.forward(images.to(device, non_blocking=True))
        sync(torch, device)

    out["timm_loader"] = len(loader.dataset) / best_of(timm_pass, args.repeats)

    backends = ["tensor", "pil"] if cuda else ["pil"]
    for backend in backends:
        for model in (eager, None):

            def decode_pass(model=model, backend=backend):
                batches = iter_decoded(
                    paths, cfg, batch_size=bs, device=device, backend=backend,
                    num_workers=args.workers,
                )  # fmt: skip
                for batch in batches:
                    if model is not None:
                        model.forward(batch.images)
                sync(torch, device)

            key = f"decode_{backend}" + ("" if model is not None else "_only")
            out[key] = n / best_of(decode_pass, args.repeats)

    if not args.no_fit:
        from faast_sklearn import FAASTClassifier, clear_cache
        from faast_sklearn.backbones import BackboneSpec
        from faast_sklearn.features import FeatureExtractor

        ext = FeatureExtractor(
            BackboneSpec(f"timm:{name}"),
            pretrained=False,
            device=device,
            batch_size=bs,
            precision="bfloat16" if cuda else "float32",
        )

        def fit():
            clear_cache()  # the one cache: features and fits alike
            FAASTClassifier(backbone=ext).fit(paths, y)

        out["fit"] = n / best_of(fit, 1)
    for key in list(out):
        if key in ("forward_eager", "compile_warmup_s"):
            continue
        if not key.endswith("_s"):
            out[f"{key}_ratio_to_eager"] = out[key] / out["forward_eager"]
    return out


def markdown(results) -> str:
    rows = ["| model | path | images/s | x eager forward |", "|---|---|---:|---:|"]
    for name, res in results["models"].items():
        for key, value in res.items():
            if key.endswith(("_ratio_to_eager", "_s")):
                continue
            ratio = res.get(f"{key}_ratio_to_eager", 1.0)
            rows.append(f"| {name} | {key} | {value:,.0f} | {ratio:.2f} |")
        if "compile_warmup_s" in res:
            rows.append(f"| {name} | compile warm-up | {res['compile_warmup_s']:.1f} s | |")
    head = (
        f"# Image folder throughput, {results['card']}\n\n{results['n_images']} JPEG files "
        f"(mean {results['mean_file_kib']:.1f} KiB), batch {results['batch_size']}, bf16, "
        f"{results['workers']} host workers.\n\n"
    )
    return head + "\n".join(rows) + "\n"


def main(argv=None):
    import torch

    args = parse_args(argv)
    tmp = None
    folder = args.folder
    if folder is None or not os.path.isdir(folder):
        if folder is None:
            tmp = tempfile.TemporaryDirectory()
            folder = tmp.name
        start = time.perf_counter()
        make_photo_folder(folder, args.n_images, n_jobs=args.workers)
        print(f"made {args.n_images} files in {time.perf_counter() - start:.1f} s", flush=True)
    paths, y = load_image_folder(folder, return_X_y=True)
    results = {
        "card": card_name(torch, args.device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "n_images": len(paths),
        "mean_file_kib": float(np.mean([os.path.getsize(p) for p in paths]) / 1024),
        "batch_size": args.batch_size,
        "workers": args.workers,
        "models": {},
    }
    for name in args.models:
        res = bench_model(torch, name, list(paths), y, folder, args)
        results["models"][name] = res
        print(name, json.dumps(res, indent=1), flush=True)
    os.makedirs(args.out_dir, exist_ok=True)
    stem = f"image-folder-{results['card']}" + ("-smoke" if args.smoke else "")
    with open(os.path.join(args.out_dir, stem + ".json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out_dir, stem + ".md"), "w") as f:
        f.write(markdown(results))
    print(markdown(results))
    if tmp is not None:
        tmp.cleanup()
    return results


if __name__ == "__main__":
    main()
