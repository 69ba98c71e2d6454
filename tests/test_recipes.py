"""The recipes (recipes/configs/*.yaml) as files users run: ``hf-w2s train --config FILE`` (= recipes/train_student.py),
a one-row, one-seed experiment of the one schema that saves its student in ``output_dir/student``. Every recipe
parses and validates; each offline twin runs end to end at tiny sizes; supervision from a weak-label dataset on disk;
the student's checkpoint loading (MAE -> ViT, a fresh head); the output folder and bad data refused with a reason;
and a student (plain and LoRA) pushed to the local Hub and loaded by a process that never imports hf_w2s."""

import dataclasses
import json
import re
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from datasets import load_from_disk
from huggingface_hub import ModelCard
from testing_utils import band_dataset, require_pretrained, run_cli, saved_splits, supervisors_of

from hf_w2s import Experiment, load_config
from hf_w2s.data import shots_per_class
from hf_w2s.data.config import DataConfig, build_splits
from hf_w2s.experiment.config import WeakSupervisorConfig
from hf_w2s.modeling import load_image_classifier, loader_class_name
from hf_w2s.scripts.config import config_classes
from hf_w2s.scripts.parser import RENAMED

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "recipes" / "configs"
TWINS = sorted(CONFIGS.glob("*_offline.yaml"))
DIGITS = [str(i) for i in range(10)]
# small and fast: every offline twin end to end in seconds (100 test digits: accuracies are multiples of 1 %)
TINY = ["--split_sizes", "60", "200", "100", "100", "--num_train_epochs", "1", "--eval_strategy", "no",
        "--logging_steps", "100", "--plots", "false"]


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def _student(out: Path) -> tuple[dict, ModelCard]:
    return json.loads((out / "student" / "w2s_results.json").read_text()), ModelCard.load(out / "student" / "README.md")


def test_yaml_config_then_command_line_overrides(tmp_path):
    recipe = CONFIGS / "cifar100_distillation_gt_offline.yaml"
    c = load_config(recipe, argv=["--learning_rate", "0.05", "--weak_supervisors",
                                  supervisors_of(recipe, shots_per_class=3)])
    assert c.training.learning_rate == 0.05  # the command line wins
    assert c.training.gt_loss_weight == 1.0 and [s.name for s in c.experiment.losses] == ["adapt_conf"]  # the file
    assert c.data.split_sizes == [500, 2700, 300, 1500] and c.model.model_name_or_path == "tiny:resnet,width=16,depth=2"
    (weak,) = c.experiment.weak_supervisors
    assert (weak.shots_per_class, weak.online, weak.num_train_epochs) == (3, True, 20)
    assert weak.model == "tiny:linear,width=8"
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name_or_path: tiny:resnet\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match=r"unknown keys in .*bad.yaml: \['learning_rat'\]"):
        load_config(bad)
    old = tmp_path / "old.yaml"
    old.write_text("weak_shots_per_class: 3\n")
    with pytest.raises(ValueError, match=r"'weak_shots_per_class' is gone in hf_w2s 0.3: use weak_supervisors: "
                                         r"\[\{shots_per_class: ...\}\]"):
        load_config(old)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_recipe_parses_and_validates(path, tmp_path):
    c = load_config(path, argv=["--bf16", "false", "--output_dir", str(tmp_path / "o")])  # Hub recipes ask for bf16
    exp = Experiment(c.experiment, c.data, c.model, c.training, given=c.given)  # every run's arguments checked
    assert c.experiment.student_rows * len(c.experiment.seeds) == 1  # hf-w2s train trains one student
    assert (c.data.split_sizes[2] > 0 or c.data.validation_split) and exp.evaluates  # evaluated on validation
    if not path.stem.endswith("_offline"):
        twin = path.with_name(f"{path.stem}_offline.yaml")
        assert twin.exists(), f"{path.name} has no offline twin"
        t = load_config(twin)
        knobs = ("confidence_temperature", "kd_temperature", "gt_loss_weight", "a_warmup", "label_smoothing_factor")
        assert [s.name for s in t.experiment.losses] == [s.name for s in c.experiment.losses]
        assert [getattr(t.training, k) for k in knobs] == [getattr(c.training, k) for k in knobs]
        assert t.experiment.ceiling == c.experiment.ceiling
        assert [w.source for w in t.experiment.weak_supervisors] == [w.source if w.source != "model" else "train"
                                                                     for w in c.experiment.weak_supervisors]
        assert "/" in c.model.model_name_or_path  # a real Hub id
        assert f"Offline twin: {twin.name}" in path.read_text()


