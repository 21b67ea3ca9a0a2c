"""Fitting on image file paths: a load_image_folder layout, EXIF orientation, bad files."""

import re

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("timm")

from PIL import Image, ImageOps  # noqa: E402

from faast_sklearn import FAASTClassifier  # noqa: E402
from faast_sklearn.datasets import load_image_folder  # noqa: E402
from faast_sklearn.features import FeatureExtractor  # noqa: E402


def _picture(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A smooth, not symmetric picture (JPEG keeps it well)."""
    yy, xx = np.mgrid[0:h, 0:w]
    phase = np.random.default_rng(seed).uniform(0, 6, 3)
    planes = [np.sin(xx / (7.0 + 3 * c) + phase[c]) * np.cos(yy / 11.0) for c in range(3)]
    return (np.stack(planes, -1) * 100 + 128 + 0.6 * xx[..., None]).astype(np.uint8)


@pytest.fixture
def folder(tmp_path):
    """cat/ and dog/ with four JPEGs each; dog/rotated.jpg stores its pixels turned, with
    EXIF orientation 6 (turn 90 degrees clockwise to show)."""
    for c, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            picture = _picture(10 * c + i)
            picture[:, :, c] //= 3  # a class shows in its colour
            Image.fromarray(picture).save(tmp_path / name / f"{i}.jpg", quality=95)
    upright = _picture(99)
    upright[:, :, 1] //= 3
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(upright)).save(tmp_path / "dog" / "rotated.jpg", quality=95, exif=exif)
    Image.fromarray(_picture(7)).save(tmp_path / "cat" / "3.png")
    return tmp_path


def test_fit_on_an_image_folder_honours_exif_orientation(folder):
    paths, y = load_image_folder(folder, return_X_y=True)
    assert len(paths) == 8
    clf = FAASTClassifier(backbone="test_tiny", device="cpu").fit(paths, y)
    assert clf.predict(paths).shape == (8,)
    assert clf.score(paths, y) > 0.5

    rotated = str(folder / "dog" / "rotated.jpg")
    ext = FeatureExtractor("test_tiny", device="cpu", cache=False)
    with Image.open(rotated) as img:
        shown = ImageOps.exif_transpose(img)  # what a viewer shows
        stored = img.convert("RGB")  # the pixels as stored, orientation ignored
        from_file, from_shown, from_stored = (
            ext.transform([rotated]),
            ext.transform([shown]),
            ext.transform([stored]),
        )
    np.testing.assert_allclose(from_file, from_shown, rtol=1e-5, atol=1e-5)
    assert np.abs(from_file - from_stored).max() > 1e-3


def _spoil(path, how: str) -> None:
    if how == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0" + np.random.default_rng(0).bytes(3000))
    elif how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_text("not an image")


@pytest.mark.parametrize("how", ["corrupt", "truncated", "text"])
def test_fit_names_a_bad_file_and_its_index(folder, how):
    _spoil(folder / "dog" / "1.jpg", how)
    paths, y = load_image_folder(folder, return_X_y=True)
    bad = paths.index(str(folder / "dog" / "1.jpg"))
    clf = FAASTClassifier(backbone="test_tiny", device="cpu", batch_size=3)
    with pytest.raises(ValueError, match=rf"X\[{bad}\] = '{re.escape(paths[bad])}'"):
        clf.fit(paths, y)
    # The other files still fit.
    keep = [i for i in range(len(paths)) if i != bad]
    clf.fit([paths[i] for i in keep], y[keep])


def test_fit_skips_a_bad_file_on_request(folder):
    """on_error="skip": a warning names the file; its row leaves with its label."""
    _spoil(folder / "dog" / "1.jpg", "corrupt")
    paths, y = load_image_folder(folder, return_X_y=True)
    bad = paths.index(str(folder / "dog" / "1.jpg"))
    keep = [i for i in range(len(paths)) if i != bad]
    ext = FeatureExtractor("test_tiny", device="cpu", batch_size=3, on_error="skip")
    with pytest.warns(UserWarning, match=rf"Skipped 1 image file.*X\[{bad}\] = "):
        clf = FAASTClassifier(backbone=ext).fit(paths, y)
    assert clf.n_samples_seen_ == len(paths) - 1
    # The same as a fit without the file, its label and its weight.
    weights = np.arange(1.0, len(paths) + 1)
    with pytest.warns(UserWarning, match="Skipped 1"):
        skipped = FAASTClassifier(backbone=ext).fit(paths, y, sample_weight=weights)
    clean = FAASTClassifier(backbone="test_tiny", device="cpu").fit(
        [paths[i] for i in keep], y[keep], sample_weight=weights[keep]
    )
    np.testing.assert_allclose(skipped.coef_, clean.coef_, rtol=1e-4, atol=1e-5)
    # transform keeps one row per input: NaN for the skipped file.
    with pytest.warns(UserWarning, match="Skipped 1"):
        feats = ext.transform(paths)
    assert np.isnan(feats[bad]).all() and np.isfinite(feats[keep]).all()


def test_skip_covers_missing_files_and_the_disk_cache_keeps_no_skipped_row(folder, tmp_path):
    paths, _ = load_image_folder(folder, return_X_y=True)
    gone = str(folder / "cat" / "0.jpg")
    bad = paths.index(gone)
    (folder / "cat" / "0.jpg").unlink()
    kw = {"device": "cpu", "memory": str(tmp_path / "disk")}
    with pytest.raises(ValueError, match=rf"X\[{bad}\] = '{re.escape(gone)}' does not exist"):
        FeatureExtractor("test_tiny", **kw).transform(paths)
    with pytest.warns(UserWarning, match=rf"Skipped 1 image file.*X\[{bad}\]"):
        feats = FeatureExtractor("test_tiny", on_error="skip", **kw).transform(paths)
    assert np.isnan(feats[bad]).all() and np.isfinite(np.delete(feats, bad, 0)).all()
    # The disk cache kept no result with a skipped row: raising still raises.
    with pytest.raises(ValueError, match=re.escape(gone)):
        FeatureExtractor("test_tiny", **kw).transform(paths)


def test_a_16_bit_grey_png_reads_as_its_8_bit_image(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "16.png")
    Image.fromarray((ramp / 257.0).round().astype(np.uint8)).save(tmp_path / "8.png")
    ext = FeatureExtractor("test_tiny", device="cpu", cache=False)
    wide, narrow = ext.transform([str(tmp_path / "16.png"), str(tmp_path / "8.png")])
    np.testing.assert_allclose(wide, narrow, rtol=1e-5, atol=1e-6)


def test_images_of_several_sizes_get_the_checks_of_one_array():
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(32, 32), (40, 28)]]
    ext = FeatureExtractor("test_tiny", device="cpu", cache=False)
    with pytest.raises(TypeError, match=r"X\[0\]: Image arrays must be uint8 .* got dtype int64"):
        ext.transform([a.astype(np.int64) for a in images])
    with pytest.warns(UserWarning, match="read as values in \\[0, 1\\]"):
        ext.transform([a.astype(np.float32) for a in images])
    np.testing.assert_allclose(
        ext.transform([a / np.float32(255) for a in images]), ext.transform(images), atol=1e-5
    )


def test_fit_from_a_folder_equals_fit_from_its_decoded_files(folder):
    """Batches decoded ahead of the forward pass (in a background thread) give the rows in
    order: the features equal those of each file decoded on its own."""
    paths, _ = load_image_folder(folder, return_X_y=True)
    ext = FeatureExtractor("test_tiny", device="cpu", batch_size=3, cache=False)
    together = ext.transform(paths)
    alone = np.concatenate([ext.transform([p]) for p in paths])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    # A subset in another order (a cross-validation fold) too.
    order = [5, 0, 7, 2]
    np.testing.assert_allclose(
        ext.transform([paths[i] for i in order]), alone[order], rtol=1e-5, atol=1e-6
    )


def test_a_bad_file_late_in_a_folder_raises_and_stops_decoding(folder):
    """The error of a file decoded ahead reaches the caller at its batch, never a hang, and
    the extractor works again afterwards."""
    _spoil(folder / "dog" / "2.jpg", "text")
    paths, _ = load_image_folder(folder, return_X_y=True)
    bad = paths.index(str(folder / "dog" / "2.jpg"))
    assert bad >= 4  # in a batch decoded ahead, not the first
    ext = FeatureExtractor("test_tiny", device="cpu", batch_size=2, cache=False)
    with pytest.raises(ValueError, match=rf"X\[{bad}\]"):
        ext.transform(paths)
    good = [p for i, p in enumerate(paths) if i != bad]
    assert ext.transform(good).shape == (len(good), 16)
