"""Weak labelling (issue 3): columns, deliberate caching, label-space matching, bad input, the ``hf-w2s label`` CLI."""

from __future__ import annotations

import copy
import io
import math
import os

import numpy as np
import pytest
import torch
import yaml
from datasets import ClassLabel, Dataset, DatasetDict, Features, Image, load_from_disk
from PIL import Image as PILImage
from scripts.tiny_data import weak_model_with_dropout_and_batch_norm

from hf_w2s import label_dataset, load_weak_model, weak_label_accuracy
from hf_w2s.cli import main as cli_main
from hf_w2s.data.images import pixel_values_from_images
from hf_w2s.data.loading import load_image_dataset
from hf_w2s.data.packaged import load_sklearn_digits
from hf_w2s.data.weak_labels import align_to_model as resolve_train_dataset
from hf_w2s.data.weak_labels import align_weak_labels, model_identity, weak_logits_array
from hf_w2s.modeling import build_model, tiny_image_processor
from hf_w2s.scripts.label import LabelConfig, parse_args

NAMES = [str(i) for i in range(10)]
N = 48


def main(argv):
    return cli_main(["label", *argv])


@pytest.fixture(autouse=True)
def _quiet():
    import datasets

    datasets.disable_progress_bars()
    torch.set_num_threads(1)


def weak(seed=0, names=NAMES, channels=3):
    return build_model("linear", names, image_size=8, num_channels=channels, width=8, seed=seed)


class Counter:
    """Counts forward calls of a module (through a hook, which leaves the weights and their hash alone)."""

    def __init__(self, model):
        self.calls = 0
        model.register_forward_hook(self._hook)

    def _hook(self, *_):
        self.calls += 1


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "ds"
    load_sklearn_digits().select(range(N)).save_to_disk(str(path))
    return str(path)


@pytest.fixture
def digits(digits_dir):
    return load_from_disk(digits_dir)


def direct_logits(model, processor, images):
    with torch.no_grad():
        return model(pixel_values=pixel_values_from_images(images, processor)).logits.float().numpy()


# -- columns --------------------------------------------------------------------------------------------------------


def test_columns_equal_a_direct_forward(digits):
    # batch norm and dropout: a forward in training mode gives other logits than the evaluation forward below
    model, processor = weak_model_with_dropout_and_batch_norm(NAMES, seed=0), tiny_image_processor(8)
    model.train()
    out = label_dataset(digits, model, processor, batch_size=16)
    assert model.training  # labelling ran in eval mode and left the caller's model as it was
    model.eval()
    expected = direct_logits(model, processor, digits["image"])
    model.train()
    assert not np.allclose(direct_logits(model, processor, digits["image"]), expected, atol=1e-3)
    model.eval()
    logits = weak_logits_array(out)
    assert logits.shape == (N, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["weak_label"], expected.argmax(-1))
    probs = torch.softmax(torch.from_numpy(expected), -1).numpy()
    np.testing.assert_allclose(out["weak_confidence"], probs.max(-1), rtol=1e-5)
    assert out.features["weak_label"] == ClassLabel(names=NAMES)
    assert out.features["image"] == digits.features["image"] and out.column_names[:2] == ["image", "label"]
    assert out["label"] == digits["label"]  # the original columns are kept
    acc = weak_label_accuracy(out)
    assert acc == pytest.approx(float((expected.argmax(-1) == np.array(digits["label"])).mean()))


