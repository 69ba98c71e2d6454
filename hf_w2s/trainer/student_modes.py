"""What part of the student trains: all of it, a linear probe on frozen features, its last k blocks, or LoRA.

The mode is a training argument (``student_mode`` and its options, :class:`StudentModeArguments`, part of
:class:`~hf_w2s.WeakToStrongConfig`), applied by :class:`~hf_w2s.WeakToStrongTrainer` when it is built, so recipes
(``hf-w2s train --student_mode linear_probe``), the experiment harness (``training: {student_mode: last_blocks}``, or
per loss) and the demo all get it the same way, and the student stays a plain ``transformers`` model:

* ``full`` — every weight trains (the default).
* ``linear_probe`` — the backbone (``model.<base_model_prefix>``: ``efficientnet``, ``vit``, ``resnet``, ...) is
  frozen and **kept in evaluation mode**: its batch norms normalise with their pretrained running statistics and never
  update them, its dropout and stochastic depth are off, so the features are exactly the pretrained ones at every step
  (``model.train()``, which the Trainer calls every step, would otherwise switch batch norms back to batch statistics
  and move their running averages). Only what follows the backbone trains: the classifier head (and its dropout).
  OpenAI's vision weak-to-strong setting is such a probe on frozen DINO features.
* ``last_blocks`` — the last ``trainable_blocks`` blocks of the backbone and everything after them train; the
  embeddings and earlier blocks are frozen and kept in evaluation mode like a probe's backbone. Blocks are the
  outermost modules of the backbone named ``layer.N``, ``layers.N`` or ``blocks.N``, in order (EfficientNet: its 16
  MBConv blocks; ViT: its encoder layers; ResNet / ConvNeXt: the layers of every stage, stage after stage).
* ``lora`` — PEFT LoRA (:func:`hf_w2s.lora.apply_lora`; rank ``lora_r``, default 8): low-rank updates of the
  architecture's default layers (:data:`hf_w2s.lora.DEFAULT_LORA_TARGETS`: attention projections for ViT-like
  models, convolutions for ResNet, ConvNeXt and EfficientNet), with the head and the batch norms trained in full.
  ``lora_r > 0`` alone also selects it. Saved merged (:func:`hf_w2s.lora.save_lora_student`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

STUDENT_MODES = ("full", "linear_probe", "last_blocks", "lora")
#: LoRA rank of ``student_mode: lora`` when ``lora_r`` is left at 0
DEFAULT_LORA_RANK = 8
#: the training arguments of a model that trains in full (a weak supervisor fine-tuned on ground truth)
FULL_TRAINING = {"student_mode": "full", "lora_r": 0, "lora_alpha": None, "lora_target_modules": None}
_BLOCK = re.compile(r"(?:^|\.)(?:layers?|blocks)\.\d+$")


@dataclass
class StudentModeArguments:
    """The student-mode fields of :class:`~hf_w2s.WeakToStrongConfig` (see the module doc)."""

    student_mode: str = field(
        default="full",
        metadata={"help": "What trains: full (every weight), linear_probe (the backbone frozen in eval mode, batch "
                  "norms included: a linear probe on the pretrained features), last_blocks (the last "
                  "trainable_blocks blocks and the head), lora (PEFT LoRA, rank lora_r, on the architecture's "
                  "default layers; lora_r > 0 alone also selects it).", "choices": STUDENT_MODES},
    )
    trainable_blocks: int = field(
        default=1, metadata={"help": "student_mode last_blocks: how many of the backbone's last blocks train (>= 1)."}
    )
    lora_r: int = field(default=0, metadata={"help": f"LoRA rank; > 0 trains a LoRA student (PEFT); student_mode "
                                                    f"lora with 0 uses {DEFAULT_LORA_RANK}."})
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha (default 2 * lora_r)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] | None = field(
        default=None,
        metadata={"help": "Layer names LoRA adapts (default per architecture: q_proj v_proj for ViT/DINOv2/Swin, "
                  "pwconv1 pwconv2 for ConvNeXt, convolution for ResNet, expand_conv project_conv top_conv for "
                  "EfficientNet)."},
    )

    def validate_student_mode(self) -> None:
        if self.student_mode not in STUDENT_MODES:
            raise ValueError(f"student_mode must be one of {STUDENT_MODES}, got {self.student_mode!r}.")
        if isinstance(self.trainable_blocks, bool) or not isinstance(self.trainable_blocks, int) \
                or self.trainable_blocks < 1:
            raise ValueError(f"trainable_blocks must be an integer >= 1, got {self.trainable_blocks!r}.")
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be >= 0, got {self.lora_r}.")
        if self.lora_r > 0 and self.student_mode not in ("full", "lora"):
            raise ValueError(f"lora_r > 0 trains a LoRA student, but student_mode is {self.student_mode!r}: set "
                             "lora_r 0, or student_mode lora.")
        if self.student_mode_in_effect() != "lora" and (self.lora_alpha is not None or self.lora_target_modules):
            raise ValueError("lora_alpha / lora_target_modules are set but lora_r is 0: set lora_r > 0.")

    def student_mode_in_effect(self) -> str:
        return "lora" if self.lora_r > 0 else self.student_mode


def is_peft_model(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def apply_student_mode(model, args: StudentModeArguments):
    """``model`` prepared for ``args.student_mode``: parameters frozen (and frozen parts held in eval mode), or wrapped
    in LoRA; returns the model to train (the same object unless LoRA wraps it)."""
    mode = args.student_mode_in_effect()
    if mode == "full":
        return model
    if mode == "lora":
        if is_peft_model(model):
            return model  # already an adapter model (a caller applied LoRA itself)
        from ..lora import apply_lora

        model = apply_lora(model, args.lora_r or DEFAULT_LORA_RANK, args.lora_alpha, args.lora_target_modules,
                           args.lora_dropout)
    elif is_peft_model(model):
        raise ValueError(f"student_mode {mode!r} freezes parts of a plain model, but the student is already a PEFT "
                         "model; pass the base model.")
    else:
        for _, module in frozen_modules(model, mode, args.trainable_blocks):
            freeze(module)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info(f"student_mode={mode}: {trainable:,} of {total:,} parameters train")
    return model


def backbone(model) -> tuple[str, object]:
    """``(name, module)`` of the model's backbone (``base_model_prefix``), everything but the head."""
    name = getattr(model, "base_model_prefix", "")
    module = getattr(model, name, None) if name else None
    if module is None or module is model:
        raise ValueError(f"{type(model).__name__} has no separate backbone (base_model_prefix {name!r}) to freeze; "
                         "use student_mode full or lora.")
    return name, module


