"""Every Hub recipe (recipes/configs/*.yaml without `_offline`) and every Hub experiment config (recipes/experiments/
whose dataset is not packaged) run as a user runs them: ``hf_w2s.cli.main(["train"|"experiment", "--config", FILE,
...])``, what ``python -m hf_w2s.cli`` runs (tests/cli_sequence.py), against
the local Hub serving the recipes' own ids with the real schemas (tests/hub_fixtures.py), at a few steps on the CPU
(bf16 off by override). One recipe also pushes its student with ``hub_strategy checkpoint`` to a ``hub_revision``
branch, and a second run resumes from the checkpoint the first one pushed.

All runs start at once in a module fixture, in two interpreters side by side (the machine has two cores): the
experiments in one, the recipes in the other (the pushing run first, then its resume); each test then reads what its
run left behind. Expected values come from the fixture's published facts (label names, config names, the Hub's
commit of the dataset), not from the code under test."""

import json
import re
from pathlib import Path

import pytest
import yaml

from cli_sequence import Run, finish_sequence, start_sequence
from hub_fixtures import (CIFAR10, CIFAR10_NAMES, CIFAR100, CIFAR100_FINE, IMAGENET, MINI_IMAGENET_SYNSETS,
                          VIT_MAE)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS, EXPERIMENTS = ROOT / "recipes" / "configs", ROOT / "recipes" / "experiments"

# few steps, CPU, no bf16; everything else is the recipe's own
TRAIN = ["--bf16", "false", "--use_cpu", "true", "--max_steps", "1", "--weak_num_train_epochs", "1",
         "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--dataloader_num_workers", "0",
         "--disable_tqdm", "true", "--validation_size", "0.2"]
EXPERIMENT = ["--seeds", "[0]", "--training.max_steps", "1", "--training.per_device_train_batch_size", "8",
              "--training.per_device_eval_batch_size", "32", "--training.use_cpu", "true"]
# what each config needs on top to fit the tiny splits (60 / 40 / 24 / 30 training rows); four split sizes: the
# validation split is where the harness chooses (the fourth size 0 = the whole test split)
RECIPE_OVERRIDES = {
    "cifar100_distillation_gt": [],  # the pushing run (see PUSH)
    "cifar10_noisy_asymmetric": [],
    "cifar10_noisy_symmetric": [],
    "imagenet_transfer_mae_vitb": [],
    "imagenet_transfer_mae_vitb_paper": [],
    "miniimagenet_fewshot": ["--weak_shots_per_class", "1"],  # 30 rows of 100 classes: no class has 5
}
EXPERIMENT_OVERRIDES = {
    "distillation_cifar100": ["--split_sizes", "[0,50,10,0]", "--weak_supervisors.0.epochs", "1"],
    "few_shot_supervisor_cifar100": ["--split_sizes", "[30,20,10,0]", "--weak_supervisors.0.epochs", "1",
                                     "--weak_supervisors.1.epochs", "2", "--weak_supervisors.1.shots_per_class", "1",
                                     "--weak_supervisors.2.epochs", "3", "--weak_supervisors.2.shots_per_class", "1"],
    "noisy_labels_cifar10": ["--split_sizes", "[0,30,10,0]"],
    "transfer_cifar10": ["--split_sizes", "[15,15,10,0]", "--weak_supervisors.0.epochs", "1"],
    "transfer_cifar10_paper": ["--split_sizes", "[0,30,10,0]", "--weak_supervisors.0.epochs", "1"],
}
PUSHED = "cifar100_distillation_gt"
BRANCH = "w2s-run"


def hub_recipes():
    return sorted(p.stem for p in CONFIGS.glob("*.yaml") if not p.stem.endswith("_offline"))


def hub_experiments():
    return sorted(p.stem for p in EXPERIMENTS.glob("*.yaml")
                  if not str(yaml.safe_load(p.read_text()).get("dataset", "hf_w2s:")).startswith("hf_w2s:"))


def _last_loss(name: str) -> list:
    """The last loss of an experiment config: every config runs end to end with it (every supervisor still trains,
    labels and supervises a student); each loss entry of every config is validated by the dry run below."""
    return [yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())["losses"][-1]]


def test_every_hub_config_is_run_here():
    assert hub_recipes() == sorted(RECIPE_OVERRIDES) and hub_experiments() == sorted(EXPERIMENT_OVERRIDES)


