"""conf_select: temperature scaling, the selection rule with hand-computed values, and the student's recalibration."""

import math

import numpy as np
import pytest
import torch
from datasets import Dataset
from scripts.tiny_data import weak_model_with_dropout_and_batch_norm

from hf_w2s import LOSSES, WeakToStrongConfig, WeakToStrongTrainer, compute_w2s_loss
from hf_w2s.calibration import StudentCalibrationCallback, column_temperature, fit_temperature, predict_logits
from hf_w2s.losses import calibrated_confidence, conf_select, selection_weight
from hf_w2s.modeling import build_model
from hf_w2s.trainer.collator import WeakToStrongCollator


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def grid_temperature(logits, labels, lo=0.05, hi=20.0, n=6001):
    """The temperature minimising mean CE(logits / T, labels), by brute force over a log-spaced grid (~0.1 % apart):
    an independent check of fit_temperature's LBFGS."""
    ts = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    log_p = (torch.as_tensor(logits).double()[None] / ts[:, None, None]).log_softmax(-1)
    index = torch.as_tensor(labels).long()[None, :, None].expand(n, -1, 1)
    return ts[(-log_p.gather(-1, index)).mean((1, 2)).argmin()].item()


# ----------------------------------------------------------------------------------------------------------------
# temperature scaling


def test_fit_temperature_matches_closed_form():
    # every example has margin 2 for class 0, 3 of 4 are class 0: the NLL optimum has sigmoid(2/T) = 3/4,
    # i.e. T = 2 / ln 3
    logits = torch.tensor([[2.0, 0.0]] * 4)
    labels = torch.tensor([0, 0, 0, 1])
    assert fit_temperature(logits, labels) == pytest.approx(2 / math.log(3), rel=1e-4)


def test_fit_temperature_ignores_minus_100_and_is_invariant_to_scale():
    logits = torch.tensor([[2.0, 0.0]] * 4 + [[9.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1, -100])
    assert fit_temperature(logits, labels) == pytest.approx(2 / math.log(3), rel=1e-4)
    # logits 5x larger need a 5x larger temperature
    assert fit_temperature(5 * logits, labels) == pytest.approx(10 / math.log(3), rel=1e-4)


def test_fit_temperature_lowers_nll_and_clips():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (200,), generator=g)
    # overconfident logits: right 60 % of the time, always with a margin of 6
    preds = torch.where(torch.rand(200, generator=g) < 0.6, labels, (labels + 1) % 5)
    logits = 6.0 * torch.nn.functional.one_hot(preds, 5).float()
    t = fit_temperature(logits, labels)
    assert t > 1.5
    nll = lambda temp: torch.nn.functional.cross_entropy(logits / temp, labels).item()  # noqa: E731
    assert nll(t) < nll(1.0) - 0.5
    assert t == pytest.approx(grid_temperature(logits, labels), rel=2e-3)
    # all right: the optimum runs toward 0 and is clipped to the lower bound's range
    assert fit_temperature(logits, preds) < 0.5
    # no signal at all (the same logits, half the labels each): clipped at the upper bound
    assert fit_temperature(torch.tensor([[2.0, 0.0]] * 2), torch.tensor([0, 1])) == pytest.approx(20.0)


