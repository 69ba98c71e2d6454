"""Training augmentation (kornia, on normalised pixel values), mixup / CutMix, and the one schema's `augmentation`
mapping (``TrainAugmentation.from_spec``, ``check_augmentation``)."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from testing_utils import require_kornia

from hf_w2s import WeakToStrongConfig, WeakToStrongTrainer
from hf_w2s.modeling import build_model, tiny_image_processor
from hf_w2s.trainer.augment import AugmentingCollator, TrainAugmentation, cutmix, mixup, processor_normalization

pytestmark = require_kornia


def _ramp(b=4, c=1, h=8, w=8):
    """Normalised (mean/std 0.5) images whose columns increase left to right."""
    x = torch.linspace(0, 1, w).expand(b, c, h, w).clone()
    return (x - 0.5) / 0.5


def test_identity_when_everything_is_off():
    aug = TrainAugmentation(mean=[0.5], std=[0.5], crop_scale=None, hflip=False)
    x = _ramp()
    torch.testing.assert_close(aug(x), x)


def test_flip_gives_each_image_or_its_mirror():
    torch.manual_seed(0)
    aug = TrainAugmentation(mean=[0.5], std=[0.5], crop_scale=None, hflip=True)
    x = _ramp(b=32)
    y = aug(x)
    same = torch.isclose(y, x).flatten(1).all(1)
    mirrored = torch.isclose(y, x.flip(-1)).flatten(1).all(1)
    assert torch.all(same | mirrored)
    assert same.any() and mirrored.any()


def test_crop_keeps_size_and_range_and_changes_content():
    torch.manual_seed(0)
    aug = TrainAugmentation(mean=[0.5], std=[0.5], crop_scale=(0.25, 0.25), crop_ratio=(1.0, 1.0), hflip=False)
    x = _ramp(b=6, h=16, w=16)
    y = aug(x)
    assert y.shape == x.shape
    assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6
    # a quarter-area crop of a ramp spans about half the range: it is zoomed in, not the original
    span = (y[..., -1] - y[..., 0]).mean()
    assert 0.6 < span < 1.4 and not torch.allclose(y, x)
    # a constant image stays constant (the crop resizes, it does not pad)
    const = torch.full((2, 1, 16, 16), 0.3)
    torch.testing.assert_close(aug(const), const)


def test_uses_processor_normalisation_rgb():
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    proc = ViTImageProcessorPil(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    mean, std = processor_normalization(proc)
    assert mean == [0.485, 0.456, 0.406] and std == [0.229, 0.224, 0.225]
    aug = TrainAugmentation.from_image_processor(proc, crop_scale=None, hflip=False)
    ones = (torch.ones(1, 3, 4, 4) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    torch.testing.assert_close(aug(ones), ones)
    # values outside the processor's range are clamped back to [0, 1] before re-normalising
    torch.testing.assert_close(aug(ones + 5), ones)
    with pytest.raises(ValueError, match="normalises 3 channels but pixel_values have 1"):
        aug(torch.zeros(1, 1, 4, 4))


def test_randaugment_grayscale_and_rgb():
    torch.manual_seed(0)
    for c in (1, 3):
        aug = TrainAugmentation(mean=[0.5] * c, std=[0.5] * c, crop_scale=None, hflip=False, randaugment_n=2,
                                randaugment_m=15)
        x = torch.rand(8, c, 16, 16) * 2 - 1
        y = aug(x)
        assert y.shape == x.shape and not torch.allclose(y, x)
        assert y.min() >= -1 - 1e-6 and y.max() <= 1 + 1e-6


def test_mixup_matches_hand_computation():
    torch.manual_seed(3)
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    w = torch.tensor([[3.0, 0.0], [0.0, 3.0], [1.0, 1.0], [2.0, -1.0]])
    labels = torch.tensor([0, 1, 0, 1])
    out = mixup({"pixel_values": x, "weak_logits": w, "labels": labels}, alpha=0.8)
    lam, perm = out["mixup_lambda"], out["mixup_index"]  # per example: the weight of the original image
    assert lam.shape == (4,) and torch.all((lam >= 0) & (lam <= 1)) and sorted(perm.tolist()) == [0, 1, 2, 3]
    torch.testing.assert_close(out["pixel_values"], lam.view(4, 1, 1, 1) * x + (1 - lam.view(4, 1, 1, 1)) * x[perm])
    p = torch.softmax(w, -1)
    torch.testing.assert_close(torch.softmax(out["weak_logits"], -1), lam[:, None] * p + (1 - lam[:, None]) * p[perm])
    assert torch.equal(out["labels"], labels)
    assert mixup({"pixel_values": x}, alpha=0.0)["pixel_values"] is x


def test_mixup_weights_follow_beta_alpha_alpha():
    torch.manual_seed(0)
    lam = mixup({"pixel_values": torch.zeros(4000, 1, 1, 1)}, alpha=0.5)["mixup_lambda"]
    # Beta(0.5, 0.5): mean 1/2, variance a*b / ((a+b)^2 (a+b+1)) = 0.25 / 2 = 0.125 (uniform would be 1/12)
    assert float(lam.mean()) == pytest.approx(0.5, abs=0.02) and float(lam.var()) == pytest.approx(0.125, abs=0.01)


def test_cutmix_pastes_one_box_and_mixes_weak_supervision_by_its_area():
    torch.manual_seed(1)
    x = torch.arange(1.0, 7.0).view(6, 1, 1, 1).expand(6, 1, 8, 8).clone()  # image i is the constant i + 1
    weak_x = torch.arange(1.0, 7.0).view(6, 1, 1, 1).expand(6, 3, 16, 16).clone()  # the weak model's 2x view
    w = torch.randn(6, 3)
    labels = torch.arange(6)
    for _ in range(5):
        out = cutmix({"pixel_values": x, "weak_pixel_values": weak_x, "weak_logits": w, "labels": labels}, 1.0)
        lam, perm = out["mixup_lambda"], out["mixup_index"]
        y = out["pixel_values"]
        pasted = y != x  # where the permuted image shows through
        for i in range(6):
            if perm[i] == i:
                continue
            assert torch.all((y[i] == x[i]) | (y[i] == x[perm[i]]))  # nothing blended, only pasted
            assert pasted[i].float().mean().item() == pytest.approx(1 - float(lam[i]))  # λ = the share unchanged
            rows, cols = torch.nonzero(pasted[i, 0], as_tuple=True)
            if len(rows):  # one axis-aligned rectangle
                assert len(rows) == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
                # the weak model's view gets the same box at its resolution
                wy = out["weak_pixel_values"][i, 0]
                assert torch.all(wy[2 * rows.min():2 * rows.max() + 2, 2 * cols.min():2 * cols.max() + 2]
                                 == weak_x[perm[i], 0, 0, 0])
                assert (wy != weak_x[i, 0]).float().mean().item() == pytest.approx(1 - float(lam[i]))
        p = torch.softmax(w, -1)
        torch.testing.assert_close(torch.softmax(out["weak_logits"], -1),
                                   lam[:, None] * p + (1 - lam[:, None]) * p[perm])
        assert torch.equal(out["labels"], labels)
    assert cutmix({"pixel_values": x}, alpha=0.0)["pixel_values"] is x


def test_random_erasing_fills_one_box_with_the_mean_colour():
    torch.manual_seed(0)
    aug = TrainAugmentation(mean=[0.5], std=[0.5], crop_scale=None, hflip=False, random_erasing=1.0)
    x = torch.ones(8, 1, 16, 16)  # white: 1.0 after normalisation
    y = aug(x)
    erased = y == 0.0  # the processor's mean colour
    assert torch.all(erased | (y == 1.0))
    share = erased.flatten(1).float().mean(1)
    assert torch.all(share > 0) and torch.all(share <= 0.34)
    torch.testing.assert_close(TrainAugmentation(mean=[0.5], std=[0.5], crop_scale=None, hflip=False)(x), x)
    with pytest.raises(ValueError, match="random_erasing must be a probability"):
        TrainAugmentation(random_erasing=1.5)


def test_collator_with_mixup_and_cutmix_uses_each_for_some_batches():
    proc = tiny_image_processor()
    feats = [{"image": im, "label": i % 10, "weak_logits": [0.0] * 10} for i, im in enumerate(_digits(8))]
    coll = AugmentingCollator(image_processor=proc, mixup_alpha=0.8, cutmix_alpha=1.0)
    plain = AugmentingCollator(image_processor=proc, training=False)(feats)["pixel_values"]
    torch.manual_seed(0)
    kinds = set()
    for _ in range(12):
        y = coll(feats)["pixel_values"]
        # a CutMix batch only has pixels of the original images; a mixup batch has blended ones
        kinds.add("cutmix" if all(any(torch.equal(y[i, :, r, c], plain[j, :, r, c]) for j in range(8))
                                  for i in range(8) for r, c in ((0, 0), (27, 27), (14, 3))) else "mixup")
    assert kinds == {"cutmix", "mixup"}


def _digits(n=16):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (28, 28), dtype=np.uint8), mode="L") for _ in range(n)]


def test_collator_augments_only_when_training():
    proc = tiny_image_processor()
    feats = [{"image": im, "label": i % 10, "weak_logits": [0.0] * 10} for i, im in enumerate(_digits(4))]
    plain = AugmentingCollator(image_processor=proc, training=False)(feats)["pixel_values"]
    coll = AugmentingCollator(image_processor=proc, train_transform=lambda x: -x, mixup_alpha=0.5)
    torch.manual_seed(0)
    trained = coll(feats)
    torch.manual_seed(0)
    expected = mixup({"pixel_values": -plain}, alpha=0.5)  # transform first, then mixup, same draws
    assert float(expected["mixup_lambda"].min()) < 0.99 and set(trained) == {"pixel_values", "labels", "weak_logits",
                                                                          "mixup_lambda", "mixup_index"}
    torch.testing.assert_close(trained["pixel_values"], expected["pixel_values"])
    evaluated = dataclasses.replace(coll, training=False)(feats)
    torch.testing.assert_close(evaluated["pixel_values"], plain)
    torch.testing.assert_close(evaluated["weak_logits"], torch.zeros(4, 10))


def test_trainer_applies_transform_in_training_not_in_evaluation(tmp_path):
    from datasets import ClassLabel, Dataset, Features, List, Value
    from datasets import Image as ImageFeature

    ims = _digits(8)
    ds = Dataset.from_dict(
        {"image": ims, "label": [i % 10 for i in range(8)], "weak_logits": [[0.0] * 10] * 8},
        features=Features({"image": ImageFeature(), "label": ClassLabel(names=[str(i) for i in range(10)]),
                           "weak_logits": List(Value("float32"), length=10)}),
    )
    calls = []

    def transform(x):
        calls.append(x.shape[0])
        return x

    proc = tiny_image_processor()
    args = WeakToStrongConfig(output_dir=str(tmp_path), per_device_train_batch_size=4, per_device_eval_batch_size=4,
                              max_steps=2, report_to="none", use_cpu=True, save_strategy="no", w2s_loss="kd")
    trainer = WeakToStrongTrainer(
        model=build_model("linear", [str(i) for i in range(10)], width=4, seed=0), args=args, train_dataset=ds,
        eval_dataset=ds, processing_class=proc,
        data_collator=AugmentingCollator(image_processor=proc, train_transform=transform),
    )
    trainer.evaluate()
    assert calls == []
    trainer.train()
    assert calls == [4, 4]


# -- the one schema's `augmentation` mapping (kornia class names -> arguments) ------------------------------------


def test_from_spec_builds_the_special_entries_and_plain_kornia_layers_in_order():
    proc = tiny_image_processor(8, 1)
    # a plain kornia layer: a flip that always happens mirrors every image
    x = _ramp(b=3)
    torch.testing.assert_close(TrainAugmentation.from_spec(proc, {"RandomHorizontalFlip": {"p": 1.0}})(x),
                               x.flip(-1))
    # RandomResizedCrop without size: to the processor's output size (the input's), a quarter-area zoom of the ramp
    torch.manual_seed(0)
    crop = TrainAugmentation.from_spec(proc, {"RandomResizedCrop": {"scale": [0.25, 0.25], "ratio": [1.0, 1.0]}})
    y = crop(_ramp(b=4, h=16, w=16))
    assert crop.crop_scale == (0.25, 0.25) and y.shape == (4, 1, 16, 16)
    assert 0.6 < float((y[..., -1] - y[..., 0]).mean()) < 1.4
    # ... with size it is kornia's own layer: that size
    sized = TrainAugmentation.from_spec(proc, {"RandomResizedCrop": {"size": [4, 4]}})
    assert sized.crop_scale is None and sized(_ramp(b=2, h=16, w=16)).shape == (2, 1, 4, 4)
    # RandAugment (n, m) changes the images within the processor's range; RandomErasing fills the mean colour
    torch.manual_seed(0)
    ra = TrainAugmentation.from_spec(proc, {"RandAugment": {"n": 2, "m": 15}})
    z = torch.rand(8, 1, 16, 16) * 2 - 1
    out = ra(z)
    assert ra.randaugment is not None and not torch.allclose(out, z) and out.min() >= -1 - 1e-6
    erased = TrainAugmentation.from_spec(proc, {"RandomErasing": {"p": 1.0}})(torch.ones(4, 1, 16, 16))
    assert torch.all((erased == 0.0) | (erased == 1.0)) and torch.all((erased == 0.0).flatten(1).any(1))
    # nothing asked, nothing done
    torch.testing.assert_close(TrainAugmentation.from_spec(proc, {})(x), x)


def test_check_augmentation_names_the_entry_before_anything_trains():
    from hf_w2s.trainer.augment import check_augmentation

    check_augmentation(None)
    check_augmentation({"RandomResizedCrop": {"scale": [0.35, 1.0]}, "RandomAffine": {"degrees": 10},
                        "RandAugment": {"n": 2, "m": 9}, "RandomErasing": {"p": 0.25}})
    for spec, where, match in [
            ({"RandomAfine": {"degrees": 10}}, "augmentation",
             r"augmentation: kornia.augmentation has no class 'RandomAfine' \(did you mean 'RandomAffine'\?\)"),
            ({"RandomAffine": {"degreez": 10}}, "augmentation", r"augmentation\.RandomAffine: .*degreez"),
            ({"RandAugment": {"n": 2, "magnitude": 9}}, "training_candidates 'b' augmentation",
             r"training_candidates 'b' augmentation\.RandAugment: unknown arguments \['magnitude'\]"),
            ({"RandomResizedCrop": {"scale": [0.0, 1.0]}}, "augmentation",
             r"augmentation: crop_scale must satisfy 0 < min <= max <= 1"),
            ({"RandomErasing": 0.5}, "augmentation", r"augmentation\.RandomErasing: its arguments must be a mapping"),
            (["RandomErasing"], "augmentation", "augmentation must be a mapping of kornia.augmentation class names")]:
        with pytest.raises(ValueError, match=match):
            check_augmentation(spec, where)