def test_labelling_forward_runs_without_autograd(digits):
    """The weak model runs under inference mode (no autograd graph, no gradient memory), also for a frozen model
    whose outputs would not need gradients anyway."""
    model = weak(seed=6).requires_grad_(False)
    modes = []
    model.register_forward_hook(lambda *_: modes.append((torch.is_grad_enabled(), torch.is_inference_mode_enabled())))
    in_memory = digits.flatten_indices(keep_in_memory=True)  # never read from a cache
    label_dataset(in_memory, model, tiny_image_processor(8), batch_size=16)
    assert modes == [(False, True)] * 3
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def test_shuffled_input_and_relabelling_a_labelled_dataset(digits):
    """An input with an indices mapping (shuffle) keeps its row order; labelling again replaces the three columns."""
    model, other, processor = weak(seed=0), weak(seed=5), tiny_image_processor(8)
    shuffled = digits.shuffle(seed=3)
    assert shuffled._indices is not None
    out = label_dataset(shuffled, model, processor, batch_size=16)
    np.testing.assert_allclose(weak_logits_array(out), direct_logits(model, processor, shuffled["image"]),
                               rtol=1e-5, atol=1e-6)
    assert out["label"] == shuffled["label"]
    again = label_dataset(out, other, processor, batch_size=16)
    assert again.column_names == out.column_names  # replaced, not duplicated
    np.testing.assert_allclose(weak_logits_array(again), direct_logits(other, processor, shuffled["image"]),
                               rtol=1e-5, atol=1e-6)
    assert not np.allclose(weak_logits_array(again), weak_logits_array(out))
    np.testing.assert_array_equal(np.asarray(again[0]["image"]), np.asarray(shuffled[0]["image"]))


# -- caching --------------------------------------------------------------------------------------------------------


def test_rerun_is_free_and_any_change_recomputes(digits_dir):
    ds = load_from_disk(digits_dir)
    model, processor = weak(seed=1), tiny_image_processor(8)
    counter = Counter(model)
    first = label_dataset(ds, model, processor, batch_size=16)
    assert counter.calls == math.ceil(N / 16) == 3
    again = label_dataset(load_from_disk(digits_dir), model, processor, batch_size=8)  # batch size is not a key
    assert counter.calls == 3
    assert again._fingerprint == first._fingerprint
    np.testing.assert_array_equal(weak_logits_array(again), weak_logits_array(first))

    with torch.no_grad():  # a changed weak model never reuses the cached labels
        model.classifier.bias[0] += 1.0
    changed = label_dataset(ds, model, processor, batch_size=16)
    assert counter.calls == 6
    np.testing.assert_allclose(weak_logits_array(changed)[:, 0], weak_logits_array(first)[:, 0] + 1.0, rtol=1e-5)

    other = tiny_image_processor(8)  # nor does changed preprocessing
    other.image_mean = [0.4, 0.4, 0.4]
    label_dataset(ds, model, other, batch_size=16)
    assert counter.calls == 9
    label_dataset(ds.select(range(16)), model, processor, batch_size=16)  # nor other data
    assert counter.calls == 10
    label_dataset(ds, model, processor, batch_size=16, logits_column="w")  # nor other parameters
    assert counter.calls == 13


def test_in_memory_dataset_is_never_cached():
    ds = load_sklearn_digits().select(range(8)).flatten_indices(keep_in_memory=True)
    model = weak()
    counter = Counter(model)
    label_dataset(ds, model, tiny_image_processor(8))
    label_dataset(ds, model, tiny_image_processor(8))
    assert counter.calls == 2


def test_local_path_has_the_in_memory_identity(digits_dir, tmp_path):
    model, processor = weak(seed=2), tiny_image_processor(8)
    model.save_pretrained(tmp_path / "weak")
    processor.save_pretrained(tmp_path / "weak")
    loaded = load_weak_model(tmp_path / "weak")
    assert loaded.identity.startswith("sha256:")  # a local directory can change: its weights are hashed
    a = label_dataset(load_from_disk(digits_dir), model, processor)
    b = label_dataset(load_from_disk(digits_dir), str(tmp_path / "weak"))
    assert a._fingerprint == b._fingerprint
    np.testing.assert_array_equal(weak_logits_array(a), weak_logits_array(b))
    assert model_identity(copy.deepcopy(model).to(torch.bfloat16)) != model_identity(model)  # dtype is identity
    model.save_pretrained(tmp_path / "no_processor")
    with pytest.raises(ValueError, match="has no image processor"):
        load_weak_model(tmp_path / "no_processor")


# -- label spaces ----------------------------------------------------------------------------------------------------


def permuted_copy(model, perm, names=NAMES):
    """The same classifier with its outputs reordered: output k is the original class perm[k]."""
    other = weak(names=[names[p] for p in perm])
    other.load_state_dict(model.state_dict())
    with torch.no_grad():
        other.classifier.weight.copy_(model.classifier.weight[perm])
        other.classifier.bias.copy_(model.classifier.bias[perm])
    return other


