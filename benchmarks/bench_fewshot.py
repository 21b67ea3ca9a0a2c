"""Few-shot episodes in the paper's style: FAAST against the paper's readers and the peers.

All classes per episode; ``k`` support rows per class from the training split, ``--n-query``
queries per class from the held-out split; every method sees the same episodes. Reports mean
accuracy with a 95% CI, median adaptation (fit) time and inference time per query row.

Examples
--------
Smoke run on CPU (digits raw pixels, under a minute)::

    python benchmarks/bench_fewshot.py --smoke

Fashion-MNIST through the offline EfficientNet-Lite0 at 64 px, features cached in
``benchmarks/.cache``::

    HF_HUB_OFFLINE=1 python benchmarks/bench_fewshot.py --dataset fashion_mnist \\
        --backbone efficientnet_lite0 --image-size 64 --episodes 100 \\
        --out benchmarks/results/fewshot-fashion_mnist-effnetlite0-64px-cpu.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _data  # noqa: E402
import _episodes  # noqa: E402
import _plots  # noqa: E402
import _readers  # noqa: E402

DEFAULT_METHODS = [
    "faast",
    "faast_paper",
    "inverse_ref",
    "knn",
    "softmax_attention",
    "linear_attention",
    "probe_sgd20",
    "probe_adam",
    "logreg",
    "ridge_cv",
    "sgd_partial_fit",
]


class SGDOnePass:
    """``SGDClassifier.partial_fit``: one pass over the support set (classes given up front)."""

    def __init__(self, random_state=0):
        self.random_state = random_state

    def fit(self, X, y):
        from sklearn.linear_model import SGDClassifier

        self.est_ = SGDClassifier(random_state=self.random_state)
        self.est_.partial_fit(X, y, classes=np.unique(y))
        self.coef_, self.intercept_ = self.est_.coef_, self.est_.intercept_
        return self

    def predict(self, X):
        return self.est_.predict(X)


def drop_unavailable_faast(methods) -> tuple[list[str], list[str]]:
    """``methods`` without the FAAST ones if ``faast_sklearn`` does not import, and what was
    skipped and why (also printed as a warning)."""
    try:
        from faast_sklearn import FAASTClassifier  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        why = f"{type(exc).__name__}: {exc}"
        skipped = [f"{m} (faast_sklearn unavailable: {why})" for m in methods if "faast" in m]
        if skipped:
            print("WARNING: skipping", "; ".join(skipped), file=sys.stderr)
        return [m for m in methods if "faast" not in m], skipped
    return list(methods), []


def method_factories(names, device="auto", seed=0):
    """``{name: zero-argument factory}`` for the requested method names."""
    from sklearn.linear_model import LogisticRegression, RidgeClassifierCV

    def faast(**kw):
        from faast_sklearn import FAASTClassifier

        return lambda: FAASTClassifier(device=device, **kw)

    table = {
        "faast": lambda: faast()(),
        "faast_paper": lambda: faast(alpha=0.0, rtol="paper", fit_intercept=False)(),
        "inverse_ref": lambda: _readers.ChunkAverageReader(device=device),
        "knn": lambda: _readers.KNNReader(device=device),
        "softmax_attention": lambda: _readers.SoftmaxAttentionReader(device=device),
        "linear_attention": lambda: _readers.LinearAttentionReader(device=device),
        "probe_sgd20": lambda: _readers.SGDProbe(device=device, random_state=seed),
        "probe_adam": lambda: _readers.AdamProbe(device=device, random_state=seed),
        "logreg": lambda: LogisticRegression(max_iter=5000),
        "ridge_cv": lambda: RidgeClassifierCV(),
        "sgd_partial_fit": lambda: SGDOnePass(random_state=seed),
    }
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {sorted(table)}")
    return {n: table[n] for n in names}


METHOD_NOTES = {
    "faast": "FAASTClassifier() defaults (alpha='auto': exact leave-one-out squared error over a grid)",
    "faast_paper": "FAASTClassifier(alpha=0.0, rtol='paper', fit_intercept=False)",
    "inverse_ref": "benchmark's own pinv(K, rtol=N**-0.8) @ V (reference for faast_paper)",
    "knn": "Euclidean kNN, k=min(10, shots), majority vote",
    "softmax_attention": "softmax(x K^T / 0.01) V on L2-normalised features",
    "linear_attention": "elu+1 linear attention, centred, L2-normalised",
    "probe_sgd20": "linear layer (no bias), SGD lr 0.1 momentum 0.9 batch 16, 20 epochs, step decay",
    "probe_adam": "linear layer, Adam lr 0.1 wd 1e-4, full batch, 300 epochs",
    "logreg": "LogisticRegression(max_iter=5000), default C",
    "ridge_cv": "RidgeClassifierCV() default alphas (0.1, 1, 10)",
    "sgd_partial_fit": "SGDClassifier().partial_fit, one pass",
}


def load_features(args):
    """Float32 support/query features and labels for the run, plus a description; rows are
    L2-normalised (as the paper's keys) unless ``--no-normalize``."""
    Xs, ys, Xq, yq, desc = _raw_features(args)
    Xs, Xq = np.asarray(Xs, dtype=np.float32), np.asarray(Xq, dtype=np.float32)
    if not args.no_normalize:
        Xs = Xs / np.maximum(np.linalg.norm(Xs, axis=1, keepdims=True), 1e-12)
        Xq = Xq / np.maximum(np.linalg.norm(Xq, axis=1, keepdims=True), 1e-12)
        desc += ", L2-normalised"
    return Xs, ys, Xq, yq, desc


def _raw_features(args):
    if args.features:
        z = np.load(args.features, allow_pickle=False)
        desc = f"precomputed {args.features}"
        return z["X_support"], z["y_support"], z["X_query"], z["y_query"], desc
    ds = _data.load_dataset(args.dataset, seed=args.seed)
    if args.backbone == "raw":
        if ds["kind"] != "image":
            raise SystemExit("--backbone raw only works for image data sets")
        return ds["raw_support"], ds["y_support"], ds["raw_query"], ds["y_query"], "raw pixels"
    kw = dict(image_size=args.image_size, device=args.device, cache_dir=args.cache_dir,
              pretrained=not getattr(args, "random_weights", False))  # fmt: skip
    Xs = _data.cached_features(ds, "support", args.backbone, **kw)
    Xq = _data.cached_features(ds, "query", args.backbone, **kw)
    size = f" at {args.image_size} px" if ds["kind"] == "image" else ""
    size += " (random weights: timing only)" if not kw["pretrained"] else ""
    return Xs, ds["y_support"], Xq, ds["y_query"], f"{args.backbone}{size}"


def write_results(payload, out, to_markdown, plot=None, quiet=False):
    """Write ``payload`` as JSON at ``out``, its markdown table beside it and, with ``plot``,
    its PNG (where matplotlib is installed); returns the JSON path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    written = [out, out.with_suffix(".md")]
    out.with_suffix(".md").write_text(to_markdown(payload))
    png = plot(payload, out.with_suffix(".png")) if plot is not None else None
    if not quiet:
        print("wrote " + ", ".join(map(str, [*written, *([png] if png else [])])), flush=True)
    return out


def machine_info(device):
    import sklearn
    import torch

    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "device": str(_readers.resolve_device(device)),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def to_markdown(payload) -> str:
    res = payload["results"]
    methods = list(dict.fromkeys(r["method"] for r in res))
    shots = sorted({r["shots"] for r in res})
    by = {(r["method"], r["shots"]): r for r in res}
    m = payload["meta"]
    lines = [
        f"# Few-shot: {m['dataset']} ({m['features']}, d={m['n_features']})",
        "",
        f"{m['episodes']} episodes per shot count, all {m['n_classes']} classes, "
        f"{m['n_query']} queries per class; machine: {m['machine']['device']} "
        f"({m['machine'].get('gpu', m['machine']['platform'])}, {m['machine']['cpu_count']} "
        f"CPUs); {m['date']}.",
        "",
        "## Accuracy (%), mean ± 95% CI",
        "",
        "| method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
        "|---|" + "---:|" * len(shots),
    ]
    for meth in methods:
        cells = []
        for k in shots:
            r = by.get((meth, k))
            if r is None or not np.isfinite(r["acc_mean"]):
                cells.append("—")
            else:
                cells.append(f"{100 * r['acc_mean']:.1f} ± {100 * r['acc_ci95']:.1f}")
        lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    for title, key, scale, unit in (
        ("Adaptation (fit) time, median", "fit_time_median_s", 1e3, "ms"),
        ("Inference time per query row, median", "predict_time_per_sample_s", 1e6, "µs"),
    ):
        lines += ["", f"## {title} ({unit})", "",
                  "| method | " + " | ".join(f"{k}-shot" for k in shots) + " |",
                  "|---|" + "---:|" * len(shots)]  # fmt: skip
        for meth in methods:
            cells = []
            for k in shots:
                r = by.get((meth, k))
                ok = r is not None and np.isfinite(r[key])
                cells.append(f"{scale * r[key]:.3g}" if ok else "—")
            lines.append(f"| {meth} | " + " | ".join(cells) + " |")
    lines += ["", "## Methods", ""]
    lines += [f"- `{k}`: {METHOD_NOTES.get(k, '')}" for k in methods]
    errs = [(r["method"], r["shots"], e) for r in res for e in r.get("errors", [])]
    if payload["meta"].get("skipped"):
        lines += ["", "Skipped: " + "; ".join(payload["meta"]["skipped"])]
    if errs:
        lines += ["", "## Errors (first per method and shot count)", ""]
        lines += [f"- {m_} {k}-shot: {e}" for m_, k, e in errs]
    lines.append("")
    return "\n".join(lines)


def plot(payload, path):
    plt = _plots.pyplot()
    if plt is None:
        return None
    res = payload["results"]
    methods = list(dict.fromkeys(r["method"] for r in res))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for meth in methods:
        rs = sorted((r for r in res if r["method"] == meth and np.isfinite(r["acc_mean"])),
                    key=lambda r: r["shots"])  # fmt: skip
        if not rs:
            continue
        k = [r["shots"] for r in rs]
        style = "-o" if meth.startswith("faast") else "--."
        axes[0].errorbar(k, [100 * r["acc_mean"] for r in rs],
                         yerr=[100 * r["acc_ci95"] for r in rs], fmt=style, label=meth,
                         capsize=2)  # fmt: skip
        axes[1].plot(k, [1e3 * r["fit_time_median_s"] for r in rs], style, label=meth)
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("examples per class")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (%)")
    axes[1].set_ylabel("adaptation time (ms, median)")
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7, ncol=2)
    m = payload["meta"]
    fig.suptitle(f"{m['dataset']} — {m['features']} — {m['machine']['device']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Examples", 1)[1])  # fmt: skip
    p.add_argument("--dataset", default="fashion_mnist", choices=sorted(_data.DATASETS))
    p.add_argument("--backbone", default="efficientnet_lite0",
                   help="feature extractor backbone name, or 'raw' for flattened pixels")  # fmt: skip
    p.add_argument("--features", help="precomputed .npz with X_support/y_support/X_query/y_query")
    p.add_argument("--image-size", type=int, default=64, help="px fed to the backbone")
    p.add_argument("--random-weights", action="store_true",
                   help="backbone with random weights: for timing runs (e.g. vit_base offline)")  # fmt: skip
    p.add_argument("--cache-dir", default=None, help="feature cache (default benchmarks/.cache)")
    p.add_argument("--no-normalize", action="store_true",
                   help="do not L2-normalise features (default: normalise, as the paper's keys)")  # fmt: skip
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5, 16, 64, 256])
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--n-query", type=int, default=20, help="queries per class per episode")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--device", default="auto", help="torch device for torch-based methods")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path; .md and .png are written beside it")
    p.add_argument("--smoke", action="store_true",
                   help="digits raw pixels, 1/5/16 shots, 20 episodes: under a minute on CPU")  # fmt: skip
    p.add_argument("--verbose", type=int, default=1)
    args = p.parse_args(argv)
    if args.smoke:
        args.dataset, args.backbone, args.features = "digits", "raw", None
        args.shots, args.episodes = [1, 5, 16], 20
        args.out = args.out or str(
            Path(__file__).parent / "results/fewshot-digits-raw-cpu-smoke.json"
        )
    if args.out is None:
        tag = Path(args.features).stem if args.features else f"{args.dataset}-{args.backbone}"
        args.out = str(Path(__file__).parent / f"results/fewshot-{tag}.json")

    methods, skipped = drop_unavailable_faast(args.methods)
    Xs, ys, Xq, yq, desc = load_features(args)
    factories = method_factories(methods, args.device, args.seed)
    sync = str(_readers.resolve_device(args.device))
    min_pool = int(np.bincount(np.unique(ys, return_inverse=True)[1]).min())
    results = []
    t_start = time.perf_counter()

    def payload():
        return {
            "meta": {
                "benchmark": "fewshot",
                "dataset": args.dataset if not args.features else Path(args.features).name,
                "features": desc,
                "n_features": int(Xs.shape[1]),
                "n_classes": int(len(np.unique(ys))),
                "episodes": args.episodes,
                "n_query": args.n_query,
                "seed": args.seed,
                "methods": {m: METHOD_NOTES.get(m, "") for m in methods},
                "skipped": skipped,
                "machine": machine_info(args.device),
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
                "wall_s": round(time.perf_counter() - t_start, 1),
            },
            "results": results,
        }

    for k in args.shots:
        if k > min_pool:
            skipped.append(f"{k}-shot (smallest class has {min_pool} support rows)")
            print(f"skip {k}-shot: smallest class has {min_pool} rows", file=sys.stderr)
            continue
        t0 = time.perf_counter()
        res = _episodes.run_episodes(factories, Xs, ys, Xq, yq, shots=k, episodes=args.episodes,
                                     n_query=args.n_query, seed=args.seed, sync_device=sync,
                                     verbose=args.verbose > 1)  # fmt: skip
        for name, r in res.items():
            results.append({"method": name, **r})
            if args.verbose:
                print(f"{k:4d}-shot {name:18s} acc {100 * r['acc_mean']:5.1f} ± "
                      f"{100 * r['acc_ci95']:.1f}  fit {1e3 * r['fit_time_median_s']:8.2f} ms  "
                      f"pred {1e6 * r['predict_time_per_sample_s']:7.2f} µs/row"
                      + (f"  ERR {r['errors'][0]}" if r["errors"] else ""), flush=True)  # fmt: skip
        if args.verbose:
            print(f"  ({time.perf_counter() - t0:.1f} s for {k}-shot)", flush=True)
        # Written after every shot count: a run cut short keeps the shot counts it finished.
        write_results(payload(), args.out, to_markdown, quiet=True)
    final = payload()
    write_results(final, args.out, to_markdown, plot)
    return final


if __name__ == "__main__":
    main()
