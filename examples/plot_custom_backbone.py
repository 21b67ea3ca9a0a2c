"""
Custom backbones: a callable, or a registered factory
=====================================================

Besides the registered names (``"efficientnet_lite0"``, ``"minilm"``, ``"vit_base"``...),
``timm:<model>`` and ``hf:<model>``, a backbone can be

* any **callable** mapping a batch of inputs to an ``(n, d)`` feature array: here a fitted
  scikit-learn :class:`~sklearn.decomposition.PCA` followed by random Fourier features;
* a **registered factory** (:func:`~faast_sklearn.backbones.register_backbone`) that builds a
  torch module once per process; the estimator then takes the backbone by *name*, so clones,
  grid searches and pickles never copy the network.

Both on scikit-learn's 8x8 digits, on the CPU.
"""

# %%
# A callable backbone
# -------------------
# The callable receives slices of ``X`` as given (no preprocessing) and returns features.
# A module-level function of fitted objects pickles, so its features are cached by content.
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split

from faast_sklearn import FAASTClassifier

digits = load_digits()
images = np.round(digits.images * (255 / 16)).astype(np.uint8)  # (n, 8, 8) grey images
X_train, X_test, y_train, y_test = train_test_split(
    images, digits.target, test_size=0.5, stratify=digits.target, random_state=0
)

pca = PCA(n_components=32, random_state=0).fit(X_train.reshape(len(X_train), -1) / 255)
rng = np.random.default_rng(0)
projection = rng.normal(scale=0.5, size=(32, 1024))
phase = rng.uniform(0, 2 * np.pi, size=1024)


def random_features(batch):
    """PCA to 32 dimensions, then 1024 random Fourier features (an RBF kernel's map)."""
    z = pca.transform(np.asarray(batch).reshape(len(batch), -1) / 255)
    return np.cos(z @ projection + phase)


clf = FAASTClassifier(backbone=random_features).fit(X_train, y_train)
print(
    f"callable backbone:   accuracy {clf.score(X_test, y_test):.3f}  ({clf.n_features_in_} features)"
)

# %%
# A registered torch backbone
# ---------------------------
# A factory takes ``pretrained``, ``weights`` and ``image_size`` (plus any keyword arguments
# of a :class:`~faast_sklearn.backbones.BackboneSpec`) and returns a
# :class:`~faast_sklearn.backbones.Backbone`: the module, its feature dimension and the
# image preprocessing (timm's ``data_config``). Grey uint8 images are read as 0-255,
# repeated to 3 channels, resized and normalised before the module sees them.
import torch  # noqa: E402

from faast_sklearn.backbones import Backbone, list_backbones, register_backbone  # noqa: E402


def small_conv_factory(*, pretrained, weights, image_size, width=64):
    if pretrained and weights is None:
        raise ValueError("small_conv has no pretrained weights: pass pretrained=False.")
    gen = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(width, 2 * width, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    size = image_size or 16
    return Backbone(
        model=model.eval(),
        n_features=8 * width,
        modality="image",
        data_config={
            "input_size": (3, size, size),
            "interpolation": "bilinear",
            "mean": (0.5, 0.5, 0.5),
            "std": (0.25, 0.25, 0.25),
            "crop_pct": 1.0,
            "crop_mode": "center",
        },
        description="small_conv (random weights)",
    )


register_backbone("small_conv", small_conv_factory, overwrite=True, modality="image")
print("registered:", "small_conv" in list_backbones())

# %%
# The name is now a backbone like any other. Random weights need ``pretrained=False``, which
# is a :class:`~faast_sklearn.features.FeatureExtractor` parameter: pass a configured
# extractor as the backbone.
from faast_sklearn.features import FeatureExtractor  # noqa: E402

extractor = FeatureExtractor("small_conv", pretrained=False, device="cpu")
clf = FAASTClassifier(backbone=extractor).fit(X_train, y_train)
print(
    f"registered backbone: accuracy {clf.score(X_test, y_test):.3f}  ({clf.n_features_in_} features)"
)
