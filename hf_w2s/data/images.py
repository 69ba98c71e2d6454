"""Images → ``pixel_values`` for an image processor: the one conversion used by labelling and training batches."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["processor_channels", "convert_images", "pixel_values_from_images"]


def processor_channels(image_processor) -> int | None:
    """Channels an image processor normalises for (1 for grayscale stats), or ``None`` if unknown."""
    mean = getattr(image_processor, "image_mean", None)
    if mean is None:
        return None
    return 1 if np.ndim(mean) == 0 or len(mean) == 1 else len(mean)


def convert_images(images: list, image_processor) -> list:
    """Convert PIL images to the mode the processor expects (``L`` for 1-channel stats, ``RGB`` otherwise)."""
    channels = processor_channels(image_processor)
    mode = "L" if channels == 1 else "RGB"
    out = []
    for im in images:
        if hasattr(im, "mode") and im.mode != mode:
            im = im.convert(mode)
        out.append(im)
    return out


def pixel_values_from_images(images: list, image_processor) -> torch.Tensor:
    """``image_processor(images)``'s ``pixel_values`` as a tensor, images first converted to its channel mode."""
    images = convert_images(images, image_processor)
    return torch.as_tensor(np.asarray(image_processor(images=images, return_tensors="np")["pixel_values"]))
