"""Real labelled data that needs no download, and a feature cache.

Data sets (each returns a support pool and a held-out query pool):

- ``fashion_mnist``: all 70,000 Fashion-MNIST images from the Debian package
  ``dataset-fashion-mnist`` (IDX ``.gz`` files under ``/usr/share/datasets/fashion-mnist/``,
  parsed here with NumPy). Support pool: the 60,000 training images; queries: the 10,000 test
  images. Install: ``apt-get install dataset-fashion-mnist``.
- ``digits``: scikit-learn's ``load_digits`` (1,797 8x8 images, 10 classes), split 50/50
  stratified with a fixed seed.
- ``lfw_subset``: scikit-image's ``skimage.data.lfw_subset()`` (200 25x25 grey images,
  100 faces then 100 non-faces; ships inside the scikit-image wheel), split 50/50 stratified.
- ``reuters_tm`` (text): the Reuters-21578 ``acq`` (50) and ``crude`` (20) articles that the
  Debian package ``r-cran-tm`` ships as XML under ``/usr/lib/R/site-library/tm/texts``
  (``apt-get install r-cran-tm``, or ``apt-get download r-cran-tm`` and ``dpkg-deb -x`` it
  somewhere and point ``FAAST_TM_TEXTS`` at its ``.../tm/texts``). Tiny: 2 classes, 70 docs;
  the only real labelled text set we found offline. Split 50/50 stratified.

Features: :func:`cached_features` runs ``faast_sklearn.features.FeatureExtractor`` once per
(data set, split, backbone, image size) and stores a ``.npy`` under ``benchmarks/.cache``
(not tracked by git).
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np

# One Fashion-MNIST reader for the package, its demo and the benchmarks.
from faast_sklearn.datasets import (  # noqa: F401 (re-exported for the scripts)
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    load_fashion_mnist,
    load_idx,
)

TM_TEXTS_DIR = Path("/usr/lib/R/site-library/tm/texts")
CACHE_DIR = Path(__file__).resolve().parent / ".cache"


__all__ = [
    "DATASETS",
    "cached_features",
    "load_dataset",
    "load_fashion_mnist",
    "load_idx",
    "load_reuters_tm",
]


def load_reuters_tm(root: str | os.PathLike | None = None):
    """Reuters-21578 ``acq``/``crude`` articles shipped by Debian's ``r-cran-tm``.

    Returns ``(texts, labels)`` with text = title + body, label ``"acq"`` or ``"crude"``.
    """
    root = Path(root or os.environ.get("FAAST_TM_TEXTS", TM_TEXTS_DIR))
    if not (root / "acq").is_dir():
        raise FileNotFoundError(
            f"{root}/acq not found: run `apt-get install r-cran-tm`, or "
            "`apt-get download r-cran-tm && dpkg-deb -x r-cran-tm_*.deb DIR` and set "
            "FAAST_TM_TEXTS=DIR/usr/lib/R/site-library/tm/texts"
        )
    texts, labels = [], []
    for label in ("acq", "crude"):
        for f in sorted((root / label).glob("*.xml")):
            raw = f.read_text(encoding="utf-8", errors="replace")
            title = re.search(r"<TITLE>(.*?)</TITLE>", raw, re.S)
            body = re.search(r"<BODY>(.*?)</BODY>", raw, re.S)
            text = " ".join(m.group(1) for m in (title, body) if m)
            texts.append(html.unescape(re.sub(r"\s+", " ", text)).strip())
            labels.append(label)
    return np.array(texts, dtype=object), np.array(labels)


def _split(X, y, seed=0, test_size=0.5):
    from sklearn.model_selection import train_test_split

    return train_test_split(X, y, test_size=test_size, stratify=y, random_state=seed)


def load_dataset(name: str, seed: int = 0) -> dict:
    """Load a named data set as raw inputs.

    Returns a dict with ``X_support``, ``y_support`` (the pool support rows are drawn from),
    ``X_query``, ``y_query`` (held out), ``kind`` (``"image"`` or ``"text"``) and
    ``raw_features`` (the inputs flattened to float32, usable directly as features for images).
    """
    if name == "fashion_mnist":
        Xs, ys = load_fashion_mnist("train")
        Xq, yq = load_fashion_mnist("test")
        kind = "image"
    elif name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        imgs = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
        Xs, Xq, ys, yq = _split(imgs, d.target.astype(np.int64), seed)
        kind = "image"
    elif name == "lfw_subset":
        from skimage.data import lfw_subset

        imgs = (lfw_subset() * 255).round().astype(np.uint8)
        y = np.repeat([1, 0], 100)  # 100 faces, then 100 non-faces (skimage docs)
        Xs, Xq, ys, yq = _split(imgs, y, seed)
        kind = "image"
    elif name == "reuters_tm":
        texts, y = load_reuters_tm()
        Xs, Xq, ys, yq = _split(texts, y, seed)
        kind = "text"
    else:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(DATASETS)}")
    out = {"name": name, "kind": kind, "X_support": Xs, "y_support": ys, "X_query": Xq,
           "y_query": yq}  # fmt: skip
    if kind == "image":
        out["raw_support"] = Xs.reshape(len(Xs), -1).astype(np.float32) / 255.0
        out["raw_query"] = Xq.reshape(len(Xq), -1).astype(np.float32) / 255.0
    return out


DATASETS = {
    "fashion_mnist": "Fashion-MNIST (Debian dataset-fashion-mnist), 10 classes, 60k/10k",
    "digits": "scikit-learn digits, 10 classes, 1,797 images split 50/50",
    "lfw_subset": "scikit-image lfw_subset, faces vs non-faces, 200 images split 50/50",
    "reuters_tm": "Reuters-21578 acq vs crude (Debian r-cran-tm), 70 texts split 50/50",
}


def to_rgb_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Grey ``(N, H, W)`` uint8 images -> ``(N, size, size, 3)`` uint8 (bilinear resize)."""
    import torch

    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for start in range(0, len(images), 2048):
        t = torch.as_tensor(images[start : start + 2048], dtype=torch.float32)[:, None]
        t = torch.nn.functional.interpolate(
            t, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
        t = t.clamp(0, 255).round().to(torch.uint8)[:, 0]
        out[start : start + 2048] = t[..., None].expand(-1, -1, -1, 3).numpy()
    return out


def _make_extractor(
    backbone: str, image_size: int | None, device: str, batch_size: int, pretrained: bool
):
    try:
        from faast_sklearn.backbones import BackboneSpec
        from faast_sklearn.features import FeatureExtractor
    except ImportError as exc:  # pragma: no cover - depends on the package state
        raise ImportError(
            "faast_sklearn.features.FeatureExtractor is not available "
            f"({exc}); install the package (`pip install -e .[torch]`) or pass precomputed "
            "features with --features PATH.npz"
        ) from exc
    spec = BackboneSpec(backbone, image_size=image_size) if image_size else backbone
    return FeatureExtractor(
        spec, pretrained=pretrained, device=device, batch_size=batch_size, verbose=0
    )


def cached_features(
    dataset: dict,
    split: str,
    backbone: str = "efficientnet_lite0",
    *,
    image_size: int | None = 64,
    device: str = "auto",
    batch_size: int = 256,
    cache_dir: str | os.PathLike | None = None,
    pretrained: bool = True,
    verbose: int = 1,
) -> np.ndarray:
    """Features of ``dataset[f"X_{split}"]`` through ``FeatureExtractor(backbone)``, cached.

    Grey images are made 3-channel here (``(N, H, W, 3)`` uint8) and the extractor resizes
    them to ``image_size`` px through ``BackboneSpec(backbone, image_size=...)`` (``None``: the
    backbone's pretrained resolution); texts are passed as a list of strings.
    ``pretrained=False`` uses random weights (for timing runs only; the file name says so).
    The ``.npy`` lands in ``cache_dir`` (default ``benchmarks/.cache``) under a name that holds
    the data set, split, backbone, image size and row count; a second call loads it.
    """
    cache = Path(cache_dir or CACHE_DIR)
    cache.mkdir(parents=True, exist_ok=True)
    X = dataset[f"X_{split}"]
    size_tag = f"{image_size}px" if dataset["kind"] == "image" else "text"
    size_tag += "" if pretrained else "-random"
    path = cache / f"{dataset['name']}-{split}-{backbone}-{size_tag}-n{len(X)}.npy"
    if path.exists():
        return np.load(path)
    import time

    size = image_size if dataset["kind"] == "image" else None
    ext = _make_extractor(backbone, size, device, batch_size, pretrained)
    t0 = time.perf_counter()
    if dataset["kind"] == "image":
        inputs = np.repeat(X[..., None], 3, axis=-1) if X.ndim == 3 else X
    else:
        inputs = list(X)
    feats = np.asarray(ext.fit(inputs[:1]).transform(inputs), dtype=np.float32)
    if verbose:
        print(f"extracted {feats.shape} from {dataset['name']}/{split} with {backbone} "
              f"in {time.perf_counter() - t0:.1f} s -> {path}", flush=True)  # fmt: skip
    np.save(path, feats)
    return feats
