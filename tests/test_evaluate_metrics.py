"""The metrics as local `evaluate` modules (hf_w2s/metric_modules): loadable offline with `evaluate.load(<path>)`,
equal to hand-computed values and to the functions of hf_w2s.metrics, and what the trainer's compute_metrics uses."""

import os

import numpy as np
import pytest
from transformers import EvalPrediction

from hf_w2s.metric_modules import METRIC_MODULES, metric_path
from hf_w2s.metrics import (
    accuracy,
    agreement,
    build_compute_metrics,
    evaluate_metric,
    load_metric,
    performance_gap_recovered,
)


def test_evaluate_load_works_offline(monkeypatch):
    """Offline mode on (read at import: set where the libraries keep it) and no socket may connect."""
    import socket

    import evaluate
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise OSError("network access in an offline test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    accuracy_ = evaluate.load(metric_path("accuracy")).compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, -100])
    agreement_ = evaluate.load(metric_path("agreement")).compute(predictions=[0, 1, 2, 2], references=[0, 1, 1, 2])
    pgr = evaluate.load(metric_path("pgr")).compute(predictions=[0, 1, 1, 1], references=[0, 1, 1, 0],
                                                    weak_accuracy=0.5, ceiling_accuracy=1.0)
    assert accuracy_ == {"accuracy": pytest.approx(2 / 3)}  # the -100 reference is ignored
    assert agreement_ == {"agreement": 0.75}
    assert pgr == {"pgr": pytest.approx(0.5), "accuracy": 0.75}  # (0.75 - 0.5) / (1.0 - 0.5)


def test_modules_match_the_functions_on_random_data():
    rng = np.random.default_rng(0)
    logits, weak = rng.normal(size=(300, 7)), rng.normal(size=(300, 7))
    labels = rng.integers(0, 7, 300)
    labels[::17] = -100
    assert sorted(METRIC_MODULES) == ["accuracy", "agreement", "pgr"]
    assert evaluate_metric("accuracy", logits, labels)["accuracy"] == accuracy(logits, labels)
    assert evaluate_metric("agreement", logits, weak)["agreement"] == agreement(logits, weak)
    student = accuracy(logits, labels)
    got = evaluate_metric("pgr", logits, labels, weak_accuracy=0.1, ceiling_accuracy=0.4)
    assert got == {"pgr": performance_gap_recovered(0.1, student, 0.4), "accuracy": student}
    assert np.isnan(evaluate_metric("pgr", logits, labels, weak_accuracy=0.5, ceiling_accuracy=0.5)["pgr"])
    # by hand: class ids and the closed forms
    ids = logits.argmax(-1)
    valid = labels != -100
    assert student == pytest.approx(float((ids[valid] == labels[valid]).mean()))
    assert got["pgr"] == pytest.approx((student - 0.1) / 0.3)


def test_trainer_compute_metrics_goes_through_the_module(monkeypatch):
    calls = []
    module = load_metric("accuracy")
    original = module.compute
    monkeypatch.setattr(module, "compute", lambda **kw: calls.append(kw) or original(**kw))
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    metrics = build_compute_metrics(["accuracy", "top5_accuracy"])(EvalPrediction(logits, np.array([0, 0, -100])))
    assert metrics["accuracy"] == 0.5 and metrics["top5_accuracy"] == 1.0 and len(calls) == 1
    assert metric_path("pgr").endswith(os.path.join("metric_modules", "w2s_pgr.py"))
    with pytest.raises(ValueError, match="unknown metric module"):
        metric_path("f1")
