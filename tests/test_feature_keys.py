"""Cache keys that cannot go stale, and a cache that stays within its bound (issue 13)."""

import os
import threading
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.decomposition import PCA  # noqa: E402

from faast_sklearn import FAASTRegressor, cache_info, clear_cache, config_context  # noqa: E402
from faast_sklearn.features import FeatureExtractor, extraction_stats  # noqa: E402

ROWS = np.arange(24.0).reshape(12, 2)
pca = PCA(n_components=2).fit(np.random.default_rng(0).normal(size=(40, 4)))


def projected(batch):
    """The pattern of examples/plot_custom_backbone.py: a global fitted estimator."""
    return pca.transform(np.asarray(batch, dtype=np.float64))


def features(fn, X=ROWS, **kw):
    return FeatureExtractor(fn, device="cpu", **kw).transform(X)


def test_a_redefined_callable_gets_new_features():
    # A notebook cell re-run with a change: same name, same module, new code or constants.
    cell = {}
    exec("def backbone(batch):\n    return batch[:, :1] * 1.0", cell)
    first = features(cell["backbone"])
    exec("def backbone(batch):\n    return batch[:, :1] * 2.0", cell)
    np.testing.assert_array_equal(features(cell["backbone"]), 2 * first)
    exec("scale = 3.0\ndef backbone(batch):\n    return batch[:, :1] * scale", cell)
    np.testing.assert_array_equal(features(cell["backbone"]), 3 * first)
    cell["scale"] = 4.0  # a global it reads, changed
    np.testing.assert_array_equal(features(cell["backbone"]), 4 * first)
    np.testing.assert_array_equal(features(cell["backbone"]), 4 * first)  # and now cached
    assert extraction_stats()["hits"] == len(ROWS)


def test_a_redefined_class_gets_new_features():
    # Callable objects and the classes a function reads are keyed by their code and class
    # attributes, not by their names.
    cell = {"__name__": "notebook_cell"}  # a module of user code
    exec("class Embed:\n    def __call__(self, batch):\n        return batch[:, :1] * 2.0", cell)
    first = features(cell["Embed"]())
    exec("class Embed:\n    def __call__(self, batch):\n        return batch[:, :1] * 3.0", cell)
    np.testing.assert_array_equal(features(cell["Embed"]()), 1.5 * first)
    exec(
        "class Settings:\n    scale = 2.0\n"
        "def backbone(batch):\n    return batch[:, :1] * Settings.scale",
        cell,
    )
    np.testing.assert_array_equal(features(cell["backbone"]), first)
    cell["Settings"].scale = 5.0  # a class attribute, changed in place
    np.testing.assert_array_equal(features(cell["backbone"]), 2.5 * first)


def test_a_refitted_global_estimator_gives_its_new_width():
    global pca
    X = np.random.default_rng(1).normal(size=(30, 6))
    y = X[:, 0]
    pca = PCA(n_components=5).fit(X)
    assert FAASTRegressor(backbone=projected).fit(X, y).n_features_in_ == 5
    pca = PCA(n_components=2).fit(X)
    assert FAASTRegressor(backbone=projected).fit(X, y).n_features_in_ == 2
    pca = PCA(n_components=2).fit(X[::-1] ** 2)  # same width, other components
    np.testing.assert_allclose(features(projected, X), pca.transform(X), rtol=1e-6)


def test_each_lambda_of_a_loop_gets_its_own_features():
    backbones = [lambda b, k=k: b[:, :1] * k for k in range(8)]
    backbones.append(lambda b: np.where(b[:, :1] > 5, np.nan, 1.0))
    for k, fn in enumerate(backbones[:8]):
        np.testing.assert_array_equal(features(fn), ROWS[:, :1] * k)
    assert np.isnan(features(backbones[8])).sum() == 9
    for k, fn in enumerate(backbones[:8]):  # cached: still their own
        np.testing.assert_array_equal(features(fn), ROWS[:, :1] * k)


