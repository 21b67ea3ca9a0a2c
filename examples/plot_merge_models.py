"""
Map-reduce with merge_models and joblib
=======================================

A fit is a sum of per-row statistics and one small solve, so estimators fitted on disjoint
parts of the data, in any processes, combine exactly with :func:`faast_sklearn.merge_models`.
Here joblib fits four shards in parallel worker processes (each could be a Spark task, a Ray
actor or a job in a queue); the merged model is the model of one ``fit`` on all the rows.
"""

# %%
# Fit each shard in its own process, then merge
# ---------------------------------------------
import numpy as np
from joblib import Parallel, delayed
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from faast_sklearn import FAASTClassifier, merge_models

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.3, stratify=y, random_state=0
)


def fit_shard(rows):
    # Any disjoint split works, even one where a shard misses some classes.
    return FAASTClassifier(alpha=1.0).fit(X_train[rows], y_train[rows])


shards = np.array_split(np.argsort(y_train, kind="stable"), 4)  # shards see a few classes each
models = Parallel(n_jobs=2)(delayed(fit_shard)(rows) for rows in shards)
print("classes per shard:", [m.classes_.tolist() for m in models])

merged = merge_models(models)
whole = FAASTClassifier(alpha=1.0).fit(X_train, y_train)

# %%
# The merged model is the single-process model
# --------------------------------------------
rel = np.abs(merged.coef_ - whole.coef_).max() / np.abs(whole.coef_).max()
print(f"relative difference of the coefficients: {rel:.1e}")
print(
    f"test accuracy: merged {merged.score(X_test, y_test):.3f}, "
    f"one fit {whole.score(X_test, y_test):.3f}"
)
assert rel < 1e-10
