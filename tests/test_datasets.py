import gzip

import numpy as np
import pytest

from faast_sklearn.datasets import load_demo_images, load_fashion_mnist, load_idx


def _write_idx(path, arr, code):
    header = bytes([0, 0, code, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())


def test_idx_round_trip_and_fashion_mnist_layout(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5).astype(np.uint8)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, 0x08)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels, 0x08)
    np.testing.assert_array_equal(load_idx(tmp_path / "t10k-images-idx3-ubyte.gz"), images)
    X, y = load_fashion_mnist("test", root=tmp_path)
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    assert y.dtype == np.int64
    floats = rng.normal(size=(3, 4))
    _write_idx(tmp_path / "f.gz", floats, 0x0E)
    np.testing.assert_array_equal(load_idx(tmp_path / "f.gz"), floats)


def test_missing_files_and_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("train", root=tmp_path)
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation")
    (tmp_path / "bad.gz").write_bytes(gzip.compress(b"\x01\x02\x03\x04"))
    with pytest.raises(ValueError, match="not an IDX file"):
        load_idx(tmp_path / "bad.gz")


def test_demo_images_are_real_labelled_images():
    name, Xtr, ytr, Xte, yte, classes = load_demo_images()
    assert name in ("Fashion-MNIST", "digits")
    assert Xtr.dtype == np.uint8 and Xtr.ndim == 3 and len(Xtr) == len(ytr)
    assert set(np.unique(yte)) == set(range(len(classes)))
