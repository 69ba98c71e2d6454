"""LoRA students as TRL trains them: a ``peft.LoraConfig`` given to the trainer (``peft_config``), or built from the
one schema's ``use_peft`` / ``lora_*`` options (``ModelConfig.get_peft_config``); its target modules and
``modules_to_save`` completed per architecture (``hf_w2s.lora.complete_peft_config``); the trained student saved as a
merged plain model and as its adapter, which give the same logits."""

import pytest
import torch
from peft import LoraConfig
from testing_utils import block_dataset, run_cli, train_argv, training_args
from transformers import AutoModelForImageClassification, Dinov2Config, SwinConfig, Swinv2Config

from hf_w2s import ModelConfig, WeakToStrongTrainer
from hf_w2s.lora import (
    apply_peft,
    complete_peft_config,
    default_lora_targets,
    lora_modules_to_save,
    save_lora_student,
)
from hf_w2s.modeling import build_model, head_module_name, tiny_image_processor

NAMES = [str(i) for i in range(10)]


def _tiny(arch):
    if arch in ("resnet", "vit", "convnext", "linear"):
        return build_model(arch, NAMES, width=8, seed=0)
    cfg = {
        "dinov2": Dinov2Config(image_size=28, patch_size=7, num_channels=1, hidden_size=16, num_hidden_layers=1,
                               num_attention_heads=2, mlp_ratio=2, num_labels=3),
        "swin": SwinConfig(image_size=32, patch_size=4, num_channels=1, embed_dim=8, depths=[1], num_heads=[2],
                           window_size=2, num_labels=3),
        "swinv2": Swinv2Config(image_size=32, patch_size=4, num_channels=1, embed_dim=8, depths=[1],
                               num_heads=[2], window_size=2, num_labels=3),
    }[arch]
    return AutoModelForImageClassification.from_config(cfg)


@pytest.mark.parametrize("arch, targets", [
    ("vit", ["q_proj", "v_proj"]), ("dinov2", ["q_proj", "v_proj"]), ("swin", ["q_proj", "v_proj"]),
    ("swinv2", ["query", "value"]), ("convnext", ["pwconv1", "pwconv2"]), ("resnet", ["convolution"]),
])
def test_default_targets_exist_in_each_architecture(arch, targets):
    model = _tiny(arch)
    assert default_lora_targets(model) == targets
    peft_model = apply_peft(model, LoraConfig(r=2))
    lora_layers = [n for n, _ in peft_model.named_modules() if n.endswith("lora_A")]
    assert lora_layers and all(any(f".{t}." in n for t in targets) for n in lora_layers)
    assert head_module_name(model) == "classifier"


def test_complete_peft_config_fills_what_is_unset_and_keeps_the_callers_config():
    given = LoraConfig(r=2)
    done = complete_peft_config(given, _tiny("resnet"))
    assert set(done.target_modules) == {"convolution"} and done.modules_to_save == ["classifier", "normalization"]
    assert given.target_modules is None and given.modules_to_save is None  # a copy was completed
    mine = complete_peft_config(LoraConfig(r=2, target_modules=["q_proj"], modules_to_save=["classifier"]),
                                _tiny("vit"))
    assert set(mine.target_modules) == {"q_proj"} and mine.modules_to_save == ["classifier"]


def test_clear_errors():
    # the 'linear' tiny model is a ConvNeXt without blocks: the ConvNeXt defaults do not exist in it
    match = (r"targets \['pwconv1', 'pwconv2'\] for model_type='convnext' are not in this model; "
             r"pass --lora_target_modules.*\['patch_embeddings'\]")
    with pytest.raises(ValueError, match=match):
        default_lora_targets(_tiny("linear"))
    model = _tiny("vit")
    model.config.model_type = "my_arch"
    with pytest.raises(ValueError, match="no default LoRA target modules for model_type='my_arch'.*q_proj"):
        default_lora_targets(model)
    with pytest.raises(ValueError, match=r"lora_target_modules \['qkv'\] match no Linear/Conv2d layer"):
        apply_peft(_tiny("vit"), LoraConfig(r=2, target_modules=["qkv"]))
    with pytest.raises(ValueError, match="lora_r must be >= 1, got 0"):
        ModelConfig(use_peft=True, lora_r=0)


