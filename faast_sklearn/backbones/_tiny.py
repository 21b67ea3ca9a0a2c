"""A tiny, explicitly random image backbone for fast tests and examples."""

from __future__ import annotations

from typing import Any

from ..utils._torch import import_torch
from ._registry import Backbone, register_backbone


def _tiny_factory(
    *, pretrained: bool, weights: Any, image_size: int | None, n_features: int = 16
) -> Backbone:
    torch = import_torch()
    nn = torch.nn
    # Seeded from a private generator: the same weights in every process (so features agree
    # across processes and the disk cache) without touching torch's global RNG.
    gen = torch.Generator().manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, n_features, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    size = image_size or 32
    return Backbone(
        model=model.eval(),
        n_features=n_features,
        modality="image",
        data_config={
            "input_size": (3, size, size),
            "interpolation": "bilinear",
            "mean": (0.485, 0.456, 0.406),
            "std": (0.229, 0.224, 0.225),
            "crop_pct": 1.0,
            "crop_mode": "center",
        },
        description="test_tiny (random weights, for tests)",
    )


register_backbone(
    "test_tiny",
    _tiny_factory,
    modality="image",
    n_features=16,
    source="a two-layer random conv net (seeded), for tests only",
    offline=True,
)
