"""Matching label spaces by *name* (``id2label``), never by index."""

from __future__ import annotations

from typing import Mapping

import torch


def label_names(id2label: Mapping) -> list[str]:
    """Label names ordered by id (``id2label`` keys may be ints or strings, as in JSON configs)."""
    items = sorted(((int(k), str(v)) for k, v in id2label.items()), key=lambda kv: kv[0])
    ids = [k for k, _ in items]
    if ids != list(range(len(ids))):
        raise ValueError(f"id2label must have ids 0..{len(ids) - 1}, got {ids}")
    return [v for _, v in items]


def label_permutation(source_names, target_names, *, source="weak model", target="student") -> list[int] | None:
    """Index list ``idx`` such that ``source_logits[:, idx]`` is ordered as ``target_names``.

    Returns ``None`` when the orders already agree. Raises ``ValueError`` listing the names that are missing on
    either side (before any compute is spent).
    """
    source_names = [str(n) for n in source_names]
    target_names = [str(n) for n in target_names]
    if len(set(source_names)) != len(source_names):
        raise ValueError(f"the {source}'s label names are not unique: {source_names}")
    missing = [n for n in target_names if n not in source_names]
    extra = [n for n in source_names if n not in target_names]
    if missing or extra:
        raise ValueError(
            f"label names of the {source} and the {target} do not match: "
            f"missing from the {source}: {missing}; missing from the {target}: {extra}. "
            "Weak and strong models are matched by id2label names."
        )
    if source_names == target_names:
        return None
    pos = {n: i for i, n in enumerate(source_names)}
    return [pos[n] for n in target_names]


def reorder_logits(logits: torch.Tensor, perm: list[int] | None) -> torch.Tensor:
    return logits if perm is None else logits[..., torch.as_tensor(perm, device=logits.device)]
