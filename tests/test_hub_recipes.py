"""Every Hub recipe (recipes/configs/*.yaml without `_offline`) and every Hub experiment config (recipes/experiments/
whose dataset is not packaged) run as a user runs them — ``hf-w2s train|experiment --config FILE`` through
``hf_w2s.cli.main`` in this process — against the local Hub serving the recipes' own ids with the real schemas
(tests/hub/recipe_repos.py), at a few steps on the CPU (bf16 off). One recipe also pushes its student with
``hub_strategy checkpoint`` to a ``hub_revision`` branch, and a second run resumes from the checkpoint the first one
pushed. Expected values come from the published facts (label names, config names, the Hub's commit of the dataset),
not from the code under test."""

import contextlib
import io
import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from hub.recipe_repos import (
    CIFAR10,
    CIFAR10_NAMES,
    CIFAR100,
    CIFAR100_FINE,
    IMAGENET,
    MINI_IMAGENET,
    MINI_IMAGENET_SYNSETS,
    VIT_MAE,
)
from testing_utils import run_cli

ROOT = Path(__file__).resolve().parents[1]
CONFIGS, EXPERIMENTS = ROOT / "recipes" / "configs", ROOT / "recipes" / "experiments"

# few steps, CPU, no bf16, small batches; everything else is the config's own
FEW_STEPS = ["--bf16", "false", "--use_cpu", "true", "--max_steps", "1", "--per_device_train_batch_size", "8",
             "--per_device_eval_batch_size", "32", "--dataloader_num_workers", "0"]
# the splits that fit the tiny repos (60 / 40 / 24 / 30 training rows): [weak_train, strong_train, validation, test]
# (test 0: the dataset's whole test_split)
SPLITS = {CIFAR100: [0, -1, 10, 0], CIFAR10: [0, -1, 10, 0], IMAGENET: [0, -1, 6, 0], MINI_IMAGENET: [0, -1, 8, 0]}
PUSHED = "cifar100_distillation_gt"
BRANCH = "w2s-run"


def hub_recipes():
    return sorted(p.stem for p in CONFIGS.glob("*.yaml") if not p.stem.endswith("_offline"))


def hub_experiments():
    return sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")
                  if not str(yaml.safe_load(p.read_text()).get("dataset", "hf_w2s:")).startswith("hf_w2s:"))