def test_fit_temperature_rejects_bad_input():
    with pytest.raises(ValueError, match="logits \\(N, C\\) and labels \\(N,\\)"):
        fit_temperature(torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must lie in"):
        fit_temperature(torch.zeros(2, 2), torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="at least one"):
        fit_temperature(torch.zeros(1, 2), torch.tensor([-100]))


def test_column_temperature_reads_a_logits_column():
    ds = Dataset.from_dict({"weak_logits": [[2.0, 0.0]] * 4, "label": [0, 0, 0, 1]})
    assert column_temperature(ds) == pytest.approx(2 / math.log(3), rel=1e-4)
    with pytest.raises(ValueError, match="no column 'nope'"):
        column_temperature(ds, "nope")


# ----------------------------------------------------------------------------------------------------------------
# the selection rule, hand-computed

STUDENT = torch.tensor([[0.0, 1.0]])  # predicts class 1 with raw confidence sigmoid(1) = 0.7311
WEAK = torch.tensor([[2.0, 0.0]])  # predicts class 0 with raw confidence sigmoid(2) = 0.8808
CE_TO_WEAK = math.log(1 + math.e)  # CE(student, 0) = 1.3133
CE_TO_SELF = math.log(1 + math.exp(-1))  # CE(student, 1) = 0.3133


def test_calibrated_confidence():
    conf, pred = calibrated_confidence(WEAK, 2.0)
    assert conf.item() == pytest.approx(sigmoid(1.0)) and pred.item() == 0


@pytest.mark.parametrize(
    "t_weak, expected",
    [
        (1.0, CE_TO_WEAK),  # 0.8808 > 0.7311: weak label
        (2.0, CE_TO_WEAK),  # 0.7311 = 0.7311: ties go to the weak label
        (4.0, CE_TO_SELF),  # 0.6225 < 0.7311: the student's own label
    ],
)
def test_hard_selection(t_weak, expected):
    out = conf_select(STUDENT, WEAK, weak_calibration_temperature=t_weak)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert out.components["student_selected"].item() == (1.0 if expected == CE_TO_SELF else 0.0)


def test_student_temperature_changes_the_choice():
    # the student's temperature 0.5 sharpens its confidence to sigmoid(2) = 0.8808 = the weak's: tie -> weak
    assert conf_select(STUDENT, WEAK, student_calibration_temperature=0.5).loss.item() == pytest.approx(CE_TO_WEAK)
    # 0.4 gives sigmoid(2.5) = 0.924 > 0.8808 -> the student's label
    assert conf_select(STUDENT, WEAK, student_calibration_temperature=0.4).loss.item() == pytest.approx(CE_TO_SELF)


def test_soft_selection_weights_by_calibrated_confidences():
    c_w, c_s = sigmoid(2.0), sigmoid(1.0)
    pi = c_w / (c_w + c_s)  # 0.5464
    out = conf_select(STUDENT, WEAK, conf_select_mode="soft")
    assert out.components["weak_weight"].item() == pytest.approx(pi, rel=1e-6)
    assert out.loss.item() == pytest.approx(pi * CE_TO_WEAK + (1 - pi) * CE_TO_SELF, rel=1e-6)


def test_agreeing_examples_train_toward_the_shared_label():
    student = torch.tensor([[3.0, 0.0]])
    for mode in ("hard", "soft"):
        out = conf_select(student, WEAK, conf_select_mode=mode)
        assert out.loss.item() == pytest.approx(math.log(1 + math.exp(-3.0)), rel=1e-6)
        assert out.components["student_selected"].item() == 0.0


def test_warmup_starts_as_weak_hard_and_ramps_linearly():
    g = torch.Generator().manual_seed(1)
    s, w = torch.randn(16, 5, generator=g) * 3, torch.randn(16, 5, generator=g)
    at_start = conf_select(s, w, conf_select_warmup=0.5, progress=0.0)
    assert torch.allclose(at_start.loss, LOSSES["weak_hard"](s, w).loss)
    # a quarter through: the student's confidence counts half -> soft weight c_w / (c_w + 0.5 c_s)
    c_w, c_s = sigmoid(2.0), sigmoid(1.0)
    out = conf_select(STUDENT, WEAK, conf_select_mode="soft", conf_select_warmup=0.5, progress=0.25)
    assert out.components["weak_weight"].item() == pytest.approx(c_w / (c_w + 0.5 * c_s))
    # after the warm-up it is the plain rule
    after = conf_select(STUDENT, WEAK, conf_select_warmup=0.5, progress=0.5, weak_calibration_temperature=4.0)
    assert after.loss.item() == pytest.approx(CE_TO_SELF, rel=1e-5)


def test_selection_weight_has_no_gradient_and_rejects_bad_mode():
    s = STUDENT.clone().requires_grad_(True)
    out = conf_select(s, WEAK, conf_select_mode="soft")
    out.loss.sum().backward()
    pi = sigmoid(2.0) / (sigmoid(2.0) + sigmoid(1.0))
    p1 = sigmoid(1.0)  # student's softmax [1 - p1, p1]
    # d/ds of pi*CE(s,0) + (1-pi)*CE(s,1) with pi constant = softmax(s) - (pi, 1-pi)
    assert torch.allclose(s.grad, torch.tensor([[1 - p1 - pi, p1 - (1 - pi)]]), atol=1e-6)
    with pytest.raises(ValueError, match="conf_select_mode must be one of"):
        selection_weight(torch.ones(1), torch.ones(1), mode="max")


def test_registered_and_driven_by_the_config_knobs(tmp_path):
    assert "conf_select" in LOSSES
    args = WeakToStrongConfig(
        output_dir=str(tmp_path), w2s_loss="conf_select", weak_calibration_temperature=4.0, report_to="none"
    )
    loss, comps = compute_w2s_loss("conf_select", STUDENT, WEAK, **args.loss_knobs())
    assert loss.item() == pytest.approx(CE_TO_SELF, rel=1e-5)
    assert comps["student_selected"].item() == 1.0


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"conf_select_mode": "max"}, "conf_select_mode must be one of"),
        ({"weak_calibration_temperature": 0.0}, "weak_calibration_temperature must be > 0"),
        ({"student_calibration_temperature": -1.0}, "student_calibration_temperature must be > 0"),
        ({"conf_select_warmup": 1.5}, "conf_select_warmup must be within"),
        ({"student_calibration_steps": -1}, "student_calibration_steps must be >= 0"),
    ],
)
def test_config_validation(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        WeakToStrongConfig(output_dir=str(tmp_path), w2s_loss="conf_select", report_to="none", **bad)


# ----------------------------------------------------------------------------------------------------------------
# the student's temperature during training


def _toy(n=96, seed=0, classes=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 0.5, (n, 1, 4, 4)).astype(np.float32)
    x[np.arange(n), 0, y, y] += 2.0
    weak = np.where(rng.random(n) < 0.7, y, (y + 1) % classes)
    w = (2.0 * np.eye(classes)[weak]).astype(np.float32)
    return Dataset.from_dict({"pixel_values": x.tolist(), "label": y.tolist(), "weak_logits": w.tolist()})


def _student(classes=4):
    return build_model("linear", [str(i) for i in range(classes)], image_size=4, num_channels=1, width=8, seed=0)


def _student_with_dropout_and_batch_norm(classes=4):
    """A student whose training-mode forward gives other logits than its evaluation forward (batch statistics,
    random dropout): a recalibration that forgot evaluation mode fits another temperature."""
    return weak_model_with_dropout_and_batch_norm([str(i) for i in range(classes)], image_size=4, num_channels=1)


def _eval_logits(model, ds):
    """The logits of an evaluation-mode forward on a ``pixel_values`` dataset, written here (not predict_logits)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        logits = model(pixel_values=torch.tensor(ds["pixel_values"])).logits
    model.train(was)
    return logits, torch.tensor(ds["label"])


def test_predict_logits_and_callback_refit():
    ds, model = _toy(40), _student_with_dropout_and_batch_norm()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    collator = WeakToStrongCollator(training=False)
    logits, labels = predict_logits(model, ds, collator, batch_size=16)
    assert logits.shape == (40, 4) and labels.tolist() == ds["label"]
    expected, _ = _eval_logits(model, ds)
    torch.testing.assert_close(logits, expected)  # the evaluation forward, in batches of 16
    assert model.training and all(m.training for m in model.modules())  # restored
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # batch-norm statistics untouched
    knobs = {}
    cb = StudentCalibrationCallback(ds, collator, knobs, every_n_steps=3)
    t = cb.refit(model, step=0)
    assert knobs["student_calibration_temperature"] == t == pytest.approx(grid_temperature(expected, labels),
                                                                          rel=2e-3)
    with pytest.raises(ValueError, match="every_n_steps must be >= 0"):
        StudentCalibrationCallback(ds, collator, {}, every_n_steps=-1)


def test_trainer_refits_the_student_temperature(tmp_path):
    train, calib = _toy(96, seed=0), _toy(48, seed=1).remove_columns("weak_logits")
    args = WeakToStrongConfig(
        output_dir=str(tmp_path), w2s_loss="conf_select", conf_select_warmup=0.3, student_calibration_steps=4,
        max_steps=12, per_device_train_batch_size=16, learning_rate=5e-2, logging_steps=4, report_to="none",
        save_strategy="no", use_cpu=True, seed=0,
    )
    trainer = WeakToStrongTrainer(model=_student_with_dropout_and_batch_norm(), args=args, train_dataset=train,
                                  calibration_dataset=calib)
    trainer.train()
    steps = [s for s, _ in trainer.calibration_callback.history]
    assert steps == [0, 4, 8, 12]
    temps = [t for _, t in trainer.calibration_callback.history]
    assert len(set(round(t, 4) for t in temps)) > 1  # refit on the changing student
    logged = [h["student_calibration_temperature"] for h in trainer.state.log_history if "student_selected" in h]
    assert len(logged) == 3 and all(0.05 <= t <= 20 for t in logged)
    # the last refit is what the loss uses now, and it is the temperature of the trained student on the GT split,
    # predicted in evaluation mode (the student has dropout and batch norm)
    logits, labels = _eval_logits(trainer.model, calib)
    assert trainer.loss_knobs["student_calibration_temperature"] == pytest.approx(
        grid_temperature(logits, labels), rel=2e-3
    )
