import glob
import json
import os
import re

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

from hf_w2s.cli import main as cli_main
from hf_w2s.data import load_packaged, shots_per_class
from hf_w2s.modeling import load_image_classifier, loader_class_name
from hf_w2s.scripts.train import parse_args as parse_train_args

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "configs")
TWINS = sorted(glob.glob(os.path.join(CONFIGS, "*_offline.yaml")))
# small and fast: every offline twin end to end in a few seconds
TINY = ["--split_sizes", "60", "200", "100", "--num_train_epochs", "1", "--weak_num_train_epochs", "2",
        "--eval_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "100"]


def main(argv):
    return cli_main(["train", *argv])


def _config(name):
    return os.path.join(CONFIGS, name)


def test_yaml_config_then_command_line_overrides(tmp_path):
    sa, args = parse_train_args(["--config", _config("cifar100_distillation_gt_offline.yaml"),
                                 "--learning_rate", "0.05", "--weak_shots_per_class", "3"])
    assert args.learning_rate == 0.05  # command line wins
    assert args.gt_loss_weight == 1.0 and args.w2s_loss == "adapt_conf"  # from the YAML
    assert sa.split_sizes == [500, 3000, 1500] and sa.weak_shots_per_class == 3
    assert sa.model_name_or_path == "tiny:resnet,width=16,depth=2"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: tiny:resnet\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown keys in .*bad.yaml: \['learning_rat'\]"):
        parse_train_args(["--config", str(bad)])


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "*.yaml"))), ids=os.path.basename)
def test_every_recipe_parses_and_validates(path):
    sa, args = parse_train_args(["--config", path, "--bf16", "false"])  # the Hub recipes ask for bf16 (GPU)
    assert sa.model_name_or_path and (sa.dataset_name or sa.weak_labels_dataset)
    if not path.endswith("_offline.yaml"):
        twin = path.replace(".yaml", "_offline.yaml")
        assert os.path.exists(twin), f"{path} has no offline twin"
        twin_sa, twin_args = parse_train_args(["--config", twin])
        assert (twin_args.w2s_loss, twin_args.confidence_temperature, twin_args.kd_temperature) == (
            args.w2s_loss, args.confidence_temperature, args.kd_temperature)
        assert "/" in sa.model_name_or_path  # a real Hub id