def _config(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _short_supervisors(config: dict) -> str:
    """The config's weak supervisors, trained for a few steps: one example per class where they take a few, one epoch
    for the first, two for the second, ... (supervisors that differ only in their shots stay distinct)."""
    out = []
    for i, w in enumerate(config["weak_supervisors"]):
        w = dict(w)
        trains = w.get("source") or ("train" if str(w.get("model", "tiny:")).startswith("tiny:") else "model")
        if trains == "train":
            w["num_train_epochs"] = i + 1
            if w.get("shots_per_class"):
                w["shots_per_class"] = 1
        out.append(w)
    return json.dumps(out)


def recipe_argv(name: str, out: Path, *extra: str) -> list[str]:
    config = _config(CONFIGS / f"{name}.yaml")
    return ["train", "--config", CONFIGS / f"{name}.yaml", *FEW_STEPS, "--split_sizes", *SPLITS[config["dataset"]],
            "--weak_supervisors", _short_supervisors(config), "--output_dir", out, *extra]


def experiment_argv(name: str, out: Path, *extra: str) -> list[str]:
    """The config's last loss only (every loss entry is validated by the dry run below), one seed."""
    config = _config(EXPERIMENTS / f"{name}.yaml")
    sizes = [15, 15, 10, 0] if config["split_sizes"][0] else SPLITS[config["dataset"]]
    return ["experiment", "--config", EXPERIMENTS / f"{name}.yaml", *FEW_STEPS, "--seeds", "0",
            "--split_sizes", *sizes, "--weak_supervisors", _short_supervisors(config),
            "--losses", json.dumps([config["losses"][-1]]), "--output_dir", out, *extra]


def run_captured(argv) -> tuple[int, str, str]:
    """``run_cli`` where no ``capsys`` is at hand (a module fixture): ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code, _, _ = run_cli(argv)
    return code, out.getvalue(), err.getvalue()


@contextlib.contextmanager
def library_log(level=logging.WARNING):
    """What transformers and hf_w2s log while the block runs (at ``level`` and above)."""
    from transformers.utils import logging as transformers_logging

    buffer, handler = io.StringIO(), logging.StreamHandler()
    handler.setStream(buffer)
    loggers = [logging.getLogger("transformers"), logging.getLogger("hf_w2s")]
    saved = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity(level)
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield buffer
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        transformers_logging.set_verbosity(saved)


def test_every_hub_config_is_run_here():
    """Each is a case of the tests below (collected from the folders), on splits that fit its dataset here."""
    assert PUSHED in hub_recipes() and hub_experiments()
    datasets = {_config(path)["dataset"] for path in [*(CONFIGS / f"{n}.yaml" for n in hub_recipes()),
                                                      *(EXPERIMENTS / f"{n}.yaml" for n in hub_experiments())]}
    assert datasets <= set(SPLITS)


@pytest.mark.parametrize("name", hub_experiments())
def test_every_loss_entry_of_the_hub_experiments_validates(name, tmp_path, capsys):
    config = _config(EXPERIMENTS / f"{name}.yaml")
    code, out, err = run_cli(["experiment", "--config", EXPERIMENTS / f"{name}.yaml", "--output_dir", tmp_path / "o",
                              "--dry_run", "true"], capsys)
    assert code == 0, err
    assert f"{len(config['losses'])} loss(es) x {len(config['seeds'])} seed(s)" in out and not (tmp_path / "o").exists()


# ---- the recipes ---------------------------------------------------------------------------------------------------
def _student(out: Path) -> tuple[dict, dict, dict]:
    """The saved student's results, config and card metadata."""
    student = out / "student"
    card = yaml.safe_load((student / "README.md").read_text().split("---")[1])
    return (json.loads((student / "w2s_results.json").read_text()), json.loads((student / "config.json").read_text()),
            card)


@pytest.mark.parametrize("name", [n for n in hub_recipes() if n != PUSHED])
def test_hub_recipe_runs_end_to_end(name, recipe_hub, tmp_path, capsys):
    out = tmp_path / "out"
    with library_log() as log:
        code, stdout, err = run_cli(recipe_argv(name, out), capsys)
    assert code == 0, err[-3000:]
    results, config, card = _student(out)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["student"] == str(out / "student") and summary["accuracy"] == results["accuracy"]
    assert 0.0 <= results["accuracy"] <= 1.0 and (out / "student" / "model.safetensors").exists()
    names = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    dataset = card["model-index"][0]["results"][0]["dataset"]
    recipe = _config(CONFIGS / f"{name}.yaml")
    assert (dataset["name"], dataset["split"]) == (recipe["dataset"], recipe["test_split"])
    assert dataset["revision"] == recipe_hub.recipe_repos[recipe["dataset"]]["sha"]  # the commit that was read
    if recipe["dataset"] == CIFAR10:
        assert names == CIFAR10_NAMES and dataset["config"] == "plain_text"
    elif recipe["dataset"] == MINI_IMAGENET:
        assert names == MINI_IMAGENET_SYNSETS and dataset["config"] == "default"
    else:  # ImageNet: the dataset's ClassLabel renames the second "crane"; the ResNet-50 teacher says "crane" twice
        assert len(names) == 1000 and names[134] == "crane" and names[517] == "crane2"
        assert dataset["config"] == "default"
        assert results["agreement"] is not None  # the ResNet-50 teacher supervised online (its own 1000 labels)
        assert card["base_model"] == VIT_MAE  # the MAE pre-training checkpoint, fine-tuned as a ViT classifier
        assert (config["model_type"], config["architectures"]) == ("vit", ["ViTForImageClassification"])
    assert "LOAD REPORT" not in log.getvalue() + err  # transformers' table per load: one line of ours at most
    assert "incompatible to the id2label" not in log.getvalue() + err  # no num_labels passed next to id2label


@pytest.fixture(scope="module")
def pushed(recipe_hub, tmp_path_factory):
    """The pushing recipe (the student, its logs and its checkpoint to a branch), then the same student resumed for a
    second step from the checkpoint it pushed: ``{"repo", "first", "second", "log"}``."""
    tmp = tmp_path_factory.mktemp("pushed")
    repo = recipe_hub.new_repo_id("cifar100-student")
    push = ["--push_to_hub", "true", "--hub_model_id", repo, "--hub_strategy", "checkpoint", "--hub_revision", BRANCH]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", recipe_hub.token)
        first = run_captured(recipe_argv(PUSHED, tmp / "first", "--report_to", "tensorboard", *push))
        with library_log(logging.INFO) as log:  # transformers says at INFO where it resumes
            second = run_captured(recipe_argv(PUSHED, tmp / "second", "--max_steps", "2", "--ceiling", "false",
                                              "--resume_from_checkpoint", "last-checkpoint", "--verbose", "true",
                                              "--disable_tqdm", "true", *push,
                                              # transformers deletes a non-best last checkpoint mid-push at 1
                                              "--load_best_model_at_end", "false", "--save_total_limit", "2"))
    return {"repo": repo, "first": (first[0], tmp / "first"), "second": (second[0], tmp / "second"),
            "log": log.getvalue(), "first_out": first[1], "first_err": first[2], "err": second[2]}


def test_recipe_pushes_student_logs_and_checkpoint_to_the_revision(pushed, recipe_hub):
    code, out = pushed["first"]
    assert code == 0, pushed["first_err"][-3000:]
    repo = pushed["repo"]
    files = set(recipe_hub.files(repo, revision=BRANCH))
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "w2s_results.json",
            "weak_model/model.safetensors", "last-checkpoint/optimizer.pt",
            "last-checkpoint/trainer_state.json"} <= files
    logs = {f.split("/")[1] for f in files if f.startswith("runs/") and "tfevents" in f}
    assert logs == {"weak-weak", "ceiling-seed0", "student-adapt_conf-weak-seed0"}  # run names: row and seed
    assert set(recipe_hub.files(repo)) == {".gitattributes"}  # nothing on main: every push went to the branch
    pushed_results = json.loads(recipe_hub.file_bytes(repo, "w2s_results.json", revision=BRANCH))
    assert pushed_results["repo_id"] == json.loads(pushed["first_out"].strip().splitlines()[-1])["repo_id"] == repo
    card = yaml.safe_load(recipe_hub.file_bytes(repo, "README.md", revision=BRANCH).decode().split("---")[1])
    assert "weak_supervisor" not in card  # not a key of the Hub's card spec
    (result,) = card["model-index"][0]["results"]
    examples = result["dataset"].pop("args")  # which examples of the split: the run's test split, by content
    assert result["dataset"] == {"name": CIFAR100, "type": CIFAR100, "config": "cifar100", "split": "test",
                                 "revision": recipe_hub.recipe_repos[CIFAR100]["sha"]}
    assert examples == {"w2s_split": "test", "w2s_role": "report",
                        "w2s_fingerprint": pushed_results["provenance"]["accuracy"]["fingerprint"]}
    metrics = {m["type"]: m for m in result["metrics"]}
    assert metrics["agreement"]["args"]["weak_supervisor"] == "microsoft/resnet-18"
    assert metrics["accuracy"]["value"] == pytest.approx(_student(out)[0]["accuracy"])
    assert "args" not in metrics["accuracy"]
    assert [_student(out)[1]["id2label"][str(i)] for i in range(100)] == CIFAR100_FINE


