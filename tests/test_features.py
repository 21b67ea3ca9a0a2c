"""FeatureExtractor with the tiny random backbone: inputs, batching, caching, pickling."""

import pickle
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from PIL import Image  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.linear_model import RidgeClassifier  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from faast_sklearn import cache_info, clear_cache, config_context  # noqa: E402
from faast_sklearn.backbones import clear_backbone_cache, load_backbone  # noqa: E402
from faast_sklearn.features import (  # noqa: E402
    FeatureExtractor,
    as_extractor,
    extraction_stats,
    reset_extraction_stats,
)


@pytest.fixture
def images():
    # 32x32 is test_tiny's input size with crop_pct=1: no resizing, so every input path
    # (array, tensor, PIL, file) must give bit-identical pixels and features.
    return np.random.default_rng(0).integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)


def tiny(**kw):
    kw.setdefault("device", "cpu")
    return FeatureExtractor("test_tiny", **kw)


def test_transform_shape_dtype_and_names(images):
    ext = tiny().fit(images)
    feats = ext.transform(images)
    assert feats.shape == (24, 16) and feats.dtype == np.float32
    assert ext.n_features_out_ == 16 and ext.device_ == "cpu"
    names = ext.get_feature_names_out()
    assert len(names) == 16 and names[0] == "featureextractor0"


def test_transform_needs_no_fit(images):
    np.testing.assert_array_equal(tiny().transform(images), tiny().fit(images).transform(images))


def test_every_image_input_type_agrees(images, tmp_path):
    ref = tiny(cache=False).transform(images)
    nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    pils = [Image.fromarray(im) for im in images]
    paths = []
    for i, im in enumerate(pils):
        paths.append(str(tmp_path / f"{i}.png"))
        im.save(paths[-1])

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return torch.from_numpy(nchw[i]), i % 2  # (image, label) pairs

    inputs = {
        "nhwc": images,
        "nchw": nchw,
        "float": images.astype(np.float32) / 255,
        "tensor_nchw": torch.from_numpy(nchw),
        "tensor_nhwc": torch.from_numpy(images),
        "pil": pils,
        "paths": paths,
        "pathlib": [tmp_path / f"{i}.png" for i in range(len(images))],
        "dataset": DS(),
        "list_of_arrays": list(images),
    }
    for name, X in inputs.items():
        out = tiny(cache=False, num_workers=2).transform(X)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5, err_msg=name)


def test_large_jpeg_files_agree_with_a_full_decode(tmp_path):
    # A 512 px JPEG for a 32 px model decodes at a reduced DCT scale (tests/test_decode.py
    # measures how close); its features stay those of the fully decoded image.
    yy, xx = np.mgrid[0:512, 0:512]
    photo = np.stack([np.sin(xx / 29.0), np.cos(yy / 17.0), np.sin((xx + yy) / 23.0)], -1)
    photo = (photo * 120 + 128).astype(np.uint8)
    path = str(tmp_path / "photo.jpg")
    Image.fromarray(photo).save(path, quality=95)
    with Image.open(path) as full:
        full.load()
        from_pil = tiny().transform([full])
    from_file = tiny().transform([path])
    cos = (from_pil * from_file).sum() / np.linalg.norm(from_pil) / np.linalg.norm(from_file)
    assert cos > 0.999


def test_grey_images_become_three_channels(images):
    grey = images[..., 0]
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    expected = tiny().transform(rgb)
    np.testing.assert_allclose(tiny().transform(grey), expected, atol=1e-6)
    np.testing.assert_allclose(tiny().transform(grey[..., None]), expected, atol=1e-6)
    pils = [Image.fromarray(g, mode="L") for g in grey]
    np.testing.assert_allclose(tiny().transform(pils), expected, atol=1e-6)


