import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Value

from hf_w2s.data.noise import add_noisy_labels, corrupt_labels, noisy_weak_logits
from hf_w2s.losses import compute_w2s_loss


def test_symmetric_flips_exactly_rate_to_other_classes_uniformly():
    labels = np.repeat(np.arange(5), 2000)  # 10,000 examples
    noisy = corrupt_labels(labels, 5, 0.3, kind="symmetric", seed=1)
    changed = noisy != labels
    assert changed.sum() == 3000  # exactly round(rate * N), never "flipped" to the same class
    # uniform over the 4 other classes: each (true, noisy) off-diagonal cell holds ~3000 / 20 = 150
    counts = np.zeros((5, 5), int)
    np.add.at(counts, (labels[changed], noisy[changed]), 1)
    off = counts[~np.eye(5, dtype=bool)]
    assert off.min() > 100 and off.max() < 200
    assert np.all(np.diag(counts) == 0)


def test_asymmetric_default_is_pair_flip_and_transition_map():
    labels = np.array([0, 1, 2, 3] * 25)
    noisy = corrupt_labels(labels, 4, 0.4, kind="asymmetric", seed=0)
    changed = noisy != labels
    assert changed.sum() == 40
    assert np.array_equal(noisy[changed], (labels[changed] + 1) % 4)
    # CIFAR-10-style map: only class 3 (cat) <-> 5 (dog) flip; other classes picked keep their label
    labels = np.arange(10).repeat(10)
    noisy = corrupt_labels(labels, 10, 1.0, kind="asymmetric", transition={3: 5, 5: 3})
    expected = labels.copy()
    expected[labels == 3], expected[labels == 5] = 5, 3
    assert np.array_equal(noisy, expected)


def test_seeded_deterministic_and_input_untouched():
    labels = np.arange(10).repeat(10)
    before = labels.copy()
    a = corrupt_labels(labels, 10, 0.5, seed=3)
    b = corrupt_labels(labels, 10, 0.5, seed=3)
    c = corrupt_labels(labels, 10, 0.5, seed=4)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(labels, before)
    assert np.array_equal(corrupt_labels(labels, 10, 0.0), labels)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(labels=[0, 1, 5], num_classes=3, rate=0.1), r"\[0, 2\]; found \[5\]"),
        (dict(labels=[0, 1], num_classes=2, rate=1.5), "rate must be within"),
        (dict(labels=[0, 1], num_classes=2, rate=0.1, kind="pairwise"), "not a label-noise kind"),
        (dict(labels=[0, 1], num_classes=1, rate=0.1), "num_classes must be >= 2"),
        (dict(labels=[0.5, 1.0], num_classes=2, rate=0.1), "integer class ids"),
        (dict(labels=[0, 1], num_classes=2, rate=0.1, transition={0: 1}), "only applies"),
        (dict(labels=[0, 1], num_classes=3, rate=0.1, kind="asymmetric", transition=[1, 0]), "2 partners for 3"),
        (dict(labels=[0, 1], num_classes=2, rate=0.1, kind="asymmetric", transition={0: 2}), "outside"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        corrupt_labels(**kwargs)


def test_noisy_weak_logits_softmax_and_argmax():
    logits = noisy_weak_logits([2, 0], 4, confidence=0.7)
    probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
    np.testing.assert_allclose(probs, [[0.1, 0.1, 0.7, 0.1], [0.7, 0.1, 0.1, 0.1]], rtol=1e-6)
    assert logits.dtype == np.float32
    # hard weak labels are the labels themselves: weak_hard loss == CE to the label
    s = torch.randn(2, 4)
    loss, _ = compute_w2s_loss("weak_hard", s, torch.from_numpy(logits))
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(s, torch.tensor([2, 0])))
    with pytest.raises(ValueError, match="confidence must be in"):
        noisy_weak_logits([0], 4, confidence=1.0)


def test_add_noisy_labels_columns():
    ds = Dataset.from_dict(
        {"x": list(range(20)), "label": [i % 4 for i in range(20)]},
        features=Features({"x": Value("int64"), "label": ClassLabel(num_classes=4)}),
    )
    out = add_noisy_labels(ds, 0.5, kind="symmetric", seed=0, confidence=0.8)
    assert out["label"] == ds["label"]  # clean labels kept
    noisy = np.asarray(out["noisy_label"])
    assert np.array_equal(noisy, corrupt_labels(ds["label"], 4, 0.5, seed=0))
    assert (noisy != np.asarray(ds["label"])).sum() == 10
    w = np.asarray(out.with_format("numpy")["weak_logits"])
    assert w.shape == (20, 4) and np.array_equal(w.argmax(-1), noisy)
    assert out["weak_label"] == noisy.tolist()
    np.testing.assert_allclose(out["weak_confidence"], 0.8, rtol=1e-6)
    assert out.features["weak_logits"].length == 4
    with pytest.raises(ValueError, match="no label column 'fine_label'"):
        add_noisy_labels(ds, 0.1, label_column="fine_label")
