"""Images/s from a folder of real-size JPEG photographs, against the bare forward pass.

For each model (random weights: throughput does not depend on them), in one run on one card,
the same loaded network (``faast_sklearn.backbones.load_backbone``, channels-last where the
package uses it: convolutional nets on CUDA) throughout:

* ``forward_eager`` / ``forward_compiled[_<mode>]``: the network alone on a normalised float
  batch already on the device; ``torch.compile`` (the package's compiled module, as
  ``FeatureExtractor(compile=...)`` uses it) with its warm-up (the first call) timed apart
  (``compile_warmup[_<mode>]_s``) and excluded from the figure;
* ``timm_loader``: ``timm.data.create_loader`` over ``timm.data.ImageDataset(folder)`` with the
  model's eval transform (``resolve_data_config``), ``--workers`` worker processes, timm's
  device prefetcher, feeding the eager network;
* ``fit_folder`` / ``fit_folder_compiled``: ``FAASTClassifier(backbone=FeatureExtractor(...,
  compile=...)).fit(paths, y)`` end to end, cold feature cache (``clear_cache`` first; the
  compiled module survives it);
* ``fit_arrays_compiled``: the same fit from the folder's images decoded at the input size
  and held in memory as one uint8 (N, H, W, 3) array (the issue's in-memory arrays), compiled;
* ``decode_auto`` / ``decode_pil``: ``faast_sklearn.features._decode.iter_decoded`` (the
  default: nvJPEG for the plain JPEG files and the host threads for the rest, at once; or PIL
  in host threads into pinned memory), feeding the eager network; ``*_only``: the same without the network (the
  decoder's own ceiling).

bf16 autocast on CUDA (float32 on the CPU). Every figure is the best of ``--repeats`` passes
after one warm-up pass (the page cache then holds the files). Results are written after each
measurement (``<out-dir>/image-folder-<card>.json`` and ``.md``), so a run cut short still
leaves its figures; with ``--deadline`` (seconds from the start) later steps are skipped.

Examples
--------
CPU smoke (tiny timm test models, 8 files, < 1 minute)::

    python benchmarks/bench_image_folder.py --smoke

GPU: see ``benchmarks/gpu_issue16.sh``.
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

T0 = time.perf_counter()


def log(msg: str) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M:%S")
    print(f"[{stamp} +{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


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
    p.add_argument(
        "--extra-modes",
        nargs="*",
        default=[],
        help="torch.compile modes measured besides the default (bare forward only)",
    )
    p.add_argument("--no-fit", action="store_true")
    p.add_argument(
        "--steps",
        nargs="*",
        default=None,
        help="figures to measure (all by default; forward_eager always): forward_compiled, "
        "timm_loader, fit_folder, fit_folder_compiled, fit_arrays_compiled, "
        "decode_<auto|tensor|pil>[_only]; MODEL:STEP for one model only",
    )
    p.add_argument("--deadline", type=float, default=None, help="seconds; later steps skipped")
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


class Results:
    """The run's figures, written to JSON and Markdown after every measurement."""

    def __init__(self, results: dict, out_dir: str, stem: str, deadline: float | None):
        self.results, self.out_dir, self.stem, self.deadline = results, out_dir, stem, deadline

    def left(self) -> float:
        if self.deadline is None:
            return float("inf")
        return self.deadline - (time.perf_counter() - T0)

    def record(self, model: str, key: str, value: float) -> None:
        self.results["models"].setdefault(model, {})[key] = value
        log(f"{model} {key} = {value:,.3f}")
        self.save()

    def save(self) -> None:
        for res in self.results["models"].values():
            for key in [k for k in res if k.endswith("_ratio_to_eager")]:
                del res[key]
            if "forward_eager" in res:
                for key in [k for k in res if not k.endswith("_s") and k != "forward_eager"]:
                    res[f"{key}_ratio_to_eager"] = res[key] / res["forward_eager"]
        os.makedirs(self.out_dir, exist_ok=True)
        with open(os.path.join(self.out_dir, self.stem + ".json"), "w") as f:
            json.dump(self.results, f, indent=1)
        with open(os.path.join(self.out_dir, self.stem + ".md"), "w") as f:
            f.write(markdown(self.results))


