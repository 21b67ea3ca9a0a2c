"""faast_sklearn.save / load (data only, checked, atomic) and versioned pickles."""

import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
import zipfile
from decimal import Decimal

import numpy as np
import pytest
import sklearn.exceptions
from sklearn.linear_model import LogisticRegression, Ridge

import faast_sklearn
from faast_sklearn import FAASTClassifier, FAASTRegressor, load, save
from faast_sklearn.exceptions import InconsistentVersionWarning


def _data(rng, n=60, d=8):
    X = rng.standard_normal((n, d))
    return X, X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)


def _roundtrip(est, tmp_path):
    path = tmp_path / "model.npz"
    save(est, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no version warning, nothing else
        return load(path)


def _assert_same_model(a, b, X):
    assert type(a) is type(b)
    pa, pb = a.get_params(), b.get_params()
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]) if isinstance(pa[k], np.ndarray) else pa[k] == pb[k]
    if hasattr(a, "predict_proba"):
        np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
        np.testing.assert_array_equal(a.classes_, b.classes_)
        assert a.classes_.dtype == b.classes_.dtype
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.alpha_ == b.alpha_
    assert a.n_samples_seen_ == b.n_samples_seen_


LABELS = {
    "int": np.array([3, -1, 7]),
    "str": np.array(["cat", "dog", "émeu"]),
    "object-str": np.array(["cat", "dog", "emu"], dtype=object),  # what pandas gives
    "bool": np.array([False, True]),
    "float": np.array([1.0, 2.0, -3.0]),
}


@pytest.mark.parametrize("labels", LABELS.values(), ids=LABELS.keys())
@pytest.mark.parametrize("n", [6, 60], ids=["rows", "moments"])
def test_classifier_roundtrip_predicts_identically(rng, tmp_path, labels, n):
    X, _ = _data(rng, n=n)
    y = labels[np.arange(n) % len(labels)]
    clf = FAASTClassifier().fit(X, y)
    _assert_same_model(clf, _roundtrip(clf, tmp_path), X)


def test_regressor_roundtrip_multi_target_float32_array_alpha(rng, tmp_path):
    X, y = _data(rng)
    Y = np.column_stack([y, -y])
    reg = FAASTRegressor(alpha=np.logspace(-2, 2, 5), fit_intercept=False)
    reg.fit(X.astype(np.float32), Y)
    loaded = _roundtrip(reg, tmp_path)
    np.testing.assert_array_equal(loaded.alpha, reg.alpha)
    _assert_same_model(reg, loaded, X.astype(np.float32))


def test_roundtrip_keeps_feature_names_and_multilabel(rng, tmp_path):
    pd = pytest.importorskip("pandas")
    X, _ = _data(rng)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    Y = (rng.random((len(X), 3)) < 0.5).astype(int)
    clf = FAASTClassifier(rtol="paper").fit(frame, Y)
    loaded = _roundtrip(clf, tmp_path)
    np.testing.assert_array_equal(loaded.feature_names_in_, clf.feature_names_in_)
    _assert_same_model(clf, loaded, frame)
    with pytest.warns(UserWarning, match="feature names"):
        loaded.predict(X)  # the names are checked as before saving


def test_roundtrip_class_embeddings_and_unfitted(rng, tmp_path):
    X, _ = _data(rng)
    y = np.arange(len(X)) % 3
    emb = {0: [1.0, 0.0], 1: [0.0, 1.0], 2: [1.0, 1.0]}
    clf = FAASTClassifier(class_embeddings=emb, alpha=2.0).fit(X, y)
    loaded = _roundtrip(clf, tmp_path)
    assert loaded.class_embeddings == emb
    _assert_same_model(clf, loaded, X)
    unfitted = _roundtrip(FAASTRegressor(alpha=0.5, batch_size=7), tmp_path)
    assert unfitted.get_params() == FAASTRegressor(alpha=0.5, batch_size=7).get_params()
    with pytest.raises(sklearn.exceptions.NotFittedError):
        unfitted.predict(X)


@pytest.mark.parametrize("d", [40, 5], ids=["rows-then-moments", "moments"])
def test_saved_mid_stream_continues_exactly(rng, tmp_path, d):
    X = rng.standard_normal((120, d))
    y = np.array(["a", "b", "c", "d"])[np.arange(120) % 4]
    y[:60] = np.where(y[:60] == "d", "a", y[:60])  # class "d" first arrives after the save
    w = rng.random(120) + 0.5
    batches = np.array_split(np.arange(120), 6)
    stream = FAASTClassifier()
    for idx in batches[:3]:
        stream.partial_fit(X[idx], y[idx], sample_weight=w[idx])
    loaded = _roundtrip(stream, tmp_path)
    for idx in batches[3:]:
        stream.partial_fit(X[idx], y[idx], sample_weight=w[idx])
        loaded.partial_fit(X[idx], y[idx], sample_weight=w[idx])
    _assert_same_model(stream, loaded, X)  # bit for bit as if never saved
    one_fit = FAASTClassifier().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(loaded.decision_function(X), one_fit.decision_function(X), atol=1e-8)
    np.testing.assert_array_equal(loaded.classes_, one_fit.classes_)


