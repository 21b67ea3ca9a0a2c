"""GridSearchCV on precomputed features: two versions of the package side by side, in one process.

The baseline is a folder holding a copy of the package renamed ``faast_baseline`` (see
``bench_fit_versions.py`` for how to make one from a commit). Both versions fit the same data
(10 classes) alternately: a single ``fit`` and ``GridSearchCV(FAASTClassifier(), 10 alphas,
cv=5)``, caches cleared before each; medians. ``--route features``: 8,192 x 768 float32
features; ``--route grey28``: 8,192 grey 28 x 28 uint8 images through the ``test_tiny``
backbone on the CPU (the cost of finding each fold's rows in the feature cache).

Example (2-core CPU, about a minute)::

    python benchmarks/bench_grid_versions.py --baseline /tmp/base \\
        --out benchmarks/results/grid-versions-cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import GridSearchCV

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fit_versions import clear_caches  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", required=True, help="folder holding faast_baseline")
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--route", choices=["features", "grey28"], default="features")
    p.add_argument("--out", default=None)
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="process CPU time on one BLAS thread (a shared, loaded host: wall time is noise)",
    )
    args = p.parse_args(argv)
    clock = time.process_time if args.cpu_time else time.perf_counter
    if args.cpu_time:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    sys.path.insert(0, args.baseline)
    import faast_baseline

    import faast_sklearn

    packages = {"baseline": faast_baseline, "working_tree": faast_sklearn}
    rng = np.random.default_rng(0)
    if args.route == "features":
        X = rng.normal(size=(args.n, args.d)).astype(np.float32)
        kw = {}
    else:
        X = rng.integers(0, 256, (args.n, 28, 28), dtype=np.uint8)
        kw = {"backbone": "test_tiny", "device": "cpu"}
    y = rng.integers(0, 10, args.n)
    grid = {"alpha": list(np.logspace(-3, 3, 10))}
    times = {name: {"fit": [], "grid": []} for name in packages}
    for rep in range(args.repeats):
        order = list(packages) if rep % 2 == 0 else list(packages)[::-1]
        for name in order:
            pkg = packages[name]
            clear_caches(pkg)  # a baseline from before the one cache has several
            t = clock()
            pkg.FAASTClassifier(**kw).fit(X, y)
            times[name]["fit"].append(clock() - t)
            clear_caches(pkg)  # a baseline from before the one cache has several
            t = clock()
            GridSearchCV(pkg.FAASTClassifier(**kw), grid, cv=5).fit(X, y)
            times[name]["grid"].append(clock() - t)
    result = {"machine": platform.node(), "cores": __import__("os").cpu_count(), "args": vars(args)}
    for name, t in times.items():
        fit, search = float(np.median(t["fit"])), float(np.median(t["grid"]))
        result[name] = {"fit_s": fit, "grid_s": search, "grid_to_fit": search / fit, "raw": t}
        print(f"{name:13s}: fit {fit:.3f} s, grid {search:.3f} s = {search / fit:.2f} x fit")
    out = Path(args.out or Path(__file__).parent / "results" / "grid-versions-cpu.json")
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
