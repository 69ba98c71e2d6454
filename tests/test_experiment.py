"""Tests of the experiment harness (hf-w2s experiment), its report and the label-noise utility (issue 5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import ClassLabel, Dataset, Features, Image, load_from_disk

from hf_w2s.data import shots_per_class
from hf_w2s.experiment import Experiment, ResultStore
from hf_w2s.cli import main as cli_main
from hf_w2s.experiment.config import FIXED_MIX, ExperimentConfig, load_experiment_config, weak_losses
from hf_w2s.data.noise import corrupt_labels
from hf_w2s.experiment.report import markdown, summarize

RECIPES = Path(__file__).resolve().parent.parent / "recipes" / "experiments"


def main(argv):
    return cli_main(["experiment", *argv])


def make_bands(path, seed: int = 0) -> str:
    """240 8×8 grayscale images of 3 classes (a bright band at rows 2c..2c+1, plus noise), saved to ``path``."""
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(240):
        c = i % 3
        im = rng.integers(0, 90, size=(8, 8))
        im[2 * c : 2 * c + 2] += 160
        images.append(PILImage.fromarray(im.clip(0, 255).astype(np.uint8)))
        labels.append(c)
    ds = Dataset.from_dict({"image": images, "label": labels},
                           features=Features({"image": Image(), "label": ClassLabel(names=["a", "b", "c"])}))
    ds.save_to_disk(str(path))
    return str(path)


@pytest.fixture(scope="module")
def bands_dataset(tmp_path_factory):
    return make_bands(tmp_path_factory.mktemp("bands") / "ds")


def tiny_config(dataset: str, out, **over) -> dict:
    cfg = {
        "output_dir": str(out),
        "dataset": dataset,
        "split_sizes": [50, 110, 40, 40],
        "image_size": 8,
        "weak_supervisors": [{"name": "lin", "arch": "linear", "width": 4, "epochs": 2, "batch_size": 16}],
        "strong_model": {"arch": "resnet", "width": 4, "depth": 1},
        "training": {"num_train_epochs": 1, "per_device_train_batch_size": 32, "logging_steps": 1},
        "losses": ["weak_hard", dict(FIXED_MIX)],
        "seeds": [0, 1],
    }
    cfg.update(over)
    return cfg


def write_yaml(tmp_path, cfg) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


class ForwardCounter:
    """Counts forward calls of top-level models of one class (a global forward hook)."""

    def __init__(self, class_name: str):
        self.class_name, self.calls = class_name, 0

    def __enter__(self):
        def hook(module, args, output):
            if type(module).__name__ == self.class_name:
                self.calls += 1

        self.handle = torch.nn.modules.module.register_module_forward_hook(hook)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


# ----------------------------------------------------------------------------------------------------------------
# config


def test_config_from_yaml_with_overrides(tmp_path, bands_dataset):
    cfg = tiny_config(bands_dataset, tmp_path / "out",
                      losses=["kd", {"name": "adapt_conf", "confidence_temperature": 2.0}, "all"])
    config = load_experiment_config(
        write_yaml(tmp_path, cfg), ["--training.learning_rate", "1e-2", "--seeds", "[3, 4]",
                                    "--strong_model.width=6"])
    assert config.training["learning_rate"] == 0.01 and isinstance(config.training["learning_rate"], float)
    assert config.training["num_train_epochs"] == 1  # the rest of the section is kept
    assert config.seeds == [3, 4] and config.strong_model.width == 6 and config.strong_model.depth == 1
    labels = [spec.label for spec in config.losses]
    assert labels[:2] == ["kd", "adapt_conf[confidence_temperature=2.0]"]
    assert labels[2:] == [n for n in weak_losses() if n != "kd"] and "ground_truth" not in labels
    assert config.losses[1].knobs == {"confidence_temperature": 2.0}


def test_default_losses_cover_the_registry_and_the_fixed_mix(tmp_path):
    config = ExperimentConfig(output_dir=str(tmp_path))
    names = [(s.name, s.knobs) for s in config.losses]
    for name in ("weak_hard", "weak_soft", "kd", "aug_conf", "aux_conf_multiclass", "product", "adapt_conf"):
        assert (name, {}) in names
    assert ("aux_conf", {}) not in names  # OpenAI's binary loss: not in a default that must suit any label set
    assert ("aug_conf", {"a_max": 0.5, "a_ramp": 0.0}) in names


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rte": 1}, "unknown key"),
        ({"losses": ["no_such_loss"]}, "unknown loss 'no_such_loss'"),
        ({"losses": ["kd", "kd"]}, "appear twice"),
        ({"losses": [{"name": "kd", "kd_temprature": 2}]}, "kd_temprature"),
        ({"losses": [{"name": "kd", "seed": 2}]}, "set by the harness"),
        ({"seeds": []}, "seeds"),
        ({"split_sizes": [1, 2]}, "split_sizes"),
        ({"weak_supervisors": [{"name": "n", "source": "noisy_labels"}]}, "label_noise_rate > 0"),
        ({"weak_supervisors": [{"name": "n", "label_noise_kind": "diagonal"}]}, "label_noise_kind"),
        ({"weak_supervisors": [{"name": "n", "wdith": 3}]}, "wdith"),
    ],
)
def test_bad_config_is_refused_with_the_reason(tmp_path, change, message):
    cfg = tiny_config("hf_w2s:mnist", tmp_path / "out", **change)
    with pytest.raises(ValueError, match=message):
        load_experiment_config(write_yaml(tmp_path, cfg))


def test_out_of_range_knob_fails_before_compute(tmp_path, bands_dataset, capsys):
    cfg = tiny_config(bands_dataset, tmp_path / "out", losses=[{"name": "adapt_conf", "confidence_temperature": 0}])
    assert main(["--config", write_yaml(tmp_path, cfg)]) == 2
    assert "confidence_temperature must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_foreign_output_dir_is_never_touched(tmp_path, bands_dataset, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    cfg = tiny_config(bands_dataset, out)
    assert main(["--config", write_yaml(tmp_path, cfg)]) == 2
    assert "not an experiment directory" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_each_run_gets_its_knobs_and_report_to(tmp_path, bands_dataset):
    cfg = tiny_config(bands_dataset, tmp_path / "out", report_to=["tensorboard"], training={"learning_rate": 0.01},
                      losses=[{"name": "adapt_conf", "label": "T2", "confidence_temperature": 2.0,
                               "learning_rate": 0.002}, "kd"])
    exp = Experiment(ExperimentConfig(**cfg), log=lambda *_: None)
    t2, kd = exp.config.losses
    args = exp.training_config("adapt_conf", seed=3, run_dir=tmp_path / "r", args=exp.run_arguments(t2))
    assert (args.w2s_loss, args.seed, args.confidence_temperature, args.learning_rate) == ("adapt_conf", 3, 2.0, 0.002)
    assert args.report_to == ["tensorboard"] and args.eval_strategy == "epoch" and args.num_train_epochs == 5
    args = exp.training_config("kd", seed=0, run_dir=tmp_path / "r", args=exp.run_arguments(kd))
    assert args.learning_rate == 0.01 and args.confidence_temperature == 0.5
    assert exp.w2s_key(exp.config.weak_supervisors[0], t2, 0) != exp.w2s_key(exp.config.weak_supervisors[0], kd, 0)


# ----------------------------------------------------------------------------------------------------------------
# label noise and data selection


def test_corrupt_labels_is_exact_seeded_and_pure():
    labels = np.arange(1000) % 10
    original = labels.copy()
    sym = corrupt_labels(labels, 10, 0.3, "symmetric", seed=1)
    assert (sym != labels).sum() == 300  # exactly round(rate * N), never "flipped" onto itself
    assert np.array_equal(sym, corrupt_labels(labels, 10, 0.3, "symmetric", seed=1))
    assert not np.array_equal(sym, corrupt_labels(labels, 10, 0.3, "symmetric", seed=2))
    assert len(np.unique(sym[sym != labels])) == 10
    asym = corrupt_labels(labels, 10, 0.25, "asymmetric", seed=1)
    changed = asym != labels
    assert changed.sum() == 250 and np.array_equal(asym[changed], (labels[changed] + 1) % 10)
    assert np.array_equal(labels, original)
    assert np.array_equal(corrupt_labels(labels, 10, 0.0, "symmetric"), labels)
    with pytest.raises(ValueError, match="rate"):
        corrupt_labels(labels, 10, 1.5)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        corrupt_labels([0, 10], 10, 0.5)


def test_shots_per_class(bands_dataset):
    ds = load_from_disk(bands_dataset)
    few = shots_per_class(ds, 5, seed=0)
    assert np.bincount(few["label"]).tolist() == [5, 5, 5]
    assert few["label"] == shots_per_class(ds, 5, seed=0)["label"]
    with pytest.raises(ValueError, match="fewer than shots_per_class"):
        shots_per_class(ds, 100, seed=0)


def test_noisy_label_supervision_and_few_shot_weak(tmp_path, bands_dataset):
    cfg = tiny_config(bands_dataset, tmp_path / "out", weak_supervisors=[
        {"name": "noisy", "source": "noisy_labels", "label_noise_rate": 0.5, "label_noise_kind": "asymmetric"},
        {"name": "k2", "shots_per_class": 2, "epochs": 1, "width": 4},
    ])
    exp = Experiment(ExperimentConfig(**cfg), log=lambda *_: None)
    noisy = exp.supervisors.build(exp.config.weak_supervisors[0])
    truth = np.asarray(noisy.train_dataset["label"])
    weak = np.asarray(noisy.train_dataset["weak_label"])
    assert noisy.record["supervision_accuracy"] == pytest.approx(0.5)
    assert np.array_equal(weak[weak != truth], (truth[weak != truth] + 1) % 3)
    logits = np.asarray(noisy.train_dataset.with_format("numpy")["weak_logits"])
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    # supervision_logit 10: the softmax of 10 at the noisy label and 0 elsewhere, 3 classes
    assert np.array_equal(logits.argmax(-1), weak)
    np.testing.assert_allclose(probs.max(-1), np.exp(10) / (np.exp(10) + 2), rtol=1e-6)
    assert noisy.record["test_accuracy"] is None  # no model: no test predictions
    few = exp.supervisors.build(exp.config.weak_supervisors[1])
    assert few.record["num_train_examples"] == 6
    assert few.record["test_accuracy"] is not None


def test_given_weak_model_is_matched_by_label_names(tmp_path, bands_dataset):
    from hf_w2s.data.images import pixel_values_from_images
    from hf_w2s.modeling import build_model, tiny_image_processor

    # the weak model's names are a 3-cycle of the dataset's (a, b, c): not their own inverse
    weak_names = ["b", "c", "a"]
    cycled_model = build_model("linear", weak_names, image_size=8, num_channels=1, width=4, seed=0)
    tiny_image_processor(8, 1).save_pretrained(tmp_path / "weak")
    cycled_model.save_pretrained(tmp_path / "weak")
    cfg = tiny_config(bands_dataset, tmp_path / "out",
                      weak_supervisors=[{"name": "rev", "model": str(tmp_path / "weak")}])
    exp = Experiment(ExperimentConfig(**cfg), log=lambda *_: None)
    sup = exp.supervisors.build(exp.config.weak_supervisors[0])
    strong = exp.splits()["strong_train"]
    with torch.no_grad():
        raw = cycled_model(pixel_values=pixel_values_from_images(strong["image"], tiny_image_processor(8, 1))).logits
    logits = np.asarray(sup.train_dataset.with_format("numpy")["weak_logits"])
    columns = [weak_names.index(name) for name in ["a", "b", "c"]]  # the columns follow the dataset's names
    np.testing.assert_allclose(logits, raw.numpy()[:, columns], atol=1e-5)
    build_model("linear", ["a", "b", "z"], image_size=8, num_channels=1, width=4).save_pretrained(tmp_path / "other")
    tiny_image_processor(8, 1).save_pretrained(tmp_path / "other")
    exp.config.weak_supervisors[0].model = str(tmp_path / "other")
    with pytest.raises(ValueError, match=r"missing from the model '.*': \['c'\]"):
        exp.supervisors.build(exp.config.weak_supervisors[0])


# ----------------------------------------------------------------------------------------------------------------
# the sweep, end to end


def test_sweep_writes_results_report_and_resumes(tmp_path, bands_dataset):
    out = tmp_path / "out"
    cfg = tiny_config(bands_dataset, out)
    path = write_yaml(tmp_path, cfg)
    assert main(["--config", path]) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in records] == ["weak", "ceiling", "ceiling", "w2s", "w2s", "w2s", "w2s"]
    w2s = [r for r in records if r["kind"] == "w2s"]
    assert {(r["loss"], r["seed"]) for r in w2s} == {
        ("weak_hard", 0), ("aug_conf_fixed_a0.5", 0), ("weak_hard", 1), ("aug_conf_fixed_a0.5", 1)}
    fixed = [r for r in w2s if r["loss_name"] == "aug_conf"]
    assert all(r["mean_a"] == pytest.approx(0.5) for r in fixed)  # a = 0.5 from the first step: no ramp
    assert all(r["mean_a"] is None for r in w2s if r["loss_name"] == "weak_hard")
    assert all(len(r["test_predictions"]) == 40 for r in records)
    # the two seeds really differ, and each run's accuracy is what its predictions say
    test_labels = np.asarray(load_from_disk(next((out / "data").glob("splits-*")).as_posix())["test"]["label"])
    for r in records:
        assert r["test_accuracy"] == pytest.approx(np.mean(np.asarray(r["test_predictions"]) == test_labels))
    assert records[1]["test_predictions"] != records[2]["test_predictions"]
    report = (out / "report" / "report.md").read_text()
    assert "| weak_hard |" in report and "| aug_conf_fixed_a0.5 |" in report and "strong ceiling" in report
    for name in ("accuracy.png", "pgr.png", "curves.png"):
        data = (out / "report" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

    # a second run skips every finished run and trains nothing
    log = []
    exp = Experiment(load_experiment_config(path), log=log.append)
    with ForwardCounter("ResNetForImageClassification") as strong, ForwardCounter(
            "ConvNextForImageClassification") as weak:
        exp.run()
    assert strong.calls == 0 and weak.calls == 0
    assert all("skipped" in line for line in log)
    assert len((out / "results.jsonl").read_text().splitlines()) == 7

    # a new seed reuses the saved weak model and its cached weak labels (no weak forward pass at all)
    log = []
    exp = Experiment(load_experiment_config(path, ["--seeds", "[0, 1, 2]"]), log=log.append)
    with ForwardCounter("ConvNextForImageClassification") as weak:
        exp.run()
    assert weak.calls == 0
    assert not any("training weak supervisor" in line for line in log)
    assert sum("skipped" not in line for line in log) == 3  # ceiling + two students for seed 2
    assert len(exp.results()) == 10


class Killed(BaseException):
    """Stands for the process being killed (not an ``Exception``, like ``KeyboardInterrupt``)."""


def test_interrupted_sweep_resumes_without_partial_results(tmp_path, bands_dataset, monkeypatch):
    out = tmp_path / "out"
    config = ExperimentConfig(**tiny_config(bands_dataset, out, seeds=[0]))
    calls, kill_at = [], [2]
    real = Experiment._strong_run

    def flaky(self, *args, **kwargs):
        calls.append(kwargs.get("loss"))
        if len(calls) in kill_at:
            raise Killed  # killed during the first student
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Experiment, "_strong_run", flaky)
    with pytest.raises(Killed):
        Experiment(config, log=lambda *_: None).run()
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["weak", "ceiling"]
    with open(out / "results.jsonl", "a") as f:
        f.write('{"key": "cut short by a cra')  # a write interrupted mid-line
    calls.clear()
    kill_at.clear()
    Experiment(config, log=lambda *_: None).run()
    assert calls == ["weak_hard", "aug_conf"]  # only the runs not finished before
    store = ResultStore(out / "results.jsonl")
    assert [r["kind"] for r in store.load().values()] == ["weak", "ceiling", "w2s", "w2s"]


def test_w2s_runs_never_see_true_labels_unless_the_loss_asks(tmp_path, bands_dataset, monkeypatch):
    seen = {}

    def fake_run(self, key, kind, train, *, seed, loss, spec, run_dir, extra, **_):
        seen[spec.label if spec else kind] = train.column_names
        return {"key": key, "kind": kind, "seed": seed, **extra, "test_accuracy": 0.5, "mean_a": None,
                "test_predictions": [0] * 40, "train_seconds": 0.0, "log_history": [],
                "validation_accuracy": 0.5}

    monkeypatch.setattr(Experiment, "_strong_run", fake_run)
    cfg = tiny_config(bands_dataset, tmp_path / "out", seeds=[0],
                      losses=["kd", {"name": "kd", "label": "kd+gt", "gt_loss_weight": 1.0}, "ground_truth"])
    Experiment(ExperimentConfig(**cfg), log=lambda *_: None).run()
    assert "label" not in seen["kd"] and "weak_logits" in seen["kd"]
    assert "label" in seen["kd+gt"] and "label" in seen["ground_truth"] and "label" in seen["ceiling"]


def test_transfer_pretrains_the_strong_model_once(tmp_path, bands_dataset):
    other = make_bands(tmp_path / "other", seed=1)  # other images: pre-training on the experiment's own is refused
    cfg = tiny_config(bands_dataset, tmp_path / "out", seeds=[0], losses=["weak_hard"],
                      strong_model={"arch": "resnet", "width": 4, "depth": 1, "pretrain_dataset": other,
                                    "pretrain_epochs": 1})
    log = []
    exp = Experiment(ExperimentConfig(**cfg), log=log.append)
    exp.run()
    assert sum("pre-training the strong model" in line for line in log) == 1
    inits = list((tmp_path / "out" / "strong_init").glob("*/model/config.json"))
    assert len(inits) == 1
    # every run starts from the pre-trained body with a freshly initialised head
    from transformers import AutoModelForImageClassification

    pretrained = AutoModelForImageClassification.from_pretrained(inits[0].parent)
    student, _ = exp.strong_model(0)
    body = "resnet.embedder.embedder.convolution.weight"
    assert torch.equal(student.state_dict()[body], pretrained.state_dict()[body])
    assert not torch.equal(student.classifier[1].weight, pretrained.classifier[1].weight)


# ----------------------------------------------------------------------------------------------------------------
# the report's arithmetic


def test_report_means_std_pgr_and_agreement_by_hand(tmp_path):
    config = ExperimentConfig(output_dir=str(tmp_path), weak_supervisors=[{"name": "w"}], losses=["kd"],
                              seeds=[0, 1])
    key_of = {"weak": {"w": "kw"}, "ceiling": {"default": {0: "c0", 1: "c1"}},
              "w2s": {("w", "kd"): {"default": {0: "s0", 1: "s1"}}}}
    results = [
        {"key": "kw", "kind": "weak", "test_accuracy": 0.8, "test_predictions": [0, 1, 2, 3],
         "num_train_examples": 500},
        {"key": "c0", "kind": "ceiling", "seed": 0, "test_accuracy": 0.9, "validation_accuracy": 0.92,
         "test_predictions": [0, 1, 2, 0]},
        {"key": "c1", "kind": "ceiling", "seed": 1, "test_accuracy": 1.0, "validation_accuracy": 0.96,
         "test_predictions": [0, 1, 0, 0]},
        {"key": "s0", "kind": "w2s", "seed": 0, "test_accuracy": 0.85, "validation_accuracy": 0.8,
         "test_predictions": [0, 1, 2, 3], "mean_a": 0.2},
        {"key": "s1", "kind": "w2s", "seed": 1, "test_accuracy": 0.9, "validation_accuracy": 0.9,
         "test_predictions": [0, 0, 0, 3], "mean_a": 0.4},
    ]
    (summary,) = summarize(config, results, key_of)
    row = summary.rows[0]
    # PGR with the mean ceiling 0.95: 0.05 / 0.15 and 0.10 / 0.15
    assert row.pgrs == pytest.approx([1 / 3, 2 / 3])
    assert row.agreements == [1.0, 0.5]
    # paired with the ceiling of the same seed: 0.85 - 0.9 and 0.9 - 1.0
    assert row.to_ceiling == pytest.approx([-0.05, -0.10])
    text = markdown(config, [summary])
    # validation 85.0 ± 7.1, test 87.5 ± 3.5 (sample std of 85, 90), Δ ceiling -7.5 ± 3.5 points, PGR 0.50 ± 0.24,
    # agreement 75.0 ± 35.4, mean a 0.300 ± 0.141
    assert "| kd | – | 85.0 ± 7.1 | 87.5 ± 3.5 | -7.5 ± 3.5 | 0.50 ± 0.24 | 75.0 ± 35.4 | 0.300 ± 0.141 | 2 |" in text
    assert "| strong ceiling (ground truth) | – | 94.0 ± 2.8 | 95.0 ± 7.1 | 0 | 1 | 62.5 ± 17.7 | – | 2 |" in text
    assert "| weak supervisor | – | – | 80.0 | – | 0 | 100.0 | – | 1 |" in text
    assert "Everything chosen in this report is chosen on the validation split" in text
    assert "nothing is chosen on it" in text
    # a seed whose ceiling is missing is left out of the paired column only
    (partial,) = summarize(config, [r for r in results if r["key"] != "c1"], key_of)
    assert partial.rows[0].to_ceiling == pytest.approx([-0.05]) and len(partial.rows[0].accuracies) == 2


def test_report_keeps_the_candidate_chosen_on_validation_not_on_test(tmp_path):
    config = ExperimentConfig(output_dir=str(tmp_path), weak_supervisors=[{"name": "w"}], seeds=[0, 1],
                              selection_seeds=[0], ceiling=False,
                              losses=[{"name": "adapt_conf", "label": "ac", "candidates": [
                                  {"label": "T0.5", "confidence_temperature": 0.5},
                                  {"label": "T4", "confidence_temperature": 4.0}]}])
    key_of = {"weak": {"w": "kw"}, "ceiling": {},
              "w2s": {("w", "ac"): {"T0.5": {0: "a0", 1: "a1"}, "T4": {0: "b0", 1: "b1"}}}}
    results = [
        {"key": "kw", "kind": "weak", "test_accuracy": 0.5, "test_predictions": None},
        # T0.5 is better on validation (seed 0), T4 on test: the report must keep T0.5
        {"key": "a0", "seed": 0, "validation_accuracy": 0.9, "test_accuracy": 0.7, "test_predictions": None},
        {"key": "b0", "seed": 0, "validation_accuracy": 0.8, "test_accuracy": 0.95, "test_predictions": None},
        {"key": "a1", "seed": 1, "validation_accuracy": 0.85, "test_accuracy": 0.75, "test_predictions": None},
    ]
    (summary,) = summarize(config, results, key_of)
    row = summary.rows[0]
    assert row.candidate == "T0.5" and row.accuracies == [0.7, 0.75] and row.validation == [0.9, 0.85]
    text = markdown(config, [summary])
    assert "| ac | T0.5 | 87.5 ± 3.5 | 72.5 ± 3.5 |" in text
    assert "T0.5: 90.0 % (chosen), T4: 80.0 %" in text
    # choosing by validation loss instead: the lower loss wins
    config.selection_metric = "loss"
    for r, loss in zip(results[1:], (0.4, 0.3, 0.5)):
        r["validation_loss"] = loss
    (summary,) = summarize(config, results, key_of)
    assert summary.rows[0].candidate == "T4"


# ----------------------------------------------------------------------------------------------------------------
# the recipes


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_experiment_recipe_is_valid(path, tmp_path, capsys):
    assert main(["--config", str(path), "--output_dir", str(tmp_path / "o"), "--dry_run"]) == 0
    assert "results in" in capsys.readouterr().out


# one end-to-end run per scenario (the transfer scenario in its pure W2S variant; the paper variant's config is
# checked by test_every_experiment_recipe_is_valid)
END_TO_END = sorted(RECIPES.glob("*_digits_tiny.yaml"))


# the checks of these twins read only their weak_hard students, and the benchmark twin's its best student (the other
# losses run in the other twins, and every entry of every config is validated by test_every_experiment_recipe_is_valid);
# the ground-truth ceiling runs where a check reads it (benchmark, distillation)
TWIN_OVERRIDES = {"few_shot_supervisor_digits_tiny.yaml": ["--losses", "[weak_hard]", "--ceiling", "false"],
                  "noisy_labels_digits_tiny.yaml": ["--losses", "[weak_hard]", "--ceiling", "false"],
                  "transfer_digits_tiny.yaml": ["--ceiling", "false"],
                  "benchmark_digits_tiny.yaml": ["--losses", "[weak_hard,adapt_conf]"]}


@pytest.mark.parametrize("path", END_TO_END, ids=lambda p: p.name)
def test_offline_twin_runs_end_to_end(path, tmp_path, capsys):
    """Each scenario's tiny offline twin, as a user runs it (the output directory moved, and the losses the checks do
    not read left out where a twin has several supervisors): every run finishes, the report has one row per loss and
    supervisor, and the three plots, and the scenario's own check holds (SCENARIO_CHECKS)."""
    out = tmp_path / "out"
    overrides = ["--output_dir", str(out), *TWIN_OVERRIDES.get(path.name, [])]
    assert main(["--config", str(path), *overrides]) == 0
    printed = capsys.readouterr().out
    config = load_experiment_config(str(path), overrides)
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    n_weak, n_seeds, n_losses = len(config.weak_supervisors), len(config.seeds), len(config.losses)
    assert len(records) == n_weak + n_seeds * config.ceiling + n_weak * n_seeds * n_losses
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in records if r["test_accuracy"] is not None)
    report = (out / "report" / "report.md").read_text()
    assert report.strip() in printed.replace("\r", "")  # the table is printed too
    for loss in config.losses:
        assert f"| {loss.label} |" in report
    for name in ("accuracy.png", "pgr.png", "curves.png"):
        assert (out / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    SCENARIO_CHECKS[path.name.removesuffix("_tiny.yaml")](records, config)


def _by_kind(records, kind):
    return [r for r in records if r["kind"] == kind]


def _weak(records):
    return {r["weak"]: r for r in _by_kind(records, "weak")}


def _students(records):
    return {(r["weak"], r["loss"]): r for r in _by_kind(records, "w2s")}


def _check_benchmark(records, config):
    # a weak supervisor from 30 labelled digits: well above chance (0.1) and well below the ground-truth ceiling
    (weak,), (ceiling,) = _weak(records).values(), _by_kind(records, "ceiling")
    assert 0.4 < weak["test_accuracy"] < ceiling["test_accuracy"] - 0.1
    # the students learn its labels: the best one is far above chance and within reach of its supervisor
    best = max(r["test_accuracy"] for r in _by_kind(records, "w2s"))
    assert best > 0.5 and best > weak["test_accuracy"] - 0.1


def _check_distillation(records, config):
    # ground truth plus a teacher: every student is close to the ground-truth ceiling, far above chance
    (ceiling,) = _by_kind(records, "ceiling")
    assert ceiling["test_accuracy"] > 0.8
    for r in _by_kind(records, "w2s"):
        assert r["test_accuracy"] > ceiling["test_accuracy"] - 0.1, r["loss"]


def _check_few_shot(records, config):
    # the more shots per class the supervisor saw, the better it is; each saw exactly k images of each class
    weak = _weak(records)
    accs = [weak[f"{k}-shot"]["test_accuracy"] for k in (1, 5, 10)]
    assert accs[0] < accs[1] < accs[2] and accs[0] > 0.2, accs
    students = _students(records)
    assert students[("1-shot", "weak_hard")]["test_accuracy"] < students[("10-shot", "weak_hard")]["test_accuracy"]


def _check_noisy(records, config):
    # the supervision is the ground truth with exactly the configured noise rate
    weak = _weak(records)
    assert weak["symmetric-0.4"]["supervision_accuracy"] == pytest.approx(0.6)
    assert weak["asymmetric-0.3"]["supervision_accuracy"] == pytest.approx(0.7)
    # a student trained on 40 % symmetric noise beats its supervision: the noise averages out, the digits do not
    students = _students(records)
    assert students[("symmetric-0.4", "weak_hard")]["test_accuracy"] > 0.6 + 0.05


def _check_transfer(records, config):
    # a student pre-trained on MNIST: the runs finish and the supervisor is well above chance (the tiny students
    # themselves are a smoke test: measured at chance, see docs/testing.md)
    (weak,) = _weak(records).values()
    assert weak["test_accuracy"] > 0.5
    assert all(r["test_accuracy"] is not None for r in _by_kind(records, "w2s"))


SCENARIO_CHECKS = {"benchmark_digits": _check_benchmark, "distillation_digits": _check_distillation,
                   "few_shot_supervisor_digits": _check_few_shot, "noisy_labels_digits": _check_noisy,
                   "transfer_digits": _check_transfer}
