"""Decoding image files: same pixels as timm's evaluation transform, EXIF honoured, bad files
named. Real photographs (scikit-image's and scikit-learn's) at assorted sizes and formats.

Tolerances (uint8 levels, measured on these files): the PIL back-end without DCT scaling is
exact; with it (the default), within 9 levels on a pixel and 1 on average over an image; the
tensor back-end (torch's antialiased resize instead of PIL's), within 8 and 0.5.
"""

import io
import os

import numpy as np
import pytest

pytest.importorskip("timm")
pytest.importorskip("skimage")
torch = pytest.importorskip("torch")
from PIL import Image, ImageOps  # noqa: E402

from faast_sklearn.features._decode import decode_images, iter_decoded, orient  # noqa: E402
from faast_sklearn.features._jpeg import scan_jpeg  # noqa: E402

VIT = dict(  # vit_base_patch16_224's data configuration, with its mean/std
    input_size=(3, 224, 224),
    interpolation="bicubic",
    crop_pct=0.9,
    crop_mode="center",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)
RESNET = {**VIT, "interpolation": "bilinear", "crop_pct": 0.875}
SMALL = {**RESNET, "input_size": (3, 64, 64)}


def _photos():
    import skimage.data
    from sklearn.datasets import load_sample_images

    bundled = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.rocket()]
    return bundled + list(load_sample_images().images)


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    """Each photograph rescaled (longer side 300 to 1500 px) and saved as JPEG, PNG or WebP."""
    root = tmp_path_factory.mktemp("photos")
    paths = []
    for i, photo in enumerate(_photos()):
        img = Image.fromarray(photo)
        for j, (side, fmt) in enumerate(
            [(300, "JPEG"), (517, "PNG"), (800, "WEBP"), (1500, "JPEG")]
        ):
            s = side / max(img.size)
            resized = img.resize((round(img.width * s), round(img.height * s)), Image.BICUBIC)
            path = root / f"{i}_{j}.{fmt.lower()}"
            resized.save(path, fmt, quality=90)
            paths.append(str(path))
    return paths


def _timm(paths, cfg, transpose=False):
    from timm.data import create_transform

    t = create_transform(**cfg)
    out = []
    for p in paths:
        img = Image.open(p)
        img = ImageOps.exif_transpose(img) if transpose else img
        out.append(t(img.convert("RGB")))
    return torch.stack(out) * 127.5 + 127.5  # back to 0-255 (mean = std = 0.5)


def _check(got, ref, max_err, mean_err):
    err = (got.float().cpu() - ref).abs().flatten(1)
    assert err.max() <= max_err, err.max(1).values
    assert err.mean(1).max() <= mean_err, err.mean(1)


@pytest.mark.parametrize("cfg", [VIT, RESNET, SMALL], ids=["bicubic", "bilinear", "64px"])
def test_pil_matches_timm(photo_files, cfg):
    ref = _timm(photo_files, cfg)
    exact = decode_images(photo_files, cfg, backend="pil", draft=False)
    assert exact.images.shape == (len(photo_files), 3, *cfg["input_size"][1:])
    assert exact.images.dtype == torch.uint8
    assert torch.equal(exact.images.float(), ref.round())
    _check(decode_images(photo_files, cfg, backend="pil").images, ref, 9, 1.0)


@pytest.mark.parametrize("cfg", [VIT, RESNET], ids=["bicubic", "bilinear"])
def test_auto_backend_matches_timm(photo_files, cfg):
    # torchvision's decoder on the CPU (no DCT scaling), PNG and WebP through the PIL fallback.
    got = decode_images(photo_files, cfg, draft=0)
    np.testing.assert_array_equal(got.index, np.arange(len(photo_files)))
    _check(got.images, _timm(photo_files, cfg), 8, 0.5)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pil(orientation):
    arr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.info["exif"] = exif.tobytes()
    want = np.asarray(ImageOps.exif_transpose(img))
    got = orient(torch.from_numpy(arr).permute(2, 0, 1), orientation).permute(1, 2, 0)
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("backend", ["pil", "auto"])
def test_exif_orientation_honoured(tmp_path, backend):
    photo = Image.fromarray(_photos()[0][:, :400]).resize((1200, 700))  # drafted, not square
    paths = []
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"o{orientation}.jpg"
        photo.save(path, "JPEG", quality=92, exif=exif)
        paths.append(str(path))
    ref = _timm(paths, VIT, transpose=True)
    got = decode_images(paths, VIT, backend=backend).images
    _check(got, ref, 9, 1.0)
    # Orientations 5-8 turn the picture: ignoring them would differ by far more.
    assert (got[5].float() - _timm(paths[5:6], VIT)[0]).abs().mean() > 10


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P"])
def test_other_modes(tmp_path, mode):
    photo = Image.fromarray(_photos()[1]).convert(mode)
    path = tmp_path / ("x.jpg" if mode in ("L", "CMYK") else "x.png")
    photo.save(path)
    ref = _timm([str(path)], VIT)
    for backend in ("pil", "auto"):
        _check(decode_images([str(path)], VIT, backend=backend).images, ref, 9, 1.0)


