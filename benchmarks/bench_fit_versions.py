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

``--after-probe sgd20`` (or ``adam``) fits that probe on the same rows before each timed fit,
as the few-shot episodes do, so that fits run on the caches the probe left (cold: a one-shot
fit takes about twice its back-to-back time on an H200 host), and reports the probe's time
against each version's::

    python benchmarks/bench_fit_versions.py --baseline /tmp/base --device cuda --dims 768 \
        --shots 1 5 --after-probe sgd20 --reps 40

CPU smoke (seconds)::

    python benchmarks/bench_fit_versions.py --baseline /tmp/base --device cpu --dims 64 \\
        --shots 1 5 --reps 3

``--grid`` compares instead ``GridSearchCV(FAASTClassifier(backbone=...), 10 alphas, cv=5)``
against a single fit, each version with its own backbone and caches, all cleared before every
timing: on 28 x 28 grey arrays (the backbone resizes them) and on NumPy features extracted
once (the extraction timed with the search), as ``bench_extraction.py`` times them::

    python benchmarks/bench_fit_versions.py --baseline /tmp/base --device cuda --grid \\
        --out benchmarks/results/logs/grid-versions-h200-vs-<commit>.json
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
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the working tree's package

import _readers  # noqa: E402
from _episodes import sync  # noqa: E402
from bench_fit_overhead import machine, sweep, write_json  # noqa: E402

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


def clear_caches(pkg) -> None:
    """Empty a package's caches: ``clear_cache()`` where it has one, else (versions before
    the one cache layer) its feature and fit caches."""
    if hasattr(pkg, "clear_cache"):
        pkg.clear_cache()
        return
    pkg.features.clear_feature_cache()
    importlib.import_module(f"{pkg.__name__}.solvers._cache").FIT_CACHE.clear()


PROBES = {"sgd20": _readers.SGDProbe, "adam": _readers.AdamProbe}


def compare(packages: dict, make_problem, reps: int, device: str, probe: str | None = None) -> dict:
    """Median fit time per package and median per-problem ratio to the first package.

    With ``probe``, each fit follows a fit of that backprop probe on the same rows, as in the
    few-shot episodes, where the method before evicts the host's caches; the probe's median
    time and its ratio to each package's fit are reported too.
    """
    names = list(packages)
    times = {name: [] for name in [*names, "probe"]}

    def timed(est, X, y):  # the estimator is made outside the timing, as in the episodes
        sync(device)
        start = time.perf_counter()
        est.fit(X, y)
        sync(device)
        return time.perf_counter() - start

    for rep in range(reps + 1):
        X, y = make_problem()
        order = names if rep % 2 else names[::-1]  # neither always goes first
        for name in order:
            pkg = packages[name]
            if probe is not None:
                times["probe"].append(timed(PROBES[probe](device=device), X, y))
            for other in packages.values():
                clear_caches(other)
            times[name].append(timed(pkg.FAASTClassifier(device=device), X, y))
    base = np.array(times[names[0]][1:])  # the first problem warms up
    row = {}
    for name in names:
        t = np.array(times[name][1:])
        row[f"{name}_ms"] = 1e3 * float(np.median(t))
        row[f"{name}_ratio"] = float(np.median(t / base))
    if probe is not None:
        row[f"{probe}_ms"] = 1e3 * float(np.median(times["probe"][2:]))
        for name in names:
            row[f"{probe}_over_{name}"] = row[f"{probe}_ms"] / row[f"{name}_ms"]
    return row


def compare_grid(packages: dict, args, device: str) -> dict:
    """Median single fit and grid-search times per package (see ``--grid``), and the median
    per-repetition ratio grid / fit."""
    from sklearn.model_selection import GridSearchCV

    def timed(f, *args):
        sync(device)
        start = time.perf_counter()
        f(*args)
        sync(device)
        return time.perf_counter() - start

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (args.n_images, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, args.n_images)
    grid = {"alpha": np.logspace(-3, 3, 10)}
    extractors = {}
    for name, pkg in packages.items():
        spec = importlib.import_module(f"{pkg.__name__}.backbones").BackboneSpec(
            args.backbone, image_size=args.image_size
        )
        extractors[name] = ext = pkg.FeatureExtractor(
            spec, pretrained=False, device=device, batch_size=args.batch_size,
            precision=args.precision,
        )  # fmt: skip
        pkg.FAASTClassifier(backbone=ext).fit(X[:256], y[:256])  # model loaded, kernels chosen
    routes = {
        "fit": lambda pkg, ext: pkg.FAASTClassifier(backbone=ext, alpha=1.0).fit(X, y),
        "grid_28px": lambda pkg, ext: GridSearchCV(
            pkg.FAASTClassifier(backbone=ext, alpha=1.0), grid, cv=5
        ).fit(X, y),
        "grid_numpy_features": lambda pkg, ext: GridSearchCV(pkg.FAASTClassifier(), grid, cv=5).fit(
            ext.extract(X), y
        ),
    }
    times = {name: {route: [] for route in routes} for name in packages}
    for rep in range(args.grid_reps):
        for name in list(packages) if rep % 2 else list(packages)[::-1]:
            pkg = packages[name]
            for route, run in routes.items():
                clear_caches(pkg)
                times[name][route].append(timed(run, pkg, extractors[name]))
    out = {}
    for name, t in times.items():
        fit = np.array(t["fit"])
        out[name] = row = {"fit_s": float(np.median(fit))}
        for route in ("grid_28px", "grid_numpy_features"):
            row[f"{route}_s"] = float(np.median(t[route]))
            row[f"{route}_to_fit"] = float(np.median(np.array(t[route]) / fit))
        print(name, {k: round(v, 3) for k, v in row.items()}, flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("Examples", 1)[1])  # fmt: skip
    p.add_argument("--baseline", required=True, help="folder holding a faast_sklearn package")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dims", type=int, nargs="+", default=[768, 1280])
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5, 16, 64, 256])
    p.add_argument("--reps", type=int, default=30, help="timed problems per size")
    p.add_argument(
        "--after-probe",
        choices=sorted(PROBES),
        default=None,
        help="fit this backprop probe on the same rows before each timed fit",
    )
    p.add_argument("--out", default=None, help="JSON path (default: print only)")
    g = p.add_argument_group("--grid: grid search against a single fit, with a backbone")
    g.add_argument("--grid", action="store_true")
    g.add_argument("--backbone", default="vit_base", help="random weights (timing only)")
    g.add_argument("--image-size", type=int, default=224)
    g.add_argument("--n-images", type=int, default=8192)
    g.add_argument("--batch-size", type=int, default=256)
    g.add_argument("--precision", default="bfloat16")
    g.add_argument("--grid-reps", type=int, default=3, help="timed repetitions per version")
    args = p.parse_args(argv)
    import faast_sklearn

    device = str(_readers.resolve_device(args.device))
    with tempfile.TemporaryDirectory() as workdir:
        baseline = import_baseline(args.baseline, workdir)
        packages = {"baseline": baseline, "working_tree": faast_sklearn}
        if args.grid:
            out = machine(device, baseline=str(Path(args.baseline).resolve()), args=vars(args))
            out["results"] = compare_grid(packages, args, device)
            return write_json(out, args.out)
        return sweep(
            device,
            args,
            lambda problem: compare(packages, problem, args.reps, device, args.after_probe),
            baseline=str(Path(args.baseline).resolve()),
        )


if __name__ == "__main__":
    main()