def test_reordered_weak_labels_are_remapped_by_name(digits):
    model, processor = weak(seed=3), tiny_image_processor(8)
    perm = [3, 9, 0, 1, 7, 2, 8, 4, 6, 5]
    shuffled = permuted_copy(model, perm)
    assert [shuffled.config.id2label[k] for k in range(10)] == [NAMES[p] for p in perm]
    a = label_dataset(digits, model, processor)
    b = label_dataset(digits, shuffled, processor)
    np.testing.assert_allclose(weak_logits_array(b), weak_logits_array(a), rtol=1e-5, atol=1e-6)
    assert b["weak_label"] == a["weak_label"]
    assert b.features["weak_label"].names == NAMES  # written in the dataset's label order
    # an explicit target order (e.g. the student's) is honoured too
    c = label_dataset(digits, model, processor, label_names=shuffled)
    np.testing.assert_allclose(weak_logits_array(c), weak_logits_array(a)[:, perm], rtol=1e-5, atol=1e-6)
    assert c.features["weak_label"].names == [NAMES[p] for p in perm]
    assert weak_label_accuracy(c) == pytest.approx(weak_label_accuracy(a))  # accuracy is matched by names


def test_mismatched_label_names_fail_before_compute(digits):
    names = NAMES[:9] + ["nine"]
    model = weak(names=names)
    counter = Counter(model)
    with pytest.raises(ValueError, match=r"missing from the weak model: \['9'\].*missing from the dataset labels: "
                                         r"\['nine'\]"):
        label_dataset(digits, model, tiny_image_processor(8))
    assert counter.calls == 0


def test_weak_label_accuracy_by_hand():
    gt = ClassLabel(names=["cat", "dog", "fox"])
    wl = ClassLabel(names=["fox", "cat", "dog"])
    ds = Dataset.from_dict(
        {"label": [0, 1, 2, 2, -1], "weak_label": [1, 2, 0, 1, 0]},
        features=Features({"label": gt, "weak_label": wl}),
    )
    # weak names: cat, dog, fox, cat, fox vs truth cat, dog, fox, fox, (unlabelled) -> 3 of 4
    assert weak_label_accuracy(ds) == pytest.approx(0.75)
    assert weak_label_accuracy(ds.remove_columns("label")) is None


def test_align_weak_labels_reorders_for_the_student(digits):
    labelled = label_dataset(digits, weak(seed=4), tiny_image_processor(8))
    # the student's names in another order: a 3-cycle of 0 -> 1 -> 2 -> 0 and a swap of 8, 9 (a permutation that is
    # not its own inverse: mapping the ids with the forward permutation instead of the inverse would show)
    order = ["1", "2", "0", "3", "4", "5", "6", "7", "9", "8"]
    student = build_model("resnet", order, image_size=8, width=4, depth=1, seed=0)
    aligned = resolve_train_dataset(labelled, student)
    by_hand = np.stack([weak_logits_array(labelled)[:, NAMES.index(n)] for n in order], axis=1)
    np.testing.assert_array_equal(weak_logits_array(aligned), by_hand)
    assert aligned.features["weak_label"].names == order
    assert [order[i] for i in aligned["weak_label"]] == [NAMES[i] for i in labelled["weak_label"]]
    with pytest.raises(ValueError, match=r"missing from the weak-label dataset: \['ten'\]"):
        align_weak_labels(labelled, NAMES[:9] + ["ten"])


# -- bad input -------------------------------------------------------------------------------------------------------


def test_missing_image_column_and_empty_dataset(digits):
    model = weak()
    counter = Counter(model)
    with pytest.raises(ValueError, match=r"no image column 'img'.*image columns present: \['image'\]"):
        label_dataset(digits, model, tiny_image_processor(8), image_column="img")
    with pytest.raises(ValueError, match="not a datasets.Image column"):
        label_dataset(digits, model, tiny_image_processor(8), image_column="label")
    with pytest.raises(ValueError, match="empty"):
        label_dataset(digits.select([]), model, tiny_image_processor(8))
    assert counter.calls == 0


