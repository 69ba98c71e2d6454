"""Several weak supervisors: combination math, datasets with several logits columns, and the trainer integration."""

import math
import os

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset
from PIL import Image
from testing_utils import experiment, saved_bands, tiny_experiment

from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer
from hf_w2s.data.multi_weak import (
    label_dataset_multi,
    merge_weak_label_datasets,
    stack_weak_logits,
    supervisor_accuracies,
)
from hf_w2s.data.weak_labels import label_dataset, weak_logits_array
from hf_w2s.experiment import Experiment, ExperimentConfig
from hf_w2s.modeling import build_model, tiny_image_processor
from hf_w2s.trainer import WEAK_COMBINER_NAME
from hf_w2s.trainer.collator import WeakToStrongCollator
from hf_w2s.trainer.combiner import WeakCombiner, accuracy_weights, combine_weak_logits, supervisors_agree, weights_nll

LN3 = math.log(3.0)
# supervisor 0 says [0.75, 0.25], supervisor 1 says [0.25, 0.75]
TWO = torch.tensor([[[LN3, 0.0], [0.0, LN3]]])


# ----------------------------------------------------------------------------------------------------------------
# pure functions


def test_combine_is_a_mixture_of_probabilities():
    out = combine_weak_logits(TWO, torch.tensor([0.75, 0.25]))
    # 0.75 * [0.75, 0.25] + 0.25 * [0.25, 0.75] = [0.625, 0.375]
    assert torch.allclose(out.exp(), torch.tensor([[0.625, 0.375]]), atol=1e-6)
    # temperatures: supervisor 0 at T = ln3 / ln(1/0.1 - 1)... simpler: T = 1/2 doubles the logit -> [0.9, 0.1]
    out_t = combine_weak_logits(TWO, torch.tensor([1.0, 0.0]), torch.tensor([0.5, 1.0]))
    assert torch.allclose(out_t.exp(), torch.tensor([[0.9, 0.1]]), atol=1e-6)
    with pytest.raises(ValueError, match="2 supervisors but \\(3,\\) weights"):
        combine_weak_logits(TWO, torch.ones(3) / 3)
    with pytest.raises(ValueError, match="\\(batch, supervisors, classes\\)"):
        combine_weak_logits(TWO[0], torch.ones(2) / 2)


def test_accuracy_weights_above_chance():
    # 10 classes: above chance 0.8, 0.5, 0.0 -> 8/13, 5/13, 0
    w = accuracy_weights([0.9, 0.6, 0.1], num_classes=10)
    assert torch.allclose(w, torch.tensor([8 / 13, 5 / 13, 0.0]))
    with pytest.raises(ValueError, match="no supervisor is above chance"):
        accuracy_weights([0.5, 0.4], num_classes=2)
    with pytest.raises(ValueError, match="numbers in \\[0, 1\\]"):
        accuracy_weights([1.2], num_classes=2)


