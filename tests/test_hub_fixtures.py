"""The Hub-faithful recipe repos (tests/hub/recipe_repos.py), read back through the real datasets / transformers
clients (in this process, pointed at the local Hub by tests/conftest.py). Expected values are the public repos' facts
written out by hand here (class names at given indices, config shapes, processor classes), not read from
recipe_repos."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hub import recipe_repos
from hub.recipe_repos import (
    CIFAR10,
    CIFAR100,
    IMAGENET,
    MINI_IMAGENET,
    RESNET18,
    RESNET34,
    RESNET50,
    VIT_IN21K,
    VIT_MAE,
    populate_recipe_repos,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _images(column) -> list:
    return [{"size": list(im.size), "mode": im.mode, "format": im.format} for im in column]


def read_datasets() -> dict:
    from datasets import get_dataset_config_names, load_dataset

    out = {}
    ds = load_dataset("uoft-cs/cifar100", split="train")
    out["cifar100"] = {
        "columns": ds.column_names, "types": {k: type(v).__name__ for k, v in ds.features.items()},
        "fine": ds.features["fine_label"].names, "coarse": ds.features["coarse_label"].names,
        "fine_labels": list(ds["fine_label"]), "coarse_labels": list(ds["coarse_label"]), "images": _images(ds["img"]),
        "configs": get_dataset_config_names("uoft-cs/cifar100"),
        "splits": {k: v.num_rows for k, v in load_dataset("uoft-cs/cifar100").items()},
    }
    ds = load_dataset("uoft-cs/cifar10", split="test")
    out["cifar10"] = {"columns": ds.column_names, "names": ds.features["label"].names, "labels": list(ds["label"]),
                      "images": _images(ds["img"]), "configs": get_dataset_config_names("uoft-cs/cifar10")}
    dd = load_dataset("ILSVRC/imagenet-1k")
    out["imagenet"] = {
        "splits": list(dd), "columns": dd["train"].column_names, "names": dd["train"].features["label"].names,
        "labels": {k: list(v["label"]) for k, v in dd.items()},
        "images": {k: _images(v["image"]) for k, v in dd.items()},
    }
    dd = load_dataset("timm/mini-imagenet")
    out["mini"] = {"splits": list(dd), "columns": dd["train"].column_names,
                   "names": dd["train"].features["label"].names, "images": _images(dd["validation"]["image"])}
    return out


def read_models() -> dict:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError
    from PIL import Image
    from transformers import (
        AutoConfig,
        AutoImageProcessor,
        AutoModel,
        AutoModelForImageClassification,
        AutoModelForPreTraining,
        ViTForImageClassification,
    )

    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    out = {}
    for repo_id in [RESNET18, RESNET34, RESNET50, VIT_MAE, VIT_IN21K]:
        processor = AutoImageProcessor.from_pretrained(repo_id)
        config = AutoConfig.from_pretrained(repo_id)
        entry = out[repo_id] = {
            "processor": type(processor).__name__, "size": dict(processor.size), "mean": list(processor.image_mean),
            "std": list(processor.image_std), "crop_pct": getattr(processor, "crop_pct", None),
            "pixel_values": list(processor(image, return_tensors="pt")["pixel_values"].shape),
            "model_type": config.model_type, "architectures": config.architectures, "num_labels": config.num_labels,
            "id2label": [config.id2label[i] for i in sorted(config.id2label)][:1000],
            "last_label": config.id2label[max(config.id2label)],
            "layer_type": getattr(config, "layer_type", None), "depths": getattr(config, "depths", None),
            "image_size": getattr(config, "image_size", None), "patch_size": getattr(config, "patch_size", None),
        }
        try:
            model = AutoModelForImageClassification.from_pretrained(repo_id).eval()
            entry["classifier"] = type(model).__name__
            if config.model_type == "resnet":
                with torch.no_grad():
                    entry["logits"] = list(model(**processor(image, return_tensors="pt")).logits.shape)
        except ValueError as err:
            entry["classifier_error"] = str(err).splitlines()[0]

    mae = AutoModelForPreTraining.from_pretrained(VIT_MAE)
    vit = ViTForImageClassification.from_pretrained(VIT_MAE, num_labels=1000)
    ms, vs = mae.state_dict(), vit.state_dict()
    out["mae"] = {"class": type(mae).__name__, "not_in_checkpoint": sorted(k for k in vs if k not in ms),
                  "differing": sorted(k for k in vs if k in ms and not torch.equal(ms[k], vs[k]))}
    base = AutoModel.from_pretrained(VIT_IN21K)
    out["in21k"] = {"class": type(base).__name__, "has_pooler": base.pooler is not None}
    try:  # the test user (HF_TOKEN) is no member of microsoft
        HfApi().upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=RESNET50)
        out["foreign_push"] = "accepted"
    except HfHubHTTPError as err:
        out["foreign_push"] = err.response.status_code
    return out


@pytest.fixture(scope="module")
def views(recipe_hub):
    """What the clients read back: the datasets, then the models (with the test user's token)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_TOKEN", recipe_hub.token)
        return {"datasets": read_datasets(), "models": read_models()}


# ---- the fixture's own tables (no Hub needed) ------------------------------------------------------------------------
def test_cifar100_superclass_table_is_a_partition_with_the_known_pairs():
    fine_to_coarse = recipe_repos.cifar100_fine_to_coarse()
    fine, coarse = recipe_repos.CIFAR100_FINE, recipe_repos.CIFAR100_COARSE
    assert len(fine) == len(set(fine)) == 100 and len(coarse) == len(set(coarse)) == 20
    assert sorted(fine_to_coarse.count(c) for c in range(20)) == [5] * 20
    pairs = {fine[i]: coarse[c] for i, c in enumerate(fine_to_coarse)}
    assert pairs["apple"] == "fruit_and_vegetables" and pairs["whale"] == "aquatic_mammals"
    assert pairs["cra"] == "non-insect_invertebrates" and pairs["tractor"] == "vehicles_2"
    assert pairs["keyboard"] == "household_electrical_devices" and pairs["maple_tree"] == "trees"


def test_imagenet_names_come_from_the_package_with_the_hub_quirks():
    names, synsets = recipe_repos.imagenet_class_names(), recipe_repos.imagenet_synsets()
    assert len(names) == len(synsets) == len(set(synsets)) == 1000 and synsets == sorted(synsets)
    assert names[0] == "tench, Tinca tinca" and synsets[0] == "n01440764"
    assert names[134] == names[517] == "crane" and len(set(names)) == 999
    assert (synsets[134], synsets[517]) == ("n02012849", "n03126707")
    assert names[638] == "maillot" and names[639] == "maillot, tank suit"
    assert set(recipe_repos.MINI_IMAGENET_SYNSETS) <= set(synsets)


# ---- datasets --------------------------------------------------------------------------------------------------------
def test_cifar100_has_the_hub_schema(views):
    c100 = views["datasets"]["cifar100"]
    assert c100["columns"] == ["img", "fine_label", "coarse_label"]
    assert c100["types"] == {"img": "Image", "fine_label": "ClassLabel", "coarse_label": "ClassLabel"}
    assert c100["configs"] == ["cifar100"]
    assert c100["splits"] == {"train": 60, "test": 20}
    fine, coarse = c100["fine"], c100["coarse"]
    assert len(fine) == 100 and (fine[0], fine[1], fine[26], fine[58], fine[99]) == (
        "apple", "aquarium_fish", "cra", "pickup_truck", "worm")
    assert len(coarse) == 20 and (coarse[0], coarse[9], coarse[19]) == (
        "aquatic_mammals", "large_man-made_outdoor_things", "vehicles_2")
    table = recipe_repos.cifar100_fine_to_coarse()
    assert [table[f] for f in c100["fine_labels"]] == c100["coarse_labels"]
    assert {(tuple(im["size"]), im["mode"], im["format"]) for im in c100["images"]} == {((32, 32), "RGB", "PNG")}


def test_cifar10_has_the_hub_schema(views):
    c10 = views["datasets"]["cifar10"]
    assert c10["columns"] == ["img", "label"] and c10["configs"] == ["plain_text"]
    assert c10["names"] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert sorted(c10["labels"]) == sorted(list(range(10)) * 2)  # 20 test rows, every class twice
    assert {tuple(im["size"]) for im in c10["images"]} == {(32, 32)}


def test_imagenet_has_the_hub_label_names_and_messy_images(views):
    inet = views["datasets"]["imagenet"]
    assert inet["splits"] == ["train", "validation", "test"] and inet["columns"] == ["image", "label"]
    names = inet["names"]
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench, Tinca tinca" and names[999] == "toilet tissue, toilet paper, bathroom tissue"
    assert names[134] == "crane" and names[517] == "crane2"
    assert names[638] == "maillot" and names[639] == "maillot, tank suit"
    assert set(inet["labels"]["test"]) == {-1}
    assert all(0 <= label < 1000 for split in ("train", "validation") for label in inet["labels"][split])
    train = inet["images"]["train"]
    assert {im["format"] for split in inet["images"].values() for im in split} == {"JPEG"}
    assert {im["mode"] for im in train} == {"RGB", "L", "CMYK"}
    assert len({tuple(im["size"]) for im in train}) > 10  # mixed sizes, not square crops


def test_mini_imagenet_uses_synset_names(views):
    mini = views["datasets"]["mini"]
    assert mini["splits"] == ["train", "validation", "test"] and mini["columns"] == ["image", "label"]
    names = mini["names"]
    assert len(names) == 100 and names == sorted(names) and all(re.fullmatch(r"n\d{8}", n) for n in names)
    assert (names[0], names[1], names[40], names[99]) == ("n01532829", "n01558993", "n02950826", "n13133613")
    assert {im["format"] for im in mini["images"]} == {"JPEG"} and "L" in {im["mode"] for im in mini["images"]}


def test_dataset_repos_have_the_hub_parquet_layout(recipe_hub):
    layouts = {CIFAR100: "cifar100", CIFAR10: "plain_text", IMAGENET: "data", MINI_IMAGENET: "data"}
    for repo_id, folder in layouts.items():
        files = recipe_hub.files(repo_id, "dataset")
        shard = f"{folder}/train-00000-of-00001.parquet"
        assert shard in files and files[shard]["lfs"]
        readme = recipe_hub.file_bytes(repo_id, "README.md", "dataset").decode()
        config = "default" if folder == "data" else folder
        assert f"- config_name: {config}" in readme and f"path: {folder}/train-*" in readme


# ---- models ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("repo_id, layer_type, depths", [
    (RESNET18, "basic", [2, 2, 2, 2]), (RESNET34, "basic", [3, 4, 6, 3]), (RESNET50, "bottleneck", [3, 4, 6, 3])])
