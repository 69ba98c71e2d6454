"""What the tests share: small datasets and models built offline, the training arguments of a one-step run, the
``hf-w2s`` command run in this process, and ``require_*`` markers for optional dependencies.

    from testing_utils import NAMES, image_dataset, tiny_model, training_args, run_cli, require_kornia
"""

from __future__ import annotations

import numpy as np
import pytest

from hf_w2s.import_utils import is_deepspeed_available, is_efficientnet_lite_available, is_package_available

NAMES = ["a", "b", "c", "d"]
SIZE = 8

require_kornia = pytest.mark.skipif(not is_package_available("kornia"), reason="needs kornia (hf_w2s[aug])")
require_matplotlib = pytest.mark.skipif(not is_package_available("matplotlib"), reason="needs hf_w2s[plots]")
require_pretrained = pytest.mark.skipif(not is_efficientnet_lite_available("lite0"),
                                        reason="needs the ImageNet weights (hf_w2s[pretrained])")
require_deepspeed = pytest.mark.skipif(not is_deepspeed_available(), reason="needs deepspeed")


def require_gpu(test):
    import torch

    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))


def images(n: int = 6, mode: str = "L", seed: int = 0, size: int = SIZE) -> list:
    """``n`` random PIL images (grayscale, or RGB with ``mode="RGB"``)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    shape = (n, size, size) if mode == "L" else (n, size, size, 3)
    return [Image.fromarray(a, mode=mode) for a in rng.integers(0, 256, shape, dtype=np.uint8)]


def block_images(n: int, seed: int = 0, size: int = SIZE, names=NAMES) -> tuple[list, np.ndarray]:
    """``n`` learnable images (class ``c`` is a bright block in the ``c``-th quadrant, plus noise) and their labels."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(names), n)
    half = size // 2
    out = []
    for y in labels:
        a = rng.integers(0, 60, (size, size)).astype(np.uint8)
        r, c = divmod(int(y) % 4, 2)
        a[r * half:(r + 1) * half, c * half:(c + 1) * half] += 150
        out.append(Image.fromarray(a, mode="L"))
    return out, labels


def image_dataset(n: int = 6, *, labels: bool = True, weak_logits: bool = True, learnable: bool = False,
                  mode: str = "L", image_column: str = "image", width: int | None = None, seed: int = 0,
                  names=NAMES):
    """A ``datasets.Dataset`` of ``n`` images with a ``ClassLabel`` column and random ``weak_logits``."""
    from datasets import ClassLabel, Dataset, Features, Image, List, Value

    rng = np.random.default_rng(seed + 1)
    if learnable:
        pics, y = block_images(n, seed, names=names)
    else:
        pics, y = images(n, mode, seed), rng.integers(0, len(names), n)
    data, features = {image_column: pics}, {image_column: Image()}
    if labels:
        data["label"] = [int(v) for v in y]
        features["label"] = ClassLabel(names=list(names))
    if weak_logits:
        data["weak_logits"] = rng.standard_normal((n, width or len(names))).astype(np.float32).tolist()
        features["weak_logits"] = List(Value("float32"))
    return Dataset.from_dict(data, features=Features(features))


def tiny_model(arch: str = "linear", names=NAMES, channels: int = 1, size: int = SIZE, seed: int = 0, **shape):
    """A small classifier built from a config (``hf_w2s.modeling.build_model``)."""
    from hf_w2s.modeling import build_model

    shape = shape or ({"width": 4} if arch == "linear" else {"width": 8, "depth": 1})
    return build_model(arch, list(names), image_size=size, num_channels=channels, seed=seed, **shape)


def processor(channels: int = 1, size: int = SIZE):
    from hf_w2s.modeling import tiny_image_processor

    return tiny_image_processor(size, channels)


def training_args(tmp_path, **kw):
    """A ``WeakToStrongConfig`` of a short CPU run in ``tmp_path/out`` (override anything with ``kw``)."""
    from hf_w2s import WeakToStrongConfig

    base = dict(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, max_steps=1,
                per_device_train_batch_size=3, save_strategy="no", disable_tqdm=True, w2s_loss="kd")
    return WeakToStrongConfig(**{**base, **kw})


def run_cli(argv: list[str], capsys=None) -> tuple[int, str, str]:
    """``hf-w2s ARGV`` in this process, as ``python -m hf_w2s.cli`` runs it: ``(exit code, stdout, stderr)`` (with
    ``capsys``; empty strings without it)."""
    from hf_w2s.cli import main

    code = main([str(a) for a in argv])
    if capsys is None:
        return code, "", ""
    captured = capsys.readouterr()
    return code, captured.out, captured.err