@pytest.mark.parametrize("argv, match", [
    (["--model_name_or_path", "tiny:resnet"], "give dataset_name"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist"], "needs weak supervision"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--label_noise_rate", "0.2",
      "--weak_model_name_or_path", "x/y"], "one source of weak supervision"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--weak_model_name_or_path",
      "tiny:linear"], "untrained model: set weak_train_split"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--label_noise_rate", "0.2",
      "--eval_strategy", "epoch"], "need a validation split"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--label_noise_rate", "0.2",
      "--mixup_alpha", "-1"], "mixup_alpha must be >= 0"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--label_noise_rate", "0.2",
      "--random_erasing", "0.25"], "random_erasing is part of the image augmentation: set augment true"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--label_noise_rate", "0.2",
      "--layer_decay", "0"], r"layer_decay must be within \(0, 1\]"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--label_noise_rate", "0.2",
      "--label_noise_transition", "1", "0"], "asymmetric only"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--label_noise_rate", "0.2",
      "--lora_alpha", "8"], "lora_r is 0"),
    (["--model_name_or_path", "tiny:resnet", "--dataset_name", "hf_w2s:mnist", "--w2s_loss", "nope"],
     "not a known loss"),
])
def test_bad_arguments_are_named_before_anything_runs(argv, match, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-w2s train: error:")
    assert re.search(match, err), err


@pytest.mark.parametrize("twin", TWINS, ids=os.path.basename)
def test_offline_twin_end_to_end(twin, tmp_path, capsys):
    out = tmp_path / "student"
    extra = ["--weak_shots_per_class", "2"] if "fewshot" in twin else []
    assert main(["--config", twin, "--output_dir", str(out), *TINY, *extra]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    results = json.loads((out / "w2s_results.json").read_text())
    assert summary["accuracy"] == results["accuracy"] and 0.0 <= results["accuracy"] <= 1.0
    assert results["accuracy"] * 100 == pytest.approx(round(results["accuracy"] * 100))  # over the 100 test digits
    assert results["label_names"] == [str(i) for i in range(10)]
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    assert (out / "preprocessor_config.json").exists()
    card = ModelCard.load(out / "README.md")
    index = card.data.to_dict()["model-index"][0]["results"][0]
    metrics = {m["type"]: m["value"] for m in index["metrics"]}
    assert metrics["accuracy"] == pytest.approx(results["accuracy"])
    assert index["dataset"] == {"name": "hf_w2s:mnist", "type": "hf_w2s:mnist", "split": "test"}
    assert "weak-to-strong" in card.data.tags and card.data.pipeline_tag == "image-classification"
    sa, args = parse_train_args(["--config", twin])
    assert f"Loss: **`{args.w2s_loss}`**" in card.text and "## How to load" in card.text
    weak, ceiling = results["weak_accuracy"], results["ceiling_accuracy"]
    assert (ceiling is not None) == bool(sa.compute_ceiling)
    assert (weak is not None) == bool(sa.weak_model_name_or_path)  # label-noise twins have no weak model
    if weak is not None and ceiling is not None and ceiling > weak:  # PGR = (w2s - weak) / (ceiling - weak)
        assert results["pgr"] == pytest.approx((results["accuracy"] - weak) / (ceiling - weak))
        assert metrics["pgr"] == pytest.approx(results["pgr"])
    else:  # no weak model, no ceiling, or no gap between them: PGR is undefined and not reported
        assert results["pgr"] is None and "pgr" not in metrics
    if sa.label_noise_rate:
        noise = results["label_noise"]
        assert noise["kind"] == sa.label_noise_kind and noise["realised"] == pytest.approx(sa.label_noise_rate)
        assert "label noise" in card.text
    if "fewshot" in twin:
        assert results["weak_train_examples"] == 2 * 10
    if sa.mixup_alpha:
        assert "mixup α=0.8" in card.text and "random resized crop" in card.text
    if sa.cutmix_alpha:
        assert "CutMix α=1.0 (one of the two per batch)" in card.text and "random erasing p=0.25" in card.text


def test_student_beats_its_noisy_supervision(tmp_path, capsys):
    """End to end through hf-w2s train: a student that only ever sees labels of which exactly half are wrong
    (symmetric noise 0.5, so its supervision is 50 % accurate) learns the digits better than that, and the saved
    student reproduces the reported accuracy in a fresh load."""
    out = tmp_path / "student"
    argv = ["--config", _config("cifar10_noisy_symmetric_offline.yaml"), "--output_dir", str(out),
            "--split_sizes", "0", "800", "300", "--num_train_epochs", "4", "--w2s_loss", "weak_hard",
            "--learning_rate", "0.01", "--compute_ceiling", "false", "--eval_strategy", "no", "--disable_tqdm", "true"]
    assert main(argv) == 0
    results = json.loads((out / "w2s_results.json").read_text())
    assert results["label_noise"]["realised"] == pytest.approx(0.5)
    assert results["accuracy"] > 0.5 + 0.08, results  # measured 0.65 (seed 0); chance is 0.1
    # the saved student reproduces the reported accuracy
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hf_w2s.data.images import pixel_values_from_images
    from hf_w2s.data import w2s_splits

    test = w2s_splits(load_packaged("mnist"), (0, 800, 300), seed=0)["test"]
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    proc = AutoImageProcessor.from_pretrained(out)
    with torch.no_grad():
        logits = model(pixel_values=pixel_values_from_images(test["image"], proc)).logits
    assert (logits.argmax(-1).numpy() == np.asarray(test["label"])).mean() == pytest.approx(results["accuracy"])


def test_existing_output_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "student"
    out.mkdir()
    (out / "config.json").write_text("{}")
    argv = ["--config", _config("cifar10_noisy_symmetric_offline.yaml"), "--output_dir", str(out), *TINY]
    assert main(argv) == 2
    assert "already holds a trained model" in capsys.readouterr().err
    assert (out / "config.json").read_text() == "{}" and sorted(os.listdir(out)) == ["config.json"]


@pytest.mark.parametrize("override, match", [
    (["--dataset_test_split", "validation"], r"no split 'validation'; its splits: \['strong_train', 'test', "
                                             r"'weak_train'\]"),
    (["--image_column", "img"], "no image column 'img'"),
    (["--label_noise_kind", "asymmetric", "--label_noise_transition", "1", "0"], "2 partners for 10 classes"),
])
def test_bad_data_is_named(override, match, tmp_path, capsys):
    argv = ["--config", _config("cifar10_noisy_symmetric_offline.yaml"), "--output_dir", str(tmp_path / "s"),
            *TINY, *override]
    assert main(argv) == 2  # also errors raised deep inside the run are reported, not a traceback
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "s" / "config.json").exists()


def test_weak_labels_dataset_from_disk(tmp_path, capsys):
    """Supervision from a saved weak-labelled dataset (as hf-w2s label writes it): weak_logits is used as is."""
    from hf_w2s.data import w2s_splits
    from hf_w2s.data.noise import add_noisy_labels

    splits = w2s_splits(load_packaged("mnist"), (0, 200, 100), seed=0)
    splits["strong_train"] = add_noisy_labels(splits["strong_train"], 0.0, confidence=0.95)  # perfect weak labels
    splits.pop("weak_train")
    splits.save_to_disk(str(tmp_path / "weak"))
    out = tmp_path / "student"
    argv = ["--model_name_or_path", "tiny:resnet,width=8,depth=1", "--weak_labels_dataset", str(tmp_path / "weak"),
            "--dataset_train_split", "strong_train", "--w2s_loss", "weak_hard", "--output_dir", str(out),
            "--num_train_epochs", "1", "--disable_tqdm", "true", "--report_to", "none"]
    assert main(argv) == 0
    results = json.loads((out / "w2s_results.json").read_text())
    assert results["weak_accuracy"] is None  # the test split has no weak_logits and no weak model was given
    card = ModelCard.load(out / "README.md")
    assert f"weak labels from `{tmp_path / 'weak'}`" in card.text  # a local path: named in the card's body
    assert "weak_supervisor" not in card.data.to_dict()  # not a key of the Hub's card spec


def test_few_shot_selection():
    from datasets import Dataset

    ds = Dataset.from_dict({"label": [0] * 5 + [1] * 3 + [2] * 4})
    picked = shots_per_class(ds, 3, seed=1)
    assert sorted(picked["label"]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert picked["label"] == shots_per_class(ds, 3, seed=1)["label"]
    with pytest.raises(ValueError, match="class 1 has only 3 examples, fewer than shots_per_class=4"):
        shots_per_class(ds, 4, seed=0)


def test_mae_checkpoint_becomes_a_plain_vit_classifier(tmp_path):
    from transformers import AutoModelForImageClassification, ViTMAEConfig, ViTMAEForPreTraining

    cfg = ViTMAEConfig(image_size=28, patch_size=7, num_channels=1, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, decoder_hidden_size=16,
                       decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=32)
    mae = ViTMAEForPreTraining(cfg)
    mae.save_pretrained(tmp_path / "mae")
    student = load_image_classifier(str(tmp_path / "mae"), ["a", "b", "c"])
    assert type(student).__name__ == loader_class_name(student) == "ViTForImageClassification"
    assert torch.equal(student.vit.embeddings.patch_embeddings.projection.weight,
                       mae.vit.embeddings.patch_embeddings.projection.weight)  # the MAE encoder, not a fresh one
    student.save_pretrained(tmp_path / "student")
    again = AutoModelForImageClassification.from_pretrained(tmp_path / "student")
    assert again.config.model_type == "vit" and again.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert not hasattr(again.config, "mask_ratio")


def test_head_is_fresh_when_labels_differ(tmp_path):
    from hf_w2s.modeling import build_model

    old = build_model("resnet", list("abcdefghij"), width=8, depth=1, seed=0)
    old.save_pretrained(tmp_path / "old")
    same = load_image_classifier(str(tmp_path / "old"), list("abcdefghij"))
    renamed = load_image_classifier(str(tmp_path / "old"), [str(i) for i in range(10)])
    resized = load_image_classifier(str(tmp_path / "old"), ["x", "y", "z"])
    w = old.classifier[1].weight
    assert torch.equal(same.classifier[1].weight, w)  # same label names: the trained head is kept
    assert not torch.equal(renamed.classifier[1].weight, w)  # same size, other names: a fresh head
    assert resized.classifier[1].weight.shape == (3, w.shape[1])
    assert renamed.config.id2label[3] == "3" and resized.config.label2id == {"x": 0, "y": 1, "z": 2}
    for model in (same, renamed, resized):
        assert torch.equal(model.resnet.embedder.embedder.convolution.weight,
                           old.resnet.embedder.embedder.convolution.weight)


# -- the whole flow against the local Hub (tests/hub_server.py) ----------------------------------------------------

LOADER = r'''
import sys
import numpy as np
import torch
from PIL import Image
from huggingface_hub import ModelCard
from transformers import AutoModelForImageClassification, pipeline

image_path, plain_repo, lora_repo = sys.argv[1:4]
out = {}
for name, repo in (("plain", plain_repo), ("lora", lora_repo)):
    model = AutoModelForImageClassification.from_pretrained(repo).eval()
    clf = pipeline("image-classification", model=repo)
    image = Image.open(image_path).convert("RGB")
    pixel_values = clf.image_processor(images=image, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        logits = model(pixel_values=pixel_values).logits[0]
    card = ModelCard.load(repo)
    out[name] = {"id2label": {str(k): v for k, v in model.config.id2label.items()},
                 "arch": type(model).__name__, "logits": logits.tolist(), "pipeline": clf(image_path, top_k=3),
                 "model_index": card.data.to_dict()["model-index"], "card_text": card.text}
    if name == "lora":
        from peft import PeftModel

        base = AutoModelForImageClassification.from_pretrained(repo, subfolder="base_model")
        adapted = PeftModel.from_pretrained(base, repo, subfolder="adapter").eval()
        with torch.no_grad():
            out[name]["adapter_logits"] = adapted(pixel_values=pixel_values).logits[0].tolist()
out["hf_w2s_imported"] = any(m == "hf_w2s" or m.startswith("hf_w2s.") for m in sys.modules)
emit(out)
'''


def test_one_command_trains_pushes_and_a_fresh_process_loads(local_hub, tmp_path):
    """Done-when of the recipes issue: from the offline twin, one command (``hf-w2s train``, which
    recipes/train_student.py runs) trains a student and pushes it with its card; a separate process that never imports
    hf_w2s loads it with from_pretrained and pipeline. Same for a LoRA student (merged model at the repo root, adapter
    in adapter/, identical logits). Both commands run in one interpreter wired to the local Hub (cli_sequence)."""
    from PIL import Image as PILImage
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from cli_sequence import finish_sequence, start_sequence
    from hf_w2s.data import w2s_splits

    config = _config("cifar100_distillation_gt_offline.yaml")
    repos = {"plain": local_hub.new_repo_id("digits-student"), "lora": local_hub.new_repo_id("digits-lora")}
    jobs = {name: ["train", "--config", config, "--output_dir", str(tmp_path / name), *TINY, "--compute_ceiling",
                   "false", "--push_to_hub", "true", "--hub_model_id", repo,
                   *(["--lora_r", "4"] if name == "lora" else [])]
            for name, repo in repos.items()}
    done = finish_sequence(start_sequence(local_hub, tmp_path, jobs, "push", timeout=400), tmp_path)
    for name, run in done.items():
        assert run.returncode == 0, run.stderr[-3000:]
        summary = json.loads(run.stdout.strip().splitlines()[-1])
        assert summary["repo_id"] == repos[name]
    assert sorted(done) == sorted(repos)

    files = {name: local_hub.files(repo) for name, repo in repos.items()}
    for name in files:
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md",
                "w2s_results.json"} <= set(files[name])
        assert not any(p.startswith("checkpoint-") or p.endswith("training_args.bin") for p in files[name])
        assert {"weak_model/model.safetensors", "weak_model/config.json"} <= set(files[name])  # the supervisor too
        assert files[name]["model.safetensors"]["lfs"]
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "base_model/config.json",
            "base_model/model.safetensors"} <= set(files["lora"])
    assert "adapter/adapter_config.json" not in files["plain"]
    assert local_hub.file_bytes(repos["plain"], "README.md") == (tmp_path / "plain" / "README.md").read_bytes()

    test = w2s_splits(load_packaged("mnist"), (60, 200, 100), seed=0)["test"]
    image_path = tmp_path / "digit.png"
    test[0]["image"].save(image_path)
    loaded = local_hub.run_python(LOADER, args=(str(image_path), repos["plain"], repos["lora"]), timeout=300).result
    assert loaded["hf_w2s_imported"] is False
    for name in ("plain", "lora"):
        got = loaded[name]
        assert got["arch"] == "ResNetForImageClassification"
        assert got["id2label"] == {str(i): str(i) for i in range(10)}
        # the Hub copy classifies exactly like the local save
        local = AutoModelForImageClassification.from_pretrained(tmp_path / name).eval()
        proc = AutoImageProcessor.from_pretrained(tmp_path / name)
        with torch.no_grad():
            expected = local(**proc(images=PILImage.open(image_path).convert("RGB"), return_tensors="pt")).logits[0]
        torch.testing.assert_close(torch.tensor(got["logits"]), expected, atol=1e-6, rtol=1e-6)
        top = got["pipeline"]
        assert top[0]["label"] == str(int(expected.argmax()))
        assert top[0]["score"] == pytest.approx(float(torch.softmax(expected, -1).max()), rel=1e-4)
        results = json.loads((tmp_path / name / "w2s_results.json").read_text())
        metrics = {m["type"]: m["value"] for m in got["model_index"][0]["results"][0]["metrics"]}
        assert metrics["accuracy"] == pytest.approx(results["accuracy"])
        assert f'from_pretrained("{repos[name]}")' in got["card_text"]
    torch.testing.assert_close(torch.tensor(loaded["lora"]["adapter_logits"]), torch.tensor(loaded["lora"]["logits"]),
                               atol=1e-5, rtol=1e-5)
    assert 'subfolder="adapter"' in loaded["lora"]["card_text"] and "LoRA r = 4" in loaded["lora"]["card_text"]


def test_hf_w2s_train_is_the_recipe_script(capsys):
    from hf_w2s.cli import main as cli_main

    assert cli_main(["train", "--model_name_or_path", "tiny:resnet"]) == 2
    assert "hf-w2s train: error: give dataset_name" in capsys.readouterr().err
    assert cli_main(["train", "--help"]) == 0
    help_text = capsys.readouterr().out
    # --config first, then the weak-to-strong options, the recipe's, and TrainingArguments'
    order = [help_text.index(s) for s in ("--config", "weak-to-strong options:", "--w2s_loss", "recipe options",
                                          "training options (transformers.TrainingArguments)", "--learning_rate")]
    assert order == sorted(order)
    for option in ("--config", "--model_name_or_path", "--weak_model_name_or_path", "--lora_r", "--w2s_loss",
                   "--label_noise_rate", "--mixup_alpha", "--push_to_hub"):
        assert option in help_text
