"""What part of the student trains: all of it, a linear probe on frozen features, or its last k blocks.

The mode is a training argument (``student_mode``, ``trainable_blocks``: fields of
:class:`~hf_w2s.WeakToStrongConfig`) applied by :class:`~hf_w2s.WeakToStrongTrainer` when it is built, so every
command and the Python API get it the same way, and the student stays a plain ``transformers`` model. LoRA is not a
mode: it is PEFT's ``peft_config`` given to the trainer (``use_peft`` in :class:`~hf_w2s.ModelConfig`), as in TRL.

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
"""

from __future__ import annotations

import logging
import re

logger = logging.getLogger(__name__)

STUDENT_MODES = ("full", "linear_probe", "last_blocks")
_BLOCK = re.compile(r"(?:^|\.)(?:layers?|blocks)\.\d+$")


def is_peft_model(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def apply_student_mode(model, mode: str = "full", trainable_blocks: int = 1):
    """Freeze what ``mode`` freezes (and hold it in eval mode); returns ``model``."""
    if mode == "full":
        return model
    if is_peft_model(model):
        raise ValueError(f"student_mode {mode!r} freezes parts of a plain model, but the student is already a PEFT "
                         "model; pass the base model (and a peft_config) instead.")
    for _, module in frozen_modules(model, mode, trainable_blocks):
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
                         "use student_mode full (or LoRA: use_peft).")
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
                         f"blocks.N); {type(model).__name__} has none. Use linear_probe or full (or LoRA: use_peft).")
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
