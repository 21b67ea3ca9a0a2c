"""Where the time of decoding an image folder goes, stage by stage (issue 16).

Times, over ``--n-files`` JPEG files of a folder (built by ``make_photo_folder.py`` if absent)
at ``--batch`` files a batch, with ``--workers`` host threads or processes:

a. ``read``: reading the bytes only (threads).
b. ``probe_pil``: main's probe (bytes + ``PIL.Image.open`` for mode and EXIF), threads.
c. ``probe_scan``: bytes + the marker scan of :func:`faast_sklearn.features._jpeg.scan_jpeg`.
d. ``nvjpeg_batched`` / ``nvjpeg_single``: ``torchvision.io.decode_jpeg`` of in-memory bytes on
   the device, a batch at once or file by file; ``kinds``: which JPEG kinds it takes.
e. ``resize_*``: the resize + crop of decoded device images: per image as main does it (float,
   antialiased interpolate, round, clamp, uint8), per image into one float buffer with one
   rounding per batch, in bfloat16, and with ``torchvision.transforms.v2.functional.resize``.
f. ``cpu_*``: host decoders, images/s with ``--workers`` threads or processes: torchvision's
   ``decode_jpeg`` (libjpeg-turbo) + torch's uint8 antialiased resize, PIL with draft (the
   package's ``decode_pil``), OpenCV (reference only, not a dependency).
g. ``hybrid_*``: a share of each batch on nvJPEG while host threads decode the rest.
h. ``e2e_*``: main's pipeline rebuilt here (PIL probe, batched nvJPEG, per-image resize) against
   the package's ``decode_images`` and ``iter_decoded``; ``overlap_*``: ``iter_decoded`` under a
   synthetic forward pass on the default stream (how much of the decode it hides).

Each stage is timed after one warm-up batch, guarded (a failure is recorded, the rest runs) and
skipped past ``--budget`` seconds. Prints one line per figure and writes them all to ``--out``.

Usage (an H100 host)::

    python benchmarks/profile_decode.py --out /tmp/profile.json
    python benchmarks/profile_decode.py --device cpu --folder /tmp/p --make 256 --n-files 128 \\
        --batch 32 --workers 2 --out /tmp/p.json   # CPU smoke test
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from multiprocessing import get_context

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from faast_sklearn.features._images import resize_crop_tensor, resize_plan  # noqa: E402
from faast_sklearn.features._jpeg import scan_jpeg  # noqa: E402

CFG = dict(  # vit_base_patch16_224's data configuration
    input_size=(3, 224, 224),
    interpolation="bicubic",
    crop_pct=0.9,
    crop_mode="center",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)
RESULTS: dict = {}
OUT = None
START = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - START:6.1f}s] {msg}", flush=True)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def stage(name: str, n_images: int, fn, device: str, budget: float, warm=None) -> None:
    """Time ``fn()`` (after ``warm()``, or a first ``fn()``), record images/s; errors recorded."""
    if time.perf_counter() - START > budget:
        RESULTS[name] = "skipped (budget)"
        log(f"{name}: skipped (budget)")
        return
    try:
        (warm or fn)()
        sync(device)
        t = time.perf_counter()
        fn()
        sync(device)
        dt = time.perf_counter() - t
        RESULTS[name] = round(n_images / dt, 1)
        log(f"{name}: {n_images / dt:,.0f} images/s ({dt * 1e3:.0f} ms for {n_images})")
    except Exception as exc:
        RESULTS[name] = f"error: {type(exc).__name__}: {exc}"[:300]
        log(f"{name}: FAILED {type(exc).__name__}: {exc}")
        traceback.print_exc(limit=3)
    if OUT:  # after every figure: a run cut short still leaves its figures
        with open(OUT, "w") as f:
            json.dump(RESULTS, f, indent=1)


def read_bytes(path):
    return np.fromfile(path, dtype=np.uint8)


def probe_pil(path):
    """Main's ``_probe``: the bytes, and PIL's look at the mode and EXIF orientation."""
    from PIL import Image

    data = np.fromfile(path, dtype=np.uint8)
    if data[:3].tobytes() != b"\xff\xd8\xff" or b"\xff\xd9" not in data[-16:].tobytes():
        return None
    with Image.open(io.BytesIO(data)) as img:
        if img.mode not in ("RGB", "L"):
            return None
        try:
            orientation = int(img.getexif().get(0x0112, 1))
        except Exception:
            orientation = 1
    return torch.from_numpy(data), orientation


def probe_scan(path):
    data = np.fromfile(path, dtype=np.uint8)
    info = scan_jpeg(data)
    if info is None or not info.plain:
        return None
    return torch.from_numpy(data), info.orientation


def resize_main(x, cfg):
    """Main's ``_resize_uint8``: (3, h, w) uint8 -> (3, H, W) uint8."""
    y = resize_crop_tensor(x[None].float(), cfg, max_value=255.0)[0]
    return y.round_().clamp_(0, 255).to(x.dtype)


