"""FAAST's fit time on few-shot-sized problems against the backprop probes, per solver.

Fresh random features for every fit (so the fit cache never hits), 10 classes, ``N = 10 x
shots`` rows of ``d`` features. Per size: median fit time of ``FAASTClassifier()`` (the "auto"
solver), of ``solver="scipy"`` and of ``solver="torch"`` on ``--device``, and of the SGD-20 and Adam probes
of ``_readers.py`` on the same device. This is the measurement behind
``faast_sklearn.solvers.HOST_FLOPS`` (host or GPU for small NumPy fits). The one-BLAS-thread
limit it also measured was removed (benchmarks/bench_removed.py).

The committed ``results/logs/fit-overhead-h200.json`` was written by the first version of this
script, which was run from a scratch folder and wrote the same keys.

Examples
--------
On a GPU machine::

    python benchmarks/bench_fit_overhead.py --device cuda \\
        --out benchmarks/results/logs/fit-overhead-h100.json

CPU smoke (seconds)::

    python benchmarks/bench_fit_overhead.py --device cpu --dims 64 --shots 1 5 --reps 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _readers  # noqa: E402
from _episodes import sync  # noqa: E402


def median_ms(fit, make_problem, reps: int, device: str) -> float:
    """Median wall time of ``fit(X, y)`` over ``reps`` fresh problems (the first is dropped)."""
    times = []
    for _ in range(reps + 1):
        X, y = make_problem()
        sync(device)
        start = time.perf_counter()
        fit(X, y)
        sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times[1:]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Examples", 1)[1])  # fmt: skip
    p.add_argument("--device", default="cuda")
    p.add_argument("--dims", type=int, nargs="+", default=[768, 1280])
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5, 16, 64, 256])
    p.add_argument("--reps", type=int, default=14, help="timed fits per FAAST solver and size")
    p.add_argument("--probe-reps", type=int, default=3, help="timed fits per probe and size")
    p.add_argument("--out", default=None, help="JSON path (default: print only)")
    args = p.parse_args(argv)
    from faast_sklearn import FAASTClassifier

    device = str(_readers.resolve_device(args.device))
    methods = {
        "faast_auto": (lambda X, y: FAASTClassifier().fit(X, y), args.reps),
        "faast_scipy": (lambda X, y: FAASTClassifier(solver="scipy").fit(X, y), args.reps),
        f"faast_torch_{device.split(':')[0]}": (
            lambda X, y: FAASTClassifier(solver="torch", device=device).fit(X, y),
            args.reps,
        ),
        "sgd20": (lambda X, y: _readers.SGDProbe(device=device).fit(X, y), args.probe_reps),
        "adam": (lambda X, y: _readers.AdamProbe(device=device).fit(X, y), args.probe_reps),
    }

    def measure(problem):
        return {name: median_ms(fit, problem, reps, device)
                for name, (fit, reps) in methods.items()}  # fmt: skip

    return sweep(device, args, measure)


def sweep(device: str, args, measure, **meta) -> dict:
    """``measure(make_problem)`` per size, on fresh few-shot problems.

    For each ``d`` in ``args.dims`` and shot count in ``args.shots``: ``make_problem()`` draws
    ``N = 10 x shots`` rows of ``d`` standard-normal float32 features and 10 balanced
    classes. Rows of timings go into the returned dict under ``fit_d{d}_N{N}`` and are printed
    as they come; the dict, which starts with ``meta``, is written to ``args.out`` as JSON at
    the end (if given).
    """
    out = machine(device, **meta)
    rng = np.random.default_rng(0)
    for d in args.dims:
        for shots in args.shots:
            n = 10 * shots

            def problem(n=n, d=d):
                return rng.standard_normal((n, d)).astype(np.float32), np.arange(n) % 10

            out[f"fit_d{d}_N{n}"] = row = measure(problem)
            print(d, n, {k: round(v, 3) for k, v in row.items()}, flush=True)
    return write_json(out, args.out)


def machine(device: str, **meta) -> dict:
    """The start of a result: the device (and GPU name), then ``meta``."""
    out = {"device": device, **meta}
    if device.startswith("cuda"):
        import torch

        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def write_json(out: dict, path: str | None) -> dict:
    """``out`` written to ``path`` as JSON (if given); returns it."""
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(out, indent=1))
        print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
