"""The protections on the path users take: the ``hf-w2s`` commands never show or write a Hub token, refuse pickled
weights and never run (or ask to run) a checkpoint's own code.

The commands run in this process (``hf_w2s.cli.main``) except two, which need a process of their own:
``hf-w2s train`` with the token only in the environment of a real ``hf-w2s`` process (what the libraries read when
the process starts is part of the point), and ``hf-w2s label`` in a terminal (where transformers would prompt)."""

from __future__ import annotations

import contextlib
import logging
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from testing_utils import run_cli

from hf_w2s.modeling import build_model, tiny_image_processor

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_" + "Qx7Lm2" * 6  # shaped like a user access token; the local Hub accepts it for user "tok-user"
TWIN = REPO / "recipes" / "configs" / "cifar100_distillation_gt_offline.yaml"
EXPERIMENT = REPO / "recipes" / "experiments" / "benchmark_digits_tiny.yaml"
TINY = ["--split_sizes", "60", "100", "50", "50", "--max_steps", "2", "--per_device_train_batch_size", "32",
        "--logging_steps", "1", "--ceiling", "false", "--weak_supervisors",
        "[{name: weak, model: 'tiny:linear,width=8', train_split: weak_train, num_train_epochs: 1, online: true}]"]
PICKLE_MESSAGE = "holds only pickled weights (pytorch_model.bin), which can execute code when loaded"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A weak model (safetensors), the same as pickle only, one with its own code, and 40 labelled digits."""
    from test_security import remote_code_checkpoint

    from hf_w2s.data.packaged import load_sklearn_digits

    root = tmp_path_factory.mktemp("assets")
    names = [str(i) for i in range(10)]
    weak = build_model("linear", names, image_size=8, num_channels=3, width=4, seed=0)
    for name in ("weak", "pickled"):
        weak.save_pretrained(root / name)
        tiny_image_processor(8, 3).save_pretrained(root / name)
    (root / "pickled" / "model.safetensors").unlink()  # the same weights as a pickle only
    torch.save(weak.state_dict(), root / "pickled" / "pytorch_model.bin")
    load_sklearn_digits().select(range(40)).save_to_disk(str(root / "digits"))
    remote, sentinel = remote_code_checkpoint(root)
    tiny_image_processor(8, 1).save_pretrained(remote)
    return {"root": root, "remote": remote, "sentinel": sentinel}


def written_files(*roots) -> list[Path]:
    return [p for r in roots for p in Path(r).rglob("*") if p.is_file()]


def run_writing_everything_to(argv, out: Path, err: Path) -> tuple[int, str, str]:
    """``hf-w2s ARGV`` in this process with its standard output in ``out``, its standard error and every library log
    record (a handler on the root and transformers loggers, as a script's logging.basicConfig adds) in ``err``."""
    with open(out, "w") as stdout, open(err, "w") as stderr:
        handler = logging.StreamHandler(stderr)
        loggers = [logging.getLogger(), logging.getLogger("transformers")]
        for logger in loggers:
            logger.addHandler(handler)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code, _, _ = run_cli(argv)
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
    return code, out.read_text(), err.read_text()


@pytest.fixture(scope="module")
def token_commands(local_hub, assets, tmp_path_factory):
    """hf-w2s train / label / experiment with the token in HF_TOKEN and on the command line, and a push that is
    refused: ``(folder, {name: (exit code, stdout, stderr)})``. train runs in a real hf-w2s process whose environment
    alone holds the token; the others in this process."""
    tmp = tmp_path_factory.mktemp("token")
    local_hub.add_user(TOKEN, "tok-user")
    done = {}
    env = local_hub.env(token=TOKEN)  # HF_TOKEN set before the process starts, as a user's shell has it
    proc = subprocess.run([sys.executable, "-m", "hf_w2s.cli", "train", "--config", TWIN, "--output_dir",
                           tmp / "student", *TINY, "--push_to_hub", "true", "--hub_model_id", "tok-user/student"],
                          env=env, cwd=tmp, capture_output=True, text=True, timeout=600)
    done["train"] = (proc.returncode, proc.stdout, proc.stderr)
    jobs = {
        "label": ["label", "--weak_model", assets["root"] / "weak", "--dataset", assets["root"] / "digits",
                  "--output", tmp / "labels", "--push_to_hub", "tok-user/labels"],
        "experiment": ["experiment", "--config", EXPERIMENT, "--output_dir", tmp / "exp", "--hub_token", TOKEN,
                       "--seeds", "0", "--losses", "weak_hard", "--max_steps", "2", "--ceiling", "false",
                       "--weak_supervisors", "[{name: weak, model: 'tiny:linear,width=8', num_train_epochs: 1}]"],
        # a refused push: the error names the repo, never the token
        "refused": ["train", "--config", TWIN, "--output_dir", tmp / "refused", *TINY, "--push_to_hub", "true",
                    "--hub_model_id", f"w2s-org/{TOKEN}", "--hub_token", TOKEN],
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", TOKEN)
        for name, argv in jobs.items():
            done[name] = run_writing_everything_to(argv, tmp / f"{name}.out", tmp / f"{name}.err")
    return tmp, done


def test_commands_never_show_or_write_the_token(local_hub, token_commands):
    """hf-w2s train / label / experiment with --hub_token and HF_TOKEN: not in stdout, stderr, any file written, the
    pushed repos, nor the error of a push that is refused."""
    tmp, done = token_commands
    for name, (code, stdout, stderr) in done.items():
        assert TOKEN not in stdout + stderr, name
    for name in ("train", "label", "experiment"):
        assert done[name][0] == 0, done[name][2][-3000:]
    assert done["refused"][0] == 2 and "***" in done["refused"][2]  # refused before training, the token redacted
    assert not (tmp / "refused").exists()
    files = written_files(tmp)  # what each command wrote (and printed: tmp/*.out, *.err)
    assert {"README.md", "w2s_results.json", "w2s_config.yaml", "w2s_run.json", "training_args.bin", "label.err"} <= {
        p.name for p in files}
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    assert "--hub_token" not in (tmp / "student" / "student" / "README.md").read_text()  # the token came from the env
    for repo, kind in (("tok-user/student", "model"), ("tok-user/labels", "dataset")):
        pushed = local_hub.files(repo, repo_type=kind)
        assert "README.md" in pushed
        for path in pushed:
            assert TOKEN.encode() not in local_hub.file_bytes(repo, path, repo_type=kind), (repo, path)
    assert "hub_token: '***'" in (tmp / "exp" / "w2s_config.yaml").read_text()  # what ran, redacted


def test_the_reproduce_command_of_a_card_hides_the_token(tmp_path, monkeypatch, capsys):
    """--hub_token on the command line: the card's command to reproduce the run names it only as ***."""
    monkeypatch.delenv("HF_TOKEN", raising=False)
    code, _, err = run_cli(["train", "--config", TWIN, "--output_dir", tmp_path / "o", *TINY, "--hub_token", TOKEN],
                           capsys)
    assert code == 0, err[-3000:]
    card = (tmp_path / "o" / "student" / "README.md").read_text()
    assert "--hub_token '***'" in card or "--hub_token ***" in card
    assert all(TOKEN.encode() not in p.read_bytes() for p in written_files(tmp_path))


@pytest.mark.parametrize("command", ["label", "train-weak", "train-student"])
def test_pickled_weights_are_refused_through_the_commands(assets, command, tmp_path, capsys):
    pickled = str(assets["root"] / "pickled")
    assert sorted(os.listdir(pickled)) == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    out = tmp_path / "out"
    if command == "label":
        argv = ["label", "--weak_model", pickled, "--dataset", assets["root"] / "digits", "--output", out]
    elif command == "train-weak":
        argv = ["train", "--config", TWIN, "--output_dir", out, *TINY, "--weak_supervisors",
                f"[{{name: weak, source: train, model: '{pickled}', train_split: weak_train, num_train_epochs: 1}}]"]
    else:
        argv = ["train", "--config", TWIN, "--output_dir", out, *TINY, "--model_name_or_path", pickled]
    code, _, err = run_cli(argv, capsys)
    assert code == 2, err[-2000:]
    assert PICKLE_MESSAGE in err and "Traceback" not in err
    assert not out.exists()  # refused before anything was written


def test_remote_code_is_refused_without_a_prompt_in_a_terminal(assets, tmp_path):
    """In a pseudo-terminal (where transformers would ask "[y/N]") with "y" already typed: no prompt, no code run.
    A real process: the terminal is its standard input and output."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRUST_REMOTE_CODE_TIMEOUT": "30"}
    argv = [sys.executable, "-m", "hf_w2s.cli", "label", "--weak_model", str(assets["remote"]), "--dataset",
            str(assets["root"] / "digits"), "--output", str(tmp_path / "out")]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    os.write(master, b"y\n")  # an answer waiting in the terminal, as if the user had typed it
    output, deadline = b"", time.time() + 240
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif proc.poll() is not None:
            break
    proc.wait(timeout=30)
    os.close(master)
    text = output.decode(errors="replace")
    assert proc.returncode == 2, text[-2000:]
    assert "[y/N]" not in text and "trust_remote_code=True" in text
    assert not assets["sentinel"].exists()  # the checkpoint's code never ran
