"""Layer-wise learning-rate decay (hf_w2s.trainer.optim) through WeakToStrongTrainer."""

import numpy as np
import pytest
import torch
from datasets import ClassLabel, Dataset, Features, Image, List, Value
from PIL import Image as PILImage

from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer
from hf_w2s.modeling import build_model, tiny_image_processor
from hf_w2s.trainer.optim import layer_ids

NAMES = ["a", "b", "c"]
PROC = tiny_image_processor(image_size=8)


def data(n=16):
    rng = np.random.default_rng(0)
    images = [PILImage.fromarray(rng.integers(0, 255, (8, 8)).astype(np.uint8)) for _ in range(n)]
    return Dataset.from_dict(
        {"image": images, "label": [i % 3 for i in range(n)], "weak_logits": rng.normal(size=(n, 3)).tolist()},
        features=Features({"image": Image(), "label": ClassLabel(names=NAMES),
                           "weak_logits": List(Value("float32"), length=3)}))


def vit(depth=3):
    return build_model("vit", NAMES, image_size=8, width=8, depth=depth, seed=0)


def trainer(tmp_path, model, peft_config=None, **kw):
    args = WeakToStrongConfig(output_dir=str(tmp_path / "out"), report_to="none", save_strategy="no", use_cpu=True,
                              disable_tqdm=True, learning_rate=1e-2, weight_decay=0.05, per_device_train_batch_size=8,
                              max_steps=2, lr_scheduler_type="constant", **kw)
    return WeakToStrongTrainer(model=model, args=args, train_dataset=data(), processing_class=PROC,
                               peft_config=peft_config)


def test_layer_ids_by_name():
    ids, num_layers = layer_ids(vit(depth=3))
    assert num_layers == 3
    assert ids["vit.embeddings.patch_embeddings.projection.weight"] == 0
    blocks = {n: i for n, i in ids.items() if n.startswith("vit.layers.")}  # transformers 5 names
    assert blocks and all(i == int(n.split(".")[2]) + 1 for n, i in blocks.items())
    assert {i for i in blocks.values()} == {1, 2, 3}
    assert ids["vit.layernorm.weight"] == 4 and ids["classifier.weight"] == 4


def test_each_layer_trains_at_its_decayed_rate(tmp_path):
    model = vit(depth=3)
    tr = trainer(tmp_path, model, layer_decay=0.5)
    opt = tr.create_optimizer()
    ids, _ = layer_ids(model)
    name_of = {id(p): n for n, p in model.named_parameters()}
    seen = []
    for group in opt.param_groups:
        for p in group["params"]:
            n = name_of[id(p)]
            seen.append(n)
            assert group["layer_id"] == ids[n]
            assert group["lr"] == pytest.approx(1e-2 * 0.5 ** (4 - ids[n])), n  # head 1e-2 ... embeddings 1e-2/16
            # weight decay as transformers decides it (none for biases and norms)
            assert group["weight_decay"] == (0.05 if n in tr.get_decay_parameter_names(model) else 0.0), n
    assert sorted(seen) == sorted(n for n, p in model.named_parameters() if p.requires_grad)  # each exactly once
    # the schedule keeps the ratios, and training runs
    tr.train()
    lrs = {g["layer_id"]: g["lr"] for g in tr.optimizer.param_groups}
    assert lrs[0] == pytest.approx(lrs[4] / 16) and lrs[2] == pytest.approx(lrs[4] / 4)


def test_off_by_default_and_refused_for_models_without_encoder_blocks(tmp_path):
    model = vit()
    opt = trainer(tmp_path, model).create_optimizer()
    assert len(opt.param_groups) == 2 and all(g["lr"] == pytest.approx(1e-2) for g in opt.param_groups)
    resnet = build_model("resnet", NAMES, image_size=8, width=8, depth=1, seed=0)
    with pytest.raises(ValueError, match="ResNetForImageClassification has blocks numbered within stages"):
        trainer(tmp_path, resnet, layer_decay=0.65)
    linear = build_model("linear", NAMES, image_size=8, width=8, seed=0)
    with pytest.raises(ValueError, match="ConvNextForImageClassification has none"):
        trainer(tmp_path, linear, layer_decay=0.65)
    with pytest.raises(ValueError, match=r"layer_decay must be within \(0, 1\], got 1.5"):
        trainer(tmp_path, vit(), layer_decay=1.5)


def test_works_under_lora(tmp_path):
    from peft import LoraConfig

    opt = trainer(tmp_path, vit(), peft_config=LoraConfig(r=2), layer_decay=0.5).create_optimizer()
    lrs = {g["layer_id"]: g["lr"] for g in opt.param_groups}
    # LoRA adapters sit in blocks 0..2 (layer ids 1..3), the head (modules_to_save) after the encoder
    assert set(lrs) == {1, 2, 3, 4}
    assert lrs[4] == pytest.approx(1e-2) and lrs[2] == pytest.approx(1e-2 / 4)
    assert all(p.requires_grad for g in opt.param_groups for p in g["params"])
    assert torch.is_tensor(opt.param_groups[0]["params"][0])
