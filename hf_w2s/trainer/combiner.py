"""Several weak supervisors in training: combining their logits into one supervision (:class:`WeakCombiner`).

The collator stacks the ``K`` logits columns of a dataset (written by :func:`hf_w2s.label_dataset_multi` or
:func:`hf_w2s.merge_weak_label_datasets`) into ``weak_logits`` of shape ``(B, K, C)``; :class:`WeakCombiner` turns
that into one ``(B, C)`` supervision that any W2S loss takes as its weak logits:

``log m(c) = log Σ_k π_k · softmax(w_k / T_k)(c)`` — a mixture of the supervisors' (optionally temperature-scaled)
probabilities, returned as log-probabilities, with simplex weights ``π``:

* ``mean``: ``π_k = 1/K``;
* ``accuracy``: ``π_k ∝ max(acc_k − 1/C, 0)``, each supervisor's accuracy on its ground-truth split above chance;
* ``learned``: ``π = softmax(θ)``, ``θ`` a trainable vector (starting at 0, i.e. uniform) trained jointly with the
  student by its own objective, the mixture's negative log-likelihood of the student's current predictions
  ``−mean log Σ_k π_k p_k(argmax s)`` (gradient to ``θ`` only; the student's loss sees ``π`` detached). The
  weights move toward the supervisors the student agrees with, whatever the W2S loss (hard losses give no gradient
  through an argmax). The weights stay uniform for the first ``weak_weights_warmup`` of training (default 0.3): a
  student that has barely trained is no judge, and measured without the warm-up the weights first drifted toward the
  worst supervisor (the flattest or the one the untrained student happened to agree with) and sometimes stayed there.
  Optionally the student trains only on the examples where all supervisors agree for the first part of training
  (``weak_agreement_warmup``).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import TrainerCallback

__all__ = [
    "COMBINATIONS",
    "combine_weak_logits",
    "accuracy_weights",
    "supervisors_agree",
    "weights_nll",
    "WeakCombiner",
    "ZeroGradCallback",
]

COMBINATIONS = ("mean", "accuracy", "learned")
# ----------------------------------------------------------------------------------------------------------------
# pure functions on tensors


def _check_stack(weak_logits: torch.Tensor) -> None:
    if weak_logits.dim() != 3:
        raise ValueError(
            f"stacked weak logits must be (batch, supervisors, classes), got shape {tuple(weak_logits.shape)}"
        )


def combine_weak_logits(
    weak_logits: torch.Tensor, weights: torch.Tensor, temperatures: torch.Tensor | None = None
) -> torch.Tensor:
    """``log Σ_k π_k softmax(w_k / T_k)``: ``(B, K, C)`` logits, ``(K,)`` simplex weights → ``(B, C)`` log-probs."""
    _check_stack(weak_logits)
    if weights.shape != (weak_logits.shape[1],):
        raise ValueError(f"{weak_logits.shape[1]} supervisors but {tuple(weights.shape)} weights")
    w = weak_logits.float()
    if temperatures is not None:
        w = w / temperatures.to(w).view(1, -1, 1)
    log_p = F.log_softmax(w, dim=-1)
    log_pi = weights.to(log_p).clamp_min(1e-12).log().view(1, -1, 1)
    return torch.logsumexp(log_pi + log_p, dim=1)


def accuracy_weights(accuracies: Sequence[float], num_classes: int) -> torch.Tensor:
    """``π_k ∝ max(acc_k − 1/C, 0)``: a supervisor at chance gets no weight."""
    acc = torch.as_tensor([float(a) for a in accuracies], dtype=torch.float32)
    if acc.dim() != 1 or len(acc) == 0 or not ((acc >= 0) & (acc <= 1)).all():
        raise ValueError(f"accuracies must be a non-empty list of numbers in [0, 1], got {list(accuracies)}")
    above = (acc - 1.0 / num_classes).clamp_min(0.0)
    if not above.sum() > 0:
        raise ValueError(f"no supervisor is above chance (1/{num_classes}): accuracies {acc.tolist()}")
    return above / above.sum()


def supervisors_agree(weak_logits: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: all supervisors have the same argmax."""
    _check_stack(weak_logits)
    preds = weak_logits.argmax(-1)
    return (preds == preds[:, :1]).all(dim=1)


