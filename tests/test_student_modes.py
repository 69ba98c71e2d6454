"""Student modes (hf_w2s.trainer.student_modes) through WeakToStrongTrainer: full, linear_probe, last_blocks; and
LoRA, which is not a mode but the trainer's ``peft_config`` (TRL's way).

Expected parameter sets are written out by hand from the architectures (EfficientNet-Lite0: 16 MBConv blocks, block
0 without an expansion; the tiny ResNet: one layer per stage), never taken from the code under test.
"""

import pytest
import torch
from testing_utils import NAMES, block_dataset, training_args

from hf_w2s import ModelConfig, WeakToStrongConfig, WeakToStrongTrainer
from hf_w2s.modeling import build_model, load_image_classifier, load_image_processor, tiny_image_processor
from hf_w2s.trainer.student_modes import numbered_blocks


def train(model, tmp_path, processor, steps=2, peft_config=None, **kw):
    args = training_args(tmp_path, **{"w2s_loss": "weak_soft", "max_steps": steps, "learning_rate": 0.05, "seed": 0,
                                      "per_device_train_batch_size": 8, "lr_scheduler_type": "constant", **kw})
    trainer = WeakToStrongTrainer(model=model, args=args, train_dataset=block_dataset(16, weak_accuracy=1.0),
                                  processing_class=processor, peft_config=peft_config)
    trainer.train()
    return trainer


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, model):
    after = model.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


def resnet():
    return build_model("resnet", NAMES, image_size=8, width=8, depth=2, seed=0)


@pytest.fixture
def lite0(lite0_checkpoint):
    return load_image_classifier(lite0_checkpoint, NAMES, seed=0), load_image_processor(lite0_checkpoint, input_size=32)


def test_linear_probe_trains_only_the_head_and_keeps_batch_norm_statistics(tmp_path):
    model = resnet()
    before = snapshot(model)
    trainer = train(model, tmp_path, tiny_image_processor(8), student_mode="linear_probe")
    assert {n for n, p in trainer.model.named_parameters() if p.requires_grad} == {
        "classifier.1.weight", "classifier.1.bias"}
    assert changed(before, model) == {"classifier.1.weight", "classifier.1.bias"}  # no running mean/var moved
    # the control: full fine-tuning moves the backbone and its batch-norm statistics
    full = resnet()
    train(full, tmp_path / "full", tiny_image_processor(8), student_mode="full")
    moved = changed(before, full)
    assert "resnet.embedder.embedder.normalization.running_mean" in moved
    assert "resnet.encoder.stages.1.layers.0.layer.1.convolution.weight" in moved


def test_frozen_backbone_gives_the_pretrained_features_in_train_mode(lite0, tmp_path):
    model, processor = lite0
    train(model, tmp_path, processor, student_mode="linear_probe", steps=1)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    stats = model.efficientnet.encoder.top_bn.running_mean.clone()
    model.train()  # what the Trainer does every step
    with torch.no_grad():
        in_train = model.efficientnet(pixel_values=x).pooler_output
        model.eval()
        in_eval = model.efficientnet(pixel_values=x).pooler_output
    torch.testing.assert_close(in_train, in_eval, rtol=0, atol=0)
    assert torch.equal(model.efficientnet.encoder.top_bn.running_mean, stats)
    model.train()
    model(pixel_values=x)
    assert model.dropout.training and not model.efficientnet.encoder.blocks[3].training  # the head's dropout is on


def test_last_blocks_on_efficientnet_lite0(lite0, tmp_path):
    model, processor = lite0
    assert [n for n, _ in numbered_blocks(model.efficientnet)] == [f"encoder.blocks.{i}" for i in range(16)]
    before = snapshot(model)
    trainer = train(model, tmp_path, processor, student_mode="last_blocks", trainable_blocks=2)
    trainable = {n for n, p in trainer.model.named_parameters() if p.requires_grad}
    expected_prefixes = ("efficientnet.encoder.blocks.14.", "efficientnet.encoder.blocks.15.",
                         "efficientnet.encoder.top_conv.", "efficientnet.encoder.top_bn.", "classifier.")
    assert trainable == {n for n, _ in model.named_parameters() if n.startswith(expected_prefixes)}
    moved = changed(before, model)
    assert "efficientnet.encoder.blocks.15.projection.project_conv.weight" in moved
    assert "efficientnet.encoder.blocks.15.projection.project_bn.running_var" in moved  # trained blocks update stats
    frozen = ("efficientnet.embeddings.", "efficientnet.encoder.blocks.13.", "efficientnet.encoder.blocks.0.")
    assert not {k for k in moved if k.startswith(frozen)}  # weights and batch-norm statistics alike


