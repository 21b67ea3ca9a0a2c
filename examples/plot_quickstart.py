"""
Quick start: closed-form fast weights and their GCV curve
=========================================================

:class:`~faast_sklearn.FAASTClassifier` on precomputed features (here the 64 pixel intensities
of scikit-learn's 8x8 digits), next to :class:`~sklearn.linear_model.RidgeClassifierCV` and
:class:`~sklearn.linear_model.LogisticRegression`. The ridge strength is chosen by generalised
cross-validation (GCV) from one eigendecomposition; ``alphas_`` and ``gcv_scores_`` hold the
whole curve.
"""

# %%
# Data and three classifiers
# --------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression, RidgeClassifierCV
from sklearn.model_selection import train_test_split

from faast_sklearn import FAASTClassifier

X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixel intensities in [0, 1]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.5, stratify=y, random_state=0)

models = {
    "FAASTClassifier()": FAASTClassifier(),
    "RidgeClassifierCV(alphas=logspace(-3, 3, 13))": RidgeClassifierCV(
        alphas=np.logspace(-3, 3, 13)
    ),
    "LogisticRegression(max_iter=1000)": LogisticRegression(max_iter=1000),
}
FAASTClassifier().fit(X_train, y_train)  # warm-up: the first call imports its back-ends
for name, model in models.items():
    start = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    print(f"{name:48s} accuracy {model.score(X_test, y_test):.3f}   fit {seconds * 1e3:6.1f} ms")

# %%
# What GCV chose
# --------------
# ``alpha_`` is the chosen strength (an absolute value, on the scale of the centred Gram
# matrix), ``alphas_`` the 56 strengths searched by ``alpha="auto"`` and ``gcv_scores_`` the
# GCV estimate of the squared prediction error at each of them. ``error_variance_`` is that
# estimate at ``alpha_``: it sets the scale of the log-odds, so it calibrates ``predict_proba``.
clf = models["FAASTClassifier()"]
print(
    f"alpha_ = {clf.alpha_:.4g}, rank_ = {clf.rank_}, error_variance_ = {clf.error_variance_:.4f}"
)
print("class probabilities of the first test image:", np.round(clf.predict_proba(X_test[:1]), 3))

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.loglog(clf.alphas_, clf.gcv_scores_, marker=".", label="GCV score")
ax.axvline(clf.alpha_, color="k", linestyle="--", label=f"alpha_ = {clf.alpha_:.3g}")
ax.set_xlabel("alpha (ridge strength)")
ax.set_ylabel("GCV (estimated squared error)")
ax.set_title("One eigendecomposition scores every strength")
ax.legend()
fig.tight_layout()

# %%
# The paper's setting
# -------------------
# The FAAST paper uses no ridge term, no intercept and a truncated pseudo-inverse whose
# cut-off is ``rtol = N ** -0.8``:
paper = FAASTClassifier(alpha=0, rtol="paper", fit_intercept=False).fit(X_train, y_train)
print(f"paper's setting: accuracy {paper.score(X_test, y_test):.3f}, rank_ = {paper.rank_}")
