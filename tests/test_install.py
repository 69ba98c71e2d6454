"""What a fresh install promises: ``hf-w2s env`` for bug reports, optional dependencies refused when a config is read
(before anything trains), tested versions pinned for CI, and commands that print their own lines only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hf_w2s import cli, import_utils

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "recipes" / "experiments" / "benchmark_digits_tiny.yaml"


def test_env_prints_the_versions_offline_and_never_a_token(capsys, monkeypatch):
    secret = "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123"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", f"https://user:{secret}@hub.example")
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    import accelerate
    import torch
    import transformers

    assert f"- transformers: {transformers.__version__}" in out
    assert f"- accelerate: {accelerate.__version__}" in out
    assert f"- torch: {torch.__version__}" in out
    assert "- HF_HUB_OFFLINE: 1" in out and "- HF_ENDPOINT: https://***@hub.example" in out
    assert "Hub token in the environment: set (not shown)" in out
    assert secret not in out and "hf_This" not in out
    assert re.search(r"- extras installed: .*\bplots\b", out)


def test_env_refuses_options(capsys):
    assert cli.main(["env", "--bogus"]) == 2
    assert "takes no options" in capsys.readouterr().err


def _config(tmp_path, **changes) -> Path:
    data = yaml.safe_load(TINY.read_text())
    data.update(output_dir=str(tmp_path / "out"), **changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_sweep_without_matplotlib_is_refused_before_any_training(tmp_path, capsys, monkeypatch):
    real = import_utils.is_package_available
    monkeypatch.setattr(import_utils, "is_package_available", lambda name: name != "matplotlib" and real(name))
    assert cli.main(["experiment", "--config", str(_config(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "the experiment report's plots (plots: true) needs matplotlib" in err
    assert 'pip install "hf_w2s[plots]"' in err
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_a_misspelled_augmentation_is_refused_before_any_training(tmp_path, capsys):
    config = _config(tmp_path, augmentation={"RandomAfine": {"degrees": 10}})
    assert cli.main(["experiment", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "kornia.augmentation has no class 'RandomAfine' (did you mean 'RandomAffine'?)" in err
    assert not (tmp_path / "out").exists()
    config = _config(tmp_path, augmentation={"RandomAffine": {"degreez": 10}})  # a misspelled argument too
    assert cli.main(["experiment", "--config", str(config)]) == 2
    assert "augmentation.RandomAffine" in capsys.readouterr().err


def test_augmentation_without_kornia_names_the_extra(tmp_path, capsys, monkeypatch):
    real = import_utils.is_package_available
    monkeypatch.setattr(import_utils, "is_package_available", lambda name: name != "kornia" and real(name))
    config = _config(tmp_path, augmentation={"RandomAffine": {"degrees": 10}})
    assert cli.main(["experiment", "--config", str(config)]) == 2
    assert 'pip install "hf_w2s[aug]"' in capsys.readouterr().err


def test_the_tiny_sweep_prints_its_own_lines_only(tmp_path):
    """No Python warning, no progress bar, no library log without --verbose: one line per run and the report."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default"}
    smaller = ["--split_sizes", "30", "60", "20", "30", "--num_train_epochs", "1", "--weak_supervisors",
               "{name: weak, model: 'tiny:linear,width=8,depth=1', num_train_epochs: 2, train_size: 20}"]
    proc = subprocess.run([sys.executable, "-m", "hf_w2s.cli", "experiment", "--config", str(TINY), "--output_dir",
                           str(tmp_path / "out"), *smaller], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert not [line for line in lines if "Warning" in line or "it/s" in line or "examples/s" in line]
    runs = [line for line in lines if line.startswith("[")]
    assert len(runs) == 6 and runs[-1].startswith("[6/6]")


def test_a_command_run_in_process_leaves_its_logging_as_it_found_it(tmp_path, capsys):
    """Commands silence the libraries and print hf_w2s's notices themselves (console.quiet_libraries); run through
    hf_w2s.cli.main in a Python process, they put it all back (a test's caplog, a notebook's logging)."""
    import logging

    import datasets
    from transformers.utils import logging as hf_logging

    package = logging.getLogger("hf_w2s")

    def state():
        return (list(package.handlers), package.level, package.propagate, hf_logging.get_verbosity(),
                hf_logging.is_progress_bar_enabled(), datasets.logging.get_verbosity(),
                datasets.is_progress_bar_enabled())

    before = state()
    assert cli.main(["experiment", "--config", str(_config(tmp_path)), "--dry_run", "true", "--plots", "false"]) == 0
    assert "weak supervisor(s)" in capsys.readouterr().out
    assert state() == before and package.propagate


def test_ci_installs_the_tested_versions():
    """.ci/run installs with the constraints file, which pins every library the suite imports at the version it
    passed with, torch included."""
    assert "-c constraints/tested.txt" in (ROOT / ".ci" / "run").read_text()
    pins = dict(line.split("==", 1) for line in (ROOT / "constraints" / "tested.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    for name in ("torch", "transformers", "datasets", "accelerate", "peft", "huggingface_hub", "evaluate", "kornia",
                 "safetensors", "pytest", "pytest-xdist", "mlxtend", "scikit-learn"):
        assert name in pins, name


@pytest.mark.parametrize("name", ["torch", "transformers", "datasets", "accelerate", "peft"])
def test_the_declared_floor_is_the_lowest_tested_version(name):
    """pyproject.toml's lower bounds are the versions of constraints/lowest.txt (.ci/lowest runs the suite there)."""
    text = (ROOT / "pyproject.toml").read_text()
    floor = re.search(rf'"{name}>=([\w.]+)', text).group(1)
    lowest = dict(line.split("==", 1) for line in (ROOT / "constraints" / "lowest.txt").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert lowest[name] == floor