def test_last_blocks_counts_the_layers_of_every_stage(tmp_path):
    model = resnet()
    assert [n for n, _ in numbered_blocks(model.resnet)] == ["encoder.stages.0.layers.0", "encoder.stages.1.layers.0"]
    vit = build_model("vit", NAMES, image_size=8, width=8, depth=3, seed=0)
    assert [n for n, _ in numbered_blocks(vit.vit)] == ["layers.0", "layers.1", "layers.2"]  # transformers 5 ViT
    before = snapshot(model)
    train(model, tmp_path, tiny_image_processor(8), student_mode="last_blocks", trainable_blocks=1)
    moved = changed(before, model)
    assert not {k for k in moved if k.startswith(("resnet.embedder.", "resnet.encoder.stages.0."))}
    assert "resnet.encoder.stages.1.layers.0.layer.0.normalization.running_mean" in moved
    assert {"classifier.1.weight", "classifier.1.bias"} <= moved


def test_lora_on_efficientnet_convolutions_through_peft_config(lite0, tmp_path):
    from transformers import AutoModelForImageClassification

    from hf_w2s.lora import save_lora_student

    model, processor = lite0
    conv_before = model.efficientnet.encoder.blocks[5].projection.project_conv.weight.detach().clone()
    from peft import LoraConfig

    trainer = train(model, tmp_path, processor, peft_config=LoraConfig(r=2, lora_alpha=4))
    peft_model = trainer.model
    adapted = sorted(n.rsplit(".lora_A", 1)[0].removeprefix("base_model.model.")
                     for n, _ in peft_model.named_modules() if n.endswith("lora_A"))
    expected = sorted([f"efficientnet.encoder.blocks.{i}.expansion.expand_conv" for i in range(1, 16)]
                      + [f"efficientnet.encoder.blocks.{i}.projection.project_conv" for i in range(16)]
                      + ["efficientnet.encoder.top_conv"])
    assert adapted == expected
    base_conv = peft_model.get_base_model().efficientnet.encoder.blocks[5].projection.project_conv.base_layer.weight
    assert torch.equal(base_conv, conv_before)  # LoRA leaves the pretrained weights
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    peft_model.eval()
    with torch.no_grad():
        expected_logits = peft_model(pixel_values=x).logits
    save_lora_student(peft_model, str(tmp_path / "student"), image_processor=processor)
    merged = AutoModelForImageClassification.from_pretrained(tmp_path / "student").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(pixel_values=x).logits, expected_logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kw, match", [
    ({"student_mode": "probe"}, r"student_mode must be one of \['full', 'linear_probe', 'last_blocks'\], got 'probe'"),
    ({"student_mode": "lora"}, r"student_mode must be one of .*, got 'lora'"),  # LoRA is peft_config (use_peft)
    ({"student_mode": "last_blocks", "trainable_blocks": 0}, "trainable_blocks must be >= 1, got 0."),
])
def test_bad_modes_are_refused_by_the_config(tmp_path, kw, match):
    with pytest.raises(ValueError, match=match):
        WeakToStrongConfig(output_dir=str(tmp_path), **kw)


def test_lora_and_a_freezing_mode_are_refused_together(tmp_path):
    from peft import LoraConfig

    with pytest.raises(ValueError, match="peft_config \\(LoRA\\) trains adapters on the whole model; student_mode "
                                         "'linear_probe' would freeze parts of it too"):
        train(resnet(), tmp_path, tiny_image_processor(8), peft_config=LoraConfig(r=2), student_mode="linear_probe")
    assert not (tmp_path / "out").exists()
    # the command line's LoRA options only apply with use_peft
    with pytest.raises(ValueError, match="lora_alpha / lora_target_modules are set but use_peft is false"):
        ModelConfig(lora_alpha=8.0)
    assert ModelConfig().get_peft_config() is None
    peft = ModelConfig(use_peft=True, lora_r=4, lora_target_modules=["q_proj"]).get_peft_config()
    assert (peft.r, peft.lora_alpha, set(peft.target_modules)) == (4, 8, {"q_proj"})


def test_modes_a_model_cannot_take_are_refused_before_training(lite0, tmp_path):
    model, processor = lite0
    with pytest.raises(ValueError, match="trainable_blocks=17, but EfficientNetForImageClassification has 16 blocks"):
        train(model, tmp_path, processor, student_mode="last_blocks", trainable_blocks=17)
    linear = build_model("linear", NAMES, image_size=8, width=8, seed=0)  # a ConvNeXt without blocks
    with pytest.raises(ValueError, match="needs a backbone with numbered blocks"):
        train(linear, tmp_path, tiny_image_processor(8), student_mode="last_blocks")
    assert not (tmp_path / "out").exists()
