"""``hf-w2s demo --quick`` end to end (the small ResNet student from scratch: the pretrained EfficientNet-Lite0 of the
default demo needs the full sizes, minutes of CPU, to beat its supervisor): what it prints (one screen, no raw logs),
that its students beat their supervisor, that the best one is chosen on validation, and that the saved student loads
with plain transformers. The pretrained default's configuration is checked without training."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from testing_utils import run_cli

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
size = processor.size  # a dict, or transformers' SizeDict (its unset fields None)
size = dict(size) if isinstance(size, dict) else {k: v for k, v in vars(size).items() if v is not None}
print(json.dumps({"logits": logits, "top": top, "id2label": model.config.id2label, "type": model.config.model_type,
                  "size": size, "hf_w2s_imported": any(m.startswith("hf_w2s") for m in sys.modules)}))
"""


@pytest.fixture(scope="module")
def hf_home(tmp_path_factory):
    """An empty Hugging Face cache: --quick needs nothing converted (its student is built from a config)."""
    return tmp_path_factory.mktemp("hf_home")


def run(cmd, hf_home, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(hf_home)}
    return subprocess.run(cmd, env=env, timeout=1800, capture_output=True, text=True, **kw)


@pytest.fixture(scope="module")
def demo(tmp_path_factory, hf_home):
    """``hf-w2s demo --quick`` in a process of its own: what it prints is the point, and that includes what the
    libraries log through the handlers they set up at import (progress bars, load reports), with an empty HF cache."""
    out = tmp_path_factory.mktemp("demo") / "run"
    proc = run([sys.executable, "-m", "hf_w2s.cli", "demo", "--quick", "--output_dir", str(out)], hf_home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout, proc.stderr


def test_demo_output_fits_one_screen(demo):
    out, stdout, stderr = demo
    lines = stdout.splitlines()
    assert len(lines) <= 24, stdout
    assert "tiny:resnet,width=16,depth=2, student_mode full, 10 epochs" in lines[2]
    assert not any(line.lstrip().startswith("{") for line in lines)  # no raw log dicts
    assert "it/s" not in stdout + stderr and "s/it" not in stdout + stderr  # no progress bars
    assert "LOAD REPORT" not in stdout + stderr and "pin_memory" not in stderr
    notices = [line for line in lines if line.startswith("notice:")]
    assert len(notices) == len(set(notices)) <= 2  # each notice once
    assert [line.split("]")[0] for line in lines if line.startswith("[")] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert "| weak supervisor |" in stdout and "| strong ceiling |" in stdout


def test_demo_students_beat_their_supervisor(demo):
    out, stdout, _ = demo
    results = json.loads((out / "results.json").read_text())
    weak, ceiling = results["weak"]["test_accuracy"], results["ceiling"]["test_accuracy"]
    assert 0.5 < weak < ceiling
    for loss in ("weak_hard", "adapt_conf"):
        r = results[loss]
        assert r["test_accuracy"] > weak + 0.02, (loss, r, weak)  # the student generalises past its supervisor
        assert r["pgr"] == pytest.approx((r["test_accuracy"] - weak) / (ceiling - weak))
        assert 0 < r["agreement"] <= 1
        row = next(line for line in stdout.splitlines() if f"`{loss}`" in line)
        assert f"| {100 * r['test_accuracy']:.1f} |" in row and f"| {r['pgr']:.2f} |" in row
    # the test split has 500 digits: accuracies are multiples of 1/500
    assert round(weak * 500) == pytest.approx(weak * 500)
    # the saved student is the one with the best VALIDATION accuracy (never chosen on test)
    best = max(("weak_hard", "adapt_conf"), key=lambda loss: results[loss]["validation_accuracy"])
    assert results["best_student"]["loss"] == best


def test_saved_student_loads_with_plain_transformers_in_fresh_process(demo, hf_home):
    """A process of its own: that it never imports hf_w2s is the point."""
    out, _, _ = demo
    student = out / "student"
    proc = run([sys.executable, "-c", FRESH_LOAD, str(student)], hf_home, cwd=str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not got["hf_w2s_imported"]
    assert got["type"] == "resnet" and got["size"] == {"height": 28, "width": 28}
    assert got["id2label"] == {str(i): str(i) for i in range(10)}
    assert got["top"] in {str(i) for i in range(10)}
    from PIL import Image
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(student).eval()
    processor = AutoImageProcessor.from_pretrained(student)
    image = Image.fromarray(np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)).convert("RGB")
    with torch.no_grad():
        logits = model(**processor(image, return_tensors="pt")).logits[0]
    assert torch.allclose(logits, torch.tensor(got["logits"]), atol=1e-5)


def test_tiny_student_from_scratch_stays_an_option(tmp_path):
    from hf_w2s.scripts.demo import demo_config

    default = demo_config(["--output_dir", str(tmp_path)])  # the pretrained benchmark v2's splits, seed 0
    assert default.model.model_name_or_path == "hf_w2s:efficientnet-lite2" and default.model.input_size == 96
    assert default.data.split_sizes == [500, 2000, 500, 1500] and default.training.load_best_model_at_end
    supervisor = default.experiment.weak_supervisors[0]
    assert (supervisor.model, supervisor.train_size) == ("tiny:resnet,width=16,depth=2", 200)  # ~81 %: 10 below
    assert str(default.training.eval_strategy.value) == "epoch"  # each run's best epoch on validation
    # a linear head on the frozen backbone's cached features (README "The demo")
    assert (default.training.student_mode, default.experiment.cache_features) == ("linear_probe", True)
    assert (default.training.per_device_train_batch_size, default.training.learning_rate) == (128, 2e-3)
    assert [s.name for s in default.experiment.losses] == ["weak_hard", "adapt_conf"]
    quick = demo_config(["--quick", "--output_dir", str(tmp_path)])
    assert (quick.model.model_name_or_path, quick.model.input_size) == ("tiny:resnet,width=16,depth=2", None)
    assert quick.data.split_sizes == [200, 1500, 300, 500] and quick.training.num_train_epochs == 10
    assert quick.experiment.weak_supervisors[0].model == "tiny:linear,width=16"  # a supervisor it can beat
    assert (quick.training.student_mode, quick.experiment.cache_features) == ("full", False)
    given = demo_config(["--quick", "--num_train_epochs", "5", "--output_dir", str(tmp_path)])
    assert given.training.num_train_epochs == 5  # a value given with --quick wins over the quick size


def test_quick_keeps_every_option_given_even_at_its_default(tmp_path):
    """``--quick`` sizes only the options the command line (or its --config file) leaves out: a flag equal to the
    full demo's default (``--channels_last true``, ``--num_train_epochs 2``) is the user's choice, not a default."""
    from hf_w2s.scripts.demo import QUICK, demo_config

    cfg = demo_config(["--quick", "--channels_last", "true", "--num_train_epochs", "2", "--output_dir", str(tmp_path)])
    assert (cfg.training.channels_last, cfg.training.num_train_epochs) == (True, 2.0)  # given: kept
    assert (cfg.training.student_mode, cfg.model.model_name_or_path, cfg.training.learning_rate) == (
        "full", QUICK["model_name_or_path"], 3e-3)
    config = tmp_path / "demo.yaml"
    config.write_text("quick: true\nper_device_train_batch_size: 32\nstudent_mode: last_blocks\n")
    cfg = demo_config(["--config", str(config), "--output_dir", str(tmp_path), "--channels_last", "false"])
    assert cfg.script.quick  # --quick from the file chooses the quick sizes as --quick on the command line does
    assert (cfg.training.per_device_train_batch_size, cfg.training.student_mode, cfg.training.channels_last) == (
        32, "last_blocks", False)  # all given
    assert (cfg.data.split_sizes[1], cfg.training.num_train_epochs) == (1500, 10.0)  # left out: the quick sizes
    assert demo_config(["--output_dir", str(tmp_path), "--channels_last", "false"]).data.split_sizes[1] == 2000


# the refusals run the command in this process (hf_w2s.cli.main, as the console script does): they happen before
# any compute, so they need neither the converted student nor an interpreter of their own


def test_demo_refuses_a_foreign_non_empty_output_dir(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    code, _, err = run_cli(["demo", "--quick", "--output_dir", tmp_path], capsys)
    assert code == 2 and "is not empty and holds no w2s_config.yaml" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_demo_rejects_unknown_loss_before_compute(tmp_path, capsys):
    code, _, err = run_cli(["demo", "--output_dir", tmp_path / "x", "--losses", "nope"], capsys)
    assert code == 2 and "unknown loss 'nope' in losses" in err, err
    assert not (tmp_path / "x").exists()


def test_demo_help_is_plain_text(capsys):
    code, text, _ = run_cli(["demo", "--help"], capsys)
    assert code == 0
    assert "``" not in text and "--model_name_or_path" in text and "--student_mode" in text
    assert re.search(r"--quick.*\n?.*200 / 1,500 / 300 / 500", text)
