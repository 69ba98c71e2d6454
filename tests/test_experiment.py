"""The one runner (``hf_w2s.Experiment``: ``hf-w2s experiment``, ``train`` and ``demo``): its config, the runs it
plans and their training arguments, the supervision it builds, the results it keeps and resumes from, its report and
the experiment recipes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_from_disk
from testing_utils import (
    ForwardCounter,
    experiment,
    require_matplotlib,
    run_cli,
    saved_bands,
    stub_strong_runs,
    tiny_experiment,
    write_yaml,
)

from hf_w2s import load_config
from hf_w2s.data import shots_per_class
from hf_w2s.data.noise import corrupt_labels
from hf_w2s.experiment import Experiment, ExperimentConfig, ResultStore
from hf_w2s.experiment.config import FIXED_MIX, weak_losses
from hf_w2s.experiment.report import markdown, summarize

RECIPES = Path(__file__).resolve().parent.parent / "recipes" / "experiments"


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """240 learnable 8x8 images of three classes, saved to disk (testing_utils.band_dataset)."""
    return saved_bands(tmp_path_factory.mktemp("bands") / "ds")


def sweep(dataset, out, **over) -> dict:
    """Two losses (one of them the fixed-mix AugConf) x two seeds."""
    return tiny_experiment(dataset, out, **{"losses": ["weak_hard", dict(FIXED_MIX)], "seeds": [0, 1], **over})


# ----------------------------------------------------------------------------------------------------------------
# config


def test_config_file_then_command_line_words(tmp_path, pool):
    cfg = tiny_experiment(pool, tmp_path / "out",
                          losses=["kd", {"name": "adapt_conf", "confidence_temperature": 2.0}, "all"])
    c = load_config(write_yaml(tmp_path / "exp.yaml", cfg),
                    argv=["--learning_rate", "1e-2", "--seeds", "3", "4", "--model_name_or_path",
                          "tiny:resnet,width=6,depth=1"])
    assert c.training.learning_rate == 0.01 and isinstance(c.training.learning_rate, float)  # the words win
    assert c.training.num_train_epochs == 1 and c.data.split_sizes == [50, 110, 40, 40]  # the rest of the file
    assert c.experiment.seeds == [3, 4] and c.model.model_name_or_path == "tiny:resnet,width=6,depth=1"
    assert {"learning_rate", "num_train_epochs", "eval_strategy"} <= c.given and "weight_decay" not in c.given
    labels = [spec.label for spec in c.experiment.losses]
    assert labels[:2] == ["kd", "adapt_conf[confidence_temperature=2.0]"]
    assert labels[2:] == [n for n in weak_losses() if n != "kd"] and "ground_truth" not in labels
    assert c.experiment.losses[1].knobs == {"confidence_temperature": 2.0}
    # a structured option on the command line: each word read as YAML
    c = load_config(values=cfg, argv=["--losses", "weak_hard", "{name: kd, label: kd2, kd_temperature: 2}"])
    assert [(s.name, s.label, s.knobs) for s in c.experiment.losses] == [
        ("weak_hard", "weak_hard", {}), ("kd", "kd2", {"kd_temperature": 2})]


def test_default_losses_cover_the_registry_and_the_fixed_mix():
    names = [(s.name, s.knobs) for s in ExperimentConfig().losses]
    for name in ("weak_hard", "weak_soft", "kd", "aug_conf", "aux_conf_multiclass", "product", "adapt_conf"):
        assert (name, {}) in names
    assert ("aux_conf", {}) not in names  # OpenAI's binary loss: not in a default that must suit any label set
    assert ("aug_conf", {"a_max": 0.5, "a_ramp": 0.0}) in names


@pytest.mark.parametrize(
    "change, message",
    [
        ({"learning_rte": 1}, r"unknown keys in the options: \['learning_rte'\]"),
        ({"losses": ["no_such_loss"]}, "unknown loss 'no_such_loss'"),
        ({"losses": ["kd", "kd"]}, "appear twice"),
        ({"losses": [{"name": "kd", "kd_temprature": 2}]}, "kd_temprature"),
        ({"losses": [{"name": "kd", "seed": 2}]}, r"seed is set by the runner for each run \(use seeds\)"),
        ({"seed": 2}, "seed is set by the runner for each run: use seeds"),
        ({"w2s_loss": "kd"}, "w2s_loss is set by the runner for each run: use losses"),
        ({"seeds": []}, "seeds must be a non-empty list"),
        ({"split_sizes": [1, 2]}, "needs four: weak_train, strong_train, validation, test"),
        ({"weak_supervisors": [{"name": "n", "source": "noisy_labels"}]}, "label_noise_rate > 0"),
        ({"weak_supervisors": [{"name": "n", "label_noise_kind": "diagonal"}]}, "label_noise_kind"),
        ({"weak_supervisors": [{"name": "n", "wdith": 3}]}, "wdith"),
        # the keys of hf_w2s 0.2: refused, naming what replaced them
        ({"strong_model": {"arch": "resnet"}}, "the key 'strong_model' is gone in hf_w2s 0.3: use model_name_or_path"),
        ({"training": {"learning_rate": 1}}, "'training' is gone in hf_w2s 0.3: use top-level keys"),
        ({"weak_supervisors": [{"name": "n", "epochs": 3}]}, "'epochs' is gone in hf_w2s 0.3: use num_train_epochs"),
        ({"weak_supervisors": [{"name": "n", "source": "noisy_labels", "label_noise_rate": 0.2,
                                "supervision_logit": 10}]}, "use label_noise_confidence"),
    ],
)
def test_bad_config_is_refused_with_the_reason(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        experiment(tiny_experiment("hf_w2s:mnist", tmp_path / "out", **change))
    assert not (tmp_path / "out").exists()


def test_out_of_range_knob_fails_before_compute(tmp_path, pool, capsys):
    cfg = tiny_experiment(pool, tmp_path / "out", losses=[{"name": "adapt_conf", "confidence_temperature": 0}])
    code, _, err = run_cli(["experiment", "--config", write_yaml(tmp_path / "exp.yaml", cfg)], capsys)
    assert code == 2 and "confidence_temperature must be > 0" in err, err
    assert not (tmp_path / "out").exists()


def test_foreign_output_dir_is_never_touched(tmp_path, pool, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("precious")
    code, _, err = run_cli(["experiment", "--config", write_yaml(tmp_path / "exp.yaml", tiny_experiment(pool, out))],
                           capsys)
    assert code == 2 and "is not empty and holds no w2s_config.yaml" in err, err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_each_run_gets_its_knobs_its_seed_and_report_to(tmp_path, pool):
    cfg = tiny_experiment(pool, tmp_path / "out", report_to=["tensorboard"], learning_rate=0.01, losses=[
        {"name": "adapt_conf", "label": "T2", "confidence_temperature": 2.0, "learning_rate": 0.002}, "kd"])
    exp = experiment(cfg)
    t2, kd = exp.config.losses
    args = exp.run_args("adapt_conf", seed=3, run_dir=tmp_path / "r", overrides=exp.row_arguments(t2), with_eval=True)
    assert (args.w2s_loss, args.seed, args.confidence_temperature, args.learning_rate) == ("adapt_conf", 3, 2.0, 0.002)
    assert args.report_to == ["tensorboard"] and args.eval_strategy == "epoch" and args.num_train_epochs == 1
    assert args.output_dir == str(tmp_path / "r") and args.save_strategy == "no"  # the runner's mechanics
    args = exp.run_args("kd", seed=0, run_dir=tmp_path / "r", overrides=exp.row_arguments(kd), with_eval=True)
    assert args.learning_rate == 0.01 and args.confidence_temperature == 0.5  # the config's, and the default
    w = exp.config.weak_supervisors[0]
    assert exp.w2s_key(w, t2, 0) != exp.w2s_key(w, kd, 0) != exp.w2s_key(w, kd, 1)
    # a weak supervisor trains with its own arguments, on ground truth, without evaluation or checkpoints
    weak = exp.weak_args(w, tmp_path / "w")
    assert (weak.num_train_epochs, weak.per_device_train_batch_size, weak.learning_rate) == (2, 16, 3e-3)
    assert (weak.w2s_loss, str(weak.eval_strategy.value), weak.report_to) == ("ground_truth", "no", ["tensorboard"])


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


def test_shots_per_class(pool):
    ds = load_from_disk(pool)
    few = shots_per_class(ds, 5, seed=0)
    assert np.bincount(few["label"]).tolist() == [5, 5, 5]
    assert few["label"] == shots_per_class(ds, 5, seed=0)["label"]
    with pytest.raises(ValueError, match="fewer than shots_per_class"):
        shots_per_class(ds, 100, seed=0)


def test_noisy_label_supervision_and_few_shot_weak(tmp_path, pool):
    exp = experiment(tiny_experiment(pool, tmp_path / "out", weak_supervisors=[
        {"name": "noisy", "source": "noisy_labels", "label_noise_rate": 0.5, "label_noise_kind": "asymmetric",
         "label_noise_confidence": 0.8},
        {"name": "k2", "model": "tiny:linear,width=4", "shots_per_class": 2, "num_train_epochs": 1},
    ]))
    noisy = exp.supervisors.build(exp.config.weak_supervisors[0])
    truth = np.asarray(noisy.train_dataset["label"])
    weak = np.asarray(noisy.train_dataset["weak_label"])
    assert noisy.record["supervision_accuracy"] == pytest.approx(0.5)
    assert np.array_equal(weak[weak != truth], (truth[weak != truth] + 1) % 3)
    logits = np.asarray(noisy.train_dataset.with_format("numpy")["weak_logits"])
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    assert np.array_equal(logits.argmax(-1), weak)
    np.testing.assert_allclose(probs.max(-1), 0.8, rtol=1e-6)  # label_noise_confidence: the softmax at the label
    assert noisy.record["test_accuracy"] is None  # no model: no test predictions
    few = exp.supervisors.build(exp.config.weak_supervisors[1])
    assert few.record["num_train_examples"] == 6  # 2 shots x 3 classes
    assert few.record["test_accuracy"] is not None


def test_given_weak_model_is_matched_by_label_names(tmp_path, pool):
    from hf_w2s.data.images import pixel_values_from_images
    from hf_w2s.modeling import build_model, tiny_image_processor

    # the weak model's names are a 3-cycle of the dataset's (a, b, c): not their own inverse
    weak_names = ["b", "c", "a"]
    cycled_model = build_model("linear", weak_names, image_size=8, num_channels=1, width=4, seed=0)
    tiny_image_processor(8, 1).save_pretrained(tmp_path / "weak")
    cycled_model.save_pretrained(tmp_path / "weak")
    exp = experiment(tiny_experiment(pool, tmp_path / "out", weak_supervisors=[
        {"name": "rev", "model": str(tmp_path / "weak")}]))
    assert exp.config.weak_supervisors[0].source == "model"  # a checkpoint: used as it is
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
    with pytest.raises(ValueError, match=r"missing from the model .*\['c'\]"):
        exp.supervisors.build(exp.config.weak_supervisors[0])


# ----------------------------------------------------------------------------------------------------------------
# the sweep, end to end


@require_matplotlib
def test_sweep_writes_results_report_and_resumes(tmp_path, pool, capsys):
    out = tmp_path / "out"
    path = write_yaml(tmp_path / "exp.yaml", sweep(pool, out, plots=True))
    code, printed, err = run_cli(["experiment", "--config", path], capsys)
    assert code == 0, err
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
    assert report.strip() in printed  # the report is printed too
    assert "| weak_hard |" in report and "| aug_conf_fixed_a0.5 |" in report and "strong ceiling" in report
    for name in ("accuracy.png", "pgr.png", "curves.png"):
        data = (out / "report" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    # the saved student is the student run with the best validation accuracy, with its card
    saved = json.loads((out / "student" / "w2s_results.json").read_text())
    best = max(w2s, key=lambda r: r["validation_accuracy"])
    assert saved["key"] == best["key"] and saved["accuracy"] == best["test_accuracy"]
    assert (out / "student" / "model.safetensors").exists() and (out / "student" / "README.md").exists()

    # a second run skips every finished run and trains nothing
    log = []
    exp = experiment(sweep(pool, out, plots=True), log=log.append)
    with ForwardCounter("ResNetForImageClassification") as strong, ForwardCounter(
            "ConvNextForImageClassification") as weak:
        exp.run()
    assert strong.calls == 0 and weak.calls == 0
    assert log and all("skipped" in line for line in log)
    assert len((out / "results.jsonl").read_text().splitlines()) == 7

    # a new seed reuses the saved weak model and its cached weak labels (no weak forward pass at all)
    log = []
    exp = experiment(sweep(pool, out), argv=["--seeds", "0", "1", "2"], log=log.append)
    with ForwardCounter("ConvNextForImageClassification") as weak:
        exp.run()
    assert weak.calls == 0
    assert not any("training weak supervisor" in line for line in log)
    assert sum("skipped" not in line for line in log) == 3  # ceiling + two students for seed 2
    assert len(exp.results()) == 10


class Killed(BaseException):
    """Stands for the process being killed (not an ``Exception``, like ``KeyboardInterrupt``)."""


def test_interrupted_sweep_resumes_without_partial_results(tmp_path, pool, monkeypatch):
    out = tmp_path / "out"
    cfg = sweep(pool, out, seeds=[0])
    calls, kill_at = [], [2]
    real = Experiment._strong_run

    def flaky(self, *args, **kwargs):
        calls.append(kwargs.get("loss"))
        if len(calls) in kill_at:
            raise Killed  # killed during the first student
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Experiment, "_strong_run", flaky)
    with pytest.raises(Killed):
        experiment(cfg).run()
    lines = (out / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["weak", "ceiling"]
    with open(out / "results.jsonl", "a") as f:
        f.write('{"key": "cut short by a cra')  # a write interrupted mid-line
    calls.clear()
    kill_at.clear()
    experiment(cfg).run()
    assert calls == ["weak_hard", "aug_conf"]  # only the runs not finished before
    store = ResultStore(out / "results.jsonl")
    assert [r["kind"] for r in store.load().values()] == ["weak", "ceiling", "w2s", "w2s"]


def test_w2s_runs_never_see_true_labels_unless_the_loss_asks(tmp_path, pool, monkeypatch):
    calls = stub_strong_runs(monkeypatch)
    experiment(tiny_experiment(pool, tmp_path / "out", losses=[
        "kd", {"name": "kd", "label": "kd+gt", "gt_loss_weight": 1.0}, "ground_truth"])).run()
    seen = {row: train.column_names for _, row, _, _, train in calls}
    assert "label" not in seen["kd"] and "weak_logits" in seen["kd"]
    assert "label" in seen["kd+gt"] and "label" in seen["ground_truth"] and "label" in seen["ceiling"]


def test_transfer_pretrains_the_strong_model_once(tmp_path, pool):
    other = saved_bands(tmp_path / "other", seed=1)  # other images: pre-training on the experiment's own is refused
    log = []
    exp = experiment(tiny_experiment(pool, tmp_path / "out", pretrain_dataset=other, pretrain_num_train_epochs=1),
                     log=log.append)
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
    # its own split's images are refused for pre-training
    exp = experiment(tiny_experiment(pool, tmp_path / "out2", pretrain_dataset=pool))
    with pytest.raises(ValueError, match="are also in 'validation'|are also in 'test'"):
        exp.run()


# ----------------------------------------------------------------------------------------------------------------
# the report's arithmetic


def _report_experiment(tmp_path, key_of: dict, **over):
    exp = experiment(tiny_experiment("hf_w2s:mnist", tmp_path / "o", weak_supervisors=[{"name": "w"}], **over))
    exp.keys_by_role = lambda: key_of  # the records below stand for these runs
    return exp


def test_report_means_std_pgr_and_agreement_by_hand(tmp_path):
    key_of = {"weak": {"w": "kw"}, "ceiling": {"default": {0: "c0", 1: "c1"}},
              "w2s": {("w", "kd"): {"default": {0: "s0", 1: "s1"}}}}
    exp = _report_experiment(tmp_path, key_of, losses=["kd"], seeds=[0, 1])
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
    (summary,) = summarize(exp, results)
    row = summary.rows[0]
    # PGR with the mean ceiling 0.95: 0.05 / 0.15 and 0.10 / 0.15
    assert row.pgrs == pytest.approx([1 / 3, 2 / 3])
    assert row.agreements == [1.0, 0.5]
    # paired with the ceiling of the same seed: 0.85 - 0.9 and 0.9 - 1.0
    assert row.to_ceiling == pytest.approx([-0.05, -0.10])
    text = markdown(exp, [summary])
    # validation 85.0 ± 7.1, test 87.5 ± 3.5 (sample std of 85, 90), Δ ceiling -7.5 ± 3.5 points, PGR 0.50 ± 0.24,
    # agreement 75.0 ± 35.4, mean a 0.300 ± 0.141
    assert "| kd | – | 85.0 ± 7.1 | 87.5 ± 3.5 | -7.5 ± 3.5 | 0.50 ± 0.24 | 75.0 ± 35.4 | 0.300 ± 0.141 | 2 |" in text
    assert "| strong ceiling (ground truth) | – | 94.0 ± 2.8 | 95.0 ± 7.1 | 0 | 1 | 62.5 ± 17.7 | – | 2 |" in text
    assert "| weak supervisor | – | – | 80.0 | – | 0 | 100.0 | – | 1 |" in text
    assert "Everything chosen in this report is chosen on the validation split" in text
    assert "nothing is chosen on it" in text
    # a seed whose ceiling is missing is left out of the paired column only
    (partial,) = summarize(exp, [r for r in results if r["key"] != "c1"])
    assert partial.rows[0].to_ceiling == pytest.approx([-0.05]) and len(partial.rows[0].accuracies) == 2


def test_report_keeps_the_candidate_chosen_on_validation_not_on_test(tmp_path):
    key_of = {"weak": {"w": "kw"}, "ceiling": {},
              "w2s": {("w", "ac"): {"T0.5": {0: "a0", 1: "a1"}, "T4": {0: "b0", 1: "b1"}}}}
    exp = _report_experiment(tmp_path, key_of, seeds=[0, 1], selection_seeds=[0], ceiling=False, losses=[
        {"name": "adapt_conf", "label": "ac", "candidates": [{"label": "T0.5", "confidence_temperature": 0.5},
                                                             {"label": "T4", "confidence_temperature": 4.0}]}])
    results = [
        {"key": "kw", "kind": "weak", "test_accuracy": 0.5, "test_predictions": None},
        # T0.5 is better on validation (seed 0), T4 on test: the report must keep T0.5
        {"key": "a0", "seed": 0, "validation_accuracy": 0.9, "test_accuracy": 0.7, "test_predictions": None},
        {"key": "b0", "seed": 0, "validation_accuracy": 0.8, "test_accuracy": 0.95, "test_predictions": None},
        {"key": "a1", "seed": 1, "validation_accuracy": 0.85, "test_accuracy": 0.75, "test_predictions": None},
    ]
    (summary,) = summarize(exp, results)
    row = summary.rows[0]
    assert row.candidate == "T0.5" and row.accuracies == [0.7, 0.75] and row.validation == [0.9, 0.85]
    text = markdown(exp, [summary])
    assert "| ac | T0.5 | 87.5 ± 3.5 | 72.5 ± 3.5 |" in text
    assert "T0.5: 90.0 % (chosen), T4: 80.0 %" in text
    # choosing by validation loss instead: the lower loss wins
    exp.config.selection_metric = "loss"
    for r, loss in zip(results[1:], (0.4, 0.3, 0.5)):
        r["validation_loss"] = loss
    (summary,) = summarize(exp, results)
    assert summary.rows[0].candidate == "T4"


# ----------------------------------------------------------------------------------------------------------------
# the recipes


@pytest.mark.parametrize("path", sorted(RECIPES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_experiment_recipe_is_valid(path, tmp_path, capsys):
    code, out, err = run_cli(["experiment", "--config", path, "--output_dir", tmp_path / "o", "--dry_run", "true"],
                             capsys)
    assert code == 0, err
    assert "results in" in out and not (tmp_path / "o").exists()  # a dry run writes nothing
    c = load_config(path)
    assert c.data.split_sizes[2] > 0 or c.data.validation_split  # a validation split
    assert str(c.training.eval_strategy.value) != "no"  # every strong run evaluates there


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


@require_matplotlib
@pytest.mark.parametrize("path", END_TO_END, ids=lambda p: p.name)
def test_offline_twin_runs_end_to_end(path, tmp_path, capsys):
    """Each scenario's tiny offline twin, as a user runs it (the output directory moved, and the losses the checks do
    not read left out where a twin has several supervisors): every run finishes, the report has one row per loss and
    supervisor, and the three plots, and the scenario's own check holds (SCENARIO_CHECKS)."""
    out = tmp_path / "out"
    overrides = ["--output_dir", str(out), *TWIN_OVERRIDES.get(path.name, [])]
    code, printed, err = run_cli(["experiment", "--config", path, *overrides], capsys)
    assert code == 0, err
    config = load_config(path, argv=overrides).experiment
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
    assert [weak[f"{k}-shot"]["num_train_examples"] for k in (1, 5, 10)] == [10, 50, 100]
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