def _bad_files(tmp_path, photo_files):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(5000))
    data = open(photo_files[0], "rb").read()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    return [str(corrupt), str(truncated), str(text)]


@pytest.mark.parametrize("backend", ["pil", "auto"])
def test_bad_file_named(tmp_path, photo_files, backend):
    for bad in _bad_files(tmp_path, photo_files):
        paths = [photo_files[0], photo_files[3], bad, photo_files[1]]
        with pytest.raises(ValueError, match=rf"X\[2\] = '{bad}'"):
            decode_images(paths, VIT, backend=backend)


@pytest.mark.parametrize("backend", ["pil", "auto"])
def test_bad_files_skipped(tmp_path, photo_files, backend):
    bad = _bad_files(tmp_path, photo_files)
    paths = [photo_files[0], bad[0], photo_files[3], bad[1], bad[2], photo_files[1]]
    got = decode_images(paths, VIT, backend=backend, on_error="skip", index=np.arange(6) + 10)
    np.testing.assert_array_equal(got.index, [10, 12, 15])
    assert [(i, p) for i, p, _ in got.skipped] == [(11, bad[0]), (13, bad[1]), (14, bad[2])]
    good = [photo_files[0], photo_files[3], photo_files[1]]
    assert torch.equal(got.images, decode_images(good, VIT, backend=backend).images)


def test_invalid_options(photo_files):
    with pytest.raises(ValueError, match="on_error"):
        decode_images(photo_files[:1], VIT, on_error="ignore")
    with pytest.raises(ValueError, match="backend"):
        decode_images(photo_files[:1], VIT, backend="nvjpeg")


def test_iter_decoded_batches(tmp_path, photo_files):
    whole = decode_images(photo_files, RESNET)
    batches = list(iter_decoded(photo_files, RESNET, batch_size=7, num_workers=2))
    assert [len(b.index) for b in batches] == [7, 7, 6]
    assert torch.equal(torch.cat([b.images for b in batches]), whole.images)
    np.testing.assert_array_equal(np.concatenate([b.index for b in batches]), whole.index)

    bad = _bad_files(tmp_path, photo_files)[0]
    paths = photo_files[:9] + [bad] + photo_files[9:]
    it = iter_decoded(paths, RESNET, batch_size=4, prefetch=1)
    assert len(next(it).index) == 4
    with pytest.raises(ValueError, match=rf"X\[9\] = '{bad}'"):
        list(it)
    skipped = list(iter_decoded(paths, RESNET, batch_size=4, on_error="skip"))
    assert [s[:2] for b in skipped for s in b.skipped] == [(9, bad)]
    # Leaving the loop early returns (the background thread stops; no hang).
    for _ in iter_decoded(photo_files * 5, RESNET, batch_size=2, prefetch=1):
        break
    # Batches given as positions, in any order (a fold's rows, the cache's misses).
    order = [np.array([5, 0, 3]), np.array([19]), np.array([2, 1])]
    listed = list(iter_decoded(photo_files, RESNET, batches=order))
    for b, idx in zip(listed, order, strict=True):
        np.testing.assert_array_equal(b.index, idx)
        assert torch.equal(b.images, whole.images[torch.as_tensor(idx)])
    with pytest.raises(ValueError, match="batch_size or batches"):
        next(iter_decoded(photo_files, RESNET))


@pytest.mark.gpu
def test_nvjpeg_matches_timm(photo_files, tmp_path):
    ref = _timm(photo_files, VIT)
    # nvJPEG for every plain JPEG, 4:2:0 chroma rebuilt into libjpeg's: timm's pixels.
    auto = decode_images(photo_files, VIT, device="cuda")
    assert auto.images.is_cuda
    _check(auto.images, ref, 10, 1.0)
    batches = list(iter_decoded(photo_files * 3, VIT, batch_size=8, device="cuda"))
    _check(torch.cat([b.images for b in batches]), torch.cat([ref] * 3), 10, 1.0)
    full = [_save(tmp_path / f"444_{i}.jpg", p, subsampling=0) for i, p in enumerate(photo_files)]
    _check(decode_images(full, VIT, device="cuda").images, _timm(full, VIT), 10, 1.0)
    # The rebuilt chroma does not depend on the batch (nor on the padding it shares).
    batches = list(iter_decoded(photo_files, VIT, batch_size=8, device="cuda"))
    assert torch.equal(torch.cat([b.images for b in batches]), auto.images)
    bad = _bad_files(tmp_path, photo_files)
    with pytest.raises(ValueError, match=rf"X\[1\] = '{bad[1]}'"):
        decode_images([photo_files[0], bad[1]], VIT, device="cuda")


