"""Weak logits stored as float32, float16 or top-k (issue 30): what each keeps exactly, bytes on disk at ImageNet's
width, every loss read from each form within its stated tolerance, the trainer's collator and checks at full width."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from datasets import load_from_disk

from hf_w2s import LOSSES, WeakToStrongConfig, WeakToStrongTrainer, compute_w2s_loss, label_dataset
from hf_w2s.data.logit_storage import LogitStorage, full_width
from hf_w2s.data.packaged import load_sklearn_digits
from hf_w2s.data.weak_labels import align_weak_labels, weak_logits_array
from hf_w2s.modeling import build_model, tiny_image_processor
from hf_w2s.trainer.collator import WeakToStrongCollator
from hf_w2s.trainer.validation import check_weak_logits

NAMES = [str(i) for i in range(10)]
N = 48
#: the stated tolerances against float32 (docs/many_gpus.md): float16 — every loss within 1e-4 (relative), its
#: gradient within 2e-3 of the gradient's largest entry; top-10 of 1,000 classes, the weak model keeping 91 % of its
#: probability in those classes on average — weak_hard and conf_select exact, every other loss within 1 %
FLOAT16_LOSS, FLOAT16_GRAD, TOPK_LOSS = 1e-4, 2e-3, 1e-2


@pytest.fixture(autouse=True)
def _quiet():
    import datasets

    datasets.disable_progress_bars()
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("digits") / "ds"
    load_sklearn_digits().select(range(N)).save_to_disk(str(path))
    return str(path)


def weak(names=NAMES, seed=0):
    return build_model("linear", names, image_size=8, num_channels=3, width=8, seed=seed)


def labelled(digits_dir, form="float32", k=3, model=None):
    ds = load_from_disk(digits_dir)
    return label_dataset(ds, model or weak(), tiny_image_processor(8), batch_size=16, logits_storage=form, top_k=k)


def test_each_form_keeps_labels_and_confidences_and_what_it_promises(digits_dir):
    ref = labelled(digits_dir)
    exact = weak_logits_array(ref)
    half, top = labelled(digits_dir, "float16"), labelled(digits_dir, "topk", k=3)
    for out in (half, top):  # label and confidence come from the float32 logits
        assert out["weak_label"] == ref["weak_label"] and out["weak_confidence"] == ref["weak_confidence"]
        assert out._fingerprint != ref._fingerprint and out["label"] == ref["label"]
    assert half.features["weak_logits"].feature.dtype == "float16"
    np.testing.assert_allclose(weak_logits_array(half), exact, rtol=2.0 ** -11, atol=1e-7)
    decoded = weak_logits_array(top)
    kept = np.argsort(-exact, axis=1)[:, :3]
    np.testing.assert_array_equal([row["topk_indices"] for row in top["weak_logits"]], kept)
    p, q = torch.softmax(torch.from_numpy(exact), -1), torch.softmax(torch.from_numpy(decoded), -1)
    index = torch.from_numpy(kept)
    torch.testing.assert_close(q.gather(1, index), p.gather(1, index), rtol=1e-5, atol=1e-7)  # exact where kept
    rest = 1 - p.gather(1, index).sum(-1)  # the rest is shared equally by the 7 other classes
    others = torch.ones_like(q, dtype=torch.bool).scatter(1, index, False)
    torch.testing.assert_close(q[others].reshape(N, 7), (rest / 7)[:, None].expand(N, 7), rtol=1e-4, atol=1e-7)
    assert not torch.allclose(q, p, atol=1e-3)  # and that is all it keeps


def test_topk_of_imagenet_width_takes_under_a_tenth_of_float32_on_disk(digits_dir):
    wide = [f"class_{i}" for i in range(1000)]
    model = weak(wide, seed=2)
    ds = load_from_disk(digits_dir).remove_columns("label")
    sizes = {}
    for form in ("float32", "topk"):
        out = label_dataset(ds, model, tiny_image_processor(8), batch_size=16, logits_storage=form, top_k=10)
        files = {f["filename"] for f in out.cache_files if "weak-labels" in f["filename"]}
        sizes[form] = sum(os.path.getsize(f) for f in files) / N
    assert sizes["float32"] > 4000 and sizes["topk"] <= sizes["float32"] / 10, sizes  # measured 4,027 vs 116


def sharp_weak_logits(classes: int, rows: int = 64, margin: float = 10.0, seed: int = 0):
    """A confident weak model's logits: noise, and ``margin`` on one class per row."""
    rng = np.random.default_rng(seed)
    w = torch.tensor(rng.standard_normal((rows, classes)), dtype=torch.float32)
    target = torch.tensor(rng.integers(0, classes, rows))
    w[torch.arange(rows), target] += margin
    return w, torch.tensor(rng.standard_normal((rows, classes)), dtype=torch.float32), target


def stored_and_read(w: torch.Tensor, form: str, k: int) -> torch.Tensor:
    encoded = LogitStorage.of(form, k).encode(w.numpy())
    return torch.from_numpy(full_width(encoded if isinstance(encoded, list) else encoded.tolist()))


