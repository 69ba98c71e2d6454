"""Batches for weak-to-strong training: images → ``pixel_values``, plus ``labels`` and ``weak_logits`` if present."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from ..data.images import pixel_values_from_images
from ..data.logit_storage import full_width  # float16 / top-k weak logits arrive at full width

LABEL_KEYS = ("labels", "label", "label_ids")


@dataclass
class WeakToStrongCollator:
    """Collate examples into a batch for :class:`~hf_w2s.WeakToStrongTrainer`.

    Examples may already carry ``pixel_values`` (e.g. from ``Dataset.set_transform``) or a raw image in
    ``image_column``, which ``image_processor`` turns into ``pixel_values`` (converted to the processor's channel
    mode first). ``weak_image_processor`` adds ``weak_pixel_values`` for an online weak model with its own
    preprocessing. ``train_transform`` (a callable on the ``pixel_values`` tensor, e.g. kornia augmentation) is
    applied only when ``training`` is set. ``weak_logits_columns`` (several weak supervisors) stacks those columns
    into ``weak_logits`` of shape ``(B, K, C)`` (examples with none of them, e.g. a plain test set, get none).
    """

    image_processor: Any = None
    weak_image_processor: Any = None
    image_column: str = "image"
    weak_logits_column: str = "weak_logits"
    train_transform: Callable | None = None
    training: bool = True
    weak_logits_columns: tuple[str, ...] | list[str] | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        first = features[0]
        batch: dict[str, torch.Tensor] = {}
        images = None
        if "pixel_values" in first:
            batch["pixel_values"] = _stack([f["pixel_values"] for f in features])
        elif self.image_column in first:
            if self.image_processor is None:
                raise ValueError(
                    f"batches carry raw images in {self.image_column!r} but no image processor was given: pass "
                    "processing_class=AutoImageProcessor.from_pretrained(...) to the trainer."
                )
            images = [f[self.image_column] for f in features]
            batch["pixel_values"] = pixel_values_from_images(images, self.image_processor)
        else:
            raise ValueError(
                f"examples have neither 'pixel_values' nor an image column {self.image_column!r}; "
                f"columns present: {sorted(first)}"
            )
        batch["pixel_values"] = batch["pixel_values"].float()
        if self.training and self.train_transform is not None:
            batch["pixel_values"] = self.train_transform(batch["pixel_values"])
        if "weak_pixel_values" in first:  # pre-processed once (hf_w2s.trainer.pixel_cache)
            batch["weak_pixel_values"] = _stack([f["weak_pixel_values"] for f in features]).float()
        elif self.weak_image_processor is not None:
            if images is None:
                images = [f[self.image_column] for f in features]
            batch["weak_pixel_values"] = pixel_values_from_images(images, self.weak_image_processor).float()
        for key in LABEL_KEYS:
            if key in first and first[key] is not None:
                batch["labels"] = torch.as_tensor([int(f[key]) for f in features], dtype=torch.long)
                break
        if self.weak_logits_columns and any(c in first for c in self.weak_logits_columns):
            missing = [c for c in self.weak_logits_columns if c not in first]
            if missing:
                raise ValueError(f"examples lack the weak logits column(s) {missing}; columns present: {sorted(first)}")
            batch["weak_logits"] = torch.as_tensor(
                np.stack([full_width([f[c] for f in features]) for c in self.weak_logits_columns], axis=1)
            )
        elif self.weak_logits_column in first and first[self.weak_logits_column] is not None:
            batch["weak_logits"] = torch.as_tensor(full_width([f[self.weak_logits_column] for f in features]))
        return batch


def _stack(values: list) -> torch.Tensor:
    if isinstance(values[0], torch.Tensor):
        return torch.stack(values)
    return torch.stack([torch.as_tensor(np.asarray(v)) for v in values])