@pytest.mark.parametrize("name", sorted(EXPERIMENT_OVERRIDES))
def test_every_loss_entry_of_the_hub_experiments_validates(name, tmp_path, capsys):
    from hf_w2s.cli import main

    config = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    losses = config["losses"]
    assert main(["experiment", "--config", str(EXPERIMENTS / f"{name}.yaml"), "--output_dir", str(tmp_path / "o"),
                 "--dry_run", "true"]) == 0
    plan = capsys.readouterr().out
    assert f"{len(losses)} loss(es) x {len(config['seeds'])} seed(s)" in plan and not (tmp_path / "o").exists()


def _sequence(hub, tmp: Path, jobs: dict, name: str):
    """Start one interpreter running ``jobs`` (name -> argv, each writing to ``tmp / name``) in order (cli_sequence)."""
    jobs = {n: [*argv, "--output_dir", str(tmp / n)] for n, argv in jobs.items()}
    return start_sequence(hub, tmp, jobs, name, info=("resume",))


@pytest.fixture(scope="module")
def runs(recipe_hub, tmp_path_factory):
    """Every run; ``{name: (Run, output_dir)}``. The experiments run in one interpreter; the recipes in a second one,
    the pushing recipe first, then the run that resumes from its pushed checkpoint, then the other recipes."""
    tmp = tmp_path_factory.mktemp("hub_recipes")
    repo = recipe_hub.new_repo_id("cifar100-student")
    recipes = {}
    for name, extra in RECIPE_OVERRIDES.items():
        push = ["--report_to", "tensorboard", "--push_to_hub", "true", "--hub_model_id", repo, "--hub_strategy",
                "checkpoint", "--hub_revision", BRANCH] if name == PUSHED else []
        recipes[name] = ["train", "--config", str(CONFIGS / f"{name}.yaml"), *TRAIN, *extra, *push]
    experiments = {name: ["experiment", "--config", str(EXPERIMENTS / f"{name}.yaml"), *EXPERIMENT, *extra,
                          "--losses", json.dumps(_last_loss(name))] for name, extra in EXPERIMENT_OVERRIDES.items()}
    # an MAE checkpoint (model_type vit_mae) as the harness's strong model, as in hf-w2s train
    experiments["mae_strong_model"] = [
        "experiment", "--config", str(EXPERIMENTS / "transfer_cifar10.yaml"), *EXPERIMENT,
        *EXPERIMENT_OVERRIDES["transfer_cifar10"], "--strong_model.model", VIT_MAE, "--losses", "[kd]",
        "--ceiling", "false", "--report_to", "none"]
    # the same student, two steps, resumed from the checkpoint the first run pushed (the first step)
    resume = ["train", "--config", str(CONFIGS / f"{PUSHED}.yaml"), *TRAIN, "--max_steps", "2",
              "--compute_ceiling", "false", "--push_to_hub", "true", "--hub_model_id", repo,
              "--hub_strategy", "checkpoint", "--hub_revision", BRANCH,
              "--resume_from_checkpoint", "last-checkpoint", "--load_best_model_at_end", "false",
              "--save_total_limit", "2"]  # transformers deletes a non-best last checkpoint mid-push at 1
    in_order = {PUSHED: recipes[PUSHED], "resume": resume, **{n: argv for n, argv in recipes.items() if n != PUSHED}}
    pending = [_sequence(recipe_hub, tmp, experiments, "experiments"), _sequence(recipe_hub, tmp, in_order, "recipes")]
    codes = {}
    for sequence in pending:
        codes.update({name: run.returncode for name, run in finish_sequence(sequence, tmp).items()})
    done = {name: (Run(codes.get(name, -1), tmp / name), tmp / name) for name in [*in_order, *experiments]}
    done["repo"] = repo
    return done


def _ok(runs, name):
    run, out = runs[name]
    assert run.returncode == 0, f"{name} failed:\n{run.stderr[-4000:]}"
    return run, out


def _results(out: Path) -> dict:
    return json.loads((out / "w2s_results.json").read_text())


