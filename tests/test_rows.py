"""LazyRows: views instead of copies under scikit-learn's indexing, row keys computed once."""

import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from sklearn.model_selection import (  # noqa: E402
    GridSearchCV,
    cross_val_predict,
    cross_val_score,
    train_test_split,
)
from sklearn.utils import _safe_indexing  # noqa: E402

from faast_sklearn import FAASTClassifier, FAASTRegressor, LazyRows  # noqa: E402
from faast_sklearn.features import FeatureExtractor, extraction_stats  # noqa: E402
from faast_sklearn.features._sources import ArraySource  # noqa: E402


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    y = np.repeat([0, 1, 2], 20)
    return X, y


class Pairs(torch.utils.data.Dataset):
    """(image tensor, label) items, counting reads."""

    def __init__(self, X, y):
        self.X, self.y, self.reads = X, y, 0

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        self.reads += 1
        return torch.from_numpy(self.X[i]), int(self.y[i])


def tiny_classifier(**kw):
    return FAASTClassifier(backbone="test_tiny", device="cpu", **kw)


def grid(X, y):
    search = GridSearchCV(tiny_classifier(), {"alpha": [0.1, 1.0, 10.0]}, cv=3)
    return search.fit(X, y).cv_results_["mean_test_score"]


# ------------------------------------------------------------------ the container


def test_indexing_gives_views_of_the_same_rows(data):
    X, _ = data
    rows = LazyRows(X)
    assert rows.shape == X.shape and len(rows) == 60 and rows.ndim == 4 and rows.dtype == X.dtype
    mask = np.arange(60) % 4 == 1
    for key in (slice(5, 40, 3), [3, 1, 59, 1], np.array([-1, 0, -60]), mask, np.array([], int)):
        view = rows[key]
        assert isinstance(view, LazyRows)
        np.testing.assert_array_equal(np.asarray(view), X[key])
        assert view.shape == X[key].shape
    nested = rows[10:50][[0, 5, -1]][1:]
    np.testing.assert_array_equal(nested.rows, [15, 49])
    np.testing.assert_array_equal(np.asarray(nested), X[[15, 49]])
    np.testing.assert_array_equal(rows[7], X[7])
    np.testing.assert_array_equal(rows[-2], X[58])
    np.testing.assert_array_equal(np.stack(list(rows[2:5])), X[2:5])
    np.testing.assert_array_equal(np.asarray(rows[torch.tensor([4, 2])]), X[[4, 2]])
    # scikit-learn indexes rows as X[indices, ...] and with its own helper.
    assert isinstance(rows[[1, 2], ...], LazyRows)
    picked = _safe_indexing(rows, np.array([9, 3]))
    assert isinstance(picked, LazyRows)
    np.testing.assert_array_equal(np.asarray(picked), X[[9, 3]])
    np.testing.assert_array_equal(rows[:, 0], X[:, 0])  # other axes: the rows, then NumPy
    assert "LazyRows(ndarray of shape (60, 32, 32, 3) and dtype uint8: 3 of 60 rows)" == repr(
        rows[:3]
    )
    assert np.asarray(rows[:2], dtype=np.float32).dtype == np.float32
    # 0-d integer keys are integers; small index dtypes do not overflow (n + index).
    np.testing.assert_array_equal(rows[np.array(3)], X[3])
    np.testing.assert_array_equal(rows[torch.tensor(-1)], X[59])
    small = np.array([-1, -60, 5], dtype=np.int8)
    np.testing.assert_array_equal(LazyRows(np.zeros((200, 2)))[small].rows, [199, 140, 5])


def test_string_arrays_are_samples_and_bfloat16_tensors_become_arrays():
    texts = np.array([f"sentence {i}" for i in range(10)])
    rows = LazyRows(texts)
    assert rows.shape == (10,) and rows[3] == "sentence 3"
    assert list(rows[[4, 1]]) == ["sentence 4", "sentence 1"]

    def lengths(batch):
        return np.array([[len(s)] for s in batch], dtype=np.float32)

    ext = FeatureExtractor(lengths, device="cpu")
    np.testing.assert_array_equal(ext.transform(rows[[9, 0]]), [[10.0], [10.0]])
    paths = np.array(["a.png", "b.png"], dtype=object)
    assert list(LazyRows(paths)[::-1]) == ["b.png", "a.png"]
    bf16 = torch.arange(6, dtype=torch.bfloat16).reshape(3, 2)
    np.testing.assert_array_equal(np.asarray(LazyRows(bf16)[1:]), [[2, 3], [4, 5]])


