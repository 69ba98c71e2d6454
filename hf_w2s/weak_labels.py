"""Label an image dataset with a weak supervisor: ``weak_logits``, ``weak_label``, ``weak_confidence`` columns."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from datasets import Dataset, Features, List, Value
from datasets.fingerprint import Hasher

from .collator import pixel_values_from_images
from .distributed import shard_over_processes


def model_identity(model) -> str:
    """A stable identity for a model: its Hub commit if it came from the Hub, else a hash of its weights."""
    commit = getattr(model.config, "_commit_hash", None)
    name = getattr(model.config, "_name_or_path", "") or ""
    if commit:
        return f"{name}@{commit}"
    h = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return f"sha256:{h.hexdigest()}"


def processor_identity(image_processor) -> str:
    return hashlib.sha256(image_processor.to_json_string().encode()).hexdigest()


@shard_over_processes  # multi-process hook (issue 6): each process labels a contiguous shard, gathered in order
def label_dataset(
    dataset: Dataset,
    weak_model,
    image_processor,
    *,
    image_column: str = "image",
    batch_size: int = 64,
    logits_column: str = "weak_logits",
    desc: str = "weak labels",
) -> Dataset:
    """Add ``weak_logits`` (float32, one per class), ``weak_label`` and ``weak_confidence`` columns.

    Runs the weak model under ``torch.inference_mode()`` through ``Dataset.map(batched=True)``. The map is
    fingerprinted from the dataset's fingerprint, the weak model's identity, the processor's config and these
    parameters, so re-running on a dataset loaded from disk is read from the cache.
    """
    if image_column not in dataset.column_names:
        raise ValueError(f"dataset has no image column {image_column!r}; columns: {dataset.column_names}")
    num_labels = weak_model.config.num_labels
    weak_model.eval()
    device = next(weak_model.parameters()).device

    def _label(batch):
        pixel_values = pixel_values_from_images(batch[image_column], image_processor).to(device)
        with torch.inference_mode():
            logits = weak_model(pixel_values=pixel_values).logits.float().cpu().numpy()
        probs = torch.softmax(torch.from_numpy(logits), -1).numpy()
        return {
            logits_column: logits,
            "weak_label": logits.argmax(-1),
            "weak_confidence": probs.max(-1),
        }

    fingerprint = Hasher.hash(
        json.dumps(
            {
                "dataset": dataset._fingerprint,
                "model": model_identity(weak_model),
                "processor": processor_identity(image_processor),
                "image_column": image_column,
                "logits_column": logits_column,
                "v": 1,
            },
            sort_keys=True,
        )
    )
    features = dataset.features.copy()
    features[logits_column] = List(Value("float32"), length=num_labels)
    features["weak_label"] = Value("int64")
    features["weak_confidence"] = Value("float32")
    return dataset.map(
        _label, batched=True, batch_size=batch_size, features=Features(features), new_fingerprint=fingerprint,
        desc=desc,
    )


def weak_logits_array(dataset: Dataset, column: str = "weak_logits") -> np.ndarray:
    """The ``(N, C)`` float32 array of a weak-logits column."""
    return np.asarray(dataset.with_format("numpy")[column], dtype=np.float32)