#: names of hf_w2s 0.2 that a comment must not use as options any more (a weak supervisor's own fields and the
#: current options excepted), and modules that no longer exist
_OPTIONS = {f.name for cls in (*config_classes(), WeakSupervisorConfig) for f in dataclasses.fields(cls)}
_OLD_KEYS = sorted(k for k in RENAMED if "_" in k and k not in _OPTIONS)
_OLD_MODULES = r"hf_w2s\.(noise|multi_weak|conf_select|weak_labels|models|recipe|trainer\.validation)\b"


@pytest.mark.parametrize("path", sorted([*CONFIGS.glob("*.yaml"), *(ROOT / "recipes" / "experiments").glob("*.yaml"),
                                         ROOT / "recipes" / "train_student.py"]), ids=lambda p: p.name)
def test_recipe_comments_name_current_options_modules_and_files(path):
    text = path.read_text()
    comments = "\n".join(line for line in text.splitlines() if line.lstrip().startswith("#")) if path.suffix == \
        ".yaml" else text
    stale = [k for k in _OLD_KEYS if re.search(rf"\b{k}\b", comments)]
    assert not stale, f"{path.name} names options of hf_w2s 0.2: {stale}"
    assert not re.search(_OLD_MODULES, comments), re.search(_OLD_MODULES, comments).group(0)
    for name in re.findall(r"\b([\w.-]+\.yaml)\b", comments):  # every recipe a comment points to exists
        assert (CONFIGS / name).exists() or (ROOT / "recipes" / "experiments" / name).exists(), name


# -- hf-w2s train: errors before anything runs ------------------------------------------------------------------

BASE = ["--image_size", "8", "--split_sizes", "20", "30", "10", "20", "--dataset", "hf_w2s:sklearn_digits"]


@pytest.mark.parametrize("argv, match", [
    (["--weak_supervisors", "{name: n, source: noisy_labels}"], "source noisy_labels needs label_noise_rate > 0"),
    (["--weak_supervisors", "{name: w, source: model, model: 'tiny:linear'}"],
     "builds an untrained model: use source train"),
    (["--weak_supervisors", "{name: w, model: 'tiny:linear', shots_per_class: 0}"], "shots_per_class must be >= 1"),
    (["--split_sizes", "100", "500", "300"], "needs four: weak_train, strong_train, validation, test"),
    (["--mixup_alpha", "-1"], "mixup_alpha must be >= 0"),
    (["--layer_decay", "0"], r"layer_decay must be within \(0, 1\]"),
    (["--weak_supervisors", "{name: n, source: noisy_labels, label_noise_rate: 0.2, label_noise_transition: [1, 0]}"],
     "asymmetric only"),
    (["--lora_alpha", "8"], "set use_peft true"),
    (["--losses", "nope"], "unknown loss 'nope'"),
    (["--losses", "kd", "adapt_conf"], "trains one student: one weak supervisor, one loss and one seed"),
    (["--seeds", "0", "1"], "trains one student"),
    (["--label_noise_rate", "0.2"], r"--label_noise_rate is gone in hf_w2s 0.3: use weak_supervisors: \[\{source: "
                                    r"noisy_labels"),
    (["--w2s_loss", "kd"], "w2s_loss is set by the runner for each run: use losses"),
    (["--dataset_name", "hf_w2s:mnist"], "--dataset_name is gone in hf_w2s 0.3: use dataset"),
])
def test_bad_arguments_are_named_before_anything_runs(argv, match, tmp_path, capsys):
    code, _, err = run_cli(["train", *BASE, "--output_dir", tmp_path / "o", *argv], capsys)
    assert code == 2 and err.startswith("hf-w2s train: error:"), err
    assert re.search(match, err), err
    assert not (tmp_path / "o").exists()


# -- each offline twin, end to end --------------------------------------------------------------------------------


@pytest.mark.parametrize("twin", [pytest.param(t, marks=require_pretrained) if "lite0" in t.name else t
                                  for t in TWINS], ids=lambda p: p.name)
