"""Load test of one estimator shared by threads (issue 14): ``--writers`` threads stream rows
into it with ``partial_fit`` while ``--readers`` threads call ``predict``.

Checks that no row is lost (``n_samples_seen_`` equals the rows sent, and the final model's
predictions equal one ``fit`` on all rows) and reports the throughput of both sides. The
default is the issue's 1e6 rows, of 64 features (512 MB of float64), which runs in under a
minute on a shared 2-core CPU; pass ``--features`` for wider rows on a larger machine.

Example::

    python benchmarks/bench_threads.py --rows 1000000 --features 64
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import threading
import time
from pathlib import Path

import numpy as np

from faast_sklearn import FAASTRegressor


def run(rows: int, features: int, batch: int, writers: int, readers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    y = X @ rng.normal(size=features) + 0.1 * rng.normal(size=rows)
    est = FAASTRegressor()
    est.partial_fit(X[:batch], y[:batch])  # readers need a model from the start
    batches = [np.arange(lo, min(lo + batch, rows)) for lo in range(batch, rows, batch)]
    done = threading.Event()
    predicted = [0] * readers
    errors: list[BaseException] = []
    start = threading.Barrier(writers + readers + 1)

    def write(part):
        start.wait()
        try:
            for idx in part:
                est.partial_fit(X[idx], y[idx])
        except BaseException as exc:  # noqa: BLE001 - reported
            errors.append(exc)

    def read(k):
        start.wait()
        probe = X[:256]
        try:
            while not done.is_set():
                pred = est.predict(probe)
                if not np.isfinite(pred).all():
                    raise AssertionError("non-finite prediction")
                predicted[k] += len(probe)
        except BaseException as exc:  # noqa: BLE001 - reported
            errors.append(exc)

    ws = [threading.Thread(target=write, args=(batches[i::writers],)) for i in range(writers)]
    rs = [threading.Thread(target=read, args=(k,)) for k in range(readers)]
    for t in ws + rs:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ws:
        t.join()
    elapsed = time.perf_counter() - t0
    done.set()
    for t in rs:
        t.join()
    whole = FAASTRegressor().fit(X, y)
    diff = float(np.abs(est.predict(X) - whole.predict(X)).max() / np.abs(whole.predict(X)).max())
    return {
        "rows": rows,
        "features": features,
        "batch": batch,
        "writers": writers,
        "readers": readers,
        "errors": [repr(e) for e in errors],
        "n_samples_seen": int(est.n_samples_seen_),
        "rows_lost": rows - int(est.n_samples_seen_),
        "max_rel_diff_vs_fit": diff,
        "stream_seconds": elapsed,
        "rows_per_second": rows / elapsed,
        "predicted_rows_per_second": sum(predicted) / elapsed,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--features", type=int, default=64)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--writers", type=int, default=8)
    p.add_argument("--readers", type=int, default=8)
    p.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results/threads-cpu-2core.json"
    )
    args = p.parse_args(argv)
    result = run(args.rows, args.features, args.batch, args.writers, args.readers)
    payload = {
        "benchmark": "bench_threads",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "note": "shared 2-core CPU (6 agents at once); rows x features kept small (64) for memory",
        **result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(json.dumps(payload, indent=2))
    ok = not result["errors"] and result["rows_lost"] == 0
    ok = ok and result["max_rel_diff_vs_fit"] < 1e-8
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
