"""``hf_w2s.predicting.predicting``: the one way a model predicts for a decision (labelling, the online weak model,
recalibration, selection, feature extraction, preflight) — evaluation mode and no autograd inside, every module's own
mode given back."""

from __future__ import annotations

import pytest
import torch
from scripts.tiny_data import weak_model_with_dropout_and_batch_norm

from hf_w2s.predicting import predicting

NAMES = ["a", "b", "c"]


def test_predicts_in_evaluation_mode_without_autograd_and_gives_each_module_its_mode_back():
    model = weak_model_with_dropout_and_batch_norm(NAMES, seed=0)
    model.train()
    frozen = model.resnet.embedder  # a part kept in evaluation mode while the rest trains (student_modes)
    frozen.eval()
    modes = {name: m.training for name, m in model.named_modules()}
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, 8, 8)
    seen = []
    model.register_forward_hook(lambda *_: seen.append(
        (torch.is_inference_mode_enabled(), torch.is_grad_enabled(), [m.training for m in model.modules()])))
    with predicting(model) as same:
        logits = model(pixel_values=x).logits
        again = model(pixel_values=x).logits
    assert same is model
    (inference, grad, training), _ = seen
    assert inference and not grad and not any(training)
    torch.testing.assert_close(logits, again)  # no dropout, batch statistics not used
    assert not logits.requires_grad
    assert {name: m.training for name, m in model.named_modules()} == modes  # the frozen part stays frozen
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())  # running statistics untouched
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(pixel_values=x).logits, logits, atol=1e-3)  # training mode differs


def test_modes_are_restored_after_an_error_and_several_models_predict_together():
    a, b = torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(3)
    a.train(), b.train()
    with pytest.raises(RuntimeError, match="boom"):
        with predicting(a, b, None) as models:
            assert models == (a, b) and not a.training and not b.training
            raise RuntimeError("boom")
    assert a.training and b.training
