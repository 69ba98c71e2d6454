"""Cached-feature students: a frozen backbone's features computed once, kept as a ``datasets`` column, and a head
trained on them that goes back into the whole model.

The features are what the model's classification head reads — the input of its ``classifier`` module (EfficientNet's
and ResNet's pooled output, ViT's normalised ``[CLS]`` token, DINOv2's ``[CLS]`` and mean patch token, …), captured
in evaluation mode with a forward hook — so a head trained on them and put back (:func:`put_head_back`) gives the
whole model the same logits on images (a plain ``transformers`` checkpoint: ``from_pretrained`` and ``pipeline``
predict what the head predicted). :func:`cache_features` writes them with :func:`hf_w2s.data.map_batches_to_columns`
(on disk, over processes, from a stream) under a deliberate fingerprint: the input dataset, the backbone's weights
(not its head: every seed's fresh head shares the features), the processor (input size included) and the head's
name — re-running is free, and a changed model, resolution or dataset never reuses stale features.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import torch

__all__ = ["FEATURE_COLUMN", "FeatureHead", "cache_features", "features_fingerprint", "put_head_back",
           "backbone_identity", "head_features"]

FEATURE_COLUMN = "features"
FEATURES_VERSION = 1


def backbone_identity(model) -> str:
    """A hash of every weight but the classification head's, and of the config without its labels: what the
    features depend on."""
    import hashlib

    from ..modeling import head_module_name

    head = head_module_name(model) + "."
    h = hashlib.sha256(type(model).__name__.encode())
    config = {k: v for k, v in model.config.to_dict().items() if k not in (
        "id2label", "label2id", "num_labels", "_name_or_path", "_commit_hash", "transformers_version", "architectures",
        "dtype", "torch_dtype", "use_cache")}
    h.update(json.dumps(config, sort_keys=True, default=str).encode())
    for key, tensor in sorted(model.state_dict().items()):
        if key.startswith(head):
            continue
        t = tensor.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def head_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """What ``model``'s classification head reads for ``pixel_values``, as ``(B, D)`` float32 (evaluation mode, no
    autograd; the model's modes are restored)."""
    from ..modeling import head_module_name
    from ..predicting import predicting

    head = getattr(model, head_module_name(model))
    captured = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0].detach()))
    try:
        with predicting(model):
            model(pixel_values=pixel_values)
    finally:
        hook.remove()
    return captured[0].reshape(captured[0].shape[0], -1).float()


def features_fingerprint(dataset, model, image_processor, image_column: str) -> str:
    from datasets.fingerprint import Hasher

    from ..modeling import head_module_name
    from .weak_labels import processor_identity

    payload = {"dataset": dataset._fingerprint, "backbone": backbone_identity(model),
               "processor": processor_identity(image_processor), "head": head_module_name(model),
               "image_column": image_column, "version": FEATURES_VERSION}
    return Hasher.hash(json.dumps(payload, sort_keys=True, default=str))


def cache_features(dataset, model, image_processor, *, image_column: str = "image", batch_size: int = 64,
                   column: str = FEATURE_COLUMN, device=None, desc: str = "features", output_dir: str | None = None):
    """``dataset`` with ``column``: the features ``model``'s head reads (:func:`head_features`) for each image,
    float32, computed once (cached under :func:`features_fingerprint`). ``output_dir``: for a streaming dataset,
    where its Parquet shards go."""
    from datasets import Features, List, Value

    from .batch_columns import map_batches_to_columns
    from .images import decode_image, pixel_values_from_images

    if image_column not in (dataset.column_names or []):
        raise ValueError(f"cache_features: the dataset has no image column {image_column!r} (columns: "
                         f"{dataset.column_names})")
    if device is None:
        from accelerate import PartialState

        device = PartialState().device
    home = next(model.parameters()).device
    from datasets import Image

    decoder = Image()
    width = _feature_width(model, image_processor, device)

    def compute(values, rows):
        images = [decode_image(v, r, image_column, decoder) for v, r in zip(values, rows)]
        pixel_values = pixel_values_from_images(images, image_processor).to(device)
        model.to(device)
        return {column: head_features(model, pixel_values).cpu().numpy().astype(np.float32)}

    try:
        return map_batches_to_columns(
            dataset, compute, features=Features({column: List(Value("float32"), length=width)}),
            fingerprint=features_fingerprint(dataset, model, image_processor, image_column),
            input_columns=[image_column], batch_size=batch_size, tag="features", desc=desc,
            what="cache_features", output_dir=output_dir)
    finally:
        model.to(home)


def _feature_width(model, image_processor, device) -> int:
    """The head's input width: its first linear layer's, or (a head without one) from one blank image through the
    whole model."""
    from PIL import Image

    from ..modeling import head_module_name

    linear = next((m for m in getattr(model, head_module_name(model)).modules() if isinstance(m, torch.nn.Linear)),
                  None)
    if linear is not None:
        return int(linear.in_features)

    from .images import pixel_values_from_images

    size = getattr(image_processor, "size", None) or {}
    size = size if isinstance(size, dict) else {k: v for k, v in vars(size).items() if v is not None}
    side = int(size.get("height") or size.get("shortest_edge") or 32)
    blank = Image.new("RGB", (side, side))
    model.to(device)
    return int(head_features(model, pixel_values_from_images([blank], image_processor).to(device)).shape[1])


class FeatureHead(torch.nn.Module):
    """A copy of ``model``'s classification head, trained on cached features: the model ``WeakToStrongTrainer``
    trains when the students are cached-feature probes. Its batches carry the features as ``pixel_values``."""

    def __init__(self, model):
        super().__init__()
        from ..modeling import head_module_name

        self.head_name = head_module_name(model)
        self.head = copy.deepcopy(getattr(model, self.head_name))
        self.config = model.config

    def forward(self, pixel_values=None, labels=None, **kwargs):
        from transformers.modeling_outputs import ImageClassifierOutput

        return ImageClassifierOutput(logits=self.head(pixel_values.float()))


def put_head_back(model, head: FeatureHead):
    """``model`` with the trained head's weights in its classification head (the same module, so the whole model
    predicts on images what the head predicted on their features); returns ``model``."""
    getattr(model, head.head_name).load_state_dict(head.head.state_dict())
    return model
