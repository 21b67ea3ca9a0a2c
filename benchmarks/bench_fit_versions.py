"""Fit time of two faast_sklearn trees side by side: the working tree against a baseline.

Both packages are imported in one process (the baseline under the name ``faast_baseline``) and
fitted alternately on the same fresh data (``N = 10 x shots`` rows of ``d`` features, 10
classes), both fit caches cleared before every fit, so that machine drift and noise hit both
alike. Per size: each version's median fit time (``FAASTClassifier()``, the "auto" solver) and
the median of the per-data ratios working tree / baseline. This is how a change to the fit
path is measured on a shared GPU host, where absolute times move by tens of percent from one
machine to the next.

Examples
--------
The baseline is a folder holding a ``faast_sklearn`` package, for example a commit's::

    git archive <commit> faast_sklearn | tar -x -C /tmp/base
    python benchmarks/bench_fit_versions.py --baseline /tmp/base --device cuda \\
        --out benchmarks/results/logs/fit-versions-h200-vs-<commit>.json

CPU smoke (seconds)::

    python benchmarks/bench_fit_versions.py --baseline /tmp/base --device cpu --dims 64 \\
        --shots 1 5 --reps 3
"""

from __future__ import annotations

import argparse
import importlib
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _readers  # noqa: E402
from bench_fit_overhead import sweep  # noqa: E402

BASELINE_NAME = "faast_baseline"


def import_baseline(folder: str, workdir: str):
    """The ``faast_sklearn`` package under ``folder``, imported as ``faast_baseline``.

    The package uses relative imports only, so a renamed copy is a separate package with its
    own caches; one that names itself absolutely would silently load the working tree.
    """
    src = Path(folder) / "faast_sklearn"
    if not (src / "__init__.py").is_file():
        raise SystemExit(f"--baseline {folder!r} holds no faast_sklearn package")
    absolute = re.compile(r"^\s*(from|import) faast_sklearn\b", re.MULTILINE)
    for path in src.rglob("*.py"):
        if absolute.search(path.read_text()):
            raise SystemExit(f"{path} imports faast_sklearn by name: cannot load it renamed")
    shutil.copytree(src, Path(workdir) / BASELINE_NAME)
    sys.path.insert(0, workdir)
    return importlib.import_module(BASELINE_NAME)


def compare(packages: dict, make_problem, reps: int, device: str) -> dict:
    """Median fit time per package and median per-problem ratio to the first package."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    names = list(packages)
    times = {name: [] for name in names}
    for rep in range(reps + 1):
        X, y = make_problem()
        order = names if rep % 2 else names[::-1]  # neither always goes first
        for name in order:
            pkg = packages[name]
            for other in packages.values():
                other.solvers._cache.FIT_CACHE.clear()
            sync()
            start = time.perf_counter()
            pkg.FAASTClassifier(device=device).fit(X, y)
            sync()
            times[name].append(time.perf_counter() - start)
    base = np.array(times[names[0]][1:])  # the first problem warms up
    row = {}
    for name in names:
        t = np.array(times[name][1:])
        row[f"{name}_ms"] = 1e3 * float(np.median(t))
        row[f"{name}_ratio"] = float(np.median(t / base))
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Examples", 1)[1])  # fmt: skip
    p.add_argument("--baseline", required=True, help="folder holding a faast_sklearn package")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dims", type=int, nargs="+", default=[768, 1280])
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5, 16, 64, 256])
    p.add_argument("--reps", type=int, default=30, help="timed problems per size")
    p.add_argument("--out", default=None, help="JSON path (default: print only)")
    args = p.parse_args(argv)
    import faast_sklearn
    import faast_sklearn.solvers._cache  # noqa: F401 - FIT_CACHE, cleared between fits

    device = str(_readers.resolve_device(args.device))
    with tempfile.TemporaryDirectory() as workdir:
        baseline = import_baseline(args.baseline, workdir)
        importlib.import_module(f"{BASELINE_NAME}.solvers._cache")
        packages = {"baseline": baseline, "working_tree": faast_sklearn}
        return sweep(
            device,
            args,
            lambda problem: compare(packages, problem, args.reps, device),
            baseline=str(Path(args.baseline).resolve()),
        )


if __name__ == "__main__":
    main()