def numbered_blocks(module) -> list[tuple[str, object]]:
    """The outermost ``layer.N`` / ``layers.N`` / ``blocks.N`` modules of ``module``, in order."""
    blocks = []
    for name, child in module.named_modules():
        if _BLOCK.search(name) and not any(name.startswith(b + ".") for b, _ in blocks):
            blocks.append((name, child))
    return blocks


def frozen_modules(model, mode: str, trainable_blocks: int = 1) -> list[tuple[str, object]]:
    """The modules ``mode`` freezes, by name: the backbone (``linear_probe``), or every module of the backbone that
    runs before its last ``trainable_blocks`` blocks (``last_blocks``)."""
    base_name, base = backbone(model)
    if mode == "linear_probe":
        return [(base_name, base)]
    if mode != "last_blocks":
        raise ValueError(f"student_mode {mode!r} freezes nothing")
    blocks = numbered_blocks(base)
    if not blocks:
        raise ValueError(f"student_mode last_blocks needs a backbone with numbered blocks (layer.N, layers.N or "
                         f"blocks.N); {type(model).__name__} has none. Use linear_probe, lora or full.")
    if trainable_blocks > len(blocks):
        raise ValueError(f"trainable_blocks={trainable_blocks}, but {type(model).__name__} has {len(blocks)} blocks; "
                         f"choose 1 to {len(blocks)} (or student_mode full).")
    first = blocks[len(blocks) - trainable_blocks][0]
    parts = first.split(".")
    ancestors = {".".join(parts[:i]) for i in range(len(parts))}
    frozen = []
    for name, module in base.named_modules():  # depth first, in the order the modules run
        if name == first:
            break
        parent = name.rsplit(".", 1)[0] if "." in name else ""
        if name not in ancestors and parent in ancestors:
            frozen.append((f"{base_name}.{name}", module))
    return frozen


def _stay_in_eval(module, args) -> None:
    if module.training:
        module.eval()


def freeze(module) -> None:
    """No gradients for ``module``'s parameters, and ``module`` (batch norms, dropout, stochastic depth) in eval mode
    at every forward pass, whatever ``model.train()`` said."""
    for param in module.parameters():
        param.requires_grad_(False)
    module.eval()
    if not getattr(module, "_w2s_frozen", False):
        module.register_forward_pre_hook(_stay_in_eval)
        module._w2s_frozen = True
