"""Few-shot episodes in the paper's style, with timing.

An episode uses *all* classes: ``shots`` support rows per class drawn from the support pool
(the training split) and ``n_query`` query rows per class drawn from the held-out split. Each
method is fitted on the support rows and scored on the queries of the same episode; episodes
are seeded so that every method sees the same support/query sets.

Reported per method: mean accuracy with a 95% confidence interval
(``1.96 * std / sqrt(episodes)``, ``std`` with ``ddof=1``), the median adaptation (fit) time,
and the median inference time per query row.

Within an episode the methods run in a seeded random order. A fixed order times each method in
the wake of the same predecessor: the first one always ran cold, right after the previous
episode's Adam probe (300 epochs of Python and CUDA launches that evict the host's caches),
which cost a 1-shot FAAST fit about 15% of its time on an H200 host.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["mean_ci", "run_episodes", "sample_episode", "sync"]


def sample_episode(
    y_support_pool: np.ndarray,
    y_query_pool: np.ndarray,
    shots: int,
    n_query: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of one episode: ``shots`` per class from the support pool, ``n_query`` per
    class from the query pool. Raises if a class has too few rows."""
    classes = np.unique(y_support_pool)
    support, query = [], []
    for c in classes:
        pool_s = np.flatnonzero(y_support_pool == c)
        pool_q = np.flatnonzero(y_query_pool == c)
        if len(pool_s) < shots or len(pool_q) < n_query:
            raise ValueError(
                f"class {c!r}: {len(pool_s)} support / {len(pool_q)} query rows, "
                f"need {shots} / {n_query}"
            )
        support.append(rng.choice(pool_s, size=shots, replace=False))
        query.append(rng.choice(pool_q, size=n_query, replace=False))
    s = np.concatenate(support)
    return rng.permutation(s), np.concatenate(query)


def mean_ci(values) -> tuple[float, float]:
    """Mean and 95% half-width ``1.96 * std(ddof=1) / sqrt(n)`` (0 for a single value)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()) if len(v) else float("nan"), 0.0
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(len(v)))


def sync(device: str | None) -> None:
    """Wait for the device's queued work (CUDA); nothing elsewhere."""
    if device and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_episodes(
    methods: Mapping[str, Callable[[], object]],
    X_support_pool: np.ndarray,
    y_support_pool: np.ndarray,
    X_query_pool: np.ndarray,
    y_query_pool: np.ndarray,
    *,
    shots: int,
    episodes: int,
    n_query: int = 20,
    seed: int = 0,
    sync_device: str | None = None,
    warmup: bool = True,
    verbose: int = 0,
) -> dict[str, dict]:
    """Run ``episodes`` episodes of ``shots``-shot classification for every method.

    ``methods`` maps a name to a zero-argument factory returning a fresh, unfitted estimator.
    All methods see identical episodes (episode ``i`` uses seed ``(seed, shots, i)``), in an
    order drawn from the same seed (see the module docstring). With ``warmup`` each method is
    fitted and run once on the first episode before timing (lazy imports, CUDA context, kernel
    caches). Returns ``{name: summary}``.
    """
    per = {
        name: {"acc": [], "fit_s": [], "pred_s": [], "n_query": 0, "errors": []} for name in methods
    }
    if warmup:
        rng = np.random.default_rng([seed, shots, 0])
        s, q = sample_episode(y_support_pool, y_query_pool, shots, n_query, rng)
        for name, make in methods.items():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    make().fit(X_support_pool[s], y_support_pool[s]).predict(X_query_pool[q])
            except Exception as exc:  # noqa: BLE001 - reported, not hidden
                per[name]["errors"].append(f"warmup: {type(exc).__name__}: {exc}")
    for ep in range(episodes):
        rng = np.random.default_rng([seed, shots, ep])
        s, q = sample_episode(y_support_pool, y_query_pool, shots, n_query, rng)
        Xs, ys = X_support_pool[s], y_support_pool[s]
        Xq, yq = X_query_pool[q], y_query_pool[q]
        for name in rng.permutation(list(methods)):
            make, rec = methods[name], per[name]
            try:
                est = make()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sync(sync_device)
                    t0 = time.perf_counter()
                    est.fit(Xs, ys)
                    sync(sync_device)
                    t1 = time.perf_counter()
                    pred = np.asarray(est.predict(Xq))
                    sync(sync_device)
                    t2 = time.perf_counter()
            except Exception as exc:  # noqa: BLE001
                rec["errors"].append(f"episode {ep}: {type(exc).__name__}: {exc}")
                continue
            rec["acc"].append(float(np.mean(pred == yq)))
            rec["fit_s"].append(t1 - t0)
            rec["pred_s"].append((t2 - t1) / len(Xq))
        if verbose and (ep + 1) % max(1, episodes // 5) == 0:
            print(f"  shots={shots}: {ep + 1}/{episodes} episodes", flush=True)
    out = {}
    for name, rec in per.items():
        m, ci = mean_ci(rec["acc"]) if rec["acc"] else (float("nan"), float("nan"))
        out[name] = {
            "shots": shots,
            "episodes": len(rec["acc"]),
            "n_query_per_class": n_query,
            "acc_mean": m,
            "acc_ci95": ci,
            "fit_time_median_s": float(np.median(rec["fit_s"])) if rec["fit_s"] else float("nan"),
            "predict_time_per_sample_s": (
                float(np.median(rec["pred_s"])) if rec["pred_s"] else float("nan")
            ),
            "errors": rec["errors"][:5],
        }
    return out
