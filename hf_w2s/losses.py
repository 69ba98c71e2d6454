"""Weak-to-strong losses as pure functions on logits.

Every loss takes the student's logits ``s`` of shape ``(B, C)`` and the weak supervisor's logits ``w`` of the same
shape (plus ``labels`` where it needs them and ``progress`` in ``[0, 1]``, the fraction of training done, for the
schedules) and returns a :class:`W2SLossOutput`: the *per-sample* loss ``(B,)`` and per-sample components worth
logging. Reduction, the ground-truth term and the loss weights are applied by :func:`compute_w2s_loss`.

All computations go through ``log_softmax`` so that large logits and small temperatures stay finite.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "W2SLossOutput",
    "LOSSES",
    "register_loss",
    "compute_w2s_loss",
    "adaptive_confidence",
    "linear_schedule",
    "kd_per_sample",
    "ce_per_sample",
    "soft_ce_per_sample",
]


@dataclass
class W2SLossOutput:
    """Per-sample loss ``(B,)`` and named per-sample (or scalar) components for logging."""

    loss: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)


LOSSES: dict[str, Callable[..., W2SLossOutput]] = {}
#: losses that need ground-truth labels rather than (or besides) weak logits
NEEDS_LABELS = {"ground_truth"}
#: losses that do not use weak logits at all
NO_WEAK = {"ground_truth"}


def register_loss(name: str, *, needs_labels: bool = False, uses_weak: bool = True):
    """Register a loss function under ``name`` (the public name used by configs and the CLI)."""

    def deco(fn):
        if name in LOSSES:
            raise ValueError(f"A loss named {name!r} is already registered.")
        LOSSES[name] = fn
        if needs_labels:
            NEEDS_LABELS.add(name)
        if not uses_weak:
            NO_WEAK.add(name)
        return fn

    return deco


# ----------------------------------------------------------------------------------------------------------------
# building blocks


def ce_per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits`` against integer targets, per sample."""
    return F.cross_entropy(logits.float(), target.long(), reduction="none")


