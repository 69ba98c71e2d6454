"""The validation protocol (issue 13): every choice is made on a validation split, the test split is read once, and
no example is in two splits — in the experiment harness (``hf-w2s experiment``) and in ``hf-w2s train``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, List, Value

from hf_w2s.cli import main as cli_main
from hf_w2s.data.splits import check_disjoint, example_hashes
from hf_w2s.experiment import Experiment
from hf_w2s.experiment.config import ExperimentConfig, load_experiment_config
from hf_w2s.experiment.report import markdown, summarize

NAMES = ["a", "b", "c"]


def bands(seed: int = 0, n: int = 240) -> Dataset:
    """``n`` 8×8 grayscale images of 3 classes (a bright band at rows 2c..2c+1, plus noise)."""
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        c = i % 3
        im = rng.integers(0, 90, size=(8, 8))
        im[2 * c: 2 * c + 2] += 160
        images.append(PILImage.fromarray(im.clip(0, 255).astype(np.uint8)))
        labels.append(c)
    return Dataset.from_dict({"image": images, "label": labels},
                             features=Features({"image": Image(), "label": ClassLabel(names=NAMES)}))


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "ds"
    bands().save_to_disk(str(path))
    return str(path)


def tiny(dataset: str, out, **over) -> dict:
    cfg = {
        "output_dir": str(out), "dataset": dataset, "split_sizes": [50, 110, 40, 40], "image_size": 8,
        "weak_supervisors": [{"name": "lin", "arch": "linear", "width": 4, "epochs": 2, "batch_size": 16}],
        "strong_model": {"arch": "resnet", "width": 4, "depth": 1},
        "training": {"num_train_epochs": 1, "per_device_train_batch_size": 32, "logging_steps": 1},
        "losses": ["weak_hard"], "seeds": [0],
    }
    cfg.update(over)
    return cfg


def quiet(*_):
    return None


# ----------------------------------------------------------------------------------------------------------------
# configs that would choose on the test split are refused, with the reason


@pytest.mark.parametrize("change, message", [
    ({"split_sizes": [50, 110, 80]}, "needs four: weak_train, strong_train, validation, test"),
    ({"split_sizes": [50, 110, 0, 80]}, "the validation split.* is 0"),
    ({"training": {"load_best_model_at_end": True, "metric_for_best_model": "test_accuracy"}}, "on the test split"),
    ({"training": {"load_best_model_at_end": True}, "eval_during_training": False}, "needs eval_during_training"),
    ({"early_stopping_patience": 2, "eval_during_training": False}, "needs eval_during_training"),
    ({"seeds": [0, 1], "selection_seeds": [2]}, "subset of seeds"),
    ({"losses": [{"name": "kd", "candidates": [{"label": "x", "kd_temperature": 2}, {"label": "x"}]}]},
     "distinct"),
    ({"losses": [{"name": "kd", "candidates": [{"kd_temprature": 2}]}]}, "kd_temprature"),
    ({"selection_metric": "test_accuracy"}, "selection_metric"),
    ({"weak_supervisors": [{"name": "n", "source": "noisy_labels", "label_noise_rate": 0.2, "online": True}]},
     "online needs a weak model"),
    ({"weak_supervisors": [{"name": "n", "source": "noisy_labels", "label_noise_rate": 0.2,
                            "label_noise_transition": [1, 2, 0]}]}, "asymmetric only"),
])
def test_a_config_that_would_choose_on_test_is_refused(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig(**tiny("hf_w2s:mnist", tmp_path / "o", **change))


def test_every_shipped_experiment_config_has_a_validation_split():
    for path in sorted((Path(__file__).resolve().parent.parent / "recipes" / "experiments").glob("*.yaml")):
        config = load_experiment_config(str(path), ["--output_dir", "/tmp/unused"])
        assert config.split_sizes[2] > 0 and config.eval_during_training, path.name


# ----------------------------------------------------------------------------------------------------------------
# no example in two splits, whatever the source


def test_packaged_and_single_pool_sources_refuse_a_split_name(tmp_path, pool):
    for source in ("hf_w2s:sklearn_digits", pool):
        config = ExperimentConfig(**tiny(source, tmp_path / "o", test_split="test"))
        with pytest.raises(ValueError, match="single pool of examples without splits, so it has no split 'test'"):
            Experiment(config, log=quiet).splits()


def test_check_disjoint_finds_a_shared_image_by_content():
    a, b = bands(0, 30), bands(1, 30)
    check_disjoint({"x": a, "y": b})  # different images: fine
    # the same image in another row of another dataset (re-encoded through PIL: same pixels, same bytes)
    leaked = Dataset.from_dict({"image": [b[3]["image"], a[7]["image"]], "label": [0, 1]},
                               features=a.features)
    assert example_hashes(leaked)[1] == example_hashes(a)[7]
    with pytest.raises(ValueError, match=r"1 example\(s\) of 'x' \(30 examples\) are also in 'test'"):
        check_disjoint({"x": a, "test": leaked})


def test_a_weak_label_dataset_holding_test_images_is_refused(tmp_path, pool):
    exp = Experiment(ExperimentConfig(**tiny(pool, tmp_path / "o")), log=quiet)
    test = exp.splits()["test"]
    strong = exp.splits()["strong_train"]
    leaky = Dataset.from_dict(
        {"image": list(strong["image"][:20]) + list(test["image"][:5]), "label": [0] * 25,
         "weak_logits": [[1.0, 0.0, 0.0]] * 25},
        features=Features({"image": Image(), "label": ClassLabel(names=NAMES),
                           "weak_logits": List(Value("float32"), length=3)}))
    leaky.save_to_disk(str(tmp_path / "weak"))
    config = ExperimentConfig(**tiny(pool, tmp_path / "o2", weak_supervisors=[
        {"name": "given", "weak_labels": str(tmp_path / "weak")}]))
    exp = Experiment(config, log=quiet)
    with pytest.raises(ValueError, match=r"5 example\(s\) of 'weak_labels' .* are also in 'test'"):
        exp.supervisors.build(config.weak_supervisors[0])


HUB_LEAK = '''
import numpy as np
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
from PIL import Image as PILImage

rng = np.random.default_rng(0)
ims = [PILImage.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)) for _ in range(60)]
features = Features({{"image": Image(), "label": ClassLabel(names=["a", "b", "c"])}})
train = Dataset.from_dict({{"image": ims[:50], "label": [i % 3 for i in range(50)]}}, features=features)
# the Hub dataset's test split repeats two of its training images
test = Dataset.from_dict({{"image": ims[50:] + ims[:2], "label": [i % 3 for i in range(12)]}}, features=features)
DatasetDict({{"train": train, "test": test}}).push_to_hub("{repo}")

from hf_w2s.experiment import Experiment, ExperimentConfig
config = ExperimentConfig(output_dir="{out}", dataset="{repo}", test_split="test", split_sizes=[10, 30, 10, 0],
                          image_size=8, losses=["weak_hard"])
try:
    Experiment(config, log=lambda *_: None).splits()
    emit({{"error": None}})
except ValueError as err:
    emit({{"error": str(err)}})
'''


def test_a_hub_dataset_whose_test_split_repeats_training_images_is_refused(local_hub, tmp_path):
    repo = local_hub.new_repo_id("leaky")
    run = local_hub.run_python(HUB_LEAK.format(repo=repo, out=tmp_path / "out"))
    error = run.result["error"]
    assert error is not None and "are also in 'test'" in error, error
    assert not list((tmp_path / "out" / "data").glob("splits-*"))  # nothing was written for a refused split


# ----------------------------------------------------------------------------------------------------------------
# checkpoints and candidates are chosen on validation


def test_load_best_model_at_end_chooses_the_checkpoint_on_validation(tmp_path, pool, monkeypatch):
    import hf_w2s.experiment.runner as runner

    seen = []
    real_fit = runner.fit

    def spy(model, args, train, **kw):
        seen.append(kw.get("eval_dataset"))
        return real_fit(model, args, train, **kw)

    monkeypatch.setattr(runner, "fit", spy)
    cfg = tiny(pool, tmp_path / "o", ceiling=False, training={
        "num_train_epochs": 4, "per_device_train_batch_size": 16, "learning_rate": 0.05, "logging_steps": 1,
        "load_best_model_at_end": True})
    exp = Experiment(ExperimentConfig(**cfg), log=quiet)
    exp.run()
    splits = exp.splits()
    student_eval = [ds for ds in seen if ds is not None]
    assert len(student_eval) == 1  # the weak supervisor trains without evaluation; the student on validation
    assert example_hashes(student_eval[0]) == example_hashes(splits["validation"])
    assert not set(example_hashes(student_eval[0])) & set(example_hashes(splits["test"]))
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
    calls = []

    def fake_run(self, key, kind, train, *, seed, loss, spec, run_dir, extra, candidate=None, **_):
        label = candidate["label"]
        calls.append((kind, label, seed))
        # T4 is better on validation, T0.5 on test: the choice must follow validation
        val, test = {"T0.5": (0.5, 0.99), "T4": (0.9, 0.2)}.get(label, (0.8, 0.8))
        return {"key": key, "kind": kind, "seed": seed, **extra, "candidate": label, "validation_accuracy": val,
                "validation_loss": 1 - val, "test_accuracy": test, "mean_a": None, "test_predictions": None,
                "train_seconds": 0.0, "log_history": []}

    monkeypatch.setattr(Experiment, "_strong_run", fake_run)
    cfg = tiny(pool, tmp_path / "o", seeds=[0, 1, 2], selection_seeds=[1], losses=[
        {"name": "adapt_conf", "label": "ac", "candidates": [{"label": "T0.5", "confidence_temperature": 0.5},
                                                             {"label": "T4", "confidence_temperature": 4.0}]}])
    exp = Experiment(ExperimentConfig(**cfg), log=quiet)
    exp.run()
    students = [c for c in calls if c[0] == "w2s"]
    assert students == [("w2s", "T0.5", 1), ("w2s", "T4", 1), ("w2s", "T4", 0), ("w2s", "T4", 2)]
    (summary,) = summarize(exp.config, exp.results(), exp._keys_by_role())
    row = summary.rows[0]
    assert row.candidate == "T4" and row.accuracies == [0.2, 0.2, 0.2]
    assert "| ac | T4 | 90.0 ± 0.0 | 20.0 ± 0.0 |" in markdown(exp.config, [summary])
    assert len(exp.results()) == 1 + 3 + 4  # weak, 3 ceilings, 4 students: nothing else ran


# ----------------------------------------------------------------------------------------------------------------
# the paper's transfer setting: the weak model online on the student's augmented, mixed batch


def test_online_weak_logits_are_a_weak_forward_on_the_students_augmented_mixed_batch(tmp_path, pool, monkeypatch):
    import hf_w2s.trainer.trainer as trainer_module

    captured, pixel_batches = [], []
    real_loss = trainer_module.compute_w2s_loss

    def spy_loss(name, student_logits, weak_logits=None, labels=None, **kw):
        if student_logits.requires_grad and name != "ground_truth":  # a student step (no grad in evaluation)
            captured.append((weak_logits.detach().clone(), kw.get("label_mix"), kw.get("label_smoothing")))
        return real_loss(name, student_logits, weak_logits, labels, **kw)

    monkeypatch.setattr(trainer_module, "compute_w2s_loss", spy_loss)
    real_model = Experiment.strong_model

    def strong_model(self, seed):
        model, processor = real_model(self, seed)

        def hook(module, args, kwargs):
            if module.training:
                pixel_batches.append(kwargs["pixel_values"].detach().clone())

        model.register_forward_pre_hook(hook, with_kwargs=True)
        return model, processor

    monkeypatch.setattr(Experiment, "strong_model", strong_model)
    cfg = tiny(pool, tmp_path / "o", ceiling=False, mixup_alpha=0.8,
               augmentation={"RandomAffine": {"degrees": 20, "translate": [0.2, 0.2], "p": 1.0}},
               weak_supervisors=[{"name": "lin", "arch": "linear", "width": 4, "epochs": 2, "batch_size": 16,
                                  "online": True}],
               training={"num_train_epochs": 1, "per_device_train_batch_size": 32, "label_smoothing_factor": 0.1},
               losses=[{"name": "kd", "label": "gt+kd", "gt_loss_weight": 1.0}])
    exp = Experiment(ExperimentConfig(**cfg), log=quiet)
    exp.run()
    assert len(captured) == len(pixel_batches) == 4  # 110 examples, batch 32
    from hf_w2s.modeling import load_image_classifier

    weak_dir = next((tmp_path / "o" / "weak").glob("*/model"))
    weak = load_image_classifier(str(weak_dir)).eval()
    from hf_w2s.data.images import pixel_values_from_images
    from hf_w2s.modeling import tiny_image_processor

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
    cfg = tiny(pool, tmp_path / "o", weak_supervisors=[
        {"name": "flip", "source": "noisy_labels", "label_noise_rate": 0.6, "label_noise_kind": "asymmetric",
         "label_noise_transition": [2, 1, 0]}])  # a <-> c, b stays
    exp = Experiment(ExperimentConfig(**cfg), log=quiet)
    sup = exp.supervisors.build(exp.config.weak_supervisors[0])
    truth = np.asarray(sup.train_dataset["label"])
    weak = np.asarray(sup.train_dataset["weak_label"])
    changed = weak != truth
    assert changed.any() and np.array_equal(weak[changed], np.asarray([2, 1, 0])[truth[changed]])
    assert not changed[truth == 1].any()


# ----------------------------------------------------------------------------------------------------------------
# hf-w2s train: evaluation and the best checkpoint on a validation split, the test split read once


TRAIN = ["--model_name_or_path", "tiny:resnet,width=4,depth=1", "--dataset_name", "hf_w2s:sklearn_digits",
         "--image_size", "8", "--dataset_train_split", "strong_train", "--label_noise_rate", "0.2", "--w2s_loss",
         "weak_hard", "--num_train_epochs", "2",
         "--per_device_train_batch_size", "64", "--disable_tqdm", "true", "--report_to", "none"]


@pytest.mark.parametrize("argv, match", [
    (["--split_sizes", "100", "500", "300", "--eval_strategy", "epoch"], "need a validation split"),
    (["--split_sizes", "100", "500", "300", "--eval_strategy", "no", "--load_best_model_at_end", "true",
      "--save_strategy", "no"], "need a validation split"),
    (["--split_sizes", "100", "400", "100", "300", "--dataset_validation_split", "test", "--eval_strategy",
      "epoch"], "both 'test'"),
    (["--split_sizes", "100", "500", "300", "--validation_size", "0.1", "--dataset_validation_split", "x"],
     "not both"),
])
def test_train_refuses_to_evaluate_or_choose_on_test(argv, match, tmp_path, capsys):
    assert cli_main(["train", *TRAIN, "--output_dir", str(tmp_path / "s"), *argv]) == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("validation", [["--split_sizes", "100", "400", "100", "300", "--dataset_validation_split",
                                         "validation"],
                                        ["--split_sizes", "100", "500", "300", "--validation_size", "100"]])
def test_train_evaluates_and_chooses_the_checkpoint_on_validation(validation, tmp_path, monkeypatch):
    import hf_w2s.recipe.runner as recipe_runner

    seen = {}
    real = recipe_runner.StudentRecipe._fit

    def spy(self, model, args, train, processor, collator, eval_dataset=None, **kw):
        if args.run_name and args.run_name.startswith("student"):
            seen["eval"], seen["train"], seen["test"] = eval_dataset, train, self.eval_ds
        return real(self, model, args, train, processor, collator, eval_dataset=eval_dataset, **kw)

    monkeypatch.setattr(recipe_runner.StudentRecipe, "_fit", spy)
    out = tmp_path / "s"
    argv = [*TRAIN, *validation, "--output_dir", str(out), "--eval_strategy", "epoch", "--save_strategy", "epoch",
            "--load_best_model_at_end", "true", "--metric_for_best_model", "accuracy"]
    assert cli_main(["train", *argv]) == 0
    val, train, test = (set(example_hashes(seen[k])) for k in ("eval", "train", "test"))
    assert len(val) == 100 and not val & train and not val & test and len(test) == 300
    results = json.loads((out / "w2s_results.json").read_text())
    assert results["validation"]["examples"] == 100
    card = (out / "README.md").read_text()
    assert "validation: " in card and "100 examples" in card  # the card says where the run chose
