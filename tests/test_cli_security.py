"""The protections on the path users take: the ``hf-w2s`` commands never show or write a Hub token, refuse pickled
weights and never run (or ask to run) a checkpoint's own code."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import forkserver
import pytest
import torch
from cli_sequence import finish_sequence, start_sequence

from hf_w2s.modeling import build_model, tiny_image_processor

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_" + "Qx7Lm2" * 6  # shaped like a user access token; the local Hub accepts it for user "tok-user"
TWIN = str(REPO / "recipes" / "configs" / "cifar100_distillation_gt_offline.yaml")
TINY = ["--split_sizes", "60", "200", "100", "--num_train_epochs", "1", "--weak_num_train_epochs", "1",
        "--per_device_train_batch_size", "32", "--logging_steps", "1"]
PICKLE_MESSAGE = "holds only pickled weights (pytorch_model.bin), which can execute code when loaded"


def hf_w2s(*args) -> list[str]:
    return [sys.executable, "-m", "hf_w2s.cli", *args]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A weak model (safetensors), the same as pickle only, one with its own code, and 40 labelled digits."""
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
    from test_security import remote_code_checkpoint

    remote, sentinel = remote_code_checkpoint(root)
    tiny_image_processor(8, 1).save_pretrained(remote)
    return {"root": root, "remote": remote, "sentinel": sentinel}


def written_files(*roots) -> list[Path]:
    return [p for r in roots for p in Path(r).rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def commands(local_hub, assets, tmp_path_factory):
    """Every command of this file but the terminal one, in one interpreter (tests/cli_sequence.py) with HF_TOKEN set:
    ``(tmp, {name: Run})``. The token commands write under ``tmp / "token"``; each pickle refusal under its own
    folder."""
    tmp = tmp_path_factory.mktemp("commands")
    local_hub.add_user(TOKEN, "tok-user")
    pickled = str(assets["root"] / "pickled")
    jobs = {}
    for command in PICKLE_COMMANDS:
        out = str(tmp / command / "out")
        if command == "label":
            jobs[f"pickle-{command}"] = ["label", "--weak_model", pickled, "--dataset", str(assets["root"] / "digits"),
                             "--output", out]
        else:
            which = "--weak_model_name_or_path" if command == "train-weak" else "--model_name_or_path"
            jobs[f"pickle-{command}"] = ["train", "--config", TWIN, "--output_dir", out, *TINY, which, pickled]
            if command == "train-weak":
                jobs[f"pickle-{command}"] += ["--weak_train_split", "weak_train"]
    token = tmp / "token"
    jobs["train"] = ["train", "--config", TWIN, "--output_dir", str(token / "student"), *TINY, "--push_to_hub",
                     "true", "--hub_model_id", "tok-user/student", "--hub_token", TOKEN]
    jobs["label"] = ["label", "--weak_model", str(assets["root"] / "weak"), "--dataset", str(assets["root"] / "digits"),
                     "--output", str(token / "labels"), "--push_to_hub", "tok-user/labels"]
    jobs["experiment"] = ["experiment", "--config", str(REPO / "recipes" / "experiments" / "benchmark_digits_tiny.yaml"),
                          "--output_dir", str(token / "exp"), "--training.hub_token", TOKEN, "--seeds", "[0]",
                          "--losses", "[weak_hard]", "--training.num_train_epochs", "1"]
    # a refused push: the error names the repo, never the token
    jobs["refused"] = ["train", "--config", TWIN, "--output_dir", str(token / "refused"), *TINY, "--push_to_hub",
                       "true", "--hub_model_id", f"w2s-org/{TOKEN}", "--hub_token", TOKEN]
    token.mkdir()
    pending = start_sequence(local_hub, tmp, jobs, "commands", env={"HF_TOKEN": TOKEN})
    return tmp, finish_sequence(pending, tmp)


def test_commands_never_show_or_write_the_token(local_hub, commands):
    """hf-w2s train / label / experiment with --hub_token and HF_TOKEN: not in stdout, stderr, any file written, the
    pushed repos, nor the error of a push that is refused."""
    root, done = commands
    tmp_path = root / "token"
    runs = {name: done[name] for name in ("train", "label", "experiment", "refused")}
    for name, run in runs.items():
        assert TOKEN not in run.stdout + run.stderr, name
    for name in ("train", "label", "experiment"):
        assert runs[name].returncode == 0, runs[name].stderr[-2000:]
    assert runs["refused"].returncode == 2 and "***" in runs["refused"].stderr  # refused before training:
    assert not (tmp_path / "refused").exists()
    files = written_files(tmp_path) + [*root.glob("*.out"), *root.glob("*.err")]  # + what each command printed
    assert {"README.md", "w2s_results.json", "w2s_run.json", "experiment.yaml", "training_args.bin"} <= {
        p.name for p in files}
    for path in files:
        assert TOKEN.encode() not in path.read_bytes(), path
    card = (tmp_path / "student" / "README.md").read_text()
    assert "--hub_token '***'" in card or "--hub_token ***" in card  # the reproduce command, redacted
    for repo, kind in (("tok-user/student", "model"), ("tok-user/labels", "dataset")):
        pushed = local_hub.files(repo, repo_type=kind)
        assert "README.md" in pushed
        for path in pushed:
            assert TOKEN.encode() not in local_hub.file_bytes(repo, path, repo_type=kind), (repo, path)
    assert "hub_token: '***'" in (tmp_path / "exp" / "experiment.yaml").read_text()


PICKLE_COMMANDS = ("label", "train-weak", "train-student")


@pytest.mark.parametrize("command", PICKLE_COMMANDS)
def test_pickled_weights_are_refused_through_the_commands(assets, commands, command):
    pickled = str(assets["root"] / "pickled")
    assert sorted(os.listdir(pickled)) == ["config.json", "preprocessor_config.json", "pytorch_model.bin"]
    root, done = commands
    run, out = done[f"pickle-{command}"], root / command / "out"
    stderr, returncode = run.stderr, run.returncode
    assert returncode == 2, stderr[-2000:]
    assert PICKLE_MESSAGE in stderr and "Traceback" not in stderr
    assert not out.exists()  # refused before anything was written


def test_remote_code_is_refused_without_a_prompt_in_a_terminal(assets, tmp_path):
    """In a pseudo-terminal (where transformers would ask "[y/N]") with "y" already typed: no prompt, no code run."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "TRUST_REMOTE_CODE_TIMEOUT": "30"}
    argv = hf_w2s("label", "--weak_model", str(assets["remote"]), "--dataset", str(assets["root"] / "digits"),
                  "--output", str(tmp_path / "out"))
    proc = forkserver.popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
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