def test_resize_matches_pil_path():
    # Larger images of one size are resized on the device; PIL images on the host. Both follow
    # timm's eval transform, so they agree up to interpolation and rounding differences.
    X = np.random.default_rng(1).integers(0, 256, (6, 48, 64, 3), dtype=np.uint8)
    X = np.asarray(
        [
            np.asarray(Image.fromarray(x).filter(__import__("PIL.ImageFilter").ImageFilter.BLUR))
            for x in X
        ]
    )
    a = tiny().transform(X)
    b = tiny().transform([Image.fromarray(x) for x in X])
    assert a.shape == b.shape == (6, 16)
    np.testing.assert_allclose(a, b, rtol=0.05, atol=0.05)


def test_batched_equals_unbatched(images):
    full = tiny(batch_size=64, cache=False).transform(images)
    one = tiny(batch_size=1, cache=False).transform(images)
    odd = tiny(batch_size=5, cache=False).transform(images)
    np.testing.assert_allclose(one, full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(odd, full, rtol=1e-5, atol=1e-6)
    stats = extraction_stats()
    assert stats["forward_calls"] == 1 + 24 + 5


def test_cache_hit_equals_miss_and_counts(images):
    miss = tiny().transform(images)
    assert extraction_stats()["samples"] == 24
    hit = tiny(batch_size=3).transform(images[::-1])  # another instance, other order
    np.testing.assert_array_equal(hit, miss[::-1])
    stats = extraction_stats()
    assert stats["samples"] == 24 and stats["hits"] == 24
    mixed = np.concatenate([images[:5], images[:5] + 1])
    out = tiny().transform(mixed)
    assert extraction_stats()["samples"] == 29  # only the 5 new rows
    np.testing.assert_allclose(out, tiny(cache=False).transform(mixed), atol=1e-6)


def test_cache_stays_within_its_bound_and_evicts_oldest_first(images):
    # Each call's rows are one entry, counted with their index: within a bound of about two
    # calls' worth, the oldest call's rows go first and come back computed, equal.
    first = tiny().transform(images[:8])
    one_call = cache_info()["nbytes"]["cpu"]
    with config_context(cache_bytes=2 * one_call + one_call // 2):
        tiny().transform(images[8:16])
        tiny().transform(images[:4])  # a hit: the first call's rows are the most recent
        tiny().transform(images[16:24])  # the second call's rows go
        assert cache_info()["nbytes"]["cpu"] <= 2 * one_call + one_call // 2
        before = extraction_stats()["samples"]
        np.testing.assert_array_equal(tiny().transform(images[:8]), first)
        assert extraction_stats()["samples"] == before
        tiny().transform(images[8:16])
        assert extraction_stats()["samples"] == before + 8
    with config_context(cache_bytes=1000):  # a call larger than the bound: not kept
        clear_cache()
        tiny().transform(images[:8])
        before = extraction_stats()["samples"]
        tiny().transform(images[:8])
        assert extraction_stats()["samples"] == before + 8


def test_edited_rows_are_new_inputs_and_folds_hit(images):
    # A fold (rows seen before, in a new order, in a new array) comes from the cache; an
    # edited row is a new input, computed, while its neighbours keep their features.
    ext = tiny()
    full = ext.transform(images)
    fold = np.concatenate([images[::3], images[1::3]])
    fold[5, 3, 3] ^= 1
    out = ext.transform(fold)
    assert extraction_stats()["samples"] == 25
    order = np.concatenate([np.arange(0, 24, 3), np.arange(1, 24, 3)])
    np.testing.assert_array_equal(np.delete(out, 5, 0), np.delete(full[order], 5, 0))
    np.testing.assert_allclose(out[5], tiny(cache=False).transform(fold[5:6])[0], atol=1e-6)
    assert not np.array_equal(out[5], full[order[5]])


def test_cached_calls_make_no_forward_and_outputs_are_the_callers(images):
    ext = tiny()
    first = ext.transform(images)
    kept = first.copy()
    first[:] = 0  # the caller's array: the cache is unharmed
    calls = extraction_stats()["forward_calls"]
    np.testing.assert_array_equal(ext.transform(images[::-1].copy()), kept[::-1])
    again = ext.extract(images, as_tensor=True)
    again.zero_()
    np.testing.assert_array_equal(ext.transform(images), kept)
    assert extraction_stats()["forward_calls"] == calls


def test_duplicate_rows_are_computed_once(images):
    X = np.concatenate([images[:4]] * 3)
    out = tiny().transform(X)
    assert extraction_stats()["samples"] == 4
    np.testing.assert_array_equal(out[:4], out[8:])


def test_grid_search_runs_backbone_once_per_image():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    y = np.repeat([0, 1, 2], 20)
    pipe = make_pipeline(FeatureExtractor("test_tiny", device="cpu"), RidgeClassifier())
    grid = GridSearchCV(pipe, {"ridgeclassifier__alpha": np.logspace(-3, 3, 10)}, cv=5)
    grid.fit(X, y)
    # 10 alphas x 5 folds x (train + test) + the refit all hit the row cache after the first.
    assert extraction_stats()["samples"] == 60
    assert grid.predict(X).shape == (60,)


def test_disk_memory_shares_across_processes(images, tmp_path):
    a = tiny(memory=str(tmp_path)).transform(images)
    clear_cache()  # as a fresh process would be
    b = tiny(memory=str(tmp_path)).transform(images)
    np.testing.assert_array_equal(a, b)
    assert extraction_stats()["samples"] == 24
    t = tiny(memory=str(tmp_path)).extract(images, as_tensor=True)
    assert isinstance(t, torch.Tensor)


def test_clone_and_pickle_carry_no_weights(images):
    ext = tiny(batch_size=8).fit(images)
    before = ext.transform(images)
    blob = pickle.dumps(ext)
    assert len(blob) < 4000  # parameters only, no tensors
    clear_backbone_cache()
    clear_cache()
    again = pickle.loads(blob)
    np.testing.assert_allclose(again.transform(images), before, atol=1e-6)
    c = clone(ext)
    assert c.get_params() == ext.get_params() and not hasattr(c, "n_features_out_")


def test_model_loaded_once_per_process(images):
    a = load_backbone("test_tiny", device="cpu")
    tiny().transform(images)
    clone(tiny()).transform(images[:3] + 7)
    assert load_backbone("test_tiny", device="cpu") is a


def test_as_extractor():
    ext = tiny(batch_size=3)
    assert as_extractor(ext, device="cuda", batch_size=99) is ext
    built = as_extractor("test_tiny", device="cpu", batch_size=7, verbose=1)
    assert isinstance(built, FeatureExtractor)
    assert (built.backbone, built.device, built.batch_size, built.verbose) == (
        "test_tiny",
        "cpu",
        7,
        1,
    )


def test_as_tensor(images):
    t = tiny(cache=False).extract(images, as_tensor=True)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.device.type == "cpu"
    t.mul_(2)  # a normal tensor, not an inference tensor: the solver may update it in place
    t2 = tiny().extract(images, as_tensor=True)
    t3 = tiny().extract(images, as_tensor=True)  # from the cache
    torch.testing.assert_close(t2, t3)


def test_callable_backbone(images):
    def mean_colour(batch):
        return np.asarray(batch, dtype=np.float32).mean(axis=(1, 2)) / 255

    ext = FeatureExtractor(mean_colour, device="cpu", batch_size=10).fit(images)
    assert ext.n_features_out_ == 3
    out = ext.transform(images)
    np.testing.assert_allclose(out, images.mean(axis=(1, 2)) / 255, rtol=1e-5)
    ext.transform(images)
    assert extraction_stats()["samples"] == 24  # the probe row was cached too
    bad = FeatureExtractor(lambda b: np.zeros(3), device="cpu")
    with pytest.raises(ValueError, match="batch size, n_features"):
        bad.transform(images)


def test_precision_bfloat16_close(images):
    a = tiny(cache=False).transform(images)
    b = tiny(cache=False, precision="bfloat16").transform(images)
    assert b.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=0.05, atol=0.05)


def test_oom_halves_batch_and_warns(images, monkeypatch):
    backbone = load_backbone("test_tiny", device="cpu")
    real = backbone.model.forward

    def flaky(x):
        if x.shape[0] > 4:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(x)

    expected = tiny(cache=False).transform(images)
    monkeypatch.setattr(backbone.model, "forward", flaky)
    with pytest.warns(RuntimeWarning, match="Out of memory on a batch of (16|8)"):
        out = tiny(cache=False, batch_size=16).transform(images)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_verbose_progress(images, capsys):
    tiny(verbose=1).transform(images)
    err = capsys.readouterr().err
    assert "24/24" in err and ("img/s" in err or "images/s" in err)


@pytest.mark.parametrize(
    "X, exc, match",
    [
        (np.zeros((2, 32, 32, 5), np.uint8), ValueError, "no axis has 1, 3 or 4"),
        (np.zeros((2, 32, 3), np.uint8), ValueError, "single|one colour image"),
        (np.zeros((2, 8), np.uint8), ValueError, r"\(N, H, W\)"),
        (np.zeros((2, 8, 8, 3), np.int64), TypeError, "uint8"),
        (["a photo of a cat", "a dog"], ValueError, "text backbone"),
        ("a photo", TypeError, "single string"),
        ([1, 2, 3], TypeError, "Cannot read images"),
        ({"a": 1}, TypeError, "Unsupported input"),
        (np.zeros((0, 8, 8, 3), np.uint8), ValueError, "no samples"),
    ],
)
def test_bad_inputs_raise_clear_errors(X, exc, match):
    with pytest.raises(exc, match=match):
        tiny().transform(X)


def test_float_range_warning(images):
    with pytest.warns(UserWarning, match=r"\[0, 1\]"):
        tiny().transform(images.astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiny().transform(images.astype(np.float32) / 255)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"batch_size": 0}, "batch_size"),
        ({"precision": "int8"}, "precision"),
        ({"device": "tpu"}, "device"),
        ({"device": 3}, "device"),
    ],
)
def test_bad_params(images, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tiny(**params).fit(images)


@pytest.mark.gpu
def test_gpu_extraction_matches_cpu(images):
    cpu = tiny(cache=False).transform(images)
    ext = FeatureExtractor("test_tiny", device="cuda", precision="float32", cache=False)
    np.testing.assert_allclose(ext.transform(images), cpu, rtol=1e-3, atol=1e-3)
    t = ext.extract(torch.from_numpy(images).cuda(), as_tensor=True)
    assert t.device.type == "cuda" and t.dtype == torch.float32
    np.testing.assert_allclose(t.cpu().numpy(), cpu, rtol=1e-3, atol=1e-3)
    auto = FeatureExtractor("test_tiny", device="cuda").extract(images, as_tensor=True)
    assert auto.device.type == "cuda"


@pytest.mark.gpu
def test_gpu_folds_are_assembled_on_the_device(images):
    # Cross-validation folds (new mixes of rows extracted before) are gathered from device
    # the blocks on the device: equal to extracting them afresh, duplicates included.
    from sklearn.model_selection import KFold

    ext = FeatureExtractor("test_tiny", device="cuda", precision="float32", batch_size=7)
    X = np.concatenate([images] * 50)[:1200]
    X = X + (np.arange(1200) % 11).astype(np.uint8)[:, None, None, None]
    fresh = FeatureExtractor("test_tiny", device="cuda", precision="float32", cache=False)
    expected = fresh.extract(X, as_tensor=True)
    reset_extraction_stats()
    # No host cache at all: the features are kept, and found again, on the device alone.
    with config_context(cache_bytes=0):
        for train, test in KFold(4, shuffle=True, random_state=0).split(X):
            for idx in (train, test, np.concatenate([test[:5], test[:5]])):
                out = ext.extract(X[idx], as_tensor=True)
                assert out.device.type == "cuda"
                # Other batches than `fresh`'s: equal up to the kernels' summation order.
                want = expected[torch.as_tensor(idx).cuda()]
                torch.testing.assert_close(out, want, rtol=1e-3, atol=1e-3)
                again = ext.extract(X[idx], as_tensor=True)
                torch.testing.assert_close(out, again, rtol=0, atol=0)
        held = cache_info()["nbytes"]
    assert held.get("cpu", 0) == 0
    assert held[str(expected.device)] >= 264 * expected.shape[1] * expected.element_size()
    # 264 distinct images (24 images, 11 offsets), each computed once.
    assert extraction_stats()["samples"] <= 264


@pytest.mark.gpu
def test_gpu_warm_calls_come_from_the_device(images):
    # A warm call on CUDA gathers from the device: same values, counted as hits, no forward;
    # the caller's tensor is its own; an edited row is a different input and is computed.
    ext = FeatureExtractor("test_tiny", device="cuda", precision="float32", batch_size=5)
    X = np.concatenate([images] * 60)[:1400]  # over one 1024-row chunk
    X = X + (np.arange(1400) % 7).astype(np.uint8)[:, None, None, None]
    cold = ext.extract(X, as_tensor=True)
    before = extraction_stats()
    warm = ext.extract(X.copy(), as_tensor=True)
    after = extraction_stats()
    torch.testing.assert_close(warm, cold, rtol=0, atol=0)
    assert warm.data_ptr() != cold.data_ptr()
    assert after["samples"] == before["samples"] and after["hits"] - before["hits"] == 1400
    warm.zero_()
    torch.testing.assert_close(ext.extract(X, as_tensor=True), cold, rtol=0, atol=0)
    X[1300] = 255 - X[1300]
    edited = ext.extract(X, as_tensor=True)
    assert extraction_stats()["samples"] > after["samples"]
    torch.testing.assert_close(edited[:1300], cold[:1300], rtol=0, atol=0)
    assert not torch.equal(edited[1300], cold[1300])


def test_property_any_batching_and_subset_matches_reference():
    """batched == unbatched and cache hit == miss, for any batch size and row selection."""
    hyp = pytest.importorskip("hypothesis")
    st = pytest.importorskip("hypothesis.strategies")
    X = np.random.default_rng(3).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    reference = tiny(cache=False, batch_size=1).transform(X)

    @hyp.settings(max_examples=25, deadline=None)
    @hyp.given(
        batch_size=st.integers(1, 25),
        rows=st.lists(st.integers(0, 19), min_size=1, max_size=30),
        cache=st.booleans(),
    )
    def check(batch_size, rows, cache):
        out = tiny(cache=cache, batch_size=batch_size).transform(X[rows])
        np.testing.assert_allclose(out, reference[rows], rtol=1e-5, atol=1e-6)

    check()


def _row_sums(batch):
    return np.array([[float(np.sum(np.asarray(x, dtype=np.float64)))] for x in batch])


def test_callable_backbones_take_rows_and_items_as_they_are():
    torch = pytest.importorskip("torch")
    from faast_sklearn import LazyRows

    rows = np.arange(12.0).reshape(6, 2)
    ext = FeatureExtractor(_row_sums, device="cpu")
    expected = rows.sum(axis=1, keepdims=True)
    ragged = [np.ones(n) for n in range(1, 7)]

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 6

        def __getitem__(self, i):
            return torch.full((i + 1,), 2.0), i % 2  # (sample, label)

    for X, want in (
        (list(rows), expected),  # a list of equal rows
        (rows.astype(int).tolist(), expected),  # lists of ints
        (LazyRows(list(rows)), expected),
        (ragged, np.arange(1.0, 7.0)[:, None]),  # items of several sizes, keyed one by one
        (Items(), 2 * np.arange(1.0, 7.0)[:, None]),
        (LazyRows(Items())[::-1], 2 * np.arange(6.0, 0.0, -1)[:, None]),
        (np.array([["a", "bb"], ["c", "d"]], dtype=object), None),
    ):
        if want is None:  # object rows reach the callable as they are
            out = FeatureExtractor(lambda b: np.array([[len("".join(r))] for r in b]), device="cpu")
            np.testing.assert_array_equal(out.fit(X).transform(X), [[3.0], [2.0]])
            continue
        np.testing.assert_allclose(ext.fit(X).transform(X), want, err_msg=repr(X)[:60])
        assert ext.n_features_out_ == 1
    assert extraction_stats()["samples"] < 40  # fit's probe row and repeats came from the cache


@pytest.mark.parametrize(
    ("X", "exc", "match"),
    [
        (np.ma.masked_array(np.ones((3, 2)), mask=[[1, 0]] * 3), TypeError, "masked array"),
        (Image.new("RGB", (8, 8)), TypeError, "single PIL image"),
        (np.ones((3, 2), dtype=complex), ValueError, "Complex data"),
        ([np.full((20, 20, 3), np.nan), np.zeros((30, 30, 3))], ValueError, "NaN"),
    ],
)
def test_callable_and_item_inputs_fail_clearly(X, exc, match):
    fn = _row_sums if not isinstance(X, list) else None
    ext = FeatureExtractor(fn, device="cpu") if fn else tiny()
    with pytest.raises(exc, match=match):
        ext.transform(X)


def test_callable_inputs_keep_their_type_and_their_keys_their_meaning():
    torch = pytest.importorskip("torch")
    from sklearn.model_selection import cross_val_score

    from faast_sklearn import FAASTClassifier

    seen = []

    def record(batch):
        seen.append(type(batch))
        return np.array([[float(np.sum(np.asarray(x, dtype=np.float64)))] for x in batch])

    # A list reaches the callable as a list, whatever its items' shapes in the batch.
    X = [np.arange(3.0), np.arange(4.0), np.arange(3.0) + 1]
    ext = FeatureExtractor(record, device="cpu")
    ext.fit(X).transform(X)
    ext.transform([X[0], X[2]])
    assert set(seen) == {list}

    # bfloat16 and int16 with the same bits, and palette images with the same indices but
    # different colours, are different inputs.
    t = torch.tensor([[1.5, -2.0]], dtype=torch.bfloat16)
    as_float = FeatureExtractor(lambda b: b.float(), device="cpu")
    np.testing.assert_array_equal(as_float.transform(t), [[1.5, -2.0]])
    np.testing.assert_array_equal(as_float.transform(t.view(torch.int16)), [[16320.0, -16384.0]])
    red, blue = Image.new("P", (32, 32), 0), Image.new("P", (32, 32), 0)
    red.putpalette([255, 0, 0] * 256)
    blue.putpalette([0, 0, 255] * 256)
    assert not np.array_equal(tiny().transform([red]), tiny().transform([blue]))
    means = FeatureExtractor(
        lambda b: np.array([np.asarray(x.convert("RGB")).mean((0, 1)) for x in b]), device="cpu"
    )
    np.testing.assert_array_equal(means.transform([red]), [[255.0, 0.0, 0.0]])
    np.testing.assert_array_equal(means.transform([blue]), [[0.0, 0.0, 255.0]])

    # A Dataset of (sample, label) items gives the callable its samples, whole or in folds.
    data = torch.utils.data.TensorDataset(torch.randn(90, 8), torch.arange(90) % 3)
    clf = FAASTClassifier(backbone=lambda b: torch.stack(b)[:, :4], device="cpu")
    scores = cross_val_score(clf, data, np.arange(90) % 3, cv=3, error_score="raise")
    assert scores.shape == (3,)
