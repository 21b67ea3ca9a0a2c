"""GridSearchCV over alpha on features: cost against a single fit, with and without the fit cache.

Every alpha of a fold sees the same rows, so their statistics and eigendecomposition are shared
through the package's cache. This measures that reuse side by side in one run; the "without"
column turns the cache off (``faast_sklearn.config_context(cache=False)``).

Example (2-core CPU, about a minute)::

    python benchmarks/bench_gridsearch.py --n 8192 --d 768 --classes 10
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
from bench_solver import make_data
from sklearn.linear_model import RidgeClassifierCV
from sklearn.model_selection import GridSearchCV

from faast_sklearn import FAASTClassifier, clear_cache, config_context

RESULTS = Path(__file__).parent / "results"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--alphas", type=int, default=10)
    p.add_argument("--cv", type=int, default=5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--tag", default="cpu")
    args = p.parse_args(argv)
    X, y = make_data(args.n, args.d, args.classes)
    grid = {"alpha": list(np.logspace(-3, 3, args.alphas))}
    FAASTClassifier().fit(X[:100], y[:100])  # warm-up (imports, BLAS threads)

    def timed(fn):
        times = []
        for _ in range(args.repeat):
            clear_cache()
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    fit = timed(lambda: FAASTClassifier().fit(X, y))
    # The peer a user would otherwise reach for: one fit choosing among 13 alphas by
    # leave-one-out (scikit-learn's efficient GCV mode).
    ridge = timed(lambda: RidgeClassifierCV(alphas=np.logspace(-6, 6, 13)).fit(X, y))
    search = timed(lambda: GridSearchCV(FAASTClassifier(), grid, cv=args.cv).fit(X, y))
    with config_context(cache=False):
        uncached = timed(lambda: GridSearchCV(FAASTClassifier(), grid, cv=args.cv).fit(X, y))
    result = dict(
        meta=dict(machine=platform.node(), cpu_count=__import__("os").cpu_count(), args=vars(args)),
        single_fit_s=fit,
        ridge_classifier_cv_s=ridge,
        ridge_classifier_cv_to_fit=ridge / fit,
        grid_s=search,
        grid_without_cache_s=uncached,
        grid_to_fit=search / fit,
        grid_without_cache_to_fit=uncached / fit,
    )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"gridsearch-{args.tag}"
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    table = (
        f"# GridSearchCV over {args.alphas} alphas, cv={args.cv}, on {args.n} x {args.d} features, "
        f"{args.classes} classes ({args.tag}, {result['meta']['cpu_count']} CPU cores)\n\n"
        "| single fit s | RidgeClassifierCV (13 alphas) s | grid s (cache) | grid / fit "
        "| grid s (no cache) | grid / fit |\n"
        "|---|---|---|---|---|---|\n"
        f"| {fit:.3f} | {ridge:.3f} | {search:.3f} | {search / fit:.2f} | {uncached:.3f} | "
        f"{uncached / fit:.2f} |\n"
    )
    out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
