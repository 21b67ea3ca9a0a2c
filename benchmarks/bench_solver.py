"""Fit / predict time and peak memory of the fast-weight solve against scikit-learn.

Side by side in one run, on the same synthetic features (class-structured Gaussian features,
so accuracies are comparable): FAASTClassifier (scipy solver on NumPy; torch solver on the GPU
when there is one), scikit-learn's RidgeClassifierCV (13 alphas, the peer of the default
GCV search), Ridge (one alpha) and LinearRegression (the truncated pinv's peer), all on float32.
Also: streaming N rows through partial_fit in batches, whose peak memory must not grow with N.

Examples
--------
CPU smoke run (a minute)::

    python benchmarks/bench_solver.py --smoke

The issue's GPU point (an H100/H200)::

    python benchmarks/bench_solver.py --n 1000000 --d 768 --classes 1000 --skip-sklearn-above 2e5

Results go to ``benchmarks/results/solver-<tag>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from sklearn.linear_model import LinearRegression, Ridge, RidgeClassifierCV

from faast_sklearn import FAASTClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _plots  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SK_ALPHAS = np.logspace(-3, 3, 13)


def make_data(n, d, n_classes, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d)).astype(np.float32)
    y = rng.integers(0, n_classes, size=n)
    X = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, 65536):  # build in blocks: bounded temporary memory
        stop = min(n, start + 65536)
        X[start:stop] = centers[y[start:stop]] * 0.3 + rng.standard_normal(
            (stop - start, d), dtype=np.float32
        )
    return X, y


def timed(fn, repeat, sync=None):
    """Median wall time of ``fn`` over ``repeat`` runs and host peak memory (tracemalloc)."""
    times, peak = [], 0
    for _ in range(repeat):
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        out = fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return float(np.median(times)), peak, out


def one_hot_pm(y, n_classes):
    Y = -np.ones((len(y), n_classes), dtype=np.float32)
    Y[np.arange(len(y)), y] = 1.0
    return Y


def bench_point(n, d, n_classes, repeat, device, sklearn_ok, sk_methods, n_test=10000):
    X, y = make_data(n + n_test, d, n_classes)
    Xtr, ytr, Xte, yte = X[:n], y[:n], X[n:], y[n:]
    rows = []

    def record(method, fit_s, fit_mem, predict_s, acc, note=""):
        rows.append(
            dict(
                n=n,
                d=d,
                classes=n_classes,
                method=method,
                fit_s=fit_s,
                fit_peak_host_mb=fit_mem / 2**20,
                predict_s=predict_s,
                accuracy=acc,
                note=note,
            )
        )
        print(json.dumps(rows[-1]), flush=True)  # progress, and a record if the run is cut

    est = FAASTClassifier(solver="scipy")
    t, mem, est = timed(lambda: est.fit(Xtr, ytr), repeat)
    tp, _, pred = timed(lambda: est.predict(Xte), repeat)
    record("faast[scipy,cpu]", t, mem, tp, float((pred == yte).mean()), f"alpha_={est.alpha_:.3g}")

    if device is not None:
        import torch

        sync = torch.cuda.synchronize
        est = FAASTClassifier(solver="torch", device=device)
        est.fit(Xtr[:2000], ytr[:2000])  # warm-up: CUDA context, cuBLAS/cuSOLVER handles
        t, mem, est = timed(lambda: est.fit(Xtr, ytr), repeat, sync)
        tp, _, pred = timed(lambda: est.predict(Xte), repeat, sync)
        record(f"faast[torch,{device}] numpy in", t, mem, tp, float((pred == yte).mean()))
        Xg = torch.from_numpy(Xtr).to(device)
        Xteg = torch.from_numpy(Xte).to(device)
        torch.cuda.reset_peak_memory_stats()
        t, mem, est = timed(lambda: est.fit(Xg, ytr), repeat, sync)
        gpu_peak = torch.cuda.max_memory_allocated() / 2**20
        tp, _, pred = timed(lambda: est.predict(Xteg), repeat, sync)
        record(
            f"faast[torch,{device}] tensor in",
            t,
            mem,
            tp,
            float((pred == yte).mean()),
            f"gpu peak {gpu_peak:.0f} MB (X itself {Xg.nbytes / 2**20:.0f} MB)",
        )
        del Xg, Xteg

    if sklearn_ok and "RidgeClassifierCV" in sk_methods:
        ref = RidgeClassifierCV(alphas=SK_ALPHAS)
        t, mem, ref = timed(lambda: ref.fit(Xtr, ytr), repeat)
        tp, _, pred = timed(lambda: ref.predict(Xte), repeat)
        record(
            "RidgeClassifierCV(13 alphas)",
            t,
            mem,
            tp,
            float((pred == yte).mean()),
            f"alpha_={ref.alpha_:.3g}",
        )
        del ref
    Y = one_hot_pm(ytr, n_classes) if sklearn_ok else None
    if sklearn_ok and "Ridge" in sk_methods:
        ridge = Ridge(alpha=1.0)
        t, mem, ridge = timed(lambda: ridge.fit(Xtr, Y), repeat)
        tp, _, out = timed(lambda: ridge.predict(Xte), repeat)
        record("Ridge(alpha=1)", t, mem, tp, float((out.argmax(1) == yte).mean()))
    if sklearn_ok and "LinearRegression" in sk_methods:
        lin = LinearRegression()
        t, mem, lin = timed(lambda: lin.fit(Xtr, Y), repeat)
        tp, _, out = timed(lambda: lin.predict(Xte), repeat)
        record("LinearRegression", t, mem, tp, float((out.argmax(1) == yte).mean()))
    return rows


def bench_streaming(n_total, d, n_classes, batch):
    """Peak host memory of partial_fit over n_total rows generated batch by batch."""
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(n_classes, d)).astype(np.float32)
    est = FAASTClassifier(solver="scipy")
    gc.collect()
    tracemalloc.start()
    t0 = time.perf_counter()
    for _ in range(n_total // batch):
        yb = rng.integers(0, n_classes, size=batch)
        Xb = centers[yb] * 0.3 + rng.standard_normal((batch, d), dtype=np.float32)
        est.partial_fit(Xb, yb)
        del Xb, yb
    _ = est.coef_  # the deferred solve
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return dict(
        n=n_total, d=d, classes=n_classes, batch=batch, seconds=elapsed, peak_host_mb=peak / 2**20
    )


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=float, nargs="+", default=[1e3, 1e4, 1e5])
    p.add_argument("--d", type=int, nargs="+", default=[384, 768, 1280])
    p.add_argument("--classes", type=int, nargs="+", default=[10, 100, 1000])
    p.add_argument("--repeat", type=int, default=3, help="runs per timing (median)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu' (no GPU rows) or 'cuda'")
    p.add_argument(
        "--skip-sklearn-above",
        type=float,
        default=2e5,
        help="run scikit-learn only up to this many rows (it is slow and memory-bound)",
    )
    p.add_argument(
        "--sk-methods",
        nargs="*",
        default=["RidgeClassifierCV", "Ridge", "LinearRegression"],
        help="scikit-learn methods to run",
    )
    p.add_argument(
        "--stream",
        type=float,
        nargs="*",
        default=[1e4, 1e6],
        help="row counts for the partial_fit memory check (batch 1e4)",
    )
    p.add_argument("--smoke", action="store_true", help="small sizes, CPU, about a minute")
    p.add_argument("--tag", default=None, help="results file name tag")
    p.add_argument(
        "--replot", metavar="JSON", help="only redraw the table and plot of a results file"
    )
    args = p.parse_args(argv)
    if args.replot:
        payload = json.loads(Path(args.replot).read_text())
        Path(args.replot).with_suffix(".md").write_text(to_markdown(payload))
        plot(payload, Path(args.replot).with_suffix(".png"))
        return
    if args.smoke:
        args.n, args.d, args.classes, args.repeat = [1e3, 1e4], [384], [10, 100], 1
        args.stream = [1e4, 1e5]
    device = None
    if args.device != "cpu":
        try:
            import torch

            if torch.cuda.is_available():
                device = "cuda" if args.device == "auto" else args.device
        except ImportError:
            pass
    card = "cpu"
    if device:
        import torch

        card = torch.cuda.get_device_name(0)
    tag = args.tag or ("smoke-cpu" if args.smoke else card.replace(" ", "-").lower())
    rows = []
    for n in args.n:
        for d in args.d:
            for c in args.classes:
                n_i = int(n)
                rows += bench_point(
                    n_i, d, c, args.repeat, device, n_i <= args.skip_sklearn_above, args.sk_methods
                )
    stream = [bench_streaming(int(n), args.d[0], args.classes[0], 10000) for n in args.stream]
    meta = dict(
        machine=platform.node(),
        processor=platform.processor(),
        device=card,
        cpu_count=__import__("os").cpu_count(),
        argv=argv or __import__("sys").argv[1:],
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"solver-{tag}"
    payload = dict(meta=meta, rows=rows, streaming=stream)
    out.with_suffix(".json").write_text(json.dumps(payload, indent=1))
    out.with_suffix(".md").write_text(to_markdown(payload))
    plot(payload, out.with_suffix(".png"))
    print(to_markdown(payload))


def to_markdown(payload) -> str:
    meta, rows, stream = payload["meta"], payload["rows"], payload["streaming"]
    lines = [
        f"# Solver benchmark ({meta['device']}, {meta['cpu_count']} CPU cores)",
        "",
        "| n | d | classes | method | fit s | fit peak host MB | predict s (10k rows) | "
        "accuracy | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['d']} | {r['classes']} | {r['method']} | {r['fit_s']:.4f} | "
            f"{r['fit_peak_host_mb']:.1f} | {r['predict_s']:.4f} | {r['accuracy']:.4f} | "
            f"{r['note']} |"
        )
    if stream:
        lines += [
            "",
            "Streaming partial_fit (batches of 1e4 rows, scipy solver):",
            "",
            "| rows | d | classes | seconds | peak host MB |",
            "|---|---|---|---|---|",
        ]
    for s in stream:
        lines.append(
            f"| {s['n']} | {s['d']} | {s['classes']} | {s['seconds']:.2f} | "
            f"{s['peak_host_mb']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(payload, path):
    """Fit time against the number of rows, one panel per feature count (most classes)."""
    rows = payload["rows"]
    if len({r["n"] for r in rows}) < 2:
        return None  # one size: the table says it all
    classes = max(r["classes"] for r in rows)
    panels = []
    for d in sorted({r["d"] for r in rows}):
        lines = {}
        for r in sorted(rows, key=lambda r: r["n"]):
            if r["d"] == d and r["classes"] == classes:
                xs, ys = lines.setdefault(r["method"], ([], []))
                xs.append(r["n"])
                ys.append(r["fit_s"])
        panels.append((f"d = {d}, {classes} classes", "rows N", "fit s", lines))
    return _plots.loglog_panels(panels, f"adaptation time — {payload['meta']['device']}", path)


if __name__ == "__main__":
    main()
