"""Publish the Hub-faithful recipe repos to the Hub that HF_ENDPOINT names (see tests/hub_fixtures.py).

Run in a fresh process (HF_ENDPOINT / HF_TOKEN are read at import) as
``python publish_recipe_repos.py SPEC.json datasets|models``, with a token that may write to the recipes' orgs.
Prints one emitted JSON object per repo: ``{repo_id: "dataset" | "model"}`` (via `emit`, defined by
LocalHub.run_python; plain JSON lines otherwise).
"""

import builtins
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

emit = getattr(builtins, "emit", lambda obj: print(json.dumps(obj), flush=True))

spec = json.loads(Path(sys.argv[1]).read_text())
part = sys.argv[2]
ids = spec["ids"]
sizes = spec["sizes"]
rng = np.random.default_rng(spec["seed"])


# ------------------------------------------------------------------------------------------------------------------
# datasets
# ------------------------------------------------------------------------------------------------------------------
def _pixels(label: int, height: int, width: int, channels: int) -> np.ndarray:
    """A class-dependent mean colour plus noise (so the classes are learnable, a little)."""
    colour = np.random.default_rng(1000 + label).integers(40, 216, size=channels)
    noise = rng.normal(0.0, 25.0, size=(height, width, channels))
    return np.clip(colour + noise, 0, 255).astype(np.uint8)