def _interp_kwargs(cfg):
    mode = cfg.get("interpolation", "bilinear")
    mode = mode if mode in ("bilinear", "bicubic") else "bilinear"
    return dict(mode=mode, align_corners=False, antialias=True)


def resize_into(images, cfg, dtype=torch.float32):
    """Per image: cast, interpolate, copy the crop into one buffer; one rounding per batch."""
    _, oh, ow = cfg["input_size"]
    buf = torch.empty((len(images), 3, oh, ow), dtype=dtype, device=images[0].device)
    kw = _interp_kwargs(cfg)
    for k, x in enumerate(images):
        (nh, nw), (top, left, _, _) = resize_plan(x.shape[-2], x.shape[-1], cfg)
        y = torch.nn.functional.interpolate(x[None].to(dtype), size=(nh, nw), **kw)
        buf[k] = y[0, :, top : top + oh, left : left + ow]
    return buf.round_().clamp_(0, 255).to(torch.uint8)


def resize_v2(images, cfg):
    from torchvision.transforms.v2 import functional as F

    _, oh, ow = cfg["input_size"]
    out = torch.empty((len(images), 3, oh, ow), dtype=torch.uint8, device=images[0].device)
    mode = F.InterpolationMode[cfg.get("interpolation", "bilinear").upper()]
    for k, x in enumerate(images):
        (nh, nw), (top, left, _, _) = resize_plan(x.shape[-2], x.shape[-1], cfg)
        y = F.resize(x, [nh, nw], interpolation=mode, antialias=True)
        out[k] = y[:, top : top + oh, left : left + ow]
    return out


