"""The image-folder benchmark's CPU smoke run and its photo folder builder."""

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("timm")
pytest.importorskip("skimage")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_image_folder  # noqa: E402
from make_photo_folder import make_photo_folder  # noqa: E402

from faast_sklearn.datasets import load_image_folder  # noqa: E402


def test_make_photo_folder_is_deterministic(tmp_path):
    from PIL import Image

    count, mean = make_photo_folder(str(tmp_path / "a"), n=8, seed=3, n_jobs=1)
    make_photo_folder(str(tmp_path / "b"), n=8, seed=3, n_jobs=2)
    paths, y = load_image_folder(tmp_path / "a", return_X_y=True)
    assert count == len(paths) == 8 and len(set(y)) == 6 and mean > 5_000
    for p in paths:
        assert (
            Path(p).read_bytes()
            == (tmp_path / "b" / Path(p).relative_to(tmp_path / "a")).read_bytes()
        )
        with Image.open(p) as img:
            assert img.format == "JPEG" and 300 <= max(img.size) <= 800


@pytest.mark.slow
def test_smoke_writes_results(tmp_path):
    results = bench_image_folder.main(["--smoke", "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "image-folder-cpu-smoke.json").read_text())
    assert saved["n_images"] == 8 and saved["card"] == "cpu"
    for name in ("test_resnet", "test_vit"):
        res = saved["models"][name]
        for key in ("forward_eager", "timm_loader", "decode_pil", "decode_pil_only", "fit_folder"):
            assert res[key] > 0, key
        assert res == pytest.approx(results["models"][name])
    assert "| test_vit | timm_loader |" in (tmp_path / "image-folder-cpu-smoke.md").read_text()
