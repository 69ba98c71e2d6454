"""Matching label spaces by *name* (``id2label``), never by index."""

from __future__ import annotations

from collections import Counter
from typing import Mapping

import torch

__all__ = ["label_names", "label_maps", "names_of", "label_permutation", "reorder_logits", "is_generic"]


def label_names(id2label: Mapping) -> list[str]:
    """Label names ordered by id (``id2label`` keys may be ints or strings, as in JSON configs)."""
    items = sorted(((int(k), str(v)) for k, v in id2label.items()), key=lambda kv: kv[0])
    ids = [k for k, _ in items]
    if ids != list(range(len(ids))):
        raise ValueError(f"id2label must have ids 0..{len(ids) - 1}, got {ids}")
    return [v for _, v in items]


def label_maps(names) -> tuple[dict[int, str], dict[str, int]]:
    """``(id2label, label2id)`` for names in id order (a repeated name keeps its first id in ``label2id``)."""
    names = [str(n) for n in names]
    label2id: dict[str, int] = {}
    for i, n in enumerate(names):
        label2id.setdefault(n, i)
    return dict(enumerate(names)), label2id


def names_of(obj) -> list[str] | None:
    """Label names from a list of names, a ``datasets.ClassLabel``, a model, or a config with ``id2label``."""
    if obj is None:
        return None
    if hasattr(obj, "names") and hasattr(obj, "num_classes"):  # a ClassLabel
        return [str(n) for n in obj.names]
    config = getattr(obj, "config", obj)
    id2label = getattr(config, "id2label", None)
    if id2label is not None:
        return label_names(id2label)
    if isinstance(obj, (list, tuple)):
        return [str(n) for n in obj]
    raise TypeError(f"cannot read label names from {type(obj).__name__}; pass a list of names or a model/config")


def is_generic(names) -> bool:
    """Whether ``names`` are transformers' placeholders (``LABEL_0``, ``LABEL_1``, ...), which name nothing."""
    return all(str(n) == f"LABEL_{i}" for i, n in enumerate(names))


def _repeated(names: list[str]) -> list[str]:
    return sorted(n for n, c in Counter(names).items() if c > 1)


def _same_up_to_repeats(a: list[str], b: list[str]) -> bool:
    """Two label lists of one size that differ only where one of them repeats a name (ImageNet's "crane" at 134 and
    517, which datasets' ``ClassLabel`` stores as "crane2"): the same label set, matched by index."""
    if len(a) != len(b):
        return False
    rep_a, rep_b, set_a, set_b = set(_repeated(a)), set(_repeated(b)), set(a), set(b)
    differ = [(x, y) for x, y in zip(a, b) if x != y]
    # at each difference one side repeats a name and the other side's name is an alias found nowhere on the first
    return bool(differ) and all((x in rep_a and y not in set_a) or (y in rep_b and x not in set_b) for x, y in differ)


def label_permutation(source_names, target_names, *, source="weak model", target="student") -> list[int] | None:
    """Index list ``idx`` such that ``source_logits[:, idx]`` is ordered as ``target_names``.

    Returns ``None`` when the orders already agree (also when names repeat, as ImageNet's do, and the two lists of one
    size differ only at repeated names: they are then matched by index). Raises ``ValueError`` listing the names that
    are missing on either side, or the repeated names when the sets differ in order and repeated names make the match
    by name ambiguous (before any compute).
    """
    source_names = [str(n) for n in source_names]
    target_names = [str(n) for n in target_names]
    if source_names == target_names or _same_up_to_repeats(source_names, target_names):
        return None
    missing = [n for n in target_names if n not in source_names]
    extra = [n for n in source_names if n not in target_names]
    if missing or extra:
        raise ValueError(
            f"label names of the {source} and the {target} do not match: "
            f"missing from the {source}: {missing[:20]}{' ...' if len(missing) > 20 else ''}; missing from the "
            f"{target}: {extra[:20]}{' ...' if len(extra) > 20 else ''}. Weak and strong models are matched by "
            "id2label names."
        )
    repeated = _repeated(source_names) or _repeated(target_names)
    if repeated:
        raise ValueError(
            f"the {source}'s and the {target}'s label names are in different orders and some repeat ({repeated}), "
            f"so they cannot be matched by name; give both the same label order (then they are matched by index)."
        )
    pos = {n: i for i, n in enumerate(source_names)}
    return [pos[n] for n in target_names]


def reorder_logits(logits: torch.Tensor, perm: list[int] | None) -> torch.Tensor:
    return logits if perm is None else logits[..., torch.as_tensor(perm, device=logits.device)]