@pytest.mark.gpu
def test_jpeg_engine_gives_libjpeg_pixels(photo_files, tmp_path):
    # With nvImageCodec installed, the GPU decodes 4:2:0 photographs with libjpeg's chroma
    # upsampling: at the input size (no resize), PIL's pixels to within a level.
    pytest.importorskip("nvidia.nvimgcodec")
    cfg = {**VIT, "crop_pct": 1.0}
    files = []
    for i, p in enumerate(photo_files):
        with Image.open(p) as img:
            files.append(str(tmp_path / f"{i}.jpg"))
            img.convert("RGB").resize((224, 224)).save(files[-1], "JPEG", quality=90)
    got = decode_images(files, cfg, device="cuda").images.cpu()
    ref = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB"))) for f in files])
    err = (got.permute(0, 2, 3, 1).int() - ref.int()).abs().flatten(1)
    assert err.max() <= 1, (err.max(1).values, (err > 1).sum(1))
    # The same pixels every time, in batches decoded ahead on another stream too.
    again = torch.cat([b.images for b in iter_decoded(files * 2, cfg, batch_size=3, device="cuda")])
    assert torch.equal(again.cpu(), torch.cat([got, got]))


def _save(path, source, **kwargs):
    """``source`` (any image file) re-saved as a JPEG at ``path`` with PIL's ``kwargs``."""
    with Image.open(source) as img:
        img.convert("RGB").save(path, "JPEG", quality=90, **kwargs)
    return str(path)


def _jpeg_bytes(img, **kwargs):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("order", ["<", ">"])
def test_scan_jpeg_reads_headers(order):
    img = Image.fromarray(_photos()[1]).resize((203, 131))
    info = scan_jpeg(_jpeg_bytes(img))
    assert (info.height, info.width, info.components, info.orientation) == (131, 203, 3, 1)
    assert info.plain and not info.progressive
    assert scan_jpeg(_jpeg_bytes(img, progressive=True)).progressive
    assert scan_jpeg(_jpeg_bytes(img.convert("L"))).components == 1
    # Chroma at a lower resolution than luma (PIL's subsampling: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0).
    assert info.sampling == (2, 2) and scan_jpeg(_jpeg_bytes(img.convert("L"))).sampling == (1, 1)
    for subsampling, expected in ((0, (1, 1)), (1, (2, 1)), (2, (2, 2))):
        info = scan_jpeg(_jpeg_bytes(img, subsampling=subsampling))
        assert info.sampling == expected
    cmyk = scan_jpeg(_jpeg_bytes(img.convert("CMYK")))
    assert cmyk.components == 4 and not cmyk.plain
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        exif_bytes = exif.tobytes()
        if order == ">":  # the same block written big-endian, as many cameras do
            exif_bytes = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03" + (
                b"\x00\x00\x00\x01" + orientation.to_bytes(2, "big") + b"\x00\x00\x00\x00\x00\x00"
            )
        data = _jpeg_bytes(img, exif=b"Exif\x00\x00" + exif_bytes if order == ">" else exif_bytes)
        assert scan_jpeg(data).orientation == orientation
        with Image.open(io.BytesIO(data)) as pil:
            assert ImageOps.exif_transpose(pil).size == (
                (131, 203) if orientation >= 5 else (203, 131)
            )
    # A damaged EXIF block: no orientation (PIL still shows the pixels).
    bad = _jpeg_bytes(img, exif=b"Exif\x00\x00MM\x00\x2a\xff\xff\xff\xff")
    assert scan_jpeg(bad).orientation == 1
    # Not a JPEG, or cut short before its first scan.
    png = io.BytesIO()
    img.save(png, "PNG")
    assert scan_jpeg(png.getvalue()) is None
    assert scan_jpeg(_jpeg_bytes(img)[:40]) is None
    assert scan_jpeg(b"") is None


def test_auto_decodes_mixed_folders(tmp_path, photo_files):
    """Progressive, grey, CMYK, oriented and cut-short JPEGs among PNG and WebP files."""
    photo = Image.fromarray(_photos()[2]).resize((700, 420))
    exif = Image.Exif()
    exif[0x0112] = 6
    kinds = {
        "progressive.jpg": {"progressive": True},
        "oriented.jpg": {"exif": exif},
        "oriented_progressive.jpg": {"exif": exif, "progressive": True},
    }
    paths = []
    for name, kwargs in kinds.items():
        photo.save(tmp_path / name, "JPEG", quality=90, **kwargs)
        paths.append(str(tmp_path / name))
    photo.convert("L").save(tmp_path / "grey.jpg", quality=90)
    photo.convert("CMYK").save(tmp_path / "cmyk.jpg", quality=90)
    paths += [str(tmp_path / "grey.jpg"), str(tmp_path / "cmyk.jpg")] + photo_files[:8]
    for cfg in (VIT, SMALL):
        got = decode_images(paths, cfg, num_workers=2)
        _check(got.images, _timm(paths, cfg, transpose=True), 9, 1.0)
    data = open(paths[0], "rb").read()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match=r"X\[1\] = .*cut.jpg"):
        decode_images([paths[1], str(tmp_path / "cut.jpg")], VIT)