def test_supervisors_agree():
    stacked = torch.tensor([[[1.0, 0.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    assert supervisors_agree(stacked).tolist() == [True, False]


def test_weights_nll_hand_value_and_direction():
    student = torch.tensor([[5.0, 0.0]])  # predicts class 0
    theta = torch.zeros(2, requires_grad=True)
    nll = weights_nll(TWO, torch.softmax(theta, 0), student)
    assert nll.item() == pytest.approx(-math.log(0.5 * 0.75 + 0.5 * 0.25))
    nll.backward()
    # descending the gradient raises the weight of supervisor 0, the one that agrees with the student
    assert theta.grad[0] < 0 < theta.grad[1]


def test_combiner_modes_and_gradients():
    mean = WeakCombiner(2)
    assert torch.allclose(mean(TWO).exp(), torch.tensor([[0.5, 0.5]]))
    acc = WeakCombiner(2, "accuracy", accuracies=[0.9, 0.6], num_classes=2)
    assert torch.allclose(acc.weights(), torch.tensor([0.4 / 0.5, 0.1 / 0.5]))
    learned = WeakCombiner(2, "learned")
    assert learned.learnable and [n for n, _ in learned.named_parameters()] == ["logit_weights"]
    # the supervision the loss sees carries no gradient to the weights; their own objective does
    assert not learned(TWO).requires_grad
    learned.weight_loss(TWO, torch.tensor([[0.0, 5.0]])).backward()
    assert learned.logit_weights.grad[1] < 0
    # the learned weights are a softmax of their parameters: pi_k = exp(theta_k) / sum_j exp(theta_j)
    three = WeakCombiner(3, "learned")
    theta = [1.0, 0.0, -1.5]
    with torch.no_grad():
        three.logit_weights.copy_(torch.tensor(theta))
    z = sum(math.exp(t) for t in theta)
    assert three.weights().tolist() == pytest.approx([math.exp(t) / z for t in theta], rel=1e-6)
    with pytest.raises(ValueError, match="needs each supervisor's accuracy"):
        WeakCombiner(2, "accuracy")
    with pytest.raises(ValueError, match="weak_combination must be one of"):
        WeakCombiner(2, "median")
    with pytest.raises(ValueError, match="batch has 2 supervisors, the combiner 3"):
        WeakCombiner(3)(TWO)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"weak_combination": "median"}, "weak_combination must be one of"),
        ({"weak_logits_columns": ["a", "a"]}, "distinct columns"),
        ({"weak_logits_columns": ["a", "b"], "weak_combination": "accuracy"}, "needs weak_accuracies"),
        ({"weak_logits_columns": ["a", "b"], "weak_accuracies": [0.9]}, "1 values for 2"),
        ({"weak_accuracies": [0.9]}, "weak_logits_columns is not"),
        ({"weak_logits_columns": ["a"], "weak_temperatures": [0.0]}, r"weak_temperatures\[0\] must be > 0"),
        ({"weak_agreement_warmup": -0.1}, "weak_agreement_warmup must be within"),
        ({"weak_weights_learning_rate": 0.0}, "weak_weights_learning_rate must be > 0"),
    ],
)
def test_config_validation(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        WeakToStrongConfig(output_dir=str(tmp_path), report_to="none", **bad)


# ----------------------------------------------------------------------------------------------------------------
# datasets with several logits columns


def _images(n=6, seed=0):
    rng = np.random.default_rng(seed)
    ims = [Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8), mode="L") for _ in range(n)]
    return Dataset.from_dict({"image": ims, "label": rng.integers(0, 3, n).tolist(), "id": list(range(n))})


def test_label_dataset_multi_matches_single_calls_and_reorders_by_name():
    ds, proc = _images(), tiny_image_processor(8)
    names = ["a", "b", "c"]
    m0 = build_model("linear", names, image_size=8, width=4, seed=0)
    m1 = build_model("linear", names, image_size=8, width=4, seed=1)
    # m1 with its classes in another order (rows of the classifier permuted, id2label likewise)
    m1p = build_model("linear", ["c", "a", "b"], image_size=8, width=4, seed=1)
    m1p.load_state_dict(m1.state_dict())
    with torch.no_grad():
        m1p.classifier.weight.copy_(m1.classifier.weight[[2, 0, 1]])
        m1p.classifier.bias.copy_(m1.classifier.bias[[2, 0, 1]])
    out = label_dataset_multi(ds, [m0, m1p], proc, batch_size=4)
    assert out.column_names == ["image", "label", "id", "weak_logits_0", "weak_logits_1", "image_hash"]
    single0 = weak_logits_array(label_dataset(ds, m0, proc))
    single1 = weak_logits_array(label_dataset(ds, m1, proc))
    np.testing.assert_allclose(weak_logits_array(out, "weak_logits_0"), single0, rtol=1e-6)
    np.testing.assert_allclose(weak_logits_array(out, "weak_logits_1"), single1, rtol=1e-5, atol=1e-6)
    assert stack_weak_logits(out, ["weak_logits_0", "weak_logits_1"]).shape == (6, 2, 3)
    acc = supervisor_accuracies(out, ["weak_logits_0", "weak_logits_1"])
    assert acc[0] == pytest.approx(float((single0.argmax(-1) == np.asarray(ds["label"])).mean()))
    with pytest.raises(ValueError, match="missing from the weak model 1"):
        label_dataset_multi(ds, [m0, build_model("linear", ["a", "b", "z"], image_size=8, width=4)], proc)
    with pytest.raises(ValueError, match="2 image processors for 1 weak models"):
        label_dataset_multi(ds, [m0], [proc, proc])
    with pytest.raises(ValueError, match="already has column"):
        label_dataset_multi(out, [m0], proc, columns=["weak_logits_0"])


