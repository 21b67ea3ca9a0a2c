"""What the feature cache costs on a stream of distinct rows: two faast_sklearn trees side by side.

``FeatureExtractor(callable).transform`` on new rows keys every row (SHA-256 of its bytes),
looks the keys up, computes the misses and stores them; with ``set_config(cache=False)`` it
only computes. Through a trivial backbone (``np.repeat`` of a 1-d row to ``width`` features)
the difference is the cache's own cost. Each tree (the working tree and a baseline folder
holding a ``faast_sklearn`` package) runs in its own processes, alternately, ``--reps`` times;
per width and tree the JSON has the median seconds (wall-clock, and the process's CPU time,
which other processes on a shared host disturb less) with the cache and without, and the
ratio of the wall-clock medians.

Example (about two minutes on 2 cores)::

    git archive <commit> faast_sklearn | tar -x -C /tmp/base
    python benchmarks/bench_cache_keying.py --baseline /tmp/base \\
        --out benchmarks/results/cache-keying-cpu-2core.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run(widths: list[int], n_rows: int, call_rows: int, bound: int) -> dict:
    from faast_sklearn import clear_cache, config_context
    from faast_sklearn.features import FeatureExtractor

    out = {}
    for width in widths:
        backbone = lambda b, w=width: np.repeat(b, w, axis=1)  # noqa: E731
        ext = FeatureExtractor(backbone, device="cpu", batch_size=4096)
        rows = np.arange(n_rows, dtype=np.float32)[:, None]
        for cache in (True, False):
            clear_cache()
            with config_context(cache=cache, cache_bytes=bound):
                ext.transform(rows[:call_rows] - n_rows)  # warm-up, on rows not streamed after
                t0, c0 = time.perf_counter(), time.process_time()
                for i in range(0, n_rows, call_rows):
                    ext.transform(rows[i : i + call_rows])
                out[f"{width}:{int(cache)}"] = time.perf_counter() - t0
                out[f"{width}:{int(cache)}:cpu"] = time.process_time() - c0
    return out


def child(tree: str, args) -> dict:
    """``run`` in a fresh process importing the package under ``tree``."""
    cmd = [sys.executable, __file__, "--child", str(args.rows), str(args.rows_per_call)]
    cmd += [str(args.bound_mib), *map(str, args.widths)]
    env = {**os.environ, "PYTHONPATH": tree}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        n_rows, call_rows, bound_mib, *widths = map(int, argv[1:])
        print(json.dumps(run(widths, n_rows, call_rows, bound_mib * 1024**2)))
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--baseline", required=True, help="folder holding a faast_sklearn package")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--rows-per-call", type=int, default=20_000)
    p.add_argument("--widths", type=int, nargs="+", default=[1, 64, 768])
    p.add_argument("--bound-mib", type=int, default=64)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    trees = {"baseline": str(Path(args.baseline).resolve()), "working tree": str(ROOT)}
    times: dict[str, list[dict]] = {name: [] for name in trees}
    for _ in range(args.reps):
        for name, tree in trees.items():  # alternately: drift hits both alike
            times[name].append(child(tree, args))
    runs = []
    for width in args.widths:
        r = {"width": width}
        for name in trees:

            def median(what: str, runs=times[name], width=width) -> float:
                return float(np.median([t[f"{width}:{what}"] for t in runs]))

            on, off = median("1"), median("0")
            r[name] = {
                "seconds_with_cache": on,
                "seconds_without_cache": off,
                "ratio": on / off,
                "cpu_seconds_with_cache": median("1:cpu"),
                "cpu_seconds_without_cache": median("0:cpu"),
            }
        runs.append(r)
        print(
            f"width {width:4d}: with the cache / without = "
            + ", ".join(
                f"{name} {r[name]['seconds_with_cache']:.2f} s / "
                f"{r[name]['seconds_without_cache']:.2f} s = {r[name]['ratio']:.1f}x"
                for name in trees
            ),
            flush=True,
        )
    from bench_cache_memory import host  # imports the working tree's package: parent only

    payload = {
        "benchmark": "cache_keying",
        "machine": host(),
        "config": vars(args),
        "medians_of": args.reps,
        "runs": runs,
        "raw": times,
    }
    out = Path(args.out or Path(__file__).parent / "results" / "cache-keying-cpu.json")
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
