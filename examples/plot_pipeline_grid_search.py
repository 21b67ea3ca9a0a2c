"""
Pipelines, grid search and cross-validation
===========================================

:class:`~faast_sklearn.FAASTClassifier` is an ordinary scikit-learn estimator: it goes in a
:class:`~sklearn.pipeline.Pipeline`, :class:`~sklearn.model_selection.GridSearchCV` searches its
``alpha`` and ``rtol``, and :func:`~sklearn.model_selection.cross_val_score` scores it. Here on
the breast-cancer data set (30 features, 2 classes).
"""

# %%
# A pipeline, cross-validated
# ---------------------------
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from faast_sklearn import FAASTClassifier

X, y = load_breast_cancer(return_X_y=True)
cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)

pipe = make_pipeline(StandardScaler(), FAASTClassifier())
scores = cross_val_score(pipe, X, y, cv=cv)
print(f"alpha='auto' (GCV inside each fold): accuracy {scores.mean():.3f} +- {scores.std():.3f}")

# %%
# Searching ``alpha`` and ``rtol``
# --------------------------------
# ``alpha="auto"`` already picks the ridge strength by GCV inside each fit; a grid search
# compares it with fixed strengths and with the truncated spectrum (``rtol``), including the
# paper's rule ``rtol="paper"`` (``N ** -0.8``).
grid = GridSearchCV(
    pipe,
    {
        "faastclassifier__alpha": ["auto", 0.0, 1.0, 100.0],
        "faastclassifier__rtol": [None, 1e-3, "paper"],
    },
    cv=cv,
)
grid.fit(X, y)
print("best parameters:", grid.best_params_)
print(f"best cross-validated accuracy: {grid.best_score_:.3f}")

# %%
# The fitted model of the best candidate exposes the strength GCV chose and the number of
# spectral components kept:
best = grid.best_estimator_[-1]
print(f"alpha_ = {best.alpha_:.4g}, rank_ = {best.rank_} of {best.n_features_in_} features")

# %%
# Mean test accuracy of every candidate:
results = grid.cv_results_
labels = [
    f"alpha={p['faastclassifier__alpha']}, rtol={p['faastclassifier__rtol']}"
    for p in results["params"]
]
order = np.argsort(results["mean_test_score"])
fig, ax = plt.subplots(figsize=(6, 4))
ax.barh(
    np.array(labels)[order],
    results["mean_test_score"][order],
    xerr=results["std_test_score"][order],
)
ax.set_xlim(0.9, 1.0)
ax.set_xlabel("cross-validated accuracy")
ax.set_title("GridSearchCV over alpha and rtol")
fig.tight_layout()