def test_images_are_converted_to_the_processor_mode(digits):
    rgb = digits.map(lambda ex: {"image": ex["image"].convert("RGB")})
    assert rgb[0]["image"].mode == "RGB"
    gray_model, gray_proc = weak(seed=5, channels=1), tiny_image_processor(8, num_channels=1)
    from_rgb = label_dataset(rgb, gray_model, gray_proc)  # RGB into a grayscale model: converted to L
    expected = direct_logits(gray_model, gray_proc, [im.convert("L") for im in rgb["image"]])
    np.testing.assert_allclose(weak_logits_array(from_rgb), expected, rtol=1e-5, atol=1e-6)
    rgb_model, rgb_proc = weak(seed=5, channels=3), tiny_image_processor(8, num_channels=3)
    from_gray = label_dataset(digits, rgb_model, rgb_proc)  # L into an RGB model: converted to RGB
    expected = direct_logits(rgb_model, rgb_proc, [im.convert("RGB") for im in digits["image"]])
    np.testing.assert_allclose(weak_logits_array(from_gray), expected, rtol=1e-5, atol=1e-6)


def png_bytes(value):
    buf = io.BytesIO()
    PILImage.fromarray(np.full((8, 8), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_undecodable_image_names_the_row():
    images = [{"bytes": png_bytes(v), "path": None} for v in (0, 50, 100)]
    images.insert(2, {"bytes": b"\x89PNG definitely not an image", "path": "broken.png"})
    ds = Dataset.from_dict({"image": images}, features=Features({"image": Image()}))
    with pytest.raises(ValueError, match=r"row 2: cannot decode the image in column 'image' \(path 'broken.png'\)"):
        label_dataset(ds, weak(), tiny_image_processor(8), batch_size=4)


def test_nan_weak_outputs_raise_and_write_nothing(digits_dir):
    model = weak()
    with torch.no_grad():
        model.classifier.bias[4] = float("nan")
    before = sorted(os.listdir(digits_dir))
    with pytest.raises(ValueError, match=r"non-finite logits \(NaN/inf\) for rows \[0, 1, 2"):
        label_dataset(load_from_disk(digits_dir), model, tiny_image_processor(8), batch_size=16)
    assert sorted(os.listdir(digits_dir)) == before  # no cache file was left behind


# -- the CLI ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def weak_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("weak") / "model"
    weak(seed=6).save_pretrained(path)
    tiny_image_processor(8).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def imagefolder(tmp_path_factory):
    """A local imagefolder: class sub-folders of PNG files (RGB on purpose: the weak model is grayscale)."""
    root = tmp_path_factory.mktemp("folder")
    ds = load_sklearn_digits().select(range(30))
    for i, ex in enumerate(ds):
        d = root / NAMES[ex["label"]]
        d.mkdir(exist_ok=True)
        ex["image"].convert("RGB").save(d / f"{i:03d}.png")
    return str(root)


def forward_counter(monkeypatch):
    from transformers import ConvNextForImageClassification

    counter = {"calls": 0}
    forward = ConvNextForImageClassification.forward

    def counted(self, *args, **kwargs):
        counter["calls"] += 1
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(ConvNextForImageClassification, "forward", counted)
    return counter


def test_cli_labels_an_imagefolder_and_caches(weak_dir, imagefolder, tmp_path, capsys, monkeypatch):
    counter = forward_counter(monkeypatch)
    out = tmp_path / "out"
    argv = ["--weak-model", weak_dir, "--dataset", imagefolder, "--output", str(out), "--batch-size", "16"]
    assert main(argv) == 0
    assert counter["calls"] == 2 + 1  # two batches, and the preflight's forward on the first images
    printed = capsys.readouterr().out
    assert "labelled 30 examples" in printed and "weak accuracy: " in printed
    saved = load_from_disk(str(out))
    assert set(saved.column_names) >= {"image", "label", "weak_logits", "weak_label", "weak_confidence"}
    source = load_image_dataset(imagefolder)
    assert source.features["label"].names == [n for n in NAMES if n in source.features["label"].names]
    model, processor = load_weak_model(weak_dir)[:2]
    np.testing.assert_allclose(weak_logits_array(saved), direct_logits(model, processor, source["image"]),
                               rtol=1e-5, atol=1e-6)
    acc = float(printed.split("weak accuracy: ")[1].split()[0])
    assert acc == pytest.approx(weak_label_accuracy(saved), abs=1e-4)

    state = (out / "state.json").read_text()
    assert main(argv) == 2  # never overwrites what is there
    assert "exists and is not empty" in capsys.readouterr().err
    assert (out / "state.json").read_text() == state
    counter["calls"] = 0
    assert main(argv + ["--overwrite"]) == 0  # same inputs: read from the cache
    assert counter["calls"] == 1  # the preflight's forward only


def test_cli_save_to_disk_source_and_yaml_config(weak_dir, digits_dir, tmp_path, capsys):
    config = tmp_path / "label.yaml"
    config.write_text(yaml.safe_dump({"weak_model": weak_dir, "dataset": digits_dir, "batch_size": 7}))
    parsed = parse_args(["--config", str(config), "--output", str(tmp_path / "o"), "--batch-size", "5"])
    assert (parsed.weak_model, parsed.dataset, parsed.batch_size) == (weak_dir, digits_dir, 5)
    assert parsed.to_command() == (
        f"hf-w2s label --weak-model {weak_dir} --dataset {digits_dir} --output {tmp_path / 'o'} --batch-size 5"
    )
    assert main(["--config", str(config), "--output", str(tmp_path / "o")]) == 0
    assert len(load_from_disk(str(tmp_path / "o"))) == N
    with pytest.raises(ValueError, match="unrecognized arguments: --no-such-flag 1"):
        parse_args(["--config", str(config), "--output", "x", "--no-such-flag", "1"])


def test_cli_bad_inputs_leave_no_output(weak_dir, digits_dir, tmp_path, capsys):
    nan_model = weak()
    with torch.no_grad():
        nan_model.classifier.weight.fill_(float("inf"))
        nan_model.classifier.bias.fill_(-float("inf"))
    nan_model.save_pretrained(tmp_path / "nan")
    tiny_image_processor(8).save_pretrained(tmp_path / "nan")
    out = tmp_path / "out"
    assert main(["--weak-model", str(tmp_path / "nan"), "--dataset", digits_dir, "--output", str(out)]) == 2
    assert "non-finite logits" in capsys.readouterr().err
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())

    bad = weak(names=["a", "b"] + NAMES[2:])
    bad.save_pretrained(tmp_path / "bad")
    tiny_image_processor(8).save_pretrained(tmp_path / "bad")
    assert main(["--weak-model", str(tmp_path / "bad"), "--dataset", digits_dir, "--output", str(out)]) == 2
    assert "missing from the weak model: ['0', '1']" in capsys.readouterr().err
    DatasetDict({"train": load_from_disk(digits_dir).select(range(4))}).save_to_disk(str(tmp_path / "dd"))
    dd = ["--weak-model", weak_dir, "--dataset", str(tmp_path / "dd"), "--output", str(out)]
    assert main(dd + ["--split", "test"]) == 2
    err = capsys.readouterr().err
    assert "has no split 'test'" in err and "its splits: ['train']" in err
    assert main(["--weak-model", weak_dir, "--dataset", digits_dir, "--output", digits_dir, "--overwrite"]) == 2
    assert f"--output {digits_dir!r} is the source dataset" in capsys.readouterr().err
    assert not out.exists()


def test_label_config_help_names_every_option():
    from transformers import HfArgumentParser

    text = HfArgumentParser(LabelConfig).format_help()
    for flag in ("--weak-model", "--dataset", "--split", "--output", "--push-to-hub"):
        assert flag in text


def test_a_saved_and_reloaded_weak_model_keeps_its_identity(tmp_path):
    from transformers import AutoModelForImageClassification

    from hf_w2s.data.weak_labels import weights_hash

    model = weak(seed=9)
    model.config.use_cache = False  # as the Trainer leaves it
    before = weights_hash(model)
    model.save_pretrained(tmp_path / "m")  # adds architectures and dtype to the config
    assert weights_hash(model) == before
    assert weights_hash(AutoModelForImageClassification.from_pretrained(tmp_path / "m")) == before