def _weak_labelled(ds, logits):
    return ds.add_column("weak_logits", logits.tolist())


def test_merge_weak_label_datasets_checks_rows():
    base = Dataset.from_dict({"id": [10, 11, 12], "label": [0, 1, 0]})
    a, b = np.eye(2, dtype=np.float32)[[0, 1, 1]], np.eye(2, dtype=np.float32)[[1, 1, 0]]
    merged = merge_weak_label_datasets([_weak_labelled(base, a), _weak_labelled(base, b)])
    assert merged.column_names == ["id", "label", "weak_logits_0", "weak_logits_1"]
    np.testing.assert_array_equal(stack_weak_logits(merged, ["weak_logits_0", "weak_logits_1"]), np.stack([a, b], 1))
    shuffled = Dataset.from_dict({"id": [10, 12, 11], "label": [0, 0, 1]})
    with pytest.raises(ValueError, match="row 1 in column 'id'"):
        merge_weak_label_datasets([_weak_labelled(base, a), _weak_labelled(shuffled, b)])
    with pytest.raises(ValueError, match="differ in length"):
        merge_weak_label_datasets([_weak_labelled(base, a), _weak_labelled(base.select([0, 1]), b[:2])])
    no_ids = Dataset.from_dict({"x": [1, 2, 3]})
    with pytest.raises(ValueError, match="cannot check that the datasets hold the same rows"):
        merge_weak_label_datasets([_weak_labelled(no_ids, a), _weak_labelled(no_ids, b)])
    assert len(merge_weak_label_datasets([_weak_labelled(no_ids, a), _weak_labelled(no_ids, b)], match_columns=[])) == 3
    # datasets written by label_dataset know their label names: a dataset in another order is aligned by name
    named = _weak_labelled(base, a).add_column("weak_label", [0, 1, 1], feature=ClassLabel(names=["x", "y"]))
    swapped = _weak_labelled(base, b[:, ::-1].copy()).add_column(
        "weak_label", [0, 0, 1], feature=ClassLabel(names=["y", "x"])
    )
    merged = merge_weak_label_datasets([named, swapped])
    np.testing.assert_array_equal(weak_logits_array(merged, "weak_logits_1"), b)
    assert "weak_label" not in merged.column_names
    with pytest.raises(ValueError, match="missing"):
        merge_weak_label_datasets(
            [named, swapped.cast_column("weak_label", ClassLabel(names=["y", "z"]))]
        )
    with pytest.raises(ValueError, match="classes per row"):
        merge_weak_label_datasets([_weak_labelled(base, a), _weak_labelled(base, np.ones((3, 3), np.float32))])


def test_collator_stacks_columns():
    rows = [{"pixel_values": np.zeros((1, 2, 2)), "a": [1.0, 2.0], "b": [3.0, 4.0]}] * 2
    batch = WeakToStrongCollator(weak_logits_columns=["a", "b"])(rows)
    assert batch["weak_logits"].shape == (2, 2, 2)
    assert batch["weak_logits"][0].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert "weak_logits" not in WeakToStrongCollator(weak_logits_columns=["a", "b"])(
        [{"pixel_values": np.zeros((1, 2, 2)), "label": 0}]
    )
    with pytest.raises(ValueError, match="lack the weak logits column\\(s\\) \\['b'\\]"):
        WeakToStrongCollator(weak_logits_columns=["a", "b"])([{"pixel_values": np.zeros((1, 2, 2)), "a": [1.0]}])


