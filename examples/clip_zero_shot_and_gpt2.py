"""
The paper's two setups in one line each: CLIP zero-shot prior, GPT-2 features
=============================================================================

Not executed when the documentation is built: it downloads CLIP ViT-B/16 (600 MB), GPT-2
(500 MB), CIFAR-10 and SST-2. Run it on a machine with network access (a GPU helps):
``python examples/clip_zero_shot_and_gpt2.py``. Afterwards the weights are in the Hugging Face
cache and it runs offline too (``HF_HUB_OFFLINE=1``).

1. **CLIP, zero-shot prior from class names.** ``class_embeddings="text"`` encodes the class
   labels with the text tower paired with ``backbone="clip_vit_base"`` (CLIP's 80 ImageNet
   prompt templates, averaged), and ``prior="identity"`` blends CLIP's zero-shot classifier
   with the fast weights: ``r = N / (N0 + N)``, ``N0 = 40`` per class.
2. **A decoder language model as a text backbone.** ``backbone="gpt2"`` (or ``"gpt2_xl"``, the
   paper's, or any ``"hf:<causal LM>"`` such as ``"hf:Qwen/Qwen2.5-0.5B"``) gives the hidden
   state of each text's last token (left padding, bfloat16 on a GPU).
"""

# %%
# CLIP: a few labelled images per class, on top of the zero-shot classifier
# -------------------------------------------------------------------------
import numpy as np
from torchvision.datasets import CIFAR10

from faast_sklearn import FAASTClassifier
from faast_sklearn.backbones import encode_class_names

train = CIFAR10("data", train=True, download=True)
test = CIFAR10("data", train=False, download=True)
names = np.array(train.classes)  # "airplane", "automobile", ...
rng = np.random.default_rng(0)
X_test, y_test = test.data[:2000], names[np.array(test.targets[:2000])]

for shots in (1, 4, 16):
    idx = np.concatenate(
        [rng.choice(np.flatnonzero(np.array(train.targets) == c), shots, replace=False)
         for c in range(10)]
    )  # fmt: skip
    X, y = train.data[idx], names[np.array(train.targets)[idx]]
    clf = FAASTClassifier(backbone="clip_vit_base", class_embeddings="text", prior="identity")
    clf.fit(X, y)
    print(f"CLIP + fast weights, {shots:2d} shots per class: {clf.score(X_test, y_test):.3f}")

# %%
# Zero-shot alone: the cosine argmax of image features and class-name embeddings
# ------------------------------------------------------------------------------
# Before any training row: a first ``partial_fit`` on zero rows declares the classes, and with
# N = 0 the blend ratio r is 0, so the classifier is CLIP's zero-shot one. Labelled rows
# streamed afterwards give what ``fit`` on them gives.
clf = FAASTClassifier(backbone="clip_vit_base", class_embeddings="text", prior="identity")
clf.partial_fit(X_test[:0], [], classes=names)
print(f"CLIP zero-shot, no training row: {clf.score(X_test, y_test):.3f}")

# The same by hand, from the embeddings:
from faast_sklearn.features import FeatureExtractor  # noqa: E402

E = encode_class_names("clip_vit_base", sorted(names))  # (10, 512), L2-normalised rows
F = FeatureExtractor("clip_vit_base").transform(X_test)
zero_shot = np.array(sorted(names))[(F @ E.T).argmax(axis=1)]
print(f"CLIP zero-shot by hand: {np.mean(zero_shot == y_test):.3f}")

# %%
# GPT-2: last-token features of a decoder language model, on SST-2
# -----------------------------------------------------------------
from datasets import load_dataset  # noqa: E402  (pip install datasets)

sst2 = load_dataset("stanfordnlp/sst2")
texts, labels = sst2["train"]["sentence"][:2000], sst2["train"]["label"][:2000]
val_texts, val_labels = sst2["validation"]["sentence"], sst2["validation"]["label"]
clf = FAASTClassifier(backbone="gpt2").fit(texts, labels)
print(f"GPT-2 (124M) last-token features, 2,000 rows: {clf.score(val_texts, val_labels):.3f}")

# A chosen layer, or mean pooling, through a BackboneSpec:
from faast_sklearn.backbones import BackboneSpec  # noqa: E402

middle = BackboneSpec("gpt2", model_kwargs={"layer": 6, "pooling": "mean"})
clf = FAASTClassifier(backbone=middle).fit(texts, labels)
print(f"GPT-2 layer 6, mean pooling: {clf.score(val_texts, val_labels):.3f}")