@pytest.mark.parametrize("how", ["in place", "renamed over"])
def test_a_file_replaced_with_the_same_size_and_mtime_is_read_again(tmp_path, how):
    from PIL import Image

    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    path = tmp_path / "image.bmp"  # uncompressed: equal sizes
    Image.fromarray(a).save(path)
    before = os.stat(path)
    ext = FeatureExtractor("test_tiny", device="cpu")
    first = ext.transform([str(path)])
    if how == "in place":
        Image.fromarray(b).save(path)
    else:
        Image.fromarray(b).save(tmp_path / "new.bmp")
        os.replace(tmp_path / "new.bmp", path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # cp -p, rsync -t, tar -x
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    again = ext.transform([str(path)])
    np.testing.assert_array_equal(again, ext.transform(b[None]))
    assert not np.array_equal(again, first)


def _locked_backbone():
    lock = threading.Lock()  # unpicklable: the callable cannot be keyed by content

    def locked(batch):
        with lock:
            return np.asarray(batch, dtype=np.float32)[:, :1] + 1

    return locked


def test_an_unkeyable_callable_warns_once_works_and_can_opt_in():
    fn = _locked_backbone()
    ext = FeatureExtractor(fn, device="cpu")
    with pytest.warns(UserWarning, match="not cached.*__faast_key__.*register_backbone"):
        out, key = ext.extract(ROWS, return_key=True)
    np.testing.assert_array_equal(out, ROWS[:, :1] + 1)
    assert key is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per callable
        np.testing.assert_array_equal(ext.transform(ROWS), ROWS[:, :1] + 1)
    assert extraction_stats()["samples"] == 2 * len(ROWS)  # computed each time
    assert cache_info()["entries"] == 0
    opted = _locked_backbone()
    opted.__faast_key__ = "locked-v1"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first, key = FeatureExtractor(opted, device="cpu").extract(ROWS, return_key=True)
        FeatureExtractor(opted, device="cpu").transform(ROWS)
    assert key is not None and extraction_stats()["samples"] == 3 * len(ROWS)


def test_keys_name_the_features_and_caching_turns_off():
    ext = FeatureExtractor(lambda b: b * 2, device="cpu")
    _, key = ext.extract(ROWS, return_key=True)
    _, same = ext.extract(ROWS.copy(), return_key=True)
    _, fold = ext.extract(ROWS[:6], return_key=True)
    _, other = FeatureExtractor(lambda b: b * 3, device="cpu").extract(ROWS, return_key=True)
    assert key == same and len({key, fold, other}) == 3
    clear_cache()
    with config_context(cache=False):
        out, key = ext.extract(ROWS, return_key=True)
        assert key is None and cache_info()["entries"] == 0
    out, key = FeatureExtractor(lambda b: b * 2, device="cpu", cache=False).extract(
        ROWS, return_key=True
    )
    assert key is None and cache_info()["entries"] == 0
    np.testing.assert_array_equal(out, ROWS * 2)


@pytest.mark.slow
def test_a_million_distinct_rows_stay_within_the_bound():
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    bound = 16 * 1024**2
    ext = FeatureExtractor(lambda b: b, device="cpu", batch_size=4096)
    rows = np.arange(1_000_000, dtype=np.float32)[:, None]
    with config_context(cache_bytes=bound):
        ext.transform(rows[:20_000])
        start = process.memory_info().rss
        peak_cache = 0
        for i in range(0, len(rows), 20_000):
            ext.transform(rows[i : i + 20_000])
            peak_cache = max(peak_cache, cache_info()["nbytes"].get("cpu", 0))
        grown = process.memory_info().rss - start
    assert 0 < peak_cache <= bound
    # The cache's own bytes, plus what one call uses: not the ~230 MB a million rows' keys
    # and index would cost unbounded.
    assert grown < 1.2 * bound + 32 * 1024**2, grown


def test_leaving_a_context_that_raised_the_bound_applies_the_old_one():
    ext = FeatureExtractor(lambda b: np.repeat(b, 64, 1), device="cpu")
    rows = np.arange(4000.0, dtype=np.float32)[:, None]
    with config_context(cache_bytes=1 << 20):
        with config_context(cache_bytes=1 << 30):
            ext.transform(rows)
            assert cache_info()["nbytes"]["cpu"] > 1 << 20
        assert 0 < cache_info()["nbytes"].get("cpu", 0) <= 1 << 20 or not cache_info()["entries"]


def test_row_keys_are_content_keys_of_the_rows():
    from faast_sklearn.utils._content_key import content_key, content_keys

    rows = np.random.default_rng(0).integers(0, 256, (5, 7), dtype=np.uint8)
    expected = [content_key("p", memoryview(r)) for r in rows]
    assert content_keys("p", rows) == expected and len(set(expected)) == 5
    assert content_keys(("p", 1), [b""]) == [content_key(("p", 1), b"")]
