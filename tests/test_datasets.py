import gzip
from pathlib import Path

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


def test_load_image_folder_layout_and_errors(tmp_path):
    from PIL import Image

    from faast_sklearn.datasets import load_image_folder

    for name, files in {"b_dog": ["x.PNG", "sub/y.jpeg"], "a_cat": ["z.webp", "note.txt"]}.items():
        for f in files:
            p = tmp_path / name / f
            p.parent.mkdir(parents=True, exist_ok=True)
            if f.endswith(".txt"):
                p.write_text("not an image")
            else:
                Image.new("RGB", (12, 9), (10, 20, 30)).save(
                    p, format=Image.registered_extensions()[p.suffix.lower()]
                )
    (tmp_path / ".hidden").mkdir()
    data = load_image_folder(tmp_path)
    assert data.target_names == ["a_cat", "b_dog"]
    assert [Path(p).name for p in data.data] == ["z.webp", "y.jpeg", "x.PNG"]
    np.testing.assert_array_equal(data.target, [0, 1, 1])
    X, y = load_image_folder(tmp_path, return_X_y=True)
    assert X == data.data and y.dtype == np.int64
    # A linked folder is followed (as torchvision's ImageFolder does); a link back to a
    # folder already read is not walked again.
    shard = tmp_path.parent / f"{tmp_path.name}_shard"
    shard.mkdir()
    Image.new("RGB", (12, 9)).save(shard / "w.png")
    (tmp_path / "a_cat" / "more").symlink_to(shard, target_is_directory=True)
    (tmp_path / "a_cat" / "loop").symlink_to(tmp_path / "a_cat", target_is_directory=True)
    linked = load_image_folder(tmp_path)
    assert [Path(p).name for p in linked.data] == ["w.png", "z.webp", "y.jpeg", "x.PNG"]
    (tmp_path / "a_cat" / "more").unlink()
    (tmp_path / "a_cat" / "loop").unlink()
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "c_empty").mkdir()
    with pytest.raises(ValueError, match="c_empty holds no image"):
        load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="no sub-folders"):
        load_image_folder(tmp_path / "b_dog" / "sub")