def weights_nll(
    weak_logits: torch.Tensor, weights: torch.Tensor, student_logits: torch.Tensor,
    temperatures: torch.Tensor | None = None,
) -> torch.Tensor:
    """``−mean log Σ_k π_k p_k(argmax s)``: how badly the weighted supervisors explain the student's predictions.

    Differentiable in ``weights`` only (the student's and the supervisors' logits are constants here).
    """
    combined = combine_weak_logits(weak_logits.detach(), weights, temperatures)
    target = student_logits.detach().argmax(-1)
    return F.nll_loss(combined, target)


class WeakCombiner(nn.Module):
    """Combine ``K`` weak supervisors' logits ``(B, K, C)`` into one ``(B, C)`` supervision (see the module doc).

    ``mode``: ``mean``, ``accuracy`` (needs ``accuracies`` and ``num_classes``) or ``learned`` (a trainable
    ``logit_weights`` parameter, softmax-ed). ``temperatures`` (``K`` values) scale each supervisor's logits first.
    """

    def __init__(
        self,
        num_supervisors: int,
        mode: str = "mean",
        accuracies: Sequence[float] | None = None,
        num_classes: int | None = None,
        temperatures: Sequence[float] | None = None,
    ):
        super().__init__()
        if mode not in COMBINATIONS:
            raise ValueError(f"weak_combination must be one of {COMBINATIONS}, got {mode!r}")
        if num_supervisors < 1:
            raise ValueError(f"need at least one weak supervisor, got {num_supervisors}")
        self.mode = mode
        self.num_supervisors = num_supervisors
        if mode == "learned":
            self.logit_weights = nn.Parameter(torch.zeros(num_supervisors))
        else:
            if mode == "accuracy":
                if accuracies is None or num_classes is None:
                    raise ValueError("weak_combination='accuracy' needs each supervisor's accuracy (weak_accuracies)")
                if len(accuracies) != num_supervisors:
                    raise ValueError(f"{len(accuracies)} accuracies for {num_supervisors} weak supervisors")
                fixed = accuracy_weights(accuracies, num_classes)
            else:
                fixed = torch.full((num_supervisors,), 1.0 / num_supervisors)
            self.register_buffer("fixed_weights", fixed)
        if temperatures is not None:
            if len(temperatures) != num_supervisors or not all(t > 0 for t in temperatures):
                raise ValueError(f"need {num_supervisors} positive temperatures, got {list(temperatures)}")
            self.register_buffer("temperatures", torch.as_tensor([float(t) for t in temperatures]))
        else:
            self.temperatures = None

    @property
    def learnable(self) -> bool:
        return self.mode == "learned"

    def weights(self) -> torch.Tensor:
        """The simplex weights ``π`` ``(K,)`` (with gradient in ``learned`` mode)."""
        return F.softmax(self.logit_weights, dim=0) if self.learnable else self.fixed_weights

    def forward(self, weak_logits: torch.Tensor) -> torch.Tensor:
        """The combined supervision ``(B, C)`` (log-probabilities); the weights enter detached."""
        if weak_logits.shape[1] != self.num_supervisors:
            raise ValueError(f"batch has {weak_logits.shape[1]} supervisors, the combiner {self.num_supervisors}")
        return combine_weak_logits(weak_logits, self.weights().detach(), self.temperatures)

    def weight_loss(self, weak_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        """:func:`weights_nll` with this combiner's weights (the objective of the ``learned`` weights)."""
        return weights_nll(weak_logits, self.weights(), student_logits, self.temperatures)


class ZeroGradCallback(TrainerCallback):
    """Clear ``module``'s gradients after every optimizer step.

    ``Trainer`` calls ``model.zero_grad()`` only, so parameters outside the model (the learned supervisor weights)
    would otherwise accumulate gradients across steps.
    """

    def __init__(self, module: nn.Module):
        self.module = module

    def on_train_begin(self, args, state, control, **kwargs):
        self.module.zero_grad(set_to_none=True)

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.module.zero_grad(set_to_none=True)
