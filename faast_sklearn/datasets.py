"""Real labelled images that need no download (Fashion-MNIST from the Debian package
``dataset-fashion-mnist``, scikit-learn's digits), and the paths and labels of an image folder.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def load_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (optionally ``.gz``): a big-endian header, then the raw array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic {data[:4]!r}).")
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    dtype = np.dtype(dtypes[data[2]])
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim, count=int(np.prod(shape)))
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def load_fashion_mnist(split: str = "train", root: str | os.PathLike | None = None):
    """Fashion-MNIST images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64.

    Parameters
    ----------
    split : {"train", "test"}, default="train"
        60,000 training or 10,000 test images.
    root : path-like, default=None
        Folder of the IDX files; default ``$FAAST_FASHION_MNIST`` or the Debian package's.

    Raises
    ------
    FileNotFoundError
        If the files are absent; the message says ``apt-get install dataset-fashion-mnist``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}.")
    root = Path(root or os.environ.get("FAAST_FASHION_MNIST", FASHION_MNIST_DIR))
    prefix = {"train": "train", "test": "t10k"}[split]
    images = root / f"{prefix}-images-idx3-ubyte.gz"
    if not images.exists():
        raise FileNotFoundError(
            f"{images} not found: run `apt-get install dataset-fashion-mnist`, or set "
            "FAAST_FASHION_MNIST to the folder holding the IDX .gz files."
        )
    return load_idx(images), load_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)


def load_demo_images():
    """(name, X_train, y_train, X_test, y_test, class_names) of real grey images.

    Fashion-MNIST when the Debian package is installed, else scikit-learn's 8x8 digits
    (scaled to 0-255 uint8, split 60/40 stratified).
    """
    try:
        Xtr, ytr = load_fashion_mnist("train")
        Xte, yte = load_fashion_mnist("test")
        return "Fashion-MNIST", Xtr, ytr, Xte, yte, FASHION_MNIST_CLASSES
    except FileNotFoundError:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        images = np.round(digits.images * (255 / 16)).astype(np.uint8)
        Xtr, Xte, ytr, yte = train_test_split(
            images, digits.target, test_size=0.4, stratify=digits.target, random_state=0
        )
        return "digits", Xtr, ytr, Xte, yte, [str(i) for i in range(10)]


# Extensions read as images (those of torchvision's ImageFolder that Pillow decodes), any case.
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm",
)  # fmt: skip


def load_image_folder(path: str | os.PathLike, *, return_X_y: bool = False):
    """File paths and labels of images laid out as ``path/<class name>/<file>``.

    Classes are the sub-folders of ``path`` in sorted order (as torchvision's ``ImageFolder``
    numbers them); images are the files below each, at any depth, whose extension is one of
    :data:`IMAGE_EXTENSIONS` (any case), in sorted order. Other files and hidden entries are
    ignored. The estimators take the paths as they are: ``FAASTClassifier(backbone=...).fit(
    data.data, data.target)`` decodes, resizes and crops them as the backbone expects.

    Parameters
    ----------
    path : path-like
        The folder holding one sub-folder per class.
    return_X_y : bool, default=False
        Return ``(paths, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data``: list of the image paths (str); ``target``: ndarray of int64 class indices;
        ``target_names``: list of the class names (sub-folder names), ``target_names[i]`` being
        class ``i``; ``filenames``: the same paths as an ndarray.
    (paths, target) : tuple
        If ``return_X_y`` is True.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder.
    ValueError
        If it has no class sub-folders, or a class sub-folder holds no image.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> from faast_sklearn.datasets import load_image_folder
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ["cat", "dog"]:
    ...     (root / name).mkdir()
    ...     Image.new("RGB", (40, 30)).save(root / name / "a.jpg")
    >>> data = load_image_folder(root)
    >>> data.target_names, data.target.tolist()
    (['cat', 'dog'], [0, 1])
    """
    from sklearn.utils import Bunch

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder.")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise ValueError(
            f"{root} has no sub-folders: images must be laid out as {root}/<class name>/<file>."
        )
    paths, target = [], []
    for index, name in enumerate(classes):
        found = _image_files(root / name)
        if not found:
            raise ValueError(
                f"Class folder {root / name} holds no image file (extensions: "
                f"{', '.join(IMAGE_EXTENSIONS)})."
            )
        paths += found
        target += [index] * len(found)
    target = np.asarray(target, dtype=np.int64)
    if return_X_y:
        return paths, target
    return Bunch(data=paths, target=target, target_names=classes, filenames=np.asarray(paths))


def _image_files(folder: Path) -> list[str]:
    """The image files below ``folder`` (sorted), hidden files and folders left out; linked
    folders are followed, as torchvision's ImageFolder does, each real folder once."""
    found, visited = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a link back to a folder already read: no endless walk
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            path = os.path.join(dirpath, f)
            if (
                not f.startswith(".")
                and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS
                and os.path.isfile(path)
            ):
                found.append(path)
    return sorted(found)
