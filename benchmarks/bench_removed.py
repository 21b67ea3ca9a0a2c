"""What each piece removed by issue 13 on the fit path was worth, side by side in one run.

The "with" side is the package at 2679a75 (every piece in place), imported renamed; each
"without <piece>" variant is that same package with the one piece replaced by the plain
library call that replaces it on this branch; "new" is the working tree. Every timed problem
runs all variants round-robin (so that the load of a shared machine falls on all alike), with
every cache cleared before each timed call (untimed), in a fresh random order per round;
figures are medians and minima (on a shared machine, the minimum is the steadier of the two).

Workloads (CPU, ``solver="auto"``, i.e. SciPy): a one-shot fit (10 rows x 768 float32
features, 10 classes), a 640-row fit of the same width, a single fit over 10 alphas on
2,000 x 256 features, ``GridSearchCV`` over those 10 alphas x 5 folds, and scikit-learn's
``RidgeClassifierCV`` over the same alphas on the same data as the reference.

Examples
--------
python benchmarks/bench_removed.py --out benchmarks/results/removed-cpu-2core.json
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.linalg
from sklearn.base import ClassifierMixin
from sklearn.linear_model import RidgeClassifierCV
from sklearn.model_selection import GridSearchCV
from sklearn.utils.validation import validate_data

OLD = "2679a75"
ALPHAS = np.logspace(-3, 3, 10)


def import_old(workdir: str):
    """The package at ``OLD``, extracted with ``git archive`` and imported as faast_old."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", OLD, "faast_sklearn"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", workdir], input=archive, check=True)
    os.rename(Path(workdir) / "faast_sklearn", Path(workdir) / "faast_old")
    sys.path.insert(0, workdir)
    return importlib.import_module("faast_old")


@contextlib.contextmanager
def patched(*changes):
    """Set ``(owner, name, value)`` attributes (``value`` None: delete), restored after."""
    missing = object()
    saved = [(o, n, o.__dict__.get(n, missing)) for o, n, _ in changes]
    try:
        for owner, name, value in changes:
            if value is None:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in saved:
            if value is missing:
                if name in owner.__dict__:
                    delattr(owner, name)
            else:
                setattr(owner, name, value)


def removals(old) -> dict:
    """Each removed piece, as the changes that take it out of the old package."""
    base, params = old._base._BaseFAAST, old.utils._params.ParamsMixin

    def validate_unnamed(self, X, *, reset, finite):
        dtype = [np.float64, np.float32]
        return validate_data(
            self, X, reset=reset, dtype=dtype, ensure_min_samples=1, ensure_all_finite=finite
        )

    return {
        "params_memo": [
            (params, "_get_param_names", None),
            (params, "_check_params", lambda self: self._validate_params()),
        ],
        "dsyevd": [
            (
                old.solvers._backends.ScipyBackend,
                "eigh",
                lambda self, A: scipy.linalg.eigh(A, driver="evd", check_finite=False),
            )
        ],
        "validate_data_copy": [(base, "_validate_unnamed", validate_unnamed)],
        "score_fast_path": [(old.FAASTClassifier, "score", ClassifierMixin.score)],
        "blas_thread_limiter": [(old.solvers, "ONE_THREAD_FLOPS", 0.0)],
    }


