"""The extraction loop: row keys -> cache lookup -> batched forward of the misses -> the
computed block into the cache -> the output, assembled where it is wanted."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_memory

from ..utils._torch import import_torch
from . import _store
from ._forward import progress_bar


def extract_rows(
    source: Any,
    compute: Any,
    *,
    namespace: bytes | None,
    store: bool,
    device: str,
    as_tensor: bool,
    batch_size: int,
    verbose: int,
    desc: str,
    keys: list[bytes] | None = None,
) -> tuple[Any, list[bytes] | None]:
    """Features of every row of ``source`` and the rows' keys (None when ``namespace`` is).

    Rows are keyed (under ``namespace``) and, with ``store``, looked up in and added to the
    cache chunk by chunk: keying chunk k+1 on the host overlaps the device's work on chunk k,
    whose kernels were queued asynchronously. An input present twice is computed once.
    """
    n = source.n
    store = store and namespace is not None
    state = {"batch_size": int(batch_size)}
    text = source.kind == "text"
    # Image files are keyed by a stat each: all at once, so that every batch to compute is
    # known before the first forward pass and decoding can run ahead of it (prefetch).
    ahead = hasattr(source, "prefetch") and getattr(source, "what", None) == "path"
    chunk = n if text or ahead else max(4 * state["batch_size"], 1024)
    all_keys: list[bytes] | None = [] if namespace is not None else None
    hit_pos, hit_handles, blocks = [], [], {}
    dups: list[tuple[int, int]] = []
    first: dict[bytes, int] = {}
    pending: list[int] = []
    computed: list[tuple[np.ndarray, Any]] = []
    progress = progress_bar(n, verbose, desc)
    try:
        for start in range(0, n, chunk):
            idx = np.arange(start, min(n, start + chunk))
            if all_keys is not None:
                ks = keys[start : start + len(idx)] if keys is not None else source.keys(idx)
                all_keys.extend(ks)
                if store:
                    handles, found = _store.lookup(namespace, ks)
                    blocks.update(found)
                else:
                    handles = np.full(len(ks), -1, dtype=np.int64)
                hit = handles >= 0
                hit_pos.append(idx[hit])
                hit_handles.append(handles[hit])
                miss = idx[~hit]
                missed = ks if len(miss) == len(ks) else [ks[j] for j in (miss - start).tolist()]
                # Each key's first row in this call: an input present twice is computed once.
                firsts = np.fromiter(map(first.setdefault, missed, miss.tolist()), np.int64)
                again = firsts != miss
                pending.extend(miss[~again].tolist())
                dups.extend(zip(miss[again].tolist(), firsts[again].tolist(), strict=True))
                progress.update(len(ks) - len(miss) + int(again.sum()))
            else:
                pending.extend(idx.tolist())
            if text:  # length-sorted batches pad less (as sentence-transformers does)
                pending.sort(key=lambda i: len(source.X[i]))
            takes = _takes(pending, state, start + chunk >= n)
            if ahead:
                takes = list(takes)
                source.prefetch(takes, device)
            for take in takes:
                computed.append((take, compute(take, state)))
                progress.update(len(take))
            if hasattr(source, "drop_memo"):
                source.drop_memo()
    finally:
        progress.close()
        if hasattr(source, "close"):
            source.close()
    torch = import_torch()
    pos = np.concatenate([p for p, _ in computed]) if computed else np.empty(0, np.int64)
    feats = torch.cat([f for _, f in computed]) if computed else None
    skipped = [s[0] for s in getattr(source, "skipped", ())]
    if skipped and feats is not None:
        # Files left out (on_error="skip"): their rows are NaN and never cached.
        bad = np.isin(pos, skipped)
        good = torch.as_tensor(np.flatnonzero(~bad), device=feats.device)
        feats[torch.as_tensor(np.flatnonzero(bad), device=feats.device)] = float("nan")
        if store and len(good):
            block = feats[good]
            block = block.numpy() if block.device.type == "cpu" else block
            _store.put(namespace, _picked(all_keys, pos[~bad]), block)
        store = False
    shared = False
    if store and feats is not None:
        # On a device, feats (this call's own tensor, never written to below) is the block
        # itself; on the host the cache keeps a copy of its NumPy view.
        block = feats.numpy() if feats.device.type == "cpu" else feats
        shared = _store.put(namespace, _picked(all_keys, pos), block)
    hits = np.concatenate(hit_pos) if hit_pos else np.empty(0, np.int64)
    if feats is not None and len(pos) == n and not len(hits) and not dups and _in_order(pos):
        return _whole(feats, device, as_tensor, shared), all_keys
    d = feats.shape[1] if feats is not None else next(iter(blocks.values())).shape[1]
    if as_tensor:
        out = torch.empty((n, d), dtype=torch.float32, device=device)
        if feats is not None:
            out[torch.as_tensor(pos, device=out.device)] = feats.to(out.device)
    else:
        out = np.empty((n, d), dtype=np.float32)
        if feats is not None:
            out[pos] = feats.cpu().numpy()
    if len(hits):
        _store.gather(np.concatenate(hit_handles), blocks, out, hits)
    if dups:
        pairs = np.asarray(dups, dtype=np.int64)
        if as_tensor:
            pairs = torch.as_tensor(pairs, device=out.device)
        out[pairs[:, 0]] = out[pairs[:, 1]]
    return out, all_keys


def _takes(pending: list[int], state: dict, flush: bool):
    """Batches of ``state["batch_size"]`` rows taken from ``pending`` (the last one short
    only with ``flush``); the size is read anew each batch (an out-of-memory halves it)."""
    while len(pending) >= state["batch_size"] or (pending and flush):
        take = np.asarray(pending[: state["batch_size"]], dtype=np.int64)
        del pending[: len(take)]
        yield take


def _picked(keys: list[bytes], pos: np.ndarray) -> list[bytes]:
    return list(map(keys.__getitem__, pos.tolist()))


def _in_order(pos: np.ndarray) -> bool:
    return bool(np.all(pos == np.arange(len(pos))))


def _whole(feats: Any, device: str, as_tensor: bool, shared: bool) -> Any:
    """A call's computed rows as its output: a copy only where the cache holds them as they
    are (the caller may write to its output)."""
    if as_tensor:
        out = feats.to(device)
        return out.clone() if shared and out.data_ptr() == feats.data_ptr() else out
    return feats.cpu().numpy()


def disk_extract(memory, source, compute, namespace, store, options):
    """Features through the ``memory=`` disk cache: one entry per call, keyed by the
    backbone's namespace and the row keys, so that a call on the same inputs in another
    process or session skips extraction."""
    keys = source.keys(np.arange(source.n))
    cached = check_memory(memory).cache(_disk_extract, ignore=["job"])
    job = (source, compute, namespace, store, {**options, "as_tensor": False}, keys)
    try:
        feats = cached(namespace.hex(), np.array(keys, dtype=f"S{len(keys[0])}"), job=job)
    except _NotStored as result:
        feats = result.feats
    if options["as_tensor"]:
        feats = import_torch().from_numpy(feats).to(options["device"])
    return feats, keys


def _disk_extract(namespace: str, keys: np.ndarray, job: tuple) -> np.ndarray:
    """joblib.Memory target: ``namespace`` and the row ``keys`` identify the result."""
    source, compute, namespace_bytes, store, options, key_list = job
    feats, _ = extract_rows(
        source, compute, namespace=namespace_bytes, store=store, keys=key_list, **options
    )
    if getattr(source, "skipped", None):
        raise _NotStored(feats)  # NaN rows of files left out: not a result to keep
    return feats


class _NotStored(Exception):
    """Carries features out of the disk cache's function without joblib storing them."""

    def __init__(self, feats: np.ndarray):
        super().__init__("features with rows of skipped files")
        self.feats = feats
