"""Inference time and inference memory as the support set grows (FAAST vs cache readers).

What must be kept to predict: FAAST keeps ``coef_`` (and ``intercept_``), ``d x C`` numbers
whatever the number of support rows ``N``; kNN and the softmax-attention cache keep every key
and value (``N x d`` + ``N x C``); linear attention keeps ``d x C`` + ``d``. We report the
actual bytes of those arrays/tensors, the median inference time per query row and, on CUDA,
the peak memory allocated during ``predict`` (``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats``, minus what was allocated before).

The support features are synthetic (Gaussian class clusters in ``d`` dimensions): memory and
time depend only on the shapes, not on the values. Accuracy is not measured here.

Examples
--------
CPU smoke (1e3..1e5 rows, d=256, under a minute)::

    python benchmarks/bench_memory.py --smoke

GPU, ViT-B/16-sized features, 1e3..1e6 rows::

    python benchmarks/bench_memory.py --device cuda --dim 768 --classes 100 \\
        --sizes 1000 10000 50000 100000 1000000 \\
        --out benchmarks/results/memory-d768-h100.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _plots  # noqa: E402
import _readers  # noqa: E402
from bench_fewshot import drop_unavailable_faast, machine_info, write_results  # noqa: E402

DEFAULT_METHODS = ["faast", "knn", "softmax_attention", "linear_attention"]


def make_method(name, device, n_rows):
    # keep each query block's N x block score matrix near 2e7 floats (80 MB)
    block = int(max(16, min(4096, 2e7 // max(1, n_rows))))
    if name == "faast":
        from faast_sklearn import FAASTClassifier

        return FAASTClassifier(device=device)
    if name == "faast_paper":
        from faast_sklearn import FAASTClassifier

        return FAASTClassifier(alpha=0.0, rtol="paper", fit_intercept=False, device=device)
    if name == "knn":
        return _readers.KNNReader(device=device, batch_size=block)
    if name == "softmax_attention":
        return _readers.SoftmaxAttentionReader(device=device, batch_size=block)
    if name == "linear_attention":
        return _readers.LinearAttentionReader(device=device)
    if name == "probe_adam":
        return _readers.AdamProbe(device=device)
    raise SystemExit(f"unknown method {name!r}")


def synthetic(n, d, c, seed):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(c, d)).astype(np.float32)
    y = np.arange(n) % c
    X = centers[y]
    X += rng.standard_normal(size=(n, d), dtype=np.float32) * 2.0
    return X, y


def measure(name, device, X, y, Xq, repeats):
    import torch

    est = make_method(name, device, len(X))
    is_cuda = str(_readers.resolve_device(device)).startswith("cuda")
    t0 = time.perf_counter()
    est.fit(X, y)
    if is_cuda:
        torch.cuda.synchronize()
    fit_s = time.perf_counter() - t0
    est.predict(Xq[:32])  # warm-up
    times = []
    peak = None
    for _ in range(repeats):
        if is_cuda:
            torch.cuda.synchronize()
            before = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        est.predict(Xq)
        if is_cuda:
            torch.cuda.synchronize()
            peak = max(peak or 0, torch.cuda.max_memory_allocated() - before)
        times.append(time.perf_counter() - t0)
    return {
        "method": name,
        "fit_time_s": fit_s,
        "predict_time_per_sample_s": float(np.median(times)) / len(Xq),
        "inference_state_bytes": _readers.inference_nbytes(est),
        "cuda_predict_peak_extra_bytes": peak,
        "cuda_resident_bytes": torch.cuda.memory_allocated() if is_cuda else None,
    }


def to_markdown(payload):
    m = payload["meta"]
    res = payload["results"]
    methods = list(dict.fromkeys(r["method"] for r in res))
    sizes = sorted({r["n_rows"] for r in res})
    by = {(r["method"], r["n_rows"]): r for r in res}
    hdr = "| method | " + " | ".join(f"N={n:,}" for n in sizes) + " |"
    sep = "|---|" + "---:|" * len(sizes)
    lines = [
        f"# Inference memory and time vs support-set size (d={m['dim']}, {m['classes']} classes)",
        "",
        f"Synthetic features (shapes are what matter); {m['n_query']} query rows; "
        f"machine: {m['machine']['device']} ({m['machine'].get('gpu', m['machine']['platform'])}, "
        f"{m['machine']['cpu_count']} CPUs); {m['date']}.",
    ]

    def table(title, fn):
        nonlocal lines
        lines += ["", f"## {title}", "", hdr, sep]
        for meth in methods:
            cells = [fn(by[(meth, n)]) if (meth, n) in by else "—" for n in sizes]
            lines.append(f"| {meth} | " + " | ".join(cells) + " |")

    def mib(b):
        return "—" if b is None else f"{b / 2**20:.3g}"

    table(
        "Inference state (MiB): what must be kept to predict",
        lambda r: mib(r["inference_state_bytes"]),
    )
    table(
        "Inference time per query row (µs, median)",
        lambda r: f"{1e6 * r['predict_time_per_sample_s']:.3g}",
    )
    table("Adaptation (fit) time (s)", lambda r: f"{r['fit_time_s']:.3g}")
    if any(r["cuda_predict_peak_extra_bytes"] is not None for r in res):
        table(
            "CUDA peak extra memory during predict (MiB)",
            lambda r: mib(r["cuda_predict_peak_extra_bytes"]),
        )
    if "faast" in methods:
        lines += ["", "## FAAST inference state as a share of each cache's", ""]
        for meth in methods:
            if meth == "faast":
                continue
            cells = []
            for n in sizes:
                a, b = by.get(("faast", n)), by.get((meth, n))
                ok = a and b and b["inference_state_bytes"]
                cells.append(
                    f"{100 * a['inference_state_bytes'] / b['inference_state_bytes']:.3g}%"
                    if ok
                    else "—"
                )
            lines.append(
                f"- vs {meth}: "
                + ", ".join(f"N={n:,}: {c}" for n, c in zip(sizes, cells, strict=True))
            )
    if m.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(m["skipped"])]
    if m.get("notes"):
        lines += ["", "Notes:", "", *(f"- {note}" for note in m["notes"])]
    lines.append("")
    return "\n".join(lines)


def plot(payload, path):
    """Inference state, adaptation time and inference time per row against N."""
    res = payload["results"]
    methods = list(dict.fromkeys(r["method"] for r in res))

    def series(key, scale):
        out = {}
        for meth in methods:
            rs = sorted((r for r in res if r["method"] == meth), key=lambda r: r["n_rows"])
            out[meth] = ([r["n_rows"] for r in rs], [scale * r[key] for r in rs])
        return out

    m = payload["meta"]
    machine = m["machine"].get("gpu", m["machine"]["device"])
    return _plots.loglog_panels(
        [
            (
                "what must be kept to predict",
                "support rows N",
                "MiB",
                series("inference_state_bytes", 2**-20),
            ),
            ("adaptation (fit) time", "support rows N", "s", series("fit_time_s", 1.0)),
            (
                "inference time per query row",
                "support rows N",
                "µs",
                series("predict_time_per_sample_s", 1e6),
            ),
        ],  # fmt: skip
        f"d={m['dim']}, {m['classes']} classes — {machine}",
        path,
    )


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples", 1)[1],
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000, 100000, 1000000])
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--n-query", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--smoke", action="store_true", help="CPU: d=256, 10 classes, 1e3..1e5 rows")
    p.add_argument(
        "--replot", metavar="JSON", help="only redraw the table and plot of a results file"
    )
    args = p.parse_args(argv)
    if args.replot:
        payload = json.loads(Path(args.replot).read_text())
        write_results(payload, args.replot, to_markdown, plot)
        return payload
    if args.smoke:
        args.sizes, args.dim, args.classes, args.repeats = [1000, 10000, 50000, 100000], 256, 10, 3
        args.n_query = 1000
        args.out = args.out or str(Path(__file__).parent / "results/memory-d256-cpu-smoke.json")
    args.out = args.out or str(Path(__file__).parent / f"results/memory-d{args.dim}.json")
    methods, skipped = drop_unavailable_faast(args.methods)
    results = []
    Xq, _ = synthetic(args.n_query, args.dim, args.classes, args.seed + 1)
    for name in methods:  # warm-up: lazy imports, CUDA context and solver libraries
        measure(name, args.device, *synthetic(200, args.dim, args.classes, args.seed), Xq[:64], 1)
    for n in args.sizes:
        X, y = synthetic(n, args.dim, args.classes, args.seed)
        for name in methods:
            r = measure(name, args.device, X, y, Xq, args.repeats)
            r["n_rows"] = n
            results.append(r)
            print(f"N={n:>8,} {name:18s} state {r['inference_state_bytes'] / 2**20:9.3f} MiB  "
                  f"pred {1e6 * r['predict_time_per_sample_s']:9.2f} µs/row  fit {r['fit_time_s']:.3f} s",
                  flush=True)  # fmt: skip
        del X, y
    payload = {
        "meta": {
            "benchmark": "memory",
            "dim": args.dim,
            "classes": args.classes,
            "n_query": args.n_query,
            "features": "synthetic Gaussian clusters, float32",
            "skipped": skipped,
            "machine": machine_info(args.device),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": " ".join(["bench_memory.py", *(argv if argv is not None else sys.argv[1:])]),
        },
        "results": results,
    }
    write_results(payload, args.out, to_markdown, plot)
    return payload


if __name__ == "__main__":
    main()
