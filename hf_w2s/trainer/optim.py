"""Layer-wise learning-rate decay (BEiT / MAE fine-tuning) for transformer image encoders.

Block ``i`` (0-based) of an encoder with ``L`` blocks trains at ``lr · decay^(L − i)``, the patch embeddings at
``lr · decay^(L + 1)``, and everything after the encoder (final norm, pooler, classifier head) at ``lr``. Blocks are
found by name: one container of numbered blocks, ``….layers.N.…`` (transformers 5) or ``….encoder.layer.N.…`` (ViT,
DeiT, BEiT, DINOv2, ViT-MAE loaded as ViT; also inside a PEFT model), so nothing depends on one architecture's class.
Hierarchical models (ResNet, ConvNeXt, Swin: blocks numbered within stages) are refused.
"""

from __future__ import annotations

import re
from collections import defaultdict

import torch

_BLOCK = re.compile(r"^(.*?)(?:^|\.)layers?\.(\d+)\.(.*)$")
_EMBEDDINGS = re.compile(r"(?:^|\.)embeddings\.")


def layer_ids(model: torch.nn.Module) -> tuple[dict[str, int], int]:
    """``{parameter name: layer id}`` (0 = embeddings, ``i + 1`` = block ``i``, ``L + 1`` = after the encoder) and
    ``L``. Raises ``ValueError`` naming the model when it has no single sequence of numbered blocks."""
    names = [n for n, _ in model.named_parameters()]
    matches = {n: m for n in names if (m := _BLOCK.match(n))}
    blocks = {n: int(m.group(2)) for n, m in matches.items()}
    containers = {m.group(1) for m in matches.values()}
    nested = any(re.search(r"(?:^|\.)(?:layers?|blocks|stages)\.\d+\.", m.group(3)) for m in matches.values())
    if not blocks or len(containers) != 1 or nested:
        raise ValueError(
            f"layer_decay needs a transformer encoder with one sequence of numbered blocks ('layers.N' / "
            f"'encoder.layer.N': ViT, DeiT, BEiT, DINOv2, ViT-MAE); {type(model).__name__} has "
            f"{'none' if not blocks else 'blocks numbered within stages'}. Set layer_decay 1.0 (off)."
        )
    num_layers = max(blocks.values()) + 1
    ids = {}
    for n in names:
        if n in blocks:
            ids[n] = blocks[n] + 1
        elif _EMBEDDINGS.search(n):
            ids[n] = 0
        else:
            ids[n] = num_layers + 1
    return ids, num_layers


def apply_layer_decay(optimizer: torch.optim.Optimizer, model: torch.nn.Module, decay: float) -> None:
    """Split every param group of a freshly built ``optimizer`` by layer, each at ``lr · decay^(L + 1 − id)``.

    The groups keep their other settings (weight decay, betas, ...); each new group records its ``layer_id``. Call it
    before the learning-rate scheduler is built (the scheduler scales every group's initial ``lr``).
    """
    if not 0.0 < decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {decay}.")
    if decay == 1.0 or any("layer_id" in group for group in optimizer.param_groups):
        return  # off, or already split (Trainer.create_optimizer returns its existing optimizer when called again)
    ids, num_layers = layer_ids(model)
    by_param = {id(p): ids[n] for n, p in model.named_parameters()}
    groups = []
    for group in optimizer.param_groups:
        split = defaultdict(list)
        for p in group["params"]:
            split[by_param.get(id(p), num_layers + 1)].append(p)
        settings = {k: v for k, v in group.items() if k != "params"}
        for layer, params in sorted(split.items()):
            scale = decay ** (num_layers + 1 - layer)
            groups.append({**settings, "params": params, "lr": settings["lr"] * scale, "layer_id": layer})
    optimizer.param_groups.clear()
    for group in groups:
        optimizer.add_param_group(group)