def soft_ce_per_sample(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``logits`` against a probability vector, per sample."""
    return -(target_probs.float() * F.log_softmax(logits.float(), dim=-1)).sum(-1)


def kd_per_sample(
    student_logits: torch.Tensor, weak_logits: torch.Tensor, tau: float = 1.0, log_p_s: torch.Tensor | None = None
) -> torch.Tensor:
    """Hinton KD per sample: ``tau**2 * KL(softmax(w/tau) || softmax(s/tau))``.

    ``log_p_s``: the student's ``log_softmax(s / tau)`` when the caller already has it (saves recomputing it)."""
    if log_p_s is None:
        log_p_s = F.log_softmax(student_logits.float() / tau, dim=-1)
    log_p_w = F.log_softmax(weak_logits.float() / tau, dim=-1)
    kl = F.kl_div(log_p_s, log_p_w, reduction="none", log_target=True).sum(-1)
    return (tau**2) * kl


def linear_schedule(progress: float, fraction: float, maximum: float = 1.0) -> float:
    """``maximum * progress / fraction`` while ``progress < fraction``, then ``maximum``; continuous, no jump."""
    if fraction <= 0:
        return float(maximum)
    return float(maximum) * min(1.0, max(0.0, float(progress)) / float(fraction))


def _nll(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``-log_probs[i, target[i]]`` per sample: cross-entropy from precomputed log-probabilities."""
    return -log_probs.gather(-1, target.long().unsqueeze(-1)).squeeze(-1)


def adaptive_confidence(
    student_logits: torch.Tensor, weak_logits: torch.Tensor, confidence_temperature: float = 0.5,
    log_probs: torch.Tensor | None = None,
) -> torch.Tensor:
    """AdaptConf's per-sample weight, without gradient.

    ``a = exp(CE(s,ŝ)/T) / (exp(CE(s,ŝ)/T) + exp(CE(s,ŵ)/T)) = sigmoid((CE(s,ŝ) - CE(s,ŵ)) / T)``, which lies in
    ``(0, 0.5]`` because ``CE(s, ŝ) <= CE(s, ŵ)``; it is 0.5 where the two argmaxes agree. ``log_probs``: the
    student's ``log_softmax(s)`` when the caller already has it.
    """
    with torch.no_grad():
        s = student_logits.detach().float()
        log_probs = F.log_softmax(s, dim=-1) if log_probs is None else log_probs.detach()
        ce_self = _nll(log_probs, s.argmax(-1))
        ce_weak = _nll(log_probs, weak_logits.argmax(-1))
        return torch.sigmoid((ce_self - ce_weak) / confidence_temperature)


def _check(student_logits: torch.Tensor, other: torch.Tensor | None, what: str) -> None:
    if student_logits.dim() != 2:
        raise ValueError(f"student logits must be (batch, classes), got shape {tuple(student_logits.shape)}")
    if other is not None and other.shape != student_logits.shape:
        raise ValueError(
            f"{what} shape {tuple(other.shape)} does not match the student's logits {tuple(student_logits.shape)}: "
            "weak and strong models must share one label set (match them by name with hf_w2s.labels)."
        )


# ----------------------------------------------------------------------------------------------------------------
# the registered losses


@register_loss("ground_truth", needs_labels=True, uses_weak=False)
def ground_truth(student_logits, weak_logits=None, labels=None, **_) -> W2SLossOutput:
    """CE to the true labels: the strong ceiling."""
    if labels is None:
        raise ValueError("loss 'ground_truth' needs true labels in the batch (a 'label' or 'labels' column).")
    ce = ce_per_sample(student_logits, labels)
    return W2SLossOutput(ce, {"ce_gt": ce.detach()})


@register_loss("weak_hard")
def weak_hard(student_logits, weak_logits, **_) -> W2SLossOutput:
    """Naive W2S: CE to the weak model's argmax."""
    _check(student_logits, weak_logits, "weak logits")
    ce = ce_per_sample(student_logits, weak_logits.argmax(-1))
    return W2SLossOutput(ce, {"ce_weak": ce.detach()})


@register_loss("weak_soft")
def weak_soft(student_logits, weak_logits, kd_temperature: float = 1.0, **_) -> W2SLossOutput:
    """CE to the weak model's softmax (OpenAI's plain ``xent``); ``kd_temperature`` softens the target."""
    _check(student_logits, weak_logits, "weak logits")
    ce = soft_ce_per_sample(student_logits, F.softmax(weak_logits.float() / kd_temperature, dim=-1))
    return W2SLossOutput(ce, {"ce_weak_soft": ce.detach()})


@register_loss("kd")
def kd(student_logits, weak_logits, kd_temperature: float = 1.0, **_) -> W2SLossOutput:
    """Hinton KD: ``τ²·KL(softmax(w/τ) ‖ softmax(s/τ))``."""
    _check(student_logits, weak_logits, "weak logits")
    loss = kd_per_sample(student_logits, weak_logits, kd_temperature)
    return W2SLossOutput(loss, {"kd": loss.detach()})


@register_loss("aug_conf")
def aug_conf(
    student_logits, weak_logits, kd_temperature: float = 1.0, a_max: float = 0.5, a_ramp: float = 0.3,
    progress: float = 1.0, **_,
) -> W2SLossOutput:
    """AugConf: ``(1−a)·KD + a·CE(s, argmax s)``, ``a`` ramped linearly 0 → ``a_max`` over the first ``a_ramp``."""
    _check(student_logits, weak_logits, "weak logits")
    a = linear_schedule(progress, a_ramp, a_max)
    kd_l = kd_per_sample(student_logits, weak_logits, kd_temperature)
    ce_self = ce_per_sample(student_logits, student_logits.detach().argmax(-1))
    loss = (1 - a) * kd_l + a * ce_self
    a_t = torch.full_like(loss, a).detach()
    return W2SLossOutput(loss, {"kd": kd_l.detach(), "ce_self": ce_self.detach(), "a": a_t})


def _harden(student_logits: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
    """OpenAI's hardening of the student's predictions.

    Two classes: threshold the student's class-1 probability at the batch quantile that makes the hardened class
    balance match the weak labels' (mean weak probability of class 1). More classes: argmax.
    """
    if student_logits.shape[-1] != 2:
        return student_logits.detach().argmax(-1)
    p1 = F.softmax(student_logits.detach().float(), dim=-1)[:, 1]
    frac1 = weak_probs[:, 1].mean().clamp(0.0, 1.0)
    threshold = torch.quantile(p1, (1.0 - frac1).item())
    return (p1 > threshold).long()


@register_loss("aux_conf")
def aux_conf(
    student_logits, weak_logits, a_max: float = 0.5, a_ramp: float = 0.3, progress: float = 1.0, **_
) -> W2SLossOutput:
    """OpenAI's auxiliary confidence loss: ``(1−a)·CE(s, softmax w) + a·CE(s, hardened s)``, ``a`` warmed up
    linearly (continuously) to ``a_max`` over the first ``a_ramp`` of training."""
    _check(student_logits, weak_logits, "weak logits")
    a = linear_schedule(progress, a_ramp, a_max)
    weak_probs = F.softmax(weak_logits.float(), dim=-1)
    ce_weak = soft_ce_per_sample(student_logits, weak_probs)
    ce_hard = ce_per_sample(student_logits, _harden(student_logits, weak_probs))
    loss = (1 - a) * ce_weak + a * ce_hard
    a_t = torch.full_like(loss, a).detach()
    return W2SLossOutput(loss, {"ce_weak_soft": ce_weak.detach(), "ce_self": ce_hard.detach(), "a": a_t})


@register_loss("adapt_conf")
def adapt_conf(
    student_logits, weak_logits, kd_temperature: float = 1.0, confidence_temperature: float = 0.5,
    a_warmup: float = 0.0, progress: float = 1.0, **_,
) -> W2SLossOutput:
    """AdaptConf as the official code computes it.

    ``a = stopgrad(sigmoid((CE(s,ŝ) − CE(s,ŵ)) / T))`` per sample (times a linear warm-up over the first
    ``a_warmup`` of training when > 0); ``loss = (1−a)·τ²·KL(softmax(w/τ) ‖ softmax(s/τ)) + a·CE(s, ŝ)``.
    """
    _check(student_logits, weak_logits, "weak logits")
    log_p = F.log_softmax(student_logits.float(), dim=-1)  # computed once, shared by a, CE(s, ŝ) and (τ = 1) KD
    a = adaptive_confidence(student_logits, weak_logits, confidence_temperature, log_probs=log_p)
    if a_warmup > 0:
        a = a * linear_schedule(progress, a_warmup, 1.0)
    kd_l = kd_per_sample(student_logits, weak_logits, kd_temperature, log_p_s=log_p if kd_temperature == 1 else None)
    ce_self = _nll(log_p, student_logits.detach().argmax(-1))
    loss = (1 - a) * kd_l + a * ce_self
    return W2SLossOutput(loss, {"kd": kd_l.detach(), "ce_self": ce_self.detach(), "a": a})


# ----------------------------------------------------------------------------------------------------------------
# the combination used by the trainer


@functools.lru_cache(maxsize=None)
def _accepted_kwargs(fn) -> frozenset[str] | None:
    """The keyword names ``fn`` takes, or ``None`` when it takes ``**kwargs`` (cached: called every step)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return frozenset(params)


def _kwargs_for(fn, knobs: dict) -> dict:
    accepted = _accepted_kwargs(fn)
    return dict(knobs) if accepted is None else {k: v for k, v in knobs.items() if k in accepted}


def compute_w2s_loss(
    name: str,
    student_logits: torch.Tensor,
    weak_logits: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    gt_loss_weight: float = 0.0,
    weak_loss_weight: float = 1.0,
    progress: float = 1.0,
    **knobs,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``λ_gt·mean CE(s, y) + λ_w·mean(loss_name(s, w))``; returns the scalar loss and mean components.

    For ``ground_truth`` the weak term is CE to the labels and ``gt_loss_weight`` is ignored. Labels equal to -100
    are ignored by the ground-truth term.
    """
    if name not in LOSSES:
        raise ValueError(f"Unknown w2s loss {name!r}; choose one of {sorted(LOSSES)}.")
    fn = LOSSES[name]
    if name not in NO_WEAK and weak_logits is None:
        raise ValueError(
            f"loss {name!r} needs weak supervision: a 'weak_logits' column in the batch or a weak_model."
        )
    weak_logits = None if weak_logits is None else weak_logits.to(student_logits.device)
    out = fn(student_logits, weak_logits, **_kwargs_for(fn, {"labels": labels, "progress": progress, **knobs}))
    loss = weak_loss_weight * out.loss.mean() if name != "ground_truth" else out.loss.mean()
    comps = {k: v.float().mean() for k, v in out.components.items()}
    comps["loss_w2s"] = out.loss.detach().mean()
    if name != "ground_truth" and gt_loss_weight > 0:
        if labels is None:
            raise ValueError("gt_loss_weight > 0 needs true labels in the batch (a 'label' or 'labels' column).")
        valid = labels != -100
        ce_gt = ce_per_sample(student_logits[valid], labels[valid])
        ce_gt_mean = ce_gt.mean() if ce_gt.numel() else student_logits.sum() * 0.0
        loss = loss + gt_loss_weight * ce_gt_mean
        comps["ce_gt"] = ce_gt_mean.detach()
    if weak_logits is not None:
        comps["agreement"] = (student_logits.detach().argmax(-1) == weak_logits.argmax(-1)).float().mean()
    return loss, comps
