"""Build a folder of real-size JPEG photographs in a ``class_name/xxx.jpg`` layout, offline.

The sources are the colour photographs that ship inside the scikit-image and scikit-learn
wheels (no download): ``skimage.data``'s astronaut, coffee, chelsea and rocket, and
scikit-learn's ``load_sample_images`` (china, flower). Each class is one source photograph;
each file is a random crop of it (40 to 100 % of each side), rescaled so that its longer side
is between 300 and 800 px (bicubic), flipped left-right half the time, colour-jittered
(brightness, contrast, saturation within +-25 %) and encoded as JPEG at quality 85 to 95.
Deterministic: file ``i`` is made from a generator seeded with ``(seed, i)``.

Usage::

    python benchmarks/make_photo_folder.py /tmp/photos --n 10000 --seed 0
"""

from __future__ import annotations

import argparse
import os
import time
from multiprocessing import Pool

import numpy as np

_SOURCES: dict[str, np.ndarray] = {}


def sources() -> dict[str, np.ndarray]:
    """The source photographs by class name, (H, W, 3) uint8 (loaded once per process)."""
    if not _SOURCES:
        from sklearn.datasets import load_sample_images

        try:
            import skimage.data
        except ImportError:  # scikit-learn's two photographs only
            skimage = None
        for name in ("astronaut", "coffee", "chelsea", "rocket") if skimage else ():
            _SOURCES[name] = getattr(skimage.data, name)()
        sample = load_sample_images()
        for fname, image in zip(sample.filenames, sample.images, strict=True):
            _SOURCES[os.path.splitext(os.path.basename(fname))[0]] = image
    return _SOURCES


def _make(job: tuple[str, int, int]) -> int:
    """Write file ``i``; its size in bytes."""
    from PIL import Image, ImageEnhance

    root, seed, i = job
    rng = np.random.default_rng([seed, i])
    names = sorted(sources())
    name = names[i % len(names)]
    photo = sources()[name]
    h, w = photo.shape[:2]
    ch, cw = (rng.uniform(0.4, 1.0, 2) * (h, w)).astype(int)
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    img = Image.fromarray(photo[top : top + ch, left : left + cw])
    scale = rng.uniform(300, 800) / max(ch, cw)
    img = img.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BICUBIC)
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        img = enhance(img).enhance(rng.uniform(0.75, 1.25))
    path = os.path.join(root, name, f"{i:06d}.jpg")
    img.save(path, "JPEG", quality=int(rng.integers(85, 96)))
    return os.path.getsize(path)


def make_photo_folder(root: str, n: int = 10_000, seed: int = 0, n_jobs: int | None = None):
    """Write ``n`` photographs under ``root``; (number of files, mean size in bytes)."""
    for name in sources():
        os.makedirs(os.path.join(root, name), exist_ok=True)
    jobs = [(root, seed, i) for i in range(n)]
    n_jobs = n_jobs or os.cpu_count() or 1
    if n_jobs == 1:
        sizes = list(map(_make, jobs))
    else:
        with Pool(n_jobs) as workers:
            sizes = workers.map(_make, jobs, chunksize=max(1, n // (8 * n_jobs)))
    return len(sizes), float(np.mean(sizes))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    count, mean = make_photo_folder(args.root, args.n, args.seed, args.jobs)
    print(
        f"{count} JPEG files in {len(sources())} classes under {args.root}, "
        f"mean size {mean / 1024:.1f} KiB, {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