def test_offline_twin_end_to_end(twin, tmp_path, capsys):
    out = tmp_path / "out"
    spec = yaml.safe_load(twin.read_text())
    shots = {"shots_per_class": 2} if "fewshot" in twin.name else {}
    code, printed, err = run_cli(["train", "--config", twin, "--output_dir", out, *TINY, "--weak_supervisors",
                                  supervisors_of(twin, num_train_epochs=2, **shots)], capsys)
    assert code == 0, err[-3000:]
    summary = json.loads(printed.strip().splitlines()[-1])
    results, card = _student(out)
    assert summary["student"] == str(out / "student") and summary["accuracy"] == results["accuracy"]
    assert 0.0 <= results["accuracy"] <= 1.0
    assert results["accuracy"] * 100 == pytest.approx(round(results["accuracy"] * 100))  # over the 100 test digits
    student = out / "student"
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {p.name for p in student.iterdir()}
    config = json.loads((student / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(10)] == DIGITS
    index = card.data.to_dict()["model-index"][0]["results"][0]
    metrics = {m["type"]: m["value"] for m in index["metrics"]}
    assert metrics["accuracy"] == pytest.approx(results["accuracy"])
    assert index["dataset"]["name"] == "hf_w2s:mnist"
    assert "weak-to-strong" in card.data.tags and card.data.pipeline_tag == "image-classification"
    assert f"Loss: **`{spec['losses'][0]}`**" in card.text and "## How to load" in card.text
    weak_spec = spec["weak_supervisors"][0]
    weak, ceiling = results["weak_accuracy"], results["ceiling_accuracy"]
    assert (ceiling is not None) == bool(spec["ceiling"])
    assert (weak is not None) == ("model" in weak_spec)  # label-noise twins have no weak model
    if weak is not None and ceiling is not None and ceiling > weak:  # PGR = (w2s - weak) / (ceiling - weak)
        assert results["pgr"] == pytest.approx((results["accuracy"] - weak) / (ceiling - weak))
        assert metrics["pgr"] == pytest.approx(results["pgr"])
    else:  # no weak model, no ceiling, or no gap between them: PGR is undefined and not reported
        assert results["pgr"] is None and "pgr" not in metrics
    (weak_record,) = [r for r in _records(out) if r["kind"] == "weak"]
    if weak_spec.get("source") == "noisy_labels":  # the noise rate, realised exactly over the 200 examples
        assert weak_record["supervision_accuracy"] == pytest.approx(1 - weak_spec["label_noise_rate"])
        assert f"{weak_spec['label_noise_kind']} label noise at rate {weak_spec['label_noise_rate']}" in card.text
    if shots:
        assert weak_record["num_train_examples"] == 2 * 10
    if spec.get("mixup_alpha"):
        assert "mixup α=0.8" in card.text and "RandomResizedCrop" in card.text
    if spec.get("cutmix_alpha"):
        assert "CutMix α=1.0 (one of the two per batch)" in card.text and "RandomErasing(p=0.25)" in card.text


def test_student_beats_its_noisy_supervision(tmp_path, capsys):
    """End to end through hf-w2s train: a student that only ever sees labels of which exactly half are wrong
    (symmetric noise 0.5, so its supervision is 50 % accurate) learns the digits better than that, and the saved
    student reproduces the reported accuracy in a fresh load."""
    out = tmp_path / "out"
    argv = ["train", "--config", CONFIGS / "cifar10_noisy_symmetric_offline.yaml", "--output_dir", out,
            "--split_sizes", "0", "720", "80", "300", "--num_train_epochs", "4", "--losses", "weak_hard",
            "--learning_rate", "0.01", "--ceiling", "false", "--eval_strategy", "no", "--plots", "false"]
    code, _, err = run_cli(argv, capsys)
    assert code == 0, err[-3000:]
    (weak,) = [r for r in _records(out) if r["kind"] == "weak"]
    assert weak["supervision_accuracy"] == pytest.approx(0.5)
    results, _ = _student(out)
    assert results["accuracy"] > 0.5 + 0.08, results  # chance is 0.1
    # the saved student reproduces the reported accuracy on the test split the run read
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from hf_w2s.data.images import pixel_values_from_images

    test = load_from_disk(str(next((out / "data").glob("splits-*")) / "test"))
    model = AutoModelForImageClassification.from_pretrained(out / "student").eval()
    proc = AutoImageProcessor.from_pretrained(out / "student")
    with torch.no_grad():
        logits = model(pixel_values=pixel_values_from_images(test["image"], proc)).logits
    assert (logits.argmax(-1).numpy() == np.asarray(test["label"])).mean() == pytest.approx(results["accuracy"])


def test_existing_output_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "student"
    out.mkdir()
    (out / "config.json").write_text("{}")
    code, _, err = run_cli(["train", "--config", CONFIGS / "cifar10_noisy_symmetric_offline.yaml", "--output_dir",
                            out, *TINY], capsys)
    assert code == 2 and "is not empty and holds no w2s_config.yaml" in err, err
    assert (out / "config.json").read_text() == "{}" and sorted(p.name for p in out.iterdir()) == ["config.json"]


@pytest.fixture(scope="module")
def with_splits(tmp_path_factory):
    """A dataset on disk with the splits weak_train / strong_train / test (no validation split)."""
    return str(saved_splits(tmp_path_factory.mktemp("splits") / "ds", weak_train=band_dataset(30),
                            strong_train=band_dataset(60, 1), test=band_dataset(30, 2)))


@pytest.mark.parametrize("override, match", [
    (["--test_split", "validation"], r"has no split 'validation'; its splits: \['strong_train', 'test', "
                                     r"'weak_train'\]"),
    (["--test_split", "test", "--image_column", "img"], "has no image column 'img'.*Did you mean 'image'"),
    (["--test_split", "test", "--weak_supervisors", "{name: n, source: noisy_labels, label_noise_rate: 0.5, "
      "label_noise_kind: asymmetric, label_noise_transition: [1, 0]}"], "2 partners for 3 classes"),
])
def test_bad_data_is_named(override, match, tmp_path, with_splits, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(["train", "--dataset", with_splits, "--train_split", "strong_train", "--image_size", "8",
                            "--split_sizes", "10", "30", "10", "0", "--losses", "weak_hard", "--plots", "false",
                            "--output_dir", out, *override], capsys)
    assert code == 2 and re.search(match, err), err  # also errors raised deep inside the run: one line
    assert "Traceback" not in err and not (out / "student").exists()


def test_weak_labels_dataset_from_disk(tmp_path, capsys):
    """Supervision from a saved weak-labelled dataset (as hf-w2s label writes it): weak_logits is used as is, the
    dataset replaces the strong split, and no weak model means no weak test accuracy."""
    from hf_w2s.data.noise import add_noisy_labels

    sizes = [0, 200, 100, 100]
    strong = build_splits(DataConfig(dataset="hf_w2s:mnist", split_sizes=sizes))["strong_train"]
    add_noisy_labels(strong, 0.0, confidence=0.95).save_to_disk(str(tmp_path / "weak"))  # perfect weak labels
    out = tmp_path / "out"
    code, printed, err = run_cli(
        ["train", "--model_name_or_path", "tiny:resnet,width=8,depth=1", "--split_sizes", *map(str, sizes),
         "--weak_supervisors", json.dumps([{"name": "given", "weak_labels": str(tmp_path / "weak")}]),
         "--losses", "weak_hard", "--ceiling", "false", "--output_dir", out, "--num_train_epochs", "1",
         "--plots", "false"], capsys)
    assert code == 0, err[-3000:]
    (weak,) = [r for r in _records(out) if r["kind"] == "weak"]
    assert weak["source"] == "weak_labels" and weak["supervision_accuracy"] == 1.0  # its labels, used as they are
    results, card = _student(out)
    assert results["weak_accuracy"] is None  # no weak model was given: no test predictions
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
    renamed = load_image_classifier(str(tmp_path / "old"), DIGITS)
    resized = load_image_classifier(str(tmp_path / "old"), ["x", "y", "z"])
    w = old.classifier[1].weight
    assert torch.equal(same.classifier[1].weight, w)  # same label names: the trained head is kept
    assert not torch.equal(renamed.classifier[1].weight, w)  # same size, other names: a fresh head
    assert resized.classifier[1].weight.shape == (3, w.shape[1])
    assert renamed.config.id2label[3] == "3" and resized.config.label2id == {"x": 0, "y": 1, "z": 2}
    for model in (same, renamed, resized):
        assert torch.equal(model.resnet.embedder.embedder.convolution.weight,
                           old.resnet.embedder.embedder.convolution.weight)


# -- recipes/train_student.py is hf-w2s train ---------------------------------------------------------------------


def _train_student(argv: list[str], monkeypatch) -> int:
    """``python recipes/train_student.py ARGV``, run in this process."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "recipes" / "train_student.py"), *map(str, argv)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "recipes" / "train_student.py"), run_name="__main__")
    return exit_.value.code


def test_hf_w2s_train_is_the_recipe_script(monkeypatch, capsys):
    assert _train_student(["--help"], monkeypatch) == 0
    script_help = capsys.readouterr().out
    code, train_help, _ = run_cli(["train", "--help"], capsys)
    assert code == 0 and script_help == train_help
    # --config first, then the groups of the one schema, the training arguments last
    order = [train_help.index(s) for s in ("--config", "(ExperimentConfig):", "--weak_supervisors", "(DataConfig):",
                                           "(ModelConfig):", "--use_peft", "(WeakToStrongConfig):", "--learning_rate",
                                           "--push_to_hub")]
    assert order == sorted(order)
    assert _train_student(["--losses", "nope"], monkeypatch) == 2
    assert "hf-w2s train: error: unknown loss 'nope'" in capsys.readouterr().err


# -- the whole flow against the local Hub (tests/hub/) ------------------------------------------------------------

LOADER = r'''
import sys
from PIL import Image
import torch
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


def test_one_command_trains_pushes_and_a_fresh_process_loads(local_hub, hub_token, tmp_path, capsys):
    """From the offline twin, one command (``hf-w2s train``, which recipes/train_student.py runs) trains a student and
    pushes it with its card; a separate process that never imports hf_w2s loads it with from_pretrained and pipeline.
    Same for a LoRA student (merged model at the repo root, adapter in adapter/, identical logits)."""
    from PIL import Image as PILImage
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    recipe = CONFIGS / "cifar100_distillation_gt_offline.yaml"
    repos = {"plain": local_hub.new_repo_id("digits-student"), "lora": local_hub.new_repo_id("digits-lora")}
    for name, repo in repos.items():
        code, printed, err = run_cli(
            ["train", "--config", recipe, "--output_dir", tmp_path / name, *TINY, "--ceiling", "false",
             "--weak_supervisors", supervisors_of(recipe, num_train_epochs=1), "--push_to_hub", "true",
             "--hub_model_id", repo, *(["--use_peft", "true", "--lora_r", "4"] if name == "lora" else [])], capsys)
        assert code == 0, err[-3000:]
        assert json.loads(printed.strip().splitlines()[-1])["repo_id"] == repo

    files = {name: local_hub.files(repo) for name, repo in repos.items()}
    for name in files:
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md",
                "w2s_results.json"} <= set(files[name])
        assert not [p for p in files[name] if p.startswith("checkpoint-") or p.endswith("training_args.bin")]
        assert {"weak_model/model.safetensors", "weak_model/config.json"} <= set(files[name])  # the supervisor too
        assert files[name]["model.safetensors"]["lfs"]
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "base_model/config.json",
            "base_model/model.safetensors"} <= set(files["lora"])
    assert "adapter/adapter_config.json" not in files["plain"]
    student = {name: tmp_path / name / "student" for name in repos}
    assert local_hub.file_bytes(repos["plain"], "README.md") == (student["plain"] / "README.md").read_bytes()

    test = load_from_disk(str(next((tmp_path / "plain" / "data").glob("splits-*")) / "test"))
    image_path = tmp_path / "digit.png"
    test[0]["image"].save(image_path)
    loaded = local_hub.run_python(LOADER, args=(str(image_path), repos["plain"], repos["lora"]), timeout=300).result
    assert loaded["hf_w2s_imported"] is False
    for name in ("plain", "lora"):
        got = loaded[name]
        assert got["arch"] == "ResNetForImageClassification"
        assert got["id2label"] == {str(i): str(i) for i in range(10)}
        # the Hub copy classifies exactly like the local save
        local = AutoModelForImageClassification.from_pretrained(student[name]).eval()
        proc = AutoImageProcessor.from_pretrained(student[name])
        with torch.no_grad():
            expected = local(**proc(images=PILImage.open(image_path).convert("RGB"), return_tensors="pt")).logits[0]
        torch.testing.assert_close(torch.tensor(got["logits"]), expected, atol=1e-6, rtol=1e-6)
        top = got["pipeline"]
        assert top[0]["label"] == str(int(expected.argmax()))
        assert top[0]["score"] == pytest.approx(float(torch.softmax(expected, -1).max()), rel=1e-4)
        results = json.loads((student[name] / "w2s_results.json").read_text())
        metrics = {m["type"]: m["value"] for m in got["model_index"][0]["results"][0]["metrics"]}
        assert metrics["accuracy"] == pytest.approx(results["accuracy"])
        assert f'from_pretrained("{repos[name]}")' in got["card_text"]
    torch.testing.assert_close(torch.tensor(loaded["lora"]["adapter_logits"]), torch.tensor(loaded["lora"]["logits"]),
                               atol=1e-5, rtol=1e-5)
    assert 'subfolder="adapter"' in loaded["lora"]["card_text"] and "LoRA r = 4" in loaded["lora"]["card_text"]