def test_the_wrapped_array_is_a_private_read_only_copy(data):
    X, _ = data
    X = X.copy()
    rows = LazyRows(X)
    before = np.asarray(rows[:5])
    X[:5] = 0  # the caller changes X afterwards: the view (and its row keys) do not
    np.testing.assert_array_equal(np.asarray(rows[:5]), before)
    with pytest.raises(ValueError, match="read-only"):
        rows[0][0, 0, 0] = 1
    shared = LazyRows(X, copy=False)
    assert np.shares_memory(shared[0], X)
    t = torch.from_numpy(X.copy())
    trows = LazyRows(t)
    t.zero_()
    assert trows[10].sum() > 0 and torch.is_tensor(trows[10])
    big = np.random.default_rng(1).integers(0, 256, (600, 100, 100, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(LazyRows(big)), big)  # copied in parallel parts


@pytest.mark.parametrize(
    ("make", "exc", "match"),
    [
        (lambda X: LazyRows(5), TypeError, "LazyRows wraps"),
        (lambda X: LazyRows({"a": 1}), TypeError, "not a dict"),
        (lambda X: LazyRows(np.array(1.0)), ValueError, "0-d"),
        (lambda X: LazyRows(X)[60], IndexError, "out of bounds"),
        (lambda X: LazyRows(X)[[0, 60]], IndexError, "index 60 is out of bounds"),
        (lambda X: LazyRows(X)[np.ones(3, bool)], IndexError, "boolean index"),
        (lambda X: LazyRows(X)[np.array([0.5])], IndexError, "float64"),
        (lambda X: LazyRows(X)[{"a": 1}], IndexError, "dict"),
        (lambda X: np.asarray(LazyRows(Pairs(X, X[:, 0, 0, 0]))), TypeError, "no array form"),
        (lambda X: np.asarray(LazyRows(X)[:2], copy=False), ValueError, "copying"),
    ],
)
def test_bad_use_raises_clear_errors(data, make, exc, match):
    with pytest.raises(exc, match=match):
        make(data[0])


def test_pickles_with_its_row_keys(data):
    X, y = data
    rows = LazyRows(X)
    ext = FeatureExtractor("test_tiny", device="cpu")
    feats = ext.transform(rows[:30])
    back = pickle.loads(pickle.dumps(rows[:30]))
    assert back._base.memo[("keys", "array")][1][:30].all()  # keys travel, adapters do not
    np.testing.assert_array_equal(ext.transform(back), feats)
    np.testing.assert_array_equal(np.asarray(back), X[:30])
    with pytest.raises(ValueError, match="read-only"):
        back[0][0, 0, 0] = 1  # still a private copy after the round trip
    assert pickle.loads(pickle.dumps(LazyRows(X.copy(), copy=False)))[0].flags.writeable


# ------------------------------------------------------------------ with scikit-learn


def test_grid_search_equals_plain_arrays_and_keys_each_row_once(data, monkeypatch):
    X, y = data
    expected = grid(X, y)
    keyed = []
    original = ArraySource.keys

    def counting(self, idx):
        keyed.append(len(idx))
        return original(self, idx)

    monkeypatch.setattr(ArraySource, "keys", counting)
    from faast_sklearn import clear_cache
    from faast_sklearn.features import reset_extraction_stats

    clear_cache()
    reset_extraction_stats()
    rows = LazyRows(X)
    np.testing.assert_allclose(grid(rows, y), expected, rtol=0, atol=1e-12)
    assert extraction_stats()["samples"] == 60  # the backbone sees each image once
    assert sum(keyed) == 60  # and each row is keyed once, for 19 extraction calls
    assert ("keyer",) not in rows._base.memo  # no adapter kept once every row is keyed


def test_other_model_selection_helpers_take_views(data):
    X, y = data
    rows = LazyRows(X)
    X_train, X_test, y_train, y_test = train_test_split(rows, y, random_state=0, stratify=y)
    assert isinstance(X_train, LazyRows) and len(X_test) == 15
    score = tiny_classifier().fit(X_train, y_train).score(X_test, y_test)
    plain = train_test_split(X, y, random_state=0, stratify=y)
    assert score == tiny_classifier().fit(plain[0], plain[2]).score(plain[1], plain[3])
    np.testing.assert_array_equal(
        cross_val_predict(tiny_classifier(), rows, y, cv=3),
        cross_val_predict(tiny_classifier(), X, y, cv=3),
    )


def test_features_without_a_backbone(data):
    rng = np.random.default_rng(0)
    F = rng.normal(size=(60, 6))
    y = rng.normal(size=60)
    np.testing.assert_allclose(
        cross_val_score(FAASTRegressor(), LazyRows(F), y, cv=3),
        cross_val_score(FAASTRegressor(), F, y, cv=3),
        rtol=1e-12,
    )


def test_datasets_are_read_once_and_plain_datasets_work(data):
    X, y = data
    expected = grid(X, y)
    pairs = Pairs(X, y)
    # A plain Dataset: scikit-learn's folds are lists of (image, label) items, read anew
    # for every fit and score.
    np.testing.assert_allclose(grid(pairs, y), expected, rtol=0, atol=1e-12)
    assert pairs.reads == (3 * 3 + 1) * 60  # 3 alphas x 3 folds (train + test), the refit
    pairs = Pairs(X, y)
    np.testing.assert_allclose(grid(LazyRows(pairs), y), expected, rtol=0, atol=1e-12)
    assert pairs.reads == 60  # each item decoded once, to be keyed and extracted


def test_lists_and_text(data, tmp_path):
    X, y = data
    from PIL import Image

    paths = []
    for i, image in enumerate(X):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    np.testing.assert_allclose(grid(LazyRows(paths), y), grid(X, y), rtol=0, atol=1e-12)

    def lengths(batch):
        return np.array([[len(s), s.count("a")] for s in batch], dtype=np.float32)

    texts = [f"{'a' * (i % 7)} sample {i}" for i in range(60)]
    ext = FeatureExtractor(lengths, device="cpu")
    np.testing.assert_array_equal(ext.transform(LazyRows(texts)[5:9]), lengths(texts[5:9]))


def test_empty_views_and_text_backbones_on_images_fail_clearly(data):
    X, y = data
    with pytest.raises(ValueError, match="no samples"):
        FeatureExtractor("test_tiny", device="cpu").transform(LazyRows(X)[:0])
    from faast_sklearn.features._dispatch import make_source

    with pytest.raises(TypeError, match=r"text model.*got LazyRows\(ndarray"):
        make_source(LazyRows(X)[:5], "text", None, 0)


@pytest.mark.gpu
def test_gpu_grid_search_on_views_of_host_arrays_and_cuda_tensors(data):
    # Host uint8 arrays and a CUDA tensor of images, wrapped: each image goes through the
    # backbone once and is keyed once; the search scores what it scores on the plain array.
    X, y = data
    X = np.concatenate([X] * 20) + (np.arange(1200) // 60).astype(np.uint8)[:, None, None, None]
    y = np.tile(y, 20)

    def search(data):
        est = FAASTClassifier(backbone="test_tiny", device="cuda")
        return GridSearchCV(est, {"alpha": [0.1, 1.0, 10.0]}, cv=3).fit(data, y)

    from faast_sklearn import clear_cache
    from faast_sklearn.features import reset_extraction_stats

    expected = search(X).cv_results_["mean_test_score"]
    for data in (LazyRows(X), LazyRows(torch.from_numpy(X).cuda())):
        clear_cache()
        reset_extraction_stats()
        found = search(data)
        np.testing.assert_allclose(found.cv_results_["mean_test_score"], expected, atol=0.01)
        assert extraction_stats()["samples"] == 1200
        assert data._base.memo[("keys", "array")][1].all()
        assert ("keyer",) not in data._base.memo  # nor the host copy it made for keying
        np.testing.assert_array_equal(found.predict(data[:50]), found.predict(X[:50]))


def test_frames_and_sparse_matrices_are_refused():
    import scipy.sparse

    pd = pytest.importorskip("pandas")
    for X in (pd.DataFrame({"a": [1.0, 2.0]}), scipy.sparse.eye(3, format="csr")):
        with pytest.raises(TypeError, match="not a"):
            LazyRows(X)


def test_pixel_checks_cover_the_views_rows_only(data):
    X, _ = data
    X = X.astype(np.float32) / 255
    X[0, 0, 0, 0] = np.nan
    X[1] *= 255
    ext = FeatureExtractor("test_tiny", device="cpu")
    for rows in (LazyRows(X), LazyRows(torch.from_numpy(X))):
        with pytest.raises(ValueError, match="NaN or infinity"):
            ext.transform(rows[:5])
        with pytest.warns(UserWarning, match=r"\[0, 1\]"):
            ext.transform(rows[1:5])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ext.transform(rows[2:])
    with pytest.raises(ValueError, match="NaN or infinity"):
        ext.transform(X)
