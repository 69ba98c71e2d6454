"""Tiny image-classification datasets for the multi-process and GPU tests: random images, labels, weak logits."""

from __future__ import annotations

import numpy as np
from datasets import ClassLabel, Dataset, Features, Image, List, Value


def random_images(n: int, size: int, seed: int, mode: str = "RGB") -> list:
    """``n`` PIL images of ``size`` × ``size`` random pixels (``mode`` "L" or "RGB")."""
    from PIL import Image as PILImage

    shape = (n, size, size) if mode == "L" else (n, size, size, 3)
    arrays = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    return [PILImage.fromarray(a, mode=mode) for a in arrays]


def labelled_images(images: list, names: list[str], with_weak_logits: bool, seed: int = 1,
                    scale: float = 3.0) -> Dataset:
    """``images`` with random ``label``s (a ClassLabel of ``names``) and, if asked, random ``weak_logits``
    (standard normal × ``scale``), both drawn from one generator seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    n = len(images)
    data = {"image": images, "label": rng.integers(0, len(names), n).tolist()}
    features = {"image": Image(), "label": ClassLabel(names=names)}
    if with_weak_logits:
        data["weak_logits"] = (scale * rng.standard_normal((n, len(names)))).astype(np.float32).tolist()
        features["weak_logits"] = List(Value("float32"), length=len(names))
    return Dataset.from_dict(data, features=Features(features))


def tiny_run_args(output_dir: str, per_device_batch: int, steps: int, **overrides) -> dict:
    """``WeakToStrongConfig`` keyword arguments of a tiny CPU run: AdaptConf with half-weighted ground truth, plain
    SGD (its update is linear in the gradient: Adam's normalised step would amplify float noise in gradients that are
    zero in exact arithmetic, such as the attention key bias), every step logged, nothing saved or reported."""
    return dict(output_dir=output_dir, w2s_loss="adapt_conf", gt_loss_weight=0.5,
                per_device_train_batch_size=per_device_batch, max_steps=steps, optim="sgd", logging_steps=1,
                save_strategy="no", report_to="none", use_cpu=True, seed=0, disable_tqdm=True, **overrides)


def weak_model_with_dropout_and_batch_norm(names: list[str], image_size: int = 8, num_channels: int = 3,
                                           seed: int = 0, dropout: float = 0.5):
    """A small ResNet (batch norm) whose head has a dropout layer: a weak model whose outputs in training mode differ
    from its outputs in evaluation mode (batch statistics, random dropout), unlike a LayerNorm-only model."""
    import torch

    from hf_w2s.modeling import build_model

    model = build_model("resnet", names, image_size=image_size, num_channels=num_channels, width=8, depth=1,
                        seed=seed)
    flatten, linear = model.classifier
    model.classifier = torch.nn.Sequential(flatten, torch.nn.Dropout(dropout), linear)
    return model