@pytest.mark.parametrize("name", sorted(RECIPE_OVERRIDES))
def test_hub_recipe_runs_end_to_end(runs, name):
    run, out = _ok(runs, name)
    results = _results(out)
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["accuracy"] == results["accuracy"] and 0.0 <= results["accuracy"] <= 1.0
    assert (out / "model.safetensors").exists() and (out / "README.md").exists()
    expected = {"cifar100_distillation_gt": CIFAR100_FINE, "cifar10_noisy_asymmetric": CIFAR10_NAMES,
                "cifar10_noisy_symmetric": CIFAR10_NAMES, "miniimagenet_fewshot": MINI_IMAGENET_SYNSETS}
    if name in expected:
        assert results["label_names"] == expected[name]
    else:  # ImageNet: the dataset's ClassLabel renames the second "crane"; the ResNet-50 teacher says "crane" twice
        names = results["label_names"]
        assert len(names) == 1000 and names[134] == "crane" and names[517] == "crane2"
        assert results["agreement"] is not None  # the teacher supervised online, matched by index
        card = yaml.safe_load((out / "README.md").read_text().split("---")[1])
        dataset = card["model-index"][0]["results"][0]["dataset"]
        assert (dataset["name"], dataset["config"], dataset["split"]) == (IMAGENET, "default", "validation")
    assert "LOAD REPORT" not in run.stderr  # transformers' table per load: one line of ours at most
    assert "incompatible to the id2label" not in run.stderr  # no num_labels passed next to id2label


def test_recipe_pushes_student_logs_and_checkpoint_to_the_revision(runs, recipe_hub):
    _, out = _ok(runs, PUSHED)
    repo = runs["repo"]
    files = set(recipe_hub.files(repo, revision=BRANCH))
    assert {"model.safetensors", "config.json", "preprocessor_config.json", "README.md", "w2s_results.json",
            "weak_model/model.safetensors", "last-checkpoint/optimizer.pt",
            "last-checkpoint/trainer_state.json"} <= files
    logs = {f.split("/")[1] for f in files if f.startswith("runs/") and "tfevents" in f}
    assert logs == {"weak-resnet-18-seed0", "ceiling-seed0", "student-adapt_conf-seed0"}
    assert set(recipe_hub.files(repo)) == {".gitattributes"}  # nothing on main: every push went to the branch
    card = yaml.safe_load(recipe_hub.file_bytes(repo, "README.md", revision=BRANCH).decode().split("---")[1])
    assert "weak_supervisor" not in card  # not a key of the Hub's card spec
    (result,) = card["model-index"][0]["results"]
    assert result["dataset"] == {"name": CIFAR100, "type": CIFAR100, "config": "cifar100", "split": "test",
                                 "revision": recipe_hub.recipe_repos[CIFAR100]["sha"]}
    metrics = {m["type"]: m for m in result["metrics"]}
    assert metrics["agreement"]["args"]["weak_supervisor"] == "microsoft/resnet-18"
    assert metrics["accuracy"]["value"] == pytest.approx(_results(out)["accuracy"])
    assert "args" not in metrics["accuracy"]


def test_second_run_resumes_from_the_checkpoint_on_the_hub(runs, recipe_hub):
    run, out = _ok(runs, "resume")
    assert _results(out)["resumed_from"] == f"{runs['repo']}/last-checkpoint"
    assert re.search(r"Resuming training from checkpoint with epoch \d+ and global step 1\b", run.stderr)  # transformers
    state = json.loads(recipe_hub.file_bytes(runs["repo"], "last-checkpoint/trainer_state.json",
                                             revision=BRANCH).decode())
    assert state["global_step"] == 2  # the resumed run pushed its own checkpoint in turn
    # the first run's best checkpoint was its step 1, named by the pushing machine's path: fetched, it names the local
    # copy (another machine's folder would be loaded, or missed, at the end of training)
    fetched = json.loads((out / "last-checkpoint" / "trainer_state.json").read_text())
    assert fetched["best_model_checkpoint"] == str(out / "last-checkpoint")


@pytest.mark.parametrize("name", sorted(EXPERIMENT_OVERRIDES))
def test_hub_experiment_runs_end_to_end(runs, name):
    _, out = _ok(runs, name)
    config = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    kinds = [r["kind"] for r in records]
    n_weak = len(config["weak_supervisors"])
    # one seed: every candidate runs once (the config's training candidates x each loss's own candidates)
    n_training = max(1, len(config.get("training_candidates") or []))
    per_loss = [n_training * max(1, len(loss.get("candidates") or []) if isinstance(loss, dict) else 1)
                for loss in _last_loss(name)]
    assert kinds.count("weak") == n_weak and kinds.count("ceiling") == n_training
    assert kinds.count("w2s") == n_weak * sum(per_loss)  # the loss of _last_loss, for each supervisor
    names = {CIFAR100: CIFAR100_FINE, CIFAR10: CIFAR10_NAMES}[config["dataset"]]
    (info,) = (out / "data").glob("splits-*/test/dataset_info.json")
    assert json.loads(info.read_text())["features"]["label"]["names"] == names  # the Hub's label column, by name
    assert "| strong ceiling (ground truth) |" in (out / "report" / "report.md").read_text()
    # report_to: tensorboard (the configs' own): each strong run's events under logs/<run name>
    assert config["report_to"] == "tensorboard"
    logged = {p.parent.name for p in (out / "logs").glob("*/events.out.tfevents.*")}
    assert len([n for n in logged if n.startswith("ceiling")]) == n_training
    assert len([n for n in logged if n.startswith("student-")]) == kinds.count("w2s")


