"""Weak-to-strong losses as pure functions on logits, and their registry.

Every loss takes the student's logits ``s`` of shape ``(B, C)`` and the weak supervisor's logits ``w`` of the same
shape (plus ``labels`` where it needs them and ``progress`` in ``[0, 1]``, the fraction of training done, for the
schedules) and returns a :class:`W2SLossOutput`: the *per-sample* loss ``(B,)`` and per-sample components worth
logging. Reduction, the ground-truth term and the loss weights are applied by :func:`compute_w2s_loss`.

Each loss is registered once, in this module, with the *knobs* it reads (:data:`LOSSES`). A knob is a field of
:class:`LossKnobs`; that field holds its only default and its help text, and :class:`~hf_w2s.WeakToStrongConfig`
inherits it, so the command line, YAML recipes, the Python API and the loss functions all share one default.

All computations go through ``log_softmax`` so that large logits and small temperatures stay finite.

Longer than ~400 lines on purpose: the registry, the knobs and every loss read together (one loss is ~30 lines of
formula and docstring); split by loss they would scatter one table across files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Callable, ClassVar, Mapping

import torch
import torch.nn.functional as F

__all__ = [
    "W2SLossOutput",
    "LossKnobs",
    "LossInfo",
    "LOSSES",
    "KNOB_NAMES",
    "register_loss",
    "compute_w2s_loss",
    "ground_truth_per_sample",
    "adaptive_confidence",
    "linear_schedule",
    "openai_warmup",
    "harden_binary",
    "harden_balanced",
    "kd_per_sample",
    "ce_per_sample",
    "soft_ce_per_sample",
    "CONF_SELECT_MODES",
]

CONF_SELECT_MODES = ("hard", "soft")


@dataclass
class LossKnobs:
    """The knobs of the registered losses: one field each, with its only default and its help.

    :attr:`RANGES` gives each numeric knob's ``(low, high, closed)``: ``closed`` says whether ``low`` itself is allowed
    (``high`` always is; ``None`` means unbounded)."""

    RANGES: ClassVar[dict[str, tuple]] = {
        "confidence_temperature": (0.0, None, False),
        "kd_temperature": (0.0, None, False),
        "a_max": (0.0, 1.0, True),
        "a_ramp": (0.0, 1.0, True),
        "a_warmup": (0.0, 1.0, True),
        "conf_select_warmup": (0.0, 1.0, True),
        "aux_warmup": (0.0, 1.0, True),
        "product_alpha": (0.0, None, True),
        "product_beta": (0.0, None, True),
        "weak_calibration_temperature": (0.0, None, False),
        "student_calibration_temperature": (0.0, None, False),
    }

    confidence_temperature: float = field(
        default=0.5,
        metadata={"help": "AdaptConf's confidence temperature T (paper: 0.5 on CIFAR, 4.0 on ImageNet). Must be > 0."},
    )
    kd_temperature: float = field(
        default=1.0,
        metadata={"help": "Distillation temperature tau of the KD term (paper default 1). Must be > 0."},
    )
    a_max: float = field(
        default=0.5,
        metadata={"help": "aug_conf: the confidence weight a reached after the ramp; aux_conf / aux_conf_multiclass: "
                  "OpenAI's aux_coef (the weight after the warm-up), in [0, 1]."},
    )
    a_ramp: float = field(
        default=0.3,
        metadata={"help": "aug_conf: fraction of training over which a rises linearly from 0 to a_max (0 = constant "
                  "a_max from the start), in [0, 1]."},
    )
    aux_warmup: float = field(
        default=0.1,
        metadata={"help": "aux_conf / aux_conf_multiclass: OpenAI's warmup_frac. While the fraction of training done "
                  "p <= aux_warmup the weight is a_max * p (at most aux_warmup * a_max), then a_max: a jump, as in "
                  "openai/weak-to-strong's logconf_loss_fn. In [0, 1]."},
    )
    product_alpha: float = field(
        default=1.0,
        metadata={"help": "product: exponent of the weak supervisor's probabilities in the target (OpenAI's alpha). "
                  ">= 0."},
    )
    product_beta: float = field(
        default=1.0,
        metadata={"help": "product: exponent of the student's own probabilities in the target (OpenAI's beta). "
                  ">= 0."},
    )
    a_warmup: float = field(
        default=0.0,
        metadata={"help": "adapt_conf: fraction of training over which the adaptive a is multiplied by a linear "
                  "warm-up from 0 to 1 (the paper uses 0.25 for few-shot and noisy labels), in [0, 1]."},
    )
    conf_select_mode: str = field(
        default="hard",
        metadata={"help": "conf_select: 'hard' trains toward the label (weak or the student's own) with the higher "
                  "calibrated confidence; 'soft' weights the two by their calibrated confidences.",
                  "choices": CONF_SELECT_MODES},
    )
    conf_select_warmup: float = field(
        default=0.0,
        metadata={"help": "conf_select: fraction of training over which the student's confidence is scaled up "
                  "linearly from 0 (the weak label always wins) to 1, in [0, 1]."},
    )
    weak_calibration_temperature: float = field(
        default=1.0,
        metadata={"help": "conf_select: temperature T_w calibrating the weak supervisor's softmax, fitted on its "
                  "held-out ground truth (hf_w2s.calibration.fit_temperature / column_temperature). Must be > 0."},
    )
    student_calibration_temperature: float = field(
        default=1.0,
        metadata={"help": "conf_select: temperature T_s calibrating the student's softmax when the trainer has no "
                  "calibration_dataset; with one, T_s is refitted on it during training. Must be > 0."},
    )


KNOB_NAMES = frozenset(f.name for f in fields(LossKnobs))
_D = LossKnobs()  # the defaults, read by the loss functions' signatures (one source: the fields above)


@dataclass
class W2SLossOutput:
    """Per-sample loss ``(B,)`` and named per-sample (or scalar) components for logging."""

    loss: torch.Tensor
    components: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass(frozen=True)
class LossInfo:
    """A registered loss: the function, the :class:`LossKnobs` fields it reads, whether it needs true labels and
    whether it uses weak supervision, a one-line description (model cards), and ``num_classes`` when it is defined
    for one number of classes only (OpenAI's binary ``aux_conf``: 2). Calling it calls the function."""

    name: str
    fn: Callable[..., W2SLossOutput]
    knobs: tuple[str, ...] = ()
    needs_labels: bool = False
    uses_weak: bool = True
    description: str = ""
    num_classes: int | None = None

    def __call__(self, *args, **kwargs) -> W2SLossOutput:
        return self.fn(*args, **kwargs)

    def check_classes(self, num_classes: int) -> None:
        """A ``ValueError`` before any compute when the loss is not defined for ``num_classes`` classes."""
        if self.num_classes is not None and num_classes != self.num_classes:
            alternative = {"aux_conf": " Use 'aux_conf_multiclass' for more than two."}.get(self.name, "")
            raise ValueError(f"loss {self.name!r} is defined for {self.num_classes} classes only; this label set has "
                             f"{num_classes}.{alternative}")


LOSSES: dict[str, LossInfo] = {}


def register_loss(name: str, *, knobs: tuple[str, ...] = (), needs_labels: bool = False, uses_weak: bool = True,
                  description: str = "", num_classes: int | None = None):
    """Register ``fn(student_logits, weak_logits, labels=None, progress=1.0, **knobs)`` under ``name`` (the public
    name used by configs and the CLI). ``knobs`` are the :class:`LossKnobs` fields it reads."""
    unknown = sorted(set(knobs) - KNOB_NAMES)
    if unknown:
        raise ValueError(f"loss {name!r}: knobs {unknown} are not LossKnobs fields; choose from {sorted(KNOB_NAMES)}")

    def deco(fn):
        if name in LOSSES:
            raise ValueError(f"A loss named {name!r} is already registered.")
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        LOSSES[name] = LossInfo(name, fn, tuple(knobs), needs_labels, uses_weak, doc, num_classes)
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
    student_logits: torch.Tensor, weak_logits: torch.Tensor, tau: float = _D.kd_temperature,
    log_p_s: torch.Tensor | None = None,
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
    student_logits: torch.Tensor, weak_logits: torch.Tensor,
    confidence_temperature: float = _D.confidence_temperature, log_probs: torch.Tensor | None = None,
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


def calibrated_confidence(logits: torch.Tensor, temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(max softmax(logits / T), argmax logits)`` per example, without gradient."""
    with torch.no_grad():
        probs = F.softmax(logits.detach().float() / temperature, dim=-1)
        conf, pred = probs.max(-1)
    return conf, pred


def selection_weight(
    weak_confidence: torch.Tensor, student_confidence: torch.Tensor, mode: str = _D.conf_select_mode,
    student_trust: float = 1.0,
) -> torch.Tensor:
    """conf_select's weight ``π`` of the weak label per example (``1 − π`` goes to the student's own label).

    ``hard``: 1 where ``c_w >= r·c_s`` (ties go to the weak supervisor), else 0; ``soft``: ``c_w / (c_w + r·c_s)``;
    ``r`` = ``student_trust`` in [0, 1] (the warm-up factor).
    """
    if mode not in CONF_SELECT_MODES:
        raise ValueError(f"conf_select_mode must be one of {CONF_SELECT_MODES}, got {mode!r}")
    student = student_trust * student_confidence
    if mode == "hard":
        return (weak_confidence >= student).float()
    return weak_confidence / (weak_confidence + student).clamp_min(1e-12)


def _check(student_logits: torch.Tensor, other: torch.Tensor | None, what: str = "weak logits") -> None:
    if student_logits.dim() != 2:
        raise ValueError(f"student logits must be (batch, classes), got shape {tuple(student_logits.shape)}")
    if other is not None and other.shape != student_logits.shape:
        raise ValueError(
            f"{what} shape {tuple(other.shape)} does not match the student's logits {tuple(student_logits.shape)}: "
            "weak and strong models must share one label set (match them by name with hf_w2s.labels)."
        )


# ----------------------------------------------------------------------------------------------------------------
# the registered losses


@register_loss("ground_truth", needs_labels=True, uses_weak=False,
               description="Cross-entropy to the ground-truth labels (the strong ceiling).")
def ground_truth(student_logits, weak_logits=None, labels=None, progress: float = 1.0) -> W2SLossOutput:
    """CE to the true labels: the strong ceiling."""
    if labels is None:
        raise ValueError("loss 'ground_truth' needs true labels in the batch (a 'label' or 'labels' column).")
    ce = ce_per_sample(student_logits, labels)
    return W2SLossOutput(ce, {"ce_gt": ce.detach()})


@register_loss("weak_hard",
               description="Naive weak-to-strong training: cross-entropy to the weak supervisor's argmax labels.")
def weak_hard(student_logits, weak_logits, labels=None, progress: float = 1.0) -> W2SLossOutput:
    """Naive W2S: CE to the weak model's argmax."""
    _check(student_logits, weak_logits)
    ce = ce_per_sample(student_logits, weak_logits.argmax(-1))
    return W2SLossOutput(ce, {"ce_weak": ce.detach()})


@register_loss("weak_soft", knobs=("kd_temperature",),
               description="Cross-entropy to the weak supervisor's soft labels.")
def weak_soft(student_logits, weak_logits, labels=None, progress: float = 1.0,
              kd_temperature: float = _D.kd_temperature) -> W2SLossOutput:
    """CE to the weak model's softmax (OpenAI's plain ``xent``); ``kd_temperature`` softens the target."""
    _check(student_logits, weak_logits)
    ce = soft_ce_per_sample(student_logits, F.softmax(weak_logits.float() / kd_temperature, dim=-1))
    return W2SLossOutput(ce, {"ce_weak_soft": ce.detach()})


@register_loss("kd", knobs=("kd_temperature",),
               description="Knowledge distillation (Hinton et al. 2015) from the weak supervisor at temperature tau.")
def kd(student_logits, weak_logits, labels=None, progress: float = 1.0,
       kd_temperature: float = _D.kd_temperature) -> W2SLossOutput:
    """Hinton KD: ``τ²·KL(softmax(w/τ) ‖ softmax(s/τ))``."""
    _check(student_logits, weak_logits)
    loss = kd_per_sample(student_logits, weak_logits, kd_temperature)
    return W2SLossOutput(loss, {"kd": loss.detach()})


@register_loss("aug_conf", knobs=("kd_temperature", "a_max", "a_ramp"),
               description="AugConf: distillation from the weak supervisor mixed with cross-entropy to the student's "
               "own hard prediction, with a confidence weight that ramps up linearly to a_max.")
def aug_conf(
    student_logits, weak_logits, labels=None, progress: float = 1.0, kd_temperature: float = _D.kd_temperature,
    a_max: float = _D.a_max, a_ramp: float = _D.a_ramp,
) -> W2SLossOutput:
    """AugConf: ``(1−a)·KD + a·CE(s, argmax s)``, ``a`` ramped linearly 0 → ``a_max`` over the first ``a_ramp``."""
    _check(student_logits, weak_logits)
    a = linear_schedule(progress, a_ramp, a_max)
    kd_l = kd_per_sample(student_logits, weak_logits, kd_temperature)
    ce_self = ce_per_sample(student_logits, student_logits.detach().argmax(-1))
    loss = (1 - a) * kd_l + a * ce_self
    a_t = torch.full_like(loss, a).detach()
    return W2SLossOutput(loss, {"kd": kd_l.detach(), "ce_self": ce_self.detach(), "a": a_t})


def openai_warmup(progress: float, warmup: float, coef: float) -> float:
    """OpenAI's ``logconf_loss_fn`` schedule: ``coef * (1 if progress > warmup else progress)``.

    Not a ramp to ``coef``: during the warm-up the weight is ``coef * progress`` (at most ``warmup * coef``), and it
    jumps to ``coef`` once ``progress`` exceeds ``warmup``."""
    return float(coef) * (1.0 if float(progress) > float(warmup) else float(progress))


def harden_binary(student_logits: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
    """OpenAI's hardening of two-class predictions: class 0 where the student's class-0 probability is at least its
    batch quantile at the weak labels' mean class-1 probability, else class 1 (so the hardened class balance matches
    the weak labels'). ``torch.quantile`` interpolates linearly, as in their code."""
    p0 = F.softmax(student_logits.detach().float(), dim=-1)[:, 0]
    threshold = torch.quantile(p0, weak_probs[:, 1].mean().clamp(0.0, 1.0))
    return (p0 < threshold).long()


def harden_balanced(student_logits: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
    """A C-class generalisation of :func:`harden_binary` (not OpenAI's; named ``aux_conf_multiclass``).

    Per class ``c`` a threshold ``t_c`` = the batch quantile of the student's ``p_c`` at ``1 − m_c``, where ``m_c``
    is the weak labels' mean probability of ``c`` (so about a share ``m_c`` of the batch is above it); each example
    is hardened to ``argmax_c (p_c − t_c)``, the class whose threshold it clears by the most. With two classes this
    is :func:`harden_binary` exactly (``t_1 = 1 − t_0``); with more it follows the weak class balance, not the
    student's argmax (a student that puts every example in one class is spread back over the classes)."""
    p = F.softmax(student_logits.detach().float(), dim=-1)
    share = weak_probs.float().mean(0).clamp(0.0, 1.0)
    thresholds = torch.stack([torch.quantile(p[:, c], 1.0 - share[c]) for c in range(p.shape[-1])])
    return (p - thresholds).argmax(-1)


def _aux_conf(student_logits, weak_logits, progress, a_max, aux_warmup, harden) -> W2SLossOutput:
    coef = openai_warmup(progress, aux_warmup, a_max)
    weak_probs = F.softmax(weak_logits.float(), dim=-1)
    ce_weak = soft_ce_per_sample(student_logits, weak_probs)
    ce_hard = ce_per_sample(student_logits, harden(student_logits, weak_probs))
    # CE to the target weak·(1−coef) + hardened·coef, written as the mix of the two cross-entropies (CE is linear in
    # the target)
    loss = (1 - coef) * ce_weak + coef * ce_hard
    a_t = torch.full_like(loss, coef).detach()
    return W2SLossOutput(loss, {"ce_weak_soft": ce_weak.detach(), "ce_self": ce_hard.detach(), "a": a_t})


@register_loss("aux_conf", knobs=("a_max", "aux_warmup"), num_classes=2,
               description="OpenAI's auxiliary confidence loss (Burns et al. 2023, logconf_loss_fn), two classes only: "
               "cross-entropy to the weak supervisor's soft labels mixed with cross-entropy to the student's "
               "predictions hardened at the batch quantile that matches the weak class balance.")
def aux_conf(
    student_logits, weak_logits, labels=None, progress: float = 1.0, a_max: float = _D.a_max,
    aux_warmup: float = _D.aux_warmup,
) -> W2SLossOutput:
    """openai/weak-to-strong's ``logconf_loss_fn`` (``aux_coef`` = ``a_max``, ``warmup_frac`` = ``aux_warmup``).

    ``coef = a_max·(1 if progress > aux_warmup else progress)``; target ``softmax(w)·(1−coef) + hardened·coef`` with
    :func:`harden_binary`; ``CE(s, target)`` per sample. Binary only, as their code (which asserts two classes):
    more classes are refused, naming ``aux_conf_multiclass``."""
    _check(student_logits, weak_logits)
    if student_logits.shape[-1] != 2:
        raise ValueError(
            f"loss 'aux_conf' is OpenAI's binary auxiliary confidence loss (their code asserts two classes); the "
            f"logits have {student_logits.shape[-1]} classes. Use 'aux_conf_multiclass' (the same loss with "
            "per-class thresholds matching the weak class balance) for more than two."
        )
    return _aux_conf(student_logits, weak_logits, progress, a_max, aux_warmup, harden_binary)


@register_loss("aux_conf_multiclass", knobs=("a_max", "aux_warmup"),
               description="A multiclass generalisation of OpenAI's auxiliary confidence loss (not theirs): "
               "cross-entropy to the weak soft labels mixed with cross-entropy to the student's predictions hardened "
               "by per-class batch-quantile thresholds matching the weak class balance.")
def aux_conf_multiclass(
    student_logits, weak_logits, labels=None, progress: float = 1.0, a_max: float = _D.a_max,
    aux_warmup: float = _D.aux_warmup,
) -> W2SLossOutput:
    """``aux_conf`` for any number of classes: OpenAI's warm-up and mix, hardening by :func:`harden_balanced`
    (identical to ``aux_conf`` for two classes; for more, it is not the student's argmax)."""
    _check(student_logits, weak_logits)
    return _aux_conf(student_logits, weak_logits, progress, a_max, aux_warmup, harden_balanced)


@register_loss("product", knobs=("product_alpha", "product_beta"),
               description="OpenAI's product loss (Burns et al. 2023, product_loss_fn): cross-entropy to the "
               "normalised product of the student's and the weak supervisor's probabilities (no gradient through "
               "the target).")
def product(
    student_logits, weak_logits, labels=None, progress: float = 1.0, product_alpha: float = _D.product_alpha,
    product_beta: float = _D.product_beta,
) -> W2SLossOutput:
    """``target ∝ softmax(s)^β · softmax(w)^α`` (normalised, detached), ``CE(s, target)`` per sample; computed in log
    space (``β·log p_s + α·log p_w``, renormalised), which is the same target without underflow."""
    _check(student_logits, weak_logits)
    log_p_s = F.log_softmax(student_logits.float(), dim=-1)
    log_target = product_beta * log_p_s.detach() + product_alpha * F.log_softmax(weak_logits.float(), dim=-1)
    target = F.softmax(log_target, dim=-1)
    loss = -(target * log_p_s).sum(-1)
    return W2SLossOutput(loss, {"ce_product": loss.detach()})


@register_loss("adapt_conf", knobs=("kd_temperature", "confidence_temperature", "a_warmup"),
               description="AdaptConf (Guo et al. 2024): per example, a mix of distillation from the weak supervisor "
               "and cross-entropy to the student's own hard prediction, weighted by how confident the student is "
               "relative to the supervisor.")
def adapt_conf(
    student_logits, weak_logits, labels=None, progress: float = 1.0, kd_temperature: float = _D.kd_temperature,
    confidence_temperature: float = _D.confidence_temperature, a_warmup: float = _D.a_warmup,
) -> W2SLossOutput:
    """AdaptConf as the official code computes it.

    ``a = stopgrad(sigmoid((CE(s,ŝ) − CE(s,ŵ)) / T))`` per sample (times a linear warm-up over the first
    ``a_warmup`` of training when > 0); ``loss = (1−a)·τ²·KL(softmax(w/τ) ‖ softmax(s/τ)) + a·CE(s, ŝ)``.
    """
    _check(student_logits, weak_logits)
    log_p = F.log_softmax(student_logits.float(), dim=-1)  # computed once, shared by a, CE(s, ŝ) and (τ = 1) KD
    a = adaptive_confidence(student_logits, weak_logits, confidence_temperature, log_probs=log_p)
    if a_warmup > 0:
        a = a * linear_schedule(progress, a_warmup, 1.0)
    kd_l = kd_per_sample(student_logits, weak_logits, kd_temperature, log_p_s=log_p if kd_temperature == 1 else None)
    ce_self = _nll(log_p, student_logits.detach().argmax(-1))
    loss = (1 - a) * kd_l + a * ce_self
    return W2SLossOutput(loss, {"kd": kd_l.detach(), "ce_self": ce_self.detach(), "a": a})


@register_loss("conf_select", knobs=("weak_calibration_temperature", "student_calibration_temperature",
                                     "conf_select_mode", "conf_select_warmup"),
               description="Confidence selection (beyond the paper): per example, cross-entropy to whichever label, "
               "the weak supervisor's or the student's own, has the higher calibrated confidence.")
def conf_select(
    student_logits,
    weak_logits,
    labels=None,
    progress: float = 1.0,
    weak_calibration_temperature: float = _D.weak_calibration_temperature,
    student_calibration_temperature: float = _D.student_calibration_temperature,
    conf_select_mode: str = _D.conf_select_mode,
    conf_select_warmup: float = _D.conf_select_warmup,
) -> W2SLossOutput:
    """Train toward the weak label or the student's own, whichever is more likely correct.

    Per example the weak supervisor says ``ŵ`` with calibrated confidence ``c_w = max softmax(w / T_w)`` and the
    student ``ŝ`` with ``c_s = max softmax(s / T_s)``. ``hard``: ``CE(s, ŵ)`` if ``c_w >= r·c_s`` else ``CE(s, ŝ)``;
    ``soft``: ``π·CE(s, ŵ) + (1 − π)·CE(s, ŝ)`` with ``π = c_w / (c_w + r·c_s)``; ``r`` rises linearly from 0 to 1
    over the first ``conf_select_warmup`` of training (``r = 0`` is ``weak_hard``). ``π`` carries no gradient. The
    temperatures come from :mod:`hf_w2s.calibration` (temperature scaling on held-out ground truth)."""
    _check(student_logits, weak_logits)
    c_w, y_w = calibrated_confidence(weak_logits, weak_calibration_temperature)
    c_s, y_s = calibrated_confidence(student_logits, student_calibration_temperature)
    trust = linear_schedule(progress, conf_select_warmup, 1.0)
    pi = selection_weight(c_w, c_s, conf_select_mode, trust)
    ce_weak = ce_per_sample(student_logits, y_w)
    ce_self = ce_per_sample(student_logits, y_s)
    loss = pi * ce_weak + (1 - pi) * ce_self
    disagree = (y_w != y_s).float()
    return W2SLossOutput(
        loss,
        {
            "ce_weak": ce_weak.detach(),
            "ce_self": ce_self.detach(),
            "weak_weight": pi,
            # fraction of all examples on which the student's own label was chosen against the weak one
            "student_selected": disagree * (1 - pi),
            "conf_weak": c_w,
            "conf_student": c_s,
        },
    )


# ----------------------------------------------------------------------------------------------------------------
# the combination used by the trainer


def loss_info(name: str) -> LossInfo:
    """The registered loss ``name``; a ``ValueError`` naming the choices otherwise."""
    if name not in LOSSES:
        raise ValueError(f"Unknown w2s loss {name!r}; choose one of {sorted(LOSSES)}.")
    return LOSSES[name]


def knobs_of(name: str, source: LossKnobs | Mapping) -> dict:
    """The values of loss ``name``'s knobs, read from a :class:`LossKnobs` (e.g. a ``WeakToStrongConfig``) or a
    mapping (missing knobs take their :class:`LossKnobs` default)."""
    info = loss_info(name)
    if isinstance(source, Mapping):
        return {k: source[k] if k in source else getattr(_D, k) for k in info.knobs}
    return {k: getattr(source, k) for k in info.knobs}


def ground_truth_per_sample(
    student_logits: torch.Tensor, labels: torch.Tensor, label_mix: tuple | None = None, label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy to the true labels per sample, for the examples whose label is not -100.

    ``label_smoothing`` ε: the target is ``(1 − ε)·onehot(y) + ε/C`` (timm's and ``nn.CrossEntropyLoss``'s).
    ``label_mix = (λ, perm)`` (mixup/CutMix of the batch with its permutation ``perm``, λ one per batch or one per
    example, see
    :mod:`hf_w2s.trainer.augment`): the target is ``λ·target(y) + (1 − λ)·target(y[perm])``, i.e. the mixed image's
    label is mixed like its pixels (timm's ``mixup_target``)."""
    logits = student_logits.float()
    if label_mix is None:
        pairs = [(1.0, labels)]
    else:
        lam, perm = label_mix
        perm = perm.to(labels.device).long()
        lam = torch.as_tensor(lam, dtype=logits.dtype, device=logits.device).expand(labels.shape[0])
        pairs = [(lam, labels), (1.0 - lam, labels[perm])]
    valid = torch.ones_like(labels, dtype=torch.bool)
    for _, y in pairs:
        valid &= y != -100
    log_p = F.log_softmax(logits[valid], dim=-1)
    loss = torch.zeros(log_p.shape[0], device=logits.device)
    for weight, y in pairs:
        ce = _nll(log_p, y[valid])
        if label_smoothing > 0:
            ce = (1.0 - label_smoothing) * ce - label_smoothing * log_p.mean(-1)
        loss = loss + (weight if isinstance(weight, float) else weight[valid]) * ce
    return loss


def compute_w2s_loss(
    name: str,
    student_logits: torch.Tensor,
    weak_logits: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    *,
    gt_loss_weight: float = 0.0,
    weak_loss_weight: float = 1.0,
    progress: float = 1.0,
    label_mix: tuple | None = None,
    label_smoothing: float = 0.0,
    **knobs,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``λ_gt·mean CE(s, y) + λ_w·mean(loss_name(s, w))``; returns the scalar loss and mean components.

    ``knobs``: :class:`LossKnobs` values; only those the loss declares are passed to it (others are ignored, unknown
    names are an error). For ``ground_truth`` the weak term is CE to the labels and ``gt_loss_weight`` is ignored.
    Labels equal to -100 are ignored by the ground-truth term. ``label_mix`` and ``label_smoothing`` shape the
    ground-truth target (:func:`ground_truth_per_sample`): a mixed batch's true labels are mixed like its images.
    """
    info = loss_info(name)
    unknown = [k for k in knobs if k not in KNOB_NAMES]
    if unknown:
        raise ValueError(f"unknown loss knob(s) {unknown}; the knobs are {sorted(KNOB_NAMES)}")
    if info.uses_weak and weak_logits is None:
        raise ValueError(
            f"loss {name!r} needs weak supervision: a 'weak_logits' column in the batch or a weak_model."
        )
    weak_logits = None if weak_logits is None else weak_logits.to(student_logits.device)
    needs_gt_target = not info.uses_weak and (label_mix is not None or label_smoothing > 0)
    if needs_gt_target:  # the ceiling on a mixed or smoothed batch
        if labels is None:
            raise ValueError(f"loss {name!r} needs true labels in the batch (a 'label' or 'labels' column).")
        per_sample = ground_truth_per_sample(student_logits, labels, label_mix, label_smoothing)
        out = W2SLossOutput(per_sample, {"ce_gt": per_sample.detach()})
    else:
        out = info.fn(student_logits, weak_logits, labels, progress, **{k: knobs[k] for k in info.knobs if k in knobs})
    loss = weak_loss_weight * out.loss.mean() if info.uses_weak else out.loss.mean()
    comps = {k: v.float().mean() for k, v in out.components.items()}
    comps["loss_w2s"] = out.loss.detach().mean()
    if info.uses_weak and gt_loss_weight > 0:
        if labels is None:
            raise ValueError("gt_loss_weight > 0 needs true labels in the batch (a 'label' or 'labels' column).")
        ce_gt = ground_truth_per_sample(student_logits, labels, label_mix, label_smoothing)
        ce_gt_mean = ce_gt.mean() if ce_gt.numel() else student_logits.sum() * 0.0
        loss = loss + gt_loss_weight * ce_gt_mean
        comps["ce_gt"] = ce_gt_mean.detach()
    if weak_logits is not None:
        comps["agreement"] = (student_logits.detach().argmax(-1) == weak_logits.argmax(-1)).float().mean()
    return loss, comps
