import os

import numpy as np
import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fresh_feature_cache():
    # Feature-extraction tests count backbone calls and cache hits: each test starts empty.
    from faast_sklearn import clear_cache
    from faast_sklearn.features import reset_extraction_stats

    clear_cache()
    reset_extraction_stats()
    yield
    clear_cache()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run on the device machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