def cpu_tv(path, cfg=CFG):
    """torchvision's libjpeg-turbo decode + torch's uint8 antialiased resize, (H, W, 3)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    x = decode_jpeg(torch.from_numpy(np.fromfile(path, dtype=np.uint8)), mode=ImageReadMode.RGB)
    (nh, nw), (top, left, oh, ow) = resize_plan(x.shape[-2], x.shape[-1], cfg)
    y = torch.nn.functional.interpolate(x[None], size=(nh, nw), **_interp_kwargs(cfg))
    return y[0, :, top : top + oh, left : left + ow].permute(1, 2, 0).numpy()


def cpu_pil(path, cfg=CFG):
    from faast_sklearn.features._host_decode import decode_pil

    return decode_pil(path, cfg)


def cpu_cv2(path, cfg=CFG):
    import cv2

    cv2.setNumThreads(1)
    img = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_COLOR)
    (nh, nw), (top, left, oh, ow) = resize_plan(img.shape[0], img.shape[1], cfg)
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return img[top : top + oh, left : left + ow, ::-1]


def _proc_init():
    torch.set_num_threads(1)


def jpeg_kinds(device: str) -> dict:
    """Which JPEG kinds ``decode_jpeg`` takes on ``device`` (and on the CPU), and how far its
    pixels are from PIL's."""
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg

    rng = np.random.default_rng(0)
    base = Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8)).resize((256, 192))
    kinds = {
        "baseline_420": (base, {}),
        "baseline_444": (base, {"subsampling": 0}),
        "baseline_422": (base, {"subsampling": 1}),
        "grey": (base.convert("L"), {}),
        "progressive": (base, {"progressive": True}),
        "optimized": (base, {"optimize": True}),
        "restart_markers": (base, {"restart_marker_blocks": 4}),
        "cmyk": (base.convert("CMYK"), {}),
        "odd_size_333x211": (base.resize((333, 211)), {}),
    }
    out = {}
    for name, (img, kw) in kinds.items():
        buf = io.BytesIO()
        try:
            img.save(buf, "JPEG", quality=90, **kw)
        except Exception as exc:
            out[name] = f"PIL cannot write it: {exc}"
            continue
        data = torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(int)
        row = {"scan_plain": bool(scan_jpeg(buf.getvalue()).plain)}
        for dev in dict.fromkeys([device, "cpu"]):
            try:
                x = decode_jpeg([data], mode=ImageReadMode.RGB, device=dev)[0]
                diff = np.abs(x.permute(1, 2, 0).cpu().numpy().astype(int) - ref)
                row[dev] = f"ok, max diff {diff.max()}, mean {diff.mean():.2f}"
            except Exception as exc:
                row[dev] = f"refused: {type(exc).__name__}: {str(exc)[:120]}"
        out[name] = row
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--folder", default="/tmp/faast_photos_10240")
    p.add_argument("--make", type=int, default=10240, help="files to build if the folder is absent")
    p.add_argument("--n-files", type=int, default=2048)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--workers", type=int, default=os.cpu_count())
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--budget", type=float, default=150.0)
    p.add_argument("--out", default="profile_decode.json")
    args = p.parse_args(argv)
    dev, bs, W = args.device, args.batch, args.workers
    cuda = dev.startswith("cuda")
    budget = args.budget
    import torchvision

    RESULTS["env"] = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "host_cores": os.cpu_count(),
        "workers": W,
        "batch": bs,
    }
    if cuda:
        try:
            RESULTS["env"]["stream_priorities"] = torch.cuda.Stream.priority_range()
        except Exception:
            pass
    log(f"env: {RESULTS['env']}")
    if not os.path.isdir(args.folder):
        from make_photo_folder import make_photo_folder

        t = time.perf_counter()
        count, mean = make_photo_folder(args.folder, args.make, n_jobs=W)
        log(f"built {count} files (mean {mean / 1024:.1f} KiB) in {time.perf_counter() - t:.1f} s")
    budget += time.perf_counter() - START  # the folder's making is not the profile's
    from faast_sklearn.datasets import load_image_folder

    paths = np.asarray(load_image_folder(args.folder, return_X_y=True)[0], dtype=object)
    step = max(1, len(paths) // args.n_files)  # every class, assorted sizes
    paths = [str(q) for q in paths[::step][: args.n_files]]
    n = len(paths) - len(paths) % bs or len(paths)
    paths = paths[:n]
    batches = [paths[a : a + bs] for a in range(0, n, bs)]
    RESULTS["env"]["n_files"] = n
    threads = ThreadPoolExecutor(W)
    _, oh, ow = CFG["input_size"]
    global OUT
    OUT = args.out

    # a-c: reading and probing
    for name, fn in (("read", read_bytes), ("probe_pil", probe_pil), ("probe_scan", probe_scan)):
        stage(name, n, lambda fn=fn: [list(threads.map(fn, b)) for b in batches], dev, budget)
    infos = [scan_jpeg(read_bytes(q)) for q in paths]
    RESULTS["folder_kinds"] = {
        "plain": sum(bool(i and i.plain) for i in infos),
        "progressive": sum(bool(i and i.progressive) for i in infos),
        "orientation_not_1": sum(bool(i and i.orientation != 1) for i in infos),
        "sizes_distinct": len({(i.height, i.width) for i in infos if i}),
    }
    log(f"folder kinds: {RESULTS['folder_kinds']}")
    try:
        RESULTS["jpeg_kinds"] = jpeg_kinds(dev)
        for k, v in RESULTS["jpeg_kinds"].items():
            log(f"kind {k}: {v}")
    except Exception as exc:
        RESULTS["jpeg_kinds"] = f"error: {exc}"

    # d: the device decoder alone, bytes in memory
    from torchvision.io import ImageReadMode, decode_jpeg

    datas = [[torch.from_numpy(read_bytes(q)) for q in b] for b in batches]

    def dec_batched():
        return [decode_jpeg(d, mode=ImageReadMode.RGB, device=dev) for d in datas]

    stage("nvjpeg_batched" if cuda else "tv_cpu_batched_1thread", n, dec_batched, dev, budget)
    if cuda:
        stage(
            "nvjpeg_single",
            bs,
            lambda: [decode_jpeg(x, mode=ImageReadMode.RGB, device=dev) for x in datas[0]],
            dev,
            budget,
        )
        for sub in (64, 128):
            stage(
                f"nvjpeg_batched_{sub}",
                n,
                lambda sub=sub: [
                    decode_jpeg(d[a : a + sub], mode=ImageReadMode.RGB, device=dev)
                    for d in datas
                    for a in range(0, len(d), sub)
                ],
                dev,
                budget,
            )

    # e: resize + crop of decoded images on the device
    try:
        decoded = dec_batched()
        sync(dev)
        RESULTS["sizes_distinct_per_batch"] = float(
            np.mean([len({tuple(x.shape) for x in b}) for b in decoded])
        )

        def main_resize():
            for b in decoded:
                out = torch.empty((len(b), 3, oh, ow), dtype=torch.uint8, device=dev)
                for k, x in enumerate(b):
                    out[k] = resize_main(x, CFG)

        stage("resize_main", n, main_resize, dev, budget)
        stage("resize_into_f32", n, lambda: [resize_into(b, CFG) for b in decoded], dev, budget)
        if cuda:
            stage(
                "resize_into_bf16",
                n,
                lambda: [resize_into(b, CFG, torch.bfloat16) for b in decoded],
                dev,
                budget,
            )
        stage("resize_v2", n, lambda: [resize_v2(b, CFG) for b in decoded], dev, budget)
        decoded.clear()
    except Exception as exc:
        RESULTS["resize"] = f"error: {exc}"
        log(f"resize stages failed: {exc}")

    # f: host decoders, threads and processes
    m = min(n, 4 * bs)
    sub = paths[:m]
    fns = [("tv", cpu_tv), ("pil", cpu_pil)]
    try:
        import cv2  # noqa: F401

        fns.append(("cv2", cpu_cv2))
    except ImportError:
        pass
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core per worker thread
    for name, fn in fns:
        stage(f"cpu_{name}_1thread", 64, lambda fn=fn: [fn(q) for q in sub[:64]], dev, budget)
        stage(f"cpu_{name}_threads", m, lambda fn=fn: list(threads.map(fn, sub)), dev, budget)
    torch.set_num_threads(torch_threads)

    # g: hybrid, a share of each batch on nvJPEG, the rest on host threads at once
    if cuda:
        stream = torch.cuda.Stream()

        def hybrid(share):
            for b in batches:
                k = int(round(share * len(b)))
                host = torch.empty((len(b) - k, oh, ow, 3), dtype=torch.uint8, pin_memory=True)

                def put(j, q, host=host):
                    host[j] = torch.from_numpy(cpu_tv(q))

                futures = [threads.submit(put, j, q) for j, q in enumerate(b[k:])]
                gpu = None
                with torch.cuda.stream(stream):
                    if k:
                        probes = [probe_scan(q) for q in b[:k]]
                        datas_k = [p[0] for p in probes]
                        imgs = decode_jpeg(datas_k, mode=ImageReadMode.RGB, device=dev)
                        gpu = resize_into(imgs, CFG)
                for f in futures:
                    f.result()
                with torch.cuda.stream(stream):
                    moved = host.to(dev, non_blocking=True).permute(0, 3, 1, 2)
                    out = torch.cat([gpu, moved]) if gpu is not None else moved
                stream.synchronize()
            return out

        torch.set_num_threads(1)
        for share in (0.0, 0.25, 0.4, 0.55, 0.7, 1.0):
            stage(f"hybrid_{share}", n, lambda s=share: hybrid(s), dev, budget)
        torch.set_num_threads(torch_threads)

    # h: end to end: main's pipeline against the package's
    from faast_sklearn.features._decode import decode_images, iter_decoded

    def main_pipeline():
        for b in batches:
            probes = list(threads.map(probe_pil, b))
            imgs = decode_jpeg([p[0] for p in probes], mode=ImageReadMode.RGB, device=dev)
            out = torch.empty((len(b), 3, oh, ow), dtype=torch.uint8, device=dev)
            for k, x in enumerate(imgs):
                out[k] = resize_main(x, CFG)

    stage("e2e_main_rebuilt", n, main_pipeline, dev, budget)
    stage(
        "e2e_decode_images",
        n,
        lambda: [decode_images(b, CFG, device=dev, num_workers=W) for b in batches],
        dev,
        budget,
    )

    def iterate(work=None):
        for batch in iter_decoded(paths, CFG, batch_size=bs, device=dev, num_workers=W):
            if work is not None:
                work(batch.images)

    stage("e2e_iter_decoded", n, iterate, dev, budget)
    stage(
        "e2e_decode_images_pil",
        n,
        lambda: [decode_images(b, CFG, device=dev, num_workers=W, backend="pil") for b in batches],
        dev,
        budget,
    )
    if cuda:
        # A stand-in forward pass on the default stream: ~ViT-B/16 at 8,400 images/s.
        a = torch.randn(8192, 8192, device=dev, dtype=torch.bfloat16)
        t = time.perf_counter()
        for _ in range(20):
            a @ a
        sync(dev)
        per = (time.perf_counter() - t) / 20
        reps = max(1, round(bs / 8400 / per))

        def work(images):
            images.float().mean()
            for _ in range(reps):
                a @ a

        stage(
            "overlap_compute_only",
            n,
            lambda: [work(torch.zeros(1, device=dev)) for _ in batches],
            dev,
            budget,
        )
        stage("overlap_iter_decoded_with_compute", n, lambda: iterate(work), dev, budget)
        RESULTS["overlap_note"] = (
            "images/s with compute alone vs decode+compute; perfect overlap gives "
            "min(e2e_iter_decoded, overlap_compute_only)"
        )
    # f, last (a forked pool after CUDA's start; a hang costs only this): processes
    torch.set_num_threads(1)
    try:
        with get_context("fork").Pool(W, initializer=_proc_init) as procs:
            chunk = max(1, m // (4 * W))
            for name, fn in fns:
                stage(
                    f"cpu_{name}_processes",
                    m,
                    lambda fn=fn: procs.map_async(fn, sub, chunksize=chunk).get(timeout=60),
                    dev,
                    budget,
                )
    except Exception as exc:
        RESULTS["cpu_processes"] = f"error: {exc}"
    torch.set_num_threads(torch_threads)
    with open(args.out, "w") as f:
        json.dump(RESULTS, f, indent=1)
    log(f"wrote {args.out}; total {time.perf_counter() - START:.1f} s")


if __name__ == "__main__":
    main()
