"""Small ``transformers`` image classifiers built from configs (offline), and a matching image processor."""

from __future__ import annotations

from transformers import AutoModelForImageClassification, ConvNextConfig, ResNetConfig, ViTConfig
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil


def label_maps(names):
    names = [str(n) for n in names]
    return {i: n for i, n in enumerate(names)}, {n: i for i, n in enumerate(names)}


def tiny_image_processor(image_size: int = 28, num_channels: int = 3) -> ViTImageProcessorPil:
    """A resize + rescale + normalise processor (mean/std 0.5 per channel) for small images.

    Three channels by default: grayscale digits are converted to RGB by the collator, and ``pipeline(
    "image-classification")``, which always converts inputs to RGB, then works on the saved students as it is.
    """
    return ViTImageProcessorPil(
        do_resize=True,
        size={"height": image_size, "width": image_size},
        image_mean=[0.5] * num_channels,
        image_std=[0.5] * num_channels,
    )


ARCHITECTURES = ("vit", "resnet", "convnext", "linear")


def build_model(arch: str, label_names, image_size: int = 28, num_channels: int = 3, width: int = 16, depth: int = 2,
                seed: int | None = None):
    """A freshly initialised small classifier from a config.

    ``arch``: ``resnet`` (a small CNN, the default strong model), ``vit``, ``convnext``, or ``linear`` — a ConvNeXt whose
    single patch covers the whole image and which has no blocks: a linear map of the pixels, a layer norm and the
    classifier (a logistic-regression-style weak
    supervisor that still is a plain ``transformers`` model).
    """
    import torch

    if seed is not None:
        torch.manual_seed(seed)
    id2label, label2id = label_maps(label_names)
    common = dict(num_labels=len(id2label), id2label=id2label, label2id=label2id, num_channels=num_channels)
    if arch == "resnet":
        config = ResNetConfig(embedding_size=width, hidden_sizes=[width * 2**i for i in range(depth)],
                              depths=[1] * depth, layer_type="basic", **common)
    elif arch == "convnext":
        config = ConvNextConfig(num_stages=depth, hidden_sizes=[width * 2**i for i in range(depth)],
                                depths=[1] * depth, patch_size=2, **common)
    elif arch == "vit":
        patch = 7 if image_size % 7 == 0 else 4
        config = ViTConfig(image_size=image_size, patch_size=patch, hidden_size=width * 2, num_hidden_layers=depth,
                           num_attention_heads=2, intermediate_size=width * 4, **common)
    elif arch == "linear":
        config = ConvNextConfig(num_stages=1, hidden_sizes=[width], depths=[0], patch_size=image_size, **common)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    return AutoModelForImageClassification.from_config(config)
