"""On a GPU: a bf16 training step, the online weak model on the student's device, labelling on the GPU.

Marked ``gpu`` (``pytest -m gpu``; benchmarks/gpu_check.sh runs them) and skipped where CUDA is absent, so the suite
passes on CPU machines. ``HF_W2S_GPU_TEST_DEVICE=cpu`` runs them on the CPU instead (bf16 autocast exists there too):
a dry run of the same code, for machines without a GPU. TF32 is off during these tests, so the GPU computes in
float32 where the tests compare with float32 results.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "scripts"))

from tiny_data import labelled_images, random_images, tiny_run_args  # noqa: E402

DEVICE = os.environ.get("HF_W2S_GPU_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

NAMES = ["a", "b", "c", "d"]
SIZE = 28


@pytest.fixture(autouse=True)
def no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _data(n: int = 16, weak_logits: bool = True):
    return labelled_images(random_images(n, SIZE, seed=0), NAMES, weak_logits, scale=2.0)


def _student():
    from hf_w2s.modeling import build_model

    return build_model("vit", NAMES, image_size=SIZE, num_channels=3, width=32, depth=2, seed=0)


def _weak():
    from hf_w2s.modeling import build_model

    # its label names in another order: the online logits must be reordered by name on the device too
    return build_model("resnet", NAMES[::-1], image_size=SIZE, num_channels=3, width=8, depth=1, seed=1)


def _processor():
    from hf_w2s.modeling import tiny_image_processor

    return tiny_image_processor(SIZE, 3)


def _args(tmp_path, **overrides):
    from hf_w2s import WeakToStrongConfig

    kwargs = tiny_run_args(str(tmp_path), 8, 2, learning_rate=0.1)
    kwargs["use_cpu"] = DEVICE == "cpu"
    kwargs.update(overrides)
    return WeakToStrongConfig(**kwargs)


def _trainer(tmp_path, data, weak_model=None, **overrides):
    from hf_w2s import WeakToStrongTrainer

    return WeakToStrongTrainer(model=_student(), args=_args(tmp_path, **overrides), train_dataset=data,
                               processing_class=_processor(), weak_model=weak_model)


def _losses(trainer) -> list[float]:
    return [e["loss"] for e in trainer.state.log_history if "loss" in e]


def test_a_bf16_training_step_computes_in_bf16_and_keeps_float32_weights(tmp_path):
    data = _data()
    fp32 = _trainer(tmp_path / "fp32", data)
    fp32.train()
    bf16 = _trainer(tmp_path / "bf16", data, bf16=True)
    seen = []
    bf16.model.classifier.register_forward_hook(lambda m, i, out: seen.append((out.dtype, out.device.type)))
    bf16.train()
    assert bf16.args.device.type == DEVICE
    assert seen and set(seen) == {(torch.bfloat16, DEVICE)}  # autocast: the head ran in bf16 on the device
    params = list(bf16.model.parameters())
    assert {p.dtype for p in params} == {torch.float32} and {p.device.type for p in params} == {DEVICE}
    # the same two steps as float32, to bf16's precision (8 bits of mantissa), and the weights really moved
    losses, reference = _losses(bf16), _losses(fp32)
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert losses == pytest.approx(reference, rel=3e-2)
    initial = _student().state_dict()
    moved = max((v.detach().cpu() - initial[k]).abs().max().item() for k, v in bf16.model.state_dict().items())
    assert moved > 1e-3


def test_the_online_weak_model_runs_on_the_students_device_and_equals_cached_logits(tmp_path):
    from hf_w2s import label_dataset

    weak = _weak()
    cpu_copy = copy.deepcopy(weak)
    online = _trainer(tmp_path / "online", _data(weak_logits=False), weak_model=weak)
    devices = []
    online.weak_model.register_forward_pre_hook(
        lambda m, args, kwargs: devices.append(kwargs["pixel_values"].device.type), with_kwargs=True)
    assert {p.device.type for p in online.weak_model.parameters()} == {DEVICE}
    assert not online.weak_model.training and not any(p.requires_grad for p in online.weak_model.parameters())
    online.train()
    assert devices and set(devices) == {DEVICE}
    # reference: the weak logits computed on the CPU beforehand (label_dataset orders them by the student's names)
    cached_data = label_dataset(_data(weak_logits=False), cpu_copy, _processor(), label_names=NAMES, device="cpu")
    cached = _trainer(tmp_path / "cached", cached_data)
    cached.train()
    assert _losses(online) == pytest.approx(_losses(cached), rel=1e-4)
    a, b = online.model.state_dict(), cached.model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_labelling_runs_on_the_gpu_by_default_and_equals_the_cpu_labels():
    from accelerate import PartialState

    from hf_w2s import label_dataset

    data = _data(40, weak_logits=False)
    weak = _weak()
    devices = []
    weak.register_forward_pre_hook(lambda m, args, kwargs: devices.append(kwargs["pixel_values"].device.type),
                                   with_kwargs=True)
    assert PartialState().device.type == DEVICE  # what label_dataset uses when no device is given
    on_device = label_dataset(data, weak, _processor(), batch_size=16, label_names=NAMES)
    assert devices and set(devices) == {DEVICE}
    assert {p.device.type for p in weak.parameters()} == {"cpu"}  # moved back where it was
    on_cpu = label_dataset(data, weak, _processor(), batch_size=16, label_names=NAMES, device="cpu")
    got = np.asarray(on_device.with_format("numpy")["weak_logits"][:])
    expected = np.asarray(on_cpu.with_format("numpy")["weak_logits"][:])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    assert on_device["weak_label"] == on_cpu["weak_label"]
