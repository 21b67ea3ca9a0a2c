"""Fit time of FAASTClassifier's default (alpha_criterion="loo") and GCV against
RidgeClassifierCV (13 alphas), side by side on the same episodes (issue 15's fit-time target).

Median of 15 episodes per point, methods interleaved in a seeded random order, each on rows scaled by 1 + 1e-9 j (so
that no method hits the fit cache of another). Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_criteria_time.py
"""

import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _episodes import sample_episode  # noqa: E402
from bench_accuracy import ALPHAS13, features  # noqa: E402
from sklearn.linear_model import RidgeClassifierCV  # noqa: E402

from faast_sklearn import FAASTClassifier  # noqa: E402


def main():
    warnings.simplefilter("ignore")
    for name, shots in [
        ("lfw_effnet", 1),
        ("lfw_effnet", 5),
        ("lfw_effnet", 40),
        ("digits_effnet", 2),
        ("digits_effnet", 16),
        ("digits_raw", 5),
    ]:
        Xs, ys, Xq, yq = features(name)
        t = {"faast": [], "faast_gcv": [], "ridgecv13": []}
        for ep in range(15):
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
                # Rows of other content (by 1e-9 relative): no fit-cache hit across methods.
                X = Xs[s] * (1.0 + 1e-9 * (j + 1))
                t0 = time.perf_counter()
                mk().fit(X, ys[s])
                t[m].append(time.perf_counter() - t0)
        med = {m: 1e3 * np.median(v) for m, v in t.items()}
        print(
            f"{name} {shots}: "
            + " ".join(f"{m} {v:.1f} ms" for m, v in med.items())
            + f" | faast/ridgecv13 {med['faast'] / med['ridgecv13']:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