def bench_model(torch, name, paths, y, folder, args, rec: Results):
    from faast_sklearn import FAASTClassifier, clear_cache
    from faast_sklearn.backbones import BackboneSpec
    from faast_sklearn.features import FeatureExtractor
    from faast_sklearn.features._forward import compiled_model, use_channels_last

    device, bs, n = args.device, args.batch_size, len(paths)

    def want(step: str) -> bool:
        return args.steps is None or step in args.steps or f"{name}:{step}" in args.steps

    cuda = device.startswith("cuda")
    precision = "bfloat16" if cuda else "float32"  # CPUs without AMX crawl in bf16

    def extractor(compile=False):
        return FeatureExtractor(
            BackboneSpec(f"timm:{name}"),
            pretrained=False,
            device=device,
            batch_size=bs,
            precision=precision,
            num_workers=args.workers,
            compile=compile,
        )

    backbone = extractor()._load(device)  # the process's loaded network, as fit uses it
    cfg = backbone.data_config
    channels_last = use_channels_last(backbone, device)
    rec.record(name, "channels_last", float(channels_last))
    x = torch.randn(bs, 3, *cfg["input_size"][1:], device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1)
    n_batches = max(1, n // bs)

    def forward(model, batch):
        if batch.dtype == torch.uint8:
            batch = (batch.float() / 255.0 - mean) / std
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with (
            torch.inference_mode(),
            torch.autocast(torch.device(device).type, torch.bfloat16, enabled=cuda),
        ):
            return model(batch)

    def bare(model):
        for _ in range(n_batches):
            forward(model, x)
        sync(torch, device)

    eager = backbone.model
    rec.record(name, "forward_eager", n_batches * bs / best_of(lambda: bare(eager), args.repeats))

    def compiled_forward(mode):
        suffix = "" if mode == "default" else "_" + mode.replace("-", "_")
        entry = compiled_model(backbone, device, mode)
        start = time.perf_counter()
        forward(entry["model"], x)
        sync(torch, device)
        if entry["warmup_s"] is None:
            entry["warmup_s"] = time.perf_counter() - start
        rec.record(name, f"compile_warmup{suffix}_s", entry["warmup_s"])
        rate = n_batches * bs / best_of(lambda m=entry["model"]: bare(m), args.repeats)
        rec.record(name, f"forward_compiled{suffix}", rate)

    if not args.no_compile and want("forward_compiled"):
        compiled_forward("default")

    if rec.left() > 60 and want("timm_loader"):
        from timm.data import ImageDataset, create_loader

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
                forward(eager, images.to(device, non_blocking=True))
            sync(torch, device)

        rec.record(name, "timm_loader", len(loader.dataset) / best_of(timm_pass, args.repeats))
        del loader

    if not args.no_fit:
        ext = extractor()

        def fit_folder(ext=ext):
            clear_cache()  # the features (and fits); compiled modules stay with the network
            FAASTClassifier(backbone=ext).fit(paths, y)

        if want("fit_folder"):
            rec.record(name, "fit_folder", n / best_of(fit_folder, args.repeats))
        compiled = None
        if not args.no_compile and rec.left() > 45 and want("fit_folder_compiled"):
            compiled = extractor(compile=True)
            rec.record(
                name, "fit_folder_compiled", n / best_of(lambda: fit_folder(compiled), args.repeats)
            )
        if not args.no_compile and rec.left() > 45 and want("fit_arrays_compiled"):
            compiled = compiled or extractor(compile=True)
            arrays = decoded_arrays(paths, cfg, args)
            rec.record(name, "arrays_decode_s", arrays[1])

            def fit_arrays():
                clear_cache()
                FAASTClassifier(backbone=compiled).fit(arrays[0], y)

            rate = n / best_of(fit_arrays, args.repeats)
            rec.record(name, "fit_arrays_compiled", rate)
            del arrays

    for backend in ("auto", "pil"):
        for model in (eager, None):
            key = f"decode_{backend}" + ("" if model is not None else "_only")
            if not want(key):
                continue
            if rec.left() < 40:
                log(f"{name}: skipping {key} (deadline)")
                continue

            def decode_pass(model=model, backend=backend):
                batches = iter_decoded(
                    paths, cfg, batch_size=bs, device=device, backend=backend,
                    num_workers=args.workers,
                )  # fmt: skip
                for batch in batches:
                    if model is not None:
                        forward(model, batch.images)
                sync(torch, device)

            rec.record(name, key, n / best_of(decode_pass, args.repeats))
    # The other compile modes are measured after every model.
    return compiled_forward if want("forward_compiled") else None


def decoded_arrays(paths, cfg, args):
    """The folder's images at the model's input size, as one uint8 (N, H, W, 3) array, and
    the seconds it took to make it (PIL, host threads)."""
    from faast_sklearn.features._decode import decode_images

    start = time.perf_counter()
    out = []
    for a in range(0, len(paths), 1024):
        batch = decode_images(paths[a : a + 1024], cfg, backend="pil", num_workers=args.workers)
        out.append(batch.images.permute(0, 2, 3, 1).contiguous().numpy())
    return np.concatenate(out), time.perf_counter() - start


TARGETS = [  # (model prefix, figure, against, at least)
    ("vit", "fit_folder", "forward_eager", 0.8),
    ("vit", "fit_folder", "timm_loader", 1.5),
    ("resnet", "fit_folder", "timm_loader", 1.5),
    ("vit", "forward_compiled", "forward_eager", 1.2),
    ("resnet", "forward_compiled", "forward_eager", 1.8),
    ("vit", "fit_arrays_compiled", "forward_compiled", 0.9),
    ("resnet", "fit_arrays_compiled", "forward_compiled", 0.9),
]


def markdown(results) -> str:
    rows = ["| model | path | images/s | x eager forward |", "|---|---|---:|---:|"]
    for name, res in results["models"].items():
        for key, value in res.items():
            if key.endswith(("_ratio_to_eager", "_s")) or key == "channels_last":
                continue
            ratio = res.get(f"{key}_ratio_to_eager", 1.0)
            rows.append(f"| {name} | {key} | {value:,.0f} | {ratio:.2f} |")
        for key, value in res.items():
            if key.startswith("compile_warmup") or key == "arrays_decode_s":
                rows.append(f"| {name} | {key} | {value:.1f} s | |")
    checks = ["", "| model | target | measured | met |", "|---|---|---:|---|"]
    for name, res in results["models"].items():
        for prefix, what, against, least in TARGETS:
            if name.startswith(prefix) and what in res and against in res:
                ratio = res[what] / res[against]
                met = "yes" if ratio >= least else "no"
                checks.append(f"| {name} | {what} >= {least} x {against} | {ratio:.2f} | {met} |")
    head = (
        f"# Image folder throughput, {results['card']}\n\n{results['n_images']} JPEG files "
        f"(mean {results['mean_file_kib']:.1f} KiB), batch {results['batch_size']}, "
        f"{results['precision']}, {results['workers']} host workers, torch {results['torch']}."
        "\n\n"
    )
    return head + "\n".join(rows + (checks if len(checks) > 3 else [])) + "\n"


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
        log(f"made {args.n_images} files in {time.perf_counter() - start:.1f} s")
    paths, y = load_image_folder(folder, return_X_y=True)
    paths, y = list(paths)[: args.n_images], np.asarray(y)[: args.n_images]
    results = {
        "card": card_name(torch, args.device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "n_images": len(paths),
        "mean_file_kib": float(np.mean([os.path.getsize(p) for p in paths]) / 1024),
        "batch_size": args.batch_size,
        "precision": "bfloat16" if args.device.startswith("cuda") else "float32",
        "workers": args.workers,
        "models": {},
    }
    stem = f"image-folder-{results['card']}" + ("-smoke" if args.smoke else "")
    rec = Results(results, args.out_dir, stem, args.deadline)
    more = {}
    for name in args.models:
        if rec.left() < 60:
            log(f"skipping {name} (deadline)")
            continue
        log(f"{name}: start")
        try:
            more[name] = bench_model(torch, name, paths, y, folder, args, rec)
        except Exception as exc:  # one model's failure leaves the other's figures
            results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
            log(f"{name}: FAILED {type(exc).__name__}: {exc}")
            if args.smoke:
                raise
        rec.save()
    for mode in [] if args.no_compile else args.extra_modes:
        for name, compiled_forward in more.items():
            if compiled_forward is None:
                continue
            if rec.left() < 120:
                log(f"{name}: skipping compile mode {mode} (deadline)")
                continue
            log(f"{name}: compile mode {mode}")
            try:
                compiled_forward(mode)
            except Exception as exc:
                results.setdefault("errors", {})[f"{name} {mode}"] = f"{type(exc).__name__}: {exc}"
                log(f"{name} {mode}: FAILED {type(exc).__name__}: {exc}")
    print(markdown(results), flush=True)
    if tmp is not None:
        tmp.cleanup()
    return results


if __name__ == "__main__":
    main()
