"""
Exact streaming with partial_fit
================================

:meth:`~faast_sklearn.FAASTClassifier.partial_fit` accumulates float64 sufficient statistics,
merged exactly, so fitting batch by batch gives the model that ``fit`` gives on all the rows,
whatever the split, in memory that does not grow with the number of rows. Classes may arrive
at any time: here the digit 9 appears only in the last batches.
"""

# %%
# A stream where a class arrives late
# -----------------------------------
import pickle

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from faast_sklearn import FAASTClassifier

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.3, stratify=y, random_state=0
)
# Rows of the digit 9 go to the end of the stream.
order = np.argsort(y_train == 9, kind="stable")
X_stream, y_stream = X_train[order], y_train[order]
batches = np.array_split(np.arange(len(y_stream)), 12)

clf = FAASTClassifier()
accuracy, state_bytes, n_seen = [], [], []
for idx in batches:
    clf.partial_fit(X_stream[idx], y_stream[idx])
    accuracy.append(clf.score(X_test, y_test))
    state_bytes.append(len(pickle.dumps(clf)))
    n_seen.append(clf.n_samples_seen_)
    print(
        f"rows seen {clf.n_samples_seen_:5d}   classes {len(clf.classes_):2d}   "
        f"test accuracy {accuracy[-1]:.3f}   pickled model {state_bytes[-1] / 1024:.0f} KiB"
    )

# %%
# Equal to ``fit`` on all the rows
# --------------------------------
# The streamed model and the one fitted at once agree to float64 round-off: same
# coefficients, same GCV choice of ``alpha_``, same predictions.
full = FAASTClassifier().fit(X_stream, y_stream)
print("classes_ equal:", np.array_equal(clf.classes_, full.classes_))
print(f"alpha_: streamed {clf.alpha_:.6g}, fit {full.alpha_:.6g}")
print("max |coef_ difference|:", np.abs(clf.coef_ - full.coef_).max())
print("predictions equal:", np.array_equal(clf.predict(X_test), full.predict(X_test)))
assert np.allclose(clf.coef_, full.coef_, rtol=1e-8, atol=1e-10)

# %%
# Constant memory
# ---------------
# The state is the statistics (a d x d Gram matrix, d x n_classes cross-products, means):
# its size depends on the number of features and classes, not on the number of rows. It only
# grows when the new class arrives (one more target column).
fig, ax1 = plt.subplots(figsize=(6, 3.5))
ax1.plot(n_seen, accuracy, marker="o", label="test accuracy")
ax1.set_xlabel("rows seen")
ax1.set_ylabel("test accuracy (all 10 digits)")
ax2 = ax1.twinx()
ax2.plot(n_seen, np.array(state_bytes) / 1024, color="C1", marker="s", label="pickled model")
ax2.set_ylabel("pickled model (KiB)")
ax2.set_ylim(0, 1.2 * max(state_bytes) / 1024)
first_nine = n_seen[next(i for i, b in enumerate(batches) if np.any(y_stream[b] == 9))]
ax1.axvline(first_nine, color="grey", linestyle=":", label="first 9 arrives")
handles = ax1.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
ax1.legend(handles=handles, loc="center right")
ax1.set_title("partial_fit: accuracy and state size along the stream")
fig.tight_layout()
