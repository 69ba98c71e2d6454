import math

import numpy as np
import pytest

from hf_w2s import accuracy, agreement, performance_gap_recovered
from hf_w2s.labels import label_names, label_permutation, reorder_logits
from hf_w2s.metrics import compute_accuracy


def test_pgr():
    assert performance_gap_recovered(0.7, 0.85, 0.9) == pytest.approx(0.75)
    assert performance_gap_recovered(0.7, 0.6, 0.9) == pytest.approx(-0.5)
    assert math.isnan(performance_gap_recovered(0.9, 0.95, 0.9))  # no gap: undefined


def test_accuracy_and_agreement():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 1.0], [0.0, 1.0]])
    assert accuracy(logits, [0, 1, 1, -100]) == pytest.approx(2 / 3)
    assert accuracy(np.array([0, 1]), [0, 0]) == 0.5
    assert agreement(logits, np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])) == 0.75

    class P:
        predictions, label_ids = (logits,), np.array([0, 1, 0, 1])

    assert compute_accuracy(P) == {"accuracy": 1.0}


def test_label_permutation_by_name():
    import torch

    assert label_names({"1": "dog", "0": "cat"}) == ["cat", "dog"]
    assert label_permutation(["cat", "dog"], ["cat", "dog"]) is None
    perm = label_permutation(["dog", "cat", "bird"], ["cat", "bird", "dog"])
    w = torch.tensor([[10.0, 20.0, 30.0]])  # dog, cat, bird
    assert reorder_logits(w, perm).tolist() == [[20.0, 30.0, 10.0]]
    missing = r"missing from the weak model: \['bird'\]; missing from the student: \['cow'\]"
    with pytest.raises(ValueError, match=missing):
        label_permutation(["cat", "cow"], ["cat", "bird"])