def _encoded(label: int, height: int, width: int, mode: str, fmt: str) -> dict:
    from PIL import Image as PILImage

    channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
    array = _pixels(max(label, 0), height, width, channels)
    image = PILImage.fromarray(array[..., 0] if channels == 1 else array, mode=mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return {"bytes": buffer.getvalue(), "path": None}


def _imagenet_style_images(labels, gray_every: int, cmyk_at: int | None = None) -> list:
    """JPEGs of mixed sizes (20..96 px a side), every `gray_every`-th one grayscale ("L"), the one at `cmyk_at` CMYK
    (ImageNet's train split has both kinds)."""
    images = []
    for i, label in enumerate(labels):
        height, width = (int(v) for v in rng.integers(20, 97, size=2))
        mode = "CMYK" if i == cmyk_at else "L" if i % gray_every == gray_every - 1 else "RGB"
        images.append(_encoded(int(label), height, width, mode, "JPEG"))
    return images


def publish_datasets() -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

    # CIFAR-100: config "cifar100", img / fine_label / coarse_label.
    fine_to_coarse = spec["cifar100_fine_to_coarse"]
    features = Features({
        "img": Image(),
        "fine_label": ClassLabel(names=spec["cifar100_fine"]),
        "coarse_label": ClassLabel(names=spec["cifar100_coarse"]),
    })
    splits = {}
    for split, n in sizes[ids["cifar100"]].items():
        fine = rng.integers(0, 100, size=n).tolist()
        splits[split] = Dataset.from_dict({
            "img": [_encoded(label, 32, 32, "RGB", "PNG") for label in fine],
            "fine_label": fine,
            "coarse_label": [fine_to_coarse[label] for label in fine],
        }, features=features)
    DatasetDict(splits).push_to_hub(ids["cifar100"], config_name="cifar100", set_default=True)
    emit({ids["cifar100"]: "dataset"})

    # CIFAR-10: config "plain_text", img / label; every class in every split where the size allows.
    features = Features({"img": Image(), "label": ClassLabel(names=spec["cifar10_names"])})
    splits = {}
    for split, n in sizes[ids["cifar10"]].items():
        labels = rng.permutation(np.arange(n) % 10).tolist()
        splits[split] = Dataset.from_dict(
            {"img": [_encoded(label, 32, 32, "RGB", "PNG") for label in labels], "label": labels}, features=features
        )
    DatasetDict(splits).push_to_hub(ids["cifar10"], config_name="plain_text", set_default=True)
    emit({ids["cifar10"]: "dataset"})

    # ImageNet-1k: config "default", image / label (1000 names); the test split has no labels (-1).
    features = Features({"image": Image(), "label": ClassLabel(names=spec["imagenet_dataset_names"])})
    splits = {}
    for split, n in sizes[ids["imagenet"]].items():
        labels = [-1] * n if split == "test" else rng.integers(0, 1000, size=n).tolist()
        images = _imagenet_style_images(labels, 5, 1 if split == "train" else None)
        splits[split] = Dataset.from_dict({"image": images, "label": labels}, features=features)
    DatasetDict(splits).push_to_hub(ids["imagenet"])
    emit({ids["imagenet"]: "dataset"})

    # mini-ImageNet (timm): config "default", image / label (100 synset ids), all classes in every split.
    features = Features({"image": Image(), "label": ClassLabel(names=spec["mini_imagenet_synsets"])})
    splits = {}
    for split, n in sizes[ids["mini_imagenet"]].items():
        labels = rng.integers(0, 100, size=n).tolist()
        splits[split] = Dataset.from_dict(
            {"image": _imagenet_style_images(labels, 7), "label": labels}, features=features
        )
    DatasetDict(splits).push_to_hub(ids["mini_imagenet"])
    emit({ids["mini_imagenet"]: "dataset"})


# ------------------------------------------------------------------------------------------------------------------
# models
# ------------------------------------------------------------------------------------------------------------------
_CARDS = {
    "resnet": ("apache-2.0", ["vision", "image-classification"], ["imagenet-1k"]),
    "vit_mae": ("apache-2.0", ["vision"], ["imagenet-1k"]),
    "vit_in21k": ("apache-2.0", ["vision"], ["imagenet-21k"]),
}


def _card(kind: str, repo_id: str) -> str:
    license_, tags, datasets_ = _CARDS[kind]
    header = "\n".join(
        ["---", f"license: {license_}", "tags:", *[f"- {t}" for t in tags], "datasets:", *[f"- {d}" for d in datasets_],
         "---"]
    )
    return (f"{header}\n\n# {repo_id} (local test stand-in)\n\nSame config shape and preprocessing as the Hub "
            f"checkpoint, at a tiny width with random weights (tests/hub_fixtures.py).\n")


def _upload(model, repo_id: str, kind: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi()
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)  # config.json + model.safetensors
        preprocessor = spec["preprocessor_configs"][repo_id]
        (Path(folder) / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
        (Path(folder) / "README.md").write_text(_card(kind, repo_id))
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="Add model")
    emit({repo_id: "model"})


def publish_models() -> None:
    import torch
    from transformers import (
        ResNetConfig,
        ResNetForImageClassification,
        ViTConfig,
        ViTMAEConfig,
        ViTMAEForPreTraining,
        ViTModel,
    )

    names = spec["imagenet_names"]
    id2label = dict(enumerate(names))
    label2id = {name: i for i, name in enumerate(names)}  # "crane" -> 517, as a dict built from id2label has it

    resnets = [
        (ids["resnet18"], "basic", [2, 2, 2, 2], [8, 16, 32, 64]),
        (ids["resnet34"], "basic", [3, 4, 6, 3], [8, 16, 32, 64]),
        (ids["resnet50"], "bottleneck", [3, 4, 6, 3], [32, 64, 128, 256]),
    ]
    for k, (repo_id, layer_type, depths, hidden_sizes) in enumerate(resnets):
        torch.manual_seed(spec["seed"] + k)
        config = ResNetConfig(
            num_channels=3, embedding_size=8, hidden_sizes=hidden_sizes, depths=depths, layer_type=layer_type,
            hidden_act="relu", downsample_in_first_stage=False, id2label=id2label, label2id=label2id,
        )
        _upload(ResNetForImageClassification(config).eval(), repo_id, "resnet")

    torch.manual_seed(spec["seed"] + 10)
    mae = ViTMAEConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=224,
        patch_size=16, num_channels=3, qkv_bias=True, decoder_hidden_size=16, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=32, mask_ratio=0.75, norm_pix_loss=False,
    )
    _upload(ViTMAEForPreTraining(mae).eval(), ids["vit_mae"], "vit_mae")

    torch.manual_seed(spec["seed"] + 11)
    in21k = ViTConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=224,
        patch_size=16, num_channels=3, qkv_bias=True, num_labels=21843,
    )
    _upload(ViTModel(in21k, add_pooling_layer=True).eval(), ids["vit_in21k"], "vit_in21k")


{"datasets": publish_datasets, "models": publish_models}[part]()
