"""The embedded demo end to end (quick sizes), and its student loaded by plain transformers in a fresh process."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

FRESH_LOAD = r"""
import json, sys
import numpy as np
from PIL import Image
from transformers import AutoImageProcessor, AutoModelForImageClassification, pipeline
path = sys.argv[1]
model = AutoModelForImageClassification.from_pretrained(path)
processor = AutoImageProcessor.from_pretrained(path)
image = Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)).convert("RGB")
logits = model(**processor(image, return_tensors="pt")).logits[0].tolist()
top = pipeline("image-classification", model=path)(image, top_k=1)[0]["label"]
print(json.dumps({"logits": logits, "top": top, "id2label": model.config.id2label,
                  "hf_w2s_imported": any(m.startswith("hf_w2s") for m in sys.modules)}))
"""


def run(cmd, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200, **kw)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = run([sys.executable, "-m", "hf_w2s.cli", "demo", "--quick", "--output_dir", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_prints_table_and_results(demo_dir):
    out, stdout = demo_dir
    assert "| weak supervisor |" in stdout and "| strong ceiling |" in stdout
    for loss in ("weak_hard", "adapt_conf"):
        assert f"`{loss}`" in stdout
    results = json.loads((out / "results.json").read_text())
    weak, ceiling = results["weak"]["test_accuracy"], results["ceiling"]["test_accuracy"]
    # training really changes accuracy: both models are far above chance (10 %)
    assert weak > 0.5 and ceiling > 0.5
    for loss in ("weak_hard", "adapt_conf"):
        r = results[loss]
        assert r["pgr"] == pytest.approx((r["test_accuracy"] - weak) / (ceiling - weak))
        assert 0 <= r["agreement"] <= 1


def test_saved_student_loads_with_plain_transformers_in_fresh_process(demo_dir):
    out, _ = demo_dir
    student = out / "student"
    proc = run([sys.executable, "-c", FRESH_LOAD, str(student)], cwd=str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not got["hf_w2s_imported"]
    assert got["id2label"] == {str(i): str(i) for i in range(10)}
    assert got["top"] in {str(i) for i in range(10)}
    # same logits as the model in this process
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(student)
    processor = AutoImageProcessor.from_pretrained(student)
    image = Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)).convert("RGB")
    with torch.no_grad():
        logits = model(**processor(image, return_tensors="pt")).logits[0]
    assert torch.allclose(logits, torch.tensor(got["logits"]), atol=1e-5)


def test_demo_refuses_a_foreign_non_empty_output_dir(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    proc = run([sys.executable, "-m", "hf_w2s.cli", "demo", "--quick", "--output_dir", str(tmp_path)])
    assert proc.returncode != 0
    assert "is not empty and does not hold an earlier demo run" in proc.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_demo_rejects_unknown_loss_before_compute(tmp_path):
    proc = run([sys.executable, "-m", "hf_w2s.cli", "demo", "--output_dir", str(tmp_path / "x"), "--losses", "nope"])
    assert proc.returncode != 0 and "unknown loss(es) ['nope']" in proc.stderr
    assert not (tmp_path / "x").exists()