def test_resnets_load_as_imagenet_classifiers(views, repo_id, layer_type, depths):
    m = views["models"][repo_id]
    assert m["model_type"] == "resnet" and m["architectures"] == ["ResNetForImageClassification"]
    assert (m["layer_type"], m["depths"]) == (layer_type, depths)
    assert m["classifier"] == "ResNetForImageClassification" and m["logits"] == [1, 1000]
    assert m["num_labels"] == 1000 and m["id2label"][0] == "tench, Tinca tinca"
    assert m["id2label"][134] == m["id2label"][517] == "crane" and m["id2label"][639] == "maillot, tank suit"
    # the legacy ConvNextFeatureExtractor config: shortest edge 224 (/ crop_pct 0.875) then a 224 centre crop
    assert m["processor"].startswith("ConvNextImageProcessor") and m["size"] == {"shortest_edge": 224}
    assert m["crop_pct"] == 0.875 and m["mean"] == [0.485, 0.456, 0.406] and m["pixel_values"] == [1, 3, 224, 224]


def test_model_labels_and_imagenet_dataset_names_differ_only_at_the_second_crane(views):
    model_labels = views["models"][RESNET50]["id2label"]
    dataset_names = views["datasets"]["imagenet"]["names"]
    assert [i for i in range(1000) if model_labels[i] != dataset_names[i]] == [517]


