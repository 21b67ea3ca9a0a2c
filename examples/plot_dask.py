"""
Fit on a Dask array with a local cluster
========================================

``fit`` and ``partial_fit`` take ``dask.array`` and ``dask.dataframe`` inputs as they are:
each partition's statistics are computed by a task on the worker that holds it, merged in a
tree, and solved once; no row travels to the client. The model equals ``fit`` on the same
rows in one process. ``predict`` and ``predict_proba`` on a dask input return lazy dask
collections. Needs ``pip install "faast-sklearn[dask]"``.
"""

# %%
# Rows generated on two worker processes, fitted where they live
# ---------------------------------------------------------------
# (Under ``if __name__ == "__main__"``: worker processes re-import the script.)
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

from faast_sklearn import FAASTClassifier

if __name__ == "__main__":
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster),
    ):
        rng = da.random.default_rng(0)
        X = rng.standard_normal((40_000, 32), chunks=(10_000, 32))  # 4 partitions
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int) + (X[:, 2] > 1)
        X, y = X.persist(), y.persist()  # the rows live on the workers

        clf = FAASTClassifier().fit(X, y)  # one task per partition, one solve
        print("classes:", clf.classes_, "alpha:", round(clf.alpha_, 3))

        # Lazy predictions, and the same model as one fit in memory.
        proba = clf.predict_proba(X)  # a dask array: nothing computed yet
        print(type(proba).__name__, proba.shape, proba.chunks[0])
        print("accuracy:", float((clf.predict(X) == y).mean().compute()))

        X_mem, y_mem = da.compute(X, y)
        whole = FAASTClassifier().fit(X_mem, y_mem)
        gap = np.abs(clf.coef_ - whole.coef_).max() / np.abs(whole.coef_).max()
        print(f"largest relative difference from one in-memory fit: {gap:.1e}")