def test_second_run_resumes_from_the_checkpoint_on_the_hub(pushed, recipe_hub):
    code, out = pushed["second"]
    assert code == 0, pushed["err"][-3000:]
    assert _student(out)[0]["resumed_from"] == f"{pushed['repo']}/last-checkpoint"
    assert re.search(r"Resuming training from checkpoint with epoch \d+ and global step 1\b", pushed["log"])
    state = json.loads(recipe_hub.file_bytes(pushed["repo"], "last-checkpoint/trainer_state.json", revision=BRANCH))
    assert state["global_step"] == 2  # the resumed run pushed its own checkpoint in turn
    # fetched as the checkpoint of its step (the Trainer's own pushes leave checkpoint-N folders out), its best
    # checkpoint (its step 1, named by the pushing machine's path) names the local copy: another machine's folder
    # would be loaded, or missed, at the end of training
    (fetched,) = out.glob("runs/*/*/seed0/checkpoint-1/trainer_state.json")
    assert json.loads(fetched.read_text())["best_model_checkpoint"] == str(fetched.parent)
    assert not list(out.glob("runs/*/*/seed0/last-checkpoint"))


# ---- the experiments -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", hub_experiments())
def test_hub_experiment_runs_end_to_end(name, recipe_hub, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(experiment_argv(name, out), capsys)
    assert code == 0, err[-3000:]
    config = _config(EXPERIMENTS / f"{name}.yaml")
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    n_weak = len(config["weak_supervisors"])
    # one seed: every candidate runs once (the config's training candidates x the last loss's own candidates)
    n_training = max(1, len(config.get("training_candidates") or []))
    last = config["losses"][-1]
    n_loss = n_training * max(1, len(last.get("candidates") or []) if isinstance(last, dict) else 1)
    assert kinds.count("weak") == n_weak and kinds.count("ceiling") == n_training
    assert kinds.count("w2s") == n_weak * n_loss
    names = {CIFAR100: CIFAR100_FINE, CIFAR10: CIFAR10_NAMES}[config["dataset"]]
    (info,) = (out / "data").glob("splits-*/test/dataset_info.json")
    assert json.loads(info.read_text())["features"]["label"]["names"] == names  # the Hub's label column, by name
    assert "| strong ceiling (ground truth) |" in (out / "report" / "report.md").read_text()
    # report_to: tensorboard (the configs' own): each strong run's events under logs/<run name>
    assert config["report_to"] == "tensorboard"
    logged = {p.parent.name for p in (out / "logs").glob("*/events.out.tfevents.*")}
    assert len([n for n in logged if n.startswith("ceiling")]) == n_training
    assert len([n for n in logged if n.startswith("student-")]) == kinds.count("w2s")


# ---- refused before any compute -------------------------------------------------------------------------------------
@pytest.mark.skipif(__import__("importlib").util.find_spec("trackio") is not None, reason="trackio is installed")
@pytest.mark.parametrize("command, config", [("train", CONFIGS / "cifar10_noisy_symmetric.yaml"),
                                             ("experiment", EXPERIMENTS / "noisy_labels_cifar10.yaml")])
def test_a_tracker_that_is_not_installed_is_refused_with_the_pip_line(command, config, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli([command, "--config", config, "--report_to", "trackio", "--output_dir", out,
                            *(["--bf16", "false"] if command == "train" else [])], capsys)
    assert code == 2 and 'pip install "hf_w2s[trackio]"' in err and len(err.strip().splitlines()) <= 2
    assert not out.exists()  # nothing computed, nothing written


@pytest.mark.parametrize("extra, match", [
    (["--hub_strategy", "checkpoint", "--save_strategy", "no", "--load_best_model_at_end", "false"],
     "save_strategy is 'no'"),
    (["--hub_revision", "a" * 40], "is a commit"),
])
def test_hub_options_that_cannot_be_honoured_are_refused(extra, match, tmp_path, capsys):
    code, _, err = run_cli(["train", "--config", CONFIGS / "cifar10_noisy_symmetric.yaml", "--bf16", "false",
                            "--push_to_hub", "true", "--output_dir", tmp_path / "o", *extra], capsys)
    assert code == 2 and re.search(match, err), err
    assert not (tmp_path / "o").exists()


def test_a_push_with_nothing_to_push_is_refused(tmp_path, capsys):
    """An experiment pushes its saved student: a config that trains none (the ceiling only) cannot push."""
    code, _, err = run_cli(["experiment", "--config", EXPERIMENTS / "transfer_cifar10.yaml", "--output_dir",
                            tmp_path / "o", "--push_to_hub", "true", "--losses", "[]", "--dry_run", "true"], capsys)
    assert code == 2 and "push_to_hub pushes the saved student, but the config trains none" in err, err
    assert not (tmp_path / "o").exists()


# ---- the CLI's help --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "experiment", "label"])
def test_cli_help_lists_config_first_in_plain_text(command, capsys):
    code, text, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    assert "``" not in text and ":class:" not in text and ":func:" not in text
    assert any(line.strip().startswith("--config") for line in text.splitlines()[:12])


@pytest.mark.parametrize("command", ["train", "experiment"])
def test_cli_help_lists_the_groups_of_the_one_schema(command, capsys):
    code, text, _ = run_cli([command, "--help"], capsys)
    assert code == 0
    lines = text.splitlines()
    groups = [i for i, line in enumerate(lines) if line and not line.startswith(" ") and line.endswith(":")]
    titles = [lines[i] for i in groups]
    schema = [re.search(r"\((ExperimentConfig|DataConfig|ModelConfig)\)", t) for t in titles]
    assert [m.group(1) for m in schema if m] == ["ExperimentConfig", "DataConfig", "ModelConfig"], titles
    # then the training arguments of every strong run (TrainingArguments' names, the loss knobs) in the last group
    last = next(i for i in reversed(groups))
    flags = {line.split()[0] for line in lines[last:] if line.strip().startswith("--")}
    assert {"--learning_rate", "--confidence_temperature", "--push_to_hub", "--hub_revision"} <= flags


def test_a_load_says_in_one_line_what_is_new(tmp_path, caplog, capfd):
    from safetensors.torch import load_file, save_file

    from hf_w2s.modeling import build_model, load_image_classifier

    build_model("vit", ["a", "b"], image_size=8, width=8, depth=1, seed=0).save_pretrained(tmp_path / "m")
    with caplog.at_level(logging.INFO, logger="hf_w2s.modeling"):
        load_image_classifier(str(tmp_path / "m"), ["x", "y", "z"])  # other labels: a new head, said at info
    assert [r.levelname for r in caplog.records] == ["INFO"] and "new classification head for 3" in caplog.text
    weights = load_file(tmp_path / "m" / "model.safetensors")
    dropped = sorted(k for k in weights if "layernorm" in k)
    save_file({k: v for k, v in weights.items() if k not in dropped}, tmp_path / "m" / "model.safetensors",
              metadata={"format": "pt"})
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_image_classifier(str(tmp_path / "m"), ["a", "b"])
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and f"{len(dropped)} weights outside the classification head" in warnings[0].message
    assert "LOAD REPORT" not in capfd.readouterr().err  # transformers' own table (its logger writes to stderr)