def problems(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def data(n, d):
        X = rng.normal(size=(n, d)).astype(np.float32)
        return X, np.arange(n) % 10

    return {
        "one_shot_10x768": data(10, 768),
        "fit_640x768": data(640, 768),
        "grid": data(2000, 256),
    }


def workloads(pkg, data: dict) -> dict:
    """name -> a call of ``pkg`` (None: the scikit-learn reference)."""
    X1, y1 = data["one_shot_10x768"]
    X2, y2 = data["fit_640x768"]
    X3, y3 = data["grid"]
    if pkg is None:
        return {"ridgeclassifiercv_2000x256": lambda: RidgeClassifierCV(alphas=ALPHAS).fit(X3, y3)}
    clf = pkg.FAASTClassifier
    return {
        "one_shot_10x768": lambda: clf().fit(X1, y1),
        "fit_640x768": lambda: clf().fit(X2, y2),
        "fit_10_alphas_2000x256": lambda: clf(alpha=ALPHAS).fit(X3, y3),
        "gridsearch_10x5_2000x256": lambda: GridSearchCV(clf(), {"alpha": list(ALPHAS)}, cv=5).fit(
            X3, y3
        ),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, nargs=4, default=[301, 15, 15, 5], metavar="N",
                   help="timed calls per variant: one-shot, 640-row, 10-alpha fit, grid")  # fmt: skip
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import faast_sklearn as new

    with tempfile.TemporaryDirectory() as workdir:
        old = import_old(workdir)
        data = problems()
        pieces = removals(old)
        variants = {"with_all (2679a75)": []} | {f"without_{k}": v for k, v in pieces.items()}

        def clear():
            old.solvers._cache.FIT_CACHE.clear()
            new.clear_cache()

        calls = {v: workloads(old, data) for v in variants} | {"new": workloads(new, data)}
        calls["sklearn"] = workloads(None, data)
        times: dict = {}
        order = np.random.default_rng(0)
        names = list(workloads(new, data))
        names.insert(3, "ridgeclassifiercv_2000x256")  # the reference before the long grid
        reps = dict(zip(names, [*args.reps[:3], args.reps[2], args.reps[3]], strict=True))
        for name in names:
            runners = [v for v in calls if name in calls[v]]
            for call in (calls[v][name] for v in runners):
                clear()
                call()  # warm-up
            for _ in range(reps[name]):
                for v in order.permutation(runners):
                    clear()
                    with patched(*variants.get(v, [])):
                        t = time.perf_counter()
                        calls[v][name]()
                        times.setdefault(name, {}).setdefault(v, []).append(time.perf_counter() - t)
            stats = {
                v: f"{np.median(t) * 1e3:.1f}/{np.min(t) * 1e3:.1f}" for v, t in times[name].items()
            }
            print(name, "median/min ms", stats, flush=True)
            if args.out:  # after each workload: a run cut short keeps what it measured
                out = summarise(times, pieces, reps)
                Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summarise(times, pieces, reps)["slowdown_without_each_piece"], indent=1))


def summarise(times: dict, pieces: dict, reps: dict) -> dict:
    """Medians, minima and each piece's worth of the workloads timed so far."""
    medians = {n: {v: float(np.median(t)) for v, t in d.items()} for n, d in times.items()}
    minima = {n: {v: float(np.min(t)) for v, t in d.items()} for n, d in times.items()}
    worth = {}
    for piece in pieces:
        worth[piece] = {
            f"{n} ({stat})": m[f"without_{piece}"] / m["with_all (2679a75)"] - 1.0
            for stat, table in (("median", medians), ("min", minima))
            for n, m in table.items()
            if "with_all (2679a75)" in m
        }
        # Kept only if taking it out slows a figure by more than 10% on both statistics.
        worth[piece]["kept"] = any(
            worth[piece][f"{n} (median)"] > 0.10 and worth[piece][f"{n} (min)"] > 0.10
            for n in medians
            if "with_all (2679a75)" in medians[n]
        )
    out = {
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "numpy": np.__version__,
            "load_average_at_end": os.getloadavg(),
        },
        "old": OLD,
        "reps": reps,
        "median_s": medians,
        "min_s": minima,
        "slowdown_without_each_piece": worth,
        "new_fit_10_alphas_over_ridgeclassifiercv (median, min)": [
            t["fit_10_alphas_2000x256"]["new"] / t["ridgeclassifiercv_2000x256"]["sklearn"]
            for t in (medians, minima)
            if "ridgeclassifiercv_2000x256" in t
        ],
    }
    return out


if __name__ == "__main__":
    main()