def test_regressor_saved_mid_stream_continues_like_one_fit(rng, tmp_path):
    X, y = _data(rng, n=90, d=12)
    reg = FAASTRegressor(solver="scipy").partial_fit(X[:10], y[:10])  # few rows: rows kept
    loaded = _roundtrip(reg, tmp_path)
    loaded.partial_fit(X[10:], y[10:])
    one_fit = FAASTRegressor(solver="scipy").fit(X, y)
    np.testing.assert_allclose(loaded.predict(X), one_fit.predict(X), rtol=1e-9, atol=1e-9)
    assert loaded.n_samples_seen_ == 90


def test_file_is_plain_npz(rng, tmp_path):
    X, y = _data(rng)
    path = tmp_path / "model.npz"
    save(FAASTRegressor().fit(X, y), path)
    with np.load(path, allow_pickle=False) as npz:  # every member loads without pickle
        members = {k: npz[k] for k in npz.files}
    meta = json.loads(members.pop("metadata.json"))
    assert meta["format"] == "faast_sklearn"
    assert meta["faast_sklearn_version"] == faast_sklearn.__version__
    assert meta["class"] == "FAASTRegressor"
    assert all(isinstance(a, np.ndarray) and a.dtype != object for a in members.values())
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # as any new file, not owner-only


# ------------------------------------------------------------------------- refused at save
def test_refuses_what_is_not_data(rng, tmp_path):
    X, y = _data(rng)
    yc = (y > 0).astype(int)
    path = tmp_path / "model.npz"
    prior = LogisticRegression().fit(X, yc)
    with pytest.raises(TypeError, match="prior is a LogisticRegression.*Save the prior"):
        save(FAASTClassifier(prior=prior).fit(X, yc), path)
    with pytest.raises(TypeError, match="prior is a function"):
        save(FAASTRegressor(prior=lambda Z: Z.sum(axis=1)), path)
    with pytest.raises(TypeError, match="backbone is a function.*register_backbone"):
        save(FAASTRegressor(backbone=lambda x: x), path)
    with pytest.raises(TypeError, match="this package's estimators.*got Ridge"):
        save(Ridge().fit(X, y), path)
    # fit refuses object labels other than strings; save refuses any other object array.
    with pytest.raises(TypeError, match=r"alpha is an array of dtype object"):
        save(FAASTRegressor(alpha=np.array([Decimal("1.5")], dtype=object)), path)
    assert not os.listdir(tmp_path)  # nothing written, not even a temporary file


# ------------------------------------------------------------------------- refused at load
def _rewrite(path, edit_meta=None, edit_arrays=None):
    """Rewrite a saved file as a valid zip, after editing its metadata or arrays."""
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
        arrays = {n: np.load(io.BytesIO(zf.read(n))) for n in zf.namelist() if n.endswith(".npy")}
    if edit_meta:
        edit_meta(meta)
    if edit_arrays:
        edit_arrays(arrays)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", json.dumps(meta))
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.save(buf, a, allow_pickle=True)
            zf.writestr(name, buf.getvalue())


@pytest.fixture
def saved(rng, tmp_path):
    X, y = _data(rng)
    path = tmp_path / "model.npz"
    save(FAASTRegressor().fit(X, y), path)
    return path


def test_load_refuses_unknown_format_and_newer_version(saved):
    _rewrite(saved, edit_meta=lambda m: m.update(format_version=2))
    with pytest.raises(ValueError, match="format version 2.*reads format version 1"):
        load(saved)
    _rewrite(saved, edit_meta=lambda m: m.update(format_version=1, faast_sklearn_version="99.0"))
    with pytest.raises(ValueError, match="written by faast_sklearn 99.0, newer than.*upgrade"):
        load(saved)


def _scale_first_array(arrays):
    name = next(n for n, a in arrays.items() if a.dtype.kind == "f")
    arrays[name] = arrays[name] * 1.0001


@pytest.mark.parametrize(
    "edit",
    [
        {"edit_arrays": _scale_first_array},
        {"edit_meta": lambda m: m["params"].update(alpha=3.0)},
        {"edit_meta": lambda m: m["state"].update(n_samples_seen_=1)},
    ],
    ids=["array", "parameter", "state"],
)
def test_load_refuses_tampered_file(saved, edit):
    _rewrite(saved, **edit)
    with pytest.raises(ValueError, match="modified after it was written.*SHA-256"):
        load(saved)


