"""Scale-out: ``fit`` on a dask array, local clusters of 1 and 2 workers, dask-ml, gloo.

Rows come from a planted linear model and are generated on the workers (``dask.array.random``
with a fixed seed, ``--partition-rows`` rows a partition): class means ``mu_c`` drawn once,
``y`` uniform over ``--classes`` classes, ``x = mu_y + N(0, I)`` in float32, so the Bayes
classifier is linear (logits ``mu_c . x - |mu_c|^2 / 2``) and accuracy on held-out rows
means something. Each cluster has ``threads_per_worker=1`` and one BLAS thread per worker
(threadpoolctl, checked); the rows are persisted on the workers, then
``FAASTClassifier().fit(X, y)`` runs on the dask arrays (one task per partition, a merge
tree of fan-in 8, one solve on the client). The same rows are fitted in one process (all
cores, NumPy in memory, the fit cache off). Peak memory per worker is the process's VmHWM
over the fit (reset before it), the data it holds included. The task stream splits the time
into per-partition statistics and merges.

dask-ml runs on the 2-worker cluster on the first ``--dask-ml-rows`` of the same rows (its
solvers pass over the rows once an iteration): its ``LinearRegression`` on one target
and its ``LogisticRegression`` on a binary target (its API has no multiclass, nor several
targets), both from the planted direction ``v`` (``x . v + noise``), against
``FAASTRegressor`` / ``FAASTClassifier`` on the same targets. A 2-process gloo group times one
all-reduce of statistics of the benchmark's size (d x d + d x classes float64) against the
time to compute them; a projection for 8 and 64 CPU workers and GPUs follows from the
measured times.

Full size (the issue's), on a quiet 2-core machine::

    python benchmarks/bench_scaleout.py --rows 2000000 --out benchmarks/results/scaleout-cpu-2core

dask-ml (``pip install dask-ml``) is only needed for its comparison, skipped without it.

Smoke test::

    python benchmarks/bench_scaleout.py --rows 40000 --partition-rows 10000 --test-rows 2000 \
        --dask-ml-rows 20000 --dask-ml-iter 2 --out /tmp/scaleout-smoke
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the working tree's package

# ViT-B/16 at 224 px, bfloat16, one H100 (benchmarks/results/extraction-vit_base-224-bf16-h100.json).
H100_VIT_IMAGES_PER_S = 8474.0


# ---------------------------------------------------------------------------- data
def _means(d, n_classes, separation, seed):
    return (np.random.default_rng([seed, 1]).standard_normal((n_classes, d)) * separation).astype(
        np.float32
    )


def _add_means(noise, codes, mu):
    return noise + mu[codes[:, 0]]  # codes: the labels of the block, as a column


def make_data(n, d, n_classes, chunk, separation, seed=0, rows_seed=0):
    """Lazy ``(X, y, v)``: rows ``x = mu_y + N(0, I)`` (float32), labels, a unit direction."""
    import dask.array as da

    mu = _means(d, n_classes, separation, seed)
    rng = da.random.default_rng(rows_seed)
    y = rng.integers(0, n_classes, size=n, chunks=chunk)
    noise = rng.standard_normal((n, d), chunks=(chunk, d), dtype=np.float32)
    X = da.map_blocks(_add_means, noise, y[:, None], mu=mu, dtype=np.float32)
    v = np.random.default_rng([seed, 2]).standard_normal(d)
    return X, y, v / np.linalg.norm(v)


def side_targets(X, v, seed):
    """A regression target ``x . v + N(0, 1)`` and a binary one, its sign (lazy)."""
    import dask.array as da

    rng = da.random.default_rng([seed, 3])
    t = X @ v.astype(np.float32) + rng.standard_normal(X.shape[0], chunks=(X.chunks[0],))
    return t.astype(np.float64), (t > 0).astype(np.int64)


# ---------------------------------------------------------------------------- workers
def _one_blas_thread():
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(1)
    return sorted({p["num_threads"] for p in threadpool_info()})


def _reset_peak():
    import faast_sklearn  # noqa: F401  (imported outside the timing)

    with open("/proc/self/clear_refs", "w") as f:  # VmHWM := current RSS
        f.write("5")


def _peak_mb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _task_times(stream):
    """Compute times of the partition and merge tasks, their transfers, and each worker's
    share of the partition tasks (both workers busy: the fit ran in parallel)."""
    kinds = {"_fit_partition": [], "_merge_partitions": []}
    transfer, per_worker = 0.0, {}
    for task in stream:
        key = task["key"][0] if isinstance(task["key"], tuple) else task["key"]
        for kind in kinds:
            if str(key).startswith(kind):
                for s in task["startstops"]:
                    if s["action"] == "compute":
                        kinds[kind].append(s["stop"] - s["start"])
                        if kind == "_fit_partition":
                            w = task["worker"]
                            per_worker[w] = per_worker.get(w, 0.0) + s["stop"] - s["start"]
                    elif s["action"] == "transfer":
                        transfer += s["stop"] - s["start"]
    shares = [per_worker[w] for w in sorted(per_worker)]
    return kinds["_fit_partition"], kinds["_merge_partitions"], transfer, shares


def run_cluster(n_workers, args, test, single, with_dask_ml):
    import dask
    import distributed
    from distributed import get_task_stream

    from faast_sklearn import FAASTClassifier, merge_models

    Xt, yt, vt_reg, vt_bin = test
    out = {"workers": n_workers}
    with (
        distributed.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        out["blas_threads"] = sorted(
            {t for ts in client.run(_one_blas_thread).values() for t in ts}
        )
        X, y, v = make_data(
            args.rows, args.features, args.classes, args.partition_rows, args.separation
        )
        t0 = time.perf_counter()
        X, y = dask.persist(X, y)  # generated on the workers
        distributed.wait([X, y])
        out["generate_s"] = time.perf_counter() - t0
        client.rebalance()  # as many partitions on each worker
        held = client.has_what()
        sizes = client.nbytes(summary=False)
        workers = sorted(held)
        out["data_mb_per_worker"] = [sum(sizes.get(k, 0) for k in held[w]) / 2**20 for w in workers]
        client.run(_reset_peak)
        with get_task_stream(client) as ts:
            t0 = time.perf_counter()
            est = FAASTClassifier(solver="scipy").fit(X, y)  # solved at once
            out["fit_s"] = time.perf_counter() - t0
        peaks = client.run(_peak_mb)
        out["peak_mb_per_worker"] = [peaks[w] for w in workers]
        parts, merges, transfer, shares = _task_times(ts.data)
        out.update(
            partition_fit_s=parts,
            merge_s=merges,
            transfer_s=transfer,
            partition_s_per_worker=shares,
        )
        unsolved = merge_models([est])
        t0 = time.perf_counter()
        unsolved._ensure_solution()
        out["solve_s"] = time.perf_counter() - t0
        out["merge_share"] = sum(merges) / out["fit_s"]
        out["accuracy"] = float((est.predict(Xt) == yt).mean())
        out["alpha"] = float(est.alpha_)
        if single is not None:
            ref = single["model"]
            out["rel_coef_diff"] = float(
                np.abs(est.coef_ - ref.coef_).max() / np.abs(ref.coef_).max()
            )
        if with_dask_ml:
            out["dask_ml"] = run_dask_ml(args, client, X, v, Xt, vt_reg, vt_bin)
    return out


def run_dask_ml(args, client, X, v, Xt, yt_reg, yt_bin):
    import distributed

    from faast_sklearn import FAASTClassifier, FAASTRegressor

    try:
        from dask_ml.linear_model import LinearRegression, LogisticRegression
    except ImportError as exc:
        return {"skipped": str(exc)}
    X = X[: args.dask_ml_rows]  # whole partitions: a prefix of the rows
    t_reg, t_bin = side_targets(X, v, seed=0)
    t_reg, t_bin = client.persist([t_reg, t_bin])
    distributed.wait([t_reg, t_bin])
    res = {}
    for name, faast, theirs, target, truth in [
        ("LinearRegression", FAASTRegressor(solver="scipy"), LinearRegression, t_reg, yt_reg),
        (
            "LogisticRegression (binary)",
            FAASTClassifier(solver="scipy"),
            LogisticRegression,
            t_bin,
            yt_bin,
        ),
    ]:
        row = {}
        for label, model in [
            ("faast", faast),
            ("dask_ml", theirs(solver=args.dask_ml_solver, max_iter=args.dask_ml_iter)),
        ]:
            t0 = time.perf_counter()
            model.fit(X, target)
            row[f"{label}_s"] = time.perf_counter() - t0
            pred = np.asarray(model.predict(Xt))
            if name == "LinearRegression":
                score = 1 - ((pred - truth) ** 2).sum() / ((truth - truth.mean()) ** 2).sum()
            else:
                score = (pred == truth).mean()
            row[f"{label}_score"] = float(score)
        res[name] = row
    return res


# ---------------------------------------------------------------------------- one process
def run_single(args):
    import dask.array as da

    from faast_sklearn import FAASTClassifier, config_context

    X, y, _ = make_data(
        args.rows, args.features, args.classes, args.partition_rows, args.separation
    )
    t0 = time.perf_counter()
    out = np.empty(X.shape, dtype=X.dtype)  # filled block by block: no concatenated copy
    da.store(X, out, lock=False, scheduler="threads")
    X, y = out, y.compute(scheduler="threads")
    generate = time.perf_counter() - t0
    _reset_peak()
    with config_context(cache=False):  # the cache would keep a private copy of X
        t0 = time.perf_counter()
        model = FAASTClassifier(solver="scipy").fit(X, y)
        fit = time.perf_counter() - t0
    return {
        "model": model,
        "generate_s": generate,
        "fit_s": fit,
        "threads": os.cpu_count(),
        "peak_mb": _peak_mb(),
        "data_mb": X.nbytes / 2**20,
    }


# ---------------------------------------------------------------------------- gloo
def _gloo_worker(rank, world, port, rows, d, n_classes, path):
    import torch
    import torch.distributed as dist
    from threadpoolctl import threadpool_limits

    from faast_sklearn import FAASTClassifier

    threadpool_limits(1)
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    rng = np.random.default_rng(rank)
    X = rng.standard_normal((rows, d), dtype=np.float32)
    y = rng.integers(n_classes, size=rows)
    t0 = time.perf_counter()
    FAASTClassifier(solver="scipy").partial_fit(X, y)
    compute = time.perf_counter() - t0
    buf = torch.zeros(d * d + d * n_classes + 2 * d + 2 * n_classes, dtype=torch.float64)
    dist.all_reduce(buf)  # warm-up
    times = []
    for _ in range(5):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_reduce(buf)
        times.append(time.perf_counter() - t0)
    if rank == 0:
        Path(path).write_text(
            json.dumps(
                {
                    "rows_per_rank": rows,
                    "compute_s": compute,
                    "allreduce_s": float(np.median(times)),
                    "allreduce_mb": buf.numel() * 8 / 2**20,
                }
            )
        )
    dist.destroy_process_group()


def run_gloo(args):
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "gloo.json")
        mp.spawn(
            _gloo_worker,
            nprocs=2,
            args=(2, port, args.partition_rows, args.features, args.classes, path),
        )
        return json.loads(Path(path).read_text())


# ---------------------------------------------------------------------------- projection
def projection(clusters, gloo, args):
    """Time on W workers = (all rows' statistics) / W + reduction + solve.

    Dask: ceil(log8 W) merge levels of the measured merge time (plus its transfer); gloo: a
    ring all-reduce moves 2 (W - 1) / W of the statistics per rank, the measured 2-rank time
    (which moves 1x) scaled by that. GPUs: the same with the statistics' time replaced by
    the ViT-B/16 forward pass of the rows as images at the measured H100 rate (the statistics
    themselves are negligible there).
    """
    one = next(c for c in clusters if c["workers"] == 1)
    compute = sum(one["partition_fit_s"])
    merge = float(np.median(one["merge_s"])) if one["merge_s"] else 0.0
    transfer = one["transfer_s"] / max(1, len(one["merge_s"]))
    solve = one["solve_s"]
    forward = args.rows / H100_VIT_IMAGES_PER_S
    rows = []
    for w in (1, 2, 8, 64):
        dask_red = math.ceil(math.log(w, 8)) * (merge + transfer) if w > 1 else 0.0
        ring = gloo["allreduce_s"] * 2 * (w - 1) / w / 1.0 if w > 1 else 0.0
        cpu = compute / w + dask_red + solve
        gpu = forward / w + ring + solve
        rows.append(
            {
                "workers": w,
                "dask_cpu_s": cpu,
                "dask_reduction_share": dask_red / cpu,
                "gloo_cpu_s": compute / w + ring + solve,
                "gloo_share": ring / (compute / w + ring + solve),
                "gpu_vit_s": gpu,
                "gpu_reduction_share": ring / gpu,
            }
        )
    return {
        "compute_s": compute,
        "merge_s": merge,
        "transfer_s": transfer,
        "solve_s": solve,
        "forward_s_one_gpu": forward,
        "rows": rows,
    }


# ---------------------------------------------------------------------------- report
def write_markdown(res, path):
    a, s = res["args"], res["single"]
    base = next(c for c in res["clusters"] if c["workers"] == 1)["fit_s"]
    lines = [
        f"# Scale-out on CPU: {a['rows']:,} x {a['features']} float32, {a['classes']} classes",
        "",
        f"{res['machine']}. Rows generated on the workers in partitions of "
        f"{a['partition_rows']:,} ({math.ceil(a['rows'] / a['partition_rows'])} partitions); "
        "`FAASTClassifier(solver='scipy').fit(X, y)` on the dask arrays, one worker process "
        "per core, one BLAS thread each.",
        "",
        f"One process ({s['threads']} threads, NumPy in memory): fit {s['fit_s']:.1f} s, "
        f"peak RSS {s['peak_mb']:.0f} MB (data {s['data_mb']:.0f} MB), accuracy "
        f"{s['accuracy']:.4f} on {a['test_rows']:,} held-out rows.",
        "",
        "| workers | fit s | speed-up vs 1 worker | vs one process | merge share | solve s | "
        "peak MB / worker (data held) | accuracy | max rel coef diff vs one process |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res["clusters"]:
        mem = ", ".join(
            f"{p:.0f} ({h:.0f})"
            for p, h in zip(c["peak_mb_per_worker"], c["data_mb_per_worker"], strict=True)
        )
        lines.append(
            f"| {c['workers']} | {c['fit_s']:.1f} | {base / c['fit_s']:.2f} | "
            f"{s['fit_s'] / c['fit_s']:.2f} | {c['merge_share']:.1%} | {c['solve_s']:.2f} | "
            f"{mem} | {c['accuracy']:.4f} | {c.get('rel_coef_diff', float('nan')):.1e} |"
        )
    lines += [
        "",
        "Partition tasks' compute per worker: "
        + "; ".join(
            f"{c['workers']} worker(s): "
            + ", ".join(f"{t:.1f} s" for t in c["partition_s_per_worker"])
            for c in res["clusters"]
        )
        + ".",
        "",
        "Generating the rows on the workers: "
        + ", ".join(f"{c['workers']} worker(s) {c['generate_s']:.1f} s" for c in res["clusters"])
        + f"; BLAS threads per worker: {res['clusters'][0]['blas_threads']}.",
        "",
    ]
    ml = next((c["dask_ml"] for c in res["clusters"] if "dask_ml" in c), None)
    if ml is not None:
        lines += [
            f"## dask-ml {a['dask_ml_version']} on the 2-worker cluster, the first "
            f"{min(a['dask_ml_rows'], a['rows']):,} rows",
            "",
            f"solver={a['dask_ml_solver']!r}, max_iter={a['dask_ml_iter']}. dask-ml "
            "has no multiclass LogisticRegression and fits one target: the comparison "
            "is on one regression target and one binary target from the planted "
            "direction (R^2 and accuracy on the held-out rows).",
            "",
        ]
        if "skipped" in ml:
            lines.append(f"skipped: {ml['skipped']}")
        else:
            lines += [
                "| model | FAAST s | dask-ml s | FAAST score | dask-ml score |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {k} | {r['faast_s']:.1f} | {r['dask_ml_s']:.1f} | "
                f"{r['faast_score']:.4f} | {r['dask_ml_score']:.4f} |"
                for k, r in ml.items()
            ]
    g, p = res["gloo"], res["projection"]
    lines += [
        "",
        "## gloo, 2 processes",
        "",
        f"Statistics of {g['rows_per_rank']:,} rows on one rank (one thread): "
        f"{g['compute_s']:.2f} s; one all-reduce of the statistics ({g['allreduce_mb']:.1f} MB "
        f"float64): {g['allreduce_s'] * 1e3:.1f} ms, "
        f"{g['allreduce_s'] / g['compute_s']:.2%} of that compute.",
        "",
        "## Projection (paper), from the measured 1-worker times",
        "",
        f"Statistics of all rows {p['compute_s']:.1f} s (sum of the partition tasks), one merge "
        f"{p['merge_s'] * 1e3:.0f} ms + transfer {p['transfer_s'] * 1e3:.0f} ms, solve "
        f"{p['solve_s']:.2f} s; GPUs: ViT-B/16 forward of {a['rows']:,} images at "
        f"{H100_VIT_IMAGES_PER_S:.0f} images/s per H100 ({p['forward_s_one_gpu']:.0f} s on one).",
        "Dask: compute / W + ceil(log8 W) merges + solve; gloo: compute / W + ring all-reduce "
        "(2 (W-1)/W x the 2-rank time) + solve.",
        "",
        "| workers | Dask CPU s | reduction share | gloo CPU s | all-reduce share | "
        "H100s (ViT-B/16) s | all-reduce share |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['workers']} | {r['dask_cpu_s']:.1f} | {r['dask_reduction_share']:.1%} | "
        f"{r['gloo_cpu_s']:.1f} | {r['gloo_share']:.1%} | {r['gpu_vit_s']:.1f} | "
        f"{r['gpu_reduction_share']:.1%} |"
        for r in p["rows"]
    ]
    lines += ["", f"Total wall time of the benchmark: {res['total_s']:.0f} s."]
    Path(path).write_text("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--features", type=int, default=768)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--partition-rows", type=int, default=125_000)
    parser.add_argument("--separation", type=float, default=0.18, help="class-mean scale")
    parser.add_argument("--test-rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--skip-dask-ml", action="store_true")
    parser.add_argument("--dask-ml-solver", default="lbfgs")
    # dask-ml's solvers pass over the rows once an iteration: on all 2e6 rows they alone would
    # take longer than the rest of the benchmark on 2 cores.
    parser.add_argument("--dask-ml-rows", type=int, default=250_000)
    parser.add_argument("--dask-ml-iter", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results/scaleout-cpu-2core")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    import dask

    X, y, v = make_data(
        args.test_rows, args.features, args.classes, args.test_rows, args.separation, rows_seed=1
    )
    Xt, yt = dask.compute(X, y, scheduler="sync")
    noise = np.random.default_rng(4).standard_normal(len(yt))
    yt_reg = Xt.astype(np.float64) @ v + noise
    test = (Xt, yt, yt_reg, (yt_reg > 0).astype(np.int64))
    try:
        import dask_ml

        ml_version = dask_ml.__version__
    except ImportError:
        ml_version = None
    import distributed
    import threadpoolctl

    res = {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "dask": dask.__version__,
            "distributed": distributed.__version__,
            "dask_ml": ml_version,
            "threadpoolctl": threadpoolctl.__version__,
        },
        "args": {**vars(args), "dask_ml_version": ml_version},
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    single = None
    if not args.skip_single:
        single = run_single(args)
        single["accuracy"] = float((single["model"].predict(Xt) == yt).mean())
        print({k: v for k, v in single.items() if k != "model"}, flush=True)
        print(f"[{time.perf_counter() - start:.0f} s elapsed]", flush=True)
    clusters = []
    for w in args.workers:
        c = run_cluster(w, args, test, single, with_dask_ml=(w == 2 and not args.skip_dask_ml))
        print(
            json.dumps({k: v for k, v in c.items() if k not in ("partition_fit_s", "merge_s")}),
            flush=True,
        )
        clusters.append(c)
        print(f"[{time.perf_counter() - start:.0f} s elapsed]", flush=True)
    res["single"] = (
        {k: v for k, v in single.items() if k != "model"}
        if single
        else {
            "fit_s": float("nan"),
            "threads": os.cpu_count(),
            "peak_mb": float("nan"),
            "data_mb": float("nan"),
            "accuracy": float("nan"),
        }
    )
    res["clusters"] = clusters
    res["gloo"] = run_gloo(args)
    res["projection"] = projection(clusters, res["gloo"], args)
    res["total_s"] = time.perf_counter() - start
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps(res, indent=1))
    write_markdown(res, args.out + ".md")
    print(Path(args.out + ".md").read_text())


if __name__ == "__main__":
    main()
