"""
Fit one FAAST model across the ranks of ``torchrun``
====================================================

Not executed when the documentation is built (run it, do not import it).

Each rank fits its share of the rows; one all-reduce of the statistics gives every rank the
model of a single fit on all of them::

    torchrun --nproc-per-node 2 examples/torchrun_fit.py            # CPU (gloo)
    torchrun --nproc-per-node 8 examples/torchrun_fit.py --backend nccl  # one GPU per rank

With a backbone, each rank runs it on its own images (``shard`` a torch Dataset the same way).
"""

import argparse
import os

import numpy as np
import torch
import torch.distributed as dist
from sklearn.datasets import load_digits

from faast_sklearn import FAASTClassifier, distributed_fit, shard

parser = argparse.ArgumentParser()
parser.add_argument("--backend", default="gloo", choices=["gloo", "nccl"])
args = parser.parse_args()
if args.backend == "nccl":
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
dist.init_process_group(args.backend)
rank = dist.get_rank()

X, y = load_digits(return_X_y=True)  # every rank reads the same file; each keeps its share
clf = distributed_fit(FAASTClassifier(alpha=1.0), shard(X / 16.0), shard(y))

if rank == 0:
    whole = FAASTClassifier(alpha=1.0).fit(X / 16.0, y)
    rel = np.abs(clf.coef_ - whole.coef_).max() / np.abs(whole.coef_).max()
    print(f"{dist.get_world_size()} ranks: relative difference to one fit {rel:.1e}")
dist.destroy_process_group()
