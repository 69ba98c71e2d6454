"""LoRA students with PEFT: a ``peft.LoraConfig`` completed for the architecture, and saving both the adapter and a
merged plain model. As in TRL, the trainer takes ``peft_config=``; :meth:`hf_w2s.ModelConfig.get_peft_config` builds
it from the command line's ``use_peft`` / ``lora_*`` options.

A LoRA student trains low-rank updates of the attention (or convolution) weights plus a full copy of the new
classifier head (``modules_to_save``). Batch-norm layers are saved as well: their running statistics change while
training even though their weights are frozen, and the adapter alone would otherwise not reproduce the student.

Saved layout (:func:`save_lora_student`)::

    output_dir/            the merged student (``merge_and_unload``): a plain transformers model
    output_dir/adapter/    the LoRA adapter (``PeftModel.from_pretrained(base, output_dir, subfolder="adapter")``)
"""

from __future__ import annotations

import os

import torch

from .modeling import head_module_name

# transformers 5 module names (checked on tiny configs of each architecture)
DEFAULT_LORA_TARGETS: dict[str, list[str]] = {
    "vit": ["q_proj", "v_proj"],
    "vit_mae": ["q_proj", "v_proj"],
    "dinov2": ["q_proj", "v_proj"],
    "dinov2_with_registers": ["q_proj", "v_proj"],
    "swin": ["q_proj", "v_proj"],
    "beit": ["q_proj", "v_proj"],
    "swinv2": ["query", "value"],
    "convnext": ["pwconv1", "pwconv2"],
    "convnextv2": ["pwconv1", "pwconv2"],
    "resnet": ["convolution"],
    # the 1x1 convolutions of every MBConv block and the head (not the depthwise ones, nor the squeeze-excite gates
    # that EfficientNet-Lite checkpoints hold at the identity)
    "efficientnet": ["expand_conv", "project_conv", "top_conv"],
}

ADAPTER_SUBFOLDER = "adapter"


def _suffixes(model, types=(torch.nn.Linear, torch.nn.Conv2d)) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if name and isinstance(m, types)}


def default_lora_targets(model) -> list[str]:
    """LoRA ``target_modules`` for ``model``'s architecture; a ``ValueError`` naming the candidates otherwise."""
    model_type = getattr(model.config, "model_type", None)
    present = _suffixes(model) - {head_module_name(model)}
    targets = DEFAULT_LORA_TARGETS.get(model_type)
    if targets is None or not set(targets) <= present:
        why = (f"no default LoRA target modules for model_type={model_type!r}" if targets is None else
               f"the default LoRA targets {targets} for model_type={model_type!r} are not in this model")
        raise ValueError(
            f"{why}; pass --lora_target_modules with names of its Linear/Conv2d layers, e.g. from "
            f"{sorted(present)} (defaults exist for {sorted(DEFAULT_LORA_TARGETS)})."
        )
    return list(targets)


def lora_modules_to_save(model) -> list[str]:
    """The head, plus every batch-norm layer name (their running statistics are part of the trained student)."""
    names = [head_module_name(model)]
    names += sorted(_suffixes(model, (torch.nn.modules.batchnorm._BatchNorm,)) - set(names))
    return names


def complete_peft_config(peft_config, model):
    """``peft_config`` (a ``peft.LoraConfig``) made ready for ``model``: ``target_modules`` left unset become the
    architecture's defaults (:func:`default_lora_targets`), ``modules_to_save`` left unset become the head and the
    batch norms (:func:`lora_modules_to_save`); target names that match no layer are refused, naming the candidates.
    Returns a copy; the caller's config is unchanged."""
    import copy

    config = copy.deepcopy(peft_config)
    targets = config.target_modules
    if targets:
        if isinstance(targets, str):
            targets = [targets]
        missing = [t for t in targets if t not in _suffixes(model)]
        if missing:
            raise ValueError(f"lora_target_modules {missing} match no Linear/Conv2d layer of "
                             f"{type(model).__name__}; choose from {sorted(_suffixes(model))}")
        config.target_modules = set(targets)
    else:
        config.target_modules = set(default_lora_targets(model))
    if config.modules_to_save is None:
        config.modules_to_save = lora_modules_to_save(model)
    return config


def apply_peft(model, peft_config):
    """``model`` wrapped in a ``PeftModel`` for ``peft_config`` (completed for it: :func:`complete_peft_config`)."""
    from peft import get_peft_model

    return get_peft_model(model, complete_peft_config(peft_config, model))


def save_lora_student(peft_model, output_dir: str, base_model_name_or_path: str | None = None,
                      image_processor=None):
    """Save the adapter to ``output_dir/adapter`` and the merged model to ``output_dir``; returns the merged model.

    ``base_model_name_or_path`` is recorded in the adapter config (what ``PeftModel.from_pretrained`` needs as its
    base). The peft model is merged in place and cannot be trained further afterwards.
    """
    adapter_dir = os.path.join(output_dir, ADAPTER_SUBFOLDER)
    if base_model_name_or_path is not None:
        for cfg in peft_model.peft_config.values():
            cfg.base_model_name_or_path = base_model_name_or_path
    peft_model.save_pretrained(adapter_dir)
    merged = peft_model.merge_and_unload()
    merged.save_pretrained(output_dir)
    if image_processor is not None:
        image_processor.save_pretrained(output_dir)
    return merged