def test_load_refuses_truncated_file(saved):
    data = saved.read_bytes()
    for size in (len(data) - 1, len(data) // 2, 10):
        saved.write_bytes(data[:size])
        with pytest.raises(ValueError, match="truncated or corrupt"):
            load(saved)


def test_load_refuses_crafted_structure(saved, tmp_path):
    import json
    import zipfile

    with zipfile.ZipFile(saved) as z:
        members = {n: z.read(n) for n in z.namelist()}
    meta_name = next(n for n in members if n.endswith(".json"))
    array_name = next(n for n in members if n.endswith(".npy"))
    # Deeply nested metadata: a ValueError, not a RecursionError.
    deep = dict(members)
    deep[meta_name] = b"[" * 100_000 + b"]" * 100_000
    # An array header declaring far more bytes than the member holds: refused before any
    # allocation.
    huge = dict(members)
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,), }"
    header += b" " * (117 - len(header)) + b"\n"
    huge[array_name] = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header
    for name, content in (("deep", deep), ("huge", huge)):
        path = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(path, "w") as z:
            for n, data in content.items():
                z.writestr(n, data)
        with pytest.raises(ValueError, match="corrupt"):
            load(path)
    assert json  # the metadata member is JSON


def test_load_refuses_files_that_are_not_ours(rng, tmp_path):
    X, y = _data(rng)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(FAASTRegressor().fit(X, y)))
    with pytest.raises(ValueError, match="not a faast_sklearn model file.*pickle"):
        load(path)
    np.savez(tmp_path / "arrays.npz", X=X)
    with pytest.raises(ValueError, match="archive but not a faast_sklearn model"):
        load(tmp_path / "arrays.npz")
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ValueError, match="not a faast_sklearn model file"):
        load(tmp_path / "empty.npz")


_CALLED = []


class _Payload:
    def __reduce__(self):
        return (_CALLED.append, ("code ran",))


def test_load_never_unpickles(saved):
    """A pickled object array put in the file is refused, never unpickled."""

    def inject(arrays):
        arrays["a0.npy"] = np.array([_Payload()], dtype=object)

    _rewrite(saved, edit_arrays=inject)
    with pytest.raises(ValueError, match="truncated or corrupt.*allow_pickle"):
        load(saved)
    assert not _CALLED


# ------------------------------------------------------------------------- atomic writes
def test_failed_save_leaves_previous_file(saved, monkeypatch, rng):
    before = saved.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    X, y = _data(rng)
    with pytest.raises(OSError, match="disk full"):
        save(FAASTRegressor(alpha=5.0).fit(X, y), saved)
    assert saved.read_bytes() == before
    assert os.listdir(saved.parent) == [saved.name]  # the temporary file is removed


def test_process_killed_during_save_leaves_previous_file(saved, rng):
    previous = load(saved)
    child = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        import faast_sklearn
        write = np.lib.format.write_array

        def slow(*args, **kwargs):  # writes one array, then hangs until killed
            write(*args, **kwargs)
            print("writing", flush=True)
            time.sleep(120)

        np.lib.format.write_array = slow
        X = np.random.default_rng(1).standard_normal((50, 8))
        model = faast_sklearn.FAASTRegressor(alpha=9.0).fit(X, X[:, 0])
        faast_sklearn.save(model, {str(saved)!r})
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline() == b"writing\n"
    finally:
        proc.kill()
        proc.wait(timeout=60)
    X, _ = _data(rng)
    np.testing.assert_array_equal(load(saved).predict(X), previous.predict(X))


# ------------------------------------------------------------------------- pickles
def test_pickle_carries_version_and_warns_on_mismatch(rng):
    X, y = _data(rng)
    reg = FAASTRegressor().fit(X, y)
    data = pickle.dumps(reg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(pickle.loads(data).predict(X), reg.predict(X))
    current = faast_sklearn.__version__.encode()
    assert data.count(current) == 1
    other = b"9" * len(current)
    with pytest.warns(InconsistentVersionWarning, match=f"version {other.decode()} when using"):
        pickle.loads(data.replace(current, other))
    # scikit-learn's filters apply to it too.
    with warnings.catch_warnings():
        warnings.simplefilter("error", sklearn.exceptions.InconsistentVersionWarning)
        with pytest.raises(InconsistentVersionWarning):
            pickle.loads(data.replace(current, other))


def test_roundtrip_with_a_named_backbone_on_images(tmp_path):
    pytest.importorskip("timm")
    from faast_sklearn import BackboneSpec

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 32, 32, 3), dtype=np.uint8)
    y = np.repeat(["a", "b", "c"], 8)
    spec = BackboneSpec("test_tiny", image_size=32)
    clf = FAASTClassifier(backbone=spec, device="cpu").partial_fit(images[:12], y[:12])
    loaded = _roundtrip(clf, tmp_path)
    assert loaded.backbone == spec
    loaded.partial_fit(images[12:], y[12:])
    clf.partial_fit(images[12:], y[12:])
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))
    assert os.path.getsize(tmp_path / "model.npz") < 200_000  # statistics, no weights


def test_roundtrip_torch_solver(rng, tmp_path):
    pytest.importorskip("torch")
    X, y = _data(rng)
    reg = FAASTRegressor(solver="torch", device="cpu").partial_fit(X[:30], y[:30])
    loaded = _roundtrip(reg, tmp_path)
    for est in (reg, loaded):
        est.partial_fit(X[30:], y[30:])
    _assert_same_model(reg, loaded, X)