def test_vit_mae_is_the_pretraining_checkpoint(views):
    m = views["models"][VIT_MAE]
    assert m["model_type"] == "vit_mae" and m["architectures"] == ["ViTMAEForPreTraining"]
    assert (m["image_size"], m["patch_size"]) == (224, 16)
    assert "Unrecognized configuration class" in m["classifier_error"]  # not in AutoModelForImageClassification
    assert views["models"]["mae"]["class"] == "ViTMAEForPreTraining"
    # loading it as a ViT classifier keeps every encoder tensor; only the new head is missing
    assert views["models"]["mae"]["not_in_checkpoint"] == ["classifier.bias", "classifier.weight"]
    assert views["models"]["mae"]["differing"] == []
    assert m["processor"].startswith("ViTImageProcessor") and m["size"] == {"height": 224, "width": 224}
    assert m["mean"] == [0.485, 0.456, 0.406] and m["std"] == [0.229, 0.224, 0.225]


def test_vit_in21k_is_headless_with_21k_generic_labels(views):
    m = views["models"][VIT_IN21K]
    assert m["model_type"] == "vit" and m["architectures"] == ["ViTModel"]
    assert m["num_labels"] == 21843 and m["last_label"] == "LABEL_21842"
    assert views["models"]["in21k"] == {"class": "ViTModel", "has_pooler": True}
    assert m["classifier"] == "ViTForImageClassification"  # a fresh 21,843-way head on top
    assert m["processor"].startswith("ViTImageProcessor") and m["mean"] == [0.5, 0.5, 0.5]
    assert m["pixel_values"] == [1, 3, 224, 224]