def test_modules_to_save_head_and_batchnorm():
    assert lora_modules_to_save(_tiny("vit")) == ["classifier"]
    assert lora_modules_to_save(_tiny("resnet")) == ["classifier", "normalization"]


@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_adapter_and_merged_give_the_same_logits(tmp_path, arch):
    from peft import PeftModel

    base_dir = tmp_path / "base"
    _tiny(arch).save_pretrained(base_dir)
    base = AutoModelForImageClassification.from_pretrained(base_dir)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    # LoRA through the trainer, from the command line's options (use_peft, lora_r)
    peft_config = ModelConfig(use_peft=True, lora_r=4).get_peft_config()
    args = training_args(tmp_path, w2s_loss="weak_soft", max_steps=3, learning_rate=0.05, per_device_train_batch_size=8)
    trainer = WeakToStrongTrainer(model=base, args=args, processing_class=tiny_image_processor(28, 3),
                                  train_dataset=block_dataset(16, weak_accuracy=1.0, names=NAMES, size=28),
                                  peft_config=peft_config)
    trainer.train()  # batch-norm running statistics move too (modules_to_save)
    peft_model = trainer.model
    assert trainer.state.global_step == 3 and hasattr(peft_model, "peft_config")
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    peft_model.eval()
    x = torch.randn(4, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        trained = peft_model(pixel_values=x).logits
    save_lora_student(peft_model, str(tmp_path / "student"), base_model_name_or_path=str(base_dir))

    merged = AutoModelForImageClassification.from_pretrained(tmp_path / "student").eval()
    fresh_base = AutoModelForImageClassification.from_pretrained(base_dir)
    adapter = PeftModel.from_pretrained(fresh_base, tmp_path / "student", subfolder="adapter").eval()
    untouched = AutoModelForImageClassification.from_pretrained(base_dir).eval()
    with torch.no_grad():
        via_merged = merged(pixel_values=x).logits
        via_adapter = adapter(pixel_values=x).logits
        initial = untouched(pixel_values=x).logits
    torch.testing.assert_close(via_merged, trained, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(via_adapter, trained, atol=1e-5, rtol=1e-5)
    assert (via_adapter - initial).abs().max() > 1e-3  # training changed the student
    assert merged.config.id2label == untouched.config.id2label
    assert not any("lora" in k for k in merged.state_dict())
    for k, v in AutoModelForImageClassification.from_pretrained(base_dir).state_dict().items():
        torch.testing.assert_close(v, before[k])  # the base checkpoint is left as it was


def test_use_peft_in_the_one_schema_saves_the_merged_student_and_its_adapter(tmp_path, capsys):
    from peft import PeftModel

    out = tmp_path / "out"
    code, _, err = run_cli(train_argv(out, "--model_name_or_path", "tiny:vit,width=8,depth=1", "--use_peft", "true",
                                      "--lora_r", "2", "--max_steps", "2", "--learning_rate", "0.05"), capsys)
    assert code == 0, err
    student = out / "student"
    assert (student / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForImageClassification.from_pretrained(student).eval()
    assert not any("lora" in k for k in merged.state_dict())
    # the run's base: the tiny ViT of seed 0 (the runner builds every run's student with its seed)
    base = build_model("vit", NAMES, image_size=8, num_channels=1, width=8, depth=1, seed=0)
    adapter = PeftModel.from_pretrained(base, student, subfolder="adapter").eval()
    assert set(adapter.peft_config["default"].target_modules) == {"q_proj", "v_proj"}
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # the base with the adapter (and the head saved with it) is the merged student
        torch.testing.assert_close(adapter(pixel_values=x).logits, merged(pixel_values=x).logits, atol=1e-5,
                                   rtol=1e-5)
