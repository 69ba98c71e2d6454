"""The validation protocol: every choice is made on a validation split, the test split is read once, and no example is
in two splits — in the one runner (``hf-w2s experiment``, ``hf-w2s train``)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, List, Value, load_from_disk
from testing_utils import (
    BAND_NAMES,
    band_dataset,
    experiment,
    require_kornia,
    run_cli,
    saved_bands,
    stub_strong_runs,
    tiny_experiment,
)

from hf_w2s.data.splits import check_disjoint, example_hashes
from hf_w2s.experiment import Experiment
from hf_w2s.experiment.report import markdown, summarize


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return saved_bands(tmp_path_factory.mktemp("pool") / "ds")


@pytest.fixture(scope="module")
def with_splits(tmp_path_factory):
    """A dataset with its own train / validation / test splits (different images in each)."""
    path = tmp_path_factory.mktemp("splits") / "ds"
    DatasetDict({"train": band_dataset(150, 0), "validation": band_dataset(60, 1), "test": band_dataset(60, 2)}
                ).save_to_disk(str(path))
    return str(path)


# ----------------------------------------------------------------------------------------------------------------
# configs that would choose on the test split are refused, with the reason


@pytest.mark.parametrize("change, message", [
    ({"split_sizes": [50, 110, 80]}, "needs four: weak_train, strong_train, validation, test"),
    ({"split_sizes": [50, 110, 0, 80]}, "the validation split.* is 0"),
    ({"load_best_model_at_end": True, "save_strategy": "epoch", "metric_for_best_model": "test_accuracy"},
     "would choose the checkpoint on the test split"),
    ({"load_best_model_at_end": True, "eval_strategy": "no"}, "requires the save and eval strategy to match"),
    ({"early_stopping_patience": 2, "eval_strategy": "no"}, "early_stopping_patience stops on the validation split"),
    ({"seeds": [0, 1], "selection_seeds": [2]}, "subset of seeds"),
    ({"losses": [{"name": "kd", "candidates": [{"label": "x", "kd_temperature": 2}, {"label": "x"}]}]},
     "distinct"),
    ({"losses": [{"name": "kd", "candidates": [{"kd_temprature": 2}]}]}, "kd_temprature"),
    ({"selection_metric": "test_accuracy"}, "selection_metric.*invalid choice"),
    ({"eval_dataset_split": "test"}, "eval_dataset_split is set by the runner for each run: use validation_split"),
    ({"validation_split": "test", "test_split": "test"}, "validation_split and test_split are both 'test'"),
    ({"weak_supervisors": [{"name": "n", "source": "noisy_labels", "label_noise_rate": 0.2, "online": True}]},
     "online needs a weak model"),
    ({"weak_supervisors": [{"name": "n", "source": "noisy_labels", "label_noise_rate": 0.2,
                            "label_noise_transition": [1, 2, 0]}]}, "asymmetric only"),
])
def test_a_config_that_would_choose_on_test_is_refused(tmp_path, pool, change, message):
    with pytest.raises(ValueError, match=message):
        experiment(tiny_experiment(pool, tmp_path / "o", **change))
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------------------------------------------
# no example in two splits, whatever the source


def test_packaged_and_single_pool_sources_refuse_a_split_name(tmp_path, pool):
    with pytest.raises(ValueError, match="hf_w2s:sklearn_digits is a single pool of examples without splits"):
        experiment(tiny_experiment("hf_w2s:sklearn_digits", tmp_path / "o", test_split="test"))
    exp = experiment(tiny_experiment(pool, tmp_path / "o", test_split="test"))
    with pytest.raises(ValueError, match="single pool of examples without splits, so it has no split 'test'"):
        exp.splits()
    assert not list((tmp_path / "o" / "data").glob("splits-*"))


def test_check_disjoint_finds_a_shared_image_by_content():
    a, b = band_dataset(30, 0), band_dataset(30, 1)
    check_disjoint({"x": a, "y": b})  # different images: fine
    # the same image in another row of another dataset (re-encoded through PIL: same pixels, same bytes)
    leaked = Dataset.from_dict({"image": [b[3]["image"], a[7]["image"]], "label": [0, 1]}, features=a.features)
    assert example_hashes(leaked)[1] == example_hashes(a)[7]
    with pytest.raises(ValueError, match=r"1 example\(s\) of 'x' \(30 examples\) are also in 'test'"):
        check_disjoint({"x": a, "test": leaked})


def test_a_weak_label_dataset_holding_test_images_is_refused(tmp_path, pool):
    exp = experiment(tiny_experiment(pool, tmp_path / "o"))
    test, strong = exp.splits()["test"], exp.splits()["strong_train"]
    leaky = Dataset.from_dict(
        {"image": list(strong["image"][:20]) + list(test["image"][:5]), "label": [0] * 25,
         "weak_logits": [[1.0, 0.0, 0.0]] * 25},
        features=Features({"image": Image(), "label": ClassLabel(names=BAND_NAMES),
                           "weak_logits": List(Value("float32"), length=3)}))
    leaky.save_to_disk(str(tmp_path / "weak"))
    exp = experiment(tiny_experiment(pool, tmp_path / "o2", weak_supervisors=[  # beside another supervisor, it
        {"name": "given", "weak_labels": str(tmp_path / "weak")}, {"name": "lin", "model": "tiny:linear,width=4"}]))
    with pytest.raises(ValueError, match=r"5 example\(s\) of 'weak_labels' .* are also in 'test'"):
        exp.supervisors.build(exp.config.weak_supervisors[0])  # supervises its own rows: refused


def test_weak_labels_giving_the_strong_split_never_train_on_a_test_image(tmp_path, pool):
    # as the only supervision, a weak-labels dataset's rows are the strong split, less those the carved validation and
    # test splits take (the weak labels of a whole pool, as hf-w2s label writes them)
    from hf_w2s import DataConfig
    from hf_w2s.data.config import build_splits

    carved = build_splits(DataConfig(dataset=pool, split_sizes=[0, 110, 40, 40]))
    test, validation = (set(example_hashes(carved[name])) for name in ("test", "validation"))
    ours = band_dataset(240)  # the pool's images
    hashes = example_hashes(ours)
    rows = [i for i, h in enumerate(hashes) if h not in test | validation][:20] + [
        i for i, h in enumerate(hashes) if h in test][:5]
    ours.select(rows).add_column("weak_logits", [[1.0, 0.0, 0.0]] * 25, feature=List(Value("float32"), length=3)
                                 ).save_to_disk(str(tmp_path / "weak"))
    exp = experiment(tiny_experiment(pool, tmp_path / "o", weak_supervisors=[
        {"name": "given", "weak_labels": str(tmp_path / "weak")}]))
    assert set(example_hashes(exp.splits()["test"])) == test  # carved as without weak labels (no weak_train needed)
    strong = exp.supervisors.build(exp.config.weak_supervisors[0]).train_dataset
    assert len(strong) == 20 and not (test | validation) & set(example_hashes(strong))


def test_a_hub_dataset_whose_test_split_repeats_training_images_is_refused(local_hub, hub_token, tmp_path):
    rng = np.random.default_rng(0)
    from PIL import Image as PILImage

    ims = [PILImage.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)) for _ in range(60)]
    features = Features({"image": Image(), "label": ClassLabel(names=BAND_NAMES)})
    train = Dataset.from_dict({"image": ims[:50], "label": [i % 3 for i in range(50)]}, features=features)
    # the Hub dataset's test split repeats two of its training images
    test = Dataset.from_dict({"image": ims[50:] + ims[:2], "label": [i % 3 for i in range(12)]}, features=features)
    repo = local_hub.new_repo_id("leaky")
    DatasetDict({"train": train, "test": test}).push_to_hub(repo)
    exp = experiment(tiny_experiment(repo, tmp_path / "out", test_split="test", split_sizes=[10, 30, 10, 0]))
    with pytest.raises(ValueError, match=r"2 example\(s\) of .* are also in 'test'"):
        exp.splits()
    assert not list((tmp_path / "out" / "data").glob("splits-*"))  # nothing was written for a refused split


# ----------------------------------------------------------------------------------------------------------------
# checkpoints and candidates are chosen on validation


def _spy_fit(monkeypatch) -> list:
    """Every training of the runner: ``(its arguments, its training dataset, its evaluation dataset)`` (the
    preflight's trainers, built on a batch and never trained, left out)."""
    seen, real = [], Experiment.fit

    def spy(self, model, processor, train, args, **kw):
        if not kw.get("build_only"):
            seen.append((args, train, kw.get("eval_dataset")))
        return real(self, model, processor, train, args, **kw)

    monkeypatch.setattr(Experiment, "fit", spy)
    return seen


def test_load_best_model_at_end_chooses_the_checkpoint_on_validation(tmp_path, pool, monkeypatch):
    seen = _spy_fit(monkeypatch)
    exp = experiment(tiny_experiment(pool, tmp_path / "o", ceiling=False, num_train_epochs=4,
                                     per_device_train_batch_size=16, learning_rate=0.05,
                                     load_best_model_at_end=True, save_strategy="epoch"))
    exp.run()
    splits = exp.splits()
    assert [ds is None for _, _, ds in seen] == [True, False]  # the weak supervisor trains without evaluation
    student_eval = seen[1][2]
    assert example_hashes(student_eval) == example_hashes(splits["validation"])
    assert not set(example_hashes(student_eval)) & set(example_hashes(splits["test"]))
    (record,) = [r for r in exp.results() if r["kind"] == "w2s"]
    evals = [(e["step"], e["eval_accuracy"]) for e in record["log_history"] if "eval_accuracy" in e]
    assert len(evals) == 4
    best_step, best_acc = max(evals, key=lambda e: (e[1], -e[0]))  # the first of the best (transformers' rule)
    # the model kept is the best checkpoint on validation, whose figure the final model reproduces
    assert record["best_checkpoint_step"] == best_step
    assert record["validation_accuracy"] == pytest.approx(best_acc)
    labels = np.asarray(splits["test"]["label"])
    assert record["test_accuracy"] == pytest.approx(np.mean(np.asarray(record["test_predictions"]) == labels))


def test_candidates_are_chosen_on_validation_and_only_the_chosen_one_runs_on_other_seeds(tmp_path, pool,
                                                                                          monkeypatch):
    # T4 is better on validation, T0.5 on test: the choice must follow validation
    figures = {"T0.5": (0.5, 0.99), "T4": (0.9, 0.2)}
    calls = stub_strong_runs(monkeypatch, lambda kind, label, seed: figures.get(label, (0.8, 0.8)))
    exp = experiment(tiny_experiment(pool, tmp_path / "o", seeds=[0, 1, 2], selection_seeds=[1], losses=[
        {"name": "adapt_conf", "label": "ac", "candidates": [{"label": "T0.5", "confidence_temperature": 0.5},
                                                             {"label": "T4", "confidence_temperature": 4.0}]}]))
    exp.run()
    students = [(label, seed) for kind, _, label, seed, _ in calls if kind == "w2s"]
    assert students == [("T0.5", 1), ("T4", 1), ("T4", 0), ("T4", 2)]
    (summary,) = summarize(exp, exp.results())
    row = summary.rows[0]
    assert row.candidate == "T4" and row.accuracies == [0.2, 0.2, 0.2]
    assert "| ac | T4 | 90.0 ± 0.0 | 20.0 ± 0.0 |" in markdown(exp, [summary])
    assert len(exp.results()) == 1 + 3 + 4  # weak, 3 ceilings, 4 students: nothing else ran


# ----------------------------------------------------------------------------------------------------------------
# the paper's transfer setting: the weak model online on the student's augmented, mixed batch


@require_kornia
def test_online_weak_logits_are_a_weak_forward_on_the_students_augmented_mixed_batch(tmp_path, pool, monkeypatch):
    import hf_w2s.trainer.trainer as trainer_module
    from hf_w2s.data.images import pixel_values_from_images
    from hf_w2s.modeling import load_image_classifier, tiny_image_processor

    captured, pixel_batches, step = [], [], {}
    real_loss = trainer_module.compute_w2s_loss

    def spy_loss(name, student_logits, weak_logits=None, labels=None, **kw):
        # a step of the run's student (no grad in evaluation; the preflight's student is not watched)
        if student_logits.requires_grad and name != "ground_truth" and step.pop("watched", False):
            captured.append((weak_logits.detach().clone(), kw.get("label_mix"), kw.get("label_smoothing")))
        return real_loss(name, student_logits, weak_logits, labels, **kw)

    monkeypatch.setattr(trainer_module, "compute_w2s_loss", spy_loss)
    real_model = Experiment.strong_model

    def strong_model(self, seed, **kw):
        model, processor = real_model(self, seed, **kw)
        if not kw.get("pretrained", True):
            return model, processor  # the preflight's student, one step on one batch

        def hook(module, args, kwargs):
            if module.training:
                pixel_batches.append(kwargs["pixel_values"].detach().clone())
                step["watched"] = True

        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model, processor

    monkeypatch.setattr(Experiment, "strong_model", strong_model)
    exp = experiment(tiny_experiment(
        pool, tmp_path / "o", ceiling=False, mixup_alpha=0.8, label_smoothing_factor=0.1,
        augmentation={"RandomAffine": {"degrees": 20, "translate": [0.2, 0.2], "p": 1.0}},
        weak_supervisors=[{"name": "lin", "model": "tiny:linear,width=4", "num_train_epochs": 2,
                           "per_device_train_batch_size": 16, "online": True}],
        losses=[{"name": "kd", "label": "gt+kd", "gt_loss_weight": 1.0}]))
    exp.run()
    assert len(captured) == len(pixel_batches) == 4  # 110 examples, batch 32
    weak = load_image_classifier(str(next((tmp_path / "o" / "weak").glob("*/model")))).eval()
    clean = pixel_values_from_images(exp.splits()["strong_train"]["image"], tiny_image_processor(8, 1))
    for (weak_logits, label_mix, smoothing), pixels in zip(captured, pixel_batches):
        with torch.no_grad():
            by_hand = weak(pixel_values=pixels).logits
        torch.testing.assert_close(weak_logits, by_hand, atol=1e-5, rtol=1e-5)
        # the batch the weak model saw is the augmented, mixed one, not clean images
        assert not any(torch.allclose(pixels[0], row, atol=1e-4) for row in clean)
        lam, perm = label_mix  # the true labels of the ground-truth term are mixed like the images
        assert lam.shape == (len(pixels),) and bool(((lam >= 0) & (lam <= 1)).all()) and float(lam.std()) > 0
        assert sorted(perm.tolist()) == list(range(len(pixels)))
        assert smoothing == pytest.approx(0.1)


def test_cifar10_semantic_flips_in_the_experiment_config(tmp_path, pool):
    exp = experiment(tiny_experiment(pool, tmp_path / "o", weak_supervisors=[
        {"name": "flip", "source": "noisy_labels", "label_noise_rate": 0.6, "label_noise_kind": "asymmetric",
         "label_noise_transition": [2, 1, 0]}]))  # a <-> c, b stays
    sup = exp.supervisors.build(exp.config.weak_supervisors[0])
    truth = np.asarray(sup.train_dataset["label"])
    weak = np.asarray(sup.train_dataset["weak_label"])
    changed = weak != truth
    assert changed.any() and np.array_equal(weak[changed], np.asarray([2, 1, 0])[truth[changed]])
    assert not changed[truth == 1].any()


# ----------------------------------------------------------------------------------------------------------------
# hf-w2s train: evaluation and the best checkpoint on a validation split, the test split read once


def _train(dataset, out, *extra) -> list[str]:
    return ["train", "--dataset", dataset, "--output_dir", out, "--image_size", "8", "--model_name_or_path",
            "tiny:resnet,width=4,depth=1", "--weak_supervisors",
            "{name: noisy, source: noisy_labels, label_noise_rate: 0.2}", "--losses", "weak_hard", "--ceiling", "false",
            "--num_train_epochs", "2", "--per_device_train_batch_size", "32", "--report_to", "none", "--use_cpu",
            "true", "--plots", "false", *map(str, extra)]


@pytest.mark.parametrize("argv, match", [
    (["--split_sizes", "0", "100", "0", "40"], r"split_sizes\[2\] \(the validation split\) is 0"),
    (["--split_sizes", "0", "100", "0", "0", "--validation_split", "test", "--test_split", "test"],
     "validation_split and test_split are both 'test'"),
    (["--split_sizes", "0", "100", "40", "40", "--eval_strategy", "epoch", "--save_strategy", "epoch",
      "--load_best_model_at_end", "true", "--metric_for_best_model", "test_accuracy"], "on the test split"),
])
def test_train_refuses_to_evaluate_or_choose_on_test(argv, match, tmp_path, with_splits, capsys):
    code, _, err = run_cli(_train(with_splits, tmp_path / "s", *argv), capsys)
    assert code == 2 and err.startswith("hf-w2s train: error:") and re.search(match, err), err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("validation", [["--split_sizes", "0", "100", "0", "0", "--validation_split", "validation",
                                         "--test_split", "test"],
                                        ["--split_sizes", "0", "80", "40", "30", "--train_split", "train"]],
                         ids=["the dataset's own validation split", "carved from its training split"])
def test_train_evaluates_and_chooses_the_checkpoint_on_validation(validation, tmp_path, with_splits, monkeypatch,
                                                                  capsys):
    seen = _spy_fit(monkeypatch)
    out = tmp_path / "s"
    argv = _train(with_splits, out, *validation, "--eval_strategy", "epoch", "--save_strategy", "epoch",
                  "--load_best_model_at_end", "true")
    code, printed, err = run_cli(argv, capsys)
    assert code == 0, err
    (args, train, evaluated), = [s for s in seen if s[0].run_name.startswith("student")]
    splits = load_from_disk(str(next((out / "data").glob("splits-*"))))
    val, trained, tested = (set(example_hashes(d)) for d in (evaluated, train, splits["test"]))
    assert val == set(example_hashes(splits["validation"]))
    assert len(val) == (60 if "validation" in validation else 40) and not val & trained and not val & tested
    assert args.load_best_model_at_end and str(args.metric_for_best_model) in ("accuracy", "eval_accuracy")
    card = (out / "student" / "README.md").read_text()
    assert f"validation: {len(val)} examples" in card  # the card says where the run chose
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["accuracy"] == json.loads((out / "student" / "w2s_results.json").read_text())["accuracy"]