def test_recipe_repos_belong_to_their_orgs(views, recipe_hub):
    assert views["models"]["foreign_push"] == 403  # the test user is no member of microsoft
    assert recipe_hub.files(RESNET50)["preprocessor_config.json"]["size"] > 0


# ---- coverage of the recipes and caching -----------------------------------------------------------------------------
_HUB_ID_KEYS = {"model_name_or_path", "weak_model_name_or_path", "dataset_name", "dataset", "pretrained", "model"}


def _hub_ids(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _HUB_ID_KEYS and isinstance(value, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", value):
                found.add(value)
            _hub_ids(value, found)
    elif isinstance(node, list):
        for value in node:
            _hub_ids(value, found)
    return found


def test_every_hub_id_a_recipe_names_is_on_the_fixture_hub(recipe_hub):
    found = set()
    for path in sorted((REPO_ROOT / "recipes").rglob("*.yaml")):
        if not re.search(r"_(digits|offline)", path.stem):
            _hub_ids(yaml.safe_load(path.read_text()), found)
    assert found, "no Hub ids found under recipes/"
    assert found <= set(recipe_hub.recipe_repos), sorted(found - set(recipe_hub.recipe_repos))


def test_populate_runs_once_per_hub(recipe_hub):
    heads = {repo_id: recipe_hub.head(repo_id, info["type"]) for repo_id, info in recipe_hub.recipe_repos.items()}
    assert populate_recipe_repos(recipe_hub) is recipe_hub.recipe_repos
    assert {repo_id: info["sha"] for repo_id, info in recipe_hub.recipe_repos.items()} == heads


# ---- the README's ten lines ------------------------------------------------------------------------------------------
README_WEAK_REPO = "your-name/cifar10-weak-model"


def _readme_snippet() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("## In ten lines", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)


def test_readme_ten_lines_run_on_the_hub_schema(recipe_hub, hub_token, tmp_path, monkeypatch, capfd):
    """The README's lines as they are, on the recipe repos, with their weak model pushed first (one training step)."""
    from hf_w2s.modeling import build_model, tiny_image_processor

    snippet = _readme_snippet()
    assert 'image_column="img"' in snippet and "num_labels=" not in snippet
    assert len([line for line in snippet.splitlines() if line.strip() and not line.startswith(" ")]) <= 10
    assert README_WEAK_REPO in snippet
    repo = recipe_hub.new_repo_id("cifar10-weak-model")
    weak = build_model("resnet", recipe_repos.CIFAR10_NAMES, image_size=32, num_channels=3, width=8, depth=1, seed=0)
    weak.push_to_hub(repo)
    tiny_image_processor(32, 3).push_to_hub(repo)
    monkeypatch.chdir(tmp_path)  # output_dir="w2s-student"
    capfd.readouterr()
    code = snippet.replace(README_WEAK_REPO, repo).replace('w2s_loss="adapt_conf"',
                                                           'w2s_loss="adapt_conf", max_steps=1')
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert {"img", "label", "weak_logits", "weak_label"} <= set(namespace["train"].column_names)
    assert [namespace["student"].config.id2label[i] for i in range(10)] == recipe_repos.CIFAR10_NAMES
    assert (tmp_path / "w2s-student").is_dir()
    assert "incompatible" not in capfd.readouterr().err  # no num_labels-vs-id2label warning
