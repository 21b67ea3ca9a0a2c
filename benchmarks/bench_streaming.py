"""Streaming: FAAST ``partial_fit`` over a stream vs ``fit`` on everything vs the paper's
chunk averaging.

The support pool is fed in chunks of ``--chunk-size`` rows. Reported per method: accuracy on
the held-out split, total adaptation time, the bytes each method keeps between chunks (its
array/tensor attributes; for ``fit`` on everything, the rows it must hold), the peak of
NumPy allocations during adaptation (``tracemalloc``; torch CPU tensors are not traced) and,
on CUDA, ``torch.cuda.max_memory_allocated``. For FAAST, the relative difference between the
``partial_fit`` and the ``fit`` coefficients shows whether streaming is exact; for chunk
averaging, the difference from the one-shot solution of the same rule shows that it is not.

Examples
--------
Smoke on CPU (digits raw pixels, seconds)::

    python benchmarks/bench_streaming.py --smoke

Fashion-MNIST EfficientNet-Lite0 features at 64 px (cached by bench_fewshot)::

    HF_HUB_OFFLINE=1 python benchmarks/bench_streaming.py --dataset fashion_mnist \\
        --backbone efficientnet_lite0 --image-size 64 --chunk-size 1000
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _readers  # noqa: E402
from bench_fewshot import (  # noqa: E402
    drop_unavailable_faast,
    load_features,
    machine_info,
    write_results,
)

DEFAULT_METHODS = [
    "faast_fit",
    "faast_partial_fit",
    "faast_paper_fit",
    "faast_paper_partial_fit",
    "chunk_average",
    "inverse_ref_fit",
    "sgd_partial_fit",
]


def state_nbytes(obj, _depth=0, _seen=None) -> int:
    """Bytes of the NumPy arrays and torch tensors an object holds (attributes, 3 levels)."""
    import torch

    _seen = _seen if _seen is not None else set()
    if id(obj) in _seen or _depth > 3:
        return 0
    _seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if isinstance(obj, torch.Tensor):
        return int(obj.numel() * obj.element_size())
    if isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, list | tuple):
        items = obj
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        items = vars(obj).values()
    else:
        return 0
    return sum(state_nbytes(v, _depth + 1, _seen) for v in items)


def make(name, device, chunk_size, seed):
    from sklearn.linear_model import SGDClassifier

    if name.startswith("faast"):
        from faast_sklearn import FAASTClassifier

        if name.startswith("faast_paper"):
            return FAASTClassifier(alpha=0.0, rtol="paper", fit_intercept=False, device=device)
        return FAASTClassifier(device=device)
    if name == "chunk_average":
        return _readers.ChunkAverageReader(chunk_size, device=device)
    if name == "inverse_ref_fit":
        return _readers.ChunkAverageReader(None, device=device)
    if name == "sgd_partial_fit":
        return SGDClassifier(random_state=seed)
    raise SystemExit(f"unknown method {name!r}")


def _coef(est):
    if hasattr(est, "W_"):
        return est.W_.detach().cpu().numpy().T
    return np.asarray(est.coef_)


def run(name, Xs, ys, Xq, yq, chunk_size, device, seed):
    import torch

    is_cuda = str(_readers.resolve_device(device)).startswith("cuda")
    est = make(name, device, chunk_size, seed)
    classes = np.unique(ys)
    streaming = name.endswith("partial_fit") or name == "chunk_average"
    if is_cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    tracemalloc.start()
    t0 = time.perf_counter()
    kept = 0
    if streaming:
        for start in range(0, len(Xs), chunk_size):
            est.partial_fit(Xs[start : start + chunk_size], ys[start : start + chunk_size],
                            classes=classes)  # fmt: skip
            kept = max(kept, state_nbytes(est))
    else:
        est.fit(Xs, ys)
        kept = state_nbytes(est) + Xs.nbytes + ys.nbytes  # all rows held to solve
    if is_cuda:
        torch.cuda.synchronize()
    fit_s = time.perf_counter() - t0
    _, np_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    acc = float(np.mean(np.asarray(est.predict(Xq)) == yq))
    return est, {
        "method": name,
        "accuracy": acc,
        "fit_time_s": fit_s,
        "kept_bytes_max": int(kept),
        "numpy_peak_bytes": int(np_peak),
        "cuda_peak_bytes": int(torch.cuda.max_memory_allocated() - before) if is_cuda else None,
    }


def to_markdown(payload):
    m = payload["meta"]
    lines = [
        f"# Streaming: {m['dataset']} ({m['features']}, d={m['n_features']})",
        "",
        f"{m['n_support']:,} support rows in chunks of {m['chunk_size']:,}; "
        f"{m['n_query']:,} held-out rows; machine: {m['machine']['device']} "
        f"({m['machine'].get('gpu', m['machine']['platform'])}, {m['machine']['cpu_count']} CPUs); "
        f"{m['date']}.",
        "",
        "| method | accuracy (%) | adaptation (s) | kept between chunks (MiB) | NumPy peak (MiB) "
        "| CUDA peak (MiB) | rel. coef diff vs one-shot solve |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in payload["results"]:
        cuda = "—" if r["cuda_peak_bytes"] is None else f"{r['cuda_peak_bytes'] / 2**20:.3g}"
        diff = r.get("rel_coef_diff_vs_fit")
        lines.append(
            f"| {r['method']} | {100 * r['accuracy']:.2f} | {r['fit_time_s']:.3g} | "
            f"{r['kept_bytes_max'] / 2**20:.3g} | {r['numpy_peak_bytes'] / 2**20:.3g} | {cuda} | "
            + ("—" if diff is None else f"{diff:.2e}")
            + " |"
        )
    lines += [
        "",
        "- `*_fit`: one solve on all rows (they must all be in memory: counted in 'kept').",
        "- `faast*_partial_fit`: sufficient statistics, chunk by chunk; compared with `*_fit`.",
        "- `chunk_average`: the reference code's `W = W0 (1 - r) + W_chunk r`, `r = N_chunk / "
        "N_total`, `pinv(rtol=N_chunk**-0.8)` per chunk; compared with `inverse_ref_fit` (the "
        "same rule on all rows at once).",
        "- `sgd_partial_fit`: `SGDClassifier.partial_fit`, one pass over the stream.",
    ]
    if m.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(m["skipped"])]
    lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples", 1)[1],
    )
    p.add_argument("--dataset", default="fashion_mnist")
    p.add_argument("--backbone", default="efficientnet_lite0")
    p.add_argument("--features", default=None)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-normalize", action="store_true")
    p.add_argument("--chunk-size", type=int, default=1000)
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--smoke", action="store_true", help="digits raw pixels, chunks of 100")
    args = p.parse_args(argv)
    if args.smoke:
        args.dataset, args.backbone, args.features, args.chunk_size = "digits", "raw", None, 100
        args.out = args.out or str(
            Path(__file__).parent / "results/streaming-digits-raw-cpu-smoke.json"
        )
    args.out = args.out or str(
        Path(__file__).parent / f"results/streaming-{args.dataset}-{args.backbone}.json"
    )
    methods, skipped = drop_unavailable_faast(args.methods)
    Xs, ys, Xq, yq, desc = load_features(args)
    perm = np.random.default_rng(args.seed).permutation(len(Xs))  # a shuffled stream
    Xs, ys = Xs[perm], ys[perm]
    results, fitted = [], {}
    for name in methods:
        est, r = run(name, Xs, ys, Xq, yq, args.chunk_size, args.device, args.seed)
        fitted[name] = est
        results.append(r)
    pairs = {
        "faast_partial_fit": "faast_fit",
        "faast_paper_partial_fit": "faast_paper_fit",
        "chunk_average": "inverse_ref_fit",
    }
    for r in results:
        ref = pairs.get(r["method"])
        if ref in fitted:
            a, b = _coef(fitted[r["method"]]), _coef(fitted[ref])
            r["rel_coef_diff_vs_fit"] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    for r in results:
        diff = r.get("rel_coef_diff_vs_fit")
        print(f"{r['method']:24s} acc {100 * r['accuracy']:6.2f}  fit {r['fit_time_s']:8.3f} s  "
              f"kept {r['kept_bytes_max'] / 2**20:9.3f} MiB  np-peak "
              f"{r['numpy_peak_bytes'] / 2**20:8.2f} MiB"
              + ("" if diff is None else f"  rel-diff {diff:.2e}"))  # fmt: skip
    payload = {
        "meta": {
            "benchmark": "streaming",
            "dataset": args.dataset if not args.features else Path(args.features).name,
            "features": desc,
            "n_features": int(Xs.shape[1]),
            "n_support": int(len(Xs)),
            "n_query": int(len(Xq)),
            "chunk_size": args.chunk_size,
            "skipped": skipped,
            "machine": machine_info(args.device),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(
                ["bench_streaming.py", *(argv if argv is not None else sys.argv[1:])]
            ),
        },
        "results": results,
    }
    write_results(payload, args.out, to_markdown)
    return payload


if __name__ == "__main__":
    main()
