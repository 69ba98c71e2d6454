"""Pre-processed pixels kept in memory for image datasets that fit: each image decoded and pre-processed once.

Without it every epoch decodes every image again (``datasets`` decodes PNG/JPEG on access) and runs the image
processor on every batch; for small images and small models that is most of a run's time on a CPU (about half of a
tiny ResNet's training on MNIST digits). The image processor is deterministic, and random augmentation runs later, on
the ``pixel_values`` tensor in the training step (:class:`~hf_w2s.WeakToStrongTrainer`), so pre-processing once
gives exactly the batches the collator would have built, in the same order, and the same training.

:func:`cache_pixels` is applied by the trainer to each map-style ``datasets.Dataset`` it builds a data loader for,
when the pixels fit in ``WeakToStrongConfig.pixel_cache_mb``; anything else (an ``IterableDataset``, a dataset that
already yields ``pixel_values``, a custom collator, a dataset too large) goes through the collator as before.
"""

from __future__ import annotations

import logging

import torch

from ..data.images import pixel_values_from_images

logger = logging.getLogger(__name__)

#: images pre-processed per step while filling the cache
CHUNK = 256


class PreprocessedImages(torch.utils.data.Dataset):
    """``rows`` (the dataset without its image column) with each row's pre-processed ``pixel_values`` (and
    ``weak_pixel_values`` for an online weak model with its own processor) taken from in-memory tensors."""

    def __init__(self, rows, pixel_values: torch.Tensor, weak_pixel_values: torch.Tensor | None = None):
        self.rows = rows
        self.pixel_values = pixel_values
        self.weak_pixel_values = weak_pixel_values

    def __len__(self) -> int:
        return len(self.pixel_values)

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices) -> list[dict]:
        indices = [int(i) for i in indices]
        rows = self.rows.__getitems__(indices) if self.rows.column_names else [{} for _ in indices]
        for row, i in zip(rows, indices):
            row["pixel_values"] = self.pixel_values[i]
            if self.weak_pixel_values is not None:
                row["weak_pixel_values"] = self.weak_pixel_values[i]
        return rows


def cache_pixels(dataset, collator, max_mb: float) -> PreprocessedImages | None:
    """``dataset`` with every image pre-processed once by ``collator``'s image processor(s), or ``None`` when it does
    not apply (see the module doc) or the pixels would take more than ``max_mb`` MiB."""
    import datasets

    from .collator import WeakToStrongCollator

    if max_mb <= 0 or not isinstance(collator, WeakToStrongCollator) or collator.image_processor is None:
        return None
    if not isinstance(dataset, datasets.Dataset) or len(dataset) == 0:
        return None
    column = collator.image_column
    if column not in dataset.column_names or "pixel_values" in dataset.column_names or dataset.format.get("type"):
        return None  # no images, already pre-processed, or a format / transform of the user's: leave it alone
    n = len(dataset)
    processors = [collator.image_processor]
    if collator.weak_image_processor is not None:
        processors.append(collator.weak_image_processor)
    first = [row[column] for row in dataset.__getitems__([0])]
    shapes = [pixel_values_from_images(first, processor).shape[1:] for processor in processors]  # one image
    needed = sum(shape.numel() * 4 for shape in shapes) * n / 2**20
    if needed > max_mb:
        logger.info("not caching pre-processed pixels: %d images need %.0f MiB > pixel_cache_mb %g", n, needed,
                    max_mb)
        return None
    tensors = [torch.empty((n, *shape), dtype=torch.float32) for shape in shapes]
    for start in range(0, n, CHUNK):
        images = [row[column] for row in dataset.__getitems__(list(range(start, min(start + CHUNK, n))))]
        for tensor, processor in zip(tensors, processors):
            chunk = pixel_values_from_images(images, processor).float()
            if chunk.shape[1:] != tensor.shape[1:]:  # a processor that keeps each image's size: batch by batch
                return None
            tensor[start:start + len(chunk)] = chunk
    logger.info("pre-processed %d images once, kept in memory (%.0f MiB)", n,
                sum(t.numel() * 4 for t in tensors) / 2**20)
    return PreprocessedImages(dataset.remove_columns(column), tensors[0], tensors[1] if len(tensors) > 1 else None)