# ----------------------------------------------------------------------------------------------------------------
# the trainer: learned weights favour the better supervisor, are checkpointed and resume exactly

CLASSES = 4
ACCURACIES = (0.9, 0.6, 0.25)  # the last one is at chance


def _synthetic(n=256, seed=0):
    """A class is a bright pixel in one of four places; three supervisors of decreasing accuracy."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.normal(0, 0.3, (n, 1, 4, 4)).astype(np.float32)
    x[np.arange(n), 0, y // 2 * 2, y % 2 * 2] += 2.0
    cols = {}
    for k, acc in enumerate(ACCURACIES):
        wrong = rng.random(n) > acc
        lab = np.where(wrong, (y + rng.integers(1, CLASSES, n)) % CLASSES, y)
        cols[f"weak_logits_{k}"] = (3.0 * np.eye(CLASSES)[lab]).astype(np.float32).tolist()
    return Dataset.from_dict({"pixel_values": x.tolist(), "label": y.tolist(), **cols})


def _args(tmp_path, **kw):
    base = dict(
        output_dir=str(tmp_path), w2s_loss="weak_hard", weak_logits_columns=[f"weak_logits_{k}" for k in range(3)],
        weak_combination="learned", num_train_epochs=4, per_device_train_batch_size=32, learning_rate=1e-2,
        logging_steps=8, report_to="none", save_strategy="no", use_cpu=True, seed=0, data_seed=0,
    )
    return WeakToStrongConfig(**{**base, **kw})


def _student():
    return build_model("linear", [str(i) for i in range(CLASSES)], image_size=4, num_channels=1, width=8, seed=0)


def test_learned_weights_move_toward_the_better_supervisor(tmp_path):
    trainer = WeakToStrongTrainer(model=_student(), args=_args(tmp_path), train_dataset=_synthetic())
    groups = trainer.create_optimizer().param_groups
    assert groups[-1]["params"] == [trainer.weak_combiner.logit_weights] and groups[-1]["lr"] == 0.05
    trainer.train()
    pi = trainer.weak_combiner.weights().tolist()
    assert pi[0] > pi[1] > pi[2] and pi[0] > 0.5, pi
    logged = [[h[f"weak_weight_{k}"] for k in range(3)] for h in trainer.state.log_history if "weak_weight_0" in h]
    assert len(logged) == 4 and logged[0][0] < logged[-1][0]  # logged, and rising
    # the reported loss is the W2S loss alone; the weights' objective is logged apart
    last = [h for h in trainer.state.log_history if "weak_weight_0" in h][-1]
    assert last["loss"] == pytest.approx(last["loss_w2s"], rel=1e-3) and "weak_weights_nll" in last


def test_agreement_warmup_trains_only_on_agreed_rows(tmp_path):
    ds = _synthetic(64)
    args = _args(tmp_path, weak_combination="mean", weak_agreement_warmup=1.0, max_steps=2,
                 per_device_train_batch_size=64)
    trainer = WeakToStrongTrainer(model=_student(), args=args, train_dataset=ds)
    batch = trainer.data_collator([ds[i] for i in range(64)])
    trainer.model.train()
    trainer.state.max_steps, trainer.state.global_step = 10, 3  # 30 % through, within the warm-up
    loss = trainer.compute_loss(trainer.model, batch)
    agree = supervisors_agree(batch["weak_logits"])
    logits = trainer.model(pixel_values=batch["pixel_values"]).logits
    target = batch["weak_logits"][:, 0].argmax(-1)  # where all agree, supervisor 0's label is everybody's
    expected = torch.nn.functional.cross_entropy(logits[agree], target[agree])
    assert 0 < agree.sum() < 64 and loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert trainer._metrics["train"]["weak_agreement"][-1] == pytest.approx(agree.float().mean().item())
    # after the warm-up: the whole batch, toward the mean mixture's argmax
    trainer.args.weak_agreement_warmup = 0.2
    loss = trainer.compute_loss(trainer.model, batch)
    mixture = batch["weak_logits"].softmax(-1).mean(1)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, mixture.argmax(-1)).item(), rel=1e-5)


def test_accuracy_combination_and_bad_columns(tmp_path):
    ds = _synthetic(64)
    args = _args(tmp_path, weak_combination="accuracy", weak_accuracies=list(ACCURACIES))
    trainer = WeakToStrongTrainer(model=_student(), args=args, train_dataset=ds)
    # accuracies above chance (1/4): 0.65, 0.35, 0 -> 0.65, 0.35, 0 of their sum 1.0
    assert trainer.weak_combiner.weights().tolist() == pytest.approx([0.65, 0.35, 0.0], rel=1e-6)
    assert len(trainer.create_optimizer().param_groups) == 2  # nothing to learn
    with pytest.raises(ValueError, match="weak_logits_columns \\['weak_logits_5'\\] are not in the training dataset"):
        args = _args(tmp_path, weak_logits_columns=["weak_logits_0", "weak_logits_5"])
        WeakToStrongTrainer(model=_student(), args=args, train_dataset=ds)
    narrow = ds.add_column("weak_logits_3", [[0.0, 1.0]] * len(ds))
    with pytest.raises(ValueError, match="'weak_logits_3' column of the training dataset has 2 values"):
        args = _args(tmp_path, weak_logits_columns=["weak_logits_0", "weak_logits_3"])
        WeakToStrongTrainer(model=_student(), args=args, train_dataset=narrow)


def test_learned_weights_are_checkpointed_and_resume_exactly(tmp_path):
    ds = _synthetic(128)
    kw = dict(max_steps=8, per_device_train_batch_size=16, save_strategy="steps", save_steps=4)
    full = WeakToStrongTrainer(model=_student(), args=_args(tmp_path / "full", **kw), train_dataset=ds)
    full.train()
    saved = os.path.join(tmp_path, "full", "checkpoint-4", WEAK_COMBINER_NAME)
    assert os.path.isfile(saved)
    resumed = WeakToStrongTrainer(model=_student(), args=_args(tmp_path / "resumed", **kw), train_dataset=ds)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-4"))
    assert not torch.equal(full.weak_combiner.logit_weights, torch.zeros(3))
    torch.testing.assert_close(resumed.weak_combiner.logit_weights, full.weak_combiner.logit_weights)
    # a checkpoint without the weights cannot resume them
    os.remove(saved)
    again = WeakToStrongTrainer(model=_student(), args=_args(tmp_path / "again", **kw), train_dataset=ds)
    with pytest.raises(ValueError, match="cannot resume the learned weights"):
        again.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-4"))


def test_learned_weights_step_the_same_under_gradient_accumulation(tmp_path):
    ds = _synthetic(96)
    runs = {}
    for bs, ga in ((32, 1), (16, 2)):
        args = _args(tmp_path / f"{bs}", max_steps=3, per_device_train_batch_size=bs, gradient_accumulation_steps=ga)
        trainer = WeakToStrongTrainer(model=_student(), args=args, train_dataset=ds)
        trainer.train()
        runs[bs] = trainer.weak_combiner.logit_weights.detach().clone()
    assert not torch.equal(runs[32], torch.zeros(3))
    torch.testing.assert_close(runs[16], runs[32], rtol=1e-4, atol=1e-5)


def test_learned_weights_stay_uniform_during_their_warmup(tmp_path):
    args = _args(tmp_path, max_steps=4, per_device_train_batch_size=32, weak_weights_warmup=1.0, logging_steps=2)
    trainer = WeakToStrongTrainer(model=_student(), args=args, train_dataset=_synthetic(128))
    trainer.train()
    assert torch.equal(trainer.weak_combiner.logit_weights.detach(), torch.zeros(3))
    logs = [h for h in trainer.state.log_history if "weak_weight_0" in h]
    assert len(logs) == 2 and not any("weak_weights_nll" in h for h in logs)


# ----------------------------------------------------------------------------------------------------------------
# the runner: a combined supervisor and conf_select in one tiny experiment


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return saved_bands(tmp_path_factory.mktemp("bands") / "ds")


def test_runner_combined_supervisor_and_conf_select(tmp_path, pool, monkeypatch):
    fits = []
    original_fit = Experiment.fit

    def spy(self, model, processor, train, args, **kwargs):
        trainer = original_fit(self, model, processor, train, args, **kwargs)
        if not kwargs.get("build_only"):  # the runs trained, not the preflight's trainers
            fits.append((args.w2s_loss, trainer.args, trainer.calibration_callback))
        return trainer

    monkeypatch.setattr(Experiment, "fit", spy)
    exp = experiment(tiny_experiment(pool, tmp_path / "out", losses=["conf_select"], weak_supervisors=[
        {"name": "good", "model": "tiny:linear,width=4", "num_train_epochs": 3, "per_device_train_batch_size": 8,
         "calibration_size": 20},
        {"name": "poor", "model": "tiny:linear,width=4", "num_train_epochs": 1, "per_device_train_batch_size": 8,
         "calibration_size": 20, "train_size": 6},
        {"name": "both", "combine": ["good", "poor"], "combination": "accuracy", "calibrate": True},
    ]))
    exp.run()
    weak = {r["weak"]: r for r in exp.results() if r["kind"] == "weak"}
    assert weak["good"]["calibration_basis"] == "20 held-out weak_train examples"
    assert weak["good"]["calibration_temperature"] > 0
    assert weak["both"]["source"] == "combine"
    assert weak["both"]["test_accuracy"] == max(weak["good"]["test_accuracy"], weak["poor"]["test_accuracy"])
    students = [(args, cb) for loss, args, cb in fits if loss == "conf_select"]
    assert len(students) == 3 and all(cb is not None and cb.history for _, cb in students)  # T_s refitted
    single, combined = students[0][0], students[2][0]
    assert single.weak_calibration_temperature == pytest.approx(weak["good"]["calibration_temperature"])
    assert combined.weak_logits_columns == ["weak_logits_0", "weak_logits_1"]
    assert combined.weak_accuracies == [weak["good"]["calibration_accuracy"], weak["poor"]["calibration_accuracy"]]
    assert combined.weak_temperatures == [weak["good"]["calibration_temperature"],
                                          weak["poor"]["calibration_temperature"]]
    runs = {r["weak"]: r for r in exp.results() if r["kind"] == "w2s"}
    above = [a - 1 / 3 for a in combined.weak_accuracies]  # three classes: chance is 1/3
    assert runs["both"]["weak_weights"] == pytest.approx([max(a, 0) / sum(max(b, 0) for b in above) for a in above])
    assert runs["good"]["weak_weights"] is None and runs["good"]["mean_student_selected"] is not None
    assert "`both` (combine" in exp.report()


@pytest.mark.parametrize(
    "supervisors, match",
    [
        ([{"name": "a"}, {"name": "c", "combine": ["a", "b"]}], "combine must name other"),
        ([{"name": "a"}, {"name": "c", "combine": ["a", "c"]}], "combine must name other"),
        ([{"name": "a"}, {"name": "c", "combine": ["a"]}], "at least two distinct"),
        ([{"name": "a"}, {"name": "b"}, {"name": "c", "combine": ["a", "b"], "combination": "vote"}],
         "combination must be one of"),
        ([{"name": "a"}, {"name": "b"}, {"name": "c", "combine": ["a", "b"], "combine_knobs": {"weak_wieghts": 1}}],
         "weak_wieghts"),
        ([{"name": "a", "combine_knobs": {"weak_weights_warmup": 0.5}}], "combine_knobs apply to source combine only"),
    ],
)
def test_runner_rejects_bad_combinations(supervisors, match):
    with pytest.raises(ValueError, match=match):
        ExperimentConfig(weak_supervisors=supervisors)