def loss_and_grad(name, student, weak_logits, labels):
    s = student.clone().requires_grad_(True)
    loss, _ = compute_w2s_loss(name, s, weak_logits, labels, progress=0.5)
    loss.backward()
    return loss.item(), s.grad


@pytest.mark.parametrize("classes,k", [(1000, 10), (2, 1)])
def test_every_loss_reads_each_stored_form_within_its_tolerance(classes, k):
    w, s, labels = sharp_weak_logits(classes)
    kept = torch.softmax(w, -1).topk(k, -1).values.sum(-1).mean().item()
    assert classes == 2 or 0.85 < kept < 0.95  # the setting the tolerance is stated for (91 %)
    losses = [n for n, info in LOSSES.items() if info.uses_weak and info.num_classes in (None, classes)]
    assert len(losses) >= 8 and ("aux_conf" in losses) == (classes == 2)
    for name in losses:
        ref_loss, ref_grad = loss_and_grad(name, s, w, labels)
        half_loss, half_grad = loss_and_grad(name, s, stored_and_read(w, "float16", k), labels)
        assert half_loss == pytest.approx(ref_loss, rel=FLOAT16_LOSS), name
        assert (half_grad - ref_grad).abs().max() <= FLOAT16_GRAD * ref_grad.abs().max(), name
        top_loss, top_grad = loss_and_grad(name, s, stored_and_read(w, "topk", k), labels)
        if name in ("weak_hard", "conf_select") or classes == 2:  # the argmax, or all there is, is kept exactly
            assert top_loss == ref_loss and torch.equal(top_grad, ref_grad), name
        else:
            assert top_loss == pytest.approx(ref_loss, rel=TOPK_LOSS), name
            assert top_loss != ref_loss, name  # a real approximation, not a copy


def test_the_collator_and_the_trainer_checks_read_every_form_at_full_width(digits_dir):
    ref = labelled(digits_dir)
    for form in ("float16", "topk"):
        out = labelled(digits_dir, form)
        batch = WeakToStrongCollator(image_processor=tiny_image_processor(8))([out[i] for i in range(5)])
        assert batch["weak_logits"].shape == (5, 10) and batch["weak_logits"].dtype == torch.float32
        np.testing.assert_array_equal(batch["weak_logits"].numpy(), weak_logits_array(out)[:5])
        several = WeakToStrongCollator(image_processor=tiny_image_processor(8), weak_logits_columns=["a", "b"])(
            [{"image": r["image"], "a": r["weak_logits"], "b": q} for r, q in zip(out, ref["weak_logits"])][:3])
        assert several["weak_logits"].shape == (3, 2, 10)
        check_weak_logits(out, "weak_logits", 10)  # passes at full width
        with pytest.raises(ValueError, match="has 10 values per example but the student has 12 labels"):
            check_weak_logits(out, "weak_logits", 12)
    corrupt = labelled(digits_dir, "topk").map(
        lambda row, i: {"weak_logits": {**row["weak_logits"], "topk_indices": [99, 0, 1]} if i == 3 else
                        row["weak_logits"]}, with_indices=True)
    with pytest.raises(ValueError, match=r"NaN or infinite values in 1 example\(s\) \(rows 3\)"):
        check_weak_logits(corrupt, "weak_logits", 10)


def test_reordering_by_name_keeps_the_storage_form(digits_dir):
    order = NAMES[::-1]
    ref = align_weak_labels(labelled(digits_dir), order)
    for form in ("float16", "topk"):
        out = align_weak_labels(labelled(digits_dir, form), order)
        assert out["weak_label"] == ref["weak_label"] and out.features["weak_label"].names == order
        assert out.features["weak_logits"] == labelled(digits_dir, form).features["weak_logits"]
        decoded, exact = weak_logits_array(out), weak_logits_array(ref)
        assert (decoded.argmax(-1) == exact.argmax(-1)).all()
        np.testing.assert_allclose(torch.softmax(torch.from_numpy(decoded), -1).max(-1).values,
                                   torch.softmax(torch.from_numpy(exact), -1).max(-1).values, rtol=1e-3)


@pytest.mark.parametrize("form", ["float16", "topk"])
def test_the_trainer_trains_every_loss_from_each_form(digits_dir, form, tmp_path):
    out = labelled(digits_dir, form)
    processor = tiny_image_processor(8)
    names = [n for n, info in LOSSES.items() if info.uses_weak and info.num_classes in (None, 10)]
    for name in names:
        student = build_model("linear", NAMES, image_size=8, num_channels=3, width=8, seed=1)
        before = [p.detach().clone() for p in student.parameters()]
        args = WeakToStrongConfig(output_dir=str(tmp_path / name), w2s_loss=name, per_device_train_batch_size=16,
                                  max_steps=2, learning_rate=0.1, use_cpu=True, report_to="none", save_strategy="no",
                                  disable_tqdm=True, seed=0)
        result = WeakToStrongTrainer(model=student, args=args, train_dataset=out, processing_class=processor).train()
        assert np.isfinite(result.training_loss), name
        assert any(not torch.equal(a, b) for a, b in zip(before, student.parameters())), name
