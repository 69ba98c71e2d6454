"""The speed benchmarks run (tiny sizes) and print their figures; the figures themselves are measured by hand."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

CASES = {
    "trainer_overhead": (["--steps", "8", "--repeats", "1", "--batch_size", "16", "--loss_iterations", "4"],
                         r"ratio W2S / plain\s+: wall \d+\.\d+, CPU \d+\.\d+"),
    "online_vs_cached": (["--steps", "8", "--repeats", "1", "--batch_size", "16"],
                         r"online ResNet weak\s*: .* ratio to cached \(median of paired runs\): wall \d+\.\d+"),
    "label_throughput": (["--n", "64", "--batch_size", "32", "--repeats", "1"],
                         r"throughput ratio label_dataset / bare: wall \d+\.\d+"),
    "label_memory": (["--sizes", "64", "128"], r"peak RSS ratio N=128 / N=64: \d+\.\d+"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_script_runs_and_prints_its_ratio(name, tmp_path):
    args, pattern = CASES[name]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, str(BENCHMARKS / f"{name}.py"), *args], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert re.search(pattern, res.stdout), res.stdout
