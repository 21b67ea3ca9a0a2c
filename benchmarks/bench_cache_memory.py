"""Resident memory of a process that streams a million distinct rows through the feature cache.

Each call of ``FeatureExtractor(callable).transform`` on new rows keys them, computes their
features and keeps them in the cache, whose bound (``set_config(cache_bytes=...)``) counts
every byte it holds, keys and row index included. The process's resident memory should then
grow by at most the bound (plus allocator slack) and the data one call uses, whatever the
feature width, however many rows go through. Measured for several widths and bounds; the
JSON has, per run, the RSS growth, the cache's own count of its bytes, and their ratio to the
bound.

Example (about a minute on 2 cores)::

    python benchmarks/bench_cache_memory.py --out benchmarks/results/cache-memory-cpu-2core.json
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faast_sklearn import cache_info, clear_cache, config_context  # noqa: E402
from faast_sklearn.features import FeatureExtractor  # noqa: E402


def run(width: int, bound: int, n_rows: int, call_rows: int, cache: bool) -> dict:
    clear_cache()
    gc.collect()
    process = psutil.Process()
    ext = FeatureExtractor(lambda b: np.repeat(b, width, axis=1), device="cpu", batch_size=4096)
    rows = np.arange(n_rows, dtype=np.float32)[:, None]
    with config_context(cache=cache, cache_bytes=bound):
        ext.transform(rows[:call_rows])  # first call: allocator and code warmed up
        start = process.memory_info().rss
        peak_rss = peak_cache = 0
        t0 = time.perf_counter()
        for i in range(0, n_rows, call_rows):
            ext.transform(rows[i : i + call_rows])
            peak_cache = max(peak_cache, cache_info()["nbytes"].get("cpu", 0))
            peak_rss = max(peak_rss, process.memory_info().rss)
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "peak_cache": peak_cache, "grown": peak_rss - start}


def child(width: int, bound: int, n_rows: int, call_rows: int, cache: bool) -> dict:
    """``run`` in a fresh process, so that no run inherits another's freed memory."""
    cmd = [sys.executable, __file__, "--child", str(width), str(bound), str(n_rows)]
    cmd += [str(call_rows), str(int(cache))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def host() -> dict:
    """The date and the machine, at the head of a result (also ``bench_cache_keying.py``'s)."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": platform.processor() or platform.machine(),
        "cores": psutil.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        width, bound, n_rows, call_rows, cache = map(int, argv[1:])
        print(json.dumps(run(width, bound, n_rows, call_rows, bool(cache))))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rows-per-call", type=int, default=20_000)
    p.add_argument("--widths", type=int, nargs="+", default=[1, 64, 768])
    p.add_argument("--bounds-mib", type=int, nargs="+", default=[64, 256])
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    runs = []
    for bound in args.bounds_mib:
        for width in args.widths:
            size = bound * 1024**2
            on = child(width, size, args.rows, args.rows_per_call, True)
            off = child(width, size, args.rows, args.rows_per_call, False)
            r = {
                "width": width,
                "cache_bytes": size,
                "rss_growth_with_cache": on["grown"],
                "rss_growth_without_cache": off["grown"],
                "peak_cache_counted_bytes": on["peak_cache"],
                "cache_share_over_bound": (on["grown"] - off["grown"]) / size,
                "seconds_with_cache": on["seconds"],
                "seconds_without_cache": off["seconds"],
            }
            runs.append(r)
            print(
                f"width {width:4d}, bound {bound:4d} MiB: RSS +{on['grown'] / 2**20:7.1f} MiB with"
                f" the cache, +{off['grown'] / 2**20:6.1f} MiB without; counted "
                f"{on['peak_cache'] / 2**20:6.1f} MiB; (with - without) / bound = "
                f"{r['cache_share_over_bound']:.2f}",
                flush=True,
            )
    payload = {
        "benchmark": "cache_memory",
        "machine": host(),
        "config": vars(args),
        "target": "(RSS growth with cache - RSS growth without) <= 1.2 x cache_bytes",
        "runs": runs,
    }
    out = Path(args.out or Path(__file__).parent / "results" / "cache-memory-cpu.json")
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
