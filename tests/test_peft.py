import pytest
import torch
from transformers import (AutoModelForImageClassification, Dinov2Config, SwinConfig, Swinv2Config)

from hf_w2s.modeling import build_model
from hf_w2s.lora import (apply_lora, default_lora_targets, head_module_name, lora_modules_to_save,
                               save_lora_student)

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
    peft_model = apply_lora(model, r=2)
    lora_layers = [n for n, _ in peft_model.named_modules() if n.endswith("lora_A")]
    assert lora_layers and all(any(f".{t}." in n for t in targets) for n in lora_layers)
    assert head_module_name(model) == "classifier"


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
    with pytest.raises(ValueError, match=r"\['qkv'\] match no Linear/Conv2d layer"):
        apply_lora(_tiny("vit"), r=2, target_modules=["qkv"])
    with pytest.raises(ValueError, match="lora_r must be > 0"):
        apply_lora(_tiny("vit"), r=0)


def test_modules_to_save_head_and_batchnorm():
    assert lora_modules_to_save(_tiny("vit")) == ["classifier"]
    assert lora_modules_to_save(_tiny("resnet")) == ["classifier", "normalization"]


@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_adapter_and_merged_give_the_same_logits(tmp_path, arch):
    from peft import PeftModel

    base_dir = tmp_path / "base"
    _tiny(arch).save_pretrained(base_dir)
    base = AutoModelForImageClassification.from_pretrained(base_dir)
    peft_model = apply_lora(base, r=4)
    opt = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=0.05)
    torch.manual_seed(0)
    peft_model.train()  # batch-norm running statistics move too
    for _ in range(3):
        x, y = torch.randn(16, 3, 28, 28), torch.randint(0, 10, (16,))
        torch.nn.functional.cross_entropy(peft_model(pixel_values=x).logits, y).backward()
        opt.step()
        opt.zero_grad()
    peft_model.eval()
    x = torch.randn(4, 3, 28, 28)
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
        before = untouched(pixel_values=x).logits
    torch.testing.assert_close(via_merged, trained, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(via_adapter, trained, atol=1e-5, rtol=1e-5)
    assert (via_adapter - before).abs().max() > 1e-2  # training changed the student
    assert merged.config.id2label == untouched.config.id2label
    assert not any("lora" in k for k in merged.state_dict())
