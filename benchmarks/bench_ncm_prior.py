"""The class-mean prior at few shots (issue 15): ``(1 - r) NCM + r fast weights``.

``r = N / (N0 + N)`` with ``N0`` = 1, 4 or 40 rows per class, through ``FAASTClassifier``'s
``prior`` (a callable), against the default FAAST and the nearest class mean alone; 16 paired
episodes (15 queries per class) per point. Two priors: ``vote``, the one-hot of
``NearestCentroid``'s prediction, and ``cos``, the centred cosine of a row to each class mean.
Prints accuracy differences to FAAST (points, 95% CI). Result:
``benchmarks/results/ncm-prior-cpu-2core.txt``. Usage::

    HF_HUB_OFFLINE=1 python benchmarks/bench_ncm_prior.py
"""

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from _episodes import mean_ci, sample_episode  # noqa: E402
from bench_accuracy import features  # noqa: E402
from sklearn.neighbors import NearestCentroid  # noqa: E402

from faast_sklearn import FAASTClassifier  # noqa: E402


class CosNCM:
    """Class means as a prior in the one-hot space: centred cosine to each class mean."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.m = X.mean(0)
        M = np.stack([X[y == c].mean(0) for c in self.classes_]) - self.m
        self.M = M / np.linalg.norm(M, axis=1, keepdims=True)
        return self

    def __call__(self, X):
        Z = X - self.m
        Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
        return Z @ self.M.T


def main():
    warnings.simplefilter("ignore")
    for name, shotsl in [
        ("digits_effnet", [1, 2, 4, 8, 16]),
        ("lfw_effnet", [1, 2, 4, 8, 16]),
        ("digits_raw", [1, 2, 4, 8, 16]),
    ]:
        Xs, ys, Xq, yq = features(name)
        C = len(np.unique(ys))
        for shots in shotsl:
            res = {}
            for ep in range(16):
                rng = np.random.default_rng([13, shots, ep])
                s, q = sample_episode(ys, yq, shots, 15, rng)
                X, y = Xs[s], ys[s]

                def add(k, v, res=res):
                    res.setdefault(k, []).append(v)

                add("faast", FAASTClassifier().fit(X, y).score(Xq[q], yq[q]))
                nc = NearestCentroid().fit(X, y)
                add("ncm", nc.score(Xq[q], yq[q]))

                def vote(Z, nc=nc, C=C):
                    return np.eye(C)[np.searchsorted(nc.classes_, nc.predict(Z))]

                cos = CosNCM().fit(X, y)
                for n0 in [1, 4, 40]:
                    add(
                        f"vote_N0={n0}",
                        FAASTClassifier(prior=vote, prior_strength=n0 * C)
                        .fit(X, y)
                        .score(Xq[q], yq[q]),
                    )
                    add(
                        f"cos_N0={n0}",
                        FAASTClassifier(prior=cos, prior_strength=n0 * C)
                        .fit(X, y)
                        .score(Xq[q], yq[q]),
                    )
            f = np.array(res["faast"])
            line = (
                f"{name} {shots}: faast {100 * f.mean():.1f} ncm {100 * np.mean(res['ncm']):.1f} |"
            )
            for k, v in res.items():
                if k in ("faast",):
                    continue
                d = mean_ci(100 * (np.array(v) - f))
                line += f" {k} {d[0]:+.1f}±{d[1]:.1f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