def test_the_harness_fine_tunes_an_mae_checkpoint(runs):
    _, out = _ok(runs, "mae_strong_model")
    (student,) = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()
                  if json.loads(line)["kind"] == "w2s"]
    assert student["loss"] == "kd" and 0.0 <= student["test_accuracy"] <= 1.0
    assert yaml.safe_load((out / "experiment.yaml").read_text())["strong_model"]["model"] == VIT_MAE


# ---- refused before any compute ---------------------------------------------------------------------------------
def _cli(argv, capsys):
    from hf_w2s.cli import main

    code = main(argv)
    return code, capsys.readouterr().err


@pytest.mark.skipif(__import__("importlib").util.find_spec("trackio") is not None, reason="trackio is installed")
@pytest.mark.parametrize("command, config", [("train", CONFIGS / "cifar10_noisy_symmetric.yaml"),
                                             ("experiment", EXPERIMENTS / "noisy_labels_cifar10.yaml")])
def test_a_tracker_that_is_not_installed_is_refused_with_the_pip_line(command, config, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _cli([command, "--config", str(config), "--report_to", "trackio", "--output_dir", str(out),
                      *(["--bf16", "false"] if command == "train" else [])], capsys)
    assert code == 2 and 'pip install "hf_w2s[trackio]"' in err and len(err.strip().splitlines()) <= 2
    assert not out.exists()  # nothing computed, nothing written


@pytest.mark.parametrize("extra, match", [
    (["--hub_strategy", "checkpoint", "--save_strategy", "no", "--load_best_model_at_end", "false"],
     "save_strategy is 'no'"),
    (["--hub_revision", "a" * 40], "is a commit"),
])
def test_hub_options_that_cannot_be_honoured_are_refused(extra, match, tmp_path, capsys):
    code, err = _cli(["train", "--config", str(CONFIGS / "cifar10_noisy_symmetric.yaml"), "--bf16", "false",
                      "--push_to_hub", "true", "--output_dir", str(tmp_path / "o"), *extra], capsys)
    assert code == 2 and re.search(match, err)


def test_the_harness_refuses_to_push_its_runs(tmp_path, capsys):
    code, err = _cli(["experiment", "--config", str(EXPERIMENTS / "transfer_cifar10.yaml"), "--output_dir",
                      str(tmp_path / "o"), "--training.push_to_hub", "true", "--dry_run", "true"], capsys)
    assert code == 2 and "push_to_hub is not honoured by the harness" in err and not (tmp_path / "o").exists()


# ---- the CLI's help (the README's ten lines run in tests/test_hub_fixtures.py, in its client process) ----------
@pytest.mark.parametrize("command", ["train", "label", "experiment"])
def test_cli_help_lists_config_and_the_weak_to_strong_options_first(command, capsys):
    from hf_w2s.cli import main

    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":class:" not in text and ":func:" not in text
    lines = text.splitlines()
    assert any(line.strip().startswith("--config") for line in lines[:12])
    if command == "train":
        groups = [line for line in lines if line and not line.startswith(" ") and line.endswith(":")]
        assert groups.index("weak-to-strong options:") < groups.index(
            "training options (transformers.TrainingArguments):")
        assert groups[1].startswith("weak-to-strong") and groups[2].startswith("recipe options")


# ---- pieces the runs above rely on, in process ------------------------------------------------------------------
def test_overrides_reach_list_entries():
    from hf_w2s.yaml_config import apply_overrides

    data = {"weak_supervisors": [{"name": "a", "epochs": 10}, {"name": "b"}], "training": {"lr": 1}}
    out = apply_overrides(data, ["--weak_supervisors.1.epochs", "2", "--training.max_steps", "1"])
    assert out["weak_supervisors"] == [{"name": "a", "epochs": 10}, {"name": "b", "epochs": 2}]
    assert out["training"] == {"lr": 1, "max_steps": 1} and data["weak_supervisors"][1] == {"name": "b"}
    with pytest.raises(ValueError, match=r"--weak_supervisors.2: '2' is not an index of that list \(0..1\)"):
        apply_overrides(data, ["--weak_supervisors.2.epochs", "1"])


def test_a_load_says_in_one_line_what_is_new(tmp_path, caplog, capfd):
    import logging

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
