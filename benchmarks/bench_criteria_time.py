"""Fit time of FAASTClassifier's default (alpha_criterion="loo") and GCV against
RidgeClassifierCV (13 alphas), side by side on the same episodes (issue 15's fit-time target).

Median of 15 episodes per point, methods interleaved in a seeded random order, each on its own
copy of the rows scaled by ``1 + (j + 1) 2^-20`` in the rows' own dtype (so that no method hits
the fit cache of another: a float32 factor of ``1 + 1e-9`` rounds to 1). Two clocks:

- ``wall``: wall-clock time with the BLAS's default threads (what a user sees on a quiet
  machine);
- ``--cpu``: the process's CPU time with every method's BLAS limited to one thread
  (``threadpoolctl``): on a shared machine, time spent waiting for a core is not counted.

Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_criteria_time.py [--cpu]
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _episodes import sample_episode  # noqa: E402
from bench_accuracy import ALPHAS13, features  # noqa: E402
from sklearn.linear_model import RidgeClassifierCV  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from faast_sklearn import FAASTClassifier  # noqa: E402

POINTS = [
    ("lfw_effnet", 1),
    ("lfw_effnet", 5),
    ("lfw_effnet", 16),
    ("lfw_effnet", 40),
    ("digits_effnet", 2),
    ("digits_effnet", 16),
    ("digits_effnet", 40),
    ("digits_raw", 5),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu", action="store_true", help="CPU time, one BLAS thread")
    ap.add_argument("--episodes", type=int, default=15)
    args = ap.parse_args(argv)
    clock = time.process_time if args.cpu else time.perf_counter
    warnings.simplefilter("ignore")
    for name, shots in POINTS:
        Xs, ys, Xq, yq = features(name)
        t = {"faast": [], "faast_gcv": [], "ridgecv13": []}
        for ep in range(args.episodes):
            s, q = sample_episode(ys, yq, shots, 15, np.random.default_rng([5, shots, ep]))
            methods = [
                ("faast", lambda: FAASTClassifier()),
                ("faast_gcv", lambda: FAASTClassifier(alpha_criterion="gcv")),
                ("ridgecv13", lambda: RidgeClassifierCV(alphas=ALPHAS13)),
            ]
            # A seeded random order: a fixed one times each method after the same predecessor.
            order = np.random.default_rng([6, shots, ep]).permutation(len(methods))
            for j in order:
                m, mk = methods[j]
                # Rows of other content: no fit-cache hit across methods.
                X = Xs[s] * Xs.dtype.type(1.0 + (j + 1) * 2.0**-20)
                with threadpool_limits(1 if args.cpu else None, "blas"):
                    t0 = clock()
                    mk().fit(X, ys[s])
                    t[m].append(clock() - t0)
        med = {m: 1e3 * np.median(v) for m, v in t.items()}
        print(
            f"{name} {shots} ({len(s)} x {Xs.shape[1]}): "
            + " ".join(f"{m} {v:.1f} ms" for m, v in med.items())
            + f" | faast/ridgecv13 {med['faast'] / med['ridgecv13']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
