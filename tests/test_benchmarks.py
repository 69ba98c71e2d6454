"""The speed benchmarks run at tiny sizes, in one interpreter, and print figures within bounds that hold at those sizes
(the figures themselves are measured by hand, at full size, on a quiet machine)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import forkserver
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

NUMBER = r"(\d+\.\d+)"
# arguments at tiny sizes, the line with the benchmark's figure, and bounds on that figure that hold at tiny sizes on a
# busy machine but not when the measured property breaks (CPU time, not wall time, where the line has both)
CASES = {
    # the W2S trainer's step costs about what a plain Trainer's does (not several times more); at these sizes the
    # ratio measured 0.47-1.16 (13 runs, quiet and busy), so the lower bound only rules out a W2S step that skips
    # most of its work
    "trainer_overhead": (["--steps", "8", "--repeats", "1", "--batch_size", "16", "--loss_iterations", "4"],
                         rf"ratio W2S / plain\s+: wall {NUMBER}, CPU {NUMBER}", 2, (0.25, 2.0)),
    # an online ResNet weak model adds its forward pass to every step; at 8 steps the ratio to cached logits is noise
    # around its value (measured 0.76 once on a busy machine), so only an order of magnitude is checked here
    "online_vs_cached": (["--steps", "8", "--repeats", "1", "--batch_size", "16"],
                         rf"online ResNet weak\s*: .* ratio to cached \(median of paired runs\): wall {NUMBER}, "
                         rf"CPU {NUMBER}", 2, (0.2, 20.0)),
    # label_dataset runs at a good fraction of a bare loop over the same model
    "label_throughput": (["--n", "64", "--batch_size", "32", "--repeats", "1"],
                         rf"throughput ratio label_dataset / bare: wall {NUMBER}, CPU {NUMBER}", 2, (0.2, 5.0)),
    # pre-processing each image once is not slower than pre-processing every batch (at tiny sizes: about level)
    "pixel_cache": (["--n", "64", "--epochs", "2", "--repeats", "1", "--batch_size", "16"],
                    rf"ratio cached / per batch \(whole run, median of paired runs\): wall {NUMBER}, CPU {NUMBER}", 2,
                    (0.2, 1.5)),
    # EfficientNet-Lite0 evaluates faster with channels-last weights (measured 0.44 of the time at full size)
    "channels_last": (["--steps", "1", "--repeats", "1", "--batch_size", "4", "--n", "48"],
                      rf"evaluation ratio channels_last / NCHW \(median of paired runs\): wall {NUMBER}, CPU {NUMBER}",
                      2, (0.05, 0.9)),
    # labelling twice the rows does not take twice the memory (labels go to Arrow)
    "label_memory": (["--sizes", "64", "128"], rf"peak RSS ratio N=128 / N=64: {NUMBER}", 1, (0.8, 1.3)),
}


# every script in one interpreter, one after the other, as its own __main__ (saves an interpreter start with torch and
# transformers per script); a script that fails is reported with its traceback and the others still run
RUNNER = r"""
import contextlib, gc, io, json, runpy, sys, traceback
benchmarks, cases = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, benchmarks)
out = {}
for name, args in cases.items():
    gc.collect(); gc.freeze()  # each Trainer.train() collects garbage: what is alive now need not be walked again
    buf = io.StringIO()
    sys.argv = [f"{benchmarks}/{name}.py", *args]
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(sys.argv[0], run_name="__main__")
        out[name] = {"ok": True, "stdout": buf.getvalue()}
    except BaseException:
        out[name] = {"ok": False, "stdout": buf.getvalue(), "error": traceback.format_exc()[-3000:]}
print("RESULTS " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cases = json.dumps({name: case[0] for name, case in CASES.items()})
    res = forkserver.run([sys.executable, "-c", RUNNER, str(BENCHMARKS), cases],
                         env=env, cwd=tmp_path_factory.mktemp("benchmarks"), timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULTS "))
    return json.loads(line[len("RESULTS "):])


@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_script_runs_and_prints_its_ratio(name, outputs):
    _, pattern, group, (low, high) = CASES[name]
    result = outputs[name]
    assert result["ok"], result.get("error")
    found = re.search(pattern, result["stdout"])
    assert found, result["stdout"]
    assert low < float(found.group(group)) < high, result["stdout"]
